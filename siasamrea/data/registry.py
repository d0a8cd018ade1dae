"""One entry point over the five dataset readers, and the summary ``python -m siasamrea.data stats`` prints.

``read_split(name, root, split, task=..., on_error=..., **options)`` dispatches to the dataset's reader;
``options`` are that reader's keyword arguments (e.g. ``video_dir``, ``ext``, ``val_fraction`` for TGIF-QA,
``seed`` for How2QA). Only TGIF-QA has several tasks; for the other datasets ``task`` must be ``None`` or the
dataset name.
"""

from __future__ import annotations

import inspect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from siasamrea.core.choices import DATASET_TASKS, TaskKind

from . import activitynet_qa, how2qa, msvd_qa, tgif_qa
from .records import ReadResult
from .vocab import AnswerVocab


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's reader and what it offers."""

    name: str
    reader: Callable[..., ReadResult]
    splits_in: Callable[[str | Path], list[str]]
    tasks: tuple[str, ...]


DATASETS: dict[str, DatasetSpec] = {
    "tgif-qa": DatasetSpec(
        "tgif-qa", tgif_qa.read_tgif_qa, tgif_qa.available_splits, DATASET_TASKS["tgif-qa"]
    ),
    "msvd-qa": DatasetSpec(
        "msvd-qa", msvd_qa.read_msvd_qa, msvd_qa.available_splits, DATASET_TASKS["msvd-qa"]
    ),
    "msrvtt-qa": DatasetSpec(
        "msrvtt-qa", msvd_qa.read_msrvtt_qa, msvd_qa.available_splits, DATASET_TASKS["msrvtt-qa"]
    ),
    "activitynet-qa": DatasetSpec(
        "activitynet-qa",
        activitynet_qa.read_activitynet_qa,
        activitynet_qa.available_splits,
        DATASET_TASKS["activitynet-qa"],
    ),
    "how2qa": DatasetSpec("how2qa", how2qa.read_how2qa, how2qa.available_splits, DATASET_TASKS["how2qa"]),
}


def get_dataset(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` for ``name``; a ``ValueError`` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None


#: Reader arguments that are not options: the caller passes them itself.
_NOT_OPTIONS = ("root", "split", "task", "on_error")


def reader_options(name: str) -> tuple[str, ...]:
    """The keyword options of dataset ``name``'s reader (what ``data.reader`` / ``stats --option`` accept)."""
    params = inspect.signature(get_dataset(name).reader).parameters
    return tuple(p for p in params if p not in _NOT_OPTIONS)


def read_split(
    name: str,
    root: str | Path,
    split: str,
    *,
    task: str | Iterable[str] | None = None,
    on_error: str = "raise",
    **options,
) -> ReadResult:
    """Read ``split`` of dataset ``name`` from the annotation folder ``root``.

    Raises ``ValueError`` for an unknown dataset or task, ``FileNotFoundError`` (naming the path) for a
    missing annotation file, :class:`~siasamrea.data.records.AnnotationError` for a malformed row when
    ``on_error="raise"``.
    """
    spec = get_dataset(name)
    unknown = [k for k in options if k not in reader_options(name)]
    if unknown:
        raise ValueError(
            f"{name} reader has no option {unknown[0]!r}; known options: {', '.join(reader_options(name))}"
        )
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{name} annotation folder not found: {root}")
    if spec.name == "tgif-qa":
        return spec.reader(root, split, task=task, on_error=on_error, **options)
    if task is not None and task != spec.name:
        raise ValueError(f"{name} has no task {task!r}; it has a single task, {spec.name!r}")
    return spec.reader(root, split, on_error=on_error, **options)


def split_files(name: str, root: str | Path, split: str, task: str | None = None) -> list[Path]:
    """The annotation files ``split`` of dataset ``name`` is read from (for messages about them)."""
    spec = get_dataset(name)
    if spec.name == "tgif-qa":
        return [tgif_qa.annotation_file(root, split, t) for t in ([task] if task else spec.tasks)]
    if spec.name == "how2qa":
        path = how2qa.annotation_file(root, split)
        return [path] if path is not None else []
    if spec.name == "activitynet-qa":
        return list(activitynet_qa.annotation_files(root, split))
    return [msvd_qa.annotation_file(root, split)]


def empty_split_message(name: str, root: str | Path, split: str, result: ReadResult, task=None) -> str:
    """Why ``split`` has no questions, naming its files (an empty file, or every row skipped)."""
    files = ", ".join(str(p) for p in split_files(name, root, split, task)) or str(root)
    what = f"{name} {split} split" + (f" (task {task})" if task and task != name else "")
    if result.skipped:
        return f"{what} has no questions: every row of {files} was skipped ({len(result.skipped)} rows)"
    return f"{what} has no questions: {files} holds none"


def available_splits(name: str, root: str | Path) -> list[str]:
    """The splits of ``name`` whose annotation files are present in ``root`` (in train, val, test order).

    For TGIF-QA, ``val`` is listed whenever ``train`` is (it is carved out of the train files).
    """
    return get_dataset(name).splits_in(root)


def summarize(result: ReadResult, vocab: AnswerVocab | None = None) -> dict:
    """JSON-serialisable statistics of a :class:`ReadResult`.

    Keys: ``questions``, ``videos`` (distinct ``(dataset, video_id)``), ``datasets``, ``splits``,
    ``per_task`` (questions, videos, kind and question-type counts per task), ``per_kind``,
    ``per_question_type`` (over all tasks; records without a type count under ``"none"``),
    ``answer_vocab_size`` (distinct answers of the open-ended questions), ``vocab`` (only when ``vocab``
    is given: its size and the in-vocabulary / OOV question counts) and ``skipped`` (``total``,
    ``by_reason``).
    Skip reasons are grouped by the text before their first ``": "`` (the readers write
    ``"<reason>: <detail>"``), so ``"bad answer index: 7 not in 0..4"`` counts as ``"bad answer index"``.
    """
    records = result.records
    per_task: dict[str, dict] = {}
    by_task: dict[str, list] = defaultdict(list)
    for record in records:
        by_task[record.task].append(record)
    for task, task_records in sorted(by_task.items()):
        per_task[task] = {
            "questions": len(task_records),
            "videos": len({r.video_id for r in task_records}),
            "kind": _sorted_counts(r.kind.value for r in task_records),
            "per_question_type": _sorted_counts(_type_name(r.question_type) for r in task_records),
        }
    open_ended = [r for r in records if r.kind is TaskKind.OPEN_ENDED]
    summary = {
        "questions": len(records),
        "videos": len({(r.dataset, r.video_id) for r in records}),
        "datasets": sorted({r.dataset for r in records}),
        "splits": sorted({r.split for r in records}),
        "per_task": per_task,
        "per_kind": _sorted_counts(r.kind.value for r in records),
        "per_question_type": _sorted_counts(_type_name(r.question_type) for r in records),
        "answer_vocab_size": len({r.answer for r in open_ended}),
        "skipped": {
            "total": len(result.skipped),
            "by_reason": _sorted_counts(s.reason.split(": ", 1)[0] for s in result.skipped),
        },
    }
    if vocab is not None:
        coverage = vocab.coverage(records)
        summary["vocab"] = {"size": len(vocab), "in_vocab": coverage.in_vocab, "oov": coverage.oov}
    return summary


def _type_name(question_type: str | None) -> str:
    return "none" if question_type is None else question_type


def _sorted_counts(values: Iterable[str]) -> dict[str, int]:
    """Counts, most frequent first, ties by name: stable output for diffs and JSON."""
    return dict(sorted(Counter(values).items(), key=lambda item: (-item[1], item[0])))
