"""Training step time against N, and the share of it spent in siamese knowledge generation and reasoning.

The step times of the baseline (N = 1) and SiaSamRea (N = 2, 5, 9, 13; multiple choice: N = 1, 9) are
measured side by side (round-robin, :func:`~siasamrea.perf.timing.round_robin`) on
:class:`~siasamrea.perf.step.StepBench` steps.

The cost of siamese knowledge generation and reasoning (affinity Â, soft label Q, ``L_siamese``, forward
and backward) is measured directly, not as the difference of two step times (two noisy medians of which
it would be under 1%): the reasoning is run alone on leaf tensors of the real step's shapes (clip features
``[V, N, H]``, clip logits ``[V, N, K]``), then divided by the step's median. :mod:`siasamrea.perf.profiler`
cross-checks it inside real steps.
"""

from __future__ import annotations

import torch

from siasamrea.method.losses import clip_probabilities, siamese_loss
from siasamrea.method.model import ClipOutputs
from siasamrea.perf.step import StepBench, StepSetting
from siasamrea.perf.timing import round_robin, scale

#: N of the open-ended settings (1: the baseline)
TRAIN_CLIPS = (1, 2, 5, 9, 13)
#: The reasoning's share of a step that the method should stay under (docs/method.md, "Performance targets")
TARGET_FRACTION = 0.01


def default_settings(
    videos: int, clips: tuple[int, ...] = TRAIN_CLIPS, mc_clips: tuple[int, ...] = (1, 9)
) -> list[StepSetting]:
    """Open-ended settings at every N of ``clips``, multiple-choice ones at ``mc_clips``."""
    oe = [StepSetting("open_ended", n, videos=videos) for n in clips]
    # question + candidate: longer token sequences than an open-ended question
    mc = [StepSetting("multiple_choice", n, videos=videos, text_len=20) for n in mc_clips]
    return oe + mc


# -- step time -------------------------------------------------------------------------------------------
def training_steps(settings: list[StepSetting], *, warmup: int, repeats: int) -> tuple[list[dict], dict]:
    """Step time of every setting, timed round-robin. Returns (entries, {name: StepBench}).

    The benches are returned so that :func:`reasoning_cost` divides by the step time of the very models
    (and batches) it runs the reasoning of.
    """
    benches = {s.name: StepBench(s) for s in settings}
    stats = round_robin({k: b.step for k, b in benches.items()}, warmup=warmup, repeats=repeats)
    entries = []
    for name, b in benches.items():
        s = b.setting
        entries.append({
            "name": name, "task": s.task, "variant": s.variant, "num_clips": s.num_clips,
            "videos_per_step": s.videos, "frames_per_clip": s.frames_per_clip, "frame_size": s.frame_size,
            "frames_per_step": s.videos * s.num_clips * s.frames_per_clip,
            "step_seconds": stats[name],
            "seconds_per_video": scale(stats[name], 1.0 / s.videos),
        })  # fmt: skip
    base = {e["task"]: e["step_seconds"]["median"] for e in entries if e["num_clips"] == 1}
    for e in entries:
        if e["task"] in base:
            e["relative_to_baseline"] = e["step_seconds"]["median"] / base[e["task"]]
    return entries, benches


def time_steps_at_threads(setting: StepSetting, threads: list[int], *, warmup: int, repeats: int) -> dict:
    """Step time of one setting at several ``torch.set_num_threads`` values, interleaved (restored after)."""
    prev = torch.get_num_threads()
    bench = StepBench(setting)

    def at(t: int):
        def run():
            torch.set_num_threads(t)
            bench.step()

        return run

    try:
        return round_robin({str(t): at(t) for t in threads}, warmup=warmup, repeats=repeats)
    finally:
        torch.set_num_threads(prev)


# -- siamese knowledge generation + reasoning, alone -----------------------------------------------------
def reasoning_fn(bench: StepBench, outputs: ClipOutputs | None = None):
    """A closure running Â, Q and ``L_siamese`` forward and backward (to the features, logits, W1/W2),
    exactly as :class:`~siasamrea.method.losses.SiaSamReaLoss` computes them, on leaves of the step's shapes
    (``outputs``: features ``[V, N, H]``, logits ``[V, N, K]``; default: the bench's model on its batch).

    ``bench`` needs only ``module.objective`` and ``setting.name`` (the paper-scale run passes a stand-in).
    """
    obj = bench.module.objective
    if obj.reasoner is None:
        raise ValueError(f"{bench.setting.name}: no reasoner (baseline)")
    out = bench.clip_outputs() if outputs is None else outputs
    params = [p for p in obj.reasoner.parameters() if p.requires_grad]
    inputs = [out.features, out.logits, *params]

    def run():
        probs = clip_probabilities(out.kind, out.logits, obj.temperature)
        r = obj.reasoner(
            out.features,
            probs,
            detach_inputs=obj.stop_gradient == "target",
            detach_weights=obj.weight_objective == "gt",
        )
        loss = obj.alpha * siamese_loss(out.kind, r.soft_label, out.logits[:, 0], obj.temperature)
        return loss, torch.autograd.grad(loss, inputs, allow_unused=True)

    return run


def objective_fn(bench: StepBench, outputs: ClipOutputs | None = None):
    """The whole objective (``L_gt`` + the reasoning + ``L_siamese``), forward and backward, on leaves."""
    obj = bench.module.objective
    out = bench.clip_outputs() if outputs is None else outputs
    target = bench.batch["target"]
    inputs = [out.features, out.logits, *(p for p in obj.parameters() if p.requires_grad)]

    def run():
        loss = obj(out, target)
        return loss, torch.autograd.grad(loss.total, inputs, allow_unused=True)

    return run


def reasoning_cost(
    benches: dict[str, StepBench], steps: list[dict], *, warmup: int, repeats: int, inner: int
) -> list[dict]:
    """SKG + SKR (+ ``L_siamese``) forward + backward time, alone, for each SiaSamRea setting, and its
    fraction of the measured step (median / median).

    One sample is the mean of ``inner`` calls: a call takes about a millisecond, short enough for one
    scheduler hiccup of a shared machine to dominate it.
    """
    step_by_name = {e["name"]: e["step_seconds"] for e in steps}
    out = []
    for name, b in benches.items():
        if b.module.objective.reasoner is None:
            continue
        outputs = b.clip_outputs()
        stats = round_robin(
            {"reasoning": reasoning_fn(b, outputs), "objective": objective_fn(b, outputs)},
            warmup=warmup, repeats=repeats, inner=inner,
        )  # fmt: skip
        step = step_by_name[name]
        out.append({
            "name": name, "task": b.setting.task, "num_clips": b.setting.num_clips,
            "reasoning_seconds": stats["reasoning"], "objective_seconds": stats["objective"],
            "step_seconds_median": step["median"],
            "fraction_of_step": stats["reasoning"]["median"] / step["median"],
            # the spread of the ratio from the quartiles of both measurements
            "fraction_range": [stats["reasoning"]["q1"] / step["q3"], stats["reasoning"]["q3"] / step["q1"]],
            "objective_fraction_of_step": stats["objective"]["median"] / step["median"],
            "target_fraction": TARGET_FRACTION,
            "meets_target": stats["reasoning"]["median"] / step["median"] <= TARGET_FRACTION,
        })  # fmt: skip
    return out
