"""The benchmark's report: JSON-ready values, the JSON file, and the short table the CLI prints.

:func:`~siasamrea.perf.suite.run_benchmark` returns the report as a dict (``jsonable``: it equals its own
JSON round trip); :func:`write_report` writes it without this machine's directories; :func:`format_table`
is the plain-text summary of ``python -m siasamrea.perf``. The figure and the Markdown summary of the
``bench`` stage are in :mod:`siasamrea.perf.plot`.
"""

from __future__ import annotations

import json
from pathlib import Path


def jsonable(obj):
    """Tuples -> lists, numpy scalars -> Python, Paths -> str: the report equals its JSON round trip."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


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
    """Write the report as indented JSON, with file names for paths (:func:`names_only`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(names_only(jsonable(report)), indent=1))


# -- the short table ------------------------------------------------------------------------------------
def _ms(stats: dict) -> str:
    return f"{stats['median'] * 1e3:8.2f} ms (IQR {stats['iqr'] * 1e3:.2f})"


def format_table(r: dict) -> str:
    """The report as the plain-text table ``python -m siasamrea.perf`` prints: one block per section present,
    medians with their IQR, and a warning when the machine was busy while it ran."""
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
