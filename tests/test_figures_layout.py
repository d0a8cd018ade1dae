"""The figures' layout, redrawn from the committed results (figures/summary.json, figures/mechanism.json,
docs/perf/*.json): tick labels do not overlap, legends and notes do not cover the data, a single training
budget is not drawn on a numeric epochs axis, and the benchmark figure shows the 1% target."""

from __future__ import annotations

import itertools
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from conftest import REPO  # noqa: E402

from siasamrea.analysis import mechanism_data, mechanism_plots, regime, tables  # noqa: E402
from siasamrea.analysis.stats import Summary, mean_ci  # noqa: E402
from siasamrea.perf import plot as bench_figures  # noqa: E402
from siasamrea.pipeline import profiles  # noqa: E402

SUMMARY = REPO / "figures" / "summary.json"
MECHANISM = REPO / "figures" / "mechanism.json"
REGIME = REPO / "figures" / "regime.json"


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _assert_close(a, b, where: str) -> None:
    """Equal up to float rounding (values go through % and back)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), where
    else:
        assert a == b, where


def _check_layout(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    for ax in axes:
        labels = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        for a, b in itertools.combinations(labels, 2):
            assert not _overlaps(a, b), f"{ax.get_title()}: x tick labels overlap"
        assert ax.get_legend() is None, f"{ax.get_title()}: a legend inside the axes can cover data"
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            assert not _overlaps(box, ax.get_window_extent(renderer)), f"the legend covers {ax.get_title()}"


@pytest.mark.parametrize("key", json.loads(SUMMARY.read_text())["tables"])
def test_table_figures_redrawn_from_summary_keep_labels_and_legends_off_the_data(key):
    d = json.loads(SUMMARY.read_text())["tables"][key]
    t = tables.from_dict(key, d)
    _assert_close(json.loads(json.dumps(tables.to_dict(t), default=tables._nan_none)), d, key)
    fig = tables.plot_table(t)
    try:
        _check_layout(fig)
        # every panel is used: no empty quadrant next to a dataset without paired differences
        assert all(ax.has_data() for ax in fig.axes)
        for ax in fig.axes:  # a panel says each reason a bar is missing once
            notes = [line for x in ax.texts for line in x.get_text().replace("\n", " ").split("ours –: ")[1:]]
            assert len(notes) == len(set(notes)), (key, ax.get_title(), notes)
    finally:
        plt.close(fig)


def test_table_error_bars_stay_inside_what_the_metric_can_be():
    """A two-seed t-interval can reach past 100% (or below an MSE of 0); the bar is drawn to the bound, so the
    accuracy axis does not run to 160%."""
    d = json.loads(SUMMARY.read_text())["tables"]["table5"]
    t = tables.from_dict("table5", d)
    wide = Summary(mean=0.6, half=0.9, n=2, sd=0.1)  # 60% ± 90 points
    for e in t.entries:
        if e.status == "ok":
            e.last = wide if e.metric == "acc" else Summary(mean=2.0, half=5.0, n=2, sd=0.5)
    fig = tables.plot_table(t)
    try:
        panels = [ax for ax in fig.axes if ax.get_ylabel() in ("accuracy (%)", "MSE (lower is better)")]
        assert panels
        for ax in panels:
            ys = [y for c in ax.collections for seg in c.get_segments() for _, y in seg]
            assert ys, ax.get_title()
            assert min(ys) >= 0, ax.get_title()
            if ax.get_ylabel() == "accuracy (%)":
                assert max(ys) <= 100 + 1e-9 and ax.get_ylim()[1] < 150, ax.get_title()
            else:  # an MSE has no upper bound: the bar keeps its full upper half
                assert max(ys) == pytest.approx(7.0), ax.get_title()
    finally:
        plt.close(fig)


def test_table5_draws_its_floors_and_the_count_ceiling_as_labelled_lines():
    d = json.loads(SUMMARY.read_text())["tables"]["table5"]
    t = tables.from_dict("table5", d)
    assert {label for label, _ in t.references["count"]} == {
        "this set: MSE of the training mean",
        "least MSE from the averaged anchor",
    }
    fig = tables.plot_table(t)
    try:
        for col, refs in t.references.items():
            ax = next(a for a in fig.axes if a.get_title().startswith(tables.TASK_NAMES[col]))
            levels = [line.get_ydata()[0] for line in ax.get_lines()]
            texts = [x.get_text() for x in ax.texts]
            for label, value in refs:
                assert value in levels and ax.get_ylim()[1] > value, (col, label)
                digits = 2 if col == "count" else 1
                assert f"{label} {value:.{digits}f}" in texts, (col, label)
    finally:
        plt.close(fig)


def test_budget_figure_single_budget_is_categorical_and_arms_do_not_share_x():
    source, df = mechanism_data.budget_from_json(MECHANISM)
    fig = mechanism_plots.plot_budget_table(df, source)
    try:
        _check_layout(fig)
        for ax in fig.axes:
            title = ax.get_title()
            if title.startswith("how2qa") and "compute" not in title:
                # one budget (6 epochs): the arms side by side, named, not points at x = 6 on a 5.7-6.3 axis
                assert [t.get_text() for t in ax.get_xticklabels()][0] == "baseline"
                assert ax.get_xlim()[1] - ax.get_xlim()[0] > 1
            if title == "msvd-qa: accuracy" and df[df["dataset"] == "msvd-qa"]["epochs"].nunique() == 1:
                assert [t.get_text() for t in ax.get_xticklabels()][0] == "baseline"  # one budget
            elif title == "msvd-qa: accuracy":
                budget = df[df["dataset"] == "msvd-qa"]["epochs"].max()  # the fine-tuning runs' epochs
                xs = [tuple(line.get_xdata()) for line in ax.lines if len(line.get_xdata())]
                at_six = [x for xs_ in xs for x in xs_ if abs(x - budget) < 0.5]
                shown = {"baseline", *mechanism_data.FIGURE_ARMS}
                arms = set(df[(df["dataset"] == "msvd-qa") & (df["epochs"] == budget)]["base"]) & shown
                assert len({round(x, 6) for x in at_six}) == len(arms) > 1, "arms at one budget are dodged"
    finally:
        plt.close(fig)


def test_bench_figure_shows_the_one_percent_target():
    report = json.loads((REPO / "docs" / "perf" / "bench-2core-full.json").read_text())
    fig = bench_figures.figure(report)
    try:
        share = next(ax for ax in fig.axes if "share" in ax.get_title())
        targets = [line for line in share.lines if list(line.get_ydata()) == [1.0, 1.0]]
        assert targets and targets[0].get_linestyle() == "--"
        assert "target" in " ".join(t.get_text() for t in share.get_legend().get_texts())
    finally:
        plt.close(fig)


def test_regime_figure_keeps_title_legend_and_panels_apart():
    """Redrawn from the committed sweep rows: the legend sits below the panels, the title above, and neither
    covers a panel or the other (the legend once overlapped the title; before that, it left a gap)."""
    rows = json.loads(REGIME.read_text())
    for r in rows:  # the Summaries, from the per-seed values they were computed from
        for k, v in r.items():
            if isinstance(v, dict) and "values" in v:
                r[k] = mean_ci({int(seed): x for seed, x in v["values"].items()})
                assert r[k].mean == pytest.approx(v["mean"]) and r[k].n == v["n"]
    fig = regime.plot(profiles.load_profile("default", REPO), rows)
    try:
        _check_layout(fig)
        renderer = fig.canvas.get_renderer()
        title = fig._suptitle.get_window_extent(renderer)
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        assert not _overlaps(title, box), "the legend covers the title"
        panels = [ax.get_tightbbox(renderer) for ax in fig.axes]
        assert all(not _overlaps(title, p) for p in panels), "the title covers a panel"
        assert box.y1 <= min(p.y0 for p in panels), "the legend is below the panels"
        assert all(ax.has_data() for ax in fig.axes)
    finally:
        plt.close(fig)
