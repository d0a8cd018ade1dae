"""Runs the benchmark: its settings (full or ``--quick``), and the sections in order, into one report.

Each section is measured by its own module (:mod:`~siasamrea.perf.step_timing`,
:mod:`~siasamrea.perf.profiler`, :mod:`~siasamrea.perf.inference`, :mod:`~siasamrea.perf.loading`,
:mod:`~siasamrea.perf.memory`, :mod:`~siasamrea.perf.explore`); :func:`run_benchmark` sets the torch threads,
runs the sections asked for, records the machine, the settings and each section's duration and load, and
returns the report (see :mod:`siasamrea.perf` for its sections, :mod:`siasamrea.perf.report` to write it).
"""

from __future__ import annotations

import datetime as _dt
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from siasamrea.perf.report import jsonable
from siasamrea.perf.timing import available_cores, load_average, machine_info

SCHEMA_VERSION = 1


def profile(quick: bool) -> dict:
    """Sizes and repeats of a full or ``--quick`` run (``run_benchmark(overrides=...)`` changes them)."""
    full = dict(
        videos=8, clips=(1, 2, 5, 9, 13), mc_clips=(1, 9), warmup=3, repeats=15,
        reasoning_inner=20, reasoning_repeats=15, profile_steps=3,
        inference_repeats=20, inference_batches=(1, 32),
        real_videos=("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4"), reencode_real=True,
        sizes=("native", "small"), loading_repeats=7,
        loader_videos=8, loader_batches=16, loader_workers=(0, 1), msvd_train=16,
        memory_clips=(1, 2, 5, 9, 13), memory_videos=8,
        explore=True,
    )  # fmt: skip
    if not quick:
        return full
    # under a minute on 2 cores: fewer repeats, 2 videos per step, no bigbuckbunny (1280x720), no re-encodes
    return {
        **full,
        **dict(
            videos=2, warmup=1, repeats=3, reasoning_inner=5, reasoning_repeats=3, profile_steps=1,
            inference_repeats=5, inference_batches=(1, 8),
            real_videos=("carphone_pristine.mp4", "bikes.mp4"), reencode_real=False, loading_repeats=3,
            loader_videos=2, loader_batches=4, msvd_train=6, memory_clips=(1, 13), memory_videos=2,
            explore=False,
        ),
    }  # fmt: skip


class _Sections:
    """Logs each section, and records its duration and the machine's load average when it started (the
    numbers of a section measured while other processes ran are not comparable with a quiet run's)."""

    def __init__(self, log):
        self.log, self.info = log, {}

    @contextmanager
    def __call__(self, name: str, message: str):
        self.log(message)
        self.info[name] = {"load_average_start": load_average()}
        t0 = time.perf_counter()
        yield
        self.info[name]["seconds"] = time.perf_counter() - t0


def run_benchmark(
    *,
    quick: bool = False,
    threads: int | None = None,
    workdir: str | Path | None = None,
    compile: bool = False,
    sections: tuple[str, ...] | None = None,
    overrides: dict | None = None,
    log=print,
) -> dict:
    """Run the benchmark and return the report (a JSON-ready dict).

    ``sections`` limits what runs; ``overrides`` replaces entries of :func:`profile` (tests use tiny
    sizes); ``workdir`` keeps the generated videos, caches and saved inference models.
    """
    p = {**profile(quick), **(overrides or {})}
    unknown = set(overrides or {}) - set(profile(quick))
    if unknown:
        raise ValueError(f"unknown benchmark settings {sorted(unknown)}; known: {sorted(profile(quick))}")
    threads = threads or available_cores()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(p, threads, quick, workdir, compile, sections, log)
    finally:
        torch.set_num_threads(previous)


def _run(p: dict, threads: int, quick: bool, workdir, compile: bool, sections, log) -> dict:
    # Imported here, not at the top: they load the model (transformers), decord and the data pipeline,
    # seconds that `import siasamrea.perf` (and so `python -m siasamrea.perf --help`) should not cost; and
    # the CLI sets HF_HUB_OFFLINE and friends before transformers is first imported. (`import a.b as b`, not
    # `from siasamrea.perf import b`: this module must not import its own package, which imports it.)
    import siasamrea.perf.explore as explore  # noqa: PLC0415
    import siasamrea.perf.inference as inference  # noqa: PLC0415
    import siasamrea.perf.loading as loading  # noqa: PLC0415
    import siasamrea.perf.memory as memory  # noqa: PLC0415
    import siasamrea.perf.profiler as profiler  # noqa: PLC0415
    import siasamrea.perf.step_timing as step_timing  # noqa: PLC0415
    from siasamrea.perf.step import StepSetting  # noqa: PLC0415

    want = lambda name: sections is None or name in sections  # noqa: E731
    section = _Sections(log or (lambda *_: None))
    t_start = time.perf_counter()
    report: dict = {
        "schema": SCHEMA_VERSION,
        "quick": quick,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(threads),
        "settings": dict(p),
    }
    with tempfile.TemporaryDirectory(prefix="siasamrea-bench-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        oe9 = StepSetting("open_ended", 9 if 9 in p["clips"] else max(p["clips"]), videos=p["videos"])
        if want("training") or want("reasoning"):
            with section("training", "training steps ..."):
                settings = step_timing.default_settings(p["videos"], p["clips"], p["mc_clips"])
                steps, benches = step_timing.training_steps(
                    settings, warmup=p["warmup"], repeats=p["repeats"]
                )
                report["training"] = steps
            if want("reasoning"):
                with section("reasoning", "reasoning cost ..."):
                    report["reasoning"] = step_timing.reasoning_cost(
                        benches, steps, warmup=2, repeats=p["reasoning_repeats"], inner=p["reasoning_inner"]
                    )
                    if oe9.num_clips > 1:
                        report["reasoning_profile"] = profiler.profile_step(
                            benches[oe9.name], steps=p["profile_steps"]
                        )
            del benches
        if want("inference"):
            with section("inference", "inference ..."):
                report["inference"] = inference.inference_cost(
                    StepSetting("open_ended", 1, videos=p["videos"]), warmup=3,
                    repeats=p["inference_repeats"], batch_sizes=p["inference_batches"],
                    directory=work / "inference",
                )  # fmt: skip
        if want("loading") or want("loader"):
            prep = {}
            with section("data_preparation", "synthetic data and video files ..."):
                synth = loading.generate_synthetic(work / "synthetic", msvd_train=p["msvd_train"])
                videos = loading.prepare_videos(
                    work, synth, real=p["real_videos"], reencode_real=p["reencode_real"]
                )
            if want("loading"):
                with section("loading", "video loading ..."):
                    prep["cache_build"] = loading.build_cache([v.path for v in videos], work / "cache_videos")
                    report["loading"] = loading.video_loading(
                        videos,
                        work / "cache_videos",
                        warmup=1,
                        repeats=p["loading_repeats"],
                        sizes=p["sizes"],
                    )
            if want("loader"):
                with section("loader", "data loader vs training step ..."):
                    msvd = sorted((synth / "msvd-qa" / "videos").glob("*.mp4"))
                    prep["cache_build_msvd"] = loading.build_cache(msvd, work / "cache_msvd")
                    report["loader"] = loading.loader_vs_step(
                        synth, work / "cache_msvd", videos=p["loader_videos"], batches=p["loader_batches"],
                        workers=p["loader_workers"], warmup=p["warmup"], repeats=p["repeats"],
                    )  # fmt: skip
            report["data_preparation"] = prep
        if want("memory"):
            with section("memory", "memory vs N (one subprocess per N) ..."):
                mem = [StepSetting("open_ended", n, videos=p["memory_videos"]) for n in p["memory_clips"]]
                report["memory"] = memory.memory_vs_clips(mem, threads=threads, parallel=available_cores())
        if p["explore"] and want("explore"):
            with section("explore", "explore ..."):
                kw = dict(warmup=2, repeats=p["repeats"])
                report["explore"] = ex = {
                    "vision_memory_format": explore.vision_memory_format(oe9, **kw),
                    "pixel_normalisation": explore.pixel_normalisation(oe9, **kw),
                    "optimizer_step": explore.optimizer_step(oe9, **kw),
                    "reasoning_reformulated": explore.reasoning_reformulated(oe9, **kw),
                    "threads": step_timing.time_steps_at_threads(oe9, sorted({1, threads}), **kw),
                }
            if compile:
                with section("compile", "torch.compile (slow: minutes of compilation the first time) ..."):
                    ex["torch_compile"] = explore.compile_step(oe9, **kw)
    report["machine"]["load_average_end"] = load_average()
    report["sections"] = section.info
    report["seconds"] = time.perf_counter() - t_start
    return jsonable(report)
