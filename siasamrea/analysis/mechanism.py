"""Where the gain comes from (docs/method.md): evidence containment, accuracy by evidence, gap by budget.

Three questions, on the synthetic benchmark's ground truth (:mod:`siasamrea.training.evidence`):

1. **Containment.** How often does the evaluation anchor clip (all the model sees at test time) contain the
   answer evidence, and how often the union of the anchor and its siamese clips (what training could
   have seen around it)? Also for the training clips, and against the number of clips N.
2. **Accuracy by evidence.** Each variant's accuracy on questions whose anchor has the evidence, whose
   evidence only the siamese union has, and where neither has it. SiaSamRea evaluates on the anchor alone,
   so it cannot answer from evidence the anchor lacks; a gain on "anchor" questions means better use of
   what the anchor shows, a gain on "union only"/"neither" questions means a better prior/guess.
3. **The gap.** SiaSamRea − baseline (paired over seeds, 95% t-interval) against the training budget
   (the ``budget`` section's epochs and the fine-tuning runs) and against how sparse the evidence is
   (the categories above, and terciles of the share of the video where the answer is visible), with the
   controls of §2 (all clips supervised without reasoning; anchor copies) wherever they were run.

Every table here comes from the active profile's runs only (:func:`siasamrea.analysis.results.expected_runs`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from siasamrea.training import evidence as ev
from siasamrea.analysis.results import (
    Results,
    by_seed,
    expected_runs,
    headline_split,
    train_clips,
    variant_settings,
)
from siasamrea.analysis.stats import Summary, mean_ci, paired_diff
from siasamrea.data.dataset import ClipSpec

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


# -- arms: (section, variant) -> method, budget, its baseline ----------------------------------------------
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


# -- 1. per-question table ----------------------------------------------------------------------------------
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


# -- serialisation -----------------------------------------------------------------------------------------
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


# -- report: Markdown, PNGs, JSON ------------------------------------------------------------------------
def _pct(x: float) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{100 * x:.1f}%"


def _fmt(s: Summary, sign: bool = False) -> str:
    return s.format(100.0, 1, sign=sign) + (f" (n={s.n})" if s.n > 1 else "")


def _verdict(s: Summary) -> str:
    if not s.has_interval:
        return "no interval (one seed)"
    if s.lo > 0:
        return "interval above 0"
    if s.hi < 0:
        return "interval below 0"
    return "interval includes 0"


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
    from siasamrea.analysis.tables import data_source

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


def _anchor_check_line(checks: dict) -> str:
    checked = sum(c["checked"] for c in checks.values())
    matched = sum(c["matched"] for c in checks.values())
    missing = sum(c["no_evidence"] for c in checks.values())
    line = (
        f"Anchor check: the recomputed siamese union's row 0 equals the anchor saved in predictions/ for "
        f"{matched} of {checked} questions across {len(checks)} runs"
    )
    return line + (f"; {missing} questions had no evidence record." if missing else ".")


def containment_markdown(rep: Report) -> str:
    lines = [
        "### Does the anchor clip contain the answer? (evaluation and training clips)",
        "",
        f"**{rep.source}**",
        "",
        _anchor_check_line(rep.checks),
        f"Categories are the same for every run of a dataset: {anchors_shared(rep.questions)}.",
        "",
        "Evidence: `core` = frames where the answer is fully visible; `any` = core or faint (partly "
        "visible). Union = the anchor and its siamese clips recomputed with the evaluation generator "
        f"(N = {rep.reference_clips}, the profile's SiaSamRea).",
        "",
    ]
    if not rep.eval_rates.empty:
        lines += [
            "| dataset | split | questions | anchor has core | union has core | anchor has any | "
            "union has any | only the union has core | neither |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rep.eval_rates.to_dict("records"):
            lines.append(
                f"| {r['dataset']} | {r['split']} | {r['questions']} | {_pct(r['anchor_core'])} | "
                f"{_pct(r['union_core'])} | {_pct(r['anchor_any'])} | {_pct(r['union_any'])} | "
                f"{_pct(r['cat: union only'])} | {_pct(r['cat: neither'])} |"
            )
    how = {
        "Evaluation": "around the evaluation anchor",
        "Training": "every training video × epoch × seed, drawn as training draws; the anchor's column "
        "changes with N because the interval leaves room for max(reserve_clips, N) clips",
    }
    for name, df, what in (
        ("Evaluation", rep.eval_by_clips, "questions"),
        ("Training", rep.train_by_clips, "draws"),
    ):
        if df.empty:
            continue
        lines += [
            "",
            f"{name} clips: share whose union of N clips holds the evidence ({how[name]}).",
            "",
            f"| dataset | N clips | {what} | union has core | union has any |"
            + (" anchor has core |" if name == "Training" else ""),
            "|---|---|---|---|---|" + ("---|" if name == "Training" else ""),
        ]
        for r in df.to_dict("records"):
            extra = f" {_pct(r['anchor_core'])} |" if name == "Training" else ""
            lines.append(
                f"| {r['dataset']} | {r['clips']} | {r[what]} | {_pct(r['union_core'])} | "
                f"{_pct(r['union_any'])} |{extra}"
            )
    lines += ["", "Calibration quoted in docs/method.md (toy version, 9 clips): anchor 26%, union 70%."]
    return "\n".join(lines) + "\n"


def _gap_table(df: pd.DataFrame, title: str, bins_label: str) -> list[str]:
    if df.empty:
        return []
    lines = ["", f"#### {title}", ""]
    for ds, g in df.groupby("dataset"):
        bins = list(dict.fromkeys(g["bin"]))
        counts = {b: g[g["bin"] == b]["questions"].iloc[0] for b in bins}
        lines += [
            f"{ds} — accuracy (mean ± 95% CI over seeds) and paired gap to the baseline of the same "
            "budget, per " + bins_label,
            "",
            "| arm | epochs | " + " | ".join(f"{b} ({counts[b]} q)" for b in bins) + " |",
            "|---|---|" + "---|" * len(bins),
        ]
        for (section, variant), a in g.groupby(["section", "variant"], sort=False):
            arm = a.iloc[0]
            cells = []
            for b in bins:
                r = a[a["bin"] == b]
                if r.empty:
                    cells.append("")
                    continue
                r = r.iloc[0]
                gap = "" if r["is_baseline"] else f"; Δ {r['gap'].format(100.0, 1, sign=True)}"
                cells.append(f"{_fmt(r['acc'])}{gap}")
            name = f"{ARM_LABELS.get(arm['base'], arm['base'])} (`{section}/{variant}`)"
            lines.append(f"| {name} | {arm['epochs']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def accuracy_markdown(rep: Report) -> str:
    lines = [
        "### Accuracy by where the evidence is",
        "",
        f"**{rep.source}**",
        "",
        "Evaluation sees the anchor clip only. *anchor*: the anchor shows the answer (core frames); *union "
        "only*: a siamese clip around it does, the anchor does not; *neither*. Last-epoch predictions "
        "(as the tables); the best-epoch version (paper protocol) is below. n = seeds; one seed gives no "
        "interval.",
    ]
    lines += _gap_table(rep.by_category, "By category (core evidence), last epoch", "category")
    lines += _gap_table(rep.by_category_any, "By category (core or faint evidence), last epoch", "category")
    lines += _gap_table(rep.by_category_best, "By category (core evidence), best epoch (paper protocol)",
                        "category")  # fmt: skip
    return "\n".join(lines) + "\n"


def _findings(df: pd.DataFrame) -> list[str]:
    out = []
    if df.empty:
        return ["- no runs with predictions yet."]
    for r in df[~df["is_baseline"] & df["base"].isin(FIGURE_ARMS)].to_dict("records"):
        out.append(
            f"- {r['dataset']}, {ARM_LABELS.get(r['base'], r['base'])} @ {r['epochs']} ep, {r['bin']}: "
            f"{r['gap'].format(100.0, 1, sign=True)} points ({_verdict(r['gap'])})."
        )
    return out


def budget_markdown(rep: Report, params: dict) -> str:
    from siasamrea.analysis import paper

    lines = [
        "### Where the gain comes from: the gap against the training budget",
        "",
        f"**{rep.source}**",
        "",
        "Headline metric over seeds and the paired gap to the baseline trained for the same number of "
        "epochs (the paper's protocol: equal epochs). Seconds: the run's wall time (training and evaluation, "
        "with the instrument's extra evaluations where a run has them: the default's baseline), a rough "
        "measure of the compute each arm used.",
    ]
    for value, df in rep.budget.items():
        if df.empty:
            continue
        lines += [
            "",
            f"#### {value.replace('_', ' ')} metric",
            "",
            "| dataset | arm | epochs | accuracy | Δ vs baseline (same epochs) | seconds | paper Δ |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in df.to_dict("records"):
            pd_ = paper.TABLE1.get(r["base"], {}).get(r["dataset"])
            pb = paper.TABLE1["baseline"].get(r["dataset"])
            pdelta = (
                f"{pd_ - pb:+.1f}" if pd_ is not None and pb is not None and r["base"] != "baseline" else "—"
            )
            gap = "—" if r["is_baseline"] else r["gap"].format(100.0, 1, sign=True)
            lines.append(
                f"| {r['dataset']} | {ARM_LABELS.get(r['base'], r['base'])} (`{r['section']}/{r['variant']}`)"
                f" | {r['epochs']} | {_fmt(r['acc'])} | {gap} | {r['train_seconds']:.0f} | {pdelta} |"
            )
    lines += [
        "",
        "Paper Δ: Table 1 (SiaSamRea or w/ SKR − baseline) at the paper's own budget; the paper has no "
        "budget sweep and no clip-budget control.",
        "",
        "#### Findings (last-epoch metric, gap to the baseline of the same budget)",
        "",
    ]
    last = rep.budget.get("last", pd.DataFrame())
    lines += _findings(last) if not last.empty else ["- no runs with results yet."]
    return "\n".join(lines) + "\n"


# -- report figures -----------------------------------------------------------------------------------------
ARM_COLORS = {
    "baseline": "0.35",
    "siasamrea": "#1f77b4",
    "skr": "#17becf",
    "stop_gradient": "#9467bd",
    "all_clips": "#ff7f0e",
    "anchor_copies": "#2ca02c",
}


def _err(s: Summary) -> float | None:
    return s.half * 100 if s.has_interval else None


def _suptitle(fig, title: str, source: str) -> None:
    import textwrap

    width = int(11 * fig.get_figwidth())  # characters that fit at fontsize 9
    fig.suptitle(f"{textwrap.fill(title, width)}\n{textwrap.fill(source, width)}", fontsize=9)
    fig.text(
        0.01,
        0.005,
        "Error bars: 95% Student-t interval over seeds (none with one seed).",
        fontsize=7,
        color="0.3",
    )


def _paper_gap(dataset: str, base: str = "siasamrea") -> float | None:
    from siasamrea.analysis import paper

    a, b = paper.TABLE1.get(base, {}).get(dataset), paper.TABLE1["baseline"].get(dataset)
    return None if a is None or b is None else a - b


def _datasets(*dfs: pd.DataFrame) -> list[str]:
    return sorted({d for df in dfs if not df.empty for d in df["dataset"]})


def plot_containment(rep: Report):
    import matplotlib.pyplot as plt

    datasets = _datasets(rep.eval_rates, rep.train_by_clips)
    fig, axes = plt.subplots(
        max(1, len(datasets)), 2, figsize=(12, 3.8 * max(1, len(datasets)) + 1), squeeze=False
    )
    for i, ds in enumerate(datasets):
        ax = axes[i, 0]
        g = rep.questions[rep.questions["dataset"] == ds].drop_duplicates("index")
        bottom = np.zeros(2)
        for c, color in zip(ev.CATEGORIES, ("#2ca02c", "#ff7f0e", "0.75"), strict=True):
            share = np.array([(g["category"] == c).mean(), (g["category_any"] == c).mean()]) * 100
            ax.bar([0, 1], share, bottom=bottom, color=color, label=c)
            for x, (b, h) in enumerate(zip(bottom, share, strict=True)):
                if h > 4:
                    ax.text(x, b + h / 2, f"{h:.0f}%", ha="center", va="center", fontsize=8)
            bottom += share
        ax.set_xticks([0, 1], ["core evidence", "core or faint"])
        ax.set_ylabel("% of evaluation questions")
        ax.set_title(
            f"{ds} ({g['split'].iloc[0] if len(g) else ''}): who holds the evidence "
            f"(N = {rep.reference_clips.get(ds)})",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper right")
        ax = axes[i, 1]
        for df, name, style in (
            (rep.eval_by_clips, "evaluation", "-"),
            (rep.train_by_clips, "training", "--"),
        ):
            if df.empty or ds not in set(df["dataset"]):
                continue
            d = df[df["dataset"] == ds]
            ax.plot(
                d["clips"], 100 * d["union_core"], style, marker="o", color="#2ca02c", label=f"{name}: core"
            )
            ax.plot(
                d["clips"],
                100 * d["union_any"],
                style,
                marker="s",
                color="#9467bd",
                label=f"{name}: core/faint",
            )
        ax.axvline(rep.reference_clips.get(ds, 0), color="0.5", lw=0.8, ls=":")
        ax.set(xlabel="N clips (anchor + siamese)", ylabel="% whose union holds the evidence", ylim=(0, 100))
        ax.set_title(f"{ds}: containment against the number of clips (N = 1: the anchor)", fontsize=9)
        ax.legend(fontsize=7)
    _suptitle(fig, "Does the anchor contain the answer evidence? (synthetic ground truth)", rep.source)
    fig.tight_layout(rect=(0, 0.02, 1, 0.93))
    return fig


def _finetune_arms(df: pd.DataFrame) -> pd.DataFrame:
    """Arms at the fine-tuning budget (finetune and ablations sections), the compared ones only."""
    return df[df["section"].isin(["finetune", "ablations"]) & df["base"].isin(("baseline", *FIGURE_ARMS))]


def plot_accuracy(rep: Report):
    import matplotlib.pyplot as plt

    df = _finetune_arms(rep.by_category) if not rep.by_category.empty else rep.by_category
    datasets = _datasets(df)
    fig, axes = plt.subplots(
        1, max(1, len(datasets)), figsize=(6.5 * max(1, len(datasets)), 4.6), squeeze=False
    )
    for j, ds in enumerate(datasets):
        ax, g = axes[0, j], df[df["dataset"] == ds]
        bins = [b for b in ev.CATEGORIES if b in set(g["bin"])]
        names = list(dict.fromkeys(g["base"]))
        w = 0.8 / max(1, len(names))
        for k, base in enumerate(names):
            a = g[g["base"] == base].set_index("bin")
            xs = [i + (k - (len(names) - 1) / 2) * w for i, b in enumerate(bins) if b in a.index]
            ys = [a.loc[b, "acc"].mean * 100 for b in bins if b in a.index]
            errs = _errs([a.loc[b, "acc"] for b in bins if b in a.index])
            ax.bar(
                xs, ys, w, yerr=errs, capsize=2, color=ARM_COLORS.get(base), label=ARM_LABELS.get(base, base)
            )
        counts = [int(g[g["bin"] == b]["questions"].iloc[0]) for b in bins]
        ax.set_xticks(range(len(bins)), [f"{b}\n({c} questions)" for b, c in zip(bins, counts, strict=True)])
        ax.set_ylabel("accuracy (%), anchor-only evaluation")
        ax.set_title(f"{ds}: accuracy by where the evidence is (last epoch)", fontsize=9)
        ax.legend(fontsize=7)
    _suptitle(
        fig, "Accuracy split by evidence in the anchor / only in the siamese union / in neither", rep.source
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.9))
    return fig


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


_EPOCH_MARKERS = ("o", "s", "^", "D", "v")


def plot_budget(rep: Report):
    return plot_budget_table(rep.budget.get("last", pd.DataFrame()), rep.source)


def plot_budget_table(df: pd.DataFrame, source: str):
    """Gap and accuracy against the training budget, one row of panels per dataset.

    With several budgets (epochs) the arms are dodged sideways so their error bars do not overlap; with one
    budget the epochs axis carries no information, so the arms are side by side on a categorical axis. In
    the compute panel the marker shape gives the epochs (legend) instead of labels on the points."""
    import matplotlib.lines
    import matplotlib.pyplot as plt

    datasets = _datasets(df)
    fig, axes = plt.subplots(max(1, len(datasets)), 3, figsize=(15, 3.6 * max(1, len(datasets)) + 1.6),
                             squeeze=False, layout="constrained")  # fmt: skip
    shown_arms: dict[str, str] = {}
    all_epochs: set[int] = set()
    for i, ds in enumerate(datasets):
        g = df[(df["dataset"] == ds) & df["base"].isin(("baseline", *FIGURE_ARMS))]
        bases = list(dict.fromkeys(g["base"]))
        epochs = sorted({int(e) for e in g["epochs"]})
        all_epochs |= set(epochs)
        ranked = sorted(epochs, reverse=True)
        marker = {e: _EPOCH_MARKERS[k % len(_EPOCH_MARKERS)] for k, e in enumerate(ranked)}
        single = len(epochs) == 1
        step = (min(np.diff(epochs)) if len(epochs) > 1 else 1.0) * 0.25 / max(1, len(bases))
        for k, base in enumerate(bases):
            a = g[g["base"] == base].sort_values("epochs")
            color, label = ARM_COLORS.get(base), ARM_LABELS.get(base, base)
            shown_arms[base] = label
            x = [k] * len(a) if single else [e + (k - (len(bases) - 1) / 2) * step for e in a["epochs"]]
            style = dict(marker="o", capsize=3, color=color, ls="-" if not single else "none")
            if base != "baseline":
                axes[i, 0].errorbar(x, [s.mean * 100 for s in a["gap"]], yerr=_errs(a["gap"]), **style)
            acc = [s.mean * 100 for s in a["acc"]]
            axes[i, 1].errorbar(x, acc, yerr=_errs(a["acc"]), **style)
            axes[i, 2].plot(a["train_seconds"], acc, color=color, lw=1, alpha=0.6)
            for xs, s_, e in zip(a["train_seconds"], a["acc"], a["epochs"], strict=True):
                axes[i, 2].errorbar([xs], [s_.mean * 100], yerr=_errs([s_]), color=color, capsize=3,
                                    marker=marker[int(e)], ls="none")  # fmt: skip
        axes[i, 0].axhline(0, color="k", lw=0.8)
        pg = _paper_gap(ds)
        if pg is not None:
            axes[i, 0].axhline(pg, color="0.5", ls="--", lw=1)
            axes[i, 0].annotate(f"paper: SiaSamRea − baseline {pg:+.1f}", (0.01, pg),
                                xycoords=("axes fraction", "data"), xytext=(0, 3), textcoords="offset points",
                                fontsize=7, color="0.4")  # fmt: skip
        for col in (0, 1):
            ax = axes[i, col]
            if single:
                names = [ARM_LABELS.get(b, b) for b in bases]
                ax.set_xticks(range(len(bases)), [_wrap_label(n) for n in names], fontsize=7)
                ax.set_xlim(-0.6, len(bases) - 0.4)
                ax.set_xlabel(f"all runs at {epochs[0]} epochs (one budget in this profile)", fontsize=8)
            else:
                ax.set_xticks(epochs)
                ax.set_xlabel("training epochs", fontsize=8)
        axes[i, 0].set_ylabel("gap to baseline (points)", fontsize=8)
        axes[i, 0].set_title(f"{ds}: variant − baseline at equal epochs", fontsize=9)
        axes[i, 1].set_ylabel("accuracy (%)", fontsize=8)
        axes[i, 1].set_title(f"{ds}: accuracy", fontsize=9)
        axes[i, 2].set(
            xlabel="seconds per run, mean over seeds\n(training + evaluation, with the instrument's "
            "conditions where run)",
            ylabel="accuracy (%)",
        )
        axes[i, 2].xaxis.label.set_fontsize(8)
        axes[i, 2].yaxis.label.set_fontsize(8)
        axes[i, 2].set_title(f"{ds}: accuracy against training compute", fontsize=9)
    handles = [matplotlib.lines.Line2D([], [], color=ARM_COLORS.get(b), marker="o", label=lab)
               for b, lab in shown_arms.items()]  # fmt: skip
    order = sorted(all_epochs, reverse=True)
    handles += [matplotlib.lines.Line2D([], [], color="0.3", ls="none", marker=_EPOCH_MARKERS[k % 5],
                                        label=f"{e} epochs (compute panel)")
                for k, e in enumerate(order)]  # fmt: skip
    note = (
        "Error bars: 95% Student-t interval over seeds (none with one seed). "
        "Paper: Table 1, at its own budget."
    )
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=7,
               frameon=False, title=note, title_fontsize=7)  # fmt: skip
    import textwrap

    fig.suptitle("Where the gain comes from: training budget (last-epoch metric, headline split)\n"
                 + textwrap.fill(source, 170), fontsize=9)  # fmt: skip
    return fig


def _wrap_label(text: str, width: int = 14) -> str:
    import textwrap

    return textwrap.fill(text, width)


def _errs(summaries) -> list[float] | None:
    """Error bar half-widths (in points), or None when no point has an interval (one seed)."""
    errs = [(_err(s) or 0.0) for s in summaries]
    return errs if any(errs) else None


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


#: The files :func:`write_report` writes into the output folder.
REPORT_FILES = (
    "evidence_containment.md",
    "evidence_containment.png",
    "accuracy_by_evidence.md",
    "accuracy_by_evidence.png",
    "gain_vs_budget.md",
    "gain_vs_budget.png",
    "mechanism.json",
)


def write_report(rep: Report, params: dict, out_dir: str | Path) -> list[Path]:
    """Markdown + PNG of each part, and ``mechanism.json``."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = {
        "evidence_containment": (containment_markdown(rep), plot_containment),
        "accuracy_by_evidence": (accuracy_markdown(rep), plot_accuracy),
        "gain_vs_budget": (budget_markdown(rep, params), plot_budget),
    }
    for name, (md, plot) in parts.items():
        (out / f"{name}.md").write_text(md)
        fig = plot(rep)
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
    (out / "mechanism.json").write_text(json.dumps(report_json(rep), indent=1, allow_nan=False))
    return [out / f for f in REPORT_FILES]
