"""Measured what-ifs for the things that might be slow (full run only; ``torch.compile`` only on request).

* memory format of the vision encoder's input and weights (the model feeds channels_last input to
  contiguous weights);
* the pixel normalisation of ``ClipBertVQA.encode_clips`` (uint8 -> float, /255, -mean, /std: four passes)
  against one fused ``addcmul``;
* AdamW's implementation: on CPU, torch picks the per-parameter loop (``foreach=False``) by default;
  ``foreach=True`` and ``fused=True`` do the same update in a few kernels;
* intra-op threads of a training step;
* ``torch.compile`` of the training module (compile time reported separately from the steady state).
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from siasamrea.method.model import ClipBertVQA
from siasamrea.perf.step import StepBench, StepSetting, make_batch, model_config
from siasamrea.perf.step_timing import reasoning_fn
from siasamrea.perf.timing import round_robin


def vision_memory_format(setting: StepSetting, *, warmup: int, repeats: int) -> dict:
    """Forward + backward of the ResNet on a step's frames ``[V*N*T, 3, H, W]`` in three layouts."""
    torch.manual_seed(0)
    vision = ClipBertVQA(model_config(setting)).vision.train()
    vision_cl = copy.deepcopy(vision).to(memory_format=torch.channels_last)
    s = setting
    x = torch.randn(s.videos * s.num_clips * s.frames_per_clip, 3, s.frame_size, s.frame_size)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run(module, inp):
        module.zero_grad(set_to_none=True)
        module(inp).last_hidden_state.sum().backward()

    cases = {
        "contiguous": lambda: run(vision, x),
        "channels_last_input (model.py today)": lambda: run(vision, x_cl),
        "channels_last_input_and_weights": lambda: run(vision_cl, x_cl),
    }
    stats = round_robin(cases, warmup=warmup, repeats=repeats)
    ref = stats["channels_last_input (model.py today)"]["median"]
    return {
        "frames": list(x.shape),
        "seconds": stats,
        "relative_to_current": {k: v["median"] / ref for k, v in stats.items()},
    }


def compile_step(setting: StepSetting, *, warmup: int, repeats: int) -> dict:
    """Eager vs ``torch.compile``-d training module (same weights, same batch), interleaved."""
    eager = StepBench(setting)
    compiled = StepBench(setting)
    compiled.module.load_state_dict(eager.module.state_dict())
    module = compiled.module
    compiled.module = torch.compile(module)
    try:
        t0 = time.perf_counter()
        compiled.step()
        compile_seconds = time.perf_counter() - t0
        stats = round_robin({"eager": eager.step, "compiled": compiled.step}, warmup=warmup, repeats=repeats)
    except Exception as exc:  # inductor needs a C++ compiler; report instead of failing the run
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    return {
        "name": setting.name,
        "first_step_seconds (compile)": compile_seconds,
        "seconds": stats,
        "speedup": stats["eager"]["median"] / stats["compiled"]["median"],
    }


def pixel_normalisation(setting: StepSetting, *, warmup: int, repeats: int) -> dict:
    """``encode_clips``' preprocessing as written in model.py today against a fused ``addcmul`` (same output
    up to float rounding, same channels_last layout)."""
    model = ClipBertVQA(model_config(setting))
    frames = make_batch(setting)["frames"]
    v, n, t, h, w, _ = frames.shape
    mean, std = model.pixel_mean, model.pixel_std
    scale, shift = 1.0 / (255.0 * std), -mean / std

    def today():  # siasamrea/method/model.py, ClipBertVQA.encode_clips
        x = frames.reshape(v * n * t, h, w, 3).permute(0, 3, 1, 2)
        x = x.float().div_(255.0)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    def fused():
        x = frames.reshape(v * n * t, h, w, 3).permute(0, 3, 1, 2).float()
        return torch.addcmul(shift, x, scale).contiguous(memory_format=torch.channels_last)

    a, b = today(), fused()
    stats = round_robin({"today": today, "addcmul": fused}, warmup=warmup, repeats=repeats)
    return {
        "frames": [v * n * t, 3, h, w],
        "seconds": stats,
        "max_abs_difference": float((a - b).abs().max()),
        "same_layout": a.stride() == b.stride(),
        "saving_seconds": stats["today"]["median"] - stats["addcmul"]["median"],
    }


def optimizer_step(setting: StepSetting, *, warmup: int, repeats: int) -> dict:
    """AdamW's step on the model's real gradients: the per-parameter loop (torch's CPU default, what
    ``build_optimizer`` gets) vs ``foreach`` vs ``fused``; and how far their updates differ."""
    bench = StepBench(setting)
    bench.step()  # gradients of a real step
    params = [p for p in bench.module.parameters() if p.grad is not None]
    variants = {"foreach=False (default on CPU)": {"foreach": False}, "foreach=True": {"foreach": True},
                "fused=True": {"fused": True}}  # fmt: skip
    copies, optims, errors = {}, {}, {}
    for name, kw in variants.items():
        ps = [p.detach().clone().requires_grad_(True) for p in params]
        for p, src in zip(ps, params, strict=True):
            p.grad = src.grad.clone()
        try:
            optims[name] = torch.optim.AdamW(ps, lr=5e-4, betas=(0.9, 0.98), weight_decay=0.01, **kw)
        except (RuntimeError, ValueError) as exc:
            errors[name] = str(exc)[:200]
            continue
        copies[name] = ps
    stats = round_robin({k: o.step for k, o in optims.items()}, warmup=warmup, repeats=repeats)
    ref = next(iter(copies.values()))
    diff = {
        k: max(float((a - b).detach().abs().max()) for a, b in zip(ps, ref, strict=True))
        for k, ps in copies.items()
    }
    return {"parameters": len(params), "seconds": stats, "max_abs_difference_after_steps": diff,
            "errors": errors}  # fmt: skip


def reasoning_reformulated(setting: StepSetting, *, warmup: int, repeats: int, inner: int = 20) -> dict:
    """The reasoning of the default configuration as reasoning.py computes it (``Â P`` for every clip, then
    ``W1`` and ``W2`` separately) against the same Eq. 5 regrouped, ``Q = (ω W1 Â + (1 − ω) W2) P``: one
    matrix-vector product per video instead of N, and fewer small ops. Same loss and gradients (reported)."""
    bench = StepBench(setting)
    obj = bench.module.objective
    r = obj.reasoner
    default = (
        r is not None
        and (r.affinity_mode, r.projection, r.affinity_temperature) == ("siamese", None, 1.0)
        and (obj.temperature, obj.stop_gradient, obj.weight_objective) == (1.0, "none", "siamese")
        and isinstance(r.w1_logits, torch.nn.Parameter)
        and isinstance(r.w2_logits, torch.nn.Parameter)
    )
    if not default:
        return {"skipped": "not the default reasoning configuration"}
    out = bench.clip_outputs()
    n = setting.num_clips
    eye = torch.eye(n, dtype=torch.bool)
    inputs = [out.features, out.logits, r.w1_logits, r.w2_logits]

    def regrouped():
        probs = out.logits.softmax(-1)
        z = F.normalize(out.features, dim=-1)
        a = (z @ z.transpose(-1, -2)).masked_fill(eye, float("-inf")).softmax(-1)
        w = torch.stack([r.w1_logits, r.w2_logits]).softmax(-1)
        coef = r.omega * (w[0] @ a) + (1.0 - r.omega) * w[1]  # [V, N]
        q = (coef.unsqueeze(-2) @ probs).squeeze(-2)
        loss = obj.alpha * -(q * out.logits[:, 0].log_softmax(-1)).sum(-1).mean()
        return loss, torch.autograd.grad(loss, inputs)

    today = reasoning_fn(bench, out)
    (l1, g1), (l2, g2) = today(), regrouped()
    stats = round_robin({"today": today, "regrouped": regrouped}, warmup=warmup, repeats=repeats, inner=inner)
    return {
        "name": setting.name,
        "seconds": stats,
        "loss_difference": float((l1 - l2).detach().abs()),
        "max_gradient_difference": max(float((a - b).abs().max()) for a, b in zip(g1, g2, strict=True)),
    }
