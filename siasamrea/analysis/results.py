"""The runs of the active profile as one tidy table: one row per run × task × split.

Only the runs the active ``params.yaml`` profile lists are read (the ``pretrain``, ``finetune``,
``ablations`` and ``budget`` sections: datasets × variants × seeds), at the paths
:mod:`siasamrea.pipeline.stages` gives them. ``runs/`` is never globbed: a run left over from another profile
or an earlier variant list must not slip into a table. A listed run without ``metrics.json`` is reported as
missing (``Results.missing``), never silently dropped.

Columns of ``Results.df``: ``section, dataset, variant, seed, task, split, metric, best, best_epoch, last,
last_epoch, at_best_val, at_best_val_epoch, epochs, num_clips, train_seconds, run_dir``. Metric values are
as the engine writes them (accuracy as a fraction, count as MSE).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from siasamrea.core.mapping import deep_merge
from siasamrea.core.variants import variant_rule
from siasamrea.pipeline import headline, stages

SECTIONS = ("pretrain", *stages.FINETUNE_SECTIONS, stages.SWEEP)

#: The split each dataset's headline number is reported on: the test sets, and "the public val set of
#: How2QA" (paper, Table 4) since How2QA's test set is hidden.
HEADLINE_SPLIT = headline.HEADLINE_SPLIT

COLUMNS = ["section", "dataset", "variant", "seed", "task", "split", "metric", "best", "best_epoch", "last",
           "last_epoch", "at_best_val", "at_best_val_epoch", "epochs", "num_clips", "train_seconds",
           "run_dir"]  # fmt: skip


@dataclass(frozen=True)
class RunRef:
    """One run the profile asks for."""

    section: str
    dataset: str
    variant: str
    seed: int
    path: str  # relative to the repository root


@dataclass
class Results:
    """The collected runs (``df``), the runs the profile lists (``expected``) and those without results."""

    df: pd.DataFrame
    expected: list[RunRef]
    missing: list[tuple[RunRef, str]] = field(default_factory=list)

    def missing_markdown(self) -> str:
        if not self.missing:
            return f"All {len(self.expected)} runs the profile lists have results."
        table = pd.DataFrame([{"run": f"`{ref.path}`", "reason": why} for ref, why in self.missing])
        return (f"**{len(self.missing)} of {len(self.expected)} runs the profile lists have no results** "
                f"(left out of every table):\n\n{table.to_markdown(index=False)}")  # fmt: skip


def _section_datasets(params: dict, section: str) -> list[str]:
    if section == "pretrain":
        return [params["pretrain"]["dataset"]]
    if section == stages.SWEEP:  # the sweep's "datasets" are its points
        return list(stages.sweep_points(params))
    datasets = params[section].get("datasets") or []
    return list(datasets) if isinstance(datasets, (list, tuple)) else list(datasets.keys())


def expected_runs(params: dict, sections: tuple[str, ...] = SECTIONS) -> list[RunRef]:
    """Every run the active profile lists, in params order (sections the profile lacks are skipped)."""
    out = []
    for section in sections:
        sec = params.get(section)
        if not sec or not sec.get("variants"):
            continue
        for ds in _section_datasets(params, section):
            for variant in sec["variants"]:
                for seed in sec.get("seeds", [0]):
                    path = (stages.pretrain_dir(variant, seed) if section == "pretrain"
                            else stages.finetune_dir(section, ds, variant, seed))  # fmt: skip
                    out.append(RunRef(section, ds, variant, int(seed), path))
    return out


def _value(entry: dict | None, metric: str) -> float:
    if not entry or entry.get(metric) is None:
        return float("nan")
    return float(entry[metric])


def run_rows(ref: RunRef, metrics: dict) -> list[dict]:
    """The tidy rows of one run's metrics.json."""
    rows = []
    for task, splits in metrics.get("best", {}).items():
        for split, best in splits.items():
            last = metrics.get("last", {}).get(task, {}).get(split) or {}
            metric = "mse" if "mse" in (best or last) else "acc"
            abv = (metrics.get("at_best_val") or {}).get(task, {}).get(split)
            rows.append({
                "section": ref.section, "dataset": ref.dataset, "variant": ref.variant, "seed": ref.seed,
                "task": task, "split": split, "metric": metric,
                "best": _value(best, metric), "best_epoch": (best or {}).get("epoch"),
                "last": _value(last, metric), "last_epoch": last.get("epoch"),
                "at_best_val": _value(abv, metric), "at_best_val_epoch": (abv or {}).get("epoch"),
                "epochs": metrics.get("epochs"), "num_clips": metrics.get("num_clips"),
                "train_seconds": metrics.get("train_seconds"), "run_dir": ref.path,
            })  # fmt: skip
    return rows


def collect(params: dict, root: str | Path = ".", sections: tuple[str, ...] = SECTIONS) -> Results:
    """Read the metrics of every run the profile lists (paths relative to ``root``, the repository root)."""
    expected = expected_runs(params, sections)
    rows, missing = [], []
    for ref in expected:
        path = Path(root) / ref.path / "metrics.json"
        if not path.is_file():
            missing.append((ref, "no metrics.json (not run yet, or failed)"))
            continue
        metrics = json.loads(path.read_text())
        if "skipped" in metrics:
            missing.append((ref, metrics["skipped"]))
            continue
        got = run_rows(ref, metrics)
        if not got:
            missing.append((ref, "metrics.json has no evaluation results"))
        rows += got
    return Results(pd.DataFrame(rows, columns=COLUMNS), expected, missing)


def headline_split(params: dict, dataset: str) -> str:
    """The split a dataset's headline number is reported on (see :data:`HEADLINE_SPLIT`)."""
    splits = params["data"]["datasets"].get(dataset, {}).get("eval_splits") or ["test"]
    want = HEADLINE_SPLIT.get(dataset, "test")
    return want if want in splits else splits[-1]


def variant_settings(params: dict, section: str, dataset: str, variant: str) -> dict:
    """The ``method`` and ``optim`` settings a variant trains with, resolved from params like
    :func:`siasamrea.pipeline.stages.finetune_config` (without building or validating a Config, so it works
    for runs that do not exist)."""
    base = {"method": params.get("method", {}), "optim": params.get("optim", {})}
    if section == "pretrain":
        cfg = deep_merge(base, params["pretrain"].get("config"))
    else:
        ft = params.get("finetune", {})
        cfg = deep_merge(base, ft.get("config"))
        cfg = deep_merge(cfg, (ft.get("datasets") or {}).get(dataset, {}).get("config"))
    return deep_merge(cfg, (params.get(section, {}).get("variants") or {}).get(variant))


def train_clips(settings: dict) -> int:
    """Clips per training video of a variant (:func:`siasamrea.core.variants.variant_rule`, as training)."""
    m = settings["method"]
    return variant_rule(m.get("variant", "siasamrea"), int(m.get("num_clips", 9))).train_clips


def by_seed(df: pd.DataFrame, value: str = "best", **where) -> dict[int, float]:
    """``{seed: value}`` of the rows matching ``where`` (column=value); NaNs left out."""
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    out = {}
    for seed, x in zip(sel["seed"], sel[value], strict=True):
        if x is not None and not (isinstance(x, float) and math.isnan(x)):
            out[int(seed)] = float(x)
    return out
