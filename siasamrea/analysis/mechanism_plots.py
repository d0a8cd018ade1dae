"""The figures of the mechanism report (:mod:`siasamrea.analysis.mechanism`), one function per part.

:func:`plot_containment` (who holds the evidence, and containment against N), :func:`plot_accuracy`
(accuracy by where the evidence is) and :func:`plot_budget` / :func:`plot_budget_table` (gap, accuracy and
compute against the training budget; the table form also redraws from ``mechanism.json``). Colours and the
shared drawing helpers first.
"""

from __future__ import annotations

import textwrap

import matplotlib.lines
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from siasamrea.analysis import paper
from siasamrea.analysis.mechanism_data import ARM_LABELS, FIGURE_ARMS, Report
from siasamrea.analysis.stats import Summary
from siasamrea.training import evidence as ev

# -- colours and drawing helpers -----------------------------------------------------------------------------
ARM_COLORS = {
    "baseline": "0.35",
    "siasamrea": "#1f77b4",
    "skr": "#17becf",
    "stop_gradient": "#9467bd",
    "all_clips": "#ff7f0e",
    "anchor_copies": "#2ca02c",
}

_EPOCH_MARKERS = ("o", "s", "^", "D", "v")


def _err(s: Summary) -> float | None:
    return s.half * 100 if s.has_interval else None


def _suptitle(fig, title: str, source: str) -> None:
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
    a, b = paper.TABLE1.get(base, {}).get(dataset), paper.TABLE1["baseline"].get(dataset)
    return None if a is None or b is None else a - b


def _datasets(*dfs: pd.DataFrame) -> list[str]:
    return sorted({d for df in dfs if not df.empty for d in df["dataset"]})


def _wrap_label(text: str, width: int = 12) -> str:
    return textwrap.fill(text, width)


def _errs(summaries) -> list[float] | None:
    """Error bar half-widths (in points), or None when no point has an interval (one seed)."""
    errs = [(_err(s) or 0.0) for s in summaries]
    return errs if any(errs) else None


def _finetune_arms(df: pd.DataFrame) -> pd.DataFrame:
    """Arms at the fine-tuning budget (finetune and ablations sections), the compared ones only."""
    return df[df["section"].isin(["finetune", "ablations"]) & df["base"].isin(("baseline", *FIGURE_ARMS))]


# -- the three figures ---------------------------------------------------------------------------------------
def plot_containment(rep: Report):
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


def plot_accuracy(rep: Report):
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


def plot_budget(rep: Report):
    return plot_budget_table(rep.budget.get("last", pd.DataFrame()), rep.source)


def plot_budget_table(df: pd.DataFrame, source: str):
    """Gap and accuracy against the training budget, one row of panels per dataset.

    With several budgets (epochs) the arms are dodged sideways so their error bars do not overlap; with one
    budget the epochs axis carries no information, so the arms are side by side on a categorical axis. In
    the compute panel the marker shape gives the epochs (legend) instead of labels on the points."""
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
    fig.suptitle("Where the gain comes from: training budget (last-epoch metric, headline split)\n"
                 + textwrap.fill(source, 170), fontsize=9)  # fmt: skip
    return fig
