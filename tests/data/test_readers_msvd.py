"""MSVD-QA reader on the real release; MSRVTT-QA (not shipped) and malformed input on small written files."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from siasamrea.core.choices import TaskKind
from siasamrea.data.msvd_qa import question_type, read_msrvtt_qa, read_msvd_mapping, read_msvd_qa
from siasamrea.data.records import AnnotationError

SIZES = {"train": 30933, "val": 6415, "test": 13157}


@pytest.fixture(scope="module")
def msvd(msvd_root):
    return {split: read_msvd_qa(msvd_root, split) for split in SIZES}


@pytest.fixture(scope="module")
def raw(msvd_root):
    return {split: json.loads((msvd_root / f"{split}_qa.json").read_text()) for split in SIZES}


@pytest.mark.parametrize("split", list(SIZES))
def test_row_counts(msvd, raw, split):
    assert len(msvd[split].records) == SIZES[split] == len(raw[split])
    assert msvd[split].skipped == []


@pytest.mark.parametrize("split", list(SIZES))
def test_records_follow_the_json_items(msvd, raw, split):
    for index, (record, item) in enumerate(zip(msvd[split].records, raw[split], strict=True)):
        assert record.qid == str(item["id"])
        assert (record.question, record.answer) == (item["question"], item["answer"])
        assert record.source == f"{split}_qa.json:{index}"
        assert record.kind is TaskKind.OPEN_ENDED and record.split == split and record.task == "msvd-qa"


def test_video_id_is_the_youtube_mapping_line(msvd_root, msvd, raw):
    lines = (msvd_root / "youtube_mapping.txt").read_text().splitlines()
    assert len(lines) == 1970
    for split in SIZES:
        for record, item in zip(msvd[split].records, raw[split], strict=True):
            youtube_name, vid = lines[item["video_id"] - 1].split(" ")
            assert record.video_id == vid == f"vid{item['video_id']}"
            assert record.video_path == msvd_root / "videos" / f"{vid}.avi"
    first = msvd["train"].records[0]
    assert first.video_id == "vid1" and lines[0] == "-4wsuPCjDBc_5_15 vid1"
    # Videos named after the raw YouTubeClips archive instead.
    youtube = read_msvd_qa(msvd_root, "train", video_naming="youtube", video_dir="YouTubeClips")
    assert youtube.records[0].video_path == msvd_root / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi"
    assert youtube.records[0].video_id == "vid1"
    # Splits are by video.
    videos = {s: {r.video_id for r in msvd[s].records} for s in SIZES}
    assert not (videos["train"] & videos["val"]) and not (videos["train"] & videos["test"])
    assert (len(videos["train"]), len(videos["val"]), len(videos["test"])) == (1161, 245, 504)


@pytest.mark.parametrize("split", list(SIZES))
def test_question_types_are_first_words(msvd, raw, split):
    first = Counter(item["question"].split()[0] for item in raw[split])
    got = Counter(r.question_type for r in msvd[split].records)
    assert got == first  # every MSVD question starts with what/who/how/when/where
    assert sum(got.values()) == SIZES[split]
    if split == "train":
        assert got == {"what": 19485, "who": 10479, "how": 736, "when": 161, "where": 72}


def test_question_type_other_and_case():
    assert question_type("Who is singing?") == "who"
    assert question_type("is the man singing?") == "other"
    assert question_type("whatever happened") == "other"
    assert question_type("") == "other"


def test_mapping_reader_checks_line_numbers(msvd_root, tmp_path):
    assert read_msvd_mapping(msvd_root / "youtube_mapping.txt")[1969] == "zzit5b_-ukg_5_20"
    bad = tmp_path / "youtube_mapping.txt"
    bad.write_text("a_1_2 vid1\nb_3_4 vid3\n")
    with pytest.raises(AnnotationError, match=r"youtube_mapping\.txt, row 2"):
        read_msvd_mapping(bad)


# --- MSRVTT-QA (same layout, not shipped) and malformed files -----------------------------------------


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_msrvtt_layout(tmp_path):
    items = [
        {"answer": "dog", "category_id": 3, "id": 0, "question": "what is running?", "video_id": 0},
        {"answer": "man", "category_id": 9, "id": 1, "question": "who talks?", "video_id": 7010},
    ]
    write_json(tmp_path / "test_qa.json", items)
    result = read_msrvtt_qa(tmp_path, "test")
    assert [r.video_id for r in result.records] == ["video0", "video7010"]
    assert result.records[1].video_path == tmp_path / "videos" / "video7010.mp4"
    assert [r.question_type for r in result.records] == ["what", "who"]
    assert {r.dataset for r in result.records} == {"msrvtt-qa"}
    items[1]["category_id"] = "music"
    write_json(tmp_path / "test_qa.json", items)
    with pytest.raises(AnnotationError, match=r"test_qa\.json, row 1: bad category_id"):
        read_msrvtt_qa(tmp_path, "test")


GOOD = {"answer": "cat", "id": 0, "question": "what is it?", "video_id": 1}
BAD_ITEMS = [
    ({"answer": "cat", "id": 1, "video_id": 1}, "missing keys"),
    ({**GOOD, "id": 2, "question": "  "}, "empty question"),
    ({**GOOD, "id": 3, "video_id": "1"}, "bad video_id"),
    ({**GOOD, "id": 4, "video_id": 3}, "unknown video"),  # the mapping below has 2 lines
    ({**GOOD, "id": 5, "answer": ""}, "empty answer"),
    (GOOD, "duplicate question id"),
    (["not", "an", "object"], "not an object"),
]


@pytest.fixture()
def small_msvd(tmp_path) -> Path:
    (tmp_path / "youtube_mapping.txt").write_text("a_1_2 vid1\nb_3_4 vid2")
    items = [GOOD] + [item for item, _ in BAD_ITEMS] + [{**GOOD, "id": 9, "video_id": 2}]
    write_json(tmp_path / "val_qa.json", items)
    return tmp_path


def test_malformed_items_raise_naming_file_and_item(small_msvd):
    with pytest.raises(AnnotationError) as info:
        read_msvd_qa(small_msvd, "val")
    assert str(small_msvd / "val_qa.json") in str(info.value)
    assert info.value.row == 1 and "row 1: missing keys: question" in str(info.value)


def test_malformed_items_are_skipped_with_reasons(small_msvd):
    result = read_msvd_qa(small_msvd, "val", on_error="skip")
    assert [(r.qid, r.video_id, r.source) for r in result.records] == [
        ("0", "vid1", "val_qa.json:0"),
        ("9", "vid2", "val_qa.json:8"),
    ]
    assert [(s.row, s.reason.split(":")[0]) for s in result.skipped] == [
        (i + 1, reason) for i, (_, reason) in enumerate(BAD_ITEMS)
    ]


def test_whole_file_problems(small_msvd):
    (small_msvd / "test_qa.json").write_text('[{"answer": "cat",')
    with pytest.raises(AnnotationError, match=r"test_qa\.json: bad JSON"):
        read_msvd_qa(small_msvd, "test", on_error="skip")
    write_json(small_msvd / "test_qa.json", {"0": GOOD})
    with pytest.raises(AnnotationError, match="expected an array"):
        read_msvd_qa(small_msvd, "test")
    with pytest.raises(FileNotFoundError, match=r"train_qa\.json"):
        read_msvd_qa(small_msvd, "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        read_msvd_qa(small_msvd, "dev")


def test_mapping_is_required(msvd_root, tmp_path):
    shutil.copy(msvd_root / "val_qa.json", tmp_path / "val_qa.json")
    with pytest.raises(FileNotFoundError, match=r"youtube_mapping\.txt"):
        read_msvd_qa(tmp_path, "val")
