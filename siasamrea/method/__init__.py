"""The method of the paper: clip sampling, the ClipBERT-style model, siamese knowledge generation and
reasoning, the losses, scoring, and the run configuration. Imports only :mod:`siasamrea.core`."""
