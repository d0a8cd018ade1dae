"""Readers of the five datasets (TGIF-QA, MSVD-QA, MSRVTT-QA, ActivityNet-QA, How2QA), the answer vocabulary,
tokenizers, frame sources and cache, the dataset and collate, the frame filter and ``python -m
siasamrea.data``."""
