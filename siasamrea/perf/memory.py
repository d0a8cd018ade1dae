"""Peak memory of a training step against N, and the bytes autograd saves for backward.

A process's peak resident memory only grows, so each N is measured in a fresh subprocess
(``python -m siasamrea.perf.memory SPEC``, which prints one JSON line): it builds the step, resets the
kernel's peak-RSS mark, runs a few steps and reads the new peak. Beside it, the bytes of the tensors
autograd saves for backward measure the activation memory independently of the allocator.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict

import torch

from siasamrea.perf.step import StepBench, StepSetting


# -- reading this process's memory -----------------------------------------------------------------------
def _maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20  # KiB on Linux, bytes on macOS


def proc_status_mb(key: str) -> float | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident of this process image) from /proc, in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
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
    seen: dict[int, int] = {}  # by storage: views of one tensor are saved once

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


# -- one N, in a fresh process ---------------------------------------------------------------------------
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
    reset = reset_peak_rss()
    rss_before = proc_status_mb("VmRSS")
    for _ in range(int(spec.get("steps", 2))):
        bench.step()
    peak = proc_status_mb("VmHWM") if reset else None
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


# -- every N, one subprocess each ------------------------------------------------------------------------
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
    """Start children up to ``parallel``, collect the oldest, repeat until none is pending or running."""
    while pending or running:
        while pending and len(running) < max(1, parallel):
            i, s = pending.pop(0)
            spec = {"setting": asdict(s), "threads": threads, "steps": steps}
            cmd = [sys.executable, "-m", "siasamrea.perf.memory", json.dumps(spec)]
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


if __name__ == "__main__":
    print(json.dumps(memory_child(json.loads(sys.argv[1]))))
