"""The Markdown of the mechanism report (:mod:`siasamrea.analysis.mechanism`): one function per part.

:func:`containment_markdown` (does the anchor clip hold the answer evidence), :func:`accuracy_markdown`
(accuracy and gap by where the evidence is) and :func:`budget_markdown` (the gap against the training
budget, with the paper's Table 1 gap), each from a :class:`~siasamrea.analysis.mechanism_data.Report`;
the cell formatting helpers first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from siasamrea.analysis import paper
from siasamrea.analysis.mechanism_data import ARM_LABELS, FIGURE_ARMS, Report, anchors_shared
from siasamrea.analysis.stats import Summary


# -- cell formatting -----------------------------------------------------------------------------------------
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


# -- the three parts -----------------------------------------------------------------------------------------
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
