"""Evaluation metrics and multi-clip score aggregation.

* Open-ended and multiple choice: top-1 accuracy (an out-of-vocabulary answer is always wrong, as in the
  papers), overall and per question type.
* Count (TGIF-QA): mean squared error of the prediction rounded to an integer and clamped to the range of
  training answers, as TGIF-QA and ClipBERT report it.
* Multi-clip ("dense") inference aggregates the clips' scores by mean, max or log-sum-exp (ClipBERT).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from siasamrea.core.choices import TaskKind


def aggregate_clips(logits: torch.Tensor, how: str | None) -> torch.Tensor:
    """``[V, N, ...]`` clip scores -> ``[V, ...]``: the anchor's (``how=None``) or their mean / max / lse."""
    if how is None:
        return logits[:, 0]
    if how == "mean":
        return logits.mean(1)
    if how == "max":
        return logits.max(1).values
    if how == "lse":
        return torch.logsumexp(logits, dim=1)
    raise ValueError(f"unknown aggregation {how!r}")


def predictions(
    kind: str, scores: torch.Tensor, count_range: tuple[float, float] | None = None
) -> torch.Tensor:
    """Class / candidate index (argmax), or the rounded, clamped count."""
    if kind == TaskKind.COUNT.value:
        lo, hi = count_range if count_range else (float("-inf"), float("inf"))
        return scores.float().clamp(lo, hi).round()
    return scores.argmax(-1)


def task_metrics(kind: str, preds: list[float], targets: list[float], qtypes: list[str | None]) -> dict:
    """``{"acc": ...}`` or ``{"mse": ...}`` with ``per_type`` breakdown and the number of questions ``n``."""
    name = "mse" if kind == TaskKind.COUNT.value else "acc"

    def score(pairs) -> float:
        if kind == TaskKind.COUNT.value:
            return sum((p - t) ** 2 for p, t in pairs) / len(pairs)
        return sum(int(p == t) for p, t in pairs) / len(pairs)

    pairs = list(zip(preds, targets, strict=True))
    if not pairs:
        return {name: float("nan"), "n": 0, "per_type": {}}
    groups: dict[str, list] = defaultdict(list)
    for (p, t), q in zip(pairs, qtypes, strict=True):
        if q is not None:
            groups[q].append((p, t))
    return {
        name: score(pairs),
        "n": len(pairs),
        "per_type": {q: {name: score(v), "n": len(v)} for q, v in sorted(groups.items())},
    }


def main_metric(kind: str) -> tuple[str, bool]:
    """``(name, higher_is_better)`` of a task kind's headline metric."""
    return ("mse", False) if kind == TaskKind.COUNT.value else ("acc", True)
