"""How2QA reader: raw CSV release (answer placement, 60-s segment mapping), JSONL form, malformed input."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from siasamrea.core.choices import TaskKind
from siasamrea.data.how2qa import available_splits, read_how2qa, segment_of
from siasamrea.data.records import AnnotationError

FILES = {"val": "how2QA_val_release.csv", "test": "how2QA_test_public_release.csv"}
SIZES = {"val": 2852, "test": 2937}


@pytest.fixture(scope="module")
def raw(how2qa_root):
    out = {}
    for split, name in FILES.items():
        with (how2qa_root / name).open(newline="") as handle:
            out[split] = list(csv.reader(handle))
    return out


@pytest.fixture(scope="module")
def how2(how2qa_root):
    return {split: read_how2qa(how2qa_root, split) for split in FILES}


@pytest.fixture(scope="module")
def mapping(how2qa_root):
    return json.loads((how2qa_root / "how2_vid_mapping.json").read_text())


@pytest.mark.parametrize("split", list(FILES))
def test_row_counts_and_line_endings(how2qa_root, how2, split):
    data = (how2qa_root / FILES[split]).read_bytes()
    assert len(data.splitlines()) == SIZES[split] == len(how2[split].records)
    assert how2[split].skipped == []
    # The test file is CRLF, the val file LF; no CR may survive into the text either way.
    assert (b"\r\n" in data) == (split == "test")
    assert all("\r" not in r.answer and "\r" not in r.question for r in how2[split].records)
    assert [r.source for r in how2[split].records[:2]] == [f"{FILES[split]}:1", f"{FILES[split]}:2"]


@pytest.mark.parametrize("split", list(FILES))
def test_candidates_hold_the_row_answers_with_the_correct_one_at_answer_index(how2, raw, split):
    for record, row in zip(how2[split].records, raw[split], strict=True):
        youtube_id, _, w1, w2, w3, question, correct = (f.strip() for f in row)
        assert record.kind is TaskKind.MULTIPLE_CHOICE and len(record.candidates) == 4
        assert record.question == question
        assert record.candidates[record.answer_index] == record.answer == correct
        rest = list(record.candidates)
        del rest[record.answer_index]
        assert rest == [w1, w2, w3]  # wrong answers keep their order
        assert record.video_id.startswith(youtube_id + "_")


@pytest.mark.parametrize("split", list(FILES))
def test_correct_answer_position_varies(how2, split):
    positions = Counter(r.answer_index for r in how2[split].records)
    assert set(positions) == {0, 1, 2, 3}
    # Roughly uniform: a model cannot learn the position (the raw file always has it last).
    assert min(positions.values()) > 0.2 * SIZES[split]


def test_answer_placement_is_deterministic_and_seeded(how2qa_root, how2):
    again = read_how2qa(how2qa_root, "val")
    assert [r.answer_index for r in again.records] == [r.answer_index for r in how2["val"].records]
    reseeded = read_how2qa(how2qa_root, "val", seed=1)
    changed = sum(
        a.answer_index != b.answer_index for a, b in zip(again.records, reseeded.records, strict=True)
    )
    assert changed > SIZES["val"] // 2
    assert all(a.answer == b.answer for a, b in zip(again.records, reseeded.records, strict=True))


def test_placement_depends_on_the_row_not_its_position_in_the_file(how2qa_root, raw, tmp_path):
    rows = raw["val"][:50]
    with (tmp_path / FILES["val"]).open("w", newline="") as handle:
        csv.writer(handle).writerows(reversed(rows))
    shutil.copy(how2qa_root / "how2_vid_mapping.json", tmp_path)
    reversed_records = read_how2qa(tmp_path, "val").records
    original = read_how2qa(how2qa_root, "val").records[:50]
    assert [r.candidates for r in reversed(reversed_records)] == [r.candidates for r in original]


def test_mapping_is_60_second_segments_on_minute_boundaries(mapping):
    assert sorted(map(int, mapping)) == list(range(30253))
    assert len(set(mapping.values())) == 30253
    for name in mapping.values():
        _, start, end = name.rsplit("_", 2)
        assert int(end) - int(start) == 60 and int(start) % 60 == 0


def test_every_row_maps_to_the_segment_holding_its_start(how2qa_root, how2, raw, mapping):
    segments = set(mapping.values())
    overruns = {}
    for split in FILES:
        overruns[split] = []
        for record, row in zip(how2[split].records, raw[split], strict=True):
            start, end = (float(x) for x in row[1].strip("[]").split(":"))
            youtube_id, seg_start, seg_end = record.video_id.rsplit("_", 2)
            assert youtube_id == row[0]
            assert int(seg_start) <= start < int(seg_end)  # timestamps are absolute, in the full video
            assert record.video_id in segments
            assert record.video_path == how2qa_root / "videos" / f"{record.video_id}.mp4"
            if end > int(seg_end):
                overruns[split].append(end - int(seg_end))
    assert (len(overruns["val"]), len(overruns["test"])) == (231, 278)
    assert max(overruns["val"] + overruns["test"]) < 3.0  # a span never really reaches into the next minute


def test_segment_of():
    name, start, end = segment_of("piYcgGdO8_w", 134.15, 181.52)
    assert name == "piYcgGdO8_w_120_180"
    assert start == pytest.approx(14.15) and end == pytest.approx(60.0)
    assert segment_of("x", 60.0, 61.0)[0] == "x_60_120"
    assert segment_of("x", 0.0, 10.5) == ("x_0_60", 0.0, 10.5)


def test_full_video_layout_needs_no_mapping(how2qa_root, tmp_path):
    shutil.copy(how2qa_root / FILES["test"], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"how2_vid_mapping\.json"):
        read_how2qa(tmp_path, "test")
    result = read_how2qa(tmp_path, "test", video_layout="full", video_dir="full", ext="webm")
    assert result.records[0].video_id == "iPV4xMkwFwU"
    assert result.records[0].video_path == tmp_path / "full" / "iPV4xMkwFwU.webm"
    assert len(result.records) == SIZES["test"]


# --- JSONL form, train split, malformed rows -----------------------------------------------------------


def jsonl_item(n: int, **extra) -> dict:
    item = {
        "vid_name": "AhVbBlMtsp4_0_60",
        "ts": "1.5-9.0",
        "q": f"what is shown {n}?",
        "a0": "a bowl",
        "a1": "a cup",
        "a2": "a plate",
        "a3": "a fork",
        "answer_idx": 2,
        "qid": f"how2qa_{n}",
    }
    return {**item, **extra}


@pytest.fixture()
def jsonl_root(how2qa_root, tmp_path) -> Path:
    shutil.copy(how2qa_root / "how2_vid_mapping.json", tmp_path)
    return tmp_path


def write_jsonl(path: Path, lines: list) -> None:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")


def test_jsonl_train_split(jsonl_root):
    write_jsonl(jsonl_root / "how2qa_train.jsonl", [jsonl_item(0), jsonl_item(1, answer_idx=0, a0="x")])
    assert available_splits(jsonl_root) == ["train"]
    result = read_how2qa(jsonl_root, "train")
    first, second = result.records
    assert first.candidates == ("a bowl", "a cup", "a plate", "a fork")  # kept in the given order
    assert (first.answer_index, first.answer, first.qid) == (2, "a plate", "how2qa_0")
    assert (second.answer_index, second.answer) == (0, "x")
    assert first.video_id == "AhVbBlMtsp4_0_60" and first.split == "train"
    assert first.source == "how2qa_train.jsonl:1"


def test_raw_csv_train_split_and_auto_form(how2qa_root, raw, jsonl_root):
    with (jsonl_root / "how2QA_train_release.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(raw["val"][:10])
    write_jsonl(jsonl_root / "how2qa_train.jsonl", [jsonl_item(0)])
    assert len(read_how2qa(jsonl_root, "train").records) == 10  # auto prefers the raw CSV
    assert len(read_how2qa(jsonl_root, "train", form="jsonl").records) == 1
    assert read_how2qa(jsonl_root, "train").records[3].qid == "train-4"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "bad JSON"),
        (jsonl_item(1, answer_idx=4), "bad answer index"),
        (jsonl_item(1, answer_idx="two"), "bad answer index"),
        (jsonl_item(1, q=" "), "empty question"),
        ({k: v for k, v in jsonl_item(1).items() if k != "a3"}, "missing keys"),
        (jsonl_item(1, vid_name="AhVbBlMtsp4_6000_6060"), "unmapped segment"),
        (jsonl_item(0), "duplicate question id"),
    ],
)
def test_malformed_jsonl_lines(jsonl_root, line, reason):
    path = jsonl_root / "how2qa_val.jsonl"
    write_jsonl(path, [jsonl_item(0), line, jsonl_item(2)])
    with pytest.raises(AnnotationError, match=rf"how2qa_val\.jsonl, row 2: {reason}"):
        read_how2qa(jsonl_root, "val")
    result = read_how2qa(jsonl_root, "val", on_error="skip")
    assert [r.qid for r in result.records] == ["how2qa_0", "how2qa_2"]
    assert [(s.file, s.row) for s in result.skipped] == [(str(path), 2)]


GOOD_ROW = "NOuQuofjk44,[7.2:18.0],10,12,16,how many knife is there?,1"
OTHER_ROW = "NOuQuofjk44,[7.2:18.0],10,12,16,how many forks are there?,1"  # a repeated row is a bad row


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("NOuQuofjk44,[7.2:18.0],10,12,how many knife is there?,1", "wrong column count"),
        ('NOuQuofjk44,[7.2:18.0],10,12,16,"how many, knife",1,extra', "wrong column count"),
        ("NOuQuofjk44,7.2-18.0,10,12,16,how many knife is there?,1", "bad timestamp"),
        ("NOuQuofjk44,[18.0:7.2],10,12,16,how many knife is there?,1", "bad timestamp"),
        ("NOuQuofjk44,[7.2:18.0],10,12,16,,1", "empty question"),
        ("NOuQuofjk44,[7.2:18.0],10,,16,how many?,1", "empty candidate"),
        ("NOuQuofjk44,[607.2:618.0],10,12,16,how many knife is there?,1", "unmapped segment"),
        ("zzzzzzzzzzz,[7.2:18.0],10,12,16,how many knife is there?,1", "unmapped segment"),
        (GOOD_ROW, "duplicate row: the same as line 1"),
    ],
)
def test_malformed_csv_rows(jsonl_root, row, reason):
    path = jsonl_root / FILES["val"]
    path.write_bytes(f"{GOOD_ROW}\r\n{row}\r\n{OTHER_ROW}\r\n".encode())
    with pytest.raises(AnnotationError, match=rf"how2QA_val_release\.csv, row 2: {reason}"):
        read_how2qa(jsonl_root, "val")
    result = read_how2qa(jsonl_root, "val", on_error="skip")
    assert [r.source for r in result.records] == [f"{FILES['val']}:1", f"{FILES['val']}:3"]
    assert [(s.file, s.row) for s in result.skipped] == [(str(path), 2)]
    assert result.skipped[0].reason.startswith(reason)


def _rows(n: int) -> list[str]:
    return [f"NOuQuofjk44,[7.2:18.0],10,12,16,how many knives in scene {i}?,1" for i in range(1, n + 1)]


def test_a_runaway_row_loses_no_valid_row(jsonl_root):
    """An unbalanced quote on row 6 makes csv swallow lines 6..39 into one row (until the next quote)."""
    rows = _rows(40)
    rows[5] = 'NOuQuofjk44,[7.2:18.0],"10,12,16,how many knives in scene 6?,1'  # never closed
    rows[38] = 'NOuQuofjk44,[7.2:18.0],10,12,16,"how many knives in scene 39?",1'  # the next quote
    path = jsonl_root / FILES["val"]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(AnnotationError, match=r"how2QA_val_release\.csv, row 6: row ran over 34 lines"):
        read_how2qa(jsonl_root, "val")
    result = read_how2qa(jsonl_root, "val", on_error="skip")
    assert [(s.row, s.reason.split(" (")[0]) for s in result.skipped] == [(6, "row ran over 34 lines")]
    # every other line is a valid question and is read: 39 records + 1 skip = 40 lines
    assert [int(r.source.split(":")[1]) for r in result.records] == [i for i in range(1, 41) if i != 6]
    assert result.records[-2].question == "how many knives in scene 39?"


def test_a_quote_left_open_to_the_end_of_the_file(jsonl_root):
    rows = _rows(5)
    rows[2] = 'NOuQuofjk44,[7.2:18.0],"10,12,16,q,1'
    (jsonl_root / FILES["val"]).write_text("\n".join(rows) + "\n")
    result = read_how2qa(jsonl_root, "val", on_error="skip")
    assert [s.row for s in result.skipped] == [3] and "ran over 3 lines" in result.skipped[0].reason
    assert [int(r.source.split(":")[1]) for r in result.records] == [1, 2, 4, 5]


def test_non_utf8_csv_names_file_and_row(jsonl_root):
    rows = _rows(4)
    data = ("\n".join(rows) + "\n").encode().replace(b"scene 3", b"sc\xe8ne 3")  # Latin-1
    (jsonl_root / FILES["val"]).write_bytes(data)
    for on_error in ("raise", "skip"):  # a file-level fault: not a row to skip
        with pytest.raises(
            AnnotationError, match=r"how2QA_val_release\.csv, row 3: not UTF-8 text: byte 0xe8"
        ):
            read_how2qa(jsonl_root, "val", on_error=on_error)


def test_quoted_commas_and_missing_files(jsonl_root):
    path = jsonl_root / FILES["test"]
    path.write_text('NOuQuofjk44,[7.2:18.0],"a, b",c,d,"what, exactly?","e ""f"""\n')
    record = read_how2qa(jsonl_root, "test").records[0]
    assert record.question == "what, exactly?" and record.answer == 'e "f"'
    assert set(record.candidates) == {"a, b", "c", "d", 'e "f"'}
    with pytest.raises(FileNotFoundError, match="how2QA_val_release.csv"):
        read_how2qa(jsonl_root, "val")
    with pytest.raises(ValueError, match="unknown split 'train_public'"):
        read_how2qa(jsonl_root, "train_public")
