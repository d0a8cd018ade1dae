"""The count task's ceilings (siasamrea.analysis.count_ceiling), against hand counts and brute force."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from siasamrea.analysis import tables
from siasamrea.analysis.count_ceiling import READINGS, best_mse, count_ceilings, flashes_hit, frame_states
from siasamrea.analysis.results import COLUMNS, Results
from siasamrea.training.evidence import Evidence, eval_anchor, run_config

FLASHES = [[3, 5], [20, 22], [40, 41], [55, 57]]  # four flashes in a 64-frame video
FAINT = [[2, 2], [6, 6], [19, 19], [23, 23]]


def test_frame_states_and_flashes_hit_by_hand():
    ev = Evidence(64, tuple(map(tuple, FLASHES)), tuple(map(tuple, FAINT)))
    assert frame_states([4, 6, 10, 21], ev) == (2, 1, 0, 2)
    assert flashes_hit([4, 5, 21, 30], ev) == 2  # two frames in the first flash count once
    assert flashes_hit(np.array([[0, 1], [2, 6]]), ev) == 0  # faint frames are not a flash seen
    assert flashes_hit([3, 20, 41, 57], ev) == 4


def test_best_mse_is_the_within_group_variance_and_no_function_of_the_reading_beats_it():
    rng = np.random.default_rng(0)
    answers = rng.integers(1, 6, size=40).astype(float)
    readings = [int(a > 2) if i % 4 else int(rng.integers(0, 2)) for i, a in enumerate(answers)]  # noisy cue
    found = best_mse(answers, readings)
    by_hand = sum(
        ((answers[[r == g for r in readings]] - answers[[r == g for r in readings]].mean()) ** 2).sum()
        for g in (0, 1)
    ) / len(answers)
    assert found == pytest.approx(by_hand)
    # brute force over every answer 1..5 (in steps of 0.25) each reading could be mapped to
    grid = np.arange(1, 5.01, 0.25)
    best = min(
        np.mean([(a - (x0 if r == 0 else x1)) ** 2 for a, r in zip(answers, readings, strict=True)])
        for x0, x1 in itertools.product(grid, grid)
    )
    assert found <= best + 1e-12
    assert best_mse(answers, [0] * len(answers)) == pytest.approx(answers.var())  # nothing read: the mean
    assert best_mse(answers, list(answers)) == 0.0  # the reading is the answer
    with pytest.raises(ValueError, match="2 answers but 1 readings"):
        best_mse([1, 2], [0])


def _run(tmp_path, num_clips: int, videos: list[tuple[str, int, list]], anchors=None):
    """A pretraining run folder: config, evidence and count predictions whose anchors are the evaluation's."""
    evidence = tmp_path / "evidence.jsonl"
    evidence.write_text(
        "".join(
            json.dumps(
                {"video_id": v, "task": "count", "split": "test", "num_frames": n, "core": core, "faint": []}
            )
            + "\n"
            for v, n, core in videos
        )  # fmt: skip
    )
    config = {
        "data": {"evidence": str(evidence)},
        "method": {"variant": "baseline", "num_clips": num_clips, "frames_per_clip": 4, "reserve_clips": 13},
        "eval": {"seed": 7},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cfg = run_config(tmp_path)
    rows = [
        {"index": i, "video_id": v, "target": float(len(core)), "pred": 2.0,
         "anchor": anchors[i] if anchors else eval_anchor(cfg, n, i).tolist()}
        for i, (v, n, core) in enumerate(videos)
    ]  # fmt: skip
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "count_test_last.json").write_text(
        json.dumps({"metric": "mse", "rows": rows})
    )
    return tmp_path, rows


def _videos(n_videos: int = 60, seed: int = 1) -> list[tuple[str, int, list]]:
    """k flashes of 2 frames in k equal slots of a 64-frame video, as the generator lays them out."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_videos):
        k = int(rng.integers(1, 6))
        bounds = np.linspace(0, 64, k + 1).astype(int)
        core = [[int(lo) + 2, int(lo) + 3] for lo in bounds[:-1]]
        out.append((f"v{i}", 64, core))
    return out


def test_ceilings_against_readings_recomputed_by_hand(tmp_path):
    videos = _videos()
    run, rows = _run(tmp_path, num_clips=9, videos=videos)
    found = count_ceilings(run)
    assert found["n"] == len(videos) and set(found) == {"n", "num_clips", *READINGS}
    answers = [float(len(core)) for _, _, core in videos]

    def hits(frames, core):
        return sum(any(a <= f <= b for f in frames) for a, b in core)

    lit, told_apart, union = [], [], []
    for r, (_, _, core) in zip(rows, videos, strict=True):
        n_lit = sum(any(a <= f <= b for a, b in core) for f in r["anchor"])
        lit.append(n_lit)
        told_apart.append((n_lit, 0, hits(r["anchor"], core)))
        # the paper's siamese clips: the same interval, starts consecutive after the anchor's (+1, ..., +8)
        union.append(hits([f + j for f in r["anchor"] for j in range(9)], core))
    assert found["averaged anchor"] == pytest.approx(best_mse(answers, [(x, 0) for x in lit]))
    assert found["anchor, flashes told apart"] == pytest.approx(best_mse(answers, told_apart))
    assert found["siamese union"] == pytest.approx(best_mse(answers, union))
    # more clips show more flashes: the union's ceiling is the lowest, and every reading beats the mean
    assert found["siamese union"] < found["anchor, flashes told apart"] <= found["averaged anchor"]
    assert found["averaged anchor"] < np.var(answers)


def test_a_union_of_one_clip_is_the_anchor(tmp_path):
    videos = _videos(30, seed=2)
    run, rows = _run(tmp_path, num_clips=1, videos=videos)
    found = count_ceilings(run)
    anchor_hits = [
        flashes_hit(r["anchor"], Evidence(64, tuple(map(tuple, core))))
        for r, (_, _, core) in zip(rows, videos, strict=True)
    ]
    assert found["siamese union"] == pytest.approx(best_mse([len(c) for _, _, c in videos], anchor_hits))


def test_a_question_whose_flashes_do_not_match_its_answer_or_whose_video_has_no_record_is_named(tmp_path):
    videos = _videos(3)
    run, rows = _run(tmp_path, num_clips=9, videos=videos)
    bad = [dict(rows[0], target=float(len(videos[0][2]) + 1)), *rows[1:]]
    (run / "predictions" / "count_test_last.json").write_text(json.dumps({"metric": "mse", "rows": bad}))
    with pytest.raises(ValueError, match="video 'v0' records .* flashes, its question answers"):
        count_ceilings(run)
    missing = [dict(rows[0], video_id="nowhere"), *rows[1:]]
    (run / "predictions" / "count_test_last.json").write_text(json.dumps({"metric": "mse", "rows": missing}))
    with pytest.raises(ValueError, match="no evidence record for video 'nowhere'"):
        count_ceilings(run)


def test_table5_states_the_ceilings_of_the_pretraining_runs_test_anchors(tmp_path, monkeypatch):
    rel = "runs/pretrain/baseline/s0"
    (tmp_path / rel).mkdir(parents=True)
    run, _ = _run(tmp_path / rel, num_clips=9, videos=_videos())
    monkeypatch.chdir(tmp_path)
    df = pd.DataFrame([{"section": "pretrain", "dataset": "tgif-qa", "variant": "baseline", "run_dir": rel}])
    res = Results(df.reindex(columns=COLUMNS), expected=[])
    found = count_ceilings(run)
    found_by_table = tables._table5_count_ceiling(res, "tgif-qa")
    assert {r: found_by_table[r] for r in READINGS} == {r: found[r] for r in READINGS}
    note = found_by_table["note"]
    assert note.startswith("Count (MSE), the least any model could score from what its clips show")
    assert f"{found['averaged anchor']:.2f} from the anchor's frames averaged" in note
    assert f"{found['anchor, flashes told apart']:.2f} if it also told one flash from the next" in note
    assert f"{found['siamese union']:.2f} from the 9 clips of a SiaSamRea training step together" in note
    assert f"on these {found['n']} test questions' anchors" in note
    assert tables._table5_count_ceiling(res, "msvd-qa") is None  # no pretraining run on it
    (run / "evidence.jsonl").unlink()  # e.g. real data: no flash ground truth, no note
    assert tables._table5_count_ceiling(res, "tgif-qa") is None
