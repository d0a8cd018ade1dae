"""Accuracy where the anchor shows the evidence (siasamrea.analysis.coverage), against a hand count."""

import json

import pytest
import yaml

from siasamrea.analysis.coverage import by_coverage


def _run(tmp_path, evidence: list[dict], predictions: dict[str, tuple[str, list[dict]]]):
    (tmp_path / "evidence.jsonl").write_text("\n".join(json.dumps(e) for e in evidence) + "\n")
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"data": {"evidence": str(tmp_path / "evidence.jsonl")}})
    )
    (tmp_path / "predictions").mkdir()
    for task, (metric, rows) in predictions.items():
        (tmp_path / "predictions" / f"{task}_test_last.json").write_text(
            json.dumps({"epoch": 3, "metric": metric, "rows": rows})
        )
    return tmp_path


def _ev(vid, core, faint=()):
    return {
        "video_id": vid,
        "task": "t",
        "split": "test",
        "num_frames": 60,
        "core": core,
        "faint": list(faint),
    }


def test_scores_split_by_whether_the_anchor_shows_the_core_evidence(tmp_path):
    evidence = [
        _ev("a", [[10, 14]]),
        _ev("b", [[40, 44]], [[38, 39]]),
        _ev("c", [[0, 2]]),
        _ev("d", [[20, 20]]),
    ]
    rows = [  # anchor frames; covered: a (frame 12), d (frame 20); b only touches faint frame 39; c misses
        {"video_id": "a", "anchor": [2, 12, 22, 32], "pred": 1, "target": 1},
        {"video_id": "b", "anchor": [9, 19, 29, 39], "pred": 0, "target": 2},
        {"video_id": "c", "anchor": [5, 15, 25, 35], "pred": 3, "target": 3},
        {"video_id": "d", "anchor": [0, 20, 40, 50], "pred": 4, "target": 0},
        {"video_id": "unknown", "anchor": [0, 1, 2, 3], "pred": 2, "target": 1},  # no record: not covered
    ]
    counts = [
        {"video_id": "a", "anchor": [12], "pred": 2.0, "target": 4.0},  # covered, squared error 4
        {"video_id": "c", "anchor": [30], "pred": 1.5, "target": 1.0},  # missed, 0.25
    ]
    run = _run(tmp_path, evidence, {"action": ("acc", rows), "count": ("mse", counts)})
    found = by_coverage(run)
    assert set(found) == {"action", "count"}
    action = found["action"]
    assert (action.n, action.metric) == (5, "acc")
    assert action.covered == pytest.approx(2 / 5)
    assert action.on_covered == pytest.approx(1 / 2)  # a right, d wrong
    assert action.on_missed == pytest.approx(1 / 3)  # b wrong, c right, unknown wrong
    count = found["count"]
    assert (count.metric, count.covered, count.on_covered, count.on_missed) == ("mse", 0.5, 4.0, 0.25)


def test_a_task_whose_anchor_always_shows_the_evidence_has_no_score_elsewhere(tmp_path):
    rows = [{"video_id": "a", "anchor": [5], "pred": 1, "target": 1}]
    run = _run(tmp_path, [_ev("a", [[0, 59]])], {"frameqa": ("acc", rows)})
    found = by_coverage(run)["frameqa"]
    assert found.covered == 1.0 and found.on_covered == 1.0 and found.on_missed != found.on_missed  # NaN
