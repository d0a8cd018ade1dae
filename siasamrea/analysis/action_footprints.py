"""Can the TGIF-QA-like actions be told apart in what ClipBERT's temporal fusion keeps?

ClipBERT (and so this model) averages a clip's frame features over time before the transformer sees them, so
an action is visible only through its *footprint*: the mean, over the anchor clip's frames, of where and how
strongly the actor is drawn. Two actions with the same footprint cannot be told apart by any amount of
training. This module measures that on the generator itself, before any model is trained:

* :func:`footprint`: the actor's silhouette (its shape mask times its alpha; no background, no noise, no
  distractors) averaged over the given frames, in a window centred on the actor's rest position (frame 0), and
  pooled into square cells. ``float [cells * cells]``.
* :func:`action_footprints`: the footprints of generated action videos at the anchor clip's frames (the
  project's sampler, :func:`siasamrea.method.sampling.siamese_sample`, row 0) and their actions.
* :func:`ridge_confusion`: a ridge classifier fitted on training footprints, scored on held-out ones.

Its accuracy is a generous reference (the actor is already found and centred, the silhouette is clean), so a
pair it confuses is a pair the generator asks the model to separate without giving it the means.
``python -m siasamrea.analysis.action_footprints --help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from siasamrea.method.sampling import siamese_sample
from siasamrea.synthetic.generator import SynthConfig, _jobs, _spec
from siasamrea.synthetic.render import shape_mask
from siasamrea.synthetic.tasks import VideoSpec


def footprint(spec: VideoSpec, frames: Sequence[int], window: int = 96, cells: int = 24) -> np.ndarray:
    """Mean of the actor's (the last sprite's) mask x alpha over ``frames``, in a ``window``-pixel square
    centred on the actor's centre at frame 0, average-pooled to ``cells x cells``. ``float64 [cells**2]``."""
    if window % cells:
        raise ValueError(f"window ({window}) must be a multiple of cells ({cells})")
    actor = spec.sprites[-1]
    s0 = int(actor.sizes[0])
    top0, left0 = (int(v) for v in actor.positions[0])
    canvas = np.zeros((window, window))
    for t in frames:
        s = int(actor.sizes[t])
        top = int(actor.positions[t][0]) - top0 + window // 2 - s0 // 2
        left = int(actor.positions[t][1]) - left0 + window // 2 - s0 // 2
        mask = shape_mask(actor.shape, s) * float(actor.alphas[t])
        # clip to the window (a long move may leave it; what leaves is not seen by the reference either)
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + s, window), min(left + s, window)
        if y1 > y0 and x1 > x0:
            canvas[y0:y1, x0:x1] += mask[y0 - top : y1 - top, x0 - left : x1 - left]
    k = window // cells
    return (canvas / len(frames)).reshape(cells, k, cells, k).mean(axis=(1, 3)).ravel()


def action_footprints(
    cfg: SynthConfig,
    split: str,
    count: int,
    *,
    frames_per_clip: int = 4,
    reserve_clips: int = 13,
    seed: int = 0,
    window: int = 96,
    cells: int = 24,
) -> tuple[np.ndarray, list[str]]:
    """Footprints of the first ``count`` action videos of ``split`` at their anchor clip's frames (drawn as
    the training run draws them: N = 1, B = ``frames_per_clip``, the interval of ``reserve_clips`` clips) and
    their answers. ``(float [count, cells * cells], [count] action words)``."""
    jobs = {j.key: j for j in _jobs(cfg, Path("."))}
    gen = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for i in range(count):
        key = ("tgif-qa", "action", split, i)
        if key not in jobs:
            raise ValueError(f"the config has {cfg.count('tgif-qa', 'action', split)} action {split} videos, "
                             f"asked for {count}")  # fmt: skip
        spec, _ = _spec(cfg, jobs[key])
        anchor = siamese_sample(spec.num_frames, 1, frames_per_clip, gen, reserve_clips=reserve_clips,
                                on_short="clamp")[0]  # fmt: skip
        feats.append(footprint(spec, anchor.tolist(), window, cells))
        labels.append(spec.questions[0].answer)
    return np.stack(feats), labels


def ridge_confusion(
    x_train: np.ndarray,
    y_train: Sequence[str],
    x_test: np.ndarray,
    y_test: Sequence[str],
    alpha: float = 10.0,
) -> tuple[float, list[str], np.ndarray]:
    """Ridge regression on one-hot labels (features standardised on the training set), argmax on the test set.
    Returns (accuracy, class names, confusion ``int [classes, classes]``, rows true, columns predicted)."""
    names = sorted(set(y_train))
    onehot = np.array([[y == n for n in names] for y in y_train], dtype=float)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ onehot)
    pred = (b @ w).argmax(1)
    index = {n: i for i, n in enumerate(names)}
    conf = np.zeros((len(names), len(names)), dtype=int)
    for y, p in zip(y_test, pred, strict=True):
        conf[index[y], p] += 1
    return float(np.trace(conf) / conf.sum()), names, conf


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m siasamrea.analysis.action_footprints",
        description="How well the generator's actions can be told apart from their temporal-mean footprint "
        "at the anchor clip's frames (clean silhouette, ridge classifier): a reference for the TGIF-QA-like "
        "action task, measured without training a model.",
    )
    parser.add_argument("--seed", type=int, default=0, help="the synthetic benchmark's seed (synth.seed)")
    parser.add_argument("--train", type=int, default=400, help="training videos (synth.tgif_train)")
    parser.add_argument("--test", type=int, default=1000, help="test videos (synth.tgif_test)")
    parser.add_argument("--frames-per-clip", type=int, default=4)
    parser.add_argument("--cells", type=int, default=24, help="pooling cells per side of the 96-px window")
    args = parser.parse_args(argv)
    cfg = SynthConfig(seed=args.seed, tgif_train=args.train, tgif_test=args.test)
    x_tr, y_tr = action_footprints(cfg, "train", args.train, frames_per_clip=args.frames_per_clip,
                                   cells=args.cells, seed=1)  # fmt: skip
    x_te, y_te = action_footprints(cfg, "test", args.test, frames_per_clip=args.frames_per_clip,
                                   cells=args.cells, seed=2)  # fmt: skip
    acc, names, conf = ridge_confusion(x_tr, y_tr, x_te, y_te)
    chance = 100 / len(names)
    grid = f"{args.cells}x{args.cells} cells of {96 // args.cells} px"
    print(f"actions from their footprint ({grid}, {args.train} training / {args.test} test videos): "
          f"{100 * acc:.1f}% (chance {chance:.1f}%)")  # fmt: skip
    print("true \\ predicted  " + " ".join(f"{n:>7s}" for n in names))
    for n, row in zip(names, conf, strict=True):
        print(
            f"{n:>17s}  "
            + " ".join(f"{v:7d}" for v in row)
            + f"   {100 * row[names.index(n)] / row.sum():5.1f}%"
        )


if __name__ == "__main__":
    main()
