"""Answer vocabulary for open-ended VideoQA (the classifier's output classes).

Open-ended datasets (MSVD-QA, MSRVTT-QA, ActivityNet-QA, TGIF-QA FrameQA) are treated as classification
over the most frequent training answers, e.g. the top 1000 for MSRVTT-QA. Questions whose answer is not in
the vocabulary cannot be answered correctly; papers report how many there are (:meth:`AnswerVocab.coverage`).

Choices:

* Built from the ``OPEN_ENDED`` records of a training split only; multiple-choice and count records are
  ignored by :meth:`~AnswerVocab.build` and :meth:`~AnswerVocab.coverage` (they are not vocabulary-answered).
* Answers are used exactly as the annotation writes them (the readers strip surrounding whitespace only);
  no lower-casing or lemmatisation, so counts match the released files.
* Order: by descending training frequency, ties broken by the answer string (ascending), so the same records
  always give the same ids whatever their order.
* Out of vocabulary: :meth:`~AnswerVocab.encode` returns :data:`OOV` (``-1``). Training code should drop
  those questions or mask them out of the loss (e.g. ``ignore_index=-1``); at test time they count as wrong.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from siasamrea.core.choices import TaskKind

from .records import QARecord

OOV = -1
_FORMAT = "siasamrea.answer_vocab"
_VERSION = 1


@dataclass(frozen=True)
class Coverage:
    """How many open-ended questions a vocabulary can answer."""

    in_vocab: int
    oov: int

    @property
    def total(self) -> int:
        return self.in_vocab + self.oov

    @property
    def fraction(self) -> float:
        """Share of questions whose answer is in the vocabulary (the accuracy upper bound)."""
        return self.in_vocab / self.total if self.total else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total, "fraction": self.fraction}


class AnswerVocab:
    """An ordered list of answers; id ``i`` is ``answers[i]``."""

    def __init__(self, answers: Iterable[str], counts: Iterable[int] | None = None):
        self.answers: list[str] = list(answers)
        self.counts: list[int] | None = list(counts) if counts is not None else None
        if self.counts is not None and len(self.counts) != len(self.answers):
            raise ValueError(f"{len(self.answers)} answers but {len(self.counts)} counts")
        self._index = {answer: i for i, answer in enumerate(self.answers)}
        if len(self._index) != len(self.answers):
            raise ValueError("answers must be unique")

    @classmethod
    def build(cls, records: Iterable[QARecord], size: int | None = 1000) -> AnswerVocab:
        """The ``size`` most frequent answers of the open-ended ``records`` (all if ``size`` is None)."""
        if size is not None and size < 1:
            raise ValueError(f"size must be positive or None, got {size}")
        counter = Counter(r.answer for r in records if r.kind is TaskKind.OPEN_ENDED)
        ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:size]
        return cls([a for a, _ in ranked], [c for _, c in ranked])

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, answer: object) -> bool:
        return answer in self._index

    def encode(self, answer: str) -> int:
        """The id of ``answer``, or :data:`OOV` (``-1``) if it is not in the vocabulary."""
        return self._index.get(answer, OOV)

    def decode(self, index: int) -> str:
        if not 0 <= index < len(self.answers):
            raise IndexError(f"answer id {index} not in 0..{len(self.answers) - 1}")
        return self.answers[index]

    def coverage(self, records: Iterable[QARecord]) -> Coverage:
        """In-vocabulary and out-of-vocabulary counts over the open-ended ``records``."""
        in_vocab = oov = 0
        for record in records:
            if record.kind is not TaskKind.OPEN_ENDED:
                continue
            if record.answer in self._index:
                in_vocab += 1
            else:
                oov += 1
        return Coverage(in_vocab, oov)

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": _VERSION, "answers": self.answers, "counts": self.counts}

    @classmethod
    def from_dict(cls, data: dict) -> AnswerVocab:
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not an answer vocabulary (expected format {_FORMAT!r})")
        if data.get("version") != _VERSION:
            raise ValueError(f"unsupported answer vocabulary version {data.get('version')!r}")
        return cls(data["answers"], data.get("counts"))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (answers in id order, with their training counts)."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> AnswerVocab:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path}: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnswerVocab) and (self.answers, self.counts) == (other.answers, other.counts)

    def __repr__(self) -> str:
        return f"AnswerVocab({len(self)} answers)"
