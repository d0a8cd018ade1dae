"""ActivityNet-QA reader: the q/a join on the real release, and join errors on small written files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from siasamrea.core.choices import TaskKind
from siasamrea.data.activitynet_qa import QUESTION_TYPES, read_activitynet_qa
from siasamrea.data.records import AnnotationError

SIZES = {"val": 18000, "test": 8000}


@pytest.fixture(scope="module")
def raw(activitynet_root):
    return {
        split: (
            json.loads((activitynet_root / f"{split}_q.json").read_text()),
            json.loads((activitynet_root / f"{split}_a.json").read_text()),
        )
        for split in SIZES
    }


@pytest.fixture(scope="module")
def anet(activitynet_root):
    return {split: read_activitynet_qa(activitynet_root, split) for split in SIZES}


@pytest.mark.parametrize("split", list(SIZES))
def test_row_counts_and_join(anet, raw, split):
    questions, answers = raw[split]
    assert len(anet[split].records) == SIZES[split] == len(questions) == len(answers)
    assert anet[split].skipped == []
    padded = sum(item["question"] != item["question"].strip() for item in questions)
    assert padded == {"val": 225, "test": 181}[split]
    answer_by_id = {a["question_id"]: a for a in answers}
    assert len(answer_by_id) == len(answers)  # ids are unique in the release
    for index, (record, q) in enumerate(zip(anet[split].records, questions, strict=True)):
        a = answer_by_id[q["question_id"]]
        assert record.qid == q["question_id"] and record.qid.startswith(f"v_{q['video_name']}_")
        # Some release questions end in a space (225 in val, 181 in test); the reader strips them.
        assert (record.question, record.answer) == (q["question"].strip(), a["answer"])
        assert record.question_type == QUESTION_TYPES[a["type"]]
        assert record.video_id == q["video_name"]
        assert record.source == f"{split}_q.json:{index}"
        assert record.kind is TaskKind.OPEN_ENDED


@pytest.mark.parametrize("split", list(SIZES))
def test_question_type_distribution(anet, raw, split):
    names = dict(enumerate(QUESTION_TYPES))
    expected = Counter(names[a["type"]] for a in raw[split][1])
    got = Counter(r.question_type for r in anet[split].records)
    assert got == expected and sum(got.values()) == SIZES[split]
    if split == "val":
        assert got["motion"] == got["spatial"] == got["temporal"] == 1800
        assert got["yes_no"] == 4041 and got["other"] == 4081
    assert len({r.video_id for r in anet[split].records}) == SIZES[split] // 10  # 10 questions per video


def test_video_path(activitynet_root, anet):
    record = anet["val"].records[0]
    assert record.video_path == activitynet_root / "videos" / "v_TIEzvhv6xaI.mp4"
    other = read_activitynet_qa(activitynet_root, "test", video_dir="clips", ext="mkv", prefix="")
    assert other.records[0].video_path == activitynet_root / "clips" / "1QIUV7WYKXg.mkv"


def write(root: Path, split: str, questions, answers) -> None:
    (root / f"{split}_q.json").write_text(json.dumps(questions))
    (root / f"{split}_a.json").write_text(json.dumps(answers))


def test_join_is_by_question_id_not_by_order(activitynet_root, raw, tmp_path):
    questions, answers = raw["test"]
    write(tmp_path, "test", questions[:300], list(reversed(answers[:300])))
    result = read_activitynet_qa(tmp_path, "test")
    reference = read_activitynet_qa(activitynet_root, "test").records[:300]
    assert [(r.qid, r.answer, r.question_type) for r in result.records] == [
        (r.qid, r.answer, r.question_type) for r in reference
    ]


def q(n: int, **extra) -> dict:
    return {"video_name": "abc", "question": f"question {n}", "question_id": f"v_abc_{n}", **extra}


def a(n: int, **extra) -> dict:
    return {"answer": "yes", "type": 3, "question_id": f"v_abc_{n}", **extra}


def test_question_without_answer(tmp_path):
    write(tmp_path, "val", [q(0), q(1), q(2)], [a(0), a(2)])
    with pytest.raises(AnnotationError, match=r"val_q\.json, row 1: unmatched question id: 'v_abc_1'"):
        read_activitynet_qa(tmp_path, "val")
    result = read_activitynet_qa(tmp_path, "val", on_error="skip")
    assert [r.qid for r in result.records] == ["v_abc_0", "v_abc_2"]
    assert [(Path(s.file).name, s.row) for s in result.skipped] == [("val_q.json", 1)]


def test_answer_without_question(tmp_path):
    write(tmp_path, "val", [q(0)], [a(0), a(5)])
    with pytest.raises(AnnotationError, match=r"val_a\.json, row 1: unmatched question id: 'v_abc_5'"):
        read_activitynet_qa(tmp_path, "val")


def test_duplicated_ids_name_the_file(tmp_path):
    write(tmp_path, "val", [q(0), q(1), q(1)], [a(0), a(1)])
    with pytest.raises(AnnotationError, match=r"val_q\.json, row 2: duplicate question id"):
        read_activitynet_qa(tmp_path, "val")
    write(tmp_path, "val", [q(0), q(1)], [a(0), a(1), a(0)])
    with pytest.raises(AnnotationError, match=r"val_a\.json, row 2: duplicate question id"):
        read_activitynet_qa(tmp_path, "val")
    result = read_activitynet_qa(tmp_path, "val", on_error="skip")
    assert len(result.records) == 2 and [s.row for s in result.skipped] == [2]


@pytest.mark.parametrize(
    ("questions", "answers", "where", "skips"),
    [
        ([q(0), q(1, question=" ")], [a(0), a(1)], r"val_q\.json, row 1: empty question", 1),
        (
            [q(0), {"video_name": "abc", "question": "x"}],
            [a(0)],
            r"val_q\.json, row 1: missing keys: question_id",
            1,
        ),
        # A bad answer loses one question: one skip, not a second for the question left without an answer.
        ([q(0), q(1)], [a(0), a(1, type=9)], r"val_a\.json, row 1: bad question type", 1),
        ([q(0), q(1)], [a(0), a(1, type="3")], r"val_a\.json, row 1: bad question type", 1),
        ([q(0), q(1)], [a(0), a(1, answer=7)], r"val_a\.json, row 1: bad answer", 1),
        # An answer with no readable question id cannot be matched: the question is reported on its own.
        ([q(0), q(1)], [a(0), "v_abc_1"], r"val_a\.json, row 1: not an object", 2),
    ],
)
def test_malformed_items(tmp_path, questions, answers, where, skips):
    write(tmp_path, "val", questions, answers)
    with pytest.raises(AnnotationError, match=where):
        read_activitynet_qa(tmp_path, "val")
    result = read_activitynet_qa(tmp_path, "val", on_error="skip")
    assert [r.qid for r in result.records] == ["v_abc_0"]
    assert len(result.skipped) == skips and result.skipped[0].row == 1


def test_missing_files_and_bad_json(activitynet_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train_q\.json"):
        read_activitynet_qa(activitynet_root, "train")
    (tmp_path / "val_q.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match=r"val_a\.json"):
        read_activitynet_qa(tmp_path, "val")
    (tmp_path / "val_a.json").write_text("[{")
    with pytest.raises(AnnotationError, match=r"val_a\.json: bad JSON"):
        read_activitynet_qa(tmp_path, "val", on_error="skip")
