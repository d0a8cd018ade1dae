"""The workload the benchmark times: one training step of the embedded default's tiny model, as the engine
runs it.

A *step* is exactly the engine's (:meth:`siasamrea.training.trainer.Trainer._train_epoch`): ``TrainModule``
forward (model on every clip of every video in one batch, then :class:`~siasamrea.method.losses.SiaSamReaLoss`
with the reasoner), ``zero_grad``, ``backward``, gradient clipping, AdamW step
(:func:`~siasamrea.training.trainer.build_optimizer`), scheduler step. Models and objectives come from
:func:`siasamrea.training.build.build_objective` with a :class:`~siasamrea.method.config.Config` of the
variant, as a training run builds them.

Shapes, for V videos per step, N clips per video, T frames per clip, S x S pixels, L tokens, C candidates,
K answers and hidden size H: frames ``[V, N, T, S, S, 3]`` (uint8), clip features ``[V, N, H]``, clip logits
``[V, N, K]`` (open-ended) or ``[V, N, C]`` (multiple choice).

:class:`StepSetting` names one configuration, :class:`StepBench` builds it; every other module of the
benchmark (step timing, profiler, inference, memory, explore, loader) measures a :class:`StepBench`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from siasamrea.method.config import Config
from siasamrea.method.model import TINY_TEXT, TINY_VISION, ClipBertVQA, ClipOutputs, HeadSpec, ModelConfig
from siasamrea.training.build import build_objective
from siasamrea.training.trainer import TrainModule, build_optimizer, linear_schedule

#: The embedded default's encoder: TINY_VISION with three stages of one block (16, 32, 64 channels).
BENCH_VISION = {**TINY_VISION, "hidden_sizes": [16, 32, 64], "depths": [1, 1, 1]}
#: task kind -> the model's head name
TASKS = {"open_ended": "oe", "multiple_choice": "mc"}


@dataclass(frozen=True)
class StepSetting:
    """One training configuration: the task kind, N clips (1 = the baseline) and the batch's shapes."""

    task: str = "open_ended"  # "open_ended" | "multiple_choice"
    num_clips: int = 9
    videos: int = 8  # videos per step (OptimConfig.batch_size)
    frames_per_clip: int = 4
    frame_size: int = 32
    num_answers: int = 20  # open-ended answer vocabulary
    num_candidates: int = 4  # multiple choice (How2QA: 4)
    text_len: int = 12  # tokens per question (multiple choice: question + candidate)
    vocab_size: int = TINY_TEXT["vocab_size"]

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {self.num_clips}")

    @property
    def variant(self) -> str:
        return "baseline" if self.num_clips == 1 else "siasamrea"

    @property
    def name(self) -> str:
        return f"{self.task}/N={self.num_clips}"

    @property
    def head(self) -> str:
        return TASKS[self.task]


def model_config(setting: StepSetting) -> ModelConfig:
    """The tiny ClipBertVQA of the setting, with the one head its task needs."""
    if setting.task == "open_ended":
        head = HeadSpec("open_ended", setting.num_answers, [f"a{i}" for i in range(setting.num_answers)])
    else:
        head = HeadSpec("multiple_choice")
    text = {**TINY_TEXT, "vocab_size": setting.vocab_size}
    return ModelConfig(heads={setting.head: head}, vision=dict(BENCH_VISION), text=text)


def run_config(setting: StepSetting) -> Config:
    """The configuration a training run of this setting would use (defaults otherwise)."""
    cfg = Config()
    cfg.method.variant = setting.variant
    cfg.method.num_clips = max(2, setting.num_clips)  # the baseline ignores it (train_clips = 1)
    cfg.method.frames_per_clip = setting.frames_per_clip
    cfg.optim.batch_size = setting.videos
    return cfg


def make_batch(setting: StepSetting, seed: int = 0) -> dict:
    """A collated batch with the dataset's layout (``siasamrea.data.dataset.collate``), random content.

    ``frames`` ``[V, N, T, S, S, 3]`` uint8, ``frame_mask`` ``[V, N, T]``, ``input_ids`` and
    ``attention_mask`` ``[V, L]`` (multiple choice: ``[V, C, L]``), ``target`` ``[V]``.
    """
    g = torch.Generator().manual_seed(seed)
    s = setting
    v, n, t = s.videos, s.num_clips, s.frames_per_clip
    frames = torch.randint(0, 256, (v, n, t, s.frame_size, s.frame_size, 3), dtype=torch.uint8, generator=g)
    text_shape = (v, s.num_candidates, s.text_len) if s.task == "multiple_choice" else (v, s.text_len)
    ids = torch.randint(5, s.vocab_size, text_shape, generator=g)
    ids[..., 0] = 2  # [CLS]-like first token
    high = s.num_answers if s.task == "open_ended" else s.num_candidates
    return {
        "frames": frames,
        "frame_mask": torch.ones(v, n, t, dtype=torch.bool),
        "input_ids": ids,
        "attention_mask": torch.ones(text_shape, dtype=torch.long),
        "target": torch.randint(0, high, (v,), generator=g),
    }


class StepBench:
    """A model, its objective, optimizer and scheduler, and one batch: ``step()`` is one engine step."""

    def __init__(self, setting: StepSetting, seed: int = 0, batch: dict | None = None):
        self.setting = setting
        self.cfg = run_config(setting)
        torch.manual_seed(seed)
        model = ClipBertVQA(model_config(setting))
        objective = build_objective(self.cfg, model.hidden_size)
        self.module = TrainModule(model, objective)
        self.module.train()
        self.optimizer = build_optimizer(self.module, self.cfg)
        # much longer than any benchmark: its steps stay early in the schedule, as a run's first steps do
        self.scheduler = linear_schedule(self.optimizer, 10_000, self.cfg.optim.warmup_ratio)
        self.batch = make_batch(setting, seed) if batch is None else batch

    @property
    def model(self) -> ClipBertVQA:
        return self.module.model

    def step(self, batch: dict | None = None) -> dict:
        out = self.module(self.batch if batch is None else batch, self.setting.head)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if self.cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return out

    def clip_outputs(self) -> ClipOutputs:
        """The model's outputs on the batch (features ``[V, N, H]``, logits ``[V, N, K]``), as detached
        leaves that require grad: the reasoning's inputs, so that timing it excludes the model."""
        b = self.batch
        with torch.no_grad():
            out = self.model(
                b["frames"], b["input_ids"], b["attention_mask"], self.setting.head, b["frame_mask"]
            )
        return ClipOutputs(
            features=out.features.detach().requires_grad_(True),
            logits=out.logits.detach().requires_grad_(True),
            kind=out.kind,
        )
