"""The regime the paper's claim is about: gaps against anchor coverage and training-set size.

The claim is that siamese clips help when the anchor misses evidence that its neighbours hold. The sweep
(``sweep`` section, :func:`siasamrea.pipeline.stages.sweep_points`) fine-tunes the baseline, SiaSamRea and the
every-clip-supervised control at several evidence scales (the share of test questions whose anchor clip
shows the evidence moves from about 20% to about 90%) and several training-set sizes. The reference point
(scale 1, every training question) is the fine-tuning and ablation runs themselves.

For each point: the paired gaps over seeds (last epoch, headline split) of SiaSamRea − baseline and of the
positive controls (every clip supervised − baseline; multi-clip − anchor-only inference of the baseline
models, when their ``instrument.json`` exists), with the anchor coverage measured on that point's test set.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from siasamrea.analysis.results import Results, by_seed, headline_split
from siasamrea.analysis.stats import Summary, mean_ci, paired_diff
from siasamrea.analysis.tables import data_source, seeds_note
from siasamrea.pipeline import stages
from siasamrea.training.evidence import clip_contains, load_evidence, lookup, run_config

GAPS = (
    ("siasamrea", "baseline", "SiaSamRea − baseline"),
    ("stop_gradient", "baseline", "SiaSamRea, target detached − baseline"),
    ("all_clips", "baseline", "every clip supervised − baseline (control)"),
)
MULTI = "multi-clip − anchor-only inference (control)"
REFERENCE = "reference"


def _where(point: str, params: dict, variant: str) -> dict:
    """Where a (point, variant)'s runs are in the results: the sweep, or the reference runs."""
    ds = params[stages.SWEEP]["dataset"]
    if point != REFERENCE:
        return {"section": stages.SWEEP, "dataset": point, "variant": variant}
    section = "ablations" if variant not in (params["finetune"].get("variants") or {}) else "finetune"
    return {"section": section, "dataset": ds, "variant": variant}


def _run_dirs(results: Results, **where) -> dict[int, str]:
    df = results.df
    for k, v in where.items():
        df = df[df[k] == v]
    return {int(s): d for s, d in df[["seed", "run_dir"]].drop_duplicates().itertuples(index=False)}


def coverage(run_dir: str | Path, task: str, split: str) -> float:
    """Share of the run's evaluation questions whose anchor clip shows the core evidence."""
    cfg = run_config(run_dir)
    evidence = load_evidence(cfg.data.evidence)
    rows = json.loads((Path(run_dir) / "predictions" / f"{task}_{split}_last.json").read_text())["rows"]
    hits = [
        (ev := lookup(evidence, r["video_id"])) is not None and clip_contains(r["anchor"], ev) for r in rows
    ]
    return float(np.mean(hits))


def _multi_gap(results: Results, where: dict, task: str, split: str, root: Path) -> Summary:
    multi, anchor = {}, {}
    for seed, d in _run_dirs(results, **where).items():
        path = root / d / "instrument.json"
        if path.is_file():
            entry = json.loads(path.read_text())["sets"].get(f"{task}/{split}", {})
            if "multi_clip" in entry:
                multi[seed] = 100.0 * entry["multi_clip"]["metrics"]["acc"]
                anchor[seed] = 100.0 * entry["anchor"]["metrics"]["acc"]
    return paired_diff(multi, anchor)


def sweep_rows(params: dict, results: Results, root: str | Path = ".") -> list[dict]:
    """One row per point × gap: the axis values, the coverage and the gap (a :class:`Summary` in points)."""
    sw = params.get(stages.SWEEP)
    if not sw:
        return []
    ds, root = sw["dataset"], Path(root)
    split = headline_split(params, ds)
    points = {REFERENCE: {"evidence_scale": 1.0, "train_limit": None}}
    points.update(stages.sweep_points(params))
    rows = []
    for point, p in points.items():
        base_where = _where(point, params, "baseline")
        base_dirs = _run_dirs(results, **base_where)
        if not base_dirs:
            continue
        cov = coverage(root / next(iter(base_dirs.values())), ds, split)
        base_acc = by_seed(results.df, "last", **base_where, split=split)
        n_train = json.loads((root / next(iter(base_dirs.values())) / "data.json").read_text())
        common = {
            "point": point,
            "axis": "evidence" if "evidence_scale" in p and point != REFERENCE else
            "train size" if "train_limit" in p and point != REFERENCE else REFERENCE,
            "evidence_scale": p.get("evidence_scale", 1.0),
            "train_questions": n_train.get("train", {}).get(ds, {}).get("used"),
            "anchor_coverage": 100.0 * cov,
            "baseline": mean_ci({k: 100.0 * v for k, v in base_acc.items()}),
        }  # fmt: skip
        for a, b, label in GAPS:
            va = by_seed(results.df, "last", **_where(point, params, a), split=split)
            if va:
                vb = base_acc if b == "baseline" else by_seed(results.df, "last", **_where(point, params, b))
                gap = paired_diff({k: 100 * v for k, v in va.items()}, {k: 100 * v for k, v in vb.items()})
                rows.append({**common, "gap": label, "value": gap})
        multi = _multi_gap(results, base_where, ds, split, root)
        if multi.n:
            rows.append({**common, "gap": MULTI, "value": multi})
    return rows


def to_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([
        {"point": r["point"], "axis": r["axis"], "evidence scale": r["evidence_scale"],
         "training questions": r["train_questions"], "anchor coverage (%)": round(r["anchor_coverage"], 1),
         "baseline (%)": r["baseline"].format(digits=1), "gap": r["gap"], "n": r["value"].n,
         "gap (points)": r["value"].format(digits=1, sign=True)}
        for r in rows
    ])  # fmt: skip


def to_markdown(params: dict, rows: list[dict]) -> str:
    ds = (params.get(stages.SWEEP) or {}).get("dataset", "")
    head = [
        f"**{data_source(params, [ds])}**",
        "",
        "Paired gaps over seeds, last epoch, headline split (points, ± 95% t-interval half-width). Anchor "
        "coverage: share of test questions whose anchor clip shows the core evidence. The reference point is "
        "the fine-tuning and ablation runs (evidence scale 1, every training question)."
        + f" {seeds_note(params)}".rstrip(),
        "",
    ]
    if not rows:
        return "\n".join([*head, "No sweep results yet."]) + "\n"
    return "\n".join([*head, to_frame(rows).to_markdown(index=False)]) + "\n"


COLORS = {GAPS[0][2]: "#1f77b4", GAPS[1][2]: "#9467bd", GAPS[2][2]: "#2ca02c", MULTI: "#ff7f0e"}


def plot(params: dict, rows: list[dict]):
    """Two panels: the gaps against anchor coverage (evidence axis) and against training questions."""
    # constrained layout, the legend below the panels: title, panels and legend take the room they need
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    panels = (("anchor_coverage", ("evidence", REFERENCE), "anchor coverage of the test questions (%)"),
              ("train_questions", ("train size", REFERENCE), "training questions"))  # fmt: skip
    for ax, (x, axes_kept, xlabel) in zip(axes, panels, strict=True):
        values = sorted({r[x] for r in rows if r["axis"] in axes_kept})
        single = len(values) < 2  # one point on this axis: the gaps side by side around it, one tick
        for k, (label, color) in enumerate(COLORS.items()):
            pts = sorted((r[x], r["value"]) for r in rows if r["gap"] == label and r["axis"] in axes_kept)
            if not pts:
                continue
            xs = np.array([p[0] for p in pts], dtype=float)
            if single:
                xs, step = np.zeros(len(xs)), 0.15
            else:
                step = 0.8 if x == "anchor_coverage" else 0.02 * (xs.max() - xs.min())
            offset = (k - 1.5) * step  # side by side, so the intervals do not hide each other
            ys = [p[1].mean for p in pts]
            err = [p[1].half if p[1].has_interval else 0.0 for p in pts]
            ax.errorbar(xs + offset, ys, yerr=err, marker="o", capsize=3, color=color, label=label)
        ax.axhline(0, color="black", lw=0.8)
        if not single:
            ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        if single and values:  # only the reference point on this axis
            ax.set_xticks([0], [f"{values[0]:.0f}"])
            ax.set_xlim(-1, 1)
            ax.text(0.5, 0.03, "one point only: this axis is in profiles/full.yaml", transform=ax.transAxes,
                    ha="center", va="bottom", fontsize=8, color="#555555")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("gap (points)")
    axes[0].set_title("against evidence coverage (full training set)", fontsize=9)
    axes[1].set_title("against training-set size (evidence scale 1)", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
    ds = (params.get(stages.SWEEP) or {}).get("dataset", "")
    title = textwrap.fill(f"Where the gap comes from — {data_source(params, [ds])}", 140)
    fig.suptitle(title, fontsize=8)
    return fig


def write(params: dict, results: Results, out: str | Path, root: str | Path = ".") -> list[dict]:
    """``regime.md``, ``regime.png`` and ``regime.json`` in ``out``; returns the rows."""
    out = Path(out)
    rows = sweep_rows(params, results, root)
    (out / "regime.md").write_text(to_markdown(params, rows))
    fig = plot(params, rows)
    fig.savefig(out / "regime.png", dpi=130)
    plt.close(fig)
    record = [{**{k: v for k, v in r.items() if not isinstance(v, Summary)},
               **{k: v.as_dict() for k, v in r.items() if isinstance(v, Summary)}} for r in rows]  # fmt: skip
    (out / "regime.json").write_text(json.dumps(record, indent=1, default=float))
    return rows
