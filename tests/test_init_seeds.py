"""The ``init`` stage's draws (:mod:`siasamrea.pipeline.stages`): ``init.draws`` initialisations, seed
``s`` of every later stage from draw ``s mod init.draws``, both variants of a seed from the same draw
(paired differences stay paired), and a profile that names another checkpoint keeps it."""

from __future__ import annotations

import copy

import pytest
from conftest import REPO

from siasamrea.analysis.tables import seeds_note
from siasamrea.pipeline import stages
from siasamrea.pipeline.profiles import load_profile


def _default(draws: int | None = None) -> dict:
    params = load_profile("default", REPO)
    if draws is not None:
        params = copy.deepcopy(params)
        params["init"]["draws"] = draws
    return params


def test_the_init_stage_trains_one_run_per_draw_each_from_its_own_grounding():
    params = _default()
    k = params["init"]["draws"]
    assert k == len(params["finetune"]["seeds"]), "the default gives every fine-tuning seed a draw of its own"
    configs = stages.stage_configs(params, "init", validate=False)
    assert [c.run.seed for c in configs] == [params["init"]["seed"] + d for d in range(k)]
    assert [c.run.out_dir for c in configs] == ["runs/init"] + [
        f"runs/init-draws/d{d}/init" for d in range(1, k)
    ]
    assert [c.model.init_from for c in configs] == ["runs/grounding"] + [
        f"runs/init-draws/d{d}/grounding" for d in range(1, k)
    ]
    # the draws differ in nothing but their seed and where they are written and start from
    dumps = [c.model_dump() for c in configs]
    for d in dumps:
        d["run"].pop("seed"), d["run"].pop("out_dir"), d["model"].pop("init_from")
    assert all(d == dumps[0] for d in dumps)


@pytest.mark.parametrize("draws", [1, 4, 6])
def test_seed_s_of_every_later_stage_starts_from_draw_s_mod_k(draws):
    params = _default(draws)
    seeds = params["finetune"]["seeds"]
    expected = {s: "runs/init" if s % draws == 0 else f"runs/init-draws/d{s % draws}/init" for s in range(8)}
    for variant in params["finetune"]["variants"]:  # both sides of a paired difference: the same draw
        for cfg in stages.stage_configs(
            params, "finetune", dataset="msvd-qa", variant=variant, validate=False
        ):
            assert cfg.model.init_from == expected[cfg.run.seed]
    for variant in params["ablations"]["variants"]:
        for cfg in stages.stage_configs(
            params, "ablations", dataset="msvd-qa", variant=variant, validate=False
        ):
            assert cfg.model.init_from == expected[cfg.run.seed]
    for point in stages.sweep_points(params):
        for variant in params["sweep"]["variants"]:
            for s in params["sweep"]["seeds"]:
                cfg = stages.sweep_config(params, point, variant, s, validate=False)
                assert cfg.model.init_from == expected[s]
    for cfg in stages.stage_configs(params, "pretrain", variant="baseline", validate=False):
        assert cfg.model.init_from == expected[cfg.run.seed]
    used = {expected[s] for s in seeds}
    assert len(used) == min(draws, len(seeds)), "every draw is used when there are at least as many seeds"


def test_a_profile_that_starts_elsewhere_keeps_its_checkpoint():
    params = load_profile("paper", REPO)  # fine-tunes from the pretraining's first seed, as the paper does
    assert params["init"]["draws"] == 1
    for seed in (0, 1, 5):
        cfg = stages.finetune_config(params, "msvd-qa", "baseline", seed, validate=False)
        assert cfg.model.init_from == "runs/pretrain/siasamrea/s0"


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, True])
def test_a_bad_number_of_draws_is_refused_by_name(bad):
    params = _default()
    params["init"]["draws"] = bad
    with pytest.raises(ValueError, match="init.draws"):
        stages.stage_configs(params, "init", validate=False)
    with pytest.raises(ValueError, match="init.draws"):
        stages.finetune_config(params, "msvd-qa", "baseline", 1, validate=False)


def test_a_draw_outside_the_stage_is_refused():
    params = _default(3)
    with pytest.raises(ValueError, match="init draw 3 is outside init.draws = 3"):
        stages.init_config(params, validate=False, draw=3)


def test_the_tables_say_what_their_intervals_cover():
    assert "draw s mod 6" in seeds_note(_default()) and "include" in seeds_note(_default())
    assert "leave its randomness out" in seeds_note(_default(1))
    assert seeds_note(load_profile("paper", REPO)) == ""  # no init stage: ClipBERT's weights
