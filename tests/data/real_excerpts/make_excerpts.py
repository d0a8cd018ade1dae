"""Rebuild the excerpts in this folder from the full public releases (../shared/data/real-annotations).

    python tests/data/real_excerpts/make_excerpts.py [FULL_DIR]

Every excerpt keeps the release's exact bytes for the rows it keeps (delimiters, quoting, line endings,
JSON spacing), so the readers see the real quirks. PROVENANCE.md says where each file comes from and which
rows were kept; tests/data/test_real_excerpts.py checks the excerpts against the full files when present.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from siasamrea.data.how2qa import segment_of

HERE = Path(__file__).resolve().parent
FULL = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "data" / "real-annotations"
ROWS = 5  # data rows kept per file


def head_lines(src: Path, dst: Path, n: int, header: bool) -> None:
    """The first ``n`` data lines (after the header line when ``header``), bytes unchanged."""
    lines = src.read_bytes().splitlines(keepends=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"".join(lines[: n + (1 if header else 0)]))


def json_items(items: list, like: Path) -> str:
    """A JSON array in the release's own spacing (compact or ``", "``-separated, one line)."""
    text = like.read_text()
    compact = text[:200].startswith('[{"') and '","' in text[:200]
    return json.dumps(items, separators=(",", ":") if compact else (", ", ": "), ensure_ascii=False)


def main() -> None:
    for name in ("Test_action", "Test_transition", "Test_count", "Test_frameqa", "Train_action"):
        f = f"{name}_question.csv"
        head_lines(FULL / "tgif-qa" / f, HERE / "tgif-qa" / f, ROWS, header=True)

    # MSVD-QA: train items of the first three videos (video_id k is line k of youtube_mapping.txt)
    src = FULL / "msvd-qa" / "train_qa.json"
    items = [it for it in json.loads(src.read_text()) if it["video_id"] <= 3][:9]
    (HERE / "msvd-qa").mkdir(parents=True, exist_ok=True)
    (HERE / "msvd-qa" / "train_qa.json").write_text(json_items(items, src))
    mapping = "msvd-qa/youtube_mapping.txt"
    head_lines(FULL / mapping, HERE / mapping, 3, header=False)

    # ActivityNet-QA: the first questions of val and test and their answers (same order in both files)
    for split in ("val", "test"):
        q_src = FULL / "activitynet-qa" / f"{split}_q.json"
        a_src = FULL / "activitynet-qa" / f"{split}_a.json"
        qs = json.loads(q_src.read_text())[:ROWS]
        ids = {q["question_id"] for q in qs}
        ans = [a for a in json.loads(a_src.read_text()) if a["question_id"] in ids]
        (HERE / "activitynet-qa").mkdir(parents=True, exist_ok=True)
        (HERE / "activitynet-qa" / q_src.name).write_text(json_items(qs, q_src))
        (HERE / "activitynet-qa" / a_src.name).write_text(json_items(ans, a_src))

    # How2QA: the first rows of val (LF) and test (CRLF), and the 60-s segments they need from the mapping
    sys.path.insert(0, str(HERE.parents[2]))

    needed = set()
    for f in ("how2QA_val_release.csv", "how2QA_test_public_release.csv"):
        head_lines(FULL / "how2qa" / f, HERE / "how2qa" / f, ROWS, header=False)
        with open(HERE / "how2qa" / f, newline="") as handle:
            for row in csv.reader(handle):
                start, end = (float(x) for x in row[1].strip("[]").split(":"))
                needed.add(segment_of(row[0], start, end)[0])
    mapping = json.loads((FULL / "how2qa" / "how2_vid_mapping.json").read_text())
    kept = {k: v for k, v in mapping.items() if v in needed}
    (HERE / "how2qa" / "how2_vid_mapping.json").write_text(json.dumps(kept))


if __name__ == "__main__":
    main()
