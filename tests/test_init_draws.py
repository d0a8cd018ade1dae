"""The init-draw measurement (:mod:`siasamrea.analysis.init_draws`): its runs differ from the pipeline's only
in the initialisation, and its statistics are the textbook ones, recomputed here with numpy/scipy. Its end to
end run on the smoke workspace is in ``tests/test_pipeline.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import REPO
from scipy import stats

from siasamrea.analysis.init_draws import SEEDS_ONLY, draw_configs, summarise, to_markdown
from siasamrea.pipeline.profiles import load_profile
from siasamrea.pipeline.stages import finetune_config


def _strip(cfg) -> dict:
    d = cfg.model_dump()
    d["run"].pop("out_dir")
    d["model"].pop("init_from")
    return d


@pytest.mark.parametrize("draw", [3, 7])
def test_a_draw_changes_only_the_initialisation_of_the_stage_runs(tmp_path, draw):
    params = load_profile("default", REPO)
    init, runs = draw_configs(params, draw, tmp_path, "msvd-qa", ["baseline", "siasamrea"], validate=False)
    if draw < params["init"]["draws"]:  # the init stage trained this draw: it is reused, not trained again
        assert init is None
        start = f"runs/init-draws/d{draw}/init"
    else:
        assert init.run.seed == draw and init.run.out_dir == str(tmp_path / f"draw{draw}" / "init")
        assert init.model.init_from == str(tmp_path / f"draw{draw}" / "grounding")  # the default grounds
        start = init.run.out_dir
    seeds = params["finetune"]["seeds"]
    assert len(runs) == 2 * len(seeds)
    expected = [(v, s) for v in ("baseline", "siasamrea") for s in seeds]
    for cfg, (variant, seed) in zip(runs, expected, strict=True):
        stage = finetune_config(params, "msvd-qa", variant, seed, validate=False)
        assert cfg.model.init_from == start  # every seed from the one draw (the stage: seed s from draw s)
        assert cfg.run.out_dir == str(tmp_path / f"draw{draw}" / f"msvd-qa-{variant}" / f"s{seed}")
        assert _strip(cfg) == _strip(stage)  # same seed, data, method, optimiser, evaluation conditions


@pytest.mark.parametrize(
    ("draws", "draw", "variants", "message"),
    [
        (1, 0, ["baseline", "siasamrea"], "workspace's own init"),  # one draw: its runs are the stage's
        (6, 1, ["siasamrea"], "must include 'baseline'"),
        (6, 1, ["baseline", "nonesuch"], "finetune.variants"),
    ],
)
def test_bad_draws_and_variants_are_refused(tmp_path, draws, draw, variants, message):
    params = load_profile("default", REPO)
    params["init"]["draws"] = draws
    with pytest.raises(ValueError, match=message):
        draw_configs(params, draw, tmp_path, "msvd-qa", variants, validate=False)


def _t_half(x: np.ndarray) -> float:
    return stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))


def _by_seed(values: np.ndarray) -> dict[int, float]:
    return {seed: float(v) for seed, v in enumerate(values)}


def test_summary_statistics_match_an_independent_computation():
    rng = np.random.default_rng(0)
    per_draw, raw = {}, {}
    for draw, shift in ((0, 0.0), (1, 0.04), (2, -0.03)):  # a draw moves every seed's accuracy together
        anchor = 0.45 + shift + rng.normal(0, 0.01, 6)
        multi = anchor + 0.12 + rng.normal(0, 0.01, 6)
        sia = anchor - 0.1 + rng.normal(0, 0.02, 6)
        shown = 0.85 + rng.normal(0, 0.03, 6)
        raw[draw] = (anchor, multi, sia)
        per_draw[draw] = {
            "baseline": {"anchor": _by_seed(anchor), "multi_clip": _by_seed(multi)},
            "shown": _by_seed(shown),
            "siasamrea": _by_seed(sia),
        }
    out = summarise(per_draw)
    for draw, (anchor, multi, sia) in raw.items():
        row = out["draws"][draw]
        assert row["baseline"].mean == pytest.approx(100 * anchor.mean())
        assert row["baseline"].half == pytest.approx(_t_half(100 * anchor))
        gap = 100 * (sia - anchor)
        assert row["siasamrea − baseline"].mean == pytest.approx(gap.mean())
        assert row["siasamrea − baseline"].half == pytest.approx(_t_half(gap))  # paired: the differences' t
        assert row["multi-clip − anchor"].mean == pytest.approx(100 * (multi - anchor).mean())
    means = np.array([100 * raw[d][0].mean() for d in (0, 1, 2)])
    spread = out["spread"]["baseline"]
    assert spread["draw means"] == pytest.approx(list(means))
    assert spread["sd of draw means"] == pytest.approx(means.std(ddof=1))
    seeds_only = math.sqrt(np.mean([np.var(100 * raw[d][0], ddof=1) / 6 for d in (0, 1, 2)]))
    assert spread[SEEDS_ONLY] == pytest.approx(seeds_only)
    # the draws were built to differ by several points, far more than six seeds' noise of 1 point each
    assert spread["sd of draw means"] > 5 * spread[SEEDS_ONLY]
    table = to_markdown(out, "msvd-qa")
    assert table.count("\n") == 2 + 4 and f"{means[1]:.1f} ± " in table  # header, rule, four rows
