"""Properties of the samplers (paper Sec. 3.2), over many lengths and seeds."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from siasamrea.core.choices import MAX_FRAMES_PER_CLIP, MIN_FRAMES_PER_CLIP
from siasamrea.method.sampling import (
    VideoTooShortError,
    anchor_copies_sample,
    frames_per_clip_for_length,
    min_frames_required,
    sample_clips,
    siamese_interval,
    siamese_sample,
    sparse_sample,
    uniform_clips,
)


@st.composite
def requests(draw):
    n = draw(st.integers(1, 13))
    b = draw(st.integers(1, 16))
    length = draw(st.integers(min_frames_required(n, b), 400))
    seed = draw(st.integers(0, 2**31 - 1))
    offsets = draw(st.sampled_from(["after", "alternate"]))
    return length, n, b, seed, offsets


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@settings(max_examples=400, deadline=None)
@given(requests())
def test_siamese_sample_rules(req):
    length, n, b, seed, offsets = req
    idx = siamese_sample(length, n, b, _gen(seed), offsets=offsets)
    assert idx.shape == (n, b) and idx.dtype == torch.long
    assert int(idx.min()) >= 0 and int(idx.max()) <= length - 1
    starts = idx[:, 0]
    # one interval shared by every clip, equal to the documented default
    d = siamese_interval(length, n, b)
    if b > 1:
        diffs = idx[:, 1:] - idx[:, :-1]
        assert bool((diffs == d).all()), f"intervals {diffs.unique().tolist()} != {d}"
    # anchor start in the first third of the video
    assert int(starts[0]) < math.ceil(length / 3)
    # all starts form one contiguous run of integers that contains the anchor's start
    s = sorted(starts.tolist())
    assert s == list(range(s[0], s[0] + n))
    assert int(starts[0]) in s
    # deterministic for a given generator state
    assert torch.equal(idx, siamese_sample(length, n, b, _gen(seed), offsets=offsets))


@settings(max_examples=200, deadline=None)
@given(requests())
def test_offsets_after_and_alternate_pattern(req):
    length, n, b, seed, _ = req
    after = siamese_sample(length, n, b, _gen(seed), offsets="after")[:, 0]
    # "after": consecutive starts right after the anchor's (the run never needs shifting by default)
    assert after.tolist() == list(range(int(after[0]), int(after[0]) + n))
    alt = siamese_sample(length, n, b, _gen(seed), offsets="alternate")[:, 0]
    s0 = int(alt[0])
    expected = [0] + [k for j in range(1, n) for k in (j, -j)][: n - 1]
    if s0 + min(expected) >= 0:
        # 0, +1, -1, +2, -2, ... around the anchor
        assert (alt - s0).tolist() == expected
    else:
        # near frame 0 the run is the first N frames; the anchor keeps its start, others follow by distance
        assert sorted(alt.tolist()) == list(range(n))
        dist = [abs(int(s) - s0) for s in alt[1:]]
        assert dist == sorted(dist)


def test_same_anchor_for_siamese_and_anchor_copies_and_spread_of_starts():
    length, n, b = 90, 9, 6
    anchors = []
    for seed in range(300):
        sia = siamese_sample(length, n, b, _gen(seed))
        cop = anchor_copies_sample(length, n, b, _gen(seed))
        assert torch.equal(cop[0], sia[0])
        assert bool((cop == cop[0]).all())
        anchors.append(int(sia[0, 0]))
    # the anchor start is drawn from the whole first third (0..29), not a fixed point
    assert min(anchors) == 0 and max(anchors) == 29 and len(set(anchors)) >= 25


def test_siamese_clips_fill_gaps_between_anchor_frames():
    # Fig. 1c: with d >= N the union of the N clips covers N consecutive frames after each anchor frame.
    idx = siamese_sample(120, 9, 8, _gen(3))
    d = siamese_interval(120, 9, 8)
    assert d >= 9
    union = set(idx.flatten().tolist())
    for t in idx[0].tolist():
        assert set(range(t, t + 9)) <= union


def test_different_seeds_give_different_anchors():
    firsts = {int(siamese_sample(300, 9, 8, _gen(s))[0, 0]) for s in range(20)}
    assert len(firsts) > 10


@pytest.mark.parametrize("length,n,b", [(5, 9, 5), (12, 9, 5), (0, 1, 1)])
def test_too_short_raises_clear_error(length, n, b):
    with pytest.raises(VideoTooShortError, match=f"{length} frames"):
        siamese_sample(length, n, b, _gen(0))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(1, 13), st.integers(1, 16), st.integers(0, 1000))
def test_clamp_fallback_stays_inside(length, n, b, seed):
    idx = siamese_sample(length, n, b, _gen(seed), on_short="clamp")
    assert idx.shape == (n, b)
    assert int(idx.min()) >= 0 and int(idx.max()) <= length - 1
    assert bool((idx[:, 1:] >= idx[:, :-1]).all())  # time still runs forward within a clip


def test_interval_override_and_too_large_interval():
    idx = siamese_sample(100, 3, 4, _gen(0), interval=2)
    assert bool(((idx[:, 1:] - idx[:, :-1]) == 2).all())
    with pytest.raises(ValueError, match="interval 50"):
        siamese_sample(100, 3, 4, _gen(0), interval=50)


def test_sparse_sampler_is_the_anchor_rule():
    for seed in range(50):
        one = sparse_sample(80, 6, _gen(seed), reserve_clips=9)
        sia = siamese_sample(80, 9, 6, _gen(seed))
        assert one.shape == (1, 6)
        assert torch.equal(one[0], sia[0])
    assert torch.equal(sample_clips("sparse", 80, 9, 6, _gen(1)), sparse_sample(80, 6, _gen(1)))
    with pytest.raises(ValueError, match="unknown sampler"):
        sample_clips("dense", 80, 9, 6, _gen(1))


@pytest.mark.parametrize(
    "length,expected", [(1, 5), (39, 5), (40, 5), (47, 5), (48, 6), (64, 8), (127, 15), (128, 16), (5000, 16)]
)
def test_frames_per_clip_rule(length, expected):
    assert frames_per_clip_for_length(length) == expected
    assert MIN_FRAMES_PER_CLIP <= expected <= MAX_FRAMES_PER_CLIP


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500), st.integers(1, 16), st.integers(1, 16))
def test_uniform_clips(length, n, b):
    idx = uniform_clips(length, n, b)
    assert idx.shape == (n, b)
    assert int(idx.min()) >= 0 and int(idx.max()) <= length - 1
    flat = idx.flatten()
    assert bool((flat[1:] >= flat[:-1]).all())  # clips ordered in time, non-overlapping
    if length >= n * b:
        assert len(set(flat.tolist())) == n * b
        # clip c lies in segment c
        for c in range(n):
            lo, hi = c * length / n, (c + 1) * length / n
            assert all(lo - 1 < t < hi for t in idx[c].tolist())


@settings(max_examples=200, deadline=None)
@given(st.integers(40, 300), st.integers(1, 8), st.integers(0, 10_000))
def test_reserve_clips_gives_every_n_the_same_anchor(length, b, seed):
    anchors = [siamese_sample(length, n, b, _gen(seed), reserve_clips=13)[0] for n in range(1, 14)]
    anchors.append(sparse_sample(length, b, _gen(seed), reserve_clips=13)[0])
    anchors.append(anchor_copies_sample(length, 5, b, _gen(seed), reserve_clips=13)[0])
    assert all(torch.equal(a, anchors[0]) for a in anchors)
    assert int(anchors[0][0]) < math.ceil(length / 3)
    for n in (2, 9, 13):  # and the siamese rules still hold
        idx = siamese_sample(length, n, b, _gen(seed), reserve_clips=13)
        assert int(idx.max()) < length
        s = sorted(idx[:, 0].tolist())
        assert s == list(range(s[0], s[0] + n))
