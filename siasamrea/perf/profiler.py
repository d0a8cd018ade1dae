"""The reasoning's share of real training steps, under ``torch.profiler``: the cross-check of
:func:`siasamrea.perf.step_timing.reasoning_cost`, which times the reasoning alone.

A forward range is easy to mark (``record_function`` around a module's forward); its backward is not, since
autograd runs it later, from ``loss.backward()``. Every autograd node records the sequence number of the
forward op that created it, so the reasoning's backward is the backward nodes whose sequence numbers were
created inside its forward range.
"""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from siasamrea.perf.step import StepBench

#: The profiler's name prefix of the event of one backward node
BACKWARD_PREFIX = "autograd::engine::evaluate_function: "


class _Range:
    """Forward pre/post hooks that put a module's forward inside a ``record_function`` range."""

    def __init__(self, module: torch.nn.Module, name: str):
        self.name, self._stack = name, []
        self._handles = [
            module.register_forward_pre_hook(self._enter),
            module.register_forward_hook(self._exit),
        ]

    def _enter(self, *_):
        rf = record_function(self.name)
        rf.__enter__()
        self._stack.append(rf)

    def _exit(self, *_):
        self._stack.pop().__exit__(None, None, None)

    def remove(self):
        for h in self._handles:
            h.remove()


def profile_step(bench: StepBench, *, steps: int = 3, top: int = 12) -> dict:
    """Real steps under ``torch.profiler``: the share of the objective and of the reasoner (forward range +
    the backward nodes created inside it, matched by autograd sequence number), and the top ops.

    Profiling inflates many small ops more than a few big ones, so these shares are upper bounds of the
    unprofiled ones; they cross-check :func:`~siasamrea.perf.step_timing.reasoning_cost` on the real step,
    not replace it.
    """
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
        # sequence numbers of the ops run inside the range (same thread, nested in time)
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
