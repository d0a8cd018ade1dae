"""Headline metrics for DVC: a run's last-epoch number on its headline split, exported under ``metrics/``
(``dvc metrics show``, ``dvc exp show``), and the small tables the stage notebooks display."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def metrics_path(run_dir: str | Path) -> Path:
    """Where a run's headline metrics are exported for DVC: ``runs/x/y`` -> ``metrics/x/y.json`` (DVC
    metrics cannot live inside another output's directory)."""
    rel = Path(run_dir).relative_to("runs")
    return Path("metrics") / rel.parent / f"{rel.name}.json"


#: The split a dataset's headline number is reported on: the test sets, and How2QA's public val set.
HEADLINE_SPLIT = {"msvd-qa": "test", "msrvtt-qa": "test", "tgif-qa": "test", "activitynet-qa": "test",
                  "how2qa": "val"}  # fmt: skip


def headline_metrics(metrics: dict, digits: int | None = 2) -> dict:
    """A run's headline numbers for ``dvc metrics show`` / ``dvc exp show``: the last-epoch value on the
    headline split (accuracy in %, count as MSE).

    A single-task run gives ``{"acc": last, "best": best epoch's}`` (the best epoch on the reported split is
    the paper's protocol, kept beside the headline); a multi-task run (init, pretraining) the last value per
    task (``{"action": ..., "count_mse": ...}``), so the table keeps a few columns. The full metrics (every
    split and question type) stay in the run's ``metrics.json``: exporting them gave ``dvc exp show`` over
    1,800 columns. ``digits=None`` leaves the values unrounded (a mean of seeds rounds once, at the end)."""
    if "skipped" in metrics:
        return {}
    per_task = {}
    for task, splits in metrics.get("best", {}).items():
        split = HEADLINE_SPLIT.get(task, "test")
        split = split if split in splits else list(splits)[-1]
        best = splits[split] or {}
        last = (metrics.get("last", {}).get(task, {}) or {}).get(split) or {}
        name = "mse" if "mse" in (best or last) else "acc"
        scale = 100.0 if name == "acc" else 1.0
        value = lambda e, n=name, k=scale: (  # noqa: E731
            None if e.get(n) is None else e[n] * k if digits is None else round(e[n] * k, digits)
        )
        per_task[task] = (name, value(last), value(best))
    if len(per_task) == 1:
        name, last, best = next(iter(per_task.values()))
        return {name: last, "best": best}
    return {(t if name == "acc" else f"{t}_{name}"): last for t, (name, last, _) in per_task.items()}


def group_headline(runs: list[dict]) -> dict:
    """The seeds' mean of each headline number (:func:`headline_metrics`) and how many seeds there are."""
    heads = [h for h in (headline_metrics(r, digits=None) for r in runs) if h]
    if not heads:
        return {}
    out = {}
    for key in heads[0]:
        values = [h[key] for h in heads if h.get(key) is not None]
        out[key] = round(sum(values) / len(values), 2) if values else None
    return {**out, "seeds": len(heads)}


def export_metrics(run_dir: str | Path, runs: list[str | Path] | None = None) -> None:
    """Write headline metrics under ``metrics/`` for DVC: of one run, or (``runs``) the seeds' mean of a
    stage's runs, at the stage directory's path (:func:`metrics_path`)."""
    dst = metrics_path(run_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    metrics = [json.loads((Path(r) / "metrics.json").read_text()) for r in (runs or [run_dir])]
    dst.write_text(json.dumps(group_headline(metrics), indent=1) + "\n")


def metrics_markdown(metrics: dict) -> str:
    """A Markdown table of a run's best and last metrics per task and split."""
    if "skipped" in metrics:
        return f"*{metrics['skipped']}*"
    rows = []
    for task, splits in metrics["best"].items():
        for split, best in splits.items():
            last = metrics["last"][task][split]
            name = "mse" if "mse" in (best or last) else "acc"
            rows.append({"task": task, "split": split, "metric": name,
                         "best": f"{best[name]:.4f}" if best else "n/a",
                         "best epoch": (best or {}).get("epoch", ""),
                         "last": f"{last[name]:.4f}"})  # fmt: skip
    table = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
    return f"{table}\n\n{metrics['steps']} steps, {metrics['train_seconds']} s of training"


def split_table(summary: dict) -> list[dict]:
    """One row per dataset and split of the data stage's summary."""
    rows = []
    for ds, splits in summary["datasets"].items():
        for split, s in splits.items():
            rows.append({"dataset": ds, "split": split, "questions": s["questions"], "videos": s["videos"],
                         "answer_vocab": s.get("answer_vocab_size"), "oov": (s.get("vocab") or {}).get("oov"),
                         "skipped": s["skipped"]["total"]})  # fmt: skip
    return rows


def summarize_run(run_dir: str | Path) -> dict:
    """The headline numbers of a finished run (for notebooks to display)."""
    d = Path(run_dir)
    metrics = json.loads((d / "metrics.json").read_text())
    data = json.loads((d / "data.json").read_text())
    return {"best": metrics["best"], "last": metrics["last"], "train_seconds": metrics["train_seconds"],
            "data": data["train"]}  # fmt: skip
