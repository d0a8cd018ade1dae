"""Evaluation conditions that bound what the embedded benchmark can measure (README, "The instrument").

The paper evaluates a model on its anchor clip. To know what such a number means, the same trained model is
also evaluated under conditions whose answers are known in advance:

* ``blank``: every frame black. What is left is the text: the floor, which should sit at the answer prior
  if the questions have no textual shortcut.
* ``oracle``: one clip of the same length placed on the video's core evidence (from the synthetic ground
  truth). The recognition ceiling: how often the model answers when it is shown what the question is about.
* ``multi_clip``: the anchor and its ``num_clips - 1`` siamese clips (drawn exactly as in training, with
  the evaluation's generator, so row 0 is the very anchor the anchor protocol shows) and the clip logits
  averaged. A positive control: the same model shown the anchor plus the frames between the anchor's
  frames, i.e. the evidence SiaSamRea's training draws on, should do better whenever the anchor misses it.
  (Uniform clips over the whole video, ClipBERT's dense inference, were measured first: each of 9 uniform
  clips spans a ninth of the video, much shorter than the clips the model was trained on, and the average
  came out below the anchor: README, "The instrument".)

Every condition keeps the questions, their order and the model; only the pixels the model sees change.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from siasamrea.data.dataset import VideoQADataset
from siasamrea.training.evidence import Evidence, lookup

CONDITIONS = ("blank", "oracle", "multi_clip")


def oracle_clip(evidence: Evidence, frames_per_clip: int) -> torch.Tensor:
    """``LongTensor [1, B]``: B frame indices spread evenly over the longest core range of ``evidence``.

    A range shorter than B frames repeats frames (the clip never leaves the evidence).
    """
    if not evidence.core:
        raise ValueError("the video has no core evidence range")
    a, b = max(evidence.core, key=lambda r: r[1] - r[0])
    return torch.linspace(a, b, frames_per_clip).round().long().view(1, frames_per_clip)


def oracle_dataset(
    dataset: VideoQADataset, evidence: dict[str, Evidence], frames_per_clip: int
) -> tuple[VideoQADataset, int]:
    """The questions of ``dataset`` each shown an oracle clip; and how many had no evidence record.

    A question whose video has no evidence (or no core range) keeps its anchor clip, and is counted.
    """
    clips, missing = [], 0
    for i, record in enumerate(dataset.records):
        ev = lookup(evidence, record.video_id)
        if ev is None or not ev.core:
            missing += 1
            lo, hi = dataset.ranges[i]
            clips.append(dataset.clips.indices(hi - lo, dataset.generator(i)) + lo)
        else:
            clips.append(oracle_clip(ev, frames_per_clip).clamp_max(dataset.num_frames[i] - 1))
    return dataset.with_clips(clips), missing


def multi_clip_dataset(dataset: VideoQADataset, num_clips: int) -> VideoQADataset:
    """The questions of ``dataset`` (evaluated on an anchor clip) each shown the anchor and its siamese clips.

    The siamese sampler uses the anchor rule with the same generator and interval, so row 0 of every
    question's ``[num_clips, B]`` clips is the anchor ``dataset`` itself shows.
    """
    spec = dataset.clips
    if spec.sampler != "sparse":
        raise ValueError(f"multi_clip needs an anchor-clip evaluation set, got sampler {spec.sampler!r}")
    return dataset.with_clips(replace(spec, sampler="siamese", num_clips=num_clips))
