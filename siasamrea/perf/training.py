"""Training-step, reasoning-cost, inference and memory benchmarks on the embedded default's tiny model.

A *step* is exactly the engine's (:meth:`siasamrea.training.trainer.Trainer._train_epoch`): ``TrainModule`` forward
(model on every clip of every video in one batch, then :class:`~siasamrea.method.losses.SiaSamReaLoss` with the
reasoner), ``zero_grad``, ``backward``, gradient clipping, AdamW step (:func:`~siasamrea.training.trainer.
build_optimizer`), scheduler step. Models and objectives come from :func:`siasamrea.training.build.
build_objective` with a :class:`~siasamrea.method.config.Config` of the variant, as a training run builds them.

The cost of siamese knowledge generation and reasoning (affinity Â, soft label Q, ``L_siamese``, forward
and backward) is measured directly, not as the difference of two step times: the reasoning is run alone on
leaf tensors of the real step's shapes (clip features ``[V, N, H]``, clip logits ``[V, N, K]``), and, as a
cross-check, inside real steps under ``torch.profiler`` (forward range + the backward nodes whose sequence
numbers were created inside it).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from siasamrea.method.config import Config
from siasamrea.method.losses import clip_probabilities, siamese_loss
from siasamrea.method.model import TINY_TEXT, TINY_VISION, ClipBertVQA, ClipOutputs, HeadSpec, ModelConfig
from siasamrea.perf.timing import round_robin, scale
from siasamrea.training.build import build_objective
from siasamrea.training.trainer import TrainModule, build_optimizer, linear_schedule

#: The embedded default's encoder: TINY_VISION with three stages of one block (16, 32, 64 channels).
BENCH_VISION = {**TINY_VISION, "hidden_sizes": [16, 32, 64], "depths": [1, 1, 1]}
TASKS = {"open_ended": "oe", "multiple_choice": "mc"}
TRAIN_CLIPS = (1, 2, 5, 9, 13)


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
    """A collated batch with the dataset's layout (``siasamrea.data.dataset.collate``), random content."""
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
        """The model's outputs on the batch, as detached leaves that require grad (the reasoning's inputs)."""
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


def default_settings(
    videos: int, clips: tuple[int, ...] = TRAIN_CLIPS, mc_clips: tuple[int, ...] = (1, 9)
) -> list[StepSetting]:
    oe = [StepSetting("open_ended", n, videos=videos) for n in clips]
    mc = [StepSetting("multiple_choice", n, videos=videos, text_len=20) for n in mc_clips]
    return oe + mc


def training_steps(settings: list[StepSetting], *, warmup: int, repeats: int) -> tuple[list[dict], dict]:
    """Step time of every setting, timed round-robin. Returns (entries, {name: StepBench})."""
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


# -- siamese knowledge generation + reasoning ------------------------------------------------------------
def reasoning_fn(bench: StepBench, outputs: ClipOutputs | None = None):
    """A closure running Â, Q and ``L_siamese`` forward and backward (to the features, logits, W1/W2),
    exactly as :class:`~siasamrea.method.losses.SiaSamReaLoss` computes them, on leaves of the step's shapes."""
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
    fraction of the measured step (median / median)."""
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
            "target_fraction": 0.01,
            "meets_target": stats["reasoning"]["median"] / step["median"] <= 0.01,
        })  # fmt: skip
    return out


class _Range:
    """Forward pre/post hooks that put a module's forward inside a ``record_function`` range."""

    def __init__(self, module: torch.nn.Module, name: str):
        self.name, self._stack = name, []
        self._handles = [
            module.register_forward_pre_hook(self._enter),
            module.register_forward_hook(self._exit),
        ]

    def _enter(self, *_):
        rf = torch.autograd.profiler.record_function(self.name)
        rf.__enter__()
        self._stack.append(rf)

    def _exit(self, *_):
        self._stack.pop().__exit__(None, None, None)

    def remove(self):
        for h in self._handles:
            h.remove()


BACKWARD_PREFIX = "autograd::engine::evaluate_function: "


def profile_step(bench: StepBench, *, steps: int = 3, top: int = 12) -> dict:
    """Real steps under ``torch.profiler``: the share of the objective and of the reasoner (forward range +
    the backward nodes created inside it, matched by autograd sequence number), and the top ops.

    Profiling inflates many small ops more than a few big ones, so these shares are upper bounds of the
    unprofiled ones; they cross-check :func:`reasoning_cost` on the real step, not replace it.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    obj = bench.module.objective
    ranges = [_Range(obj, "objective")]
    if obj.reasoner is not None:
        ranges.append(_Range(obj.reasoner, "reasoner"))
    bench.step()  # warm
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                with record_function("train_step"):
                    bench.step()
    finally:
        for r in ranges:
            r.remove()
    events = list(prof.events())
    step_us = sum(e.time_range.elapsed_us() for e in events if e.name == "train_step")
    shares = {}
    for r in ranges:
        spans = [e for e in events if e.name == r.name]
        fwd = sum(e.time_range.elapsed_us() for e in spans)
        seq = {
            e.sequence_nr
            for s in spans
            for e in events
            if e.sequence_nr >= 0
            and e.thread == s.thread
            and s.time_range.start <= e.time_range.start
            and e.time_range.end <= s.time_range.end
        }
        bwd = sum(
            e.time_range.elapsed_us()
            for e in events
            if e.name.startswith(BACKWARD_PREFIX) and e.sequence_nr in seq
        )
        shares[r.name] = {
            "forward_ms_per_step": fwd / 1e3 / steps,
            "backward_ms_per_step": bwd / 1e3 / steps,
            "fraction_of_step": (fwd + bwd) / step_us if step_us else None,
        }
    total_self = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1.0
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    top_ops = [
        {
            "op": e.key,
            "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
            "calls_per_step": e.count / steps,
            "self_share": e.self_cpu_time_total / total_self,
        }
        for e in ops
        if e.key != "train_step"
    ][:top]
    return {"name": bench.setting.name, "steps": steps, "step_ms_profiled": step_us / 1e3 / steps,
            "ranges": shares, "top_ops": top_ops}  # fmt: skip


# -- inference -----------------------------------------------------------------------------------------
def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _safetensors_numel(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            total += math.prod(f.get_slice(k).get_shape())  # a scalar's shape [] -> 1 element
    return total


def _flops(fn) -> int | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - old torch
        return None
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


def inference(
    setting: StepSetting, *, warmup: int, repeats: int, batch_sizes=(1, 32), inner: int = 1,
    directory: str | Path | None = None,
) -> dict:  # fmt: skip
    """Parameters, FLOPs and anchor-clip ``predict`` latency of the saved baseline and SiaSamRea models."""
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


# -- memory --------------------------------------------------------------------------------------------
def _maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20  # KiB on Linux, bytes on macOS


def _proc_status_mb(key: str) -> float | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident of this process image) from /proc, in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def saved_activation_bytes(bench: StepBench) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one training forward (parameters
    excluded): the activation memory of a step, independent of the allocator."""
    params = {p.untyped_storage().data_ptr() for p in bench.module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = bench.module(bench.batch, bench.setting.head)
    out["loss"].backward()
    bench.optimizer.zero_grad(set_to_none=True)
    return sum(seen.values())


def memory_child(spec: dict) -> dict:
    """Run in a fresh process: peak RSS before/after ``steps`` training steps of one setting."""
    torch.set_num_threads(int(spec.get("threads", 1)))
    setting = StepSetting(**spec["setting"])
    device = torch.device(spec.get("device", "cpu"))
    bench = StepBench(setting)
    if device.type == "cuda":  # pragma: no cover - no GPU here
        bench.module.to(device)
        bench.batch = {k: v.to(device) for k, v in bench.batch.items()}
        torch.cuda.reset_peak_memory_stats(device)
    # ru_maxrss is inherited from the parent through fork/exec on Linux (it starts at the parent's peak),
    # so the step's own peak comes from VmHWM, reset just before the steps; ru_maxrss is kept for reference.
    maxrss_before = _maxrss_mb()
    reset = _reset_peak_rss()
    rss_before = _proc_status_mb("VmRSS")
    for _ in range(int(spec.get("steps", 2))):
        bench.step()
    peak = _proc_status_mb("VmHWM") if reset else None
    maxrss_after = _maxrss_mb()
    if peak is None or rss_before is None:  # no /proc: fall back to ru_maxrss (an underestimate)
        rss_before, peak = maxrss_before, maxrss_after
    res = {
        "num_clips": setting.num_clips, "task": setting.task, "videos_per_step": setting.videos,
        "rss_before_mb": rss_before, "peak_rss_mb": peak, "step_peak_increase_mb": peak - rss_before,
        "ru_maxrss_before_mb": maxrss_before, "ru_maxrss_after_mb": maxrss_after, "peak_from_vmhwm": reset,
        "saved_activations_mb": saved_activation_bytes(bench) / 2**20,
        "batch_frames_mb": bench.batch["frames"].numel() / 2**20,
    }  # fmt: skip
    if device.type == "cuda":  # pragma: no cover
        res["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return res


def memory_vs_clips(
    settings: list[StepSetting], *, threads: int, steps: int = 2, timeout: float = 300, parallel: int = 2
) -> list[dict]:
    """One fresh subprocess per setting (a process's peak RSS only grows, so each N needs its own).

    Up to ``parallel`` children run at once: they measure their own memory, not time, so running side by
    side does not change what they report and halves the wait (each child spends seconds importing torch).
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    results: dict[int, dict] = {}
    pending = list(enumerate(settings))
    running: list[tuple[int, StepSetting, subprocess.Popen]] = []
    try:
        _drain(pending, running, results, env, threads, steps, timeout, parallel)
    finally:
        for _, _, proc in running:  # only after an error: stop the children we started
            proc.kill()
            proc.communicate()
    return [results[i] for i in range(len(settings))]


def _drain(pending, running, results, env, threads, steps, timeout, parallel) -> None:
    while pending or running:
        while pending and len(running) < max(1, parallel):
            i, s = pending.pop(0)
            spec = {"setting": asdict(s), "threads": threads, "steps": steps}
            cmd = [sys.executable, "-m", "siasamrea.perf.training", json.dumps(spec)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            running.append((i, s, proc))
        i, s, proc = running.pop(0)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"memory subprocess for {s.name} took more than {timeout} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"memory subprocess for {s.name} failed:\n{err[-2000:]}")
        results[i] = json.loads(out.strip().splitlines()[-1])


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


if __name__ == "__main__":
    print(json.dumps(memory_child(json.loads(sys.argv[1]))))
