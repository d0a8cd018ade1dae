"""Reader for ActivityNet-QA (Yu et al., AAAI 2019), release ``MILVLG/activitynet-qa/dataset``.

Format:

* Questions and answers are separate single-line JSON arrays per split: ``<split>_q.json`` with items
  ``{"video_name", "question", "question_id"}`` and ``<split>_a.json`` with items
  ``{"answer", "type", "question_id"}``. The release keeps both in the same order, but the reader joins on
  ``question_id`` (``v_<video_name>_<n>``) rather than trusting the order, and checks the join: a
  ``question_id`` repeated within a file, a question without an answer or an answer without a question is a
  bad row naming the file and item index.
* ``type``: 0 motion, 1 spatial, 2 temporal, 3 yes_no, 4 color, 5 object, 6 location, 7 number, 8 other
  (0-2 are the question types of the paper, 3-8 the answer types of its "free" questions); stored by name
  in ``question_type``.
* ``video_name`` is the YouTube id without the ActivityNet ``v_`` prefix; the video is expected at
  ``<root>/<video_dir>/<prefix><video_name>.<ext>``. ActivityNet's videos come as .mp4, .mkv and .webm
  (whatever YouTube served), so by default (``ext="auto"``) the reader lists ``video_dir`` once and takes
  each video's file whatever its extension; a video with no file gets the ``.mp4`` path (reported
  missing when read), and a stem with several files is a bad row naming them.
* Questions are lower-case with no question mark; 225 val and 181 test questions end in a space, which the
  reader strips. Answers are open-ended (``"yes"``, ``"1"``, ``"male"`` ...) and kept exactly as written.

Rows are 0-based JSON item indices; ``source`` names the questions file (``"val_q.json:12"``).
Records come out in the order of the questions file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siasamrea.core.choices import TaskKind

from .msvd_qa import load_json_array
from .records import AnnotationError, QARecord, ReadResult, handle_bad_row

DATASET = "activitynet-qa"
SPLITS = ("train", "val", "test")
QUESTION_TYPES = ("motion", "spatial", "temporal", "yes_no", "color", "object", "location", "number", "other")


def annotation_files(root: str | Path, split: str) -> tuple[Path, Path]:
    """``(<split>_q.json, <split>_a.json)`` under ``root``."""
    if split not in SPLITS:
        raise AnnotationError(root, None, f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    return Path(root) / f"{split}_q.json", Path(root) / f"{split}_a.json"


def available_splits(root: str | Path) -> list[str]:
    return [s for s in SPLITS if all(p.is_file() for p in annotation_files(root, s))]


def read_activitynet_qa(
    root: str | Path,
    split: str,
    *,
    on_error: str = "raise",
    video_dir: str = "videos",
    ext: str = "auto",
    prefix: str = "v_",
) -> ReadResult:
    """Read one ActivityNet-QA split from ``root`` (the folder with ``<split>_{q,a}.json``)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    q_path, a_path = annotation_files(root, split)
    for path in (q_path, a_path):
        if not path.is_file():
            raise FileNotFoundError(f"ActivityNet-QA {split} annotation file not found: {path}")
    result = ReadResult()
    # Ids of bad items: the item they pair with is lost with them, and counted once, as their bad row.
    bad_answers: set[str] = set()
    bad_questions: set[str] = set()
    answers = _index_answers(a_path, result, on_error, bad_answers)
    questions = _index_questions(q_path, result, on_error, bad_questions)

    # Answers nobody asked for: reported against the answers file, in file order.
    for qid, (index, _) in answers.items():
        if qid not in questions and qid not in bad_questions:
            reason = f"unmatched question id: {qid!r} not in {q_path.name}"
            handle_bad_row(result, on_error, a_path, index, reason)

    ext = ext.lstrip(".")
    by_stem = _index_videos(Path(root) / video_dir) if ext == "auto" else None
    for qid, (index, item) in questions.items():
        if qid not in answers:
            if qid in bad_answers:  # already counted once, as the bad answer it lost
                continue
            reason = f"unmatched question id: {qid!r} not in {a_path.name}"
            handle_bad_row(result, on_error, q_path, index, reason)
            continue
        answer = answers[qid][1]
        video_name = item["video_name"].strip()
        if by_stem is None:
            video_path = Path(root) / video_dir / f"{prefix}{video_name}.{ext}"
        else:
            found = by_stem.get(f"{prefix}{video_name}", [])
            if len(found) > 1:
                reason = f"ambiguous video: {', '.join(sorted(p.name for p in found))}"
                handle_bad_row(result, on_error, q_path, index, reason)
                continue
            video_path = found[0] if found else Path(root) / video_dir / f"{prefix}{video_name}.mp4"
        result.records.append(
            QARecord(
                dataset=DATASET,
                task=DATASET,
                kind=TaskKind.OPEN_ENDED,
                split=split,
                qid=qid,
                video_id=video_name,
                video_path=video_path,
                question=item["question"].strip(),
                answer=answer["answer"].strip(),
                question_type=QUESTION_TYPES[answer["type"]],
                source=f"{q_path.name}:{index}",
            )
        )
    return result


def _index_videos(folder: Path) -> dict[str, list[Path]]:
    """File stem -> files in ``folder`` (one listing instead of a lookup per question)."""
    out: dict[str, list[Path]] = {}
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.is_file() and not entry.name.startswith("."):
                out.setdefault(Path(entry.name).stem, []).append(Path(entry.path))
    return out


def _index_questions(
    path: Path, result: ReadResult, on_error: str, bad_ids: set[str] | None = None
) -> dict[str, tuple[int, dict]]:
    return _index(path, result, on_error, ("video_name", "question", "question_id"), _check_question, bad_ids)


def _index_answers(
    path: Path, result: ReadResult, on_error: str, bad_ids: set[str] | None = None
) -> dict[str, tuple[int, dict]]:
    return _index(path, result, on_error, ("answer", "type", "question_id"), _check_answer, bad_ids)


def _index(
    path: Path,
    result: ReadResult,
    on_error: str,
    keys: tuple[str, ...],
    check: Callable[[dict], str | None],
    bad_ids: set[str] | None = None,
) -> dict[str, tuple[int, dict]]:
    """question_id -> (item index, item) for the valid items of one file; bad ones to ``handle_bad_row``
    (and their question ids, where readable, to ``bad_ids``)."""
    out: dict[str, tuple[int, dict]] = {}
    for index, item in enumerate(load_json_array(path)):
        reason = _check_keys(item, keys) or check(item)
        if reason is None and item["question_id"] in out:
            first = out[item["question_id"]][0]
            reason = f"duplicate question id: {item['question_id']!r} (also item {first})"
        if reason is not None:
            handle_bad_row(result, on_error, path, index, reason)
            if bad_ids is not None and isinstance(item, dict) and isinstance(item.get("question_id"), str):
                bad_ids.add(item["question_id"])
            continue
        out[item["question_id"]] = (index, item)
    return out


def _check_keys(item: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return f"not an object: {type(item).__name__}"
    missing = [k for k in keys if k not in item]
    if missing:
        return f"missing keys: {', '.join(missing)}"
    if not isinstance(item["question_id"], str) or not item["question_id"].strip():
        return f"bad question_id: {item['question_id']!r}"
    return None


def _check_question(item: dict) -> str | None:
    return _nonempty_strings(item, ("question", "video_name"))


def _check_answer(item: dict) -> str | None:
    kind = item["type"]
    # bool is an int subclass; reject it along with floats and strings.
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind < len(QUESTION_TYPES):
        return f"bad question type: {kind!r} not in 0..{len(QUESTION_TYPES) - 1}"
    return _nonempty_strings(item, ("answer",))


def _nonempty_strings(item: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if not isinstance(item[key], str):
            return f"bad {key}: {item[key]!r} is not a string"
        if not item[key].strip():
            return f"empty {key}"
    return None
