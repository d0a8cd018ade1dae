"""The one record type every dataset reader produces, and the error/skip bookkeeping they share.

A reader turns an official annotation release into a list of :class:`QARecord` plus a list of
:class:`Skipped` rows. Nothing is dropped silently: a malformed row either raises
:class:`AnnotationError` naming the file and row (the default, ``on_error="raise"``) or, when the
caller asked for ``on_error="skip"``, becomes a :class:`Skipped` entry that ``stats`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from siasamrea.core.choices import TaskKind


class AnnotationError(ValueError):
    """A malformed annotation file or row. The message names the file and the row."""

    def __init__(self, file: str | Path, row: int | str | None, reason: str):
        self.file = str(file)
        self.row = row
        self.reason = reason
        where = f"{self.file}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Skipped:
    """A row a reader did not turn into a record, and why (reported, never silent)."""

    file: str
    row: int | str | None
    reason: str


@dataclass(frozen=True)
class QARecord:
    """One question about one video, in a dataset-independent form.

    Attributes:
        dataset: dataset name, e.g. ``"tgif-qa"``, ``"msvd-qa"``, ``"how2qa"``.
        task: task within the dataset (``"action"``, ``"transition"``, ``"count"``, ``"frameqa"`` for
            TGIF-QA; the dataset name for single-task datasets).
        kind: how the question is answered.
        split: ``"train"``, ``"val"`` or ``"test"``.
        qid: question id, unique within (dataset, task, split).
        video_id: the dataset's video identifier.
        video_path: where the video file is expected (it may not exist yet, e.g. before GIF conversion).
        question: question text.
        answer: open-ended answer string; for multiple choice the correct candidate's text; for count
            the integer as a string.
        candidates: multiple-choice candidates in the order the file gives them (empty otherwise).
        answer_index: multiple choice: index of the correct candidate in ``candidates``.
        question_type: dataset question type where there is one (TGIF-QA frameqa ``type``, ActivityNet-QA
            ``type``, MSVD/MSRVTT first word), else ``None``.
        source: ``"file:row"`` the record came from, for error messages.
        span: ``(start, end)`` in seconds within the video file, where the annotation gives the moment the
            question is about (How2QA); ``None`` otherwise.
    """

    dataset: str
    task: str
    kind: TaskKind
    split: str
    qid: str
    video_id: str
    video_path: Path
    question: str
    answer: str
    candidates: tuple[str, ...] = ()
    answer_index: int | None = None
    question_type: str | None = None
    source: str = ""
    span: tuple[float, float] | None = None

    @property
    def count(self) -> int:
        """The integer answer of a count question."""
        if self.kind is not TaskKind.COUNT:
            raise TypeError(f"{self.source or self.qid}: not a count question")
        return int(self.answer)


@dataclass
class ReadResult:
    """What a reader returns: the records and every row it skipped."""

    records: list[QARecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def extend(self, other: ReadResult) -> None:
        self.records.extend(other.records)
        self.skipped.extend(other.skipped)


def handle_bad_row(
    result: ReadResult, on_error: str, file: str | Path, row: int | str | None, reason: str
) -> None:
    """Raise :class:`AnnotationError` (``on_error="raise"``) or record a :class:`Skipped` row (``"skip"``)."""
    if on_error == "raise":
        raise AnnotationError(file, row, reason)
    if on_error != "skip":
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    result.skipped.append(Skipped(str(file), row, reason))


def read_utf8(path: str | Path) -> str:
    """The text of a UTF-8 file (a BOM is dropped); anything else is an :class:`AnnotationError` naming the
    line and byte, instead of a ``UnicodeDecodeError`` that names no file."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise AnnotationError(
            path,
            line,
            f"not UTF-8 text: byte 0x{byte} at offset {exc.start} ({exc.reason}); re-save as UTF-8",
        ) from None
