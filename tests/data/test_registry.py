"""Registry dispatch, split discovery, errors, and the summary printed by `python -m siasamrea.data stats`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from siasamrea.data.activitynet_qa import QUESTION_TYPES
from siasamrea.data.records import AnnotationError
from siasamrea.data.registry import DATASETS, available_splits, read_split, summarize
from siasamrea.data.vocab import AnswerVocab


def test_known_names():
    assert set(DATASETS) == {"tgif-qa", "msvd-qa", "msrvtt-qa", "activitynet-qa", "how2qa"}


def test_unknown_dataset_lists_the_known_names(tmp_path):
    with pytest.raises(ValueError) as info:
        read_split("msvd", tmp_path, "train")
    for name in DATASETS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="known datasets"):
        available_splits("nextqa", tmp_path)


def test_available_splits(tgif_root, msvd_root, activitynet_root, how2qa_root, tmp_path):
    assert available_splits("tgif-qa", tgif_root) == ["train", "val", "test"]
    assert available_splits("msvd-qa", msvd_root) == ["train", "val", "test"]
    assert available_splits("activitynet-qa", activitynet_root) == ["val", "test"]
    assert available_splits("how2qa", how2qa_root) == ["val", "test"]
    assert all(available_splits(name, tmp_path) == [] for name in DATASETS)


def test_missing_annotation_file_names_the_path(activitynet_root, tgif_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(activitynet_root / "train_q.json")):
        read_split("activitynet-qa", activitynet_root, "train")
    with pytest.raises(FileNotFoundError, match=r"Train_transition_question\.csv"):
        read_split("tgif-qa", tgif_root, "train", task="transition")  # only action and count train files ship
    # without a task, every task released for the split is read: here action and count
    assert {r.task for r in read_split("tgif-qa", tgif_root, "train").records} == {"action", "count"}
    with pytest.raises(FileNotFoundError, match="no TGIF-QA train annotation file"):
        read_split("tgif-qa", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        read_split("msvd-qa", tmp_path / "missing", "train")


def test_task_argument(msvd_root, tgif_root):
    assert len(read_split("msvd-qa", msvd_root, "val", task="msvd-qa").records) == 6415
    with pytest.raises(ValueError, match="single task"):
        read_split("msvd-qa", msvd_root, "val", task="frameqa")
    result = read_split("tgif-qa", tgif_root, "test", task="count")
    assert {r.task for r in result.records} == {"count"} and len(result.records) == 3554


def test_options_reach_the_reader(how2qa_root):
    a = read_split("how2qa", how2qa_root, "val", seed=5)
    b = read_split("how2qa", how2qa_root, "val", video_layout="full")
    assert len(a.records) == len(b.records) == 2852
    assert b.records[0].video_id == "NOuQuofjk44" and a.records[0].video_id == "NOuQuofjk44_0_60"


def test_summary_of_activitynet_val(activitynet_root):
    answers = json.loads((activitynet_root / "val_a.json").read_text())
    questions = json.loads((activitynet_root / "val_q.json").read_text())
    result = read_split("activitynet-qa", activitynet_root, "val")
    vocab = AnswerVocab.build(result.records, size=100)
    summary = json.loads(json.dumps(summarize(result, vocab)))  # JSON-serialisable, unchanged by a round trip
    assert summary["questions"] == 18000
    assert summary["videos"] == len({q["video_name"] for q in questions}) == 1800
    expected_types = Counter(QUESTION_TYPES[a["type"]] for a in answers)
    assert summary["per_question_type"] == dict(expected_types)
    assert sum(summary["per_question_type"].values()) == 18000
    assert summary["per_task"]["activitynet-qa"]["questions"] == 18000
    assert summary["per_kind"] == {"open_ended": 18000}
    assert summary["answer_vocab_size"] == len({a["answer"] for a in answers})
    top = {a for a, _ in Counter(a["answer"] for a in answers).most_common(100)}
    in_vocab = sum(a["answer"] in top for a in answers)
    assert summary["vocab"] == {"size": 100, "in_vocab": in_vocab, "oov": 18000 - in_vocab}
    assert summary["skipped"] == {"total": 0, "by_reason": {}}
    assert "vocab" not in summarize(result)


def test_summary_of_tgif_test_per_task(tgif_root):
    result = read_split("tgif-qa", tgif_root, "test")
    summary = summarize(result)
    per_task = {t: s["questions"] for t, s in summary["per_task"].items()}
    expected = {
        t: len((tgif_root / f"Test_{t}_question.csv").read_bytes().splitlines()) - 1
        for t in ("action", "transition", "count", "frameqa")
    }
    assert per_task == expected
    assert summary["questions"] == sum(expected.values())
    assert summary["per_task"]["count"]["kind"] == {"count": expected["count"]}
    assert summary["per_task"]["frameqa"]["per_question_type"]["object"] == 5586
    assert (
        summary["per_question_type"]["none"]
        == expected["action"] + expected["transition"] + expected["count"]
    )
    # Only frameqa is open-ended, so the answer vocabulary is frameqa's.
    frameqa_answers = {r.answer for r in result.records if r.task == "frameqa"}
    assert summary["answer_vocab_size"] == len(frameqa_answers)


def test_summary_groups_skipped_rows_by_reason(tmp_path):
    header = "gif_name\tquestion\tanswer\tvid_id\tkey"
    rows = [
        "g1\tHow many ?\t3\tCOUNT1\t1",
        "g2\tHow many ?\tthree\tCOUNT2\t2",
        "g3\tHow many ?\t2.5\tCOUNT3\t3",
        "g4\t\t2\tCOUNT4\t4",
        "g5\tHow many ?\t2\tCOUNT5",
    ]
    (tmp_path / "Test_count_question.csv").write_text("\r\n".join([header, *rows]) + "\r\n")
    with pytest.raises(AnnotationError, match=r"row 3: bad count"):
        read_split("tgif-qa", tmp_path, "test", task="count")
    result = read_split("tgif-qa", tmp_path, "test", task="count", on_error="skip")
    summary = summarize(result)
    assert summary["questions"] == 1
    assert summary["skipped"] == {
        "total": 4,
        "by_reason": {"bad count": 2, "empty question": 1, "wrong column count": 1},
    }
