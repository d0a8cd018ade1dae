"""Batch samplers that split a dataset across processes.

* :class:`TrainBatchSampler`: a fresh permutation per epoch (seeded by ``(seed, epoch)``, so every rank
  agrees), padded by wrapping around to a multiple of ``world_size`` as ``DistributedSampler`` does, each
  rank taking every ``world_size``-th index, cut into batches. ``skip`` batches can be skipped without
  loading anything, which is how a run resumes in the middle of an epoch.
* :class:`EvalBatchSampler`: rank r takes items r, r + W, r + 2W, ... with no padding, so no evaluation
  item is dropped or counted twice; the engine gathers the predictions from every rank.
"""

from __future__ import annotations

import math

import torch

from siasamrea.data.dataset import item_seed


class TrainBatchSampler:
    def __init__(
        self, n: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle=True
    ):
        if n < 1:
            raise ValueError("cannot sample batches from an empty dataset")
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_skip(self, batches: int) -> None:
        self.skip = batches

    def per_rank(self) -> int:
        return math.ceil(self.n / self.world)

    def __len__(self) -> int:
        return math.ceil(self.per_rank() / self.batch_size)

    def rank_indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, 0x5A3))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank() * self.world
        order = (order * math.ceil(total / self.n))[:total]
        return order[self.rank :: self.world]

    def __iter__(self):
        idx = self.rank_indices()
        for b in range(self.skip, len(self)):
            yield idx[b * self.batch_size : (b + 1) * self.batch_size]


class EvalBatchSampler:
    def __init__(self, n: int, batch_size: int, *, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __iter__(self):
        for b in range(len(self)):
            yield self.indices[b * self.batch_size : (b + 1) * self.batch_size]
