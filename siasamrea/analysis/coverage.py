"""Accuracy where the anchor clip shows the evidence: is a task missed, or not recognised when shown?

A task near chance can be either: the anchor clip (the one clip the paper evaluates) rarely shows the
evidence, or it shows it and the model does not recognise it. This module splits a run's last-epoch
predictions by whether the anchor contains the question's core evidence
(:func:`siasamrea.training.evidence.clip_contains`, the rule of the instrument table and the mechanism
analysis) and scores each part. Count questions are scored by squared error, the others by accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siasamrea.training.evidence import clip_contains, load_evidence, lookup, run_config


@dataclass(frozen=True)
class Coverage:
    """One task of one run: how many questions, the share whose anchor shows the evidence, and the score
    (accuracy, or mean squared error for ``metric == "mse"``) on those and on the others (NaN if none)."""

    n: int
    covered: float
    metric: str
    on_covered: float
    on_missed: float


def _score(rows: list[dict], mask: np.ndarray, metric: str) -> float:
    picked = [r for r, m in zip(rows, mask, strict=True) if m]
    if not picked:
        return float("nan")
    if metric == "mse":
        return float(np.mean([(float(r["pred"]) - float(r["target"])) ** 2 for r in picked]))
    return float(np.mean([r["pred"] == r["target"] for r in picked]))


def anchor_shows(rows: list[dict], evidence: dict) -> np.ndarray:
    """``bool [len(rows)]``: does each prediction row's ``anchor`` clip contain its video's core evidence
    (a video without an evidence record: no)."""
    shown = [
        (ev := lookup(evidence, r["video_id"])) is not None and clip_contains(r["anchor"], ev) for r in rows
    ]
    return np.array(shown, dtype=bool)


def by_coverage(run_dir: str | Path, split: str = "test", which: str = "last") -> dict[str, Coverage]:
    """``{task: Coverage}`` for every task with predictions on ``split``
    (``predictions/<task>_<split>_<which>.json``). A question whose video has no evidence record counts as not
    covered (the synthetic sets record every video)."""
    run_dir = Path(run_dir)
    evidence = load_evidence(run_config(run_dir).data.evidence)
    out = {}
    for path in sorted((run_dir / "predictions").glob(f"*_{split}_{which}.json")):
        task = path.name.removesuffix(f"_{split}_{which}.json")
        data = json.loads(path.read_text())
        rows = data["rows"]
        if not rows:
            continue
        metric = "mse" if data.get("metric") == "mse" else "acc"
        covered = anchor_shows(rows, evidence)
        on, off = _score(rows, covered, metric), _score(rows, ~covered, metric)
        out[task] = Coverage(len(rows), float(covered.mean()), metric, on, off)
    return out
