"""Timing helpers: warm-up, repeats, round-robin interleaving, robust summaries, and the machine record.

Every benchmark number is a median over repeats with its spread (quartiles and IQR). Configurations that
are compared with each other are timed round-robin (one repeat of each in turn, the order rotated every
round), so that a slow phase of a shared machine hits all of them alike instead of biasing one.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch

TIME_KEYS = ("median", "q1", "q3", "iqr", "min", "max", "cpu_median", "cpu_iqr")


def summarize(samples: list[float], cpu_samples: list[float] | None = None) -> dict:
    """Median, quartiles, IQR, min/max and the raw samples (wall-clock seconds) of one measurement.

    ``cpu_samples`` (process CPU seconds, all threads) add ``cpu_median``/``cpu_iqr``: on a shared machine
    the wall clock includes time the process was not running; CPU time does not (but counts every thread).
    """
    if not samples:
        raise ValueError("no samples to summarize")
    a = np.asarray(samples, dtype=float)
    q1, med, q3 = (float(x) for x in np.percentile(a, [25, 50, 75]))
    out = {
        "median": med,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
        "samples": [float(x) for x in a],
    }
    if cpu_samples:
        c1, cm, c3 = (float(x) for x in np.percentile(np.asarray(cpu_samples, dtype=float), [25, 50, 75]))
        out.update(cpu_median=cm, cpu_iqr=c3 - c1)
    return out


def scale(stats: dict, factor: float) -> dict:
    """``stats`` with every time multiplied by ``factor`` (e.g. per step -> per video)."""
    out = dict(stats)
    for k in TIME_KEYS:
        if k in stats:
            out[k] = stats[k] * factor
    out["samples"] = [s * factor for s in stats["samples"]]
    return out


@contextmanager
def no_gc():
    """Collect once, then keep the garbage collector out of the timed region."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def round_robin(
    cases: dict[str, Callable[[], object]], *, warmup: int, repeats: int, inner: int = 1
) -> dict[str, dict]:
    """Time every case ``repeats`` times, interleaved; each sample is the mean of ``inner`` calls.

    Returns ``{name: summarize(samples)}`` (seconds per call).
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    with no_gc():
        for r in range(repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn = cases[name]
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(inner):
                    fn()
                samples[name].append((time.perf_counter() - t0) / inner)
                cpu[name].append((time.process_time() - c0) / inner)
    return {name: summarize(s, cpu[name]) for name, s in samples.items()}


def time_one(fn: Callable[[], object], *, warmup: int, repeats: int, inner: int = 1) -> dict:
    return round_robin({"x": fn}, warmup=warmup, repeats=repeats, inner=inner)["x"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(threads: int) -> dict:
    """What the numbers were measured on (CPU, cores, library versions, threads, load)."""
    # Imported for their versions only, here rather than at the top: `import siasamrea.perf` imports this
    # module, and should neither pay for transformers and decord (seconds; `python -m siasamrea.perf
    # --help`) nor import transformers before the CLI has set HF_HUB_OFFLINE.
    import decord  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cores_available": available_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "decord": decord.__version__,
        "numpy": np.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "threads_requested": threads,
        "cuda": torch.cuda.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "load_average_start": load_average(),
    }


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))
