"""What a model that never looks at the video scores: the floors every accuracy is read against.

* open-ended: each question answered with its type's most frequent training answer (the answer prior), or
  with the most frequent training answer of the questions that begin with the same words (the question prior,
  VQA's question-type prior: "what color" and "what shape" are both of MSVD-QA's type "what"; only the words
  tell a colour question from a shape question, and a model that reads them may use that);
* multiple choice: a uniform guess among the candidates;
* count: the training answers' mean (its mean squared error on the test questions).

The instrument table (:mod:`siasamrea.analysis.instrument`) sets the text-only model against the first two;
Table 5 sets the TGIF-QA-like tasks against all three. On a dataset's own annotation files (a real release, no
videos needed)::

    python -m siasamrea.analysis.floors --dataset tgif-qa --root data/real/tgif-qa \\
        [--split test] [--reference train] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from siasamrea.core.choices import TaskKind
from siasamrea.data.cli import _options
from siasamrea.data.records import QARecord
from siasamrea.data.registry import read_split
from siasamrea.training.build import kept_videos, load_tasks
from siasamrea.training.evidence import run_config


def _lookup_accuracy(train_records: list[QARecord], eval_records: list[QARecord], *keys) -> float:
    """Accuracy of answering each question with the most frequent training answer of the first of ``keys``
    (functions of a record) under which training questions were seen; every training answer if none."""
    tables = [{} for _ in keys]
    for r in train_records:
        for table, key in zip(tables, keys, strict=True):
            table.setdefault(key(r), Counter())[r.answer] += 1
    overall = Counter(r.answer for r in train_records)
    hits = []
    for r in eval_records:
        counts = next((c for t, key in zip(tables, keys, strict=True) if (c := t.get(key(r)))), overall)
        hits.append(counts.most_common(1)[0][0] == r.answer)
    return float(np.mean(hits))


def _question_type(r: QARecord):
    return r.question_type


def answer_prior(train_records: list[QARecord], eval_records: list[QARecord], kind: str) -> float:
    """Accuracy of answering every question with its type's most frequent training answer.

    Multiple choice: the expected accuracy of a uniform guess among the candidates.
    """
    if kind == "multiple_choice":
        return float(np.mean([1.0 / len(r.candidates) for r in eval_records]))
    return _lookup_accuracy(train_records, eval_records, _question_type)


def question_prior(
    train_records: list[QARecord], eval_records: list[QARecord], kind: str, words: int = 2
) -> float:
    """Accuracy of answering every question with the most frequent training answer of the questions that
    begin with the same ``words`` words (falling back to its type's, then to every training answer).

    This is the most a model can score from the question's kind alone; a text-only model well above it
    reads something else in the text (a shortcut). Multiple choice: as :func:`answer_prior`.
    """
    if kind == "multiple_choice":
        return answer_prior(train_records, eval_records, kind)
    if words < 1:
        raise ValueError(f"question_prior: words must be at least 1, got {words}")

    def prefix(r: QARecord) -> tuple[str, ...]:
        return tuple(r.question.lower().split()[:words])

    return _lookup_accuracy(train_records, eval_records, prefix, _question_type)


def mean_predictor_mse(train_records: list[QARecord], eval_records: list[QARecord]) -> float:
    """Mean squared error of answering every count question with the training answers' mean."""
    mean = float(np.mean([float(r.answer) for r in train_records]))
    return float(np.mean([(float(r.answer) - mean) ** 2 for r in eval_records]))


def task_floors(run_dir: str | Path, split: str) -> dict[str, tuple[str, float]]:
    """Per task of a run: ``(metric, floor)`` on ``split`` from the run's own training questions (after the
    frame filter it trained with): ``("acc", prior)`` or ``("mse", mean predictor's MSE)``."""
    cfg = run_config(run_dir)
    keep = kept_videos(cfg)
    out = {}
    for t in load_tasks(cfg):
        if split not in t.eval:
            continue
        train = [r for r in t.train if keep is None or r.video_path.stem in keep]  # as VideoQADataset filters
        if t.kind == TaskKind.COUNT.value:
            out[t.name] = ("mse", mean_predictor_mse(train, t.eval[split]))
        else:
            out[t.name] = ("acc", answer_prior(train, t.eval[split], t.kind))
    return out


def dataset_floors(
    name: str, root: str | Path, split: str = "test", reference: str = "train", **reader_options
) -> dict[str, dict]:
    """Per task of a dataset's annotation files: the floors of ``split`` from the answers of ``reference``
    (the training split; a release without one can use another, e.g. ActivityNet-QA's val), over every
    annotated question (the paper's frame filter needs the videos). ``{task: {"kind", "questions",
    "skipped", and "answer prior" and "question prior" (accuracy) or "training mean MSE"}}``, or
    ``{"missing": why}`` for a task found in one of the two splits only; rows a reader skips are counted per
    split under ``"skipped"``."""
    if split == reference:
        raise ValueError(f"split and reference are both {split!r}: the floors would be fitted on its answers")
    ref = read_split(name, root, reference, on_error="skip", **reader_options)
    held = read_split(name, root, split, on_error="skip", **reader_options)
    by_task: dict[str, dict[str, list[QARecord]]] = defaultdict(lambda: {reference: [], split: []})
    for part, result in ((reference, ref), (split, held)):
        for r in result.records:
            by_task[r.task][part].append(r)
    out = {}
    for task, parts in sorted(by_task.items()):
        if not parts[reference] or not parts[split]:  # e.g. a release whose train files are not all there
            out[task] = {"missing": f"no {reference if not parts[reference] else split} questions"}
            continue
        kind = TaskKind(parts[split][0].kind).value
        row = {"kind": kind, "questions": len(parts[split]),
               "skipped": {reference: len(ref.skipped), split: len(held.skipped)}}  # fmt: skip
        if kind == TaskKind.COUNT.value:
            row["training mean MSE"] = mean_predictor_mse(parts[reference], parts[split])
        else:
            row["answer prior"] = answer_prior(parts[reference], parts[split], kind)
            row["question prior"] = question_prior(parts[reference], parts[split], kind)
        out[task] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m siasamrea.analysis.floors", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--dataset", required=True, help="tgif-qa, msvd-qa, msrvtt-qa, activitynet-qa or how2qa")
    ap.add_argument("--root", required=True, help="the folder of its annotation files")
    ap.add_argument("--split", default="test", help="the split to score")
    ap.add_argument("--reference", default="train", help="the split whose answers the floors use")
    ap.add_argument("--option", action="append", default=[], help="reader option key=value")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        found = dataset_floors(args.dataset, args.root, args.split, args.reference, **_options(args.option))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found, indent=1))
        return 0
    for task, row in found.items():
        if "missing" in row:
            print(f"{task}: {row['missing']} (no floor)")
            continue
        values = ", ".join(
            f"{k} {v:.3f}" if k.endswith("MSE") else f"{k} {100 * v:.1f}%"
            for k, v in row.items()
            if k not in ("kind", "questions", "skipped")
        )
        print(f"{task} ({row['kind']}, {row['questions']} {args.split} questions): {values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
