"""What the DVC stages do, behind the notebooks: the active profile of ``params.yaml`` turned into runs.

``params.yaml`` holds every profile (``profiles.smoke``, ``profiles.default``, ``profiles.paper``) and
``active: *<profile>`` selects one; stages depend on ``active.*`` keys, so switching the profile, or
editing one variant, re-runs exactly what it changes. A notebook receives its stage's identity from
papermill (``dataset``, ``variant``, ``seed``) and calls :func:`finetune_config` & co., which read the
matching sections of the active profile.

A training stage is one variant of one section (and dataset) with every seed of its section: the seeds run
as ``launch.parallel_runs`` processes at once (:func:`run_group`), which on a CPU keeps every core busy with
small models that one process cannot parallelise, and starts one notebook kernel per variant, not per seed.

Run directories (``runs/``)::

    runs/init/                                 image-text stand-in (stills) -> initial weights
    runs/pretrain/<variant>/s<seed>/           TGIF-QA multi-task pretraining, from runs/init
    runs/<section>/<dataset>-<variant>/s<seed>/   downstream fine-tuning (finetune, ablations, budget,
                                               sweep), from runs/pretrain/<init>
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from siasamrea.core.mapping import deep_merge
from siasamrea.method.config import Config, ConfigError, _build, config_from_dict, dump_config
from siasamrea.method.model import TINY_VISION
from siasamrea.pipeline.profiles import load_profile
from siasamrea.training.grounding import ground

PARAMS_FILE = "params.yaml"
ROOT_MARKERS = (PARAMS_FILE, "dvc.yaml")


# -- params ------------------------------------------------------------------------------------------------
def find_root(start: str | Path = ".") -> Path:
    """The repository root: the nearest directory at or above ``start`` holding params.yaml and dvc.yaml."""
    here = Path(start).resolve()
    for d in (here, *here.parents):
        if all((d / m).is_file() for m in ROOT_MARKERS):
            return d
    raise FileNotFoundError(f"{here}: neither it nor a parent directory holds {' and '.join(ROOT_MARKERS)}")


def enter_root(start: str | Path = ".") -> Path:
    """``chdir`` to the repository root and return it. Every path of the pipeline is relative to the root:
    papermill runs a stage there (``--cwd .``), JupyterLab starts a notebook's kernel in ``notebooks/``."""
    root = find_root(start)
    if Path.cwd().resolve() != root:
        print(f"working directory: {root} (the repository root)")
        os.chdir(root)
    return root


def load_params(path: str | Path = PARAMS_FILE, profile: str | None = None) -> dict:
    """The active profile of ``params.yaml`` (a plain dict).

    ``profile``, when given, must be the active profile's name: a stage passes the profile it was launched
    for, so a notebook executed against a different ``active`` fails instead of mixing runs. ``None`` (what
    a notebook opened in JupyterLab uses) takes whichever profile is active.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no params file (run from the repository root)")
    params = yaml.safe_load(p.read_text())
    if "active" not in params:
        raise KeyError(
            f"{p}: no 'active' profile (write one with `python -m siasamrea.pipeline.profiles use <profile>`)"
        )
    active = params["active"]
    if profile is not None and active.get("name") != profile:
        raise ValueError(
            f"{p}: the active profile is {active.get('name')!r}, the notebook asked for {profile!r}"
        )
    return active



def dataset_section(params: dict, dataset: str) -> dict:
    """``data`` settings of one dataset: root, reader options, splits (from ``params.data.datasets``)."""
    datasets = params["data"]["datasets"]
    if dataset not in datasets:
        raise KeyError(f"params: data.datasets has no {dataset!r} (known: {sorted(datasets)})")
    return datasets[dataset]


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
    # validate=False: types only (show-config of a profile whose data is not on this machine)
    return config_from_dict(values) if validate else _build(Config, values, "")


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


def run_grounding(params: dict) -> list[dict]:
    """Train the ResNet on the stills' caption attributes into :data:`GROUNDING_DIR` (siasamrea.training.grounding)."""
    g, init = params["init"]["grounding"], params["init"]
    stills = dataset_section(params, init["dataset"])
    model = params.get("model", {})
    return ground(
        stills["root"], stills["cache"], GROUNDING_DIR, vision={**TINY_VISION, **(model.get("vision") or {})},
        stem=model.get("stem", "imagenet"), epochs=g["epochs"], lr=g["lr"], seed=init.get("seed", 0),
    )  # fmt: skip


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
    """One run of the regime sweep: ``sweep.dataset`` fine-tuned as the ``finetune`` section does, with the
    point's data (evidence points) or training-set size (train-limit points)."""
    points = sweep_points(params)
    if point not in points:
        raise KeyError(f"params: sweep has no point {point!r} (known: {sorted(points)})")
    ds, stage = params[SWEEP]["dataset"], params["finetune"]
    cfg = _base_config(params, ds, finetune_dir(SWEEP, point, variant, seed), seed, stage)
    cfg = deep_merge(cfg, stage.get("datasets", {}).get(ds, {}).get("config"))
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
def run_training(cfg: Config, *, nproc: int = 1, fresh: bool = True) -> dict:
    """Train one configuration: in this process, or under ``torchrun`` with ``nproc`` processes.

    ``fresh``: start from scratch (a DVC stage re-runs because something it depends on changed, so stale
    checkpoints in the run directory must not be resumed). Returns the run's metrics.json.
    """
    out = Path(cfg.run.out_dir)
    if fresh and out.exists():
        shutil.rmtree(out)
    if nproc <= 1:
        from siasamrea.training.cli import train

        train(cfg)
    else:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "launch.yaml")
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "-m", "siasamrea.training", "--config", str(out / "launch.yaml")]  # fmt: skip
        subprocess.run(cmd, check=True, env={**os.environ})
    return json.loads((out / "metrics.json").read_text())


def _run_subprocess(cfg: Config) -> dict:
    """One run in its own process (``python -m siasamrea.training --config``), from scratch."""
    out = Path(cfg.run.out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dump_config(cfg, out / "launch.yaml")
    cmd = [sys.executable, "-m", "siasamrea.training", "--config", str(out / "launch.yaml")]
    subprocess.run(cmd, check=True, env={**os.environ})
    return json.loads((out / "metrics.json").read_text())


def run_group(configs: list[Config], params: dict) -> list[dict]:
    """Train every configuration of a stage (its seeds) from scratch; returns their metrics in order.

    ``launch.parallel_runs`` > 1 (and one process per run): that many runs at once, each in its own process
    with ``run.threads // parallel_runs`` threads (at least 1); a lone run keeps every thread. Otherwise one
    after the other, each as :func:`run_training` launches it (torchrun when ``nproc_per_node`` > 1).
    """
    launch = params["launch"]
    parallel = min(int(launch.get("parallel_runs", 1)), len(configs))
    if parallel <= 1 or launch["nproc_per_node"] > 1:
        return [run_training(c, nproc=launch["nproc_per_node"]) for c in configs]
    threads = max(1, (configs[0].run.threads or os.cpu_count() or 1) // parallel)
    configs = [dataclasses.replace(c, run=dataclasses.replace(c.run, threads=threads)) for c in configs]
    with ThreadPoolExecutor(parallel) as pool:  # threads only wait on the processes
        return list(pool.map(_run_subprocess, configs))


def run_stage_group(params: dict, stage: str, dataset: str | None = None, variant: str | None = None) -> dict:
    """Run a DVC training stage: every seed (:func:`run_group`), then its metrics for DVC. Returns
    ``{run_dir: metrics}``."""
    if stage == "init" and params["init"].get("enabled", True) and grounding_epochs(params):
        shutil.rmtree(GROUNDING_DIR, ignore_errors=True)
        run_grounding(params)
    configs = stage_configs(params, stage, dataset=dataset, variant=variant)
    if not configs:  # a disabled init
        return {"runs/init": run_stage(None, params, stage)}
    results = run_group(configs, params)
    group = group_dir(stage, dataset, variant) if stage != "init" else configs[0].run.out_dir
    export_metrics(group, [c.run.out_dir for c in configs])
    return {c.run.out_dir: m for c, m in zip(configs, results, strict=True)}


def run_stage(cfg: Config | None, params: dict, stage: str) -> dict:
    """Run a stage's training (``cfg=None``: a disabled init stage, which leaves a note and no weights)."""
    if cfg is None:
        out = Path("runs") / stage
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        note = {"skipped": f"{stage} is disabled in profile {params['name']!r}"}
        (out / "metrics.json").write_text(json.dumps(note))
        export_metrics(out)
        return note
    metrics = run_training(cfg, nproc=params["launch"]["nproc_per_node"])
    export_metrics(cfg.run.out_dir)
    return metrics


def metrics_path(run_dir: str | Path) -> Path:
    """Where a run's headline metrics are exported for DVC: ``runs/x/y`` -> ``metrics/x/y.json`` (DVC
    metrics cannot live inside another output's directory)."""
    rel = Path(run_dir).relative_to("runs")
    return Path("metrics") / rel.parent / f"{rel.name}.json"


#: The split a dataset's headline number is reported on: the test sets, and How2QA's public val set.
HEADLINE_SPLIT = {"msvd-qa": "test", "msrvtt-qa": "test", "tgif-qa": "test", "activitynet-qa": "test",
                  "how2qa": "val"}  # fmt: skip


def headline_metrics(metrics: dict) -> dict:
    """A run's headline numbers for ``dvc metrics show`` / ``dvc exp show``: the last-epoch value on the
    headline split (accuracy in %, count as MSE).

    A single-task run gives ``{"acc": last, "best": best epoch's}`` (the best epoch on the reported split is
    the paper's protocol, kept beside the headline); a multi-task run (init, pretraining) the last value per
    task (``{"action": ..., "count_mse": ...}``), so the table keeps a few columns. The full metrics (every
    split and question type) stay in the run's ``metrics.json``: exporting them gave ``dvc exp show`` over
    1,800 columns."""
    if "skipped" in metrics:
        return {}
    per_task = {}
    for task, splits in metrics.get("best", {}).items():
        split = HEADLINE_SPLIT.get(task, "test")
        split = split if split in splits else list(splits)[-1]
        best = splits[split] or {}
        last = (metrics.get("last", {}).get(task, {}) or {}).get(split) or {}
        name = "mse" if "mse" in (best or last) else "acc"
        scale = 100.0 if name == "acc" else 1.0
        value = lambda e, n=name, k=scale: None if e.get(n) is None else round(e[n] * k, 2)  # noqa: E731
        per_task[task] = (name, value(last), value(best))
    if len(per_task) == 1:
        name, last, best = next(iter(per_task.values()))
        return {name: last, "best": best}
    return {(t if name == "acc" else f"{t}_{name}"): last for t, (name, last, _) in per_task.items()}


def group_headline(runs: list[dict]) -> dict:
    """The seeds' mean of each headline number (:func:`headline_metrics`) and how many seeds there are."""
    heads = [h for h in map(headline_metrics, runs) if h]
    if not heads:
        return {}
    out = {}
    for key in heads[0]:
        values = [h[key] for h in heads if h.get(key) is not None]
        out[key] = round(sum(values) / len(values), 2) if values else None
    return {**out, "seeds": len(heads)}


def export_metrics(run_dir: str | Path, runs: list[str | Path] | None = None) -> None:
    """Write headline metrics under ``metrics/`` for DVC: of one run, or (``runs``) the seeds' mean of a
    stage's runs, at the stage directory's path (:func:`metrics_path`)."""
    dst = metrics_path(run_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    metrics = [json.loads((Path(r) / "metrics.json").read_text()) for r in (runs or [run_dir])]
    dst.write_text(json.dumps(group_headline(metrics), indent=1) + "\n")


def metrics_markdown(metrics: dict) -> str:
    """A Markdown table of a run's best and last metrics per task and split."""
    if "skipped" in metrics:
        return f"*{metrics['skipped']}*"
    rows = []
    for task, splits in metrics["best"].items():
        for split, best in splits.items():
            last = metrics["last"][task][split]
            name = "mse" if "mse" in (best or last) else "acc"
            rows.append({"task": task, "split": split, "metric": name,
                         "best": f"{best[name]:.4f}" if best else "n/a",
                         "best epoch": (best or {}).get("epoch", ""),
                         "last": f"{last[name]:.4f}"})  # fmt: skip
    table = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
    return f"{table}\n\n{metrics['steps']} steps, {metrics['train_seconds']} s of training"


def split_table(summary: dict) -> list[dict]:
    """One row per dataset and split of the data stage's summary."""
    rows = []
    for ds, splits in summary["datasets"].items():
        for split, s in splits.items():
            rows.append({"dataset": ds, "split": split, "questions": s["questions"], "videos": s["videos"],
                         "answer_vocab": s.get("answer_vocab_size"), "oov": (s.get("vocab") or {}).get("oov"),
                         "skipped": s["skipped"]["total"]})  # fmt: skip
    return rows


def summarize_run(run_dir: str | Path) -> dict:
    """The headline numbers of a finished run (for notebooks to display)."""
    d = Path(run_dir)
    metrics = json.loads((d / "metrics.json").read_text())
    data = json.loads((d / "data.json").read_text())
    return {"best": metrics["best"], "last": metrics["last"], "train_seconds": metrics["train_seconds"],
            "data": data["train"]}  # fmt: skip


# -- command line ------------------------------------------------------------------------------------------
def show_config(argv: list[str] | None = None) -> int:
    """``python -m siasamrea.pipeline.stages show-config <stage> [--dataset D] [--variant V] [--seed S]
    [--profile P]``: print the resolved configuration a stage would run (YAML) and the command that
    launches it. Returns 1 (after printing) if the configuration does not validate here, e.g. data or
    checkpoints missing."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m siasamrea.pipeline.stages show-config", description=show_config.__doc__
    )
    ap.add_argument("stage", choices=("init", "pretrain", *FINETUNE_SECTIONS))
    ap.add_argument("--dataset", default=None, help="downstream dataset (finetune, ablations, budget)")
    ap.add_argument("--variant", default=None, help="variant name of the stage's section in params.yaml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--params", default=PARAMS_FILE)
    ap.add_argument(
        "--profile", default=None, help="a profile of profiles/ (default: the active one of params.yaml)"
    )
    args = ap.parse_args(argv)
    if args.profile is None:
        params = load_params(args.params)
    else:
        try:
            params = load_profile(args.profile, Path(args.params).resolve().parent)
        except (FileNotFoundError, ValueError) as exc:
            ap.error(str(exc))
    if args.stage != "init" and args.variant is None:
        ap.error(f"{args.stage} needs --variant (see {args.stage}.variants in {args.params})")
    if args.stage in FINETUNE_SECTIONS and args.dataset is None:
        ap.error(f"{args.stage} needs --dataset")
    kw = dict(dataset=args.dataset, variant=args.variant, seed=args.seed)
    try:
        cfg = stage_config(params, args.stage, validate=False, **kw)
    except KeyError as exc:  # a dataset or variant the profile does not have: say which, no traceback
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    if cfg is None:
        print(f"# {args.stage} is disabled in profile {params['name']!r}")
        return 0
    nproc = params["launch"]["nproc_per_node"]
    print(f"# profile {params['name']!r}, stage {args.stage}; launched as:")
    launch = f"torchrun --nproc_per_node {nproc} -m" if nproc > 1 else "python -m"
    print(f"#   {launch} siasamrea.training --config {cfg.run.out_dir}/launch.yaml")
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    try:
        stage_config(params, args.stage, **kw)
    except (ConfigError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"not runnable here: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "show-config":
        print("usage: python -m siasamrea.pipeline.stages show-config <stage> [--dataset D] [--variant V] "
              "[--seed S] [--profile P]", file=sys.stderr)  # fmt: skip
        return 2
    return show_config(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
