"""VideoQADataset + collate on the synthetic benchmark: shapes, text pairing, clips that follow the sampler's
rules, frames equal to independent decodes, determinism (fresh datasets, epochs, DataLoader workers),
what is left out and counted (OOV answers, the frame filter, short videos), padding of "auto" clips, and the
frame cache's errors.

Reference values come from the annotation files, ``evidence.jsonl`` (frame counts written by the generator),
the filter manifest and direct decodes with ``siasamrea.video.read_frames``, never from the dataset itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from siasamrea.data.dataset import ClipSpec, VideoQADataset, collate, item_seed
from siasamrea.data.filtering import read_manifest
from siasamrea.data.frames import CachedFrames, DecodedFrames, build_frame_cache
from siasamrea.data.registry import read_split
from siasamrea.data.tokenization import load_tokenizer
from siasamrea.data.vocab import AnswerVocab
from siasamrea.video import VideoError, read_frames

SIZE = 32  # the session fixture's cache resolution


# ---------------------------------------------------------------------------------------------------
# Fixtures and references
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok(synthetic_root):
    return load_tokenizer(synthetic_root / "tokenizer")


@pytest.fixture(scope="module")
def tgif_frames(synthetic_root):
    return CachedFrames(synthetic_root / "cache32" / "tgif-qa")


@pytest.fixture(scope="module")
def lengths(synthetic_root) -> dict[str, int]:
    """Frame count of every video, from the generator's evidence files."""
    out = {}
    for ds in ("tgif-qa", "msvd-qa", "how2qa"):
        for line in (synthetic_root / ds / "evidence.jsonl").read_text().splitlines():
            e = json.loads(line)
            out[e["video_id"]] = e["num_frames"]
    return out


def tgif(root: Path, task: str, split: str = "train"):
    return read_split("tgif-qa", root / "tgif-qa", split, task=task, video_dir="mp4", ext="mp4").records


def make(records, tok, frames, clips: ClipSpec, **kw) -> VideoQADataset:
    return VideoQADataset(records, tokenizer=tok, frames=frames, clips=clips, **kw)


def tokens(tok, ids) -> list[str]:
    return tok.convert_ids_to_tokens(list(ids))


def expected_interval(n: int, clips: int, b: int) -> int:
    """The siamese interval, written out from the sampling module's docstring."""
    return max(1, (n - math.ceil(n / 3) - (clips - 1)) // (b - 1))


def direct_read(path, idx: torch.Tensor) -> torch.Tensor:
    return read_frames(path, idx.reshape(-1), size=(SIZE, SIZE)).reshape(*idx.shape, SIZE, SIZE, 3)


# ---------------------------------------------------------------------------------------------------
# Items and batches
# ---------------------------------------------------------------------------------------------------


def test_open_ended_items_and_batch(synthetic_root, tok, tgif_frames, lengths):
    recs = tgif(synthetic_root, "frameqa")
    vocab = AnswerVocab.build(recs, size=None)
    ds = make(recs, tok, tgif_frames, ClipSpec("siamese", 3, 4), vocab=vocab, seed=1)
    assert ds.kind == "open_ended" and len(ds) == len(recs) and ds.report.dropped == {}
    items = [ds[i] for i in range(len(ds))]
    for i, (it, r) in enumerate(zip(items, recs, strict=True)):
        assert it["frames"].shape == (3, 4, SIZE, SIZE, 3) and it["frames"].dtype == torch.uint8
        assert it["frame_mask"].shape == (3, 4) and bool(it["frame_mask"].all())
        assert it["clip_indices"].shape == (3, 4) and it["clip_indices"].dtype == torch.long
        assert it["num_frames"] == lengths[r.video_id] and it["index"] == i
        assert tokens(tok, it["input_ids"]) == ["[CLS]", *r.question.split(), "[SEP]"]
        assert it["target"] == vocab.answers.index(r.answer)
    batch = collate(items[:5])
    lens = [len(it["input_ids"]) for it in items[:5]]
    assert batch["frames"].shape == (5, 3, 4, SIZE, SIZE, 3)
    assert batch["input_ids"].shape == (5, max(lens)) and batch["attention_mask"].sum(1).tolist() == lens
    for v, it in enumerate(items[:5]):
        assert batch["input_ids"][v, : lens[v]].tolist() == it["input_ids"]
        assert (batch["input_ids"][v, lens[v] :] == tok.pad_token_id).all()
        assert torch.equal(batch["frames"][v], it["frames"])
    assert batch["target"].tolist() == [it["target"] for it in items[:5]]
    assert batch["index"].tolist() == list(range(5))
    assert batch["num_frames"].tolist() == [it["num_frames"] for it in items[:5]]


@pytest.mark.parametrize("dataset", ["tgif-qa", "how2qa"])
def test_multiple_choice_pairs_every_candidate_with_its_question(synthetic_root, tok, dataset):
    if dataset == "tgif-qa":
        recs, m = tgif(synthetic_root, "transition"), 5
    else:
        recs, m = read_split("how2qa", synthetic_root / "how2qa", "val").records, 4
    frames = CachedFrames(synthetic_root / "cache32" / dataset)
    ds = make(recs, tok, frames, ClipSpec("siamese", 2, 4), seed=0)
    assert ds.kind == "multiple_choice"
    items = [ds[i] for i in range(min(len(ds), 8))]
    for it, r in zip(items, recs, strict=False):
        assert len(it["input_ids"]) == m
        for ids, cand in zip(it["input_ids"], r.candidates, strict=True):
            assert tok.decode(ids) == f"[CLS] {r.question} [SEP] {cand} [SEP]"
        assert r.candidates[it["target"]] == r.answer and it["target"] == r.answer_index
    batch = collate(items)
    width = max(len(s) for it in items for s in it["input_ids"])
    assert batch["input_ids"].shape == (len(items), m, width)
    for v, it in enumerate(items):
        for j, ids in enumerate(it["input_ids"]):
            assert batch["input_ids"][v, j, : len(ids)].tolist() == ids
            assert batch["attention_mask"][v, j].sum() == len(ids)
    assert batch["target"].tolist() == [r.answer_index for r in recs[: len(items)]]


def test_count_items_have_float_targets(synthetic_root, tok, tgif_frames):
    recs = tgif(synthetic_root, "count")
    ds = make(recs, tok, tgif_frames, ClipSpec("sparse", 1, 4))
    assert ds.kind == "count"
    items = [ds[i] for i in range(6)]
    for it, r in zip(items, recs, strict=False):
        assert isinstance(it["target"], float) and it["target"] == float(int(r.answer))
        assert it["frames"].shape == (1, 4, SIZE, SIZE, 3)  # the sparse sampler: one clip
    batch = collate(items)
    assert batch["target"].dtype.is_floating_point
    assert batch["target"].tolist() == [float(r.answer) for r in recs[:6]]


def test_collate_rejects_mixed_candidate_counts(synthetic_root, tok):
    a = make(tgif(synthetic_root, "transition"), tok, CachedFrames(synthetic_root / "cache32" / "tgif-qa"),
             ClipSpec("sparse", 1, 4))  # fmt: skip
    b = make(read_split("how2qa", synthetic_root / "how2qa", "val").records, tok,
             CachedFrames(synthetic_root / "cache32" / "how2qa"), ClipSpec("sparse", 1, 4))  # fmt: skip
    with pytest.raises(ValueError, match="same number of candidates"):
        collate([a[0], b[0]])


def test_bad_construction_is_refused(synthetic_root, tok, tgif_frames):
    with pytest.raises(ValueError, match="one task kind"):
        make(tgif(synthetic_root, "count")[:2] + tgif(synthetic_root, "action")[:2], tok, tgif_frames,
             ClipSpec())  # fmt: skip
    with pytest.raises(ValueError, match="vocabulary"):
        make(tgif(synthetic_root, "frameqa")[:3], tok, tgif_frames, ClipSpec())
    with pytest.raises(ValueError, match="sampler"):
        ClipSpec("random")


# ---------------------------------------------------------------------------------------------------
# Clips and frames
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offsets", ["after", "alternate"])
def test_clip_indices_follow_the_siamese_rules(synthetic_root, tok, tgif_frames, lengths, offsets):
    recs = tgif(synthetic_root, "action") + tgif(synthetic_root, "action", "test")
    n_clips, b, reserve = 9, 4, 13
    ds = make(recs, tok, tgif_frames, ClipSpec("siamese", n_clips, b, reserve_clips=reserve, offsets=offsets))
    first_thirds = []
    for i, r in enumerate(recs):
        n = lengths[r.video_id]
        idx = ds[i]["clip_indices"]
        assert idx.shape == (n_clips, b) and int(idx.min()) >= 0 and int(idx.max()) < n
        d = expected_interval(n, reserve, b)  # one interval shared by every clip
        starts = idx[:, 0]
        assert torch.equal(idx, starts[:, None] + d * torch.arange(b)[None, :]), (n, idx)
        s0 = int(starts[0])
        assert s0 < math.ceil(n / 3)  # the anchor starts in the first third
        assert sorted(starts.tolist()) == list(range(min(starts), min(starts) + n_clips))  # contiguous
        if offsets == "after":
            assert starts.tolist() == list(range(s0, s0 + n_clips))
        else:  # nearest first, "after" before "before" at equal distance
            dist = [abs(s - s0) for s in starts.tolist()]
            assert dist == sorted(dist)
        first_thirds.append(s0 / math.ceil(n / 3))
    # the anchor start is spread over the whole first third, not stuck at its start
    assert len(recs) >= 40 and np.mean(first_thirds) > 0.25 and max(first_thirds) > 0.7


def test_frames_equal_independent_decodes(synthetic_root, tok, tgif_frames):
    recs = tgif(synthetic_root, "frameqa")[:12]
    vocab = AnswerVocab.build(recs, size=None)
    spec = ClipSpec("siamese", 3, 5)
    cached = make(recs, tok, tgif_frames, spec, vocab=vocab, seed=4)
    decoded = make(recs, tok, DecodedFrames(SIZE), spec, vocab=vocab, seed=4)
    for i, r in enumerate(recs):
        a, b = cached[i], decoded[i]
        assert torch.equal(a["clip_indices"], b["clip_indices"])
        assert a["num_frames"] == b["num_frames"]
        ref = direct_read(r.video_path, a["clip_indices"])
        # the cache was decoded by the same decord path at the same size: bit-exact
        assert torch.equal(a["frames"], ref) and torch.equal(b["frames"], ref)
        # and the clips really are different frames of a moving video
        assert not torch.equal(a["frames"][0], a["frames"][1])


# ---------------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------------


def test_same_seed_epoch_and_index_give_the_same_clips(synthetic_root, tok, tgif_frames):
    recs = tgif(synthetic_root, "action")
    spec = ClipSpec("siamese", 4, 4)
    a, b = make(recs, tok, tgif_frames, spec, seed=3), make(recs, tok, tgif_frames, spec, seed=3)
    order = list(reversed(range(len(recs))))  # access order does not matter
    first = {i: a[i] for i in range(len(recs))}
    for i in order:
        it = b[i]
        assert torch.equal(it["clip_indices"], first[i]["clip_indices"])
        assert torch.equal(it["frames"], first[i]["frames"])
    b.set_epoch(1)
    changed = sum(not torch.equal(b[i]["clip_indices"], first[i]["clip_indices"]) for i in range(len(recs)))
    assert changed >= 0.6 * len(recs)
    b.set_epoch(0)
    assert all(torch.equal(b[i]["clip_indices"], first[i]["clip_indices"]) for i in range(len(recs)))
    other = make(recs, tok, tgif_frames, spec, seed=4)
    changed = sum(
        not torch.equal(other[i]["clip_indices"], first[i]["clip_indices"]) for i in range(len(recs))
    )
    assert changed >= 0.6 * len(recs)


def test_evaluation_clips_do_not_change_with_the_epoch(synthetic_root, tok, tgif_frames):
    recs = tgif(synthetic_root, "action", "test")
    spec = ClipSpec("sparse", 1, 4, reserve_clips=9)
    ev = make(recs, tok, tgif_frames, spec, train=False, seed=11)
    before = [ev[i]["clip_indices"] for i in range(len(recs))]
    ev.set_epoch(7)
    assert all(torch.equal(ev[i]["clip_indices"], before[i]) for i in range(len(recs)))
    fresh = make(recs, tok, tgif_frames, spec, train=False, seed=11)
    assert all(torch.equal(fresh[i]["clip_indices"], before[i]) for i in range(len(recs)))
    # while a training set with the same seed does move between epochs
    tr = make(recs, tok, tgif_frames, spec, train=True, seed=11)
    e0 = [tr[i]["clip_indices"] for i in range(len(recs))]
    tr.set_epoch(7)
    assert sum(not torch.equal(tr[i]["clip_indices"], e0[i]) for i in range(len(recs))) >= len(recs) // 2


def test_item_seed_spreads_nearby_tuples():
    seeds = {item_seed(s, e, i) for s in range(3) for e in range(8) for i in range(300)}
    assert len(seeds) == 3 * 8 * 300
    assert all(0 <= x < 2**63 for x in seeds)
    assert item_seed(1, 2) != item_seed(2, 1) and item_seed(0, 0, 5) != item_seed(0, 5)


def _batches(ds, workers: int) -> list[dict]:
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers, collate_fn=collate)
    return list(loader)


def test_dataloader_workers_yield_the_same_batches(synthetic_root, tok, tgif_frames):
    recs = tgif(synthetic_root, "frameqa")[:18]
    ds = make(recs, tok, tgif_frames, ClipSpec("siamese", 3, 4), vocab=AnswerVocab.build(recs), seed=5)
    serial = _batches(ds, 0)
    parallel = _batches(ds, 2)
    assert len(serial) == len(parallel) == 5
    for s, p in zip(serial, parallel, strict=True):
        assert s.keys() == p.keys()
        for k in s:
            assert torch.equal(s[k], p[k]), k
    ds.set_epoch(1)  # workers see the new epoch
    serial1, parallel1 = _batches(ds, 0), _batches(ds, 2)
    assert all(
        torch.equal(s["clip_indices"], p["clip_indices"]) for s, p in zip(serial1, parallel1, strict=True)
    )
    assert not all(
        torch.equal(s["clip_indices"], t["clip_indices"]) for s, t in zip(serial, serial1, strict=True)
    )


# ---------------------------------------------------------------------------------------------------
# Left out and counted
# ---------------------------------------------------------------------------------------------------


def test_out_of_vocabulary_answers(synthetic_root, tok, tgif_frames):
    recs = tgif(synthetic_root, "frameqa")
    vocab = AnswerVocab.build(recs, size=3)
    oov = [r for r in recs if r.answer not in vocab.answers]
    assert 0 < len(oov) < len(recs)
    train = make(recs, tok, tgif_frames, ClipSpec("sparse", 1, 4), vocab=vocab, train=True)
    assert len(train) == len(recs) - len(oov)
    assert dict(train.report.dropped) == {"answer_not_in_vocabulary": len(oov)}
    assert train.report.questions == len(recs) and train.report.used == len(train)
    assert all(r.answer in vocab.answers for r in train.records)
    assert all(0 <= train[i]["target"] < 3 for i in range(len(train)))
    ev = make(recs, tok, tgif_frames, ClipSpec("sparse", 1, 4), vocab=vocab, train=False)
    assert len(ev) == len(recs) and ev.report.dropped == {}
    targets = [ev[i]["target"] for i in range(len(ev))]
    assert targets == [vocab.answers.index(r.answer) if r.answer in vocab.answers else -1 for r in recs]
    assert targets.count(-1) == len(oov)
    assert collate([ev[i] for i in range(len(ev))])["target"].tolist() == targets


def test_frame_filter_keep_videos_drops_and_counts(synthetic_root, tok, tgif_frames, lengths):
    recs = tgif(synthetic_root, "frameqa")
    manifest = read_manifest(synthetic_root / "tgif-qa" / "frame_filter.csv")
    keep = {Path(e.path).stem for e in manifest.entries if e.kept}
    short = [r for r in recs if lengths[r.video_id] < 40]
    assert 0 < len(short) < len(recs)
    vocab = AnswerVocab.build(recs, size=3)
    oov_long = [r for r in recs if lengths[r.video_id] >= 40 and r.answer not in vocab.answers]
    ds = make(recs, tok, tgif_frames, ClipSpec("sparse", 1, 4), vocab=vocab, keep_videos=keep)
    # the filter is applied first; OOV answers are counted among the questions it kept
    assert dict(ds.report.dropped) == {"frame_filter": len(short), "answer_not_in_vocabulary": len(oov_long)}
    assert len(ds) == len(recs) - len(short) - len(oov_long) == ds.report.used
    assert min(ds.num_frames) >= 40
    assert ds.report.as_dict()["dropped"]["frame_filter"] == len(short)


def test_short_videos_are_counted_against_what_the_clips_need(synthetic_root, tok, tgif_frames, lengths):
    recs = tgif(synthetic_root, "action") + tgif(synthetic_root, "transition")
    n = {r.video_id: lengths[r.video_id] for r in recs}
    siam = make(recs, tok, tgif_frames, ClipSpec("siamese", 9, 16))  # needs 9 + 16 - 1 = 24 frames
    expected = sum(v < 24 for v in n.values())
    assert expected > 0 and siam.report.short_videos == expected
    for i, r in enumerate(recs):  # short videos still give in-range clips (repeated frames)
        idx = siam[i]["clip_indices"]
        assert idx.shape == (9, 16) and int(idx.min()) >= 0 and int(idx.max()) < n[r.video_id]
        if n[r.video_id] < 24:
            assert len(set(idx.reshape(-1).tolist())) < 9 * 16
    # one clip of 16 frames fits in every video (the shortest has 16 frames)
    assert min(n.values()) >= 16
    assert make(recs, tok, tgif_frames, ClipSpec("sparse", 9, 16)).report.short_videos == 0
    assert make(recs, tok, tgif_frames, ClipSpec("uniform", 9, 16)).report.short_videos == expected
    assert siam.report.as_dict()["short_videos"] == expected


# ---------------------------------------------------------------------------------------------------
# "auto" frames per clip
# ---------------------------------------------------------------------------------------------------


def test_auto_frames_per_clip_pads_to_the_longest_clip(synthetic_root, tok, tgif_frames, lengths):
    recs = tgif(synthetic_root, "action") + tgif(synthetic_root, "action", "test")
    by_len = sorted(recs, key=lambda r: lengths[r.video_id])
    picked = [by_len[0], by_len[len(by_len) // 2], by_len[-1]]
    ds = make(picked, tok, tgif_frames, ClipSpec("siamese", 3, "auto"), seed=2)
    want = [min(16, max(5, lengths[r.video_id] // 8)) for r in picked]  # paper: 5..16 frames by length
    assert len(set(want)) >= 2
    items = [ds[i] for i in range(3)]
    assert [it["frames"].shape[1] for it in items] == want
    batch = collate(items)
    bmax = max(want)
    assert batch["frames"].shape == (3, 3, bmax, SIZE, SIZE, 3)
    assert batch["frame_mask"].shape == batch["clip_indices"].shape == (3, 3, bmax)
    for v, (it, b) in enumerate(zip(items, want, strict=True)):
        assert bool(batch["frame_mask"][v, :, :b].all()) and not bool(batch["frame_mask"][v, :, b:].any())
        assert torch.equal(batch["clip_indices"][v, :, :b], it["clip_indices"])
        assert bool((batch["clip_indices"][v, :, b:] == -1).all())
        assert torch.equal(batch["frames"][v, :, :b], it["frames"])
        # padding repeats the clip's last frame
        assert torch.equal(batch["frames"][v, :, b:], it["frames"][:, -1:].expand(-1, bmax - b, -1, -1, -1))


# ---------------------------------------------------------------------------------------------------
# Frame cache errors
# ---------------------------------------------------------------------------------------------------


def test_build_frame_cache_names_a_missing_or_corrupt_video(synthetic_root, tmp_path):
    good = sorted((synthetic_root / "msvd-qa" / "videos").glob("*.mp4"))[:2]
    missing = tmp_path / "nowhere" / "ghost.mp4"
    with pytest.raises(VideoError, match="ghost.mp4") as err:
        build_frame_cache([*good, missing], tmp_path / "cache", SIZE, workers=1)
    assert err.value.kind == "missing"
    assert not (tmp_path / "cache").exists()
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="broken.mp4"):
        build_frame_cache([*good, corrupt], tmp_path / "cache", SIZE, workers=2)
    assert not (tmp_path / "cache").exists()
    # a working build for contrast: exactly the frames of the two videos
    out = build_frame_cache(good, tmp_path / "cache", SIZE, workers=1)
    cache = CachedFrames(tmp_path / "cache")
    assert out["videos"] == 2 and out["frames"] == sum(cache.num_frames(p) for p in good)
    idx = torch.tensor([[0, 3], [5, 1]])
    assert torch.equal(cache.read(good[1], idx), direct_read(good[1], idx))


def test_cached_frames_errors_name_the_path(synthetic_root, tmp_path):
    cache = CachedFrames(synthetic_root / "cache32" / "msvd-qa")
    stranger = tmp_path / "elsewhere" / "vid999999.mp4"
    with pytest.raises(KeyError, match="vid999999.mp4"):
        cache.read(stranger, torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(KeyError, match="vid999999.mp4"):
        cache.num_frames(stranger)
    video = synthetic_root / "msvd-qa" / "videos" / "vid1.mp4"
    n = cache.num_frames(video)
    with pytest.raises(VideoError, match="out of range") as err:
        cache.read(video, torch.tensor([[0, n]]))
    assert err.value.kind == "index" and "vid1.mp4" in str(err.value)
    with pytest.raises(FileNotFoundError, match="not a frame cache"):
        CachedFrames(tmp_path)
