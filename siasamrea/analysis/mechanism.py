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

The numbers are computed in :mod:`~siasamrea.analysis.mechanism_data` (``build_report``), written as Markdown
by :mod:`~siasamrea.analysis.mechanism_markdown` and drawn by :mod:`~siasamrea.analysis.mechanism_plots`;
:func:`write_report` here writes the three parts (Markdown + PNG) and ``mechanism.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from siasamrea.analysis.mechanism_data import Report, report_json
from siasamrea.analysis.mechanism_markdown import accuracy_markdown, budget_markdown, containment_markdown
from siasamrea.analysis.mechanism_plots import plot_accuracy, plot_budget, plot_containment

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
