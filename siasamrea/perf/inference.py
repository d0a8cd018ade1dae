"""Inference cost of the saved models: SiaSamRea must cost the same as the baseline at test time.

Siamese sampling and reasoning exist in training only: the engine saves the inference model
(``ClipBertVQA.save_pretrained``) without W1/W2, which go to ``objective.safetensors``, and predicts from the
anchor clip. So both variants are trained for a step, saved and loaded back as a run does, and compared on
parameters (of the module and of the saved file), FLOPs and anchor-clip ``predict`` latency.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from torch.utils.flop_counter import FlopCounterMode

from siasamrea.method.model import ClipBertVQA
from siasamrea.perf.step import StepBench, StepSetting, make_batch
from siasamrea.perf.timing import round_robin, scale


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _safetensors_numel(path: Path) -> int:
    """Elements of every tensor of a safetensors file, read from its header (no tensor is loaded)."""
    total = 0
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            total += math.prod(f.get_slice(k).get_shape())  # a scalar's shape [] -> 1 element
    return total


def _flops(fn) -> int:
    """FLOPs of one call of ``fn``, counted by torch per op (matmuls and convolutions)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def inference_models(
    setting: StepSetting, directory: Path, clips: tuple[int, int] = (1, 9), train_steps: int = 1
) -> dict:
    """Train the baseline and SiaSamRea for ``train_steps`` and save each as the engine does
    (``model.save_pretrained``: ClipBertVQA only; W1/W2 go to objective.safetensors); load them back.

    Returns ``{variant: {"model", "training_params", "objective_params", "dir"}}``.
    """
    out = {}
    for n in clips:
        s = StepSetting(**{**asdict(setting), "num_clips": n})
        b = StepBench(s)
        for _ in range(train_steps):
            b.step()
        d = Path(directory) / s.variant
        b.model.save_pretrained(d)
        model = ClipBertVQA.from_pretrained(d).eval()
        out[s.variant] = {
            "model": model, "dir": d, "num_clips_trained": n,
            "training_params": count_parameters(b.module),
            "objective_params": count_parameters(b.module.objective),
        }  # fmt: skip
    return out


def inference_cost(
    setting: StepSetting, *, warmup: int, repeats: int, batch_sizes=(1, 32), inner: int = 1,
    directory: str | Path | None = None,
) -> dict:  # fmt: skip
    """Parameters, FLOPs and anchor-clip ``predict`` latency of the saved baseline and SiaSamRea models.

    Each batch size ``bs`` calls ``predict`` on frames ``[bs, T, S, S, 3]`` (the anchor clip of a
    ``[bs, 1, T, S, S, 3]`` batch), which returns logits ``[bs, K]``. ``directory`` keeps the saved models
    (default: a temporary directory).
    """
    with tempfile.TemporaryDirectory(prefix="siasamrea-bench-") as tmp:
        models = inference_models(setting, Path(directory or tmp))
        res = {"variants": {}, "latency": {}}
        for variant, m in models.items():
            files = sorted(p.name for p in m["dir"].iterdir())
            res["variants"][variant] = {
                "num_clips_trained": m["num_clips_trained"],
                "inference_params": count_parameters(m["model"]),
                "saved_tensor_elements": _safetensors_numel(m["dir"] / "model.safetensors"),
                "saved_bytes": (m["dir"] / "model.safetensors").stat().st_size,
                "saved_files": files,
                "training_params": m["training_params"],
                "objective_params": m["objective_params"],
            }
        for bs in batch_sizes:
            s = StepSetting(**{**asdict(setting), "num_clips": 1, "videos": bs})
            b = make_batch(s, seed=1)
            args = (b["frames"][:, 0], b["input_ids"], b["attention_mask"], s.head, b["frame_mask"][:, 0])

            def call(model=None, args=args):
                with torch.inference_mode():
                    return model.predict(*args)

            cases = {v: (lambda model=m["model"]: call(model)) for v, m in models.items()}
            stats = round_robin(cases, warmup=warmup, repeats=repeats, inner=inner)
            flops = {v: _flops(lambda model=m["model"]: call(model)) for v, m in models.items()}
            outs = {v: call(m["model"]) for v, m in models.items()}
            res["latency"][str(bs)] = {
                v: {"seconds": stats[v], "seconds_per_video": scale(stats[v], 1.0 / bs), "flops": flops[v],
                    "output_shape": list(outs[v].shape)}
                for v in models
            }  # fmt: skip
    v = res["variants"]
    res["equal_params"] = v["baseline"]["inference_params"] == v["siasamrea"]["inference_params"]
    res["equal_flops"] = all(len({e["flops"] for e in lat.values()}) == 1 for lat in res["latency"].values())
    res["latency_ratio"] = {
        bs: lat["siasamrea"]["seconds"]["median"] / lat["baseline"]["seconds"]["median"]
        for bs, lat in res["latency"].items()
    }
    return res
