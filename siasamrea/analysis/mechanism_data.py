"""The numbers of the mechanism report (:mod:`siasamrea.analysis.mechanism`), on the synthetic ground truth.

Top to bottom: the arms (every trained configuration and the baseline it is paired with); the per-question
table (does the evaluation anchor / its siamese union hold the answer evidence, was the answer right);
containment rates (evaluation and training clips, against the number of clips N); accuracy by evidence and
the paired gap to the baseline, per evidence bin and per training budget; the :class:`Report` holding all of
it (:func:`build_report`), and its JSON form (:func:`report_json`, read back by :func:`budget_from_json`).

Every table here comes from the active profile's runs only (:func:`siasamrea.analysis.results.expected_runs`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from siasamrea.analysis.results import (
    Results,
    by_seed,
    expected_runs,
    headline_split,
    train_clips,
    variant_settings,
)
from siasamrea.analysis.stats import Summary, mean_ci, paired_diff
from siasamrea.analysis.tables import data_source
from siasamrea.data.dataset import ClipSpec
from siasamrea.training import evidence as ev

#: The variants the gap figures compare with the baseline (others appear in the Markdown only).
FIGURE_ARMS = ("siasamrea", "skr", "stop_gradient", "all_clips", "anchor_copies")
ARM_LABELS = {
    "siasamrea": "SiaSamRea (SKG+SKR)",
    "skr": "w/ SKR (average affinity)",
    "stop_gradient": "SiaSamRea, target detached",
    "all_clips": "all clips supervised, no reasoning",
    "anchor_copies": "anchor copies",
    "baseline": "baseline",
}
CLIP_COUNTS = (1, 2, 3, 5, 9, 13)
_BUDGET = re.compile(r"^(?P<base>.+)-e(?P<epochs>\d+)$")


# -- arms: (section, variant) -> method, budget, its baseline ------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One trained configuration on one dataset, and the baseline it is paired with."""

    section: str
    variant: str
    dataset: str
    base: str  # the method, without the budget suffix ("siasamrea", "all_clips", ...)
    epochs: int
    baseline: tuple[str, str]  # (section, variant) of the baseline trained with the same budget

    @property
    def label(self) -> str:
        return f"{ARM_LABELS.get(self.base, self.base)} @ {self.epochs} ep"


def arms(params: dict, dataset: str) -> list[Arm]:
    """Every (section, variant) the profile runs on ``dataset`` (finetune, ablations, budget)."""
    out = []
    for section in ("finetune", "ablations", "budget"):
        sec = params.get(section) or {}
        datasets = sec.get("datasets") or []
        if dataset not in (datasets if isinstance(datasets, list) else list(datasets)):
            continue
        for variant in sec.get("variants") or {}:
            epochs = int(variant_settings(params, section, dataset, variant)["optim"]["epochs"])
            m = _BUDGET.match(variant) if section == "budget" else None
            base = m["base"] if m else variant
            baseline = ("budget", f"baseline-e{m['epochs']}") if m else ("finetune", "baseline")
            out.append(Arm(section, variant, dataset, base, epochs, baseline))
    return out


def evidence_datasets(params: dict, root: str | Path = ".") -> list[str]:
    """Fine-tuning datasets whose ground-truth evidence file exists (the synthetic ones)."""
    out = []
    for ds in (params.get("finetune") or {}).get("datasets") or {}:
        path = params["data"]["datasets"].get(ds, {}).get("evidence")
        if path and (Path(root) / path).is_file():
            out.append(ds)
    return out


def reference_clips(params: dict, dataset: str) -> int:
    """N of the profile's SiaSamRea (the union the categories are defined by)."""
    return train_clips(variant_settings(params, "finetune", dataset, "siasamrea"))


# -- 1. per-question table -----------------------------------------------------------------------------------
def question_table(params: dict, root: str | Path = ".", tag: str = "best") -> tuple[pd.DataFrame, dict]:
    """One row per (run, evaluation question) of every evidence dataset's headline split.

    Columns: dataset, split, section, variant, seed, index, video_id, correct, anchor_core, union_core,
    anchor_any, union_any, category, category_any, visibility, anchor_match. Also returns the checks: per
    run, how many saved anchors the recomputed union's row 0 reproduces.
    """
    rows, checks = [], {}
    root = Path(root)
    for ds in evidence_datasets(params, root):
        split = headline_split(params, ds)
        gt = ev.load_evidence(root / params["data"]["datasets"][ds]["evidence"])
        n_ref = reference_clips(params, ds)
        cache: dict = {}
        for ref in expected_runs(params, ("finetune", "ablations", "budget")):
            if ref.dataset != ds:
                continue
            run = root / ref.path
            pred = run / "predictions" / f"{ds}_{split}_{tag}.json"
            if not pred.is_file() or not (run / "config.yaml").is_file():
                continue
            cfg = ev.run_config(run)
            spec = ev.union_spec(cfg, n_ref)
            check = {"checked": 0, "matched": 0, "no_evidence": 0}
            for r in json.loads(pred.read_text())["rows"]:
                e = ev.lookup(gt, r["video_id"])
                if e is None:
                    check["no_evidence"] += 1
                    continue
                key = (cfg.eval.seed, repr(spec), e.num_frames, r["index"])
                if key not in cache:
                    cache[key] = spec.indices(
                        e.num_frames, ev.eval_generator(cfg.eval.seed, r["index"])
                    ).numpy()
                union = cache[key]
                anchor = np.asarray(r["anchor"])
                match = union[0].tolist() == anchor.tolist()
                check["checked"] += 1
                check["matched"] += int(match)
                a_core, a_any = ev.clip_contains(anchor, e, "core"), ev.clip_contains(anchor, e, "any")
                # the union is the saved anchor plus the recomputed siamese clips
                u_core = a_core or bool(ev.clips_containing(union[1:], e, "core").any())
                u_any = a_any or bool(ev.clips_containing(union[1:], e, "any").any())
                rows.append(
                    {
                        "dataset": ds,
                        "split": split,
                        "section": ref.section,
                        "variant": ref.variant,
                        "seed": ref.seed,
                        "index": r["index"],
                        "video_id": r["video_id"],
                        "correct": int(r["pred"] == r["target"]),
                        "anchor_core": a_core,
                        "union_core": u_core,
                        "anchor_any": a_any,
                        "union_any": u_any,
                        "category": ev.category(a_core, u_core),
                        "category_any": ev.category(a_any, u_any),
                        "visibility": e.visibility,
                        "anchor_match": match,
                    }
                )
            checks[ref.path] = check
    df = pd.DataFrame(rows)
    if not df.empty:
        df["visibility_bin"] = ""
        for _, g in df.groupby("dataset"):
            # bins are set on the questions (not on run x question rows) so every run bins them alike
            u = g.drop_duplicates("index").set_index("index")["visibility"]
            df.loc[g.index, "visibility_bin"] = g["index"].map(visibility_bins(u)).to_numpy()
    return df, checks


def visibility_bins(vis: pd.Series, bins: int = 3) -> pd.Series:
    """Terciles of the share of the video where the answer is fully visible (sparsest first); equal values
    always share a bin."""
    cut = pd.qcut(vis, min(bins, vis.nunique()), labels=False, duplicates="drop")
    k = int(cut.max()) + 1
    edges = [vis[cut == b] for b in range(k)]
    names = [f"{b + 1}/{k}: {100 * e.min():.1f}–{100 * e.max():.1f}% visible" for b, e in enumerate(edges)]
    return cut.map(dict(enumerate(names)))


# -- 2. containment ------------------------------------------------------------------------------------------
def unique_questions(q: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, question), from the first run that has it (the anchors are shared: checked
    by :func:`anchors_shared`)."""
    return q.drop_duplicates(["dataset", "index"]).reset_index(drop=True)


def anchors_shared(q: pd.DataFrame) -> bool:
    """Do all runs of a dataset categorise each question the same way (same anchor, same union)?"""
    if q.empty:
        return True
    n = q.groupby(["dataset", "index"])[["anchor_core", "union_core", "anchor_any", "union_any"]].nunique()
    return bool((n <= 1).all().all())


def eval_containment(q: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: share of evaluation questions whose anchor / union holds core (or any) evidence."""
    u = unique_questions(q)
    out = []
    for ds, g in u.groupby("dataset"):
        row = {"dataset": ds, "split": g["split"].iloc[0], "questions": len(g)}
        for col in ("anchor_core", "union_core", "anchor_any", "union_any"):
            row[col] = float(g[col].mean())
        for c in ev.CATEGORIES:
            row[f"cat: {c}"] = float((g["category"] == c).mean())
        out.append(row)
    return pd.DataFrame(out)


def training_containment(
    params: dict, dataset: str, cfg, counts: tuple[int, ...] = CLIP_COUNTS, root: str | Path = "."
) -> pd.DataFrame:
    """Share of training draws whose anchor / union of N clips holds the evidence, for each N.

    Draws are made as training makes them (siamese sampler, the run's frames per clip, offsets and
    ``reserve_clips``; generator ``(seed, epoch, i)``) for every training video of the evidence file, every
    epoch of ``cfg`` and every fine-tuning seed of the profile. ``i`` is the video's position in the
    evidence file (the dataset's own item order may differ, which changes which draw a video gets, not
    their distribution).
    """
    gt = ev.load_evidence_records(Path(root) / params["data"]["datasets"][dataset]["evidence"])
    train = [ev.Evidence.from_dict(r) for r in gt if r.get("split") == "train"]
    seeds = (params.get("finetune") or {}).get("seeds") or [0]
    b, reserve, offsets = cfg.method.frames_per_clip, cfg.method.reserve_clips, cfg.method.offsets
    out = []
    for n in counts:
        spec = ClipSpec(
            "siamese" if n > 1 else "sparse", n, b, reserve_clips=max(reserve, n), offsets=offsets
        )
        hits = {k: 0 for k in ("anchor_core", "union_core", "anchor_any", "union_any")}
        draws = 0
        for seed in seeds:
            for epoch in range(cfg.optim.epochs):
                for i, e in enumerate(train):
                    clips = spec.indices(e.num_frames, ev.train_generator(seed, epoch, i)).numpy()
                    for level in ev.LEVELS:
                        has = ev.clips_containing(clips, e, level)
                        hits[f"anchor_{level}"] += int(has[0])
                        hits[f"union_{level}"] += int(has.any())
                    draws += 1
        out.append(
            {
                "dataset": dataset,
                "clips": n,
                "draws": draws,
                **{k: v / max(draws, 1) for k, v in hits.items()},
            }
        )
    return pd.DataFrame(out)


def eval_containment_by_clips(
    q: pd.DataFrame, params: dict, root: str | Path = ".", counts: tuple[int, ...] = CLIP_COUNTS
) -> pd.DataFrame:
    """Share of evaluation questions whose union of N clips (around the evaluation anchor) holds the
    evidence, for each N."""
    out = []
    u = unique_questions(q)
    for ds, g in u.groupby("dataset"):
        cfg = reference_config(params, ds, root)
        gt = ev.load_evidence(Path(root) / params["data"]["datasets"][ds]["evidence"])
        for n in counts:
            spec = ev.union_spec(cfg, n)
            hits = {"union_core": 0, "union_any": 0}
            for idx, vid in zip(g["index"], g["video_id"], strict=True):
                e = ev.lookup(gt, vid)
                clips = spec.indices(e.num_frames, ev.eval_generator(cfg.eval.seed, int(idx))).numpy()
                hits["union_core"] += int(ev.clips_containing(clips, e, "core").any())
                hits["union_any"] += int(ev.clips_containing(clips, e, "any").any())
            out.append(
                {"dataset": ds, "clips": n, "questions": len(g), **{k: v / len(g) for k, v in hits.items()}}
            )
    return pd.DataFrame(out)


def _first_run_with_config(params: dict, dataset: str, root: str | Path) -> str | None:
    for ref in expected_runs(params, ("finetune", "ablations", "budget")):
        if ref.dataset == dataset and (Path(root) / ref.path / "config.yaml").is_file():
            return ref.path
    return None


def reference_config(params: dict, dataset: str, root: str | Path = "."):
    """The config of the profile's SiaSamRea run on ``dataset`` (or of any finished run of it)."""
    for ref in expected_runs(params, ("finetune",)):
        if (
            ref.dataset == dataset
            and ref.variant == "siasamrea"
            and (Path(root) / ref.path / "config.yaml").is_file()
        ):
            return ev.run_config(Path(root) / ref.path)
    path = _first_run_with_config(params, dataset, root)
    return ev.run_config(Path(root) / path) if path else None


# -- 3. accuracy by evidence and the gap ---------------------------------------------------------------------
def accuracy_by(q: pd.DataFrame, column: str = "category") -> pd.DataFrame:
    """Per (dataset, section, variant, seed, bin): accuracy and number of questions."""
    g = q.groupby(["dataset", "section", "variant", "seed", column])["correct"]
    return g.agg(acc="mean", questions="size").reset_index().rename(columns={column: "bin"})


def _seed_values(acc: pd.DataFrame, ds: str, section: str, variant: str, b: str) -> dict:
    sel = acc[
        (acc["dataset"] == ds) & (acc["section"] == section) & (acc["variant"] == variant) & (acc["bin"] == b)
    ]
    return {int(s): float(a) for s, a in zip(sel["seed"], sel["acc"], strict=True)}


def gap_by_bin(q: pd.DataFrame, params: dict, column: str = "category") -> pd.DataFrame:
    """For every arm (and bin): accuracy over seeds and the paired gap to the baseline of its budget."""
    acc = accuracy_by(q, column)
    out = []
    for ds in sorted(acc["dataset"].unique()):
        bins = _ordered_bins(acc[acc["dataset"] == ds]["bin"].unique(), column)
        for arm in arms(params, ds):
            for b in bins:
                mine = _seed_values(acc, ds, arm.section, arm.variant, b)
                if not mine:
                    continue
                base = _seed_values(acc, ds, *arm.baseline, b)
                nq = _questions(acc, ds, arm, b)
                out.append(_gap_row(arm, b, mean_ci(mine), paired_diff(mine, base), nq))
    return pd.DataFrame(out)


def _questions(acc: pd.DataFrame, ds: str, arm: Arm, b: str) -> int:
    """Questions in bin ``b`` (the same for every seed when the anchors are shared; the first seed's)."""
    sel = acc[(acc["dataset"] == ds) & (acc["section"] == arm.section) & (acc["variant"] == arm.variant)]
    return int(sel[sel["bin"] == b]["questions"].iloc[0])


def _ordered_bins(bins, column: str) -> list[str]:
    if column.startswith("category"):
        return [c for c in ev.CATEGORIES if c in set(bins)]
    return sorted(bins)


def _gap_row(arm: Arm, b: str, acc: Summary, gap: Summary, questions: int | None = None) -> dict:
    return {
        "dataset": arm.dataset,
        "section": arm.section,
        "variant": arm.variant,
        "base": arm.base,
        "epochs": arm.epochs,
        "bin": b,
        "questions": questions,
        "acc": acc,
        "gap": gap,
        "is_baseline": arm.base == "baseline",
    }


def gap_by_budget(results: Results, params: dict, value: str = "best") -> pd.DataFrame:
    """For every arm: headline metric over seeds, mean training seconds, and the paired gap to the baseline
    trained with the same budget (``value``: ``best``, ``last`` or ``at_best_val``)."""
    out = []
    df = results.df
    for ds in sorted(set(df["dataset"])):
        split = headline_split(params, ds)
        for arm in arms(params, ds):
            where = dict(dataset=ds, task=ds, split=split)
            mine = by_seed(df, value, section=arm.section, variant=arm.variant, **where)
            if not mine:
                continue
            base = by_seed(df, value, section=arm.baseline[0], variant=arm.baseline[1], **where)
            secs = by_seed(df, "train_seconds", section=arm.section, variant=arm.variant, **where)
            row = _gap_row(arm, split, mean_ci(mine), paired_diff(mine, base))
            row["train_seconds"] = float(np.mean(list(secs.values()))) if secs else float("nan")
            out.append(row)
    return pd.DataFrame(out)


# -- the report: every table of the analysis -----------------------------------------------------------------
@dataclass
class Report:
    """Everything the mechanism notebook shows."""

    source: str
    questions: pd.DataFrame
    checks: dict
    eval_rates: pd.DataFrame
    eval_by_clips: pd.DataFrame
    train_by_clips: pd.DataFrame
    by_category: pd.DataFrame
    by_category_any: pd.DataFrame
    by_visibility: pd.DataFrame
    by_category_best: pd.DataFrame
    budget: dict  # value ("best", "last", "at_best_val") -> DataFrame
    reference_clips: dict  # dataset -> N


def build_report(params: dict, results: Results, root: str | Path = ".") -> Report:
    """Compute every table of the mechanism analysis for the active profile."""
    # the headline is the last epoch (as the tables); the best-on-test epoch is the paper-protocol view
    q, checks = question_table(params, root, "last")
    q_best, _ = question_table(params, root, "best")
    datasets = evidence_datasets(params, root)
    train = [
        training_containment(params, ds, cfg, root=root)
        for ds in datasets
        if (cfg := reference_config(params, ds, root)) is not None
    ]
    empty = pd.DataFrame()
    return Report(
        source=data_source(params, datasets or ["msvd-qa"]),
        questions=q,
        checks=checks,
        eval_rates=eval_containment(q) if not q.empty else empty,
        eval_by_clips=eval_containment_by_clips(q, params, root) if not q.empty else empty,
        train_by_clips=pd.concat(train, ignore_index=True) if train else empty,
        by_category=gap_by_bin(q, params, "category") if not q.empty else empty,
        by_category_any=gap_by_bin(q, params, "category_any") if not q.empty else empty,
        by_visibility=gap_by_bin(q, params, "visibility_bin") if not q.empty else empty,
        by_category_best=gap_by_bin(q_best, params, "category") if not q_best.empty else empty,
        budget={v: gap_by_budget(results, params, v) for v in ("best", "last", "at_best_val")},
        reference_clips={ds: reference_clips(params, ds) for ds in datasets},
    )


# -- serialisation -------------------------------------------------------------------------------------------
def summaries_to_records(df: pd.DataFrame, scale: float = 100.0) -> list[dict]:
    """Rows with :class:`Summary` cells turned into dicts (in %), for JSON."""
    recs = []
    for r in df.to_dict("records"):
        recs.append({k: (v.as_dict(scale) if isinstance(v, Summary) else _plain(v)) for k, v in r.items()})
    return recs


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def report_json(rep: Report) -> dict:
    """Every number of the mechanism analysis (rates as fractions, accuracies and gaps in %)."""
    return {
        "source": rep.source,
        "anchor_check": rep.checks,
        "anchors_shared_across_runs": anchors_shared(rep.questions),
        "reference_clips": rep.reference_clips,
        "eval_containment": summaries_to_records(rep.eval_rates),
        "eval_containment_by_clips": summaries_to_records(rep.eval_by_clips),
        "train_containment_by_clips": summaries_to_records(rep.train_by_clips),
        "accuracy_by_category": summaries_to_records(rep.by_category),
        "accuracy_by_category_any": summaries_to_records(rep.by_category_any),
        "accuracy_by_category_best_epoch": summaries_to_records(rep.by_category_best),
        "accuracy_by_visibility": summaries_to_records(rep.by_visibility),
        "budget": {k: summaries_to_records(v) for k, v in rep.budget.items()},
    }


def budget_from_json(path: str | Path, value: str = "last") -> tuple[str, pd.DataFrame]:
    """``(source, budget table)`` back from ``mechanism.json`` (Summary cells rebuilt from their % values),
    to redraw the budget figure without the runs."""
    d = json.loads(Path(path).read_text())
    rows = []
    for r in d["budget"][value]:
        row = dict(r)
        for k in ("acc", "gap"):
            v = r[k]

            def un(x):
                return float("nan") if x is None else x / 100.0

            row[k] = Summary(un(v["mean"]), un(v["half"]), int(v["n"]), un(v["sd"]), v.get("level", 0.95),
                             {s_: un(x) for s_, x in (v.get("values") or {}).items()})  # fmt: skip
        rows.append(row)
    return d["source"], pd.DataFrame(rows)
