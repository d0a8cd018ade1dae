"""How well could a model count from the clips it sees? A ceiling for the TGIF-QA-like count task.

A count video flashes its object k times (k uniform in 1..5), one flash per slot spread over the whole video
(:func:`siasamrea.synthetic.tasks.count_video`); evaluation shows the model one anchor clip of a few frames.
Whatever a model does with those frames, its answer is a function of what they show. The lowest squared error
any function of a reading ``f`` can reach on a set of questions is the within-group variance of the answer
given ``f``, E[Var(k | f)]: the answer of each group is its mean. Computed on the test questions themselves
it is a slightly optimistic bound (the group means are fitted on the answers they predict), so a model whose
answer depends on the frames only through the flashes cannot beat it. The generator draws k independently of
the rest of the video (length, background, distractors), so nothing else in the frames predicts it on its
own. Readings, from least to most informative:

* ``averaged anchor``: how many of the anchor's frames show a flash fully and how many faintly — all that
  survives averaging the clip's frames (ClipBERT's temporal fusion, this model's): the mean of per-frame
  features keeps which states occur and how often, not their order nor which flash a frame belongs to;
* ``anchor, flashes told apart``: the same, plus how many distinct flashes the anchor's frames fall in — a
  reader of the anchor that could also tell one flash from the next;
* ``siamese union``: how many distinct flashes the anchor and its siamese clips together fall in — what the
  paper's N clips show in training (evaluation never sees them).

The training mean's MSE (:func:`siasamrea.analysis.floors.mean_predictor_mse`) is the floor these are read
against.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from siasamrea.training.evidence import (
    Evidence,
    eval_union,
    frames_hit,
    load_evidence,
    lookup,
    read_predictions,
    run_config,
)

READINGS = ("averaged anchor", "anchor, flashes told apart", "siamese union")
#: How a table names each reading ({clips}: the anchor and its siamese clips, ``method.num_clips``).
READING_TEXT = {
    "averaged anchor": "from the anchor's frames averaged (this model's and ClipBERT's temporal fusion)",
    "anchor, flashes told apart": "if it also told one flash from the next",
    "siamese union": "from the {clips} clips of a SiaSamRea training step together (evaluation sees one)",
}


def frame_states(frames: Sequence[int], ev: Evidence) -> tuple[int, ...]:
    """Per frame of a clip: 2 where a flash is fully visible (core), 1 faint (its ramp), 0 dark."""
    core, faint = frames_hit(frames, ev.core), frames_hit(frames, ev.faint)
    return tuple(int(s) for s in np.where(core, 2, np.where(faint, 1, 0)))


def flashes_hit(frames: Sequence[int] | np.ndarray, ev: Evidence) -> int:
    """How many distinct flashes (core ranges) at least one of ``frames`` falls in."""
    f = np.asarray(frames).reshape(-1)
    return sum(bool(((f >= a) & (f <= b)).any()) for a, b in ev.core)


def best_mse(answers: Sequence[float], readings: Sequence[Hashable]) -> float:
    """E[Var(answer | reading)]: the lowest mean squared error of any function of the reading on these
    questions (each group answered with its own mean)."""
    if len(answers) != len(readings):
        raise ValueError(f"{len(answers)} answers but {len(readings)} readings")
    if not len(answers):
        raise ValueError("no questions")
    groups: dict[Hashable, list[float]] = defaultdict(list)
    for a, r in zip(answers, readings, strict=True):
        groups[r].append(float(a))
    return float(sum(np.sum((np.array(g) - np.mean(g)) ** 2) for g in groups.values()) / len(answers))


def count_ceilings(run_dir: str | Path, split: str = "test", task: str = "count", tag: str = "last") -> dict:
    """``{"n": questions, "num_clips": N, reading: best MSE}`` for every reading of :data:`READINGS`, on the
    anchors a run's evaluation used (its ``predictions/<task>_<split>_<tag>.json``); the siamese union is
    recomputed with the run's ``method.num_clips`` (N). A question whose video has no evidence record raises
    (the synthetic sets record every video; a real dataset has no flash ground truth)."""
    cfg = run_config(run_dir)
    evidence = load_evidence(cfg.data.evidence)
    rows = read_predictions(run_dir, task, split, tag)
    answers, readings = [], {r: [] for r in READINGS}
    for row in rows:
        ev = lookup(evidence, row["video_id"])
        if ev is None:
            raise ValueError(f"{cfg.data.evidence}: no evidence record for video {row['video_id']!r}")
        if len(ev.core) != round(float(row["target"])):
            raise ValueError(
                f"{cfg.data.evidence}: video {row['video_id']!r} records {len(ev.core)} flashes, "
                f"its question answers {row['target']}"
            )
        states = frame_states(row["anchor"], ev)
        averaged = (states.count(2), states.count(1))
        answers.append(float(row["target"]))
        readings["averaged anchor"].append(averaged)
        readings["anchor, flashes told apart"].append((*averaged, flashes_hit(row["anchor"], ev)))
        union = eval_union(cfg, ev.num_frames, row["index"], cfg.method.num_clips)
        readings["siamese union"].append(flashes_hit(union.numpy(), ev))
    return {
        "n": len(answers),
        "num_clips": cfg.method.num_clips,
        **{r: best_mse(answers, v) for r, v in readings.items()},
    }
