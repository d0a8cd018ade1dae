"""The runs a DVC stage trains: the active profile of ``params.yaml`` turned into run configurations.

``params.yaml`` holds the composed profile under ``active:`` (:mod:`siasamrea.pipeline.profiles`); stages
depend on ``active.*`` keys, so switching the profile, or editing one variant, re-runs exactly what it
changes. A notebook receives its stage's identity from papermill (``dataset``, ``variant``, ``seed``) and
calls :func:`stage_configs` & co., which read the matching sections of the profile;
:mod:`siasamrea.pipeline.launch` runs them.

Run directories (``runs/``)::

    runs/init/                                 image-text stand-in (stills) -> initial weights
    runs/pretrain/<variant>/s<seed>/           TGIF-QA multi-task pretraining, from runs/init
    runs/<section>/<dataset>-<variant>/s<seed>/   downstream fine-tuning (finetune, ablations, budget,
                                               sweep), from finetune.init_from
"""

from __future__ import annotations

import copy

from siasamrea.core.mapping import deep_merge
from siasamrea.method.config import Config, build_config, config_from_dict
from siasamrea.pipeline.workspace import dataset_section


def _data_config(params: dict, dataset: str) -> dict:
    d = dataset_section(params, dataset)
    data = params["data"]
    out = {
        "dataset": d.get("format", dataset),
        "root": d["root"],
        "reader": d.get("reader", {}),
        "tasks": d.get("tasks"),
        "eval_splits": d["eval_splits"],
        "tokenizer": data["tokenizer"],
        "frame_size": data["frame_size"],
        "cache": d.get("cache"),
        "evidence": d.get("evidence"),
        "filter_manifest": d.get("filter_manifest"),
        "num_workers": data.get("num_workers", 0),
        "resize": data.get("resize"),
        "use_span": d.get("use_span"),
        "answer_vocab_size": d.get("answer_vocab_size", 1000),
        "train_limit": d.get("train_limit"),
        "eval_limit": d.get("eval_limit"),
    }
    return {k: v for k, v in out.items() if v is not None}


def _base_config(params: dict, dataset: str, out_dir: str, seed: int, stage: dict) -> dict:
    """The run configuration shared by every stage, with the stage's own overrides on top."""
    cfg = {
        "data": _data_config(params, dataset),
        "model": copy.deepcopy(params.get("model", {})),
        "method": copy.deepcopy(params.get("method", {})),
        "optim": copy.deepcopy(params.get("optim", {})),
        "eval": copy.deepcopy(params.get("eval", {})),
        "run": {**copy.deepcopy(params.get("run", {})), "out_dir": out_dir, "seed": int(seed)},
    }
    return deep_merge(cfg, stage.get("config"))


def _finish(values: dict, validate: bool) -> Config:
    # validate=False: each key alone (show-config of a profile whose data is not on this machine)
    return config_from_dict(values) if validate else build_config(values)


GROUNDING_DIR = "runs/grounding"


def grounding_epochs(params: dict) -> int:
    """Epochs of visual grounding before the init stage (``init.grounding.epochs``; 0: none)."""
    return int(((params["init"] or {}).get("grounding") or {}).get("epochs", 0))


def init_config(params: dict, validate: bool = True) -> Config:
    """The image-text stand-in (stills) run that makes the initial weights (from the grounded ResNet, when
    ``init.grounding`` is on: :func:`run_grounding`)."""
    stage = params["init"]
    cfg = _base_config(params, stage["dataset"], "runs/init", stage.get("seed", 0), stage)
    if grounding_epochs(params):
        cfg["model"]["init_from"] = GROUNDING_DIR
    return _finish(cfg, validate)


def pretrain_dir(variant: str, seed: int) -> str:
    return f"{group_dir('pretrain', None, variant)}/s{seed}"


def group_dir(section: str, dataset: str | None, variant: str) -> str:
    """The directory of one training stage: its seeds' run directories ``s<seed>/``."""
    return f"runs/pretrain/{variant}" if section == "pretrain" else f"runs/{section}/{dataset}-{variant}"


def pretrain_config(params: dict, variant: str, seed: int, validate: bool = True) -> Config:
    """TGIF-QA multi-task pretraining of one variant and seed, from the initial weights."""
    stage = params["pretrain"]
    cfg = _base_config(params, stage["dataset"], pretrain_dir(variant, seed), seed, stage)
    cfg = deep_merge(cfg, _variant(params, "pretrain", variant))
    if params["init"].get("enabled", True):
        cfg["model"]["init_from"] = "runs/init"
    return _finish(cfg, validate)


FINETUNE_SECTIONS = ("finetune", "ablations", "budget")


def finetune_dir(section: str, dataset: str, variant: str, seed: int) -> str:
    return f"{group_dir(section, dataset, variant)}/s{seed}"


def finetune_config(
    params: dict, dataset: str, variant: str, seed: int, section: str = "finetune", validate: bool = True
) -> Config:
    """Downstream fine-tuning of one variant and seed, from the shared pretrained checkpoint.

    ``section``: ``finetune`` (Tables 1–4), ``ablations`` (W1/W2, anchor copies, controls, open points) or
    ``budget`` (training-budget sweep); each lists its variants as config overrides. Dataset settings
    (e.g. epochs) come from ``finetune.datasets.<dataset>``.
    """
    if section not in FINETUNE_SECTIONS:
        raise ValueError(f"section must be one of {FINETUNE_SECTIONS}, got {section!r}")
    stage = params["finetune"]
    cfg = _base_config(params, dataset, finetune_dir(section, dataset, variant, seed), seed, stage)
    cfg = deep_merge(cfg, stage.get("datasets", {}).get(dataset, {}).get("config"))
    cfg = deep_merge(cfg, _variant(params, section, variant))
    init = stage.get("init_from")
    if init:
        cfg["model"]["init_from"] = init
    return _finish(cfg, validate)


SWEEP = "sweep"


def sweep_points(params: dict) -> dict[str, dict]:
    """The regime sweep's points: ``{point: {"evidence_scale": f} | {"train_limit": n}}``.

    ``sweep.evidence`` points fine-tune on data generated with that evidence scale (``data/sweep/<point>``);
    ``sweep.train_limits`` points on the first n training questions of the default data. The reference point
    (scale 1, every training question) is the fine-tuning and ablation runs themselves.
    """
    sw = params.get(SWEEP) or {}
    points = {p: {"evidence_scale": float(v)} for p, v in (sw.get("evidence") or {}).items()}
    points.update({p: {"train_limit": int(v)} for p, v in (sw.get("train_limits") or {}).items()})
    return points


def sweep_data_dir(point: str) -> str:
    """Where an evidence point's data is generated (its dataset, cache and evidence under it)."""
    return f"data/sweep/{point}"


def sweep_config(params: dict, point: str, variant: str, seed: int, validate: bool = True) -> Config:
    """One run of the regime sweep: ``sweep.dataset`` fine-tuned as the ``finetune`` section does (with
    ``sweep.config`` on top), with the point's data (evidence points) or training-set size (train-limit
    points)."""
    points = sweep_points(params)
    if point not in points:
        raise KeyError(f"params: sweep has no point {point!r} (known: {sorted(points)})")
    ds, stage = params[SWEEP]["dataset"], params["finetune"]
    cfg = _base_config(params, ds, finetune_dir(SWEEP, point, variant, seed), seed, stage)
    cfg = deep_merge(cfg, stage.get("datasets", {}).get(ds, {}).get("config"))
    cfg = deep_merge(cfg, params[SWEEP].get("config"))  # the sweep's own overrides (e.g. when to evaluate)
    cfg = deep_merge(cfg, _variant(params, SWEEP, variant))
    p = points[point]
    if "evidence_scale" in p:
        root = sweep_data_dir(point)
        cfg["data"].update(
            root=f"{root}/{ds}", cache=f"{root}/cache/{ds}", evidence=f"{root}/{ds}/evidence.jsonl"
        )
    else:
        cfg["data"]["train_limit"] = p["train_limit"]
    if stage.get("init_from"):
        cfg["model"]["init_from"] = stage["init_from"]
    return _finish(cfg, validate)


def _variant(params: dict, section: str, name: str) -> dict:
    variants = params[section]["variants"]
    if name not in variants:
        raise KeyError(f"params: {section}.variants has no {name!r} (known: {sorted(variants)})")
    return variants[name] or {}


def stage_config(
    params: dict,
    stage: str,
    *,
    dataset: str | None = None,
    variant: str | None = None,
    seed: int = 0,
    validate: bool = True,
) -> Config | None:
    """The configuration of a DVC stage instance (``stage`` as in dvc.yaml); ``None`` for a disabled init."""
    if stage == "init":
        return init_config(params, validate) if params["init"].get("enabled", True) else None
    if stage == "pretrain":
        return pretrain_config(params, variant, seed, validate)
    if stage in FINETUNE_SECTIONS:
        return finetune_config(params, dataset, variant, seed, section=stage, validate=validate)
    if stage == SWEEP:
        return sweep_config(params, dataset, variant, seed, validate=validate)
    raise ValueError(f"unknown stage {stage!r}")


def stage_configs(
    params: dict, stage: str, *, dataset: str | None = None, variant: str | None = None, validate: bool = True
) -> list[Config]:
    """Every seed's configuration of a training stage (``init``: one run, or none when disabled)."""
    if stage == "init":
        cfg = stage_config(params, "init", validate=validate)
        return [] if cfg is None else [cfg]
    seeds = params[stage].get("seeds", [0])
    return [stage_config(params, stage, dataset=dataset, variant=variant, seed=int(s), validate=validate)
            for s in seeds]  # fmt: skip


# -- running -------------------------------------------------------------------------------------------


# -- command line ------------------------------------------------------------------------------------------
