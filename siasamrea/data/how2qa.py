"""Reader for How2QA (Li et al., EMNLP 2020 "HERO"), in its raw CSV release and its HERO/VALUE JSONL form.

Raw release (``ych133/How2R-and-How2QA/how2QA``): ``how2QA_val_release.csv`` and
``how2QA_test_public_release.csv``. Comma-separated with standard CSV quoting, **no header line**, 7 columns
``youtube_id, [start:end], wrong1, wrong2, wrong3, question, correct_answer``; the test file has CRLF line
endings, the val file LF (:mod:`csv` handles both). ``[start:end]`` is in seconds.

**Where the correct answer goes.** The raw rows list the three wrong answers first and the correct one
last. Keeping that order would let a model learn "the answer is always candidate 3", so the correct answer
is inserted at position ``sha256(seed, youtube_id, [start:end], question, correct_answer) mod 4`` among the
wrong ones (which keep their order). The position depends on the row's content only, so it is the same on
every run and machine and does not move when rows are reordered; change ``seed`` for another assignment.
A handful of rows (3 in val, 2 in test) repeat the correct text among the wrong answers; they are kept
as they are, ``answer_index`` pointing at the inserted copy.

**Segments.** ``how2_vid_mapping.json`` maps ``"0".."30252"`` to 30,253 names ``<youtube_id>_<s>_<e>``
over 9,356 YouTube videos (far more than val+test use, so presumably train's too), all exactly 60 s long
with ``s`` a multiple of 60: How2 videos are distributed as 60-second segments cut at minute boundaries.
The raw rows' timestamps are **absolute** times in the full YouTube video (e.g. ``[134.15:181.52]``), not
times within a segment. Checked on val+test: the segment ``<youtube_id>_<60*floor(start/60)>_<+60>``
(the one holding the span's start) is in the mapping for every row (5,789 of 5,789); the span lies wholly
inside it for 5,280 rows and runs past its end for 509, by at most 2.72 s (only 3 spans have most of their
length in the next minute). The reader therefore maps each row to the segment holding its start:
``video_id`` is the segment name and the video is ``<root>/<video_dir>/<segment>.<ext>``;
:func:`segment_of` also gives the span relative to the segment (end clipped to 60 s). A row whose segment
is not in the mapping is a bad row ("unmapped segment": a file of that name would not exist), unless
``video_layout="full"``, which uses the full video ``<root>/<video_dir>/<youtube_id>.<ext>`` and needs
no mapping.

**Spans.** Each record carries ``span``, the question's moment in seconds within its video file (relative
to the segment, or absolute with ``video_layout="full"``); training and evaluation draw clips inside it
(``data.use_span``), as the released moments localise what the question is about.

JSONL form (HERO/VALUE): one object per line with ``vid_name`` (already a segment name), ``ts`` (span
within the segment, ``"st-ed"`` or ``[st, ed]``), ``q``, ``a0..a3``, ``answer_idx`` and
``qid``. Those candidates are kept in their given order, since ``answer_idx`` already places the answer.

Split files looked up in ``root`` (first that exists; ``form`` restricts to one kind):
``train``: ``how2QA_train_release.csv`` / ``how2qa_train.jsonl``; ``val``: ``how2QA_val_release.csv`` /
``how2qa_val.jsonl``; ``test``: ``how2QA_test_public_release.csv`` / ``how2qa_test_public.jsonl`` /
``how2qa_test.jsonl``. The public release has no train file; SiaSamRea fine-tunes on How2QA train, which
users must obtain and drop in as either form.

Rows are 1-based line numbers (``source="how2QA_val_release.csv:7"``), the raw CSV ``qid`` is
``<split>-<line>``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from siasamrea.core.choices import TaskKind

from .records import AnnotationError, QARecord, ReadResult, handle_bad_row, read_utf8

DATASET = "how2qa"
SPLITS = ("train", "val", "test")
NUM_CHOICES = 4
SEGMENT_SECONDS = 60
MAPPING_FILE = "how2_vid_mapping.json"
CSV_FILES = {
    "train": ("how2QA_train_release.csv",),
    "val": ("how2QA_val_release.csv",),
    "test": ("how2QA_test_public_release.csv",),
}
JSONL_FILES = {
    "train": ("how2qa_train.jsonl",),
    "val": ("how2qa_val.jsonl",),
    "test": ("how2qa_test_public.jsonl", "how2qa_test.jsonl"),
}
_TIMESTAMP = re.compile(r"^\[\s*(\d+(?:\.\d*)?)\s*:\s*(\d+(?:\.\d*)?)\s*\]$")
_SEGMENT = re.compile(r"^(.+)_(\d+)_(\d+)$")
_JSONL_KEYS = ("vid_name", "q", "a0", "a1", "a2", "a3", "answer_idx", "qid")


def parse_timestamp(text: str) -> tuple[float, float]:
    """``"[7.2:18.0]"`` -> ``(7.2, 18.0)``; raises ``ValueError`` unless ``0 <= start < end``."""
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not '[start:end]'")
    start, end = float(match[1]), float(match[2])
    if not start < end:
        raise ValueError(f"{text!r} does not have start < end")
    return start, end


def segment_of(youtube_id: str, start: float, end: float) -> tuple[str, float, float]:
    """The 60-s segment holding ``start`` and the span relative to it (end clipped to the segment).

    ``segment_of("piYcgGdO8_w", 134.15, 181.52)`` is ``("piYcgGdO8_w_120_180", 14.15, 60.0)``
    (up to float rounding).
    """
    seg_start = int(math.floor(start / SEGMENT_SECONDS)) * SEGMENT_SECONDS
    name = f"{youtube_id}_{seg_start}_{seg_start + SEGMENT_SECONDS}"
    return name, start - seg_start, min(end, seg_start + SEGMENT_SECONDS) - seg_start


def answer_position(seed: int, *fields: str) -> int:
    """Deterministic position 0..3 of the correct answer for a row, from a hash of ``seed`` and its fields."""
    digest = hashlib.sha256("\x1f".join((str(seed), *fields)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % NUM_CHOICES


def read_segment_mapping(path: str | Path) -> set[str]:
    """The segment names listed in ``how2_vid_mapping.json`` (values of an ``{int: name}`` object)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"How2QA segment mapping not found: {path} (or pass video_layout='full')")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, None, f"bad JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AnnotationError(path, None, f"bad JSON: expected an object, got {type(data).__name__}")
    for key, name in data.items():
        if not isinstance(name, str) or _SEGMENT.match(name) is None:
            raise AnnotationError(path, key, f"bad segment name: {name!r} is not '<ytid>_<start>_<end>'")
    return set(data.values())


def annotation_file(root: str | Path, split: str, form: str = "auto") -> Path | None:
    """The first existing file for ``split`` (``form``: ``"auto"``, ``"csv"``, ``"jsonl"``), else ``None``."""
    if split not in SPLITS:
        raise AnnotationError(root, None, f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    if form not in ("auto", "csv", "jsonl"):
        raise ValueError(f"form must be 'auto', 'csv' or 'jsonl', got {form!r}")
    names = (CSV_FILES[split] if form != "jsonl" else ()) + (JSONL_FILES[split] if form != "csv" else ())
    return next((Path(root) / n for n in names if (Path(root) / n).is_file()), None)


def available_splits(root: str | Path) -> list[str]:
    return [s for s in SPLITS if annotation_file(root, s) is not None]


def read_how2qa(
    root: str | Path,
    split: str,
    *,
    on_error: str = "raise",
    form: str = "auto",
    seed: int = 0,
    video_dir: str = "videos",
    ext: str = "mp4",
    video_layout: str = "segment",
    mapping_file: str = MAPPING_FILE,
) -> ReadResult:
    """Read one How2QA split (train, val or test) from ``root``.

    Args:
        form: ``"csv"`` (raw release), ``"jsonl"`` (HERO/VALUE) or ``"auto"`` (raw CSV if present).
        seed: seed of the correct-answer placement for the raw CSV (see the module docstring).
        video_layout: ``"segment"`` (60-s segment files, checked against ``mapping_file``) or ``"full"``
            (whole YouTube videos ``<youtube_id>.<ext>``).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if video_layout not in ("segment", "full"):
        raise ValueError(f"video_layout must be 'segment' or 'full', got {video_layout!r}")
    path = annotation_file(root, split, form)
    if path is None:
        tried = CSV_FILES.get(split, ()) + JSONL_FILES.get(split, ())
        raise FileNotFoundError(
            f"How2QA {split} annotation file not found in {root} (tried {', '.join(tried)})"
        )
    segments = read_segment_mapping(Path(root) / mapping_file) if video_layout == "segment" else None
    ctx = _Context(Path(root), split, path, video_dir, ext.lstrip("."), segments, seed)
    reader = _read_jsonl if path.suffix == ".jsonl" else _read_csv
    return reader(ctx, on_error)


class _Context:
    """What the row parsers need besides the row."""

    def __init__(self, root, split, path, video_dir, ext, segments, seed):
        self.root, self.split, self.path = root, split, path
        self.video_dir, self.ext, self.segments, self.seed = video_dir, ext, segments, seed

    def record(self, *, qid, video_id, question, candidates, answer_index, line, span=None) -> QARecord:
        return QARecord(
            dataset=DATASET,
            task=DATASET,
            kind=TaskKind.MULTIPLE_CHOICE,
            split=self.split,
            qid=qid,
            video_id=video_id,
            video_path=self.root / self.video_dir / f"{video_id}.{self.ext}",
            question=question,
            answer=candidates[answer_index],
            candidates=candidates,
            answer_index=answer_index,
            source=f"{self.path.name}:{line}",
            span=span,
        )


class _Lines:
    """The file's lines for :mod:`csv`, with the position it has read up to (so parsing can restart)."""

    def __init__(self, lines: list[str]):
        self.lines, self.pos = lines, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _read_csv(ctx: _Context, on_error: str) -> ReadResult:
    result = ReadResult()
    # newline="": split at \n, \r\n and \r only, as csv does (str.splitlines would also split at \u2028...)
    lines = _Lines(io.StringIO(read_utf8(ctx.path), newline="").readlines())
    seen: dict[tuple[str, ...], int] = {}
    while lines.pos < len(lines.lines):
        # A fresh reader per row: after a runaway row, parsing restarts at the line after its first.
        row = lines.pos + 1  # 1-based line where the row starts
        try:
            fields = next(csv.reader(lines))
        except csv.Error as exc:
            fields, error = None, str(exc)
        else:
            error = None
        spanned = lines.pos - row + 1
        if spanned > 1 or error is not None:
            # No How2QA row spans lines (none of the 5,789 released ones does): a row that does has an
            # unbalanced quote, and it swallowed the rows after it. Report it alone and parse those rows.
            reason = f"row ran over {spanned} lines (line {row} to {lines.pos}; an unbalanced quote?)"
            if error is not None:
                reason += f": {error}"
            handle_bad_row(result, on_error, ctx.path, row, reason)
            lines.pos = row
            continue
        if not fields:
            continue
        record, reason = _parse_csv_row(ctx, fields, row)
        if record is not None:
            content = tuple(f.strip() for f in fields)
            if content in seen:
                record, reason = None, f"duplicate row: the same as line {seen[content]}"
            else:
                seen[content] = row
        if reason is not None:
            handle_bad_row(result, on_error, ctx.path, row, reason)
        else:
            result.records.append(record)
    return result


def _parse_csv_row(ctx: _Context, fields: list[str], line: int) -> tuple[QARecord | None, str | None]:
    if len(fields) != 7:
        return None, f"wrong column count: expected 7, got {len(fields)}"
    youtube_id, stamp, *wrong, question, correct = (f.strip() for f in fields)
    if not youtube_id:
        return None, "empty youtube_id"
    if not question:
        return None, "empty question"
    if not correct or not all(wrong):
        return None, "empty candidate"
    try:
        start, end = parse_timestamp(stamp)
    except ValueError as exc:
        return None, f"bad timestamp: {exc}"
    if ctx.segments is None:
        video_id, span = youtube_id, (start, end)  # the full video: absolute times
    else:
        video_id, *rel = segment_of(youtube_id, start, end)
        span = tuple(rel)  # times within the 60-s segment file
        if video_id not in ctx.segments:
            return None, f"unmapped segment: {video_id} (start {start}s) not in {MAPPING_FILE}"
    position = answer_position(ctx.seed, youtube_id, stamp, question, correct)
    candidates = tuple(wrong[:position]) + (correct,) + tuple(wrong[position:])
    record = ctx.record(
        qid=f"{ctx.split}-{line}",
        video_id=video_id,
        question=question,
        candidates=candidates,
        answer_index=position,
        line=line,
        span=span,
    )
    return record, None


def _read_jsonl(ctx: _Context, on_error: str) -> ReadResult:
    result = ReadResult()
    seen: set[str] = set()
    with ctx.path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            record, reason = _parse_jsonl_line(ctx, text, line)
            if record is not None and record.qid in seen:
                record, reason = None, f"duplicate question id: {record.qid!r}"
            if reason is not None:
                handle_bad_row(result, on_error, ctx.path, line, reason)
                continue
            seen.add(record.qid)
            result.records.append(record)
    return result


def _parse_jsonl_line(ctx: _Context, text: str, line: int) -> tuple[QARecord | None, str | None]:
    try:
        item: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"bad JSON: {exc}"
    if not isinstance(item, dict):
        return None, f"not an object: {type(item).__name__}"
    missing = [k for k in _JSONL_KEYS if k not in item]
    if missing:
        return None, f"missing keys: {', '.join(missing)}"
    texts = [item[k] for k in ("vid_name", "q", "a0", "a1", "a2", "a3")]
    if not all(isinstance(t, str) for t in texts):
        return None, "bad field: vid_name, q and a0..a3 must be strings"
    vid_name, question, *candidates = (t.strip() for t in texts)
    if not question:
        return None, "empty question"
    if not vid_name or not all(candidates):
        return None, "empty vid_name or candidate"
    index = item["answer_idx"]
    if isinstance(index, str) and index.isdigit():
        index = int(index)
    if not isinstance(index, int) or isinstance(index, bool):
        return None, f"bad answer index: {item['answer_idx']!r} is not an integer"
    if not 0 <= index < NUM_CHOICES:
        return None, f"bad answer index: {index} not in 0..{NUM_CHOICES - 1}"
    span, reason = _parse_ts(item.get("ts"))
    if reason is not None:
        return None, reason
    video_id = vid_name
    if ctx.segments is None:
        match = _SEGMENT.match(vid_name)
        video_id = match[1] if match else vid_name  # full layout: strip the _<start>_<end> suffix
        if match and span is not None:  # ts is within the segment: shift it to the full video's time
            span = (span[0] + int(match[2]), span[1] + int(match[2]))
    elif vid_name not in ctx.segments:
        return None, f"unmapped segment: {vid_name} not in {MAPPING_FILE}"
    record = ctx.record(
        qid=str(item["qid"]),
        video_id=video_id,
        question=question,
        candidates=tuple(candidates),
        answer_index=index,
        line=line,
        span=span,
    )
    return record, None


def _parse_ts(ts: Any) -> tuple[tuple[float, float] | None, str | None]:
    """HERO's ``ts`` (``"st-ed"`` or ``[st, ed]``, seconds within the segment) -> ``(span, None)``; absent:
    ``(None, None)``; malformed: ``(None, reason)``."""
    if ts is None:
        return None, None
    try:
        parts = ts.split("-") if isinstance(ts, str) else list(ts)
        start, end = (float(p) for p in parts)
    except (TypeError, ValueError):
        return None, f"bad ts: {ts!r} is not 'start-end' or [start, end]"
    if not 0 <= start < end:
        return None, f"bad ts: {ts!r} does not have 0 <= start < end"
    return (start, end), None
