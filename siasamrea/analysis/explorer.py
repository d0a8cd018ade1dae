"""The affinity explorer: the siamese reasoning of a trained run, recomputed live in JupyterLab (ipywidgets).

Pick a run (those that wrote ``analysis.json``: the reasoning variants), an epoch (every evaluated epoch
leaves ``analysis/epoch-<e>.json``) and one of its saved training videos. The figure shows where the clips
and the answer evidence lie in the video (synthetic benchmark: its ground-truth frame ranges), the clips'
frames, Â, P and the soft label Q. The controls change ω, the affinity (Eq. 2 or the w/ SKR average), its
temperature, the prediction temperature and W1/W2; Â, P and Q are then recomputed from the saved clip
features and logits with the library's own functions (:mod:`siasamrea.method.reasoning`,
:func:`siasamrea.method.losses.clip_probabilities`), so what is shown is what training computes.

``Explorer(params)`` builds it; ``.widget`` is what the notebook displays and ``.save(path)`` writes the
current figure, so a papermill run executes the same code path without a front end.
"""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from siasamrea.analysis.results import expected_runs
from siasamrea.analysis.sampling_figures import (
    _default_title,
    clip_frames,
    default_run,
    draw_clips,
    draw_example,
    draw_reasoning,
)
from siasamrea.method.losses import clip_probabilities
from siasamrea.method.reasoning import average_affinity, siamese_affinity, soft_label
from siasamrea.training import evidence as ev

WEIGHTS = ("trained", "uniform", "anchor only", "siamese clips only")
AFFINITIES = ("siamese", "average")


# -- runs, epochs, videos ----------------------------------------------------------------------------------
def runs_with_analysis(params: dict | None = None, root: str | Path = ".") -> list[str]:
    """Run directories with an ``analysis.json``: the active profile's runs (``params``), in params order;
    without ``params``, every run under ``runs/`` that has one (``runs/<section>/<group>/s<seed>/``, and
    ``runs/init/``-like single runs; for browsing older runs)."""
    root = Path(root)
    if params is not None:
        return [ref.path for ref in expected_runs(params) if (root / ref.path / "analysis.json").is_file()]
    found = [*root.glob("runs/*/analysis.json"), *root.glob("runs/*/*/analysis.json"),
             *root.glob("runs/*/*/*/analysis.json")]  # fmt: skip
    return sorted(str(p.parent.relative_to(root)) for p in found)


def resolve_run(run_dir: str | None, params: dict | None = None, root: str | Path = ".") -> str:
    """``run_dir`` if it has an analysis.json, else the profile's first run that has one (said aloud)."""
    if run_dir and (Path(root) / run_dir / "analysis.json").is_file():
        return run_dir
    runs = runs_with_analysis(params, root)
    if not runs:
        raise FileNotFoundError(
            f"no run with analysis.json (asked for {run_dir!r}); train a reasoning variant"
        )
    print(f"{run_dir}: no analysis.json; showing {runs[0]} instead")
    return runs[0]


def epochs(run_dir: str | Path) -> dict[int, Path]:
    """``{epoch: analysis file}``: the per-epoch snapshots and the final ``analysis.json``."""
    run_dir = Path(run_dir)
    out = {}
    for p in sorted((run_dir / "analysis").glob("epoch-*.json")):
        out[int(p.stem.split("-")[1])] = p
    final = run_dir / "analysis.json"
    if final.is_file():
        out[int(json.loads(final.read_text()).get("epoch", max(out, default=0)))] = final
    if not out:
        raise FileNotFoundError(f"{run_dir}: no analysis.json (only reasoning variants write one)")
    return dict(sorted(out.items()))


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def video_options(analysis: dict) -> list[tuple[str, int]]:
    """``(label, position)`` of every saved video; ★ marks evidence only a siamese clip holds."""
    out = []
    for j, v in enumerate(analysis.get("videos", [])):
        star = ""
        if v.get("evidence"):
            has = ev.clips_containing(np.asarray(v["clip_indices"]), ev.Evidence.from_dict(v["evidence"]))
            star = " ★" if not has[0] and has[1:].any() else " ✓" if has[0] else ""
        out.append((f"{j}: {v.get('task')} {v.get('video_id')} — {str(v.get('question'))[:40]}{star}", j))
    return out


# -- the reasoning, recomputed ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """What Q is computed with (Eq. 2–5); ``w1``/``w2`` name a choice of :data:`WEIGHTS`."""

    omega: float = 0.5
    affinity: str = "siamese"
    affinity_temperature: float = 1.0
    temperature: float = 1.0
    w1: str = "trained"
    w2: str = "trained"


def saved_settings(analysis: dict) -> Settings:
    """The settings the run trained with (``analysis["settings"]``; the defaults for older files)."""
    s = analysis.get("settings") or {}
    return Settings(
        **{k: s[k] for k in ("omega", "affinity", "affinity_temperature", "temperature") if k in s}
    )


def clip_weights(choice: str, trained: list[float], n: int) -> torch.Tensor:
    """W1 or W2 ``[N]`` (sums to 1): the trained one, uniform, all on the anchor, or uniform on the others."""
    if choice == "trained":
        w = torch.tensor(trained, dtype=torch.float32)
        if w.shape != (n,):
            raise ValueError(f"saved weights have {tuple(w.shape)} entries, the video has {n} clips")
        return w
    if choice == "uniform":
        return torch.full((n,), 1.0 / n)
    if choice == "anchor only":
        return torch.nn.functional.one_hot(torch.tensor(0), n).float()
    if choice == "siamese clips only":
        return torch.cat([torch.zeros(1), torch.full((n - 1,), 1.0 / (n - 1))])
    raise ValueError(f"weights must be one of {WEIGHTS}, got {choice!r}")


def can_recompute(v: dict) -> bool:
    return "features" in v and "logits" in v


def recompute(v: dict, analysis: dict, s: Settings) -> dict:
    """``v`` with Â ``[N, N]``, P ``[N, K]`` and Q ``[K]`` recomputed from its saved features ``[N, D]`` and
    logits ``[N, K]`` (count: ``[N]``) under ``s``."""
    if not can_recompute(v):
        raise KeyError(
            f"video {v.get('video_id')}: analysis.json has no clip features/logits (written before they were "
            "saved); train the run again to explore it"
        )
    if s.affinity not in AFFINITIES:
        raise ValueError(f"affinity must be one of {AFFINITIES}, got {s.affinity!r}")
    feats = torch.tensor(v["features"], dtype=torch.float32)
    n = feats.shape[0]
    if s.affinity == "siamese":
        a = siamese_affinity(feats, s.affinity_temperature)
    else:
        a = average_affinity(n, like=feats)
    p = clip_probabilities(v["kind"], torch.tensor(v["logits"], dtype=torch.float32)[None], s.temperature)[0]
    w1 = clip_weights(s.w1, analysis["w1"], n)
    w2 = clip_weights(s.w2, analysis["w2"], n)
    q = soft_label(a, p, w1, w2, s.omega)
    return {**v, "affinity": a.tolist(), "probs": p.tolist(), "soft_label": q.tolist()}


def summary(v: dict, saved: dict) -> dict:
    """The numbers under the figure: what Q gives the true answer (or the count), against the anchor's own
    prediction and the Q saved by training; and which clip the anchor's row of Â weighs most."""
    q, p = np.asarray(v["soft_label"]), np.asarray(v["probs"])
    a = np.asarray(v["affinity"])
    out = {"anchor_attends_to": int(np.argmax(a[0, 1:]) + 1), "anchor_attention": float(a[0, 1:].max())}
    if v.get("kind") == "count" or p.shape[-1] == 1:
        return {
            **out,
            "q": float(q[0]),
            "anchor": float(p[0, 0]),
            "saved_q": float(saved["soft_label"][0]),
            "target": v.get("target"),
        }
    t = v.get("target")
    labels = list(v.get("labels") or v.get("candidates") or [])
    top = int(np.argmax(q))
    out.update(q_top=str(labels[top]) if top < len(labels) else str(top), q_top_p=float(q[top]))
    if isinstance(t, int) and 0 <= t < len(q):
        out.update(q=float(q[t]), anchor=float(p[0, t]), saved_q=float(saved["soft_label"][t]), target=t)
    return out


def summary_html(s: dict) -> str:
    if "q" not in s:
        return f"Q's top answer: {html.escape(s['q_top'])} ({s['q_top_p']:.3f})"
    what = "the count" if "q_top" not in s else "the true answer"
    text = (
        f"Q on {what}: <b class='q-value'>{s['q']:.4f}</b> (the anchor's own prediction: {s['anchor']:.4f};"
        f" Q as trained: {s['saved_q']:.4f})"
    )
    if "q_top" in s:
        text += f" · Q's top answer: {html.escape(s['q_top'])} ({s['q_top_p']:.3f})"
    return text + (
        f" · the anchor's row of Â weighs siamese {s['anchor_attends_to']} most ({s['anchor_attention']:.3f})"
    )


# -- the figure -------------------------------------------------------------------------------------------
def describe(analysis: dict, run_dir: str | Path, s: Settings | None) -> str:
    """One line: the run, the epoch and what Â, P and Q were computed with."""
    w1, w2 = (np.round(analysis.get(k, []), 3).tolist() for k in ("w1", "w2"))
    if s is None:
        how = "Â, P, Q as saved by training"
    else:
        how = (
            f"recomputed: ω = {s.omega:g}, Â {s.affinity} (temperature {s.affinity_temperature:.3g}), "
            f"prediction temperature {s.temperature:.3g}, W1 {s.w1}, W2 {s.w2}"
        )
    text = f"{run_dir} (variant {analysis.get('variant')}, epoch {analysis.get('epoch')}); {how}; "
    return textwrap.shorten(text + f"trained W1 = {w1}; W2 = {w2}", 260)


def render(v: dict, analysis: dict, run_dir: str | Path, s: Settings | None, frames=None):
    """The whole figure of one video under settings ``s`` (``None``: the values saved by training)."""
    fig = draw_example(v if s is None else recompute(v, analysis, s), frames)
    fig.text(0.01, -0.015, describe(analysis, run_dir, s), fontsize=7, color="0.3")
    return fig


def _png(fig, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _set_png(out, fig, name: str) -> None:
    data = base64.b64encode(_png(fig)).decode()
    out.outputs = (
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/png": data, "text/plain": f"<{name}>"},
        },
    )


class Explorer:
    """The interactive explorer over the runs of ``params`` (or every run under ``root/runs``).

    The figure goes into an Output widget by setting its outputs directly rather than by capturing a
    ``display`` call: capturing needs a live front end, and under papermill the execution would wait for it.
    """

    def __init__(
        self, params: dict | None = None, run_dir: str | None = None, video: int = 0, root: str | Path = "."
    ):
        self.root = Path(root)
        runs = runs_with_analysis(params, root)
        if run_dir is None and params is not None:
            run_dir = default_run(params)
        if run_dir and run_dir not in runs and (self.root / run_dir / "analysis.json").is_file():
            runs = [run_dir, *runs]  # a run outside the profile, asked for by name
        if not runs:
            raise FileNotFoundError(
                f"{self.root.resolve()}: no run with analysis.json yet (train a reasoning variant first)"
            )
        self._frames: dict = {}
        self._busy = False
        wide = {"width": "70%"}
        style = {"description_width": "170px"}
        half = {"width": "45%"}
        self.run_box = widgets.Dropdown(
            options=runs,
            value=run_dir if run_dir in runs else runs[0],
            description="run",
            layout=wide,
            style=style,
        )
        self.epoch_box = widgets.Dropdown(description="epoch", style=style)
        self.video_box = widgets.Dropdown(description="video", layout=wide, style=style)
        self.omega = widgets.FloatSlider(
            min=0,
            max=1,
            step=0.05,
            description="ω (Eq. 5)",
            layout=half,
            style=style,
            continuous_update=False,
            readout_format=".2f",
        )
        self.affinity = widgets.ToggleButtons(
            options=[("Eq. 2 (features)", "siamese"), ("1/(N−1) (w/ SKR)", "average")],
            description="Â",
            style={"description_width": "40px", "button_width": "150px"},
        )
        self.affinity_t = widgets.FloatLogSlider(
            min=-2,
            max=1,
            step=0.05,
            description="affinity temperature",
            layout=half,
            style=style,
            continuous_update=False,
            readout_format=".3f",
        )
        self.temperature = widgets.FloatLogSlider(
            min=-1,
            max=1,
            step=0.05,
            description="prediction temperature",
            layout=half,
            style=style,
            continuous_update=False,
            readout_format=".3f",
        )
        self.w1 = widgets.Dropdown(options=WEIGHTS, description="W1 (on Â P)", style=style)
        self.w2 = widgets.Dropdown(options=WEIGHTS, description="W2 (on P)", style=style)
        self.reset = widgets.Button(description="as trained", tooltip="the settings the run trained with")
        self.readout = widgets.HTML()
        self.clips_out = widgets.Output(layout={"width": "50%"})
        self.reasoning_out = widgets.Output(layout={"width": "50%"})
        legend = widgets.HTML(
            "Videos: ★ = the answer is only in a siamese clip (the anchor misses it); ✓ = the anchor "
            "has it. Changing a setting recomputes Â, P and Q from the saved clip features and "
            "logits (siasamrea.method.reasoning)."
        )
        self.controls = [self.omega, self.affinity, self.affinity_t, self.temperature, self.w1, self.w2]
        self.widget = widgets.VBox(
            [
                self.run_box,
                self.epoch_box,
                self.video_box,
                legend,
                widgets.HBox([self.omega, self.affinity]),
                widgets.HBox([self.affinity_t, self.temperature]),
                widgets.HBox([self.w1, self.w2, self.reset]),
                self.readout,
                widgets.HBox([self.clips_out, self.reasoning_out]),
            ]
        )
        self._load_run(video=video)
        self.run_box.observe(lambda _: self._load_run(), "value")
        self.epoch_box.observe(lambda _: self._load_epoch(), "value")
        self.video_box.observe(lambda _: self.show(), "value")
        for c in self.controls:
            c.observe(lambda _: self.show(clips=False), "value")
        self.reset.on_click(lambda _: self._reset())

    # -- state -------------------------------------------------------------------------------------------
    def settings(self) -> Settings | None:
        """The controls' settings, or ``None`` when the run saved no features (old analysis.json)."""
        if not can_recompute(self.current()):
            return None
        return Settings(
            self.omega.value,
            self.affinity.value,
            self.affinity_t.value,
            self.temperature.value,
            self.w1.value,
            self.w2.value,
        )

    def set(self, **changes) -> None:
        """Change settings by name (the fields of :class:`Settings`) and redraw once."""
        s = replace(self.settings() or Settings(), **changes)
        boxes = dict(
            zip(
                ("omega", "affinity", "affinity_temperature", "temperature", "w1", "w2"),
                self.controls,
                strict=True,
            )
        )
        with self._quiet():
            for k, v in asdict(s).items():
                boxes[k].value = v
        self.show(clips=False)

    def current(self) -> dict:
        return self.analysis["videos"][self.video_box.value]

    def figure(self):
        """The current selection as one figure (what :meth:`save` writes)."""
        v = self.current()
        return render(v, self.analysis, self.run_box.value, self.settings(), self._clip_frames(v))

    def _clip_frames(self, v: dict) -> np.ndarray:
        key = (v["video_path"], str(v["clip_indices"]))
        if key not in self._frames:  # decoding is the slow part of a redraw
            self._frames[key] = clip_frames(v)
        return self._frames[key]

    def save(self, path: str | Path, dpi: int = 110) -> Path:
        Path(path).write_bytes(_png(self.figure(), dpi))
        return Path(path)

    def show(self, clips: bool = True) -> None:
        """Redraw the reasoning figure, and with ``clips`` the clips figure (it changes with the video)."""
        if self._busy:
            return
        v = self.current()
        s = self.settings()
        shown = v if s is None else recompute(v, self.analysis, s)
        self.readout.value = summary_html(summary(shown, v)) + (
            "" if s is not None else " · <i>this run saved no clip features: showing Â, P, Q as saved</i>"
        )
        if clips:
            fig = draw_clips(v, self._clip_frames(v))
            fig.suptitle(_default_title(v), fontsize=9)
            _set_png(self.clips_out, fig, "clips")
        fig = draw_reasoning(shown)
        fig.suptitle(describe(self.analysis, self.run_box.value, s), fontsize=8, wrap=True)
        _set_png(self.reasoning_out, fig, "reasoning")

    # -- callbacks ---------------------------------------------------------------------------------------
    def _quiet(self):
        explorer = self

        class _Quiet:
            def __enter__(self):
                explorer._busy = True

            def __exit__(self, *exc):
                explorer._busy = False

        return _Quiet()

    def _load_run(self, video: int | None = None) -> None:
        self._epochs = epochs(self.root / self.run_box.value)
        with self._quiet():
            self.epoch_box.options = [
                (f"{e}" + (" (after training)" if p.name == "analysis.json" else ""), e)
                for e, p in self._epochs.items()
            ]
            self.epoch_box.value = max(self._epochs)
        self._load_epoch(video, reset=True)

    def _load_epoch(self, video: int | None = None, reset: bool = False) -> None:
        keep = self.video_box.value if video is None else video
        self.analysis = load(self._epochs[self.epoch_box.value])
        if not self.analysis.get("videos"):
            raise ValueError(f"{self._epochs[self.epoch_box.value]}: no videos saved")
        with self._quiet():
            self.video_box.options = video_options(self.analysis)
            values = [j for _, j in self.video_box.options]
            self.video_box.value = keep if keep in values else values[0]
            if reset:
                self._set_controls(saved_settings(self.analysis))
        self.show()

    def _set_controls(self, s: Settings) -> None:
        for c, v in zip(self.controls, asdict(s).values(), strict=True):
            c.value = v
            c.disabled = not can_recompute(self.current())

    def _reset(self) -> None:
        with self._quiet():
            self._set_controls(saved_settings(self.analysis))
        self.show(clips=False)


def build(params: dict | None = None, run_dir: str | None = None, video: int = 0) -> Explorer:
    """:class:`Explorer` for a notebook; ``run_dir`` defaults to ``figures.explorer_run`` of ``params``."""
    if run_dir is not None or params is not None:
        run_dir = resolve_run(run_dir or (default_run(params) if params else None), params)
    return Explorer(params, run_dir, video)
