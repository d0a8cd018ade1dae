"""``python -m siasamrea.data``: synth, convert-gifs, filter, tokenizer, cache and stats on small inputs, on
the session's synthetic benchmark and on the real annotation files; bad input fails naming what is wrong.

The printed numbers are checked against counts made here from the files themselves (``json.load``, ``csv``),
not against the readers the command uses.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from siasamrea.data.cli import main
from siasamrea.data.frames import CachedFrames
from siasamrea.data.registry import DATASETS
from siasamrea.data.tokenization import load_tokenizer
from siasamrea.synthetic.generator import COUNT_FIELDS, SynthConfig
from siasamrea.video import count_frames, is_gif, read_frames, write_gif, write_video

SCALE = 0.005
TGIF_TYPES = {"0": "object", "1": "number", "2": "color", "3": "location"}


def run(capsys, *argv) -> tuple[int, dict | None, str]:
    """``main(argv)`` in-process: (exit code, parsed JSON stdout or None, stderr)."""
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else None), out.err


def run_subprocess(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siasamrea.data", *map(str, argv)], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def solid(colours, size=32) -> np.ndarray:
    c = np.asarray(colours, dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(c[:, None, None, :], (len(c), size, size, 3)))


def tgif_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))[1:]


# ---------------------------------------------------------------------------------------------------
# synth + convert-gifs
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cli_synth")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(
            ["synth", "--out", str(out), "--scale", str(SCALE), "--seed", "2", "--workers", "1", "--quiet"]
        )
    assert rc == 0
    return out, json.loads(buf.getvalue())


def test_synth_writes_a_scaled_benchmark_with_gifs(synth):
    root, summary = synth
    default = SynthConfig()
    counts = {k: max(1, round(getattr(default, k) * SCALE)) for k in COUNT_FIELDS}
    assert {k: summary["config"][k] for k in COUNT_FIELDS} == counts
    assert counts["tgif_train"] == 2 and counts["stills_train"] == 5  # really scaled, not clamped to one
    assert summary["config"]["seed"] == 2 and summary["config"]["tgif_format"] == "gif"
    videos = {
        "tgif-qa": 4 * (counts["tgif_train"] + counts["tgif_test"]),
        "msvd-qa": counts["msvd_train"] + counts["msvd_val"] + counts["msvd_test"],
        "how2qa": counts["how2qa_train"] + counts["how2qa_val"],
        "stills": 2 * (counts["stills_train"] + counts["stills_test"]),
    }
    assert summary["videos"] == videos
    gifs = sorted((root / "tgif-qa" / "gifs").glob("*.gif"))
    assert len(gifs) == videos["tgif-qa"] and all(is_gif(g) for g in gifs)
    assert not (root / "tgif-qa" / "mp4").exists()
    assert len(list((root / "msvd-qa" / "videos").glob("*.mp4"))) == videos["msvd-qa"]
    assert len(list((root / "how2qa" / "videos").glob("*.mp4"))) == videos["how2qa"]
    assert json.loads((root / "synthetic.json").read_text())["videos"] == videos


def test_convert_gifs_of_the_synthetic_benchmark_keeps_every_frame(synth, capsys):
    root, summary = synth
    gifs = root / "tgif-qa" / "gifs"
    rc, out, _ = run(capsys, "convert-gifs", "--src", gifs, "--dst", root / "tgif-qa" / "mp4",
                     "--keyframe-interval", 16)  # fmt: skip
    assert rc == 0
    n = summary["videos"]["tgif-qa"]
    assert out == {"converted": n, "skipped": 0, "failed": 0, "failures": []}
    evidence = [json.loads(x) for x in (root / "tgif-qa" / "evidence.jsonl").read_text().splitlines()]
    assert len(evidence) == n
    for e in evidence:
        assert count_frames(root / "tgif-qa" / "mp4" / f"{e['video_id']}.mp4") == e["num_frames"]
    # a second run finds everything up to date
    rc, again, _ = run(capsys, "convert-gifs", "--src", gifs, "--dst", root / "tgif-qa" / "mp4")
    assert rc == 0 and again["skipped"] == n and again["converted"] == 0


@pytest.fixture
def gif_dir(tmp_path) -> Path:
    d = tmp_path / "gifs"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("a", 5), ("b", 9), ("c", 12)):
        write_gif(d / f"{name}.gif", solid(rng.integers(0, 256, (n, 3))), fps=10)
    return d


def test_convert_gifs_preserves_frame_counts_and_colours(gif_dir, tmp_path, capsys):
    rc, out, _ = run(capsys, "convert-gifs", "--src", gif_dir, "--dst", tmp_path / "mp4", "--workers", 2)
    assert rc == 0 and out["converted"] == 3 and out["failed"] == 0
    rng = np.random.default_rng(1)
    for name, n in (("a", 5), ("b", 9), ("c", 12)):
        colours = rng.integers(0, 256, (n, 3))
        mp4 = tmp_path / "mp4" / f"{name}.mp4"
        assert count_frames(mp4) == n
        means = read_frames(mp4, range(n)).double().mean(dim=(1, 2)).numpy()
        assert np.abs(means - colours).max() < 12  # yuv420p rounding of solid colours


def test_convert_gifs_corrupt_file_skip_and_raise(gif_dir, tmp_path, capsys):
    good = (gif_dir / "c.gif").read_bytes()
    (gif_dir / "bad.gif").write_bytes(good[: len(good) // 2])  # truncated mid-stream
    rc, out, _ = run(
        capsys, "convert-gifs", "--src", gif_dir, "--dst", tmp_path / "skip", "--on-error", "skip"
    )
    assert rc == 0
    assert (out["converted"], out["failed"]) == (3, 1)
    (failure,) = out["failures"]
    assert Path(failure["file"]).name == "bad.gif" and "truncated" in failure["reason"]
    assert sorted(p.name for p in (tmp_path / "skip").iterdir()) == ["a.mp4", "b.mp4", "c.mp4"]
    # default --on-error raise, as a real process: non-zero exit naming the file, no mp4 for it
    proc = run_subprocess("convert-gifs", "--src", gif_dir, "--dst", tmp_path / "raise", "--workers", 1)
    assert proc.returncode != 0
    assert "bad.gif" in proc.stderr and "truncated" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "raise" / "bad.mp4").exists()


# ---------------------------------------------------------------------------------------------------
# filter, tokenizer, cache
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mp4_dir(tmp_path) -> Path:
    d = tmp_path / "videos"
    d.mkdir()
    rng = np.random.default_rng(2)
    for name, n in (("v30", 30), ("v40", 40), ("v50", 50)):
        write_video(d / f"{name}.mp4", rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), fps=10,
                    preset="ultrafast")  # fmt: skip
    (d / "corrupt.mp4").write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    (d / "notes.txt").write_text("not a video")
    return d


def test_filter_writes_the_manifest_and_counts(mp4_dir, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    rc, out, _ = run(capsys, "filter", "--videos", mp4_dir, "--manifest", manifest, "--on-error", "skip")
    assert rc == 0
    assert out == {"total": 4, "kept": 2, "dropped": {"too_short": 1, "missing": 0, "unreadable": 1},
                   "min_frames": 40}  # fmt: skip
    with open(manifest, newline="") as f:
        rows = {r["video_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"v30", "v40", "v50", "corrupt"}
    assert [rows[v]["num_frames"] for v in ("v30", "v40", "v50", "corrupt")] == ["30", "40", "50", ""]
    assert [rows[v]["kept"] for v in ("v30", "v40", "v50", "corrupt")] == ["false", "true", "true", "false"]
    assert rows["v30"]["reason"] == "too_short: 30 < 40" and rows["corrupt"]["reason"].startswith(
        "unreadable"
    )
    assert {r["min_frames"] for r in rows.values()} == {"40"}
    rc, out, _ = run(capsys, "filter", "--videos", mp4_dir, "--manifest", tmp_path / "m.jsonl",
                     "--on-error", "skip", "--min-frames", 31)  # fmt: skip
    assert rc == 0 and out["kept"] == 2 and out["dropped"]["too_short"] == 1
    rc, out, _ = run(capsys, "filter", "--videos", mp4_dir, "--manifest", tmp_path / "m2.csv",
                     "--min-frames", 30, "--on-error", "skip")  # fmt: skip
    assert rc == 0 and out["kept"] == 3
    # the default --on-error raise names the bad file and writes no manifest
    rc, _, err = run(capsys, "filter", "--videos", mp4_dir, "--manifest", tmp_path / "m3.csv")
    assert rc == 1 and "corrupt.mp4" in err and not (tmp_path / "m3.csv").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no \\*.mp4 files"):
        main(["filter", "--videos", str(empty), "--manifest", str(tmp_path / "m4.csv")])


def test_tokenizer_command_builds_a_word_tokenizer(tmp_path, capsys):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("red\nwhat's\nball-game\n\nred\n")
    rc, out, _ = run(capsys, "tokenizer", "--vocab", vocab, "--out", tmp_path / "tok")
    assert rc == 0
    # pieces: red, what, ', s, ball, -, game (punctuation split off) + 5 special tokens
    assert out == {"tokenizer": str(tmp_path / "tok"), "vocab_size": 12}
    tok = load_tokenizer(tmp_path / "tok")
    ids = tok("What's red ball-game", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["what", "'", "s", "red", "ball", "-", "game"]
    assert tok("blue", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    rc, _, err = run(capsys, "tokenizer", "--vocab", tmp_path / "nope.txt", "--out", tmp_path / "tok2")
    assert rc == 1 and "nope.txt" in err


def test_cache_command_decodes_every_frame(tmp_path, capsys):
    rng = np.random.default_rng(3)
    lengths = {"d1": {"p": 6, "q": 7}, "d2": {"r": 8, "s": 9}}
    for d, vids in lengths.items():
        (tmp_path / d).mkdir()
        for name, n in vids.items():
            write_video(tmp_path / d / f"{name}.mp4", solid(rng.integers(0, 256, (n, 3)), size=64), fps=10)
    rc, out, _ = run(capsys, "cache", "--videos", tmp_path / "d1", tmp_path / "d2", "--out", tmp_path / "c",
                     "--frame-size", 32, "--quiet")  # fmt: skip
    assert rc == 0
    assert (out["videos"], out["frames"], out["bytes"]) == (4, 30, 30 * 32 * 32 * 3)
    cache = CachedFrames(tmp_path / "c")
    for d, vids in lengths.items():
        for name, n in vids.items():
            path = tmp_path / d / f"{name}.mp4"
            assert cache.num_frames(path) == n
            idx = torch.arange(n)[None]
            assert torch.equal(cache.read(path, idx)[0], read_frames(path, range(n), size=(32, 32)))
    rc, _, err = run(capsys, "cache", "--videos", tmp_path / "missing", "--out", tmp_path / "c2",
                     "--frame-size", 32, "--quiet")  # fmt: skip
    assert rc == 1 and "missing" in err and not (tmp_path / "c2").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no \\*.mp4 files"):
        main(["cache", "--videos", str(empty), "--out", str(tmp_path / "c3"), "--frame-size", "8"])
    assert not (tmp_path / "c3").exists()


# ---------------------------------------------------------------------------------------------------
# stats on the synthetic benchmark
# ---------------------------------------------------------------------------------------------------


def test_stats_msvd_matches_counts_from_the_json_files(synthetic_root, capsys):
    root = synthetic_root / "msvd-qa"
    rc, out, _ = run(capsys, "stats", "--dataset", "msvd-qa", "--root", root, "--option", "ext=mp4")
    assert rc == 0 and out["dataset"] == "msvd-qa" and list(out["splits"]) == ["train", "val", "test"]
    items = {s: json.loads((root / f"{s}_qa.json").read_text()) for s in ("train", "val", "test")}
    train_answers = {it["answer"] for it in items["train"]}
    for split, data in items.items():
        got = out["splits"][split]
        assert got["questions"] == len(data) > 0
        assert got["videos"] == len({it["video_id"] for it in data})
        assert got["answer_vocab_size"] == len({it["answer"] for it in data})
        assert got["per_question_type"] == dict(Counter(it["question"].split()[0] for it in data))
        assert got["per_kind"] == {"open_ended": len(data)}
        assert got["skipped"] == {"total": 0, "by_reason": {}}
        in_vocab = sum(it["answer"] in train_answers for it in data)
        assert got["vocab"] == {"size": len(train_answers), "in_vocab": in_vocab, "oov": len(data) - in_vocab}
    assert out["splits"]["train"]["vocab"]["oov"] == 0


def test_stats_tgif_matches_counts_from_the_tsv_files(synthetic_root, capsys):
    root = synthetic_root / "tgif-qa"
    rc, out, _ = run(capsys, "stats", "--dataset", "tgif-qa", "--root", root, "--option", "video_dir=mp4",
                     "--option", "ext=mp4")  # fmt: skip
    assert rc == 0 and list(out["splits"]) == ["train", "val", "test"]
    train, val, test = (out["splits"][s] for s in ("train", "val", "test"))
    for task in ("action", "transition", "count", "frameqa"):
        train_rows = tgif_rows(root / f"Train_{task}_question.csv")
        test_rows = tgif_rows(root / f"Test_{task}_question.csv")
        # val is carved out of the train file by GIF: together they are the file, with no GIF in both
        assert train["per_task"][task]["questions"] + val["per_task"][task]["questions"] == len(train_rows)
        assert train["per_task"][task]["videos"] + val["per_task"][task]["videos"] == len(
            {r[0] for r in train_rows}
        )
        assert test["per_task"][task]["questions"] == len(test_rows)
        assert test["per_task"][task]["videos"] == len({r[0] for r in test_rows})
        kind = {"action": "multiple_choice", "transition": "multiple_choice", "count": "count"}.get(task)
        assert test["per_task"][task]["kind"] == {kind or "open_ended": len(test_rows)}
    frameqa = tgif_rows(root / "Test_frameqa_question.csv")
    assert test["per_task"]["frameqa"]["per_question_type"] == dict(
        sorted(Counter(TGIF_TYPES[r[3]] for r in frameqa).items(), key=lambda kv: (-kv[1], kv[0]))
    )
    assert test["answer_vocab_size"] == len({r[2] for r in frameqa})
    n_train = sum(len(tgif_rows(root / f"Train_{t}_question.csv")) for t in ("action", "transition", "count"))
    assert train["per_question_type"]["none"] + val["per_question_type"]["none"] == n_train
    assert all(s["skipped"]["total"] == 0 for s in (train, val, test))
    assert val["questions"] > 0 and train["questions"] > 4 * val["questions"]  # a ~10% carve-out


def test_stats_how2qa_matches_counts_from_the_csv_files(synthetic_root, capsys):
    root = synthetic_root / "how2qa"
    rc, out, _ = run(capsys, "stats", "--dataset", "how2qa", "--root", root, "--split", "val")
    assert rc == 0 and list(out["splits"]) == ["val"]
    with open(root / "how2QA_val_release.csv", newline="") as f:
        rows = list(csv.reader(f))
    got = out["splits"]["val"]
    assert got["questions"] == len(rows) and got["videos"] == len({r[0] for r in rows})
    assert got["per_kind"] == {"multiple_choice": len(rows)} and got["answer_vocab_size"] == 0
    assert "vocab" not in got  # no train split asked for: no vocabulary to measure against


# ---------------------------------------------------------------------------------------------------
# stats on the real annotation files
# ---------------------------------------------------------------------------------------------------


def test_stats_real_msvd_in_a_subprocess(real_annotations):
    root = real_annotations / "msvd-qa"
    proc = run_subprocess("stats", "--dataset", "msvd-qa", "--root", root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected = {"train": 30933, "val": 6415, "test": 13157}  # the release's sizes
    for split, n in expected.items():
        data = json.loads((root / f"{split}_qa.json").read_text())
        got = out["splits"][split]
        assert got["questions"] == len(data) == n
        assert got["videos"] == len({it["video_id"] for it in data})
        assert got["answer_vocab_size"] == len({it["answer"].strip() for it in data})
        assert got["skipped"]["total"] == 0
        assert sum(got["per_question_type"].values()) == n
    # the 1000-answer vocabulary of the training split
    assert out["splits"]["train"]["vocab"]["size"] == 1000
    top = Counter(it["answer"] for it in json.loads((root / "train_qa.json").read_text()))
    vocab = {a for a, _ in sorted(top.items(), key=lambda kv: (-kv[1], kv[0]))[:1000]}
    test = json.loads((root / "test_qa.json").read_text())
    assert out["splits"]["test"]["vocab"]["in_vocab"] == sum(it["answer"] in vocab for it in test)


def test_stats_real_tgif_how2qa_activitynet(real_annotations, capsys):
    tgif = real_annotations / "tgif-qa"
    rc, out, _ = run(capsys, "stats", "--dataset", "tgif-qa", "--root", tgif, "--split", "test")
    assert rc == 0
    test = out["splits"]["test"]
    for task in ("action", "transition", "count", "frameqa"):
        assert test["per_task"][task]["questions"] == len(tgif_rows(tgif / f"Test_{task}_question.csv"))
    assert test["questions"] == 25751 and test["skipped"]["total"] == 0

    how2 = real_annotations / "how2qa"
    rc, out, _ = run(capsys, "stats", "--dataset", "how2qa", "--root", how2)
    assert rc == 0 and list(out["splits"]) == ["val", "test"]
    for split, name, n in (
        ("val", "how2QA_val_release.csv", 2852),
        ("test", "how2QA_test_public_release.csv", 2937),
    ):
        with open(how2 / name, newline="", encoding="utf-8") as f:
            assert out["splits"][split]["questions"] == sum(1 for r in csv.reader(f) if r) == n

    anet = real_annotations / "activitynet-qa"
    rc, out, _ = run(capsys, "stats", "--dataset", "activitynet-qa", "--root", anet)
    assert rc == 0
    for split, n in (("val", 18000), ("test", 8000)):
        answers = json.loads((anet / f"{split}_a.json").read_text())
        got = out["splits"][split]
        assert got["questions"] == len(answers) == n and got["skipped"]["total"] == 0
        assert got["videos"] == len(
            {q["video_name"] for q in json.loads((anet / f"{split}_q.json").read_text())}
        )


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


def test_stats_unknown_dataset_lists_the_known_ones(tmp_path, capsys):
    rc, _, err = run(capsys, "stats", "--dataset", "tgif", "--root", tmp_path)
    assert rc == 1 and "unknown dataset 'tgif'" in err
    assert all(name in err for name in DATASETS) and len(DATASETS) == 5


@pytest.mark.parametrize("split", [None, "train"])
def test_stats_missing_root_is_an_error(tmp_path, capsys, split):
    missing = tmp_path / "no-such-folder"
    rc, _, err = run(
        capsys, "stats", "--dataset", "msvd-qa", "--root", missing, *(["--split", split] if split else [])
    )
    assert rc == 1 and str(missing) in err


def test_stats_folder_without_annotation_files_is_an_error(tmp_path, capsys):
    rc, _, err = run(capsys, "stats", "--dataset", "how2qa", "--root", tmp_path)
    assert rc == 1 and str(tmp_path) in err


def test_stats_reports_malformed_rows_as_skips(synthetic_root, tmp_path, capsys):
    root = tmp_path / "msvd"
    shutil.copytree(synthetic_root / "msvd-qa", root, ignore=shutil.ignore_patterns("videos"))
    data = json.loads((root / "train_qa.json").read_text())
    n = len(data)
    del data[0]["answer"]
    data[1]["video_id"] = "one"
    data[2]["video_id"] = 10**6
    data[3]["id"] = data[4]["id"]
    (root / "train_qa.json").write_text(json.dumps(data))
    rc, out, _ = run(capsys, "stats", "--dataset", "msvd-qa", "--root", root, "--split", "train")
    assert rc == 0
    got = out["splits"]["train"]
    assert got["questions"] == n - 4
    assert got["skipped"] == {"total": 4, "by_reason": {"bad video_id": 1, "duplicate question id": 1,
                                                        "missing keys": 1, "unknown video": 1}}  # fmt: skip
    rc, _, err = run(capsys, "stats", "--dataset", "msvd-qa", "--root", root, "--on-error", "raise")
    assert rc == 1 and "train_qa.json, row 0" in err and "missing keys: answer" in err

    tgif = tmp_path / "tgif"
    tgif.mkdir()
    lines = (synthetic_root / "tgif-qa" / "Test_action_question.csv").read_bytes().split(b"\r\n")
    fields = lines[2].split(b"\t")
    fields[7] = b"7"  # answer index out of 0..4
    lines[2] = b"\t".join(fields)
    lines[3] = b"\t".join(lines[3].split(b"\t")[:5])  # a truncated row
    (tgif / "Test_action_question.csv").write_bytes(b"\r\n".join(lines))
    rc, out, _ = run(capsys, "stats", "--dataset", "tgif-qa", "--root", tgif)
    assert rc == 0 and list(out["splits"]) == ["test"]
    test = out["splits"]["test"]
    assert test["questions"] == len([x for x in lines[1:] if x]) - 2
    assert test["skipped"] == {"total": 2, "by_reason": {"bad answer index": 1, "wrong column count": 1}}


def test_stats_bad_option_syntax(tmp_path):
    with pytest.raises(SystemExit, match="key=value"):
        main(["stats", "--dataset", "msvd-qa", "--root", str(tmp_path), "--option", "ext"])
