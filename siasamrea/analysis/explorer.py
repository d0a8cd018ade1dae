"""An interactive affinity explorer for JupyterLab (ipywidgets), which also runs non-interactively.

Pick a run (those of the active profile that wrote ``analysis.json``: the reasoning variants) and one of its
saved training videos; see the clips' frames (evidence highlighted on the synthetic benchmark), the affinity
matrix Â, the clips' predictions P and the soft label Q beside the ground truth
(:func:`siasamrea.analysis.figures.draw_example`).

``build(run_dir, video)`` returns the widget box and renders the default selection once, so a papermill run
executes the same code path; :func:`render` returns the figure for saving.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from siasamrea.analysis import evidence as ev
from siasamrea.analysis.figures import draw_example, load_analysis
from siasamrea.analysis.results import expected_runs


def runs_with_analysis(params: dict | None = None, root: str | Path = ".") -> list[str]:
    """Run directories with an ``analysis.json``: the active profile's runs (``params``), in params order;
    without ``params``, every ``runs/<section>/<run>/`` that has one (for browsing older runs)."""
    root = Path(root)
    if params is not None:
        return [ref.path for ref in expected_runs(params) if (root / ref.path / "analysis.json").is_file()]
    return sorted(str(p.parent.relative_to(root)) for p in root.glob("runs/*/*/analysis.json"))


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


def video_options(run_dir: str | Path) -> list[tuple[str, int]]:
    """``(label, position)`` of every saved video; ★ marks evidence only a siamese clip holds."""
    out = []
    for j, v in enumerate(load_analysis(run_dir).get("videos", [])):
        star = ""
        if v.get("evidence"):
            has = ev.clips_containing(np.asarray(v["clip_indices"]), ev.Evidence.from_dict(v["evidence"]))
            star = " ★" if not has[0] and has[1:].any() else " ✓" if has[0] else ""
        out.append((f"{j}: {v.get('task')} {v.get('video_id')} — {str(v.get('question'))[:40]}{star}", j))
    return out


def render(run_dir: str | Path, video: int = 0):
    """The figure of one saved video of a run."""
    analysis = load_analysis(run_dir)
    videos = analysis.get("videos") or []
    if not 0 <= video < len(videos):
        raise IndexError(f"{run_dir}: analysis.json has {len(videos)} videos, asked for {video}")
    fig = draw_example(videos[video])
    w1, w2 = (np.round(analysis.get(k, []), 3).tolist() for k in ("w1", "w2"))
    fig.text(0.01, 0.005, f"{run_dir} (variant {analysis.get('variant')}, epoch {analysis.get('epoch')}); "
             f"W1 = {w1}; W2 = {w2}", fontsize=7, color="0.3")  # fmt: skip
    return fig


def build(run_dir: str | None = None, video: int = 0, params: dict | None = None, root: str | Path = "."):
    """The explorer widget (run and video dropdowns over an output area), rendered once for the default."""
    import ipywidgets as w
    from IPython.display import Image, display

    runs = runs_with_analysis(params, root)
    if run_dir is not None and run_dir not in runs and (Path(root) / run_dir / "analysis.json").is_file():
        runs = [run_dir, *runs]  # a run outside the profile, asked for by name
    run_dir = run_dir if run_dir in runs else None
    if not runs:
        return w.HTML("<b>No run with analysis.json yet</b> (train a reasoning variant first).")
    run_box = w.Dropdown(options=runs, value=run_dir or runs[0], description="run", layout={"width": "60%"})
    video_box = w.Dropdown(options=video_options(run_box.value), description="video", layout={"width": "60%"})
    video_box.value = video if video in [v for _, v in video_box.options] else video_box.options[0][1]
    out = w.Output()
    legend = w.HTML("★ = the answer is only in a siamese clip (the anchor misses it); ✓ = the anchor has it.")

    def show(*_):
        with out:
            out.clear_output(wait=True)
            fig = render(run_box.value, video_box.value)
            display(fig)
            plt.close(fig)

    def change_run(change):
        video_box.unobserve(show, "value")
        video_box.options = video_options(change["new"])
        video_box.value = video_box.options[0][1]
        video_box.observe(show, "value")
        show()

    run_box.observe(change_run, "value")
    video_box.observe(show, "value")
    # The first rendering goes in without the ``with out:`` capture, which needs a live front end: under
    # papermill/nbclient, capturing into an Output widget can leave the execution waiting forever.
    fig = render(run_box.value, video_box.value)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    out.append_display_data(Image(data=buf.getvalue(), format="png"))
    return w.VBox([run_box, video_box, legend, out])
