"""The runs a DVC stage trains: the active profile of ``params.yaml`` turned into run configurations.

``params.yaml`` holds the composed profile under ``active:`` (:mod:`siasamrea.pipeline.profiles`); stages
depend on ``active.*`` keys, so switching the profile, or editing one variant, re-runs exactly what it
changes. A notebook receives its stage's identity from papermill (``dataset``, ``variant``, ``seed``) and
calls :func:`stage_configs` & co., which read the matching sections of the profile;
:mod:`siasamrea.pipeline.launch` runs them.

Run directories (``runs/``)::

    runs/grounding/, runs/init/                the grounded ResNet and the image-text stand-in (stills)
                                               -> initial weights: init draw 0
    runs/init-draws/d<k>/{grounding,init}/     init draws 1 .. init.draws-1 (seed init.seed + k)
    runs/pretrain/<variant>/s<seed>/           TGIF-QA multi-task pretraining, from init draw seed mod k
    runs/<section>/<dataset>-<variant>/s<seed>/   downstream fine-tuning (finetune, ablations, budget,
                                               sweep), from finetune.init_from (runs/init: init draw
                                               seed mod k)

The init draws: the ``init`` stage trains ``init.draws`` initialisations (grounding and ``init`` run, seeds
``init.seed + k``), and the run of seed ``s`` of every later stage starts from draw ``s mod init.draws``. With
as many draws as fine-tuning seeds, each seed has a draw of its own, so the seeds' intervals include the
initialisation's randomness, which another CPU's floating-point kernels re-draw (README, *Re-running on
another machine*); paired differences stay paired (both variants of seed ``s`` start from the same draw).
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
INIT_DIR = "runs/init"
INIT_DRAWS_DIR = "runs/init-draws"


def init_draws(params: dict) -> int:
    """How many initialisations the ``init`` stage draws (``init.draws``, default 1)."""
    k = (params["init"] or {}).get("draws", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"params: init.draws must be a whole number >= 1, got {k!r}")
    return k


def init_draw(params: dict, seed: int) -> int:
    """The init draw the run of ``seed`` starts from: ``seed mod init.draws``."""
    return int(seed) % init_draws(params)


def init_dir(draw: int) -> str:
    """The ``init`` run of a draw: :data:`INIT_DIR` for draw 0, ``runs/init-draws/d<k>/init`` after it."""
    return INIT_DIR if draw == 0 else f"{INIT_DRAWS_DIR}/d{draw}/init"


def grounding_dir(draw: int) -> str:
    """The grounded ResNet of a draw: :data:`GROUNDING_DIR` for draw 0, ``runs/init-draws/d<k>/grounding``."""
    return GROUNDING_DIR if draw == 0 else f"{INIT_DRAWS_DIR}/d{draw}/grounding"


def init_seed(params: dict, draw: int) -> int:
    """The seed of a draw's grounding and ``init`` runs: ``init.seed + draw``."""
    return int(params["init"].get("seed", 0)) + int(draw)


def _start_from(params: dict, init_from: str | None, seed: int) -> str | None:
    """Where the run of ``seed`` starts: its init draw when ``init_from`` is the init stage's output."""
    if init_from and init_from.rstrip("/") == INIT_DIR:
        return init_dir(init_draw(params, seed))
    return init_from


def grounding_epochs(params: dict) -> int:
    """Epochs of visual grounding before the init stage (``init.grounding.epochs``; 0: none)."""
    return int(((params["init"] or {}).get("grounding") or {}).get("epochs", 0))


def init_config(params: dict, validate: bool = True, draw: int = 0) -> Config:
    """The image-text stand-in (stills) run of one init draw, which makes its initial weights (from the draw's
    grounded ResNet, when ``init.grounding`` is on: :func:`~siasamrea.pipeline.launch.run_grounding`)."""
    if not 0 <= draw < init_draws(params):
        raise ValueError(f"init draw {draw} is outside init.draws = {init_draws(params)}")
    stage = params["init"]
    cfg = _base_config(params, stage["dataset"], init_dir(draw), init_seed(params, draw), stage)
    if grounding_epochs(params):
        cfg["model"]["init_from"] = grounding_dir(draw)
    return _finish(cfg, validate)


def pretrain_dir(variant: str, seed: int) -> str:
    return f"{group_dir('pretrain', None, variant)}/s{seed}"


def group_dir(section: str, dataset: str | None, variant: str) -> str:
    """The directory of one training stage: its seeds' run directories ``s<seed>/``."""
    return f"runs/pretrain/{variant}" if section == "pretrain" else f"runs/{section}/{dataset}-{variant}"


def pretrain_config(params: dict, variant: str, seed: int, validate: bool = True) -> Config:
    """TGIF-QA multi-task pretraining of one variant and seed, from its init draw's weights."""
    stage = params["pretrain"]
    cfg = _base_config(params, stage["dataset"], pretrain_dir(variant, seed), seed, stage)
    cfg = deep_merge(cfg, _variant(params, "pretrain", variant))
    if params["init"].get("enabled", True):
        cfg["model"]["init_from"] = _start_from(params, INIT_DIR, seed)
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
    init = _start_from(params, stage.get("init_from"), seed)
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
    init = _start_from(params, stage.get("init_from"), seed)
    if init:
        cfg["model"]["init_from"] = init
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
    """The configuration of a DVC stage instance (``stage`` as in dvc.yaml; for ``init``, ``seed`` is the
    draw); ``None`` for a disabled init."""
    if stage == "init":
        return init_config(params, validate, draw=seed) if params["init"].get("enabled", True) else None
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
    """Every seed's configuration of a training stage (``init``: one run per draw, or none when disabled)."""
    if stage == "init":
        if not params["init"].get("enabled", True):
            return []
        return [init_config(params, validate, draw=k) for k in range(init_draws(params))]
    seeds = params[stage].get("seeds", [0])
    return [stage_config(params, stage, dataset=dataset, variant=variant, seed=int(s), validate=validate)
            for s in seeds]  # fmt: skip
