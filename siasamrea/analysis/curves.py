"""Per-epoch headline accuracy of every training run, as one tidy file for ``dvc plots``.

``python -m siasamrea.analysis.curves`` (the ``curves`` stage) reads ``epochs.csv`` of every run the active
profile lists (init, pretraining, fine-tuning, ablations, budget; never a glob of ``runs/``) and writes
``metrics/curves.json``: one point per run × task × epoch with ``panel`` (section, dataset or task, split),
``variant``, ``seed``, ``epoch`` and ``acc`` (%, the headline split). ``.dvc/plots/variants.json`` draws one
panel per section and dataset with one colour per variant (thin lines: seeds; thick: their mean), so
``dvc plots show`` compares variants on the number the tables report. Count tasks (MSE) are left out.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from siasamrea.analysis.results import RunRef, expected_runs, headline_split
from siasamrea.pipeline import workspace
from siasamrea.pipeline.stages import init_dir, init_draws, init_seed

OUT = "metrics/curves.json"


def _refs(params: dict) -> list[RunRef]:
    refs = []
    init = params.get("init") or {}
    if init.get("enabled", True) and init.get("dataset"):  # every init draw, by its seed
        refs += [RunRef("init", init["dataset"], "init", init_seed(params, k), init_dir(k))
                 for k in range(init_draws(params))]  # fmt: skip
    return refs + expected_runs(params)


def curve_rows(params: dict, root: str | Path = ".") -> tuple[list[dict], list[str]]:
    """``(points, missing)``: the points of every listed run and the runs without an ``epochs.csv``."""
    rows, missing = [], []
    for ref in _refs(params):
        path = Path(root) / ref.path / "epochs.csv"
        if not path.is_file():
            missing.append(ref.path)
            continue
        with open(path, newline="") as f:
            table = list(csv.DictReader(f))
        for task in _tasks(table[0].keys() if table else []):
            split = headline_split(params, ref.dataset)
            col = f"{task}_{split}_acc"
            if table and col not in table[0]:
                missing.append(f"{ref.path} ({col})")
                continue
            where = task if ref.section in ("pretrain", "init") else ref.dataset
            panel = f"{ref.section}: {where} ({split})"
            for r in table:
                if r.get(col) not in (None, ""):
                    rows.append({"panel": panel, "variant": ref.variant, "seed": ref.seed,
                                 "epoch": int(r["epoch"]), "acc": round(100 * float(r[col]), 2)})  # fmt: skip
    return rows, missing


def _tasks(columns) -> list[str]:
    """Task names of an epochs.csv header (columns ``<task>_<split>_acc``; per-question-type columns and
    MSE columns are not headline accuracies)."""
    tasks = []
    for c in columns:
        parts = c.split("_")
        if len(parts) == 3 and parts[2] == "acc" and parts[0] not in tasks:
            tasks.append(parts[0])
    return tasks


def write(params: dict, root: str | Path = ".", out: str | Path = OUT) -> Path:
    rows, missing = curve_rows(params, root)
    if missing:
        print(f"curves: {len(missing)} listed runs have no epochs.csv: {', '.join(missing)}", file=sys.stderr)
    out = Path(root) / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"curves": rows}, indent=None, separators=(",", ":")) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m siasamrea.analysis.curves", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--params", default=workspace.PARAMS_FILE)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    path = write(workspace.load_params(args.params), ".", args.out)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
