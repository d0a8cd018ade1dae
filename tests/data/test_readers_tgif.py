"""TGIF-QA reader on the real release files and on small malformed files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from siasamrea.core.choices import TaskKind
from siasamrea.data.records import AnnotationError
from siasamrea.data.tgif_qa import COLUMNS, TASKS, is_val_gif, read_tgif_qa


def raw_rows(path: Path) -> list[list[str]]:
    """Data rows split on tabs by hand (independent of the reader's csv handling); header dropped."""
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    assert lines[-1] == ""  # every line, the last included, ends in CRLF
    return [line.split("\t") for line in lines[1:-1]]


@pytest.fixture(scope="module")
def test_split(tgif_root):
    return read_tgif_qa(tgif_root, "test")


def by_task(result, task):
    return [r for r in result.records if r.task == task]


@pytest.mark.parametrize("task", TASKS)
def test_test_files_row_counts_and_ids_match_a_plain_line_count(tgif_root, test_split, task):
    rows = raw_rows(tgif_root / f"Test_{task}_question.csv")
    records = by_task(test_split, task)
    assert len(records) == len(rows)
    vid_col = COLUMNS[task].index("vid_id")
    assert [r.qid for r in records] == [row[vid_col] for row in rows]
    assert [r.source for r in records] == [f"Test_{task}_question.csv:{i}" for i in range(2, len(rows) + 2)]
    assert test_split.skipped == []


def test_known_test_sizes(test_split):
    assert Counter(r.task for r in test_split.records) == {
        "action": 2274,
        "transition": 6232,
        "count": 3554,
        "frameqa": 13691,
    }


@pytest.mark.parametrize("task", ["action", "transition"])
def test_multiple_choice_answer_is_the_indexed_candidate(tgif_root, test_split, task):
    rows = {row[8]: row for row in raw_rows(tgif_root / f"Test_{task}_question.csv")}
    for record in by_task(test_split, task):
        row = rows[record.qid]
        assert record.kind is TaskKind.MULTIPLE_CHOICE
        assert record.answer_index == int(row[7])
        assert record.candidates[record.answer_index] == record.answer
        if '"' not in "".join(row):
            assert list(record.candidates) == row[2:7]
    # Answer positions in the file are balanced, and the reader keeps them.
    positions = Counter(r.answer_index for r in by_task(test_split, task))
    assert set(positions) == {0, 1, 2, 3, 4}


def test_csv_quoted_candidates_are_decoded(test_split):
    records = {r.qid: r for r in by_task(test_split, "transition")}
    assert records["TRANS15831"].candidates[4] == 'respond "no"'
    assert records["TRANS21452"].candidates[3] == 'write "i love you"'
    assert records["TRANS21452"].answer == "pose"
    # No field keeps a stray quote or the CR of the CRLF line ending.
    for record in test_split.records:
        for text in (record.qid, record.question, record.answer, *record.candidates):
            assert "\r" not in text and not text.startswith('"')


@pytest.mark.parametrize(
    "name", ["Test_action", "Test_transition", "Test_count", "Test_frameqa", "Train_count"]
)
def test_key_and_gif_name_are_one_to_one(tgif_root, name):
    task = name.split("_")[1]
    cols = COLUMNS[task]
    rows = raw_rows(tgif_root / f"{name}_question.csv")
    pairs = {(row[cols.index("key")], row[cols.index("gif_name")]) for row in rows}
    keys = Counter(k for k, _ in pairs)
    gifs = Counter(g for _, g in pairs)
    assert max(keys.values()) == 1 and max(gifs.values()) == 1
    # The reader's video ids are exactly the GIF names of the file.
    if name.startswith("Test"):
        assert {r.video_id for r in read_tgif_qa(tgif_root, "test", task=task).records} == set(gifs)


def test_frameqa_question_types(tgif_root, test_split):
    rows = raw_rows(tgif_root / "Test_frameqa_question.csv")
    names = {"0": "object", "1": "number", "2": "color", "3": "location"}
    expected = Counter(names[row[3]] for row in rows)
    got = Counter(r.question_type for r in by_task(test_split, "frameqa"))
    assert got == expected == {"object": 5586, "color": 3904, "number": 3148, "location": 1053}
    assert sum(got.values()) == len(rows)
    assert all(r.kind is TaskKind.OPEN_ENDED and r.candidates == () for r in by_task(test_split, "frameqa"))
    assert all(r.question_type is None for r in test_split.records if r.task != "frameqa")


def test_count_answers_are_integers(tgif_root, test_split):
    rows = raw_rows(tgif_root / "Test_count_question.csv")
    records = by_task(test_split, "count")
    assert Counter(r.count for r in records) == Counter(int(row[2]) for row in rows)
    assert {r.count for r in records} == {0, 2, 3, 4, 5, 6, 7, 8, 9, 10}
    assert all(r.kind is TaskKind.COUNT for r in records)


def test_video_path_defaults_to_gif_and_can_point_at_converted_mp4(tgif_root, test_split):
    record = by_task(test_split, "action")[0]
    assert record.video_id == "tumblr_nk172bbdPI1u1lr18o1_250"
    assert record.video_path == tgif_root / "gifs" / "tumblr_nk172bbdPI1u1lr18o1_250.gif"
    mp4 = read_tgif_qa(tgif_root, "test", task="action", video_dir="mp4", ext="mp4").records[0]
    assert mp4.video_path == tgif_root / "mp4" / "tumblr_nk172bbdPI1u1lr18o1_250.mp4"


@pytest.fixture(scope="module")
def train_val(tgif_root):
    tasks = ("action", "count")
    return read_tgif_qa(tgif_root, "train", task=tasks), read_tgif_qa(tgif_root, "val", task=tasks)


def test_val_is_carved_from_train_by_gif(tgif_root, train_val):
    train, val = train_val
    for task in ("action", "count"):
        n_rows = len(raw_rows(tgif_root / f"Train_{task}_question.csv"))
        t, v = by_task(train, task), by_task(val, task)
        assert len(t) + len(v) == n_rows
        assert {r.qid for r in t}.isdisjoint({r.qid for r in v})
        assert {r.video_id for r in t}.isdisjoint({r.video_id for r in v})
        val_gifs, train_gifs = {r.video_id for r in v}, {r.video_id for r in t}
        assert 0.08 < len(val_gifs) / (len(val_gifs) + len(train_gifs)) < 0.12  # val_fraction=0.1 of GIFs
        assert all(r.split == "val" for r in v) and all(r.split == "train" for r in t)
    # The action and count train files share GIFs; a shared GIF is on the same side for both tasks,
    # so multi-task training does not see a val video either.
    val_gifs = {r.video_id for r in val.records}
    train_gifs = {r.video_id for r in train.records}
    assert val_gifs.isdisjoint(train_gifs)
    shared = {r.video_id for r in by_task(val, "action")} & {r.video_id for r in by_task(val, "count")}
    assert len(shared) > 100


def test_val_split_is_deterministic_and_seeded(tgif_root, train_val):
    _, val = train_val
    again = read_tgif_qa(tgif_root, "val", task="count")
    assert [r.qid for r in again.records] == [r.qid for r in by_task(val, "count")]
    other = read_tgif_qa(tgif_root, "val", task="count", seed=1)
    assert {r.qid for r in other.records} != {r.qid for r in again.records}
    assert all(is_val_gif(r.video_id, 0.1, 0) for r in again.records)
    bigger = read_tgif_qa(tgif_root, "val", task="count", val_fraction=0.3)
    assert {r.qid for r in again.records} < {r.qid for r in bigger.records}
    assert read_tgif_qa(tgif_root, "val", task="count", val_fraction=0.0).records == []


def test_missing_file_and_unknown_task(tgif_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="Train_frameqa_question.csv"):
        read_tgif_qa(tgif_root, "train", task="frameqa")
    with pytest.raises(ValueError, match="known tasks: action, transition, count, frameqa"):
        read_tgif_qa(tgif_root, "test", task="actions")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        read_tgif_qa(tgif_root, "dev", task="action")


# --- malformed files -------------------------------------------------------------------------------

ACTION_HEADER = "\t".join(COLUMNS["action"])
GOOD = "g{n}\tWhat does the man do ?\ta\tb\tc\td\te\t{ans}\tACTION{n}\t{n}"


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode())
    return path


BAD_ACTION_ROWS = [
    (GOOD.format(n=1, ans=0), None),
    ("g2\tWhat ?\ta\tb\tc\td\t2\tACTION2\t2", "wrong column count"),  # one candidate short
    (GOOD.format(n=3, ans="x"), "bad answer index"),
    (GOOD.format(n=4, ans=5), "bad answer index"),
    (GOOD.format(n=5, ans=-1), "bad answer index"),
    ("g6\t \ta\tb\tc\td\te\t1\tACTION6\t6", "empty question"),
    (GOOD.format(n=1, ans=1), "duplicate question id"),
    ("g7\tWhat ?\ta\tb\tc\td\te\t1\tACTION7\t1", "inconsistent key"),  # key 1 already belongs to g1
    (GOOD.format(n=8, ans=4), None),
]


def test_malformed_action_rows_raise_with_file_and_row(tmp_path):
    path = write(tmp_path / "Test_action_question.csv", ACTION_HEADER, [r for r, _ in BAD_ACTION_ROWS])
    with pytest.raises(AnnotationError) as info:
        read_tgif_qa(tmp_path, "test", task="action")
    assert str(path) in str(info.value) and "row 3" in str(info.value)
    assert info.value.row == 3 and "wrong column count" in info.value.reason


def test_malformed_action_rows_are_skipped_and_counted(tmp_path):
    path = write(tmp_path / "Test_action_question.csv", ACTION_HEADER, [r for r, _ in BAD_ACTION_ROWS])
    result = read_tgif_qa(tmp_path, "test", task="action", on_error="skip")
    assert [r.qid for r in result.records] == ["ACTION1", "ACTION8"]
    assert result.records[1].answer == "e" and result.records[1].source == "Test_action_question.csv:10"
    expected = [(i + 2, reason) for i, (_, reason) in enumerate(BAD_ACTION_ROWS) if reason]
    assert [(s.row, s.reason.split(":")[0]) for s in result.skipped] == expected
    assert all(s.file == str(path) for s in result.skipped)


@pytest.mark.parametrize(
    ("task", "row", "reason"),
    [
        ("count", "g1\tHow many times ?\tthree\tCOUNT1\t1", "bad count"),
        ("count", "g1\tHow many times ?\t2.5\tCOUNT1\t1", "bad count"),
        ("count", "g1\tHow many times ?\t-2\tCOUNT1\t1", "bad count"),
        ("count", "g1\t\t3\tCOUNT1\t1", "empty question"),
        ("frameqa", "g1\twhat is it ?\tcat\t7\tFRAMEQA1\t1\ta cat .", "bad question type"),
        ("frameqa", "g1\twhat is it ?\t\t0\tFRAMEQA1\t1\ta cat .", "empty answer"),
        ("frameqa", "g1\twhat is it ?\tcat\t0\tFRAMEQA1\t1", "wrong column count"),
    ],
)
def test_malformed_count_and_frameqa_rows(tmp_path, task, row, reason):
    good = {"count": "g0\tHow many times ?\t3\tCOUNT0\t0", "frameqa": "g0\twhat ?\tdog\t0\tFRAMEQA0\t0\td ."}
    path = write(tmp_path / f"Test_{task}_question.csv", "\t".join(COLUMNS[task]), [good[task], row])
    with pytest.raises(AnnotationError, match=rf"Test_{task}_question\.csv, row 3: {reason}"):
        read_tgif_qa(tmp_path, "test", task=task)
    result = read_tgif_qa(tmp_path, "test", task=task, on_error="skip")
    assert len(result.records) == 1 and result.records[0].source.endswith(":2")
    assert [(s.file, s.row) for s in result.skipped] == [(str(path), 3)]


def test_bad_header_raises_even_when_skipping(tmp_path):
    write(tmp_path / "Test_count_question.csv", "gif_name,question,answer,vid_id,key", [])
    with pytest.raises(AnnotationError, match=r"Test_count_question\.csv, row 1: bad header"):
        read_tgif_qa(tmp_path, "test", task="count", on_error="skip")


def test_bad_rows_of_the_train_file_are_reported_once_across_train_and_val(tmp_path):
    header = "\t".join(COLUMNS["count"])
    rows = [f"gif{i}\tHow many ?\tmany\tCOUNT{i}\t{i}" for i in range(200)]
    write(tmp_path / "Train_count_question.csv", header, rows)
    train = read_tgif_qa(tmp_path, "train", task="count", on_error="skip")
    val = read_tgif_qa(tmp_path, "val", task="count", on_error="skip")
    assert train.records == [] and val.records == []
    assert len(train.skipped) + len(val.skipped) == 200
    assert len(val.skipped) > 0
    with pytest.raises(ValueError, match="on_error"):
        read_tgif_qa(tmp_path, "train", task="count", on_error="ignore")
