"""The instrument table: what the embedded benchmark can measure, and whether it sees a known effect.

For each fine-tuned dataset the baseline models (every seed, last epoch) are evaluated by the engine under
the conditions of :mod:`siasamrea.training.conditions` (``instrument.json`` of each run). This module reads
them and places the baseline between its bounds:

* **answer prior**: the most frequent training answer of the question's type (multiple choice: one over the
  number of candidates), and the **question prior**: the most frequent training answer of the questions that
  begin with the same two words (VQA's question-type prior; "what color" and "what shape" share MSVD-QA's type
  "what"). A text-only model can reach the question prior by reading what kind of answer is asked for; well
  above it, the text holds a shortcut.
* **text only**: the trained model with every frame black (the floor).
* **baseline**: the anchor clip, the paper's protocol; also on the questions whose anchor shows the evidence.
* **anchor coverage** and the **anchor ceiling** it implies: a model that answers as well as with an oracle
  clip when the anchor shows the evidence and as well as text alone when not.
* **oracle clip**: one clip on the evidence (the recognition ceiling).

And the positive controls, changes known to help when the anchor often misses the evidence, as paired
differences over seeds: multi-clip inference (the anchor and its siamese clips, logits averaged) against
anchor-only inference on the same baseline models, and
every-clip supervision (the ``all_clips`` ablation) against the baseline. If their intervals include 0 the
benchmark cannot judge SiaSamRea, whatever Table 1 says.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from siasamrea.analysis.coverage import anchor_shows
from siasamrea.analysis.floors import answer_prior, question_prior
from siasamrea.analysis.results import Results, by_seed, headline_split
from siasamrea.analysis.stats import TARGET_HALF_WIDTH, Summary, mean_ci, paired_diff, seeds_needed_text
from siasamrea.analysis.tables import data_source, seeds_note
from siasamrea.training.build import load_tasks
from siasamrea.training.evidence import load_evidence, run_config

BASELINE = "baseline"
EVERY_CLIP = "all_clips"  # the ablation whose every clip is supervised by L_gt (no reasoning)


@dataclass
class SeedView:
    """One baseline run's per-question results on one split: correctness per condition, and coverage."""

    seed: int
    correct: dict[str, np.ndarray]  # condition -> bool [Q]
    covered: np.ndarray  # bool [Q]: the anchor clip shows the core evidence
    prior: float  # answer-prior accuracy on these questions
    question_prior: float  # question-prior accuracy (the first two words) on these questions


def instrument_json(run_dir: str | Path) -> dict:
    """A run's ``instrument.json`` (written when ``eval.conditions`` is set)."""
    path = Path(run_dir) / "instrument.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no instrument results (eval.conditions unset, or run unfinished)")
    return json.loads(path.read_text())


def seed_view(run_dir: str | Path, seed: int, task: str, split: str) -> SeedView:
    """Read one run: correctness under each condition, anchor coverage and the two priors."""
    inst = instrument_json(run_dir)
    entry = inst["sets"][f"{task}/{split}"]
    target = np.asarray(entry["target"])
    conditions = [c for c in entry if isinstance(entry[c], dict) and "pred" in entry[c]]
    correct = {c: np.asarray(entry[c]["pred"]) == target for c in conditions}
    cfg = run_config(run_dir)
    evidence = load_evidence(cfg.data.evidence)
    rows = json.loads((Path(run_dir) / "predictions" / f"{task}_{split}_last.json").read_text())["rows"]
    if [r["qid"] for r in rows] != entry["qid"]:
        raise ValueError(f"{run_dir}: instrument.json and predictions/{task}_{split}_last.json disagree")
    covered = anchor_shows(rows, evidence)
    tasks = {t.name: t for t in load_tasks(cfg)}
    t = tasks[task]
    kind = inst["kind"][task]
    prior = answer_prior(t.train, t.eval[split], kind)
    return SeedView(seed, correct, covered, prior, question_prior(t.train, t.eval[split], kind))


def baseline_runs(params: dict, dataset: str, results: Results) -> dict[int, str]:
    """``{seed: run_dir}`` of the finished baseline fine-tuning runs of ``dataset``."""
    df = results.df
    rows = df[(df.section == "finetune") & (df.dataset == dataset) & (df.variant == BASELINE)]
    return {int(s): d for s, d in rows[["seed", "run_dir"]].drop_duplicates().itertuples(index=False)}


def _pct(values: dict) -> Summary:
    return mean_ci({k: 100.0 * v for k, v in values.items()})


def instrument_rows(params: dict, results: Results, root: str | Path = ".") -> list[dict]:
    """One row per fine-tuned dataset: its bounds and the baseline, each a :class:`Summary` in %."""
    out = []
    for dataset in params["finetune"]["datasets"]:
        split = headline_split(params, dataset)
        views = []
        for seed, run_dir in sorted(baseline_runs(params, dataset, results).items()):
            path = Path(root) / run_dir
            if (path / "instrument.json").is_file():
                views.append(seed_view(path, seed, dataset, split))
        if not views:
            continue
        cov = {v.seed: v.covered.mean() for v in views}
        acc = {c: {v.seed: v.correct[c].mean() for v in views if c in v.correct} for c in views[0].correct}
        on_covered = {v.seed: v.correct["anchor"][v.covered].mean() for v in views if v.covered.any()}
        ceiling = {}
        for v in views:
            if "oracle" in v.correct and "blank" in v.correct:
                c = v.covered
                ceiling[v.seed] = (c.sum() * v.correct["oracle"][c].mean() if c.any() else 0.0) / len(c) + (
                    (~c).sum() * v.correct["blank"][~c].mean() if (~c).any() else 0.0
                ) / len(c)
        out.append({
            "dataset": dataset, "split": split, "questions": len(views[0].covered),
            "answer prior": 100.0 * views[0].prior,
            "question prior": 100.0 * views[0].question_prior,
            "text only": _pct(acc.get("blank", {})),
            "baseline": _pct(acc["anchor"]),
            "baseline, anchor shows evidence": _pct(on_covered),
            "multi-clip": _pct(acc.get("multi_clip", {})),
            "anchor coverage": _pct(cov),
            "anchor ceiling": _pct(ceiling),
            "oracle clip": _pct(acc.get("oracle", {})),
        })  # fmt: skip
    return out


def positive_controls(
    params: dict, results: Results, root: str | Path = ".", value: str = "last"
) -> list[dict]:
    """Paired differences (in points) that should come out positive on a working instrument."""
    out = []
    for dataset in params["finetune"]["datasets"]:
        split = headline_split(params, dataset)
        multi, anchor = {}, {}
        for seed, run_dir in baseline_runs(params, dataset, results).items():
            path = Path(root) / run_dir / "instrument.json"
            if path.is_file():
                entry = json.loads(path.read_text())["sets"][f"{dataset}/{split}"]
                if "multi_clip" in entry:
                    multi[seed] = 100.0 * entry["multi_clip"]["metrics"]["acc"]
                    anchor[seed] = 100.0 * entry["anchor"]["metrics"]["acc"]
        if multi:
            out.append({"control": "multi-clip inference − anchor-only inference (baseline models)",
                        "dataset": dataset, "split": split, "gap": paired_diff(multi, anchor)})  # fmt: skip
        df = results.df
        every = by_seed(df, value, section="ablations", dataset=dataset, variant=EVERY_CLIP, split=split)
        base = by_seed(df, value, section="finetune", dataset=dataset, variant=BASELINE, split=split)
        if every and base:
            scaled = {k: 100.0 * v for k, v in every.items()}, {k: 100.0 * v for k, v in base.items()}
            out.append({"control": "every clip supervised (all_clips) − baseline",
                        "dataset": dataset, "split": split, "gap": paired_diff(*scaled)})  # fmt: skip
    return out


def _cell(x) -> str:
    if isinstance(x, Summary):
        return x.format(digits=1) if x.n else "—"
    if isinstance(x, float):
        return f"{x:.1f}"
    return str(x)


def verdict(gap: Summary) -> str:
    if gap.n < 2 or not gap.has_interval:
        return "too few seeds to tell"
    if gap.lo > 0:
        return "positive (interval excludes 0)"
    if gap.hi < 0:
        return "negative (interval excludes 0)"
    return "not resolved (interval includes 0)"


def to_markdown(params: dict, rows: list[dict], controls: list[dict]) -> str:
    datasets = [r["dataset"] for r in rows]
    lines = [
        f"**{data_source(params, datasets)}**",
        "",
        "Baseline models (fine-tuned, last epoch), mean over seeds ± 95% t-interval half-width, accuracy "
        "in %. Answer prior: each question answered with its type's most frequent training answer; question "
        "prior: with that of the training questions beginning with the same two words (what a model reading "
        "only the kind of question can score). Text only: every frame black. Oracle clip: one clip on the "
        "video's core evidence. Anchor ceiling: oracle accuracy where the anchor shows the evidence, "
        "text-only accuracy where it does not. "
        "Multi-clip: the anchor and its siamese clips (the frames between the anchor's), logits averaged."
        + f" {seeds_note(params)}".rstrip(),
        "",
    ]
    if rows:
        table = pd.DataFrame([{k: _cell(v) for k, v in r.items()} for r in rows])
        lines += [table.to_markdown(index=False, floatfmt=".1f"), ""]  # 24.0, not 24
    else:
        lines += ["No baseline run has instrument results (set `eval.conditions`).", ""]
    lines += [
        "Positive controls (paired over seeds, points; the last column: the seeds a half-width of "
        f"±{TARGET_HALF_WIDTH} points would need at this seed-to-seed spread):",
        "",
    ]
    if controls:
        need = f"seeds for ±{TARGET_HALF_WIDTH}"  # at the spread over these seeds
        table = pd.DataFrame([{"control": c["control"], "dataset": c["dataset"], "split": c["split"],
                               "n": c["gap"].n, "gap": c["gap"].format(digits=1, sign=True),
                               "reading": verdict(c["gap"]), need: seeds_needed_text(c["gap"])}
                              for c in controls])  # fmt: skip
        lines += [table.to_markdown(index=False), ""]
    else:
        lines += ["No positive control has results.", ""]
    return "\n".join(lines)


BARS = (
    "answer prior",
    "question prior",
    "text only",
    "baseline",
    "multi-clip",
    "anchor ceiling",
    "oracle clip",
)
COLORS = ("#dddddd", "#bbbbbb", "#888888", "#1f77b4", "#2ca02c", "#ff7f0e", "#d62728")


def plot(params: dict, rows: list[dict]):
    """One panel per dataset: the bounds and the baseline as points with intervals."""
    fig, axes = plt.subplots(1, max(len(rows), 1), figsize=(6.4 * max(len(rows), 1), 3.8), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=False):
        for i, (name, color) in enumerate(zip(BARS, COLORS, strict=True)):
            v = r[name]
            mean, half = (v.mean, v.half if v.has_interval else 0.0) if isinstance(v, Summary) else (v, 0.0)
            if np.isnan(mean):
                continue
            ax.barh(i, mean, color=color, alpha=0.85)
            ax.errorbar(mean, i, xerr=half, color="black", capsize=3, lw=1)
            if mean + half + 1.5 < 90:
                ax.text(mean + half + 1.5, i, f"{mean:.1f}", va="center", fontsize=8)
            else:  # no room right of the error bar: inside the bar
                ax.text(
                    mean - half - 1.5, i, f"{mean:.1f}", va="center", ha="right", fontsize=8, color="white"
                )
        ax.set_yticks(range(len(BARS)), BARS)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy (%)")
        ax.set_title(f"{r['dataset']}-like ({r['split']}, {r['questions']} questions)", fontsize=10)
    title = f"The instrument's bounds — {data_source(params, [r['dataset'] for r in rows])}"
    fig.suptitle(textwrap.fill(title, 90), fontsize=8)
    fig.tight_layout()
    return fig


def write(params: dict, results: Results, out: str | Path, root: str | Path = ".") -> dict:
    """``instrument.md``, ``instrument.png`` and ``instrument.json`` in ``out``; returns the JSON."""
    out = Path(out)
    rows = instrument_rows(params, results, root)
    controls = positive_controls(params, results, root)
    (out / "instrument.md").write_text(to_markdown(params, rows, controls))
    fig = plot(params, rows)
    fig.savefig(out / "instrument.png", dpi=130)
    plt.close(fig)
    record = {
        "rows": [{k: (v.as_dict() if isinstance(v, Summary) else v) for k, v in r.items()} for r in rows],
        "controls": [
            {**{k: v for k, v in c.items() if k != "gap"}, "gap": c["gap"].as_dict()} for c in controls
        ],  # fmt: skip
    }
    (out / "instrument.json").write_text(json.dumps(record, indent=1, default=float))
    return record
