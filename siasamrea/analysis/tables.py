"""The paper's tables from our runs: Markdown and a PNG each, with the paper's number beside ours.

Every cell is the mean over seeds ± the 95% Student-t half-width (n seeds beside it; one seed: no
interval, and the table says so). The headline number is the last-epoch metric on the dataset's headline
split (test; How2QA: val). The paper's protocol, the best epoch on that same split, selects on the split it
reports and is given beside it, as is, where a validation split exists, the test metric at the best
validation epoch. Paired differences between variants (same seeds, last epoch) come with their own interval.

Each table names its data at the top: on the embedded synthetic benchmark the numbers measure the method
on a stand-in and are not comparable to the paper's in absolute terms.

``build_tables(params, results)`` → list of :class:`Table`; ``write_tables(tables, out_dir)`` writes
``<key>.md`` and ``<key>.png`` per table and ``summary.json`` with every number.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.lines
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from siasamrea.analysis import count_ceiling, coverage, floors, paper
from siasamrea.analysis.results import Results, by_seed, headline_split, train_clips, variant_settings
from siasamrea.analysis.stats import (
    TARGET_HALF_WIDTH,
    Summary,
    empty,
    mean_ci,
    paired_diff,
    seeds_needed_text,
)
from siasamrea.pipeline.stages import init_draws
from siasamrea.synthetic.generator import DOMAINS
from siasamrea.training.evidence import run_config

#: Names of the real datasets the synthetic sets stand in for.
REAL_NAMES = {
    "msvd-qa": "MSVD-QA",
    "msrvtt-qa": "MSRVTT-QA",
    "activitynet-qa": "ActivityNet-QA",
    "how2qa": "How2QA",
    "tgif-qa": "TGIF-QA",
}
TASK_NAMES = {"action": "Action", "transition": "Trans.", "frameqa": "FrameQA", "count": "Count (MSE)"}


def data_source(params: dict, datasets: list[str]) -> str:
    """One line naming the data the numbers come from."""
    names = ", ".join(REAL_NAMES.get(d, d) for d in datasets)
    if params["data"].get("source", "synthetic") == "real":
        return f"Data: {names} (real data, profile {params['name']!r})."
    like = ", ".join(f"{REAL_NAMES.get(d, d)}-like" for d in datasets)
    return (
        f"Data: embedded synthetic benchmark, {like} set{'s' if len(datasets) > 1 else ''} — not {names}; "
        f"numbers are not comparable to the paper's in absolute terms (profile {params['name']!r})."
    )


def seeds_note(params: dict) -> str:
    """What the seeds' intervals cover: the fine-tuning seed, and the ``init`` draw when seeds have their own
    (seed ``s`` starts from draw ``s mod init.draws``); empty without an ``init`` stage."""
    if not (params.get("init") or {}).get("enabled", True):
        return ""
    k = init_draws(params)
    if k == 1:
        return "Every seed starts from the one `init` draw: the intervals leave its randomness out."
    return (
        f"Seed s starts from `init` draw s mod {k} (grounding and `init` run re-drawn), so the intervals "
        "include the initialisation's randomness; both sides of a paired difference share the draw."
    )


# -- the data model ----------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One cell of a table: a method (row) on a dataset/task (column)."""

    row: str  # what the reader sees ("w/ SKR")
    section: str
    variant: str
    column: str  # dataset, or TGIF-QA task
    dataset: str
    task: str
    split: str
    metric: str  # "acc" or "mse"
    best: Summary = field(default_factory=empty)
    last: Summary = field(default_factory=empty)
    at_best_val: Summary = field(default_factory=empty)
    paper: float | None = None
    paper_label: str = ""  # what the paper number is, when it is not this row's method
    status: str = "ok"  # "ok" or why there is no number

    @property
    def scale(self) -> float:
        return 100.0 if self.metric == "acc" else 1.0

    @property
    def digits(self) -> int:
        return 1 if self.metric == "acc" else 2


@dataclass
class Contrast:
    """A paired difference ``a − b`` (same seeds) on one column."""

    label: str
    column: str
    metric: str
    diff: Summary
    paper: float | None = None

    @property
    def scale(self) -> float:
        return 100.0 if self.metric == "acc" else 1.0


@dataclass
class Table:
    key: str  # file stem in figures/
    title: str
    source: str
    columns: list[str]
    entries: list[Entry]
    contrasts: list[Contrast] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # per column: reference levels drawn across its panel, ``(label, value in the units shown)``
    references: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


# -- filling entries from the results ----------------------------------------------------------------------
#: How a "not run" reason says that the full profile runs the row (panels shorten such reasons).
IN_FULL = ": profiles/full.yaml has it"


def _not_run_reason(params: dict, section: str, dataset: str, variant: str) -> str | None:
    """Why (section, dataset, variant) has no runs in this profile; None if the profile lists it."""
    if dataset not in params["data"]["datasets"]:
        if params["data"].get("source", "synthetic") == "synthetic":
            if dataset in DOMAINS:  # the generator writes it; this profile does not
                return f"not run ({dataset} not in data.datasets of this profile{IN_FULL})"
            return "not run (no synthetic counterpart)"
        return "not run (dataset not in this profile)"
    sec = params.get(section) or {}
    datasets = sec.get("datasets") or ([sec["dataset"]] if "dataset" in sec else [])
    if dataset not in datasets:
        return f"not run ({dataset} not in {section}.datasets of this profile)"
    if variant not in (sec.get("variants") or {}):
        # every synthetic variant the tables ask for is in the full profile (tests/test_analysis.py checks)
        full = params.get("name") != "full" and params["data"].get("source", "synthetic") == "synthetic"
        return f"not run (variant {variant!r} not in {section}.variants of this profile" + (
            f"{IN_FULL})" if full else ")"
        )
    return None


def fill(entry: Entry, params: dict, results: Results) -> Entry:
    """Summaries over seeds of one entry (or its ``status`` when there is nothing to summarise)."""
    reason = _not_run_reason(params, entry.section, entry.dataset, entry.variant)
    if reason:
        entry.status = reason
        return entry
    where = dict(
        section=entry.section,
        dataset=entry.dataset,
        variant=entry.variant,
        task=entry.task,
        split=entry.split,
    )
    df = results.df
    entry.best = mean_ci(by_seed(df, "best", **where))
    entry.last = mean_ci(by_seed(df, "last", **where))
    entry.at_best_val = mean_ci(by_seed(df, "at_best_val", **where))
    if entry.last.n == 0:
        entry.status = "missing (listed, no results yet)"
    return entry


def contrast(label: str, a: Entry, b: Entry, results: Results, paper_diff: float | None = None) -> Contrast:
    """``a − b`` on the seeds both have (last-epoch metric: the headline; best-on-test is selection on the
    very split it reports, which inflates small differences)."""
    da, db = (
        by_seed(
            results.df,
            "last",
            section=e.section,
            dataset=e.dataset,
            variant=e.variant,
            task=e.task,
            split=e.split,
        )  # fmt: skip
        for e in (a, b)
    )
    if paper_diff is None and a.paper is not None and b.paper is not None and not a.paper_label:
        paper_diff = a.paper - b.paper if not b.paper_label else None
    return Contrast(label, a.column, a.metric, paired_diff(da, db), paper_diff)


def _entry(
    params, results, row, section, variant, dataset, paper_value=None, paper_label="", task=None, column=None
) -> Entry:
    task = task or dataset
    split = headline_split(params, dataset)
    metric = "mse" if task == "count" else "acc"
    e = Entry(
        row,
        section,
        variant,
        column or dataset,
        dataset,
        task,
        split,
        metric,
        paper=paper_value,
        paper_label=paper_label,
    )
    return fill(e, params, results)


def _find(entries: list[Entry], variant: str, column: str, section: str | None = None) -> Entry | None:
    for e in entries:
        if e.variant == variant and e.column == column and (section is None or e.section == section):
            return e
    return None


def _contrasts(entries, pairs, columns, results) -> list[Contrast]:
    """Paired differences for ``pairs`` of (label, (section_a, variant_a), (section_b, variant_b))."""
    out = []
    for col in columns:
        for label, (sa, va), (sb, vb) in pairs:
            a, b = _find(entries, va, col, sa), _find(entries, vb, col, sb)
            if a is not None and b is not None and a.status == "ok" and b.status == "ok":
                out.append(contrast(label, a, b, results))
    return out


def _method_label(params: dict, section: str, dataset: str, variant: str) -> str:
    """Describe a variant by what it changes (e.g. ``stop_gradient=target, weight_objective=gt``)."""
    over = ((params.get(section) or {}).get("variants") or {}).get(variant) or {}
    m = dict(over.get("method", {}))
    m.pop("variant", None)
    o = over.get("optim", {})
    bits = [f"{k}={v}" for k, v in {**m, **o}.items()]
    return ", ".join(bits)


# -- the tables --------------------------------------------------------------------------------------------
TABLE1_DATASETS = ["how2qa", "msvd-qa"]
TABLE1_ROWS = [("baseline", "baseline"), ("w/ SKR", "skr"), ("w/ SKG + SKR", "siasamrea")]


def table1(params: dict, results: Results) -> Table:
    entries = [
        _entry(params, results, label, "finetune", v, ds, paper.TABLE1[v][ds])
        for ds in TABLE1_DATASETS
        for label, v in TABLE1_ROWS
    ]
    pairs = [
        ("w/ SKR − baseline", ("finetune", "skr"), ("finetune", "baseline")),
        ("w/ SKG+SKR − baseline", ("finetune", "siasamrea"), ("finetune", "baseline")),
        ("w/ SKG+SKR − w/ SKR", ("finetune", "siasamrea"), ("finetune", "skr")),
    ]
    return Table(
        "table1",
        "Table 1: baseline / w/ SKR / w/ SKG+SKR",
        data_source(params, TABLE1_DATASETS),
        TABLE1_DATASETS,
        entries,
        _contrasts(entries, pairs, TABLE1_DATASETS, results),
    )


TABLE2_VARIANTS = ["n2", "n3", "n5", "siasamrea", "n13"]


def _table2_section(params: dict, variant: str) -> str | None:
    """Where a profile lists a Table 2 variant: ``finetune`` (every fine-tuning dataset) or ``ablations``
    (the ablation datasets only, as the embedded default does to save time); None if it is not run."""
    for section in ("finetune", "ablations"):
        if variant in ((params.get(section) or {}).get("variants") or {}):
            return section
    return None


def table2(params: dict, results: Results) -> Table:
    entries, notes = [], []
    where = {v: _table2_section(params, v) for v in TABLE2_VARIANTS}
    where = {v: sec for v, sec in where.items() if sec is not None}

    def clips(v: str, ds: str) -> int:
        return train_clips(variant_settings(params, where[v], ds, v)) - 1

    k_default = clips("siasamrea", TABLE1_DATASETS[0]) if "siasamrea" in where else None
    for ds in TABLE1_DATASETS:
        for k, v in sorted((clips(v, ds), v) for v in where):
            label = f"{k} siamese clip{'s' if k != 1 else ''} (N={k + 1})"
            entries.append(_entry(params, results, label, where[v], v, ds, paper.TABLE2[ds].get(k)))
    ks = sorted({int(e.row.split()[0]) for e in entries})
    missing = [k for k in paper.TABLE2["msvd-qa"] if k not in ks]
    if missing:
        notes.append(f"Siamese-clip counts the paper has but this profile does not run: {missing}.")
    sia = [e for e in entries if e.variant == "siasamrea"]
    if sia and not sia[0].row.startswith("8 "):
        notes.append(
            f"This profile's default SiaSamRea uses {sia[0].row.split(' (')[0]} (the paper: 8); the "
            "paper column is matched by the number of siamese clips."
        )
    if any(sec == "ablations" for sec in where.values()):
        notes.append(
            "In this profile the rows other than the default's are ablation runs (ablations.datasets only)."
        )
    pairs = [
        (
            f"{clips(v, TABLE1_DATASETS[0])} siamese − default ({k_default})",
            (sec, v),
            ("finetune", "siasamrea"),
        )
        for v, sec in where.items()
        if v != "siasamrea" and k_default is not None
    ]
    return Table(
        "table2",
        "Table 2: number of siamese clips",
        data_source(params, TABLE1_DATASETS),
        TABLE1_DATASETS,
        entries,
        _contrasts(entries, pairs, TABLE1_DATASETS, results),
        notes,
    )


def _ablation_datasets(params: dict) -> list[str]:
    return list((params.get("ablations") or {}).get("datasets") or ["msvd-qa"])


def _paper_if(ds: str, value: float | None) -> float | None:
    """The paper's ablations are on MSVD-QA only."""
    return value if ds == "msvd-qa" else None


def w1_w2(params: dict, results: Results) -> Table:
    datasets = _ablation_datasets(params)
    rows = [
        ("SiaSamRea (learned W1, W2)", "finetune", "siasamrea", "full"),
        ("w/o W1", "ablations", "no_w1", "no_w1"),
        ("w/o W2", "ablations", "no_w2", "no_w2"),
        ("w/o W1, W2 (uniform)", "ablations", "no_w1_w2", "no_w1_w2"),
    ]
    entries = [
        _entry(params, results, label, sec, v, ds, _paper_if(ds, paper.W1_W2[key]))
        for ds in datasets
        for label, sec, v, key in rows
    ]
    pairs = [(f"{label} − SiaSamRea", (sec, v), ("finetune", "siasamrea")) for label, sec, v, _ in rows[1:]]
    return Table(
        "w1_w2",
        "Sec. 4.3: the effect of W1 and W2 (Eq. 5)",
        data_source(params, datasets),
        datasets,
        entries,
        _contrasts(entries, pairs, datasets, results),
    )


def anchor_copies(params: dict, results: Results) -> Table:
    datasets = _ablation_datasets(params)
    rows = [
        ("baseline", "finetune", "baseline"),
        ("anchor copies", "ablations", "anchor_copies"),
        ("SiaSamRea (siamese clips)", "finetune", "siasamrea"),
    ]
    entries = [
        _entry(params, results, label, sec, v, ds, _paper_if(ds, paper.ANCHOR_COPIES[v]))
        for ds in datasets
        for label, sec, v in rows
    ]
    pairs = [
        ("anchor copies − baseline", ("ablations", "anchor_copies"), ("finetune", "baseline")),
        ("SiaSamRea − baseline", ("finetune", "siasamrea"), ("finetune", "baseline")),
        ("SiaSamRea − anchor copies", ("finetune", "siasamrea"), ("ablations", "anchor_copies")),
    ]
    notes = [
        "Anchor copies: the siamese clips replaced by copies of the anchor (they differ only through "
        "dropout); the paper used 8 copies, this profile "
        f"{train_clips(variant_settings(params, 'ablations', datasets[0], 'anchor_copies')) - 1}."
    ]
    return Table(
        "anchor_copies",
        "Sec. 4.3: siamese clips vs copies of the anchor clip",
        data_source(params, datasets),
        datasets,
        entries,
        _contrasts(entries, pairs, datasets, results),
        notes,
    )


def clip_budget(params: dict, results: Results) -> Table:
    """docs/method.md: the same clips without the reasoning separates "more clips" from "reasoning"."""
    datasets = _ablation_datasets(params)
    rows = [
        ("baseline (anchor only, L_gt)", "finetune", "baseline", paper.TABLE1["baseline"]),
        ("all clips supervised, no reasoning", "ablations", "all_clips", None),
        ("SiaSamRea", "finetune", "siasamrea", paper.TABLE1["siasamrea"]),
    ]
    entries = [
        _entry(params, results, label, sec, v, ds, (p or {}).get(ds))
        for ds in datasets
        for label, sec, v, p in rows
    ]
    pairs = [
        ("all clips − baseline", ("ablations", "all_clips"), ("finetune", "baseline")),
        ("SiaSamRea − baseline", ("finetune", "siasamrea"), ("finetune", "baseline")),
        ("SiaSamRea − all clips", ("finetune", "siasamrea"), ("ablations", "all_clips")),
    ]
    notes = [
        "Control the paper lacks (docs/method.md): the same N siamese clips per video, every clip supervised "
        "by L_gt, no L_siamese. The paper has no number for it."
    ]
    return Table(
        "clip_budget",
        "Control: equal clip budget without reasoning",
        data_source(params, datasets),
        datasets,
        entries,
        _contrasts(entries, pairs, datasets, results),
        notes,
    )


OPEN_POINT_VARIANTS = ["stop_gradient", "stop_gradient_w_gt", "gt_all_clips"]


def open_points(params: dict, results: Results) -> Table:
    datasets = _ablation_datasets(params)
    m = params.get("method", {})
    default = (
        f"SiaSamRea default (stop_gradient={m.get('stop_gradient')}, "
        f"weight_objective={m.get('weight_objective')}, gt_on={m.get('gt_on')})"
    )
    entries = []
    for ds in datasets:
        entries.append(
            _entry(
                params,
                results,
                default,
                "finetune",
                "siasamrea",
                ds,
                _paper_if(ds, paper.TABLE1["siasamrea"].get(ds)),
            )
        )
        for v in OPEN_POINT_VARIANTS:
            label = (
                f"{v} ({_method_label(params, 'ablations', ds, v)})"
                if _not_run_reason(params, "ablations", ds, v) is None
                else v
            )
            entries.append(_entry(params, results, label, "ablations", v, ds))
    pairs = [(f"{v} − default", ("ablations", v), ("finetune", "siasamrea")) for v in OPEN_POINT_VARIANTS]
    notes = [
        "Open points the paper leaves unsettled (docs/method.md): detaching the soft-label target, what "
        "trains W1/W2 then (weight_objective=gt: cross-entropy of Q against the ground truth), and L_gt "
        "on every clip. The paper reports only its own reading (the default row)."
    ]
    return Table(
        "open_points",
        "Open points of the method (docs/method.md)",
        data_source(params, datasets),
        datasets,
        entries,
        _contrasts(entries, pairs, datasets, results),
        notes,
    )


TABLE3_4_DATASETS = ["msrvtt-qa", "msvd-qa", "activitynet-qa", "how2qa"]


def _best_prior(dataset: str) -> tuple[str, float]:
    prior = {m: v[dataset] for m, v in paper.TABLE3_4.items() if m != "siasamrea" and dataset in v}
    name = max(prior, key=prior.get)
    return name, prior[name]


def table3_4(params: dict, results: Results) -> Table:
    entries, pairs = [], [("SiaSamRea − baseline", ("finetune", "siasamrea"), ("finetune", "baseline"))]
    for ds in TABLE3_4_DATASETS:
        name, value = _best_prior(ds)
        entries.append(
            _entry(params, results, "SiaSamRea", "finetune", "siasamrea", ds, paper.TABLE3_4["siasamrea"][ds])
        )
        entries.append(
            _entry(
                params,
                results,
                "baseline",
                "finetune",
                "baseline",
                ds,
                value,
                f"best prior in the paper: {name}",
            )
        )
    ran = [ds for ds in TABLE3_4_DATASETS if _not_run_reason(params, "finetune", ds, "siasamrea") is None]
    notes = [
        "Paper column of the baseline rows: the best prior method the paper lists (Tables 3–4), not a "
        "baseline of the paper's own; ClipBERT-style sparse training is our baseline.",
        "How2QA: the public val set, as in the paper's Table 4.",
    ]
    return Table(
        "table3_4",
        "Tables 3–4: per-dataset comparison",
        data_source(params, ran or ["msvd-qa"]),
        TABLE3_4_DATASETS,
        entries,
        _contrasts(entries, pairs, TABLE3_4_DATASETS, results),
        notes,
    )


TABLE5_TASKS = ["action", "transition", "frameqa", "count"]


def _pretrain_runs(results: Results, dataset: str) -> list[str]:
    """The run folders of the pretraining runs on ``dataset``, in the results' order."""
    df = results.df
    if not len(df):
        return []
    return list(df[(df["section"] == "pretrain") & (df["dataset"] == dataset)]["run_dir"].unique())


def _table5_floors(results: Results, dataset: str) -> dict[str, tuple[str, float]]:
    """The floors of Table 5's tasks (siasamrea.analysis.floors), from one pretraining run's questions:
    ``{task: ("acc", prior) | ("mse", the training mean's MSE)}``; empty without a run."""
    runs = _pretrain_runs(results, dataset)
    if not runs or not (Path(runs[0]) / "config.yaml").is_file():
        return {}
    found = floors.task_floors(runs[0], "test")
    return {t: found[t] for t in TABLE5_TASKS if t in found}


def _floor_label(metric: str) -> str:
    return "MSE of the training mean" if metric == "mse" else "chance / answer prior"


def _table5_count_ceiling(results: Results, dataset: str) -> dict | None:
    """The count task's ceilings (siasamrea.analysis.count_ceiling) on one pretraining run's test anchors
    (every run of the section evaluates the same anchors), with the note that states them
    (``{"note": ..., **ceilings}``); None without count predictions or evidence."""
    for run_dir in _pretrain_runs(results, dataset):
        run = Path(run_dir)
        if not all((run / f).is_file() for f in ("predictions/count_test_last.json", "config.yaml")):
            continue
        evidence = run_config(run).data.evidence
        if not evidence or not Path(evidence).is_file():
            return None
        c = count_ceiling.count_ceilings(run)
        parts = "; ".join(
            f"{c[r]:.2f} " + count_ceiling.READING_TEXT[r].format(clips=c["num_clips"])
            for r in count_ceiling.READINGS
        )
        note = (
            "Count (MSE), the least any model could score from what its clips show (siasamrea.analysis."
            f"count_ceiling, on these {c['n']} test questions' anchors): {parts}."
        )
        return {"note": note, **c}
    return None


def _score_text(values: list[float], metric: str) -> str:
    """Mean of the seeds' scores: an MSE as is, an accuracy in %."""
    x = float(np.nanmean(values))
    return f"{x:.2f}" if metric == "mse" else f"{100 * x:.1f}%"


def _table5_coverage(results: Results, dataset: str) -> list[str]:
    """Per task: the share of test questions whose anchor clip shows the evidence, and each variant's score
    there and elsewhere (mean over its seeds; siasamrea.analysis.coverage)."""
    df = results.df
    if not len(df):
        return []
    runs = df[(df["section"] == "pretrain") & (df["dataset"] == dataset)][["variant", "run_dir"]]
    per_variant: dict[str, list[dict]] = {}
    for variant, run_dir in runs.drop_duplicates().itertuples(index=False):
        if (Path(run_dir) / "predictions").is_dir() and (Path(run_dir) / "config.yaml").is_file():
            per_variant.setdefault(variant, []).append(coverage.by_coverage(run_dir))
    out = []
    for task in TABLE5_TASKS:
        found = {v: cs for v, rs in sorted(per_variant.items()) if (cs := [r[task] for r in rs if task in r])}
        if not found:
            continue
        every = [c for cs in found.values() for c in cs]
        metric = every[0].metric
        parts = [
            f"{v} {_score_text([c.on_covered for c in cs], metric)} there, "
            f"{_score_text([c.on_missed for c in cs], metric)} elsewhere"
            for v, cs in found.items()
        ]
        share = 100 * np.mean([c.covered for c in every])
        head = f"{TASK_NAMES[task]}: the anchor shows it for {share:.1f}% of {every[0].n}; "
        out.append(head + ", ".join(parts))
    return out


def table5(params: dict, results: Results) -> Table:
    ds = (params.get("pretrain") or {}).get("dataset", "tgif-qa")
    entries = []
    for task in TABLE5_TASKS:
        entries.append(
            _entry(
                params,
                results,
                "SiaSamRea",
                "pretrain",
                "siasamrea",
                ds,
                paper.TABLE5["siasamrea"][task],
                task=task,
                column=task,
            )
        )
        entries.append(
            _entry(
                params,
                results,
                "baseline",
                "pretrain",
                "baseline",
                ds,
                paper.TABLE5["ClipBERT*"][task],
                "ClipBERT*",
                task=task,
                column=task,
            )
        )
    pairs = [("SiaSamRea − baseline", ("pretrain", "siasamrea"), ("pretrain", "baseline"))]
    contrasts = _contrasts(entries, pairs, TABLE5_TASKS, results)
    for c in contrasts:  # ClipBERT* is the paper's counterpart of our baseline: its difference is comparable
        c.paper = paper.TABLE5["siasamrea"][c.column] - paper.TABLE5["ClipBERT*"][c.column]
    notes = [
        "From the TGIF-QA pretraining runs (the paper does no extra fine-tuning on TGIF-QA). Count: mean "
        "squared error, lower is better.",
        "Paper column of the baseline rows: ClipBERT*, ClipBERT "
        "fine-tuned on the same 40-frame-filtered data.",
    ]
    if _not_run_reason(params, "pretrain", ds, "siasamrea"):
        notes.append(
            "SiaSamRea's TGIF-QA-like pretraining is run by profiles/full.yaml; the default runs the "
            'baseline only, to check that the temporal tasks are learned (README, "Profiles").'
        )
    references: dict[str, list[tuple[str, float]]] = {}
    floor = _table5_floors(results, ds)
    if floor:
        parts = [f"{TASK_NAMES[t]} {_floor_label(m)} " + (f"{v:.2f}" if m == "mse" else f"{100 * v:.1f}%")
                 for t, (m, v) in floor.items()]  # fmt: skip
        notes.append("Without looking at the video (same test questions, the runs' filtered training set): "
                     + "; ".join(parts) + ".")  # fmt: skip
        for t, (m, v) in floor.items():
            references[t] = [(f"this set: {_floor_label(m)}", v if m == "mse" else 100 * v)]
    ceiling = _table5_count_ceiling(results, ds)
    if ceiling:
        notes.append(ceiling["note"])
        references.setdefault("count", []).append(
            ("least MSE from the averaged anchor", ceiling["averaged anchor"])
        )
    shown = _table5_coverage(results, ds)
    if shown:
        notes.append("Where the anchor clip shows the evidence (core frames), last epoch, mean over seeds: "
                     + " | ".join(shown) + ".")  # fmt: skip
    source = data_source(params, [ds])
    return Table("table5", "Table 5: TGIF-QA", source, TABLE5_TASKS, entries, contrasts, notes, references)


TABLE_BUILDERS = (table1, table2, w1_w2, anchor_copies, clip_budget, open_points, table3_4, table5)


def build_tables(params: dict, results: Results) -> list[Table]:
    """Every table of the paper (and the controls), from the collected runs."""
    tables = [build(params, results) for build in TABLE_BUILDERS]
    note = seeds_note(params)
    for t in tables:
        if note:
            t.notes.append(note)
    return tables


# -- Markdown ---------------------------------------------------------------------------------------------
def _paper_cell(e: Entry) -> str:
    if e.paper is None:
        return "—"
    text = f"{e.paper:.1f}" if e.metric == "acc" else f"{e.paper:.2f}"
    return f"{text} ({e.paper_label})" if e.paper_label else text


def _cell(s: Summary, e: Entry) -> str:
    return s.format(e.scale, e.digits)


def _seeds_needed(c: Contrast) -> str:
    """The seeds a ±TARGET_HALF_WIDTH-point interval would need at the contrast's spread ("—" for MSEs)."""
    return seeds_needed_text(c.diff, c.scale) if c.metric == "acc" else "—"


def to_markdown(t: Table) -> str:
    unit = (
        "accuracy in % (Count: MSE)" if any(e.metric == "mse" for e in t.entries) else "top-1 accuracy in %"
    )
    lines = [
        f"### {t.title}",
        "",
        f"**{t.source}**",
        "",
        f"Mean over seeds ± 95% t-interval half-width ({unit}); headline: the last epoch. The paper's "
        "protocol (best epoch on the split it reports) selects on the test split and is shown only beside "
        "it; n = seeds. Paper: single runs.",
        "",
        "| method | dataset / task | split | n | ours (last epoch) | paper | "
        "ours (best epoch, paper protocol) | ours (at best val) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in t.entries:
        col = TASK_NAMES.get(e.column, REAL_NAMES.get(e.column, e.column))
        if e.status != "ok":
            lines.append(f"| {e.row} | {col} | {e.split} | 0 | *{e.status}* | {_paper_cell(e)} | | |")
            continue
        abv = (
            _cell(e.at_best_val, e) if e.at_best_val.n else "n/a (no val split)" if e.split != "val" else "—"
        )
        lines.append(
            f"| {e.row} | {col} | {e.split} | {e.last.n} | **{_cell(e.last, e)}** | {_paper_cell(e)} | "
            f"{_cell(e.best, e)} | {abv} |"
        )
    if t.contrasts:
        lines += [
            "",
            "Paired differences (same seeds, last epoch; the last column: the seeds a half-width of "
            f"±{TARGET_HALF_WIDTH} points would need at this seed-to-seed spread):",
            "",
            f"| difference | dataset / task | n | ours | paper | seeds for ±{TARGET_HALF_WIDTH} |",
            "|---|---|---|---|---|---|",
        ]
        for c in t.contrasts:
            digits = 1 if c.metric == "acc" else 2
            p = "—" if c.paper is None else f"{c.paper:+.{digits}f}"
            col = TASK_NAMES.get(c.column, REAL_NAMES.get(c.column, c.column))
            lines.append(
                f"| {c.label} | {col} | {c.diff.n} | {c.diff.format(c.scale, digits, sign=True)} | {p} | "
                f"{_seeds_needed(c)} |"
            )
    if any(e.status == "ok" and e.last.n == 1 for e in t.entries):
        lines += ["", "*n = 1 seed: no confidence interval can be given (n/a).*"]
    if t.notes:
        lines += ["", *(f"- {n}" for n in t.notes)]
    return "\n".join(lines) + "\n"


# -- plot -------------------------------------------------------------------------------------------------
OURS_COLOR, PAPER_COLOR = "#1f77b4", "#bbbbbb"


def plot_table(t: Table):
    """Bars: ours (mean, 95% CI) beside the paper's number, one panel per dataset/task; the paired differences
    below in one panel across the full width. One legend under the title, so nothing covers the data; runs a
    profile does not make are named once per panel instead of under each missing bar. Returns the figure."""
    cols = t.columns
    n_bars = [sum(e.column == col for e in t.entries) for col in cols]
    widths = [max(3.0, 0.75 * n + 1.2) for n in n_bars]
    height_bars = 3.6
    height_diff = 0.3 * len(t.contrasts) + 0.9 if t.contrasts else 0.0
    fig = plt.figure(figsize=(max(sum(widths), 7.5), height_bars + height_diff + 1.7), layout="constrained")
    grid = fig.add_gridspec(2 if t.contrasts else 1, len(cols), width_ratios=widths,
                            height_ratios=[height_bars, height_diff] if t.contrasts else [1])  # fmt: skip
    for j, col in enumerate(cols):
        _plot_column(fig.add_subplot(grid[0, j]), col, [e for e in t.entries if e.column == col],
                     t.references.get(col, []))  # fmt: skip
    # differences in points and in MSE do not share an axis: one panel per metric, under its columns
    for metric in dict.fromkeys(c.metric for c in t.contrasts):
        js = [j for j, col in enumerate(cols)
              if any(e.column == col and e.metric == metric for e in t.entries)]  # fmt: skip
        span = grid[1, min(js) : max(js) + 1] if js else grid[1, :]
        group = [c for c in t.contrasts if c.metric == metric]
        _plot_contrasts(fig.add_subplot(span), group, label_columns=len(cols) > 1)
    handles = [
        matplotlib.patches.Patch(color=OURS_COLOR, label="ours: mean over seeds, 95% t-interval"),
        matplotlib.patches.Patch(facecolor=PAPER_COLOR, hatch="//", edgecolor="0.4",
                                 label="paper (single run)"),
    ]  # fmt: skip
    if t.contrasts:
        handles += [
            matplotlib.lines.Line2D([], [], color=OURS_COLOR, marker="o",
                                    label="ours: paired difference, 95% CI"),
        ]  # fmt: skip
    if any(c.paper is not None for c in t.contrasts):
        paper_mark = matplotlib.lines.Line2D([], [], color="0.45", marker="D", ls="", label="paper: Δ")
        handles.append(paper_mark)
    # below the panels, with the reading note as its title: constrained layout keeps both off the data
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False,
               title="Error bars: 95% Student-t interval over seeds (none with n = 1; drawn to 0 and 100%). "
               "Paper: single runs, reported numbers.", title_fontsize=7)  # fmt: skip
    source = textwrap.fill(t.source, int(12 * max(sum(widths), 7.5)))
    fig.suptitle(f"{t.title}\n{source}", fontsize=9)
    return fig


REFERENCE_STYLES = ("--", ":", "-.")


def _plot_column(ax, col: str, es: list[Entry], references: list[tuple[str, float]] = ()) -> None:
    """One dataset/task: for each row, our bar (with CI) and the paper's hatched bar beside it; reference
    levels (a floor, a ceiling) as labelled horizontal lines across the panel."""
    top = max((v for _, v in references), default=0.0)
    for (label, value), style in zip(references, REFERENCE_STYLES, strict=False):
        ax.axhline(value, color="0.2", ls=style, lw=1.0, zorder=3)
        digits = es[0].digits if es else 1
        ax.text(0.02, value, f"{label} {value:.{digits}f}", transform=ax.get_yaxis_transform(), ha="left",
                va="bottom", fontsize=6, color="0.15", zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})  # fmt: skip
    missing: list[str] = []  # why bars are missing, as shown on the panel
    for i, e in enumerate(es):
        if e.status == "ok" and e.last.n > 0:
            y = e.last.mean * e.scale
            err = e.last.half * e.scale if e.last.has_interval else None
            # an accuracy lies in [0, 100] and an MSE is >= 0: a two-seed t-interval reaching past that is
            # drawn to the bound (the tables print the full half-width)
            high = 100.0 if e.metric != "mse" else float("inf")
            yerr = None if err is None else [[min(err, y)], [min(err, high - y)]]
            ax.bar(i - 0.2, y, 0.4, color=OURS_COLOR, yerr=yerr, capsize=3)
            up = y + (yerr[1][0] if yerr else 0)
            ax.text(i - 0.2, up, f"{y:.{e.digits}f}\nn={e.last.n}", ha="center", va="bottom",
                    fontsize=6.5)  # fmt: skip
            top = max(top, up)
        else:
            missing.append(_panel_status(e.status))
            ax.text(i - 0.2, 0.01, "–", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=9, color="0.4")  # fmt: skip
        if e.paper is None:
            ax.text(i + 0.2, 0.01, "–", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=9, color="0.6")  # fmt: skip
        else:
            ax.bar(i + 0.2, e.paper, 0.4, color=PAPER_COLOR, hatch="//", edgecolor="0.4")
            ax.text(i + 0.2, e.paper, f"{e.paper:.{e.digits}f}", ha="center", va="bottom", fontsize=6.5)
            top = max(top, e.paper)
    notes = [f"ours –: {why}" for why in dict.fromkeys(missing)]
    if any(e.paper is None for e in es):
        notes.append("paper –: no number in the paper")
    if notes:  # once per panel, above the bars (the y range leaves room for it)
        width = max(24, int(9 * ax.get_position().width * ax.figure.get_figwidth()))
        ax.text(0.02, 0.98, "\n".join(textwrap.fill(n, width) for n in notes), transform=ax.transAxes,
                ha="left", va="top", fontsize=6, color="0.3")  # fmt: skip
    room = 1.18 + 0.12 * sum(textwrap.fill(n, 40).count("\n") + 1 for n in notes)
    ax.set_xlim(-0.7, len(es) - 0.3)
    ax.set_ylim(0, top * room if top > 0 else 1)
    ax.set_xticks(range(len(es)))
    rotate = len(es) > 3 and max(len(e.row) for e in es) > 12
    ax.set_xticklabels([_wrap(e.row, 14) for e in es], fontsize=7, rotation=30 if rotate else 0,
                       ha="right" if rotate else "center", rotation_mode="anchor")  # fmt: skip
    metric = es[0].metric if es else "acc"
    ax.set_ylabel("MSE (lower is better)" if metric == "mse" else "accuracy (%)", fontsize=8)
    split = es[0].split if es else ""
    ax.set_title(f"{TASK_NAMES.get(col, REAL_NAMES.get(col, col))} ({split})", fontsize=9)


def _panel_status(status: str) -> str:
    """A missing row's reason, short enough for a panel (the Markdown table keeps the whole of it)."""
    if status.endswith(f"{IN_FULL})"):
        return "not run in this profile (profiles/full.yaml runs it)"
    return status


def _plot_contrasts(ax, contrasts: list[Contrast], label_columns: bool = False) -> None:
    """Paired differences, one row each (prefixed with the dataset when several share the panel)."""
    for i, c in enumerate(contrasts):
        if c.diff.n:
            err = c.diff.half * c.scale if c.diff.has_interval else None
            ax.errorbar(c.diff.mean * c.scale, i, xerr=err, fmt="o", color=OURS_COLOR, capsize=3)
        if c.paper is not None:
            ax.plot(c.paper, i, "D", color="0.45")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(contrasts)))
    names = [
        (f"{TASK_NAMES.get(c.column, REAL_NAMES.get(c.column, c.column))}: " if label_columns else "")
        + c.label
        for c in contrasts
    ]  # fmt: skip
    ax.set_yticklabels(names, fontsize=7)
    ax.set_ylim(len(contrasts) - 0.5, -0.5)
    ax.grid(axis="x", color="0.9")
    ax.set_xlabel("paired difference (points)" if contrasts[0].metric == "acc" else "difference (MSE)",
                  fontsize=8)  # fmt: skip


def _wrap(text: str, width: int = 18) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "\n".join(lines)


# -- output -----------------------------------------------------------------------------------------------
def to_dict(t: Table) -> dict:
    """Every number of a table, in the units shown (accuracy in %, MSE as is)."""
    return {
        "title": t.title,
        "source": t.source,
        "notes": t.notes,
        "references": {col: [list(r) for r in refs] for col, refs in t.references.items()},
        "entries": [
            {
                "row": e.row,
                "section": e.section,
                "variant": e.variant,
                "dataset": e.dataset,
                "task": e.task,
                "split": e.split,
                "metric": e.metric,
                "unit": "%" if e.metric == "acc" else "mse",
                "status": e.status,
                "best": e.best.as_dict(e.scale),
                "last": e.last.as_dict(e.scale),
                "at_best_val": e.at_best_val.as_dict(e.scale),
                "paper": e.paper,
                "paper_label": e.paper_label,
            }
            for e in t.entries
        ],
        "contrasts": [
            {
                "label": c.label,
                "column": c.column,
                "metric": c.metric,
                "diff": c.diff.as_dict(c.scale),
                "paper": c.paper,
            }
            for c in t.contrasts
        ],
    }


def _summary_from_dict(d: dict, scale: float) -> Summary:
    """Inverse of :meth:`Summary.as_dict` (values back in the engine's units)."""

    def un(x):
        return float("nan") if x is None else x / scale

    values = {k: un(v) for k, v in (d.get("values") or {}).items()}
    return Summary(un(d.get("mean")), un(d.get("half")), int(d.get("n", 0)), un(d.get("sd")),
                   d.get("level", 0.95), values)  # fmt: skip


def from_dict(key: str, d: dict) -> Table:
    """A table back from ``summary.json`` (:func:`to_dict`), e.g. to redraw its PNG without the runs."""
    entries = []
    for e in d["entries"]:
        scale = 100.0 if e["metric"] == "acc" else 1.0
        column = e["task"] if e["dataset"] == "tgif-qa" else e["dataset"]
        entries.append(Entry(
            row=e["row"], section=e["section"], variant=e["variant"], column=column, dataset=e["dataset"],
            task=e["task"], split=e["split"], metric=e["metric"], best=_summary_from_dict(e["best"], scale),
            last=_summary_from_dict(e["last"], scale),
            at_best_val=_summary_from_dict(e["at_best_val"], scale),
            paper=e["paper"], paper_label=e.get("paper_label", ""), status=e["status"],
        ))  # fmt: skip
    contrasts = [
        Contrast(c["label"], c["column"], c["metric"],
                 _summary_from_dict(c["diff"], 100.0 if c["metric"] == "acc" else 1.0), c["paper"])
        for c in d.get("contrasts", [])
    ]  # fmt: skip
    columns = list(dict.fromkeys(e.column for e in entries))
    references = {
        col: [(label, float(v)) for label, v in refs] for col, refs in d.get("references", {}).items()
    }
    return Table(
        key, d["title"], d["source"], columns, entries, contrasts, list(d.get("notes", [])), references
    )


def redraw(summary: str | Path, out_dir: str | Path, keys: list[str] | None = None) -> list[Path]:
    """Redraw the tables' PNGs from a ``summary.json`` (no runs needed); returns the files written."""
    tables = json.loads(Path(summary).read_text())["tables"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key in keys or list(tables):
        fig = plot_table(from_dict(key, tables[key]))
        fig.savefig(out / f"{key}.png", dpi=110)
        plt.close(fig)
        written.append(out / f"{key}.png")
    return written


def write_tables(tables: list[Table], out_dir: str | Path, results: Results | None = None) -> list[Path]:
    """``<key>.md`` and ``<key>.png`` per table, ``summary.json`` (and ``runs.csv``: the tidy run table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t in tables:
        (out / f"{t.key}.md").write_text(to_markdown(t))
        fig = plot_table(t)
        fig.savefig(out / f"{t.key}.png", dpi=110)
        plt.close(fig)
        written += [out / f"{t.key}.md", out / f"{t.key}.png"]
    summary = {"tables": {t.key: to_dict(t) for t in tables}}
    if results is not None:
        summary["missing_runs"] = [{"run": ref.path, "reason": why} for ref, why in results.missing]
        results.df.to_csv(out / "runs.csv", index=False)
        written.append(out / "runs.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False, default=_nan_none))
    written.append(out / "summary.json")
    return written


def _nan_none(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    raise TypeError(f"not JSON serialisable: {type(x)}")


def entries_frame(t: Table) -> pd.DataFrame:
    """A table's entries as a DataFrame (for notebooks)."""
    return pd.DataFrame(
        [
            {
                "row": e.row,
                "column": e.column,
                "n": e.last.n,
                "last": e.last.format(e.scale, e.digits),
                "best": e.best.format(e.scale, e.digits),
                "paper": e.paper,
                "status": e.status,
            }
            for e in t.entries
        ]
    )
