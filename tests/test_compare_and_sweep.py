"""The re-run comparison (siasamrea.analysis.compare) and the regime sweep's run configurations."""

import copy
import json
from pathlib import Path

import scipy.stats

from siasamrea.analysis import compare
from siasamrea.pipeline import stages
from siasamrea.pipeline.profiles import load_profile

REPO = Path(__file__).resolve().parents[1]


def _summary(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = scipy.stats.t.ppf(0.975, n - 1) * sd / n**0.5
    return {"mean": mean, "sd": sd, "n": n, "half": half, "lo": mean - half, "hi": mean + half}


def _figures(base: list[float], gap: list[float]) -> dict:
    entry = {"row": "baseline", "dataset": "msvd-qa", "task": "msvd-qa", "split": "test", "status": "ok",
             "last": _summary(base)}  # fmt: skip
    contrast = {"label": "w/ SKG+SKR − baseline", "column": "msvd-qa", "diff": _summary(gap)}
    return {"summary.json": {"tables": {"table1": {"entries": [entry], "contrasts": [contrast]}}}}


def test_a_rerun_within_noise_passes_and_a_moved_number_or_conclusion_is_reported():
    committed = _figures([50.0, 51.0, 49.0, 50.5, 49.5, 50.0], [2.0, 2.5, 1.5, 2.2, 1.8, 2.0])
    same = copy.deepcopy(committed)
    rows = compare.compare(committed, same)
    assert len(rows) == 2 and not any(r["moved"] or r.get("conclusion changed") for r in rows)

    moved = _figures([55.0, 56.0, 54.0, 55.5, 54.5, 55.0], [2.0, 2.5, 1.5, 2.2, 1.8, 2.0])
    (row,) = [r for r in compare.compare(committed, moved) if r["number"].startswith("table1: baseline")]
    assert row["moved"] and row["p"] < 0.001
    flipped = _figures([50.0, 51.0, 49.0, 50.5, 49.5, 50.0], [2.0, -2.5, 1.5, -2.2, 1.8, -1.0])
    (row,) = [r for r in compare.compare(committed, flipped) if "−" in r["number"]]
    assert row["committed reading"] == "positive" and row["fresh reading"] == "unresolved"
    assert row["conclusion changed"]


def test_compare_cli_reads_figure_folders_and_exits_1_when_something_moved(tmp_path):
    for name, base in (("a", [50, 51, 49]), ("b", [60, 61, 59])):
        figs = _figures(base, [2, 3, 2.5])
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(figs["summary.json"]))
    assert compare.main(["--committed", str(tmp_path / "a"), "--fresh", str(tmp_path / "a")]) == 0
    assert compare.main(["--committed", str(tmp_path / "a"), "--fresh", str(tmp_path / "b")]) == 1


def test_sweep_points_change_only_the_data_or_the_training_set_size():
    params = load_profile("default", REPO)
    points = stages.sweep_points(params)
    assert {p["evidence_scale"] for p in points.values() if "evidence_scale" in p} == {0.5, 4.0}
    assert {p["train_limit"] for p in points.values() if "train_limit" in p} == {250, 500}
    # the sweep's SiaSamRea is the stop-gradient one, the ablation of the same name at the reference point
    reference = stages.stage_config(
        params, "ablations", dataset="msvd-qa", variant="stop_gradient", seed=1, validate=False
    )
    for point, p in points.items():
        cfg = stages.sweep_config(params, point, "stop_gradient", 1, validate=False)
        assert cfg.run.out_dir == f"runs/sweep/{point}-stop_gradient/s1"
        assert (cfg.method, cfg.optim, cfg.model) == (reference.method, reference.optim, reference.model)
        if "evidence_scale" in p:
            assert cfg.data.root == f"data/sweep/{point}/msvd-qa"
            assert cfg.data.evidence == f"data/sweep/{point}/msvd-qa/evidence.jsonl"
            assert cfg.data.cache == f"data/sweep/{point}/cache/msvd-qa" and cfg.data.train_limit is None
        else:
            assert cfg.data.root == reference.data.root and cfg.data.train_limit == p["train_limit"]
