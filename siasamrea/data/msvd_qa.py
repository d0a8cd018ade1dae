"""Readers for MSVD-QA and MSRVTT-QA (Xu et al., ACM MM 2017), which share one layout.

Format:

* One JSON array per split: ``train_qa.json``, ``val_qa.json``, ``test_qa.json``. MSVD-QA items are
  ``{"answer", "id", "question", "video_id"}``; MSRVTT-QA items carry an extra ``category_id``
  (the MSR-VTT video category, validated as an integer when present but not stored).
* ``id`` is an integer question id, unique across the three splits (kept as the string ``qid``).
  ``video_id`` is an integer.
* MSVD-QA: ``video_id`` k is line k (1-based) of ``youtube_mapping.txt``, whose lines read
  ``<YouTubeID>_<start>_<end> vid<k>``. The record's ``video_id`` is ``vid<k>``; the video is
  ``<root>/<video_dir>/vid<k>.<ext>`` (``ext`` defaults to ``avi``). With ``video_naming="youtube"``
  the file name is the mapping's ``<YouTubeID>_<start>_<end>`` instead, which is how the raw MSVD
  ``YouTubeClips`` archive names its clips. The mapping is required and checked (line k must say
  ``vid<k>``); a ``video_id`` outside the mapping is a bad row.
* MSRVTT-QA: ``video_id`` k is the MSR-VTT clip ``video<k>``, the video ``<root>/<video_dir>/video<k>.mp4``.
* ``question_type`` is the first word of the question when it is one of what/who/how/when/where and
  ``"other"`` otherwise, the grouping the MSVD-QA/MSRVTT-QA papers report accuracy by.
* Answers are single words; the reader keeps them exactly as written (no normalisation).

Rows are JSON item indices, 0-based (``source="train_qa.json:17"`` is ``data[17]``). A file that is not
valid JSON, or not a JSON array, raises :class:`AnnotationError` whatever ``on_error`` says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siasamrea.core.choices import TaskKind

from .records import AnnotationError, QARecord, ReadResult, handle_bad_row

SPLITS = ("train", "val", "test")
QUESTION_TYPES = ("what", "who", "how", "when", "where", "other")
MSVD_MAPPING_FILE = "youtube_mapping.txt"


def question_type(question: str) -> str:
    """The MSVD-QA/MSRVTT-QA question type: first word if it is a wh-word in :data:`QUESTION_TYPES`."""
    words = question.split(maxsplit=1)
    first = words[0].lower() if words else ""
    return first if first in QUESTION_TYPES[:-1] else "other"


def annotation_file(root: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise AnnotationError(root, None, f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    return Path(root) / f"{split}_qa.json"


def available_splits(root: str | Path) -> list[str]:
    return [s for s in SPLITS if annotation_file(root, s).is_file()]


def read_msvd_mapping(path: str | Path) -> list[str]:
    """``youtube_mapping.txt`` -> list whose item k-1 is the ``<YouTubeID>_<start>_<end>`` of ``vid<k>``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MSVD-QA video mapping not found: {path}")
    names = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.split()
            if len(parts) != 2 or parts[1] != f"vid{line_no}":
                expected = f"'<YouTubeID>_<start>_<end> vid{line_no}'"
                raise AnnotationError(path, line_no, f"bad mapping line: expected {expected}, got {line!r}")
            names.append(parts[0])
    return names


def read_msvd_qa(
    root: str | Path,
    split: str,
    *,
    on_error: str = "raise",
    video_dir: str = "videos",
    ext: str = "avi",
    video_naming: str = "vid",
    mapping_file: str = MSVD_MAPPING_FILE,
) -> ReadResult:
    """Read one MSVD-QA split from ``root`` (the folder with ``*_qa.json`` and ``youtube_mapping.txt``).

    ``video_naming`` is ``"vid"`` (``vid<k>.<ext>``) or ``"youtube"`` (``<YouTubeID>_<start>_<end>.<ext>``).
    """
    if video_naming not in ("vid", "youtube"):
        raise ValueError(f"video_naming must be 'vid' or 'youtube', got {video_naming!r}")
    path = _split_file(root, split, "MSVD-QA")
    mapping = read_msvd_mapping(Path(root) / mapping_file)

    def video(k: int) -> tuple[str, str] | None:
        if not 1 <= k <= len(mapping):
            return None
        return f"vid{k}", (f"vid{k}" if video_naming == "vid" else mapping[k - 1])

    return _read_qa_json("msvd-qa", path, Path(root), split, on_error, video, video_dir, ext)


def read_msrvtt_qa(
    root: str | Path,
    split: str,
    *,
    on_error: str = "raise",
    video_dir: str = "videos",
    ext: str = "mp4",
) -> ReadResult:
    """Read one MSRVTT-QA split from ``root``; videos are ``<root>/<video_dir>/video<k>.<ext>``."""
    path = _split_file(root, split, "MSRVTT-QA")

    def video(k: int) -> tuple[str, str] | None:
        return (f"video{k}", f"video{k}") if k >= 0 else None

    return _read_qa_json("msrvtt-qa", path, Path(root), split, on_error, video, video_dir, ext)


def _split_file(root: str | Path, split: str, label: str) -> Path:
    path = annotation_file(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"{label} {split} annotation file not found: {path}")
    return path


def load_json_array(path: Path) -> list[Any]:
    """Parse a JSON file that must hold an array; anything else is an :class:`AnnotationError`."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, None, f"bad JSON: {exc}") from exc
    if not isinstance(data, list):
        raise AnnotationError(path, None, f"bad JSON: expected an array of items, got {type(data).__name__}")
    return data


def _read_qa_json(
    dataset: str,
    path: Path,
    root: Path,
    split: str,
    on_error: str,
    video: Callable[[int], tuple[str, str] | None],
    video_dir: str,
    ext: str,
) -> ReadResult:
    """The item loop shared by MSVD-QA and MSRVTT-QA; ``video(k)`` is ``(video_id, file stem)`` or None."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    ext = ext.lstrip(".")
    result = ReadResult()
    seen: set[str] = set()
    for index, item in enumerate(load_json_array(path)):
        reason = _check_item(item)
        if reason is None:
            qid = str(item["id"])
            names = video(item["video_id"])
            if qid in seen:
                reason = f"duplicate question id: {qid}"
            elif names is None:
                reason = f"unknown video: video_id {item['video_id']} has no video"
        if reason is not None:
            handle_bad_row(result, on_error, path, index, reason)
            continue
        seen.add(qid)
        video_id, file_stem = names
        question = item["question"].strip()
        result.records.append(
            QARecord(
                dataset=dataset,
                task=dataset,
                kind=TaskKind.OPEN_ENDED,
                split=split,
                qid=qid,
                video_id=video_id,
                video_path=root / video_dir / f"{file_stem}.{ext}",
                question=question,
                answer=item["answer"].strip(),
                question_type=question_type(question),
                source=f"{path.name}:{index}",
            )
        )
    return result


def _check_item(item: Any) -> str | None:
    """Why ``item`` is not a valid QA item, or ``None``."""
    if not isinstance(item, dict):
        return f"not an object: {type(item).__name__}"
    missing = [k for k in ("answer", "id", "question", "video_id") if k not in item]
    if missing:
        return f"missing keys: {', '.join(missing)}"
    for key in ("id", "video_id") + (("category_id",) if "category_id" in item else ()):
        # bool is an int subclass; True as an id is a broken file, not video 1.
        if not isinstance(item[key], int) or isinstance(item[key], bool):
            return f"bad {key}: {item[key]!r} is not an integer"
    for key in ("question", "answer"):
        if not isinstance(item[key], str):
            return f"bad {key}: {item[key]!r} is not a string"
        if not item[key].strip():
            return f"empty {key}"
    return None
