"""Answer vocabulary: top answers and OOV counts checked against an independent Counter on MSVD-QA."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from siasamrea.core.choices import TaskKind
from siasamrea.data.msvd_qa import read_msvd_qa
from siasamrea.data.records import QARecord
from siasamrea.data.vocab import OOV, AnswerVocab


@pytest.fixture(scope="module")
def msvd_answers(msvd_root):
    return {
        s: [item["answer"] for item in json.loads((msvd_root / f"{s}_qa.json").read_text())]
        for s in ("train", "test")
    }


@pytest.fixture(scope="module")
def msvd_records(msvd_root):
    return {s: read_msvd_qa(msvd_root, s).records for s in ("train", "test")}


def independent_top(answers: list[str], size: int) -> list[str]:
    counts = Counter(answers)
    return sorted(counts, key=lambda a: (-counts[a], a))[:size]


@pytest.mark.parametrize("size", [1000, 50])
def test_top_answers_match_counter(msvd_answers, msvd_records, size):
    vocab = AnswerVocab.build(msvd_records["train"], size=size)
    assert vocab.answers == independent_top(msvd_answers["train"], size)
    assert vocab.answers[:3] == ["man", "woman", "person"]
    counts = Counter(msvd_answers["train"])
    assert vocab.counts == [counts[a] for a in vocab.answers]
    assert vocab.counts[0] == 4209
    assert [vocab.encode(a) for a in vocab.answers[:5]] == [0, 1, 2, 3, 4]
    assert vocab.decode(1) == "woman"


def test_oov_counts_on_test(msvd_answers, msvd_records):
    vocab = AnswerVocab.build(msvd_records["train"], size=1000)
    top = set(independent_top(msvd_answers["train"], 1000))
    expected_in = sum(a in top for a in msvd_answers["test"])
    coverage = vocab.coverage(msvd_records["test"])
    assert (coverage.in_vocab, coverage.oov) == (expected_in, len(msvd_answers["test"]) - expected_in)
    assert coverage.total == 13157 and coverage.oov > 0
    assert coverage.fraction == pytest.approx(expected_in / 13157)
    oov_answer = next(a for a in msvd_answers["test"] if a not in top)
    assert vocab.encode(oov_answer) == OOV == -1 and oov_answer not in vocab


def test_full_vocabulary_covers_its_own_training_set(msvd_answers, msvd_records):
    vocab = AnswerVocab.build(msvd_records["train"], size=None)
    assert len(vocab) == len(set(msvd_answers["train"])) == 1852
    assert vocab.coverage(msvd_records["train"]).oov == 0


def record(answer: str, kind: TaskKind = TaskKind.OPEN_ENDED, n: int = 0) -> QARecord:
    return QARecord(
        dataset="toy",
        task="toy",
        kind=kind,
        split="train",
        qid=str(n),
        video_id="v",
        video_path=Path("v.mp4"),
        question="what?",
        answer=answer,
    )


def test_ties_are_broken_by_answer_text_whatever_the_order():
    answers = ["b", "a", "c", "b", "a", "d", "c", "e"]  # a, b, c twice; d, e once
    records = [record(a, n=i) for i, a in enumerate(answers)]
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert AnswerVocab.build(records, size=4).answers == ["a", "b", "c", "d"]
    assert AnswerVocab.build(shuffled, size=4) == AnswerVocab.build(records, size=4)


def test_only_open_ended_records_count():
    records = [record("a"), record("3", TaskKind.COUNT), record("x", TaskKind.MULTIPLE_CHOICE), record("b")]
    vocab = AnswerVocab.build(records)
    assert vocab.answers == ["a", "b"]
    assert vocab.coverage(records + [record("z")]).as_dict() == {
        "in_vocab": 2,
        "oov": 1,
        "total": 3,
        "fraction": pytest.approx(2 / 3),
    }


def test_save_load_round_trip(msvd_records, tmp_path):
    vocab = AnswerVocab.build(msvd_records["train"], size=1000)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = AnswerVocab.load(path)
    assert loaded == vocab and loaded.encode("chipmunk") == vocab.encode("chipmunk")
    assert json.loads(path.read_text())["answers"][:2] == ["man", "woman"]


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="size"):
        AnswerVocab.build([record("a")], size=0)
    with pytest.raises(ValueError, match="unique"):
        AnswerVocab(["a", "a"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"answers": ["a"]}')
    with pytest.raises(ValueError, match=r"bad\.json: not an answer vocabulary"):
        AnswerVocab.load(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json"):
        AnswerVocab.load(bad)
    with pytest.raises(IndexError):
        AnswerVocab(["a"]).decode(1)
