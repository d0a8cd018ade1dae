"""Every reader on a few real rows of each release, shipped with the repository (tests/data/real_excerpts/).

These run in a plain clone. The excerpts keep the releases' exact bytes for the rows they keep (TGIF-QA's
tab-separated ".csv" with CRLF, MSVD-QA's compact JSON, ActivityNet-QA's split question/answer files,
How2QA's header-less CSV with CRLF in test and LF in val); PROVENANCE.md there says where each comes from.
Each record is checked against the row parsed independently here. When the full releases are beside the
repository (../shared/data/real-annotations), the last test checks that every excerpt row is a row of the
full file, byte for byte; the reader tests in the other test_readers_*.py files then run on the full files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from siasamrea.core.choices import TaskKind
from siasamrea.data.activitynet_qa import read_activitynet_qa
from siasamrea.data.how2qa import read_how2qa, segment_of
from siasamrea.data.msvd_qa import read_msvd_qa
from siasamrea.data.tgif_qa import read_tgif_qa

EXCERPTS = Path(__file__).resolve().parent / "real_excerpts"
FULL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-annotations"
FILES = sorted(p.relative_to(EXCERPTS) for p in EXCERPTS.rglob("*") if p.is_file() and p.suffix != ".py"
               and p.name != "PROVENANCE.md")  # fmt: skip


def _tsv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[1:]


@pytest.mark.parametrize("task", ["action", "transition", "count", "frameqa"])
def test_tgif_qa_test_rows(task):
    path = EXCERPTS / "tgif-qa" / f"Test_{task}_question.csv"
    assert path.read_bytes().count(b"\r\n") == 6, "header + 5 rows, CRLF as released"
    rows = _tsv(path)
    got = read_tgif_qa(EXCERPTS / "tgif-qa", "test", task=task)
    assert got.skipped == [] and len(got.records) == len(rows) == 5
    for r, row in zip(got.records, rows, strict=True):
        assert r.dataset == "tgif-qa" and r.task == task and r.question == row[1]
        assert r.video_path.name.startswith(row[0])
        if task in ("action", "transition"):
            assert r.kind is TaskKind.MULTIPLE_CHOICE and r.candidates == tuple(row[2:7])
            assert r.answer_index == int(row[7]) and r.answer == row[2 + int(row[7])]
        elif task == "count":
            assert r.kind is TaskKind.COUNT and r.answer == row[2] and int(r.answer) >= 0
        else:
            assert r.kind is TaskKind.OPEN_ENDED and r.answer == row[2] and r.question_type is not None


def test_tgif_qa_train_rows_split_into_train_and_val():
    rows = _tsv(EXCERPTS / "tgif-qa" / "Train_action_question.csv")
    train = read_tgif_qa(EXCERPTS / "tgif-qa", "train", task="action").records
    val = read_tgif_qa(EXCERPTS / "tgif-qa", "val", task="action").records
    assert sorted(r.question for r in train + val) == sorted(row[1] for row in rows)
    assert not {r.qid for r in train} & {r.qid for r in val}


def test_msvd_qa_rows_and_the_youtube_mapping():
    items = json.loads((EXCERPTS / "msvd-qa" / "train_qa.json").read_text())
    lines = (EXCERPTS / "msvd-qa" / "youtube_mapping.txt").read_text().splitlines()
    got = read_msvd_qa(EXCERPTS / "msvd-qa", "train")
    assert got.skipped == [] and len(got.records) == len(items) == 9
    for i, (r, it) in enumerate(zip(got.records, items, strict=True)):
        assert (r.qid, r.question, r.answer) == (str(it["id"]), it["question"], it["answer"])
        assert r.video_id == lines[it["video_id"] - 1].split(" ")[1] == f"vid{it['video_id']}"
        assert r.source == f"train_qa.json:{i}" and r.question_type == it["question"].split()[0]
    youtube = read_msvd_qa(EXCERPTS / "msvd-qa", "train", video_naming="youtube", video_dir="YouTubeClips")
    assert youtube.records[0].video_path.name == lines[0].split(" ")[0] + ".avi"


@pytest.mark.parametrize("split", ["val", "test"])
def test_activitynet_qa_joins_questions_and_answers(split):
    qs = json.loads((EXCERPTS / "activitynet-qa" / f"{split}_q.json").read_text())
    ans = {
        a["question_id"]: a for a in json.loads((EXCERPTS / "activitynet-qa" / f"{split}_a.json").read_text())
    }
    got = read_activitynet_qa(EXCERPTS / "activitynet-qa", split)
    assert got.skipped == [] and len(got.records) == len(qs) == 5
    for r, q in zip(got.records, qs, strict=True):
        assert r.qid == q["question_id"] and r.question == q["question"]
        assert r.answer == ans[q["question_id"]]["answer"] and r.video_id.endswith(q["video_name"])


@pytest.mark.parametrize(
    "split,name", [("val", "how2QA_val_release.csv"), ("test", "how2QA_test_public_release.csv")]
)
def test_how2qa_rows_candidates_and_segments(split, name):
    data = (EXCERPTS / "how2qa" / name).read_bytes()
    assert (b"\r\n" in data) == (split == "test"), "test is CRLF, val LF, as released"
    with open(EXCERPTS / "how2qa" / name, newline="") as f:
        rows = list(csv.reader(f))
    mapping = set(json.loads((EXCERPTS / "how2qa" / "how2_vid_mapping.json").read_text()).values())
    got = read_how2qa(EXCERPTS / "how2qa", split)
    assert got.skipped == [] and len(got.records) == len(rows) == 5
    for r, row in zip(got.records, rows, strict=True):
        youtube_id, span, w1, w2, w3, question, correct = (x.strip() for x in row)
        assert r.kind is TaskKind.MULTIPLE_CHOICE and r.question == question
        assert r.candidates[r.answer_index] == r.answer == correct
        rest = list(r.candidates)
        del rest[r.answer_index]
        assert rest == [w1, w2, w3]
        start, end = (float(x) for x in span.strip("[]").split(":"))
        assert r.video_id == segment_of(youtube_id, start, end)[0] and r.video_id in mapping


@pytest.mark.skipif(
    not FULL.is_dir(), reason=f"the full releases are not at {FULL} (only the excerpts are checked)"
)
@pytest.mark.parametrize("rel", FILES, ids=str)
def test_excerpts_are_rows_of_the_full_releases(rel):
    mine, full = EXCERPTS / rel, FULL / rel
    if rel.suffix == ".json":
        items = json.loads(mine.read_text())
        whole = json.loads(full.read_text())
        pool = whole.items() if isinstance(whole, dict) else [json.dumps(x, sort_keys=True) for x in whole]
        if isinstance(whole, dict):
            assert items.items() <= whole.items(), rel
        else:
            assert {json.dumps(x, sort_keys=True) for x in items} <= set(pool), rel
        assert items, rel
    else:
        lines = mine.read_bytes().splitlines(keepends=True)
        first = full.read_bytes().startswith(b"".join(lines))
        assert lines and first, f"{rel}: not the release's first lines"
