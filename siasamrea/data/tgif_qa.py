"""Reader for the official TGIF-QA annotation release (Jang et al., CVPR 2017).

Format (checked on the files in ``YunseokJANG/tgif-qa/dataset``):

* One file per task and split: ``Train_<task>_question.csv`` and ``Test_<task>_question.csv`` with
  ``<task>`` in ``action``, ``transition``, ``count``, ``frameqa``.
* Despite the ``.csv`` name the files are **tab**-separated, with a header line and CRLF line endings.
  Fields that contain a double quote are CSV-quoted with the quote doubled (two candidates in
  ``Test_transition_question.csv`` decode to ``respond "no"`` and ``write "i love you"``), so the files are
  read with :mod:`csv` (tab delimiter, standard quoting), not by splitting lines on tabs.
* Columns (the header line must name exactly these, in this order):

  - action, transition: ``gif_name question a1 a2 a3 a4 a5 answer vid_id key``; ``answer`` is a 0-based
    index into ``a1..a5`` (5-way multiple choice).
  - count: ``gif_name question answer vid_id key``; ``answer`` is a non-negative integer
    (``10`` also stands for the "10 or more times" questions). :attr:`TaskKind.COUNT`.
  - frameqa: ``gif_name question answer type vid_id key description``; open-ended single-word answers,
    ``type`` 0 object, 1 number, 2 color, 3 location (kept as those names in ``question_type``).

* ``vid_id`` (``ACTION12``, ``COUNT3``, ``FRAMEQA1159``, ``TRANS24``) is unique per question and is used
  as ``qid``; ``key`` is an integer per GIF, one-to-one with ``gif_name`` (the reader checks this within
  a file). ``video_id`` is the ``gif_name``.

Validation split: TGIF-QA has no official one. ``split="val"`` is carved out of the *train* file: a GIF
goes to val when a SHA-256 hash of ``(seed, gif_name)`` falls below ``val_fraction``, and ``split="train"``
returns the complement. The split is therefore by GIF, never by question (no video is in both train and
val), it is independent of row order, and the same GIF lands on the same side for every task (the action
and count train files share GIFs, so multi-task training does not leak either). The val size is
``val_fraction`` of the GIFs only in expectation (hash threshold, not an exact quota).

Row numbers are 1-based physical line numbers (the header is line 1), so ``source`` is e.g.
``"Train_count_question.csv:2"`` for the first question. Completely empty lines are ignored.
A wrong header raises :class:`AnnotationError` whatever ``on_error`` says (the whole file is unusable).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from pathlib import Path

from siasamrea.core.choices import DATASET_TASKS, TaskKind

from .records import AnnotationError, QARecord, ReadResult, handle_bad_row

DATASET = "tgif-qa"
TASKS = DATASET_TASKS["tgif-qa"]
SPLITS = ("train", "val", "test")
NUM_CHOICES = 5
FRAMEQA_TYPES = {"0": "object", "1": "number", "2": "color", "3": "location"}

_MC_COLUMNS = ("gif_name", "question", "a1", "a2", "a3", "a4", "a5", "answer", "vid_id", "key")
COLUMNS: dict[str, tuple[str, ...]] = {
    "action": _MC_COLUMNS,
    "transition": _MC_COLUMNS,
    "count": ("gif_name", "question", "answer", "vid_id", "key"),
    "frameqa": ("gif_name", "question", "answer", "type", "vid_id", "key", "description"),
}
_KIND = {
    "action": TaskKind.MULTIPLE_CHOICE,
    "transition": TaskKind.MULTIPLE_CHOICE,
    "count": TaskKind.COUNT,
    "frameqa": TaskKind.OPEN_ENDED,
}


def annotation_file(root: str | Path, split: str, task: str) -> Path:
    """The file holding ``split`` of ``task`` (val lives in the train file)."""
    _check_task(task)
    if split not in SPLITS:
        raise AnnotationError(root, None, f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    prefix = "Test" if split == "test" else "Train"
    return Path(root) / f"{prefix}_{task}_question.csv"


def is_val_gif(gif_name: str, val_fraction: float, seed: int = 0) -> bool:
    """Whether ``gif_name`` belongs to the val part carved out of the train file.

    A hash rather than a shuffled list so the decision depends on the GIF alone: the same for every task
    file, for any row order, and stable when the file grows.
    """
    digest = hashlib.sha256(f"{seed}:{gif_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def read_tgif_qa(
    root: str | Path,
    split: str,
    *,
    task: str | Iterable[str] | None = None,
    on_error: str = "raise",
    val_fraction: float = 0.1,
    seed: int = 0,
    video_dir: str = "gifs",
    ext: str = "gif",
) -> ReadResult:
    """Read ``split`` (train, val or test) of one or more TGIF-QA tasks from the folder ``root``.

    Args:
        root: folder holding the ``Train_*``/``Test_*`` question files.
        split: ``"train"``, ``"val"`` (carved from train, see the module docstring) or ``"test"``.
        task: a task name, several (every requested file must exist), or ``None`` for every task whose
            file exists for this split.
        on_error: ``"raise"`` or ``"skip"`` for malformed rows.
        val_fraction, seed: the train/val carving (ignored for test).
        video_dir, ext: videos are expected at ``<root>/<video_dir>/<gif_name>.<ext>``; pass
            ``video_dir="mp4", ext="mp4"`` for GIFs converted to MP4.
    """
    _check_on_error(on_error)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    tasks = _tasks(task)
    if task is None:
        # every task released for this split (the public repository lacks some train files)
        tasks = [t for t in tasks if annotation_file(root, split, t).is_file()]
        if not tasks:
            raise FileNotFoundError(f"no TGIF-QA {split} annotation file (*_{{task}}_question.csv) in {root}")
    ext = ext.lstrip(".")
    result = ReadResult()
    for name in tasks:
        path = annotation_file(root, split, name)
        if not path.is_file():
            raise FileNotFoundError(f"TGIF-QA {split} annotation file for task {name!r} not found: {path}")
        result.extend(_read_file(path, Path(root), split, name, on_error, val_fraction, seed, video_dir, ext))
    return result


def available_splits(root: str | Path, task: str | Iterable[str] | None = None) -> list[str]:
    """Splits readable from ``root``: those whose file exists for at least one of the tasks."""
    tasks = _tasks(task)
    return [s for s in SPLITS if any(annotation_file(root, s, t).is_file() for t in tasks)]


def _read_file(
    path: Path,
    root: Path,
    split: str,
    task: str,
    on_error: str,
    val_fraction: float,
    seed: int,
    video_dir: str,
    ext: str,
) -> ReadResult:
    result = ReadResult()
    expected = COLUMNS[task]
    seen_qids: set[str] = set()
    key_to_gif: dict[str, str] = {}
    gif_to_key: dict[str, str] = {}
    # utf-8-sig: tolerate a BOM if someone re-saved the file; newline="" lets csv handle CRLF and quotes.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != expected:
            raise AnnotationError(path, 1, f"bad header: expected columns {list(expected)}, got {header}")
        col = {name: i for i, name in enumerate(expected)}
        line = reader.line_num
        for fields in reader:
            # A quoted field may span lines: report the line where the row starts.
            row, line = line + 1, reader.line_num
            if not fields:
                continue
            gif_name = fields[0].strip()
            # A bad row is reported in the split its GIF belongs to (train or val), so it is counted once.
            if split != "test" and gif_name and is_val_gif(gif_name, val_fraction, seed) != (split == "val"):
                continue
            if split == "val" and not gif_name:
                continue  # rows without a GIF name are reported with train
            record, reason = _parse_row(fields, col, path, row, root, split, task, video_dir, ext)
            if record is not None:
                key = fields[col["key"]].strip()
                if record.qid in seen_qids:
                    reason = f"duplicate question id: {record.qid!r}"
                elif key_to_gif.setdefault(key, gif_name) != gif_name:
                    reason = f"inconsistent key: key {key} is both {key_to_gif[key]!r} and {gif_name!r}"
                elif gif_to_key.setdefault(gif_name, key) != key:
                    reason = f"inconsistent key: {gif_name!r} has keys {gif_to_key[gif_name]} and {key}"
            if reason is not None:
                handle_bad_row(result, on_error, path, row, reason)
                continue
            seen_qids.add(record.qid)
            result.records.append(record)
    return result


def _parse_row(
    fields: list[str],
    col: dict[str, int],
    path: Path,
    row: int,
    root: Path,
    split: str,
    task: str,
    video_dir: str,
    ext: str,
) -> tuple[QARecord | None, str | None]:
    """One data row -> (record, None) or (None, reason)."""
    if len(fields) != len(col):
        return None, f"wrong column count: expected {len(col)}, got {len(fields)}"
    get = lambda name: fields[col[name]].strip()
    gif_name, question, qid = get("gif_name"), get("question"), get("vid_id")
    if not gif_name:
        return None, "empty gif_name"
    if not question:
        return None, "empty question"
    if not qid:
        return None, "empty vid_id"
    if not get("key"):
        return None, "empty key"
    candidates: tuple[str, ...] = ()
    answer_index = None
    question_type = None
    raw = get("answer")
    if _KIND[task] is TaskKind.MULTIPLE_CHOICE:
        candidates = tuple(get(f"a{i}") for i in range(1, NUM_CHOICES + 1))
        if not all(candidates):
            return None, f"empty candidate: a{candidates.index('') + 1}"
        answer_index = _int_or_none(raw)
        if answer_index is None:
            return None, f"bad answer index: {raw!r} is not an integer"
        if not 0 <= answer_index < NUM_CHOICES:
            return None, f"bad answer index: {answer_index} not in 0..{NUM_CHOICES - 1}"
        answer = candidates[answer_index]
    elif task == "count":
        value = _int_or_none(raw)
        if value is None:
            return None, f"bad count: {raw!r} is not an integer"
        if value < 0:
            return None, f"bad count: {value} is negative"
        answer = str(value)
    else:  # frameqa
        if not raw:
            return None, "empty answer"
        answer = raw
        question_type = FRAMEQA_TYPES.get(get("type"))
        if question_type is None:
            return None, f"bad question type: {get('type')!r} not in {sorted(FRAMEQA_TYPES)}"
    record = QARecord(
        dataset=DATASET,
        task=task,
        kind=_KIND[task],
        split=split,
        qid=qid,
        video_id=gif_name,
        video_path=root / video_dir / f"{gif_name}.{ext}",
        question=question,
        answer=answer,
        candidates=candidates,
        answer_index=answer_index,
        question_type=question_type,
        source=f"{path.name}:{row}",
    )
    return record, None


def _int_or_none(text: str) -> int | None:
    # int() alone would accept "+3", "3_0" and non-ASCII digits; the files only ever hold plain integers.
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits.isdigit() and digits.isascii() else None


def _tasks(task: str | Iterable[str] | None) -> tuple[str, ...]:
    if task is None:
        return TASKS
    tasks = (task,) if isinstance(task, str) else tuple(task)
    for name in tasks:
        _check_task(name)
    return tasks


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown TGIF-QA task {task!r}; known tasks: {', '.join(TASKS)}")


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
