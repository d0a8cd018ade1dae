"""Where the answer is, and whether a clip saw it: the synthetic benchmark's ground truth against clips.

The synthetic generator records, per video, the frame ranges where the answer is fully visible (``core``)
and partly visible (``faint``), in ``<dataset>/evidence.jsonl``. Every question about a video asks about the
same flashing object, so the evidence is per video.

A clip *contains* the evidence when one of its frames falls in a ``core`` range (or, at the ``"any"``
level, in a ``core`` or ``faint`` range). For one evaluation question we compare

* the anchor clip, which is all the model sees at test time (the paper's protocol), with
* the union of the anchor and its siamese clips, recomputed here: evaluation draws the anchor of item
  ``i`` from ``torch.Generator().manual_seed(item_seed(eval_seed, i))`` with the ``"sparse"`` sampler,
  which is :func:`~siasamrea.method.sampling.siamese_sample` with one clip; the same generator state and the
  same ``reserve_clips`` given to ``siamese_sample`` with N clips give the same anchor as row 0 plus the N − 1
  siamese clips a training step would have drawn around it. :func:`verify_anchors` checks this against
  the anchors the engine saved in ``predictions/*.json``.

Categories of a question (:func:`category`): ``"anchor"`` (the anchor has the evidence), ``"union only"``
(a siamese clip has it, the anchor does not: what SiaSamRea's training could add), ``"neither"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from siasamrea.data.dataset import ClipSpec, item_seed
from siasamrea.method.config import (
    Config,
    DataConfig,
    EvalConfig,
    MethodConfig,
    ModelSection,
    OptimConfig,
    RunConfig,
)
from siasamrea.training.build import eval_clip_spec, train_clip_spec

CATEGORIES = ("anchor", "union only", "neither")
LEVELS = ("core", "any")  # "any": core or faint


@dataclass(frozen=True)
class Evidence:
    """Ground truth of one video: its length and the inclusive frame ranges showing the answer."""

    num_frames: int
    core: tuple[tuple[int, int], ...]
    faint: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> Evidence:
        return cls(
            int(d["num_frames"]), tuple(tuple(r) for r in d["core"]), tuple(tuple(r) for r in d["faint"])
        )

    def ranges(self, level: str = "core") -> tuple[tuple[int, int], ...]:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        return self.core if level == "core" else self.core + self.faint

    @property
    def core_frames(self) -> int:
        return sum(b - a + 1 for a, b in self.core)

    @property
    def visibility(self) -> float:
        """Share of the video where the answer is fully visible (small = sparse evidence)."""
        return self.core_frames / self.num_frames


def load_evidence(path: str | Path) -> dict[str, Evidence]:
    """``{video_id: Evidence}`` from an ``evidence.jsonl``."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                out[d["video_id"]] = Evidence.from_dict(d)
    return out


def load_evidence_records(path: str | Path) -> list[dict]:
    """The raw rows of an ``evidence.jsonl`` (with ``split`` and ``task``), in file order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def lookup(evidence: dict[str, Evidence], video_id: str) -> Evidence | None:
    """The evidence of a video by id (a segment ``<id>_<start>_<end>`` also matches ``<id>``)."""
    if video_id in evidence:
        return evidence[video_id]
    hits = [k for k in evidence if k.startswith(f"{video_id}_")]
    return evidence[hits[0]] if len(hits) == 1 else None


# -- containment ------------------------------------------------------------------------------------------
def frames_hit(
    frames: Sequence[int] | np.ndarray | torch.Tensor, ranges: Sequence[Sequence[int]]
) -> np.ndarray:
    """Boolean mask, same shape as ``frames``: which frame indices fall inside one of the inclusive ranges."""
    f = np.asarray(frames.cpu() if isinstance(frames, torch.Tensor) else frames)
    hit = np.zeros(f.shape, dtype=bool)
    for a, b in ranges:
        hit |= (f >= a) & (f <= b)
    return hit


def clip_contains(clip: Sequence[int], evidence: Evidence, level: str = "core") -> bool:
    """Does one clip (its frame indices) show the evidence?"""
    return bool(frames_hit(clip, evidence.ranges(level)).any())


def clips_containing(clips, evidence: Evidence, level: str = "core") -> np.ndarray:
    """``bool [N]``: which rows of ``clips [N, B]`` show the evidence."""
    return frames_hit(clips, evidence.ranges(level)).any(axis=-1)


def category(anchor_has: bool, union_has: bool) -> str:
    """``"anchor"``, ``"union only"`` or ``"neither"`` (the anchor is part of the union)."""
    if anchor_has:
        return "anchor"
    return "union only" if union_has else "neither"


# -- a run's clips -------------------------------------------------------------------------------------------
_SECTIONS = {"data": DataConfig, "model": ModelSection, "method": MethodConfig, "optim": OptimConfig,
             "eval": EvalConfig, "run": RunConfig}  # fmt: skip


def run_config(run_dir: str | Path) -> Config:
    """A run's ``config.yaml`` as a :class:`Config`, without validation (the paths it names, e.g. the
    checkpoint it started from, need not exist where the analysis runs); unknown keys are ignored."""
    values = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    sections = {}
    for name, cls in _SECTIONS.items():
        known = set(cls.model_fields)
        sections[name] = cls(**{k: v for k, v in (values.get(name) or {}).items() if k in known})
    return Config(**sections)


def union_spec(cfg: Config, num_clips: int) -> ClipSpec:
    """The siamese clips around a run's evaluation anchor: same frames per clip, offsets and ``reserve_clips``
    as :func:`~siasamrea.training.build.eval_clip_spec`, so that row 0 is the evaluation anchor."""
    ev = eval_clip_spec(cfg)
    if ev.sampler != "sparse":
        raise ValueError(f"{cfg.run.out_dir}: evaluation uses {ev.sampler!r} clips, not a single anchor")
    reserve = max(ev.reserve_clips or 0, num_clips)
    return ClipSpec(
        "siamese", num_clips, ev.frames_per_clip, reserve_clips=reserve, offsets=cfg.method.offsets
    )


def eval_generator(eval_seed: int, index: int) -> torch.Generator:
    """The generator evaluation item ``index`` draws its anchor from (VideoQADataset, ``train=False``)."""
    return torch.Generator().manual_seed(item_seed(eval_seed, index))


def train_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator training item ``index`` draws its clips from in ``epoch`` (VideoQADataset, train)."""
    return torch.Generator().manual_seed(item_seed(seed, epoch, index))


def eval_anchor(cfg: Config, num_frames: int, index: int) -> torch.Tensor:
    """The anchor clip evaluation draws for item ``index`` (``LongTensor[B]``), as the engine does."""
    return eval_clip_spec(cfg).indices(num_frames, eval_generator(cfg.eval.seed, index))[0]


def eval_union(cfg: Config, num_frames: int, index: int, num_clips: int) -> torch.Tensor:
    """Evaluation item ``index``'s anchor and its ``num_clips − 1`` siamese clips: ``LongTensor[N, B]``."""
    return union_spec(cfg, num_clips).indices(num_frames, eval_generator(cfg.eval.seed, index))


def train_clips(cfg: Config, num_frames: int, index: int, epoch: int) -> torch.Tensor:
    """The clips training item ``index`` sees in ``epoch``: ``LongTensor[N, B]`` (baseline: ``[1, B]``)."""
    return train_clip_spec(cfg).indices(num_frames, train_generator(cfg.run.seed, epoch, index))


# -- checks against what the engine saved ------------------------------------------------------------------
def read_predictions(run_dir: str | Path, task: str, split: str, tag: str = "best") -> list[dict]:
    """The per-question rows of ``predictions/<task>_<split>_<tag>.json``."""
    path = Path(run_dir) / "predictions" / f"{task}_{split}_{tag}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no predictions (is the run finished?)")
    return json.loads(path.read_text())["rows"]


def verify_anchors(cfg: Config, rows: list[dict], evidence: dict[str, Evidence], num_clips: int) -> dict:
    """Recompute every saved anchor as row 0 of the siamese union; count matches and name mismatches."""
    out = {"checked": 0, "matched": 0, "no_evidence": 0, "mismatches": []}
    for r in rows:
        ev = lookup(evidence, r["video_id"])
        if ev is None:
            out["no_evidence"] += 1
            continue
        row0 = eval_union(cfg, ev.num_frames, r["index"], num_clips)[0].tolist()
        out["checked"] += 1
        if row0 == list(r["anchor"]):
            out["matched"] += 1
        elif len(out["mismatches"]) < 10:
            out["mismatches"].append({"index": r["index"], "saved": r["anchor"], "recomputed": row0})
    return out


def verify_training_clips(cfg: Config, analysis: dict) -> dict:
    """Recompute the training clips of the videos in ``analysis.json`` (drawn in the run's last epoch)."""
    epoch = cfg.optim.epochs - 1  # the engine writes analysis.json after the last epoch's set_epoch
    out = {"checked": 0, "matched": 0}
    for v in analysis.get("videos", []):
        got = train_clips(cfg, v["num_frames"], v["index"], epoch).tolist()
        out["checked"] += 1
        out["matched"] += int(got == v["clip_indices"])
    return out
