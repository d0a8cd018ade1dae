"""The synthetic benchmark generator: determinism, formats, evidence (in the files and in the pixels),
the 40-frame filter's share, the distribution shift to the downstream sets, vocabularies.

Most checks run on the session's ``synthetic_root``; determinism runs on three tiny generations. Where the
generator's internals are used (``_jobs``/``_spec``) it is only to know *where* an object is drawn: what is
asked, what the answer is and *when* it is visible always come from the written files.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from siasamrea.data.filtering import filter_videos, read_manifest
from siasamrea.data.prepare import prepare
from siasamrea.data.registry import read_split
from siasamrea.data.tokenization import load_tokenizer
from siasamrea.synthetic.generator import (
    COLORS_DEFAULT,
    COUNT_FIELDS,
    SHAPES_DEFAULT,
    TGIF_HEADERS,
    SynthConfig,
    _jobs,
    _spec,
    generate,
    scaled,
)
from siasamrea.synthetic.render import COLORS, render
from siasamrea.synthetic.tasks import ACTIONS, NUMBER_WORDS, REGIONS
from siasamrea.video import count_frames, read_frames

DATASETS = ("tgif-qa", "msvd-qa", "how2qa", "stills")
VIDEO_DIR = {"tgif-qa": "mp4", "stills": "mp4", "msvd-qa": "videos", "how2qa": "videos"}
TGIF_READ = {"video_dir": "mp4", "ext": "mp4"}
TINY = dict(tgif_train=2, tgif_test=1, msvd_train=2, msvd_val=1, msvd_test=1, how2qa_train=2, how2qa_val=1,
            stills_train=1, stills_test=1)  # fmt: skip
PALETTE = {name: np.array(COLORS[name], dtype=float) for name in COLORS_DEFAULT}
SUMMARY_VOLATILE = ("seconds",)


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def read_all(root: Path, dataset: str, split: str, **kw):
    """The questions of ``split`` of a synthetic dataset, read by the project's readers."""
    if dataset == "tgif-qa":
        return read_split("tgif-qa", root / "tgif-qa", split, **TGIF_READ, **kw)
    if dataset == "stills":
        return read_split(
            "tgif-qa", root / "stills", split, task=["frameqa", "transition"], **TGIF_READ, **kw
        )
    if dataset == "msvd-qa":
        return read_split("msvd-qa", root / "msvd-qa", split, ext="mp4", **kw)
    return read_split("how2qa", root / "how2qa", split, **kw)


SPLITS = {"tgif-qa": ("train", "val", "test"), "stills": ("train", "val", "test"),
          "msvd-qa": ("train", "val", "test"), "how2qa": ("train", "val")}  # fmt: skip


def all_records(root: Path, dataset: str) -> list:
    return [r for s in SPLITS[dataset] for r in read_all(root, dataset, s).records]


def load_evidence(root: Path, dataset: str) -> dict[str, dict]:
    lines = (root / dataset / "evidence.jsonl").read_text().splitlines()
    return {e["video_id"]: e for e in map(json.loads, lines)}


def frame_sets(entry: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean ``[n]`` masks: core frames, faint frames, frames without any evidence."""
    n = entry["num_frames"]
    core, faint = np.zeros(n, bool), np.zeros(n, bool)
    for a, b in entry["core"]:
        core[a : b + 1] = True
    for a, b in entry["faint"]:
        faint[a : b + 1] = True
    return core, faint, ~core & ~faint


def tgif_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[0], rows[1:]


def decode_all(path) -> np.ndarray:
    return read_frames(path, range(count_frames(path))).numpy().astype(np.float64)


def dilate(mask: np.ndarray) -> np.ndarray:
    return ~erode(~mask)


def erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def sprite_region(sprite, t: int, frame: int, shrink: bool = False) -> np.ndarray:
    """Where ``sprite`` is drawn at frame ``t`` (its full-alpha silhouette), ``bool [frame, frame]``."""
    s = int(sprite.sizes[t])
    top, left = (int(v) for v in sprite.positions[t])
    canvas = np.zeros((frame + 2 * s, frame + 2 * s), bool)
    canvas[top + s : top + 2 * s, left + s : left + 2 * s] = sprite.mask(s)
    region = canvas[s : s + frame, s : s + frame]
    return erode(region) if shrink else region


def event_sprites(spec) -> list:
    """The answer-carrying sprites (palette colours); distractors are grey 90..159, never a palette colour."""
    palette = {tuple(c) for c in COLORS.values()}
    return [sp for sp in spec.sprites if tuple(sp.color) in palette]


def nearest_colour(rgb: np.ndarray) -> str:
    return min(PALETTE, key=lambda k: float(np.linalg.norm(PALETTE[k] - rgb)))


def colour_distance(frames: np.ndarray, region: np.ndarray, rgb) -> np.ndarray:
    """Per frame: distance between the region's mean colour and ``rgb``."""
    return np.linalg.norm(frames[:, region].mean(axis=1) - np.asarray(rgb, float), axis=-1)


def runs(mask: np.ndarray) -> int:
    """Number of maximal runs of True."""
    m = np.concatenate([[False], mask.astype(bool)])
    return int((m[1:] & ~m[:-1]).sum())


def text_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.suffix != ".mp4" and p.name != "synthetic.json"}  # fmt: skip


def summary_without_volatile(root: Path) -> dict:
    s = json.loads((root / "synthetic.json").read_text())
    for k in SUMMARY_VOLATILE:
        s.pop(k)
    s["config"].pop("workers")
    return s


# ---------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Three tiny generations: seed 5 with 1 and 2 workers, seed 6 with 1 worker."""
    out = {}
    for name, seed, workers in (("a", 5, 1), ("b", 5, 2), ("c", 6, 1)):
        root = tmp_path_factory.mktemp(f"tiny_{name}")
        generate(SynthConfig(seed=seed, tgif_format="mp4", workers=workers, **TINY), root, progress=False)
        out[name] = root
    return out


@pytest.fixture(scope="module")
def cfg(synthetic_root) -> SynthConfig:
    """The configuration the session fixture was generated with (recorded in synthetic.json)."""
    return SynthConfig(**json.loads((synthetic_root / "synthetic.json").read_text())["config"])


@pytest.fixture(scope="module")
def jobs(synthetic_root, cfg) -> dict:
    return {Path(j.path).stem: j for j in _jobs(cfg, synthetic_root)}


@pytest.fixture(scope="module")
def evidence(synthetic_root) -> dict[str, dict[str, dict]]:
    return {ds: load_evidence(synthetic_root, ds) for ds in DATASETS}


@pytest.fixture(scope="module")
def records(synthetic_root) -> dict[str, list]:
    return {ds: all_records(synthetic_root, ds) for ds in DATASETS}


# ---------------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_frames_whatever_the_worker_count(tiny):
    a, b = tiny["a"], tiny["b"]
    ta, tb = text_files(a), text_files(b)
    assert ta.keys() == tb.keys()
    assert len([k for k in ta if k.endswith((".csv", ".json", ".jsonl", ".txt"))]) >= 20
    for name in ta:
        assert ta[name] == tb[name], f"{name} differs between 1 and 2 workers"
    assert summary_without_volatile(a) == summary_without_volatile(b)
    videos_a = sorted(p.relative_to(a) for p in a.rglob("*.mp4"))
    assert videos_a == sorted(p.relative_to(b) for p in b.rglob("*.mp4"))
    assert len(videos_a) == 4 * 3 + 4 + 3 + 2 * 2
    for rel in videos_a:
        fa, fb = decode_all(a / rel), decode_all(b / rel)
        assert fa.shape == fb.shape and np.array_equal(fa, fb), f"{rel}: frames differ"
        # the files themselves too (x264's mbtree made them differ from run to run: video._encoder_options)
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), f"{rel}: bytes differ"


def test_a_different_seed_gives_different_data(tiny):
    a, c = tiny["a"], tiny["c"]
    ta, tc = text_files(a), text_files(c)
    assert ta.keys() == tc.keys()  # same layout and names...
    for ds in ("tgif-qa", "msvd-qa", "how2qa"):  # ...but other videos and questions in every dataset
        assert ta[f"{ds}/evidence.jsonl"] != tc[f"{ds}/evidence.jsonl"]
    for f in (
        "tgif-qa/Train_frameqa_question.csv",
        "msvd-qa/train_qa.json",
        "how2qa/how2QA_train_release.csv",
        "stills/Train_frameqa_question.csv",
    ):  # (the stills' evidence is always "every frame")
        assert ta[f] != tc[f]
    rel = Path("msvd-qa/videos/vid1.mp4")
    fa, fc = decode_all(a / rel), decode_all(c / rel)
    assert fa.shape != fc.shape or np.abs(fa - fc).mean() > 5


def test_summary_counts_match_the_files_written(tiny):
    root = tiny["a"]
    s = json.loads((root / "synthetic.json").read_text())
    expected_videos = {"tgif-qa": 4 * (TINY["tgif_train"] + TINY["tgif_test"]),
                       "msvd-qa": TINY["msvd_train"] + TINY["msvd_val"] + TINY["msvd_test"],
                       "how2qa": TINY["how2qa_train"] + TINY["how2qa_val"],
                       "stills": 2 * (TINY["stills_train"] + TINY["stills_test"])}  # fmt: skip
    assert s["videos"] == expected_videos
    for ds, n in expected_videos.items():
        assert len(list((root / ds / VIDEO_DIR[ds]).glob("*.mp4"))) == n
        assert len(load_evidence(root, ds)) == n
        assert s["questions"][ds] == len(all_records(root, ds))
    lengths = [e["num_frames"] for e in load_evidence(root, "tgif-qa").values()]
    assert s["tgif_shorter_than_40"] == sum(n < 40 for n in lengths)
    assert s["frames"]["tgif-qa"]["min"] == min(lengths) and s["frames"]["tgif-qa"]["max"] == max(lengths)


# ---------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------


def test_scaled_multiplies_every_count_and_nothing_else():
    base = SynthConfig(seed=3, tgif_train=400, msvd_train=300, stills_train=1000)
    half = scaled(base, 0.5)
    for name in COUNT_FIELDS:
        assert getattr(half, name) == max(1, round(getattr(base, name) * 0.5))
    assert (half.tgif_train, half.msvd_train, half.stills_train, half.tgif_test) == (200, 150, 500, 50)
    others = [f.name for f in fields(SynthConfig) if f.name not in COUNT_FIELDS]
    assert all(getattr(half, k) == getattr(base, k) for k in others)
    assert scaled(base, 2).how2qa_val == 2 * base.how2qa_val
    assert all(getattr(scaled(base, 1e-4), k) == 1 for k in COUNT_FIELDS)  # never below one video
    assert base.tgif_train == 400  # the original is untouched


def test_per_task_training_size_adds_videos_to_one_task_and_keeps_the_others(tmp_path):
    base = SynthConfig(seed=5, tgif_train=3, tgif_test=2)
    more = replace(base, tgif_train_tasks={"action": 7})
    count = Counter((j.dataset, j.task, j.split) for j in _jobs(more, tmp_path))
    assert count[("tgif-qa", "action", "train")] == 7
    assert all(count[("tgif-qa", t, "train")] == 3 for t in ("transition", "count", "frameqa"))
    assert all(count[("tgif-qa", t, "test")] == 2 for t in ("action", "transition", "count", "frameqa"))
    # the first 3 action videos are those of the base config: more videos only add to the set
    jobs = {j.key: j for j in _jobs(more, tmp_path)}
    for job in _jobs(base, tmp_path):
        a, b = _spec(base, job)[0], _spec(more, jobs[job.key])[0]
        assert a.questions == b.questions and a.core == b.core and a.num_frames == b.num_frames
    assert scaled(more, 2).tgif_train_tasks == {"action": 14} and scaled(more, 2).tgif_train == 6


@pytest.mark.parametrize("tasks", [{"dance": 5}, {"action": 0}, {"action": 2.5}])
def test_per_task_training_size_rejects_unknown_tasks_and_bad_counts(tasks):
    with pytest.raises(ValueError, match="tgif_train_tasks"):
        SynthConfig(tgif_train_tasks=tasks)


@pytest.mark.parametrize(
    "kwargs",
    [{"tgif_format": "avi"}, {"frame_size": 33}, {"frame_size": 16}, {"msvd_val": 0}, {"how2qa_val": 0}],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SynthConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------
# Formats: the project's readers, TGIF-QA's TSV, multiple choice
# ---------------------------------------------------------------------------------------------------


def test_every_dataset_parses_with_zero_skipped_rows(synthetic_root, evidence):
    summary = json.loads((synthetic_root / "synthetic.json").read_text())
    for ds in DATASETS:
        total = 0
        for split in SPLITS[ds]:
            res = read_all(synthetic_root, ds, split, on_error="skip")
            assert res.skipped == [], f"{ds}/{split}: {res.skipped[:3]}"
            assert res.records, f"{ds}/{split} is empty"
            total += len(res.records)
            for r in res.records:
                assert r.video_path.is_file(), r.video_path
                assert r.video_path.stem in evidence[ds]
        assert total == summary["questions"][ds]
        # every video of the evidence file is asked about
        assert {r.video_path.stem for r in all_records(synthetic_root, ds)} == set(evidence[ds])


def test_tgif_files_are_tab_separated_with_header_and_crlf(synthetic_root):
    files = sorted((synthetic_root / "tgif-qa").glob("*_question.csv")) + sorted(
        (synthetic_root / "stills").glob("*_question.csv")
    )
    assert len(files) == 8 + 4
    for path in files:
        raw = path.read_bytes()
        assert raw.endswith(b"\r\n")
        lines = raw.split(b"\r\n")[:-1]
        assert b"\n" not in b"".join(lines), f"{path.name}: bare LF"
        task = path.stem.split("_")[1]
        header = lines[0].decode().split("\t")
        assert header == TGIF_HEADERS[task]
        assert len(lines) >= 2
        for line in lines[1:]:
            assert len(line.decode().split("\t")) == len(header), f"{path.name}: {line[:80]!r}"
        keys = {}
        for row in (line.decode().split("\t") for line in lines[1:]):
            assert keys.setdefault(row[0], row[header.index("key")]) == row[header.index("key")]
        assert len(set(keys.values())) == len(keys)  # key one-to-one with gif_name


def test_multiple_choice_index_points_at_the_answer_and_candidates_are_unique(synthetic_root, jobs, cfg):
    checked = 0
    for ds, task in (("tgif-qa", "action"), ("tgif-qa", "transition"), ("stills", "transition")):
        for prefix in ("Train", "Test"):
            header, rows = tgif_rows(synthetic_root / ds / f"{prefix}_{task}_question.csv")
            for row in rows:
                cands = row[2:7]
                idx = int(row[7])
                assert 0 <= idx < 5 and len(set(cands)) == 5
                spec, _ = _spec(cfg, jobs[row[0]])
                (q,) = spec.questions
                assert q.question == row[1] and cands[idx] == q.answer
                checked += 1
    # How2QA raw release: the three wrong answers, then the correct one last; the reader moves it
    for split in ("train", "val"):
        with open(synthetic_root / "how2qa" / f"how2QA_{split}_release.csv", newline="") as f:
            raw = {(r[0], r[5]): r for r in csv.reader(f)}
        for rec in read_all(synthetic_root, "how2qa", split).records:
            row = raw[(rec.video_id.removesuffix("_0_60"), rec.question)]
            assert len(set(rec.candidates)) == 4 and rec.candidates[rec.answer_index] == row[6]
            assert sorted(rec.candidates) == sorted([*row[2:5], row[6]])
            spec, _ = _spec(cfg, jobs[rec.video_id])
            assert spec.questions[0].answer == row[6]
            checked += 1
    assert checked > 200
    positions = Counter(r.answer_index for r in read_all(synthetic_root, "how2qa", "train").records)
    assert len(positions) >= 3  # the correct answer is not always in one slot


def test_question_types_and_answer_vocabularies(records, evidence):
    numbers = set(NUMBER_WORDS[1:4])
    kinds = {"color": set(COLORS_DEFAULT), "object": set(SHAPES_DEFAULT), "number": numbers,
             "location": set(REGIONS)}  # fmt: skip
    prefixes = {"color": ("what color is",), "object": ("what shape is", "who appears"),
                "number": ("how many",), "location": ("where does",)}  # fmt: skip
    by_task = defaultdict(list)
    for r in records["tgif-qa"]:
        by_task[r.task].append(r)
    assert set(by_task) == {"action", "transition", "count", "frameqa"}
    frameqa_types = Counter(r.question_type for r in by_task["frameqa"])
    assert set(frameqa_types) == set(kinds)
    for r in by_task["frameqa"]:
        assert r.answer in kinds[r.question_type], (r.question_type, r.answer)
        assert r.question.startswith(prefixes[r.question_type]), r.question
    for r in by_task["action"]:
        assert r.answer in ACTIONS and sorted(r.candidates) == sorted(ACTIONS)  # every question lists all 5
        assert r.question.startswith("what does the ")
    for r in by_task["transition"]:
        assert r.answer in COLORS_DEFAULT and set(r.candidates) <= set(COLORS_DEFAULT)
    for r in by_task["count"]:
        assert r.question.startswith("how many times does the")
        # the count is the number of flashes the evidence file lists
        assert 1 <= int(r.answer) <= 6 and int(r.answer) == len(evidence["tgif-qa"][r.video_id]["core"])
    assert len({r.answer for r in by_task["count"]}) >= 3

    msvd_kinds = {"what": kinds["color"] | kinds["object"], "who": kinds["object"], "how": numbers,
                  "where": kinds["location"]}  # fmt: skip
    assert set(Counter(r.question_type for r in records["msvd-qa"])) == set(msvd_kinds)
    for r in records["msvd-qa"]:
        assert r.answer in msvd_kinds[r.question_type]
    per_video = Counter(r.video_id for r in records["msvd-qa"])
    assert set(per_video.values()) <= {2, 3} and len(per_video) == len(evidence["msvd-qa"])
    asked = Counter((r.video_id, r.question) for r in records["msvd-qa"])
    assert set(asked.values()) == {1}  # no question repeated for a video

    pools = [kinds["color"], kinds["object"], numbers | {"four"}, kinds["location"]]
    for r in records["how2qa"]:
        assert len(r.candidates) == 4
        assert any(set(r.candidates) <= pool for pool in pools), r.candidates  # candidates of one kind
    stills_tasks = Counter(r.task for r in records["stills"])
    assert set(stills_tasks) == {"frameqa", "transition"}
    assert all(len(r.candidates) == 5 for r in records["stills"] if r.task == "transition")


def test_vocab_file_is_exactly_the_words_of_the_files_and_the_tokenizer_knows_them(synthetic_root, records):
    vocab = (synthetic_root / "vocab.txt").read_text().split("\n")
    assert vocab[-1] == "" and vocab[:-1] == sorted(set(vocab[:-1]))
    vocab = set(vocab[:-1])
    words = set()
    for recs in records.values():
        for r in recs:
            for text in (r.question, r.answer, *r.candidates):
                words.update(text.lower().split())
    for path in (synthetic_root / "tgif-qa").glob("*_frameqa_question.csv"):
        header, rows = tgif_rows(path)
        for row in rows:
            words.update(row[header.index("description")].lower().split())
    assert words == vocab
    tok = load_tokenizer(synthetic_root / "tokenizer")
    texts = sorted({t for rs in records.values() for r in rs for t in (r.question, *r.candidates, r.answer)})
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in {i for seq in ids for i in seq}
    assert tok.convert_ids_to_tokens(tok("purple", add_special_tokens=False)["input_ids"]) == ["purple"]


# ---------------------------------------------------------------------------------------------------
# Evidence in the files
# ---------------------------------------------------------------------------------------------------


def test_evidence_ranges_lie_inside_the_videos_and_match_the_decoded_frame_counts(synthetic_root, evidence):
    for ds in DATASETS:
        cache = json.loads((synthetic_root / "cache32" / ds / "index.json").read_text())["videos"]
        assert set(cache) == set(evidence[ds])
        for vid, e in evidence[ds].items():
            n = e["num_frames"]
            assert cache[vid][1] == n, f"{ds}/{vid}: evidence says {n} frames, the file has {cache[vid][1]}"
            core = sorted(map(tuple, e["core"]))
            assert core and all(0 <= a <= b < n for a, b in core + [tuple(f) for f in e["faint"]])
            assert all(b1 < a2 - 1 for (_, b1), (a2, _) in zip(core, core[1:], strict=False))  # separate
            c, f, _ = frame_sets(e)
            covered_core = sum(b - a + 1 for a, b in core)
            assert c.sum() == covered_core  # no overlapping core ranges
            assert not (c & f).any()  # faint frames are never core frames
            for a, b in e["faint"]:  # each faint range touches a core range
                assert (a > 0 and c[a - 1]) or (b < n - 1 and c[b + 1])


def test_evidence_is_sparse_except_in_the_stills(evidence):
    for ds in ("tgif-qa", "msvd-qa", "how2qa"):
        fractions = []
        for e in evidence[ds].values():
            core, faint, none = frame_sets(e)
            if e["task"] in ("transition", "action"):  # a lasting state, a looping action: tested below
                continue
            fractions.append(core.mean())
            assert none.any(), f"{ds}/{e['video_id']}: evidence on every frame"
            assert core.mean() < 0.5
        # a handful of frames: an "always visible" bug gives 1.0, a "visible half the time" bug 0.5
        assert np.mean(fractions) < 0.25, (ds, np.mean(fractions))
        assert np.mean(fractions) > 0.02
    for e in evidence["stills"].values():
        assert e["core"] == [[0, e["num_frames"] - 1]] and e["faint"] == []
        assert e["num_frames"] == 8


def test_a_transition_changes_in_the_first_half_and_the_new_state_lasts(evidence):
    checked = 0
    for e in evidence["tgif-qa"].values():
        if e["task"] != "transition":
            continue
        n, [[first, last]] = e["num_frames"], e["core"]
        ramp = sum(b - a + 1 for a, b in e["faint"])
        assert last == n - 1, e  # the new colour stays to the end
        assert int(0.1 * n) <= first - ramp <= int(0.4 * n), e  # changes in the first half
        assert e["faint"] == ([[first - ramp, first - 1]] if ramp else []), e  # the blend just before it
        checked += 1
    assert checked >= 10


# ---------------------------------------------------------------------------------------------------
# Lengths: the 40-frame filter and the downstream sets
# ---------------------------------------------------------------------------------------------------


def test_the_40_frame_filter_drops_a_sizeable_share_of_tgif_videos(synthetic_root, evidence):
    manifest = read_manifest(synthetic_root / "tgif-qa" / "frame_filter.csv")
    assert manifest.min_frames == 40 and len(manifest.entries) == len(evidence["tgif-qa"]) == 208
    dropped = [e for e in manifest.entries if not e.kept]
    assert 0.35 <= len(dropped) / len(manifest.entries) <= 0.65
    for entry in manifest.entries:  # the files' frame counts are what the evidence file says
        n = evidence["tgif-qa"][entry.video_id]["num_frames"]
        assert entry.num_frames == n and entry.kept == (n >= 40)
    # every TGIF task keeps some and loses some
    for task in ("action", "transition", "count", "frameqa"):
        kept = {e.kept for e in manifest.entries if f"_{task}_" in e.video_id}
        assert kept == {True, False}, task
    # the same with filter_videos on a fresh sample of written files (the test split)
    test_files = sorted((synthetic_root / "tgif-qa" / "mp4").glob("synth_*_test_*.mp4"))
    report = filter_videos(test_files, min_frames=40, workers=2)
    assert len(report.entries) == 48
    assert 0.25 <= len(report.dropped) / len(report.entries) <= 0.75
    assert {e.video_id for e in report.kept} == {
        p.stem for p in test_files if evidence["tgif-qa"][p.stem]["num_frames"] >= 40
    }


def test_the_tgif_length_mixture_is_half_short_on_a_large_sample():
    """1,600 TGIF-like video specs (nothing rendered): about half are shorter than 40 frames."""
    cfg = SynthConfig(seed=123, tgif_train=300, tgif_test=100)
    lengths = [_spec(cfg, j)[0].num_frames for j in _jobs(cfg, Path("unused")) if j.dataset == "tgif-qa"]
    assert len(lengths) == 1600
    assert 0.42 <= np.mean(np.array(lengths) < 40) <= 0.58
    assert min(lengths) >= 16 and max(lengths) <= 96


def test_downstream_sets_are_long_and_distributed_differently(synthetic_root, evidence):
    lengths = {ds: np.array([e["num_frames"] for e in evidence[ds].values()]) for ds in DATASETS}
    assert lengths["msvd-qa"].min() >= 40 and lengths["how2qa"].min() >= 40
    assert (lengths["tgif-qa"] < 40).mean() > 0.35
    assert lengths["msvd-qa"].mean() > lengths["tgif-qa"].mean() + 20
    assert lengths["how2qa"].mean() > lengths["msvd-qa"].mean() + 5

    def patterned_share(ds: str) -> float:
        """Share of videos whose static background (per-pixel temporal median) is striped/checkered."""
        cache = synthetic_root / "cache32" / ds
        index = json.loads((cache / "index.json").read_text())["videos"]
        frames = np.load(cache / "frames.npy", mmap_mode="r")
        shares = []
        for off, n in index.values():
            med = np.median(np.asarray(frames[off : off + n], dtype=np.float64), axis=0)
            gx = np.abs(np.diff(med, axis=1)).max(-1)[:-1, :]
            gy = np.abs(np.diff(med, axis=0)).max(-1)[:, :-1]
            shares.append((np.maximum(gx, gy) > 4).mean() > 0.25)
        return float(np.mean(shares))

    # TGIF-like backgrounds are plain or gradients; MSVD-like ones stripes or plain; How2QA-like checkers or
    # gradients: about half of each downstream set is patterned, almost none of the pretraining set.
    tgif, msvd, how2 = patterned_share("tgif-qa"), patterned_share("msvd-qa"), patterned_share("how2qa")
    assert tgif <= 0.05 and msvd >= 0.25 and how2 >= 0.25, (tgif, msvd, how2)


# ---------------------------------------------------------------------------------------------------
# Evidence in the pixels
# ---------------------------------------------------------------------------------------------------


def sample_videos(evidence, per_group: int = 10):
    """The first ``per_group`` videos of every (dataset, task)."""
    groups = defaultdict(list)
    for ds in DATASETS:
        for vid, e in evidence[ds].items():
            key = (ds, e["task"])
            if len(groups[key]) < per_group:
                groups[key].append((ds, vid, e))
    assert len(groups) == 8
    return [v for g in groups.values() for v in g]


@pytest.fixture(scope="module")
def decoded(synthetic_root, evidence) -> dict:
    return {vid: decode_all(synthetic_root / ds / VIDEO_DIR[ds] / f"{vid}.mp4")
            for ds, vid, _ in sample_videos(evidence)}  # fmt: skip


def test_flashing_objects_are_visible_exactly_at_the_core_frames(evidence, jobs, cfg, decoded, records):
    answers = {r.video_id: r.answer for r in records["tgif-qa"] if r.task == "count"}
    checked = 0
    for ds, vid, e in sample_videos(evidence):
        if e["task"] in ("action", "transition") and ds == "tgif-qa":
            continue
        frames = decoded[vid]
        spec, _ = _spec(cfg, jobs[vid])
        core, faint, none = frame_sets(e)
        for sprite in event_sprites(spec):
            region = sprite_region(sprite, 0, cfg.frame_size, shrink=True)
            d = colour_distance(frames, region, sprite.color)
            assert d[core].max() < 45, f"{vid}: object not shown at a core frame ({d[core].round()})"
            if none.any():
                assert d[none].min() > 80, f"{vid}: object shown outside its evidence ({d[none].round()})"
            if faint.any():  # alpha ~0.35: a third of the way from the background to the object
                ratio = np.median(d[faint]) / np.median(d[none])
                assert 0.5 < ratio < 0.8, f"{vid}: faint frames {d[faint].round()} vs {np.median(d[none])}"
            if e["task"] == "count":
                assert runs(d < 45) == int(answers[vid]) == len(e["core"])
            checked += 1
    assert checked >= 50


def test_answers_are_what_the_core_frames_show(evidence, jobs, cfg, decoded, records):
    """Colour, place and number answers read back from the pixels of a core frame."""
    questions = defaultdict(list)
    for ds in ("tgif-qa", "msvd-qa", "how2qa", "stills"):
        for r in records[ds]:
            questions[r.video_path.stem].append(r)
    seen = Counter()
    size = cfg.frame_size
    for ds, vid, e in sample_videos(evidence):
        if ds == "tgif-qa" and e["task"] in ("action", "transition", "count"):
            continue
        a, b = e["core"][0]
        frame = decoded[vid][(a + b) // 2]
        sprites = event_sprites(_spec(cfg, jobs[vid])[0])
        regions = [sprite_region(sp, 0, size, shrink=True) for sp in sprites]
        colour = nearest_colour(frame[regions[-1]].mean(axis=0))
        painted = np.linalg.norm(frame - PALETTE[colour], axis=-1) < 60
        ys, xs = np.nonzero(painted)
        # copies: the places where an object of that colour is shown; nothing of it anywhere else
        copies = sum(colour_distance(frame[None], r, PALETTE[colour])[0] < 45 for r in regions)
        drawn = np.any([sprite_region(sp, 0, size) for sp in sprites], axis=0)
        assert (painted & ~dilate(drawn)).sum() < 0.1 * sprites[0].mask(int(sprites[0].sizes[0])).sum(), vid
        for r in questions[vid]:
            q = r.question
            if q.startswith("what color is"):
                assert colour == r.answer, (vid, q, colour)
            elif q.startswith("where does"):
                where = {"top": ys.mean() < 0.375 * size, "bottom": ys.mean() > 0.625 * size,
                         "left": xs.mean() < 0.375 * size, "right": xs.mean() > 0.625 * size}  # fmt: skip
                assert where[r.answer], (vid, q, r.answer, ys.mean(), xs.mean())
            elif q.startswith("how many"):
                assert copies == NUMBER_WORDS.index(r.answer), (vid, q, r.answer, copies)
            else:
                continue
            seen[q.split()[0]] += 1
    assert min(seen["what"], seen["where"], seen["how"]) >= 3, seen


def test_transitions_show_the_answer_colour_at_the_core_frames_only(evidence, jobs, cfg, decoded, records):
    recs = {r.video_id: r for r in records["tgif-qa"] if r.task == "transition"}
    checked = 0
    for ds, vid, e in sample_videos(evidence):
        if (ds, e["task"]) != ("tgif-qa", "transition"):
            continue
        frames, rec = decoded[vid], recs[vid]
        actor = event_sprites(_spec(cfg, jobs[vid])[0])[-1]
        region = sprite_region(actor, 0, cfg.frame_size, shrink=True)
        core, _, none = frame_sets(e)
        names = [nearest_colour(frames[t][region].mean(axis=0)) for t in range(len(frames))]
        assert {names[t] for t in np.nonzero(core)[0]} == {rec.answer}, (vid, names)
        before = {names[t] for t in np.nonzero(none)[0]}
        assert len(before) == 1 and rec.answer not in before
        assert before.isdisjoint(rec.candidates)  # the colour it had is not offered
        checked += 1
    assert checked == 10


def test_actions_loop_through_the_core_frames_and_rest_outside(evidence, jobs, cfg, records):
    """On the rendered frames (the encoder smears a fast-moving sprite into the next frames; the decoded files
    are checked by the tests above)."""
    recs = {r.video_id: r for r in records["tgif-qa"] if r.task == "action"}
    checked = 0
    for ds, vid, e in sample_videos(evidence):
        if (ds, e["task"]) != ("tgif-qa", "action"):
            continue
        spec, rng = _spec(cfg, jobs[vid])
        noise = cfg.domains["tgif-qa"].noise
        frames = render(spec.num_frames, cfg.frame_size, spec.style, spec.sprites, rng, noise)
        action, actor = recs[vid].answer, event_sprites(spec)[-1]
        core, faint, none = frame_sets(e)
        n = len(core)
        assert not faint.any() and 0.6 * n - 1 <= core.sum() <= 0.9 * n + 1, (vid, core.sum(), n)
        rest_t = int(np.nonzero(none)[0][0])
        rest = sprite_region(actor, rest_t, cfg.frame_size)
        s0 = int(actor.sizes[rest_t])
        painted = np.linalg.norm(frames - np.array(actor.color, float), axis=-1) < 60  # [T, H, W]
        iou = (painted & rest).sum(axis=(1, 2)) / np.maximum((painted | rest).sum(axis=(1, 2)), 1)
        assert iou[none].min() > 0.6, (vid, iou.round(2))  # outside the window: its resting silhouette
        moved = iou < 0.5
        assert not (moved & none).any()
        # the action repeats: every period (4 to 7 frames) has a frame at least 0.8 of the way into it
        assert runs(moved & core) >= core.sum() // 7, (vid, action, iou.round(2))
        area = painted.sum(axis=(1, 2))
        ys, xs = np.nonzero(painted[rest_t])
        peak = int(np.argmin(np.where(core, iou, np.inf)))  # the frame furthest from rest
        ys_c, xs_c = np.nonzero(painted[peak])
        if action == "blink":
            assert area[peak] < 0.3 * area[rest_t]
        elif action == "grow":
            assert area[peak] > 1.5 * area[rest_t]
        elif action == "jump":
            assert ys_c.mean() < ys.mean() - 0.5 * s0
        elif action == "slide":
            assert xs_c.mean() > xs.mean() + 0.5 * s0
        else:  # shake: diagonally, up-left on some frames and down-right on others
            shown = np.nonzero(moved & core)[0]
            dx = np.array([np.nonzero(painted[t])[1].mean() - xs.mean() for t in shown])
            dy = np.array([np.nonzero(painted[t])[0].mean() - ys.mean() for t in shown])
            assert (dx > 0.3 * s0).any() and (dx < -0.3 * s0).any(), (vid, dx.round(1))
            far = np.abs(dx) > 0.3 * s0
            assert np.all(np.sign(dx[far]) == np.sign(dy[far])), (vid, dx.round(1), dy.round(1))
        checked += 1
    assert checked == 10


def test_stills_show_the_object_in_every_frame(evidence, jobs, cfg, decoded):
    checked = 0
    for ds, vid, _ in sample_videos(evidence):
        if ds != "stills":
            continue
        frames = decoded[vid]
        assert len(frames) == 8
        for sprite in event_sprites(_spec(cfg, jobs[vid])[0]):
            d = colour_distance(frames, sprite_region(sprite, 0, cfg.frame_size, shrink=True), sprite.color)
            assert d.max() < 45, (vid, d.round())
        # one still scene: every frame is the first one up to coding noise
        assert np.abs(frames - frames[:1]).mean() < 8
        checked += 1
    assert checked == 20


def test_evidence_spans_cover_few_frames_in_the_pixels_too(evidence, jobs, cfg, decoded):
    """Counted from the pixels alone: the frames where the MSVD/How2QA object is visible are few."""
    for ds, vid, e in sample_videos(evidence):
        if ds not in ("msvd-qa", "how2qa"):
            continue
        sprite = event_sprites(_spec(cfg, jobs[vid])[0])[-1]
        d = colour_distance(decoded[vid], sprite_region(sprite, 0, cfg.frame_size, shrink=True), sprite.color)
        visible = d < 45
        assert 4 <= visible.sum() <= 7 and runs(visible) == 1  # the domain's core length, once
        assert visible.mean() < 0.2
        assert math.isclose(visible.sum(), frame_sets(e)[0].sum())


def test_a_profile_without_the_how2qa_like_set_generates_none_and_a_dataset_asking_for_it_is_refused(
    tmp_path,
):
    counts = {**TINY, "how2qa_train": 0, "how2qa_val": 0}
    cfg = SynthConfig(seed=5, tgif_format="mp4", workers=1, **counts)
    assert cfg.skipped_datasets == ("how2qa",)
    assert scaled(cfg, 3).skipped_datasets == ("how2qa",)
    summary = generate(cfg, tmp_path / "gen", progress=False)
    assert summary["videos"]["how2qa"] == 0 and summary["videos"]["msvd-qa"] > 0
    assert list((tmp_path / "gen").rglob("*.mp4"))  # the other sets are there
    assert not list((tmp_path / "gen" / "how2qa").rglob("*.mp4"))
    assert not (tmp_path / "gen" / "how2qa" / "how2QA_train_release.csv").exists()
    params = {
        "data": {
            "source": "synthetic", "synthetic_root": str(tmp_path / "p"), "synth": counts,
            "tokenizer": str(tmp_path / "tok"), "datasets": {"how2qa": {"root": str(tmp_path / "h")}},
        }
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"data.datasets lists \['how2qa'\]"):
        prepare(params)
    assert not (tmp_path / "p").exists()  # refused before generating anything
