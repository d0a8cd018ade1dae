"""Figure 1 (dense vs sparse vs siamese sampling) and Figure 4 (anchor vs siamese clips on one video).

Both draw real decoded frames (:func:`siasamrea.video.read_frames`) of the data the runs used and mark
the frames where the synthetic ground truth says the answer is visible: green = ``core`` (fully visible),
orange = ``faint`` (partly). On real data there is no ground truth and nothing is highlighted.

* :func:`figure1`: one evaluation question's video; dense sampling (every frame, Fig. 1a), ClipBERT's sparse
  clip (Fig. 1b: our baseline's sampler, which is the anchor rule) and siamese sampling (Fig. 1c: the anchor
  and its N − 1 siamese clips, drawn with the evaluation generator of that question). The question picked is
  the first whose anchor misses the evidence while a siamese clip holds it (the situation the paper's
  Figure 4 describes); :class:`Pick` says which and why.
* :func:`figure4`: one training video of a SiaSamRea run's ``analysis.json``: every clip's frames, the
  affinity matrix Â (Eq. 2), the clips' predictions P for the top answers and the soft label Q (Eq. 5)
  beside the ground truth. :func:`draw_example` is shared with the interactive explorer.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import ScalarFormatter

from siasamrea.analysis.mechanism_data import evidence_datasets, reference_clips
from siasamrea.analysis.results import headline_split, variant_settings
from siasamrea.analysis.tables import data_source
from siasamrea.data.dataset import ClipSpec
from siasamrea.data.registry import read_split
from siasamrea.method.sampling import dense_frames
from siasamrea.pipeline.stages import finetune_dir
from siasamrea.training import evidence as ev
from siasamrea.video import count_frames, read_frames

CORE_COLOR, FAINT_COLOR, CLIP_COLOR = "#2ca02c", "#ff9f1c", "#1f77b4"
SYNTHETIC_NOTE = "synthetic benchmark (embedded generator), not the paper's data"


@dataclass
class Pick:
    """Which example a figure shows and why."""

    dataset: str
    video_id: str
    index: int
    reason: str
    video_path: str = ""

    def markdown(self, title: str, params: dict | None = None) -> str:
        """One paragraph on the pick; with ``params``, a second line naming the data (synthetic or real)."""
        text = f"**{title}**: `{self.dataset}` video `{self.video_id}` (item {self.index}). {self.reason}\n"
        if params is not None:
            text += "\n" + data_source(params, [self.dataset]) + "\n"
        return text


# -- drawing helpers --------------------------------------------------------------------------------------
def _shade(ax, e: ev.Evidence | None) -> None:
    """Evidence ranges as vertical bands on a timeline axis."""
    if e is None:
        return
    for a, b in e.faint:
        ax.axvspan(a - 0.5, b + 0.5, color=FAINT_COLOR, alpha=0.25, lw=0)
    for a, b in e.core:
        ax.axvspan(a - 0.5, b + 0.5, color=CORE_COLOR, alpha=0.35, lw=0)


def _frame_color(frame: int, e: ev.Evidence | None) -> str | None:
    if e is None:
        return None
    if ev.frames_hit([frame], e.core)[0]:
        return CORE_COLOR
    if ev.frames_hit([frame], e.faint)[0]:
        return FAINT_COLOR
    return None


def _thumb(ax, img: np.ndarray, frame: int, e: ev.Evidence | None, label: bool = True) -> None:
    ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    color = _frame_color(frame, e)
    for s in ax.spines.values():
        s.set_edgecolor(color or "0.8")
        s.set_linewidth(3.5 if color else 0.8)
    if label:
        ax.set_title(f"f{frame}", fontsize=7, pad=2, color=color or "black")


def decode(path: str | Path, frames) -> np.ndarray:
    """``uint8 [T, H, W, 3]`` of the given frame indices (repeats allowed)."""
    return read_frames(path, [int(f) for f in frames]).numpy()


# -- Figure 1 ---------------------------------------------------------------------------------------------
def _records(params: dict, dataset: str, split: str) -> list:
    d = params["data"]["datasets"][dataset]
    return read_split(d.get("format", dataset), d["root"], split, **(d.get("reader") or {})).records


def pick_figure1(params: dict, dataset: str | None = None, eval_seed: int = 12345, limit: int = 400) -> tuple:
    """The question Figure 1 shows: ``(Pick, Evidence | None, clips [N, B], records)``.

    The first evaluation question (in file order, at most ``limit``) whose anchor misses the core evidence
    while its siamese union holds it; else the first whose anchor misses it; else question 0.
    """
    datasets = evidence_datasets(params) or list((params.get("finetune") or {}).get("datasets") or [])
    dataset = dataset or datasets[0]
    split = headline_split(params, dataset)
    recs = _records(params, dataset, split)
    gt_path = params["data"]["datasets"][dataset].get("evidence")
    gt = ev.load_evidence(gt_path) if gt_path and Path(gt_path).is_file() else {}
    spec = _siamese_spec(params, dataset)
    fallback = None
    for i, r in enumerate(recs[:limit]):
        e = ev.lookup(gt, r.video_id)
        if e is None:
            continue
        clips = spec.indices(e.num_frames, ev.eval_generator(eval_seed, i)).numpy()
        has = ev.clips_containing(clips, e, "core")
        if not has[0] and has[1:].any():
            why = (
                f"Picked as the first {split} question whose anchor clip misses every frame where the answer "
                f"is fully visible while {int(has[1:].sum())} of its {len(has) - 1} siamese clips contain "
                f"such a frame (question: “{r.question}”, answer: {r.answer})."
            )
            return Pick(dataset, r.video_id, i, why, str(r.video_path)), e, clips, recs
        if fallback is None and not has[0]:
            fallback = (i, r, e, clips)
    if fallback is not None:
        i, r, e, clips = fallback
        why = f"No {split} question has evidence only in the siamese clips; first whose anchor misses it."
        return Pick(dataset, r.video_id, i, why, str(r.video_path)), e, clips, recs
    r = recs[0]
    e = ev.lookup(gt, r.video_id)
    n = e.num_frames if e else _count(r.video_path)
    clips = spec.indices(n, ev.eval_generator(eval_seed, 0)).numpy()
    why = "No ground-truth evidence to choose by" if e is None else "Every anchor holds the evidence"
    return Pick(dataset, r.video_id, 0, f"{why}: the first question.", str(r.video_path)), e, clips, recs


def _count(path) -> int:
    return count_frames(path)


def _siamese_spec(params: dict, dataset: str) -> ClipSpec:
    m = variant_settings(params, "finetune", dataset, "siasamrea")["method"]
    n = reference_clips(params, dataset)
    return ClipSpec(
        "siamese",
        n,
        m.get("frames_per_clip", 4),
        reserve_clips=max(m.get("reserve_clips", 13), n),
        offsets=m.get("offsets", "after"),
    )


def figure1(params: dict, dataset: str | None = None, eval_seed: int = 12345):
    """Dense vs sparse vs siamese sampling on one synthetic video. Returns ``(fig, Pick)``."""
    pick, e, clips, _ = pick_figure1(params, dataset, eval_seed)
    n_frames = e.num_frames if e else _count(pick.video_path)
    n_clips, b = clips.shape
    fig = plt.figure(figsize=(13, 8.6))
    outer = fig.add_gridspec(4, 1, height_ratios=[2.6, 1, 1, 1], hspace=0.75)

    ax = fig.add_subplot(outer[0])
    _shade(ax, e)
    dense = dense_frames(n_frames)[0].numpy()
    ax.scatter(dense, np.full_like(dense, n_clips + 1), marker="|", s=90, color="0.45")
    ax.scatter(clips[0], np.full(b, n_clips), marker="o", s=30, color="0.2")
    for k in range(n_clips):
        has = ev.clip_contains(clips[k], e, "core") if e else False
        ax.scatter(
            clips[k],
            np.full(b, n_clips - 1 - k),
            marker="s" if k == 0 else "o",
            s=26,
            color=CORE_COLOR if has else CLIP_COLOR,
            edgecolors="k" if k == 0 else "none",
        )
    labels = ["(c) siamese: anchor" if k == 0 else f"(c) siamese clip {k}" for k in range(n_clips)][::-1]
    ax.set_yticks(
        range(n_clips + 2), labels + ["(b) sparse (ClipBERT)", "(a) dense (every frame)"], fontsize=7
    )
    ax.set_xlim(-1, n_frames)
    ax.set_xlabel("frame index")
    ax.set_title(
        f"Frames each scheme takes from {pick.dataset} video {pick.video_id} ({n_frames} frames); green "
        "band: answer fully visible, orange: partly; green markers: a clip that sees it",
        fontsize=9,
    )

    step = max(1, n_frames // 10)
    rows = [
        (f"(a) dense: every frame (every {step}-th shown)", dense[::step][:10]),
        ("(b) sparse: the one clip ClipBERT (our baseline) samples = the anchor", clips[0]),
    ]
    hit = [k for k in range(1, n_clips) if e is not None and ev.clip_contains(clips[k], e, "core")]
    k = hit[0] if hit else 1 if n_clips > 1 else 0
    rows.append(
        (
            f"(c) siamese: clip {k} (anchor start + {clips[k][0] - clips[0][0]}), "
            f"{'holds the evidence' if hit else 'next to the anchor'}",
            clips[k],
        )
    )
    for j, (title, frames) in enumerate(rows):
        imgs = decode(pick.video_path, frames)
        inner = outer[j + 1].subgridspec(1, max(10, len(frames)), wspace=0.08)
        for t, (f, img) in enumerate(zip(frames, imgs, strict=True)):
            a = fig.add_subplot(inner[t])
            _thumb(a, img, int(f), e)
            if t == 0:
                a.text(0, 1.32, title, transform=a.transAxes, fontsize=8, va="bottom")
    fig.suptitle(
        "Figure 1 (reproduced): dense vs sparse vs siamese sampling — " + SYNTHETIC_NOTE, fontsize=10
    )
    return fig, pick


# -- Figure 4 ---------------------------------------------------------------------------------------------
def load_analysis(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "analysis.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no analysis.json (only reasoning variants write one)")
    return json.loads(path.read_text())


def _evidence_of(v: dict) -> ev.Evidence | None:
    return ev.Evidence.from_dict(v["evidence"]) if v.get("evidence") else None


def pick_figure4(analysis: dict) -> tuple[int, str]:
    """Which training video to show: ``(position in analysis["videos"], reason)``.

    Prefers a video whose anchor misses the core evidence while a siamese clip holds it, and among those the
    one where the soft label Q gives the true answer the most extra probability over the anchor's own
    prediction (the help the paper's Figure 4 illustrates).
    """
    videos = analysis.get("videos") or []
    if not videos:
        raise ValueError("analysis.json lists no videos")
    cands = []
    for j, v in enumerate(videos):
        e = _evidence_of(v)
        if e is None:
            continue
        has = ev.clips_containing(np.asarray(v["clip_indices"]), e, "core")
        if not has[0] and has[1:].any():
            cands.append((j, int(has[1:].sum()), _q_gain(v)))
    if cands:
        j, n_hit, gain = max(cands, key=lambda c: (c[2], c[1]))
        v = videos[j]
        gain_txt = (
            f"; Q raises the true answer's probability by {100 * gain:+.1f} points over the anchor's "
            "prediction"
            if gain is not None
            else ""
        )
        return j, (
            f"Picked because its anchor clip misses every frame where the answer is fully visible while "
            f"{n_hit} of its {len(v['clip_indices']) - 1} siamese clips contain one ({len(cands)} of "
            f"{len(videos)} saved videos are like this; this one has the largest gain of Q over the "
            f"anchor on the true answer{gain_txt})."
        )
    if any(_evidence_of(v) for v in videos):
        return 0, "No saved video has evidence in a siamese clip only; showing the first saved video."
    return 0, "No ground-truth evidence in analysis.json (real data?); showing the first saved video."


def _q_gain(v: dict) -> float | None:
    if v.get("kind") == "count" or not isinstance(v.get("target"), int) or v["target"] < 0:
        return None
    t = v["target"]
    return float(v["soft_label"][t] - v["probs"][0][t])


def _top_answers(v: dict, k: int = 6) -> list[int]:
    q = np.asarray(v["soft_label"])
    order = list(np.argsort(-q)[:k])
    t = v.get("target")
    if isinstance(t, int) and 0 <= t < len(q) and t not in order:
        order[-1] = t
    return [int(i) for i in order]


def draw_example(v: dict, frames: np.ndarray | None = None, title: str = "", fig=None):
    """Draw one analysis.json video: left :func:`draw_clips` (timeline with the evidence, clip thumbnails),
    right :func:`draw_reasoning` (Â, P, Q). The explorer draws the two parts as two figures.

    ``frames``: ``uint8 [N, B, H, W, 3]`` (decoded by the caller; ``None`` decodes ``v["video_path"]``).
    """
    n, b = np.asarray(v["clip_indices"]).shape
    fig = fig or plt.figure(figsize=(15, max(6.5, 0.75 * n + 2.5) + 0.2 * n + 0.9))
    left, right = fig.subfigures(1, 2, width_ratios=[max(b, 3) * 0.9, 6.5], wspace=0.02)
    draw_clips(v, frames, left)
    draw_reasoning(v, right)
    fig.suptitle(title or _default_title(v), fontsize=10)
    return fig


def draw_clips(v: dict, frames: np.ndarray | None = None, fig=None):
    """Where the clips and the evidence lie on the video's timeline, and every clip's frames (rows: anchor,
    siamese clips; borders: evidence). ``frames`` as for :func:`draw_example`."""
    clips = np.asarray(v["clip_indices"])
    n, b = clips.shape
    if frames is None:
        frames = clip_frames(v)
    e = _evidence_of(v)
    timeline_h = 0.2 * n + 0.9
    fig = fig or plt.figure(figsize=(max(b, 3) * 1.3 + 1.5, max(6.5, 0.75 * n + 2.5) + timeline_h))
    outer = fig.add_gridspec(2, 1, height_ratios=[timeline_h, max(6.5, 0.75 * n + 2.5)], hspace=0.22)
    _timeline(fig.add_subplot(outer[0]), clips, e, int(v.get("num_frames") or clips.max() + 1))
    left = outer[1].subgridspec(n, b, wspace=0.05, hspace=0.35)
    for k in range(n):
        for t in range(b):
            a = fig.add_subplot(left[k, t])
            _thumb(a, frames[k, t], int(clips[k, t]), e)
            if t == 0:
                name = "anchor" if k == 0 else f"siamese {k}"
                has = e is not None and ev.clip_contains(clips[k], e, "core")
                a.set_ylabel(
                    f"{name}{' ✓' if has else ''}",
                    fontsize=8,
                    rotation=0,
                    ha="right",
                    va="center",
                    color=CORE_COLOR if has else "black",
                )
    fig.text(
        0.01,
        0.01,
        "Frame borders: green = answer fully visible (core), orange = partly (faint); "
        "✓ = the clip holds a core frame.",
        fontsize=7,
    )
    return fig


def draw_reasoning(v: dict, fig=None):
    """Â (Eq. 2, diagonal masked), the clips' predictions P for the top answers and the soft label Q (Eq. 5)
    beside the ground truth."""
    n = len(v["clip_indices"])
    fig = fig or plt.figure(figsize=(7.5, max(6.5, 0.75 * n + 2.5)))
    right = fig.add_gridspec(3, 1, height_ratios=[1.2, 1, 0.9], hspace=0.6)
    names = ["anchor", *[f"s{k}" for k in range(1, n)]]
    ax = fig.add_subplot(right[0])
    # Â(i, i) = 0 by construction: masked, so the colour scale shows the off-diagonal structure.
    _heatmap(ax, np.asarray(v["affinity"]), names, names, "viridis", mask=np.eye(n, dtype=bool))
    ax.set_title("affinity Â (Eq. 2): row-softmax over j ≠ i; diagonal (0) masked", fontsize=9)
    ax.tick_params(labelsize=7)
    _draw_predictions(fig, right[1], right[2], v, names)
    return fig


def clip_frames(v: dict) -> np.ndarray:
    """The decoded frames of every clip of an analysis.json video: ``uint8 [N, B, H, W, 3]``."""
    clips = np.asarray(v["clip_indices"])
    imgs = decode(v["video_path"], clips.reshape(-1))
    return imgs.reshape(*clips.shape, *imgs.shape[1:])


def _heatmap(ax, values: np.ndarray, xticks: list[str], yticks: list[str], cmap: str, mask=None) -> None:
    """A small annotated heatmap (values written in the cells up to 9 rows); ``mask``ed cells left blank."""
    sns.heatmap(values, ax=ax, annot=len(yticks) <= 9, fmt=".2f", cmap=cmap, xticklabels=xticks, mask=mask,
                yticklabels=yticks, annot_kws={"fontsize": 6},  # no offset: a range can be 1e-3 wide
                cbar_kws={"shrink": 0.8, "format": ScalarFormatter(useOffset=False)})  # fmt: skip


def _timeline(ax, clips: np.ndarray, e: ev.Evidence | None, num_frames: int) -> None:
    """The video's frames on one axis: evidence bands and, one row per clip, the frames each clip takes."""
    n = len(clips)
    _shade(ax, e)
    for k in range(n):
        has = e is not None and ev.clip_contains(clips[k], e, "core")
        ax.scatter(clips[k], np.full(clips.shape[1], n - 1 - k), s=22, marker="s" if k == 0 else "o",
                   color=CORE_COLOR if has else CLIP_COLOR, edgecolors="k" if k == 0 else "none")  # fmt: skip
    ax.set_yticks(range(n), ["anchor" if k == 0 else f"siamese {k}" for k in range(n)][::-1], fontsize=7)
    ax.set_xlim(-1, num_frames)
    ax.set_ylim(-0.7, n - 0.3)
    ax.tick_params(axis="x", labelsize=7)
    where = "no ground-truth evidence (real data)"
    if e is not None:
        where = f"answer fully visible (green) in {_ranges(e.core)}, partly (orange) in {_ranges(e.faint)}"
    ax.set_title(f"frames each clip takes out of {num_frames}; {where}; green markers: "
                 "a clip that sees a fully visible frame", fontsize=8)  # fmt: skip


def _ranges(r) -> str:
    return ", ".join(f"{a}–{b}" for a, b in r) or "none"


def _default_title(v: dict) -> str:
    note = "" if v.get("evidence") is None else f" — {SYNTHETIC_NOTE}"
    q = textwrap.shorten(str(v.get("question", "")), 90)
    return f"{v.get('task')} training video {v.get('video_id')}: “{q}” → {v.get('answer')}{note}"


def _draw_predictions(fig, top, bottom, v: dict, names: list[str]) -> None:
    probs, q = np.asarray(v["probs"]), np.asarray(v["soft_label"])
    if v.get("kind") == "count" or probs.shape[-1] == 1:
        ax = fig.add_subplot(top)
        ax.bar(names, probs[:, 0], color=CLIP_COLOR)
        ax.axhline(float(q[0]), color="k", ls="--", label=f"soft label Q = {q[0]:.2f}")
        ax.axhline(float(v["target"]), color=CORE_COLOR, label=f"ground truth = {v['target']}")
        ax.set_title("clip predictions (count)", fontsize=9)
        ax.legend(fontsize=7)
        fig.add_subplot(bottom).axis("off")
        return
    labels = list(v.get("labels") or v.get("candidates") or [])
    top_ids = _top_answers(v)
    ticks = [str(labels[i]) if i < len(labels) else str(i) for i in top_ids]
    ax = fig.add_subplot(top)
    _heatmap(ax, probs[:, top_ids], ticks, names, "magma")
    ax.set_title("clip predictions P (top answers by Q)", fontsize=9)
    ax.tick_params(labelsize=7)
    ax = fig.add_subplot(bottom)
    x = np.arange(len(top_ids))
    t = v.get("target")
    gt = np.array([1.0 if i == t else 0.0 for i in top_ids])
    ax.bar(x - 0.27, probs[0, top_ids], 0.27, color="0.6", label="anchor's prediction p_anchor")
    ax.bar(x, q[top_ids], 0.27, color=CLIP_COLOR, label="soft label Q (Eq. 5)")
    ax.bar(x + 0.27, gt, 0.27, color=CORE_COLOR, label="ground truth")
    ax.set_xticks(x, ticks, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title("soft label vs ground truth", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def default_run(params: dict) -> str:
    """The run Figure 4 and the explorer start from: ``figures.explorer_run`` of the profile, else the first
    seed's SiaSamRea fine-tuning run of the first fine-tuning dataset."""
    run = (params.get("figures") or {}).get("explorer_run")
    if run:
        return run
    ft = params["finetune"]
    return finetune_dir("finetune", next(iter(ft["datasets"])), "siasamrea", ft["seeds"][0])


def figure4(run_dir: str | Path, video: int | None = None):
    """Figure 4 from a SiaSamRea run: ``(fig, Pick)``; ``video`` overrides the automatic pick."""
    analysis = load_analysis(run_dir)
    if video is None:
        video, reason = pick_figure4(analysis)
    else:
        reason = f"Video {video} of analysis.json, chosen by the caller."
    v = analysis["videos"][video]
    fig = draw_example(v)
    w1, w2 = (np.round(analysis.get(k, []), 3).tolist() for k in ("w1", "w2"))
    w = f"W1 = {w1}, W2 = {w2}"
    fig.text(
        0.01,
        -0.015,  # below the clips legend
        f"{run_dir}, epoch {analysis.get('epoch')}; {textwrap.shorten(w, 160)}",
        fontsize=7,
        color="0.3",
    )
    pick = Pick(v.get("task", ""), v["video_id"], int(v["index"]), reason, v.get("video_path", ""))
    return fig, pick
