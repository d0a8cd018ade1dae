"""The action-footprint reference (siasamrea.analysis.action_footprints): footprints checked against masks
placed and pooled by hand, the classifier against data whose separability is known, the sampler's anchors."""

import numpy as np
import pytest

from siasamrea.analysis.action_footprints import action_footprints, footprint, ridge_confusion
from siasamrea.synthetic.generator import SynthConfig
from siasamrea.synthetic.render import Sprite, shape_mask
from siasamrea.synthetic.tasks import ACTIONS, VideoSpec

WINDOW, CELLS = 96, 8  # 12-pixel cells


def _spec(positions, alphas, sizes, shape="square") -> VideoSpec:
    n = len(positions)
    sprite = Sprite(shape, (255, 0, 0), np.array(positions), np.array(alphas, float), np.array(sizes))
    return VideoSpec(n, "plain", [sprite], [])


def _by_hand(shape: str, size: int, dy: int, dx: int, alpha: float = 1.0) -> np.ndarray:
    """The mask drawn by hand at the window's centre shifted by (dy, dx), pooled into 12-pixel cells."""
    canvas = np.zeros((WINDOW, WINDOW))
    top, left = WINDOW // 2 - size // 2 + dy, WINDOW // 2 - size // 2 + dx
    canvas[top : top + size, left : left + size] = alpha * shape_mask(shape, size)
    return canvas.reshape(CELLS, 12, CELLS, 12).mean(axis=(1, 3)).ravel()


def test_a_resting_actor_leaves_its_own_mask_pooled():
    spec = _spec([(20, 30)] * 5, [1.0] * 5, [16] * 5, shape="triangle")
    got = footprint(spec, [0, 2, 4], WINDOW, CELLS)
    np.testing.assert_allclose(got, _by_hand("triangle", 16, 0, 0))


def test_moves_fades_and_sizes_average_over_the_sampled_frames_only():
    # frame 1 jumps 12 px up (one cell), frame 2 is half-faded, frame 3 grows to 24 px about the same centre
    # (its top-left moves 4 px up and left, as the generator's "grow" does), frame 4 is never sampled
    spec = _spec([(40, 40), (28, 40), (40, 40), (36, 36), (0, 0)], [1, 1, 0.5, 1, 1], [16, 16, 16, 24, 16])
    got = footprint(spec, [0, 1, 2, 3], WINDOW, CELLS)
    want = (_by_hand("square", 16, 0, 0) + _by_hand("square", 16, -12, 0) + _by_hand("square", 16, 0, 0, 0.5)
            + _by_hand("square", 24, 0, 0)) / 4  # fmt: skip
    np.testing.assert_allclose(got, want)
    mass = (
        2.5 * shape_mask("square", 16).sum() + shape_mask("square", 24).sum()
    ) / 4  # area x alpha, averaged
    assert got.sum() * 144 == pytest.approx(mass)
    # the jump moves mass one cell up: the same footprint as the rest frame's, one row of cells higher
    up = footprint(spec, [1], WINDOW, CELLS).reshape(CELLS, CELLS)
    rest = footprint(spec, [0], WINDOW, CELLS).reshape(CELLS, CELLS)
    np.testing.assert_allclose(up[:-1], rest[1:])


def test_a_move_out_of_the_window_is_clipped_not_wrapped():
    spec = _spec([(40, 40), (40, 40 + 200)], [1, 1], [16, 16])
    got = footprint(spec, [0, 1], WINDOW, CELLS)
    np.testing.assert_allclose(got, _by_hand("square", 16, 0, 0) / 2)


def test_window_must_be_a_multiple_of_the_cells():
    with pytest.raises(ValueError, match="multiple of cells"):
        footprint(_spec([(0, 0)], [1], [8]), [0], 96, 7)


def test_the_classifier_separates_what_is_separable_and_not_what_is_not():
    rng = np.random.default_rng(0)
    centres = {"a": np.zeros(6), "b": np.r_[3.0, np.zeros(5)], "c": np.r_[0, 3.0, np.zeros(4)]}

    def draw(n, names):
        y = [names[i % len(names)] for i in range(n)]
        return np.stack([centres[c] + rng.normal(0, 0.3, 6) for c in y]), y

    acc, names, conf = ridge_confusion(*draw(300, "abc"), *draw(300, "abc"))
    assert acc == 1.0 and names == ["a", "b", "c"] and (conf == np.diag([100, 100, 100])).all()
    # two labels for one distribution: chance (1/2) within sampling noise, never the 1.0 above
    x, _ = draw(400, "a")
    y = ["p" if i % 2 else "q" for i in range(400)]
    acc, _, conf = ridge_confusion(x[:200], y[:200], x[200:], y[200:])
    assert abs(acc - 0.5) < 0.12 and conf.sum() == 200


def test_footprints_of_generated_videos_follow_the_anchor_sampler_and_the_answers():
    cfg = SynthConfig(seed=3, tgif_train=12, tgif_test=6)
    x, y = action_footprints(cfg, "train", 12, cells=CELLS, seed=0)
    assert x.shape == (12, CELLS * CELLS) and set(y) <= set(ACTIONS)
    again, _ = action_footprints(cfg, "train", 12, cells=CELLS, seed=0)
    np.testing.assert_array_equal(x, again)  # same sampler seed, same anchors
    other, _ = action_footprints(cfg, "train", 12, cells=CELLS, seed=1)
    assert not np.array_equal(x, other)  # the anchor frames do come from the sampler's draws
    with pytest.raises(ValueError, match="6 action test videos"):
        action_footprints(cfg, "test", 7, cells=CELLS)
