"""Running a DVC training stage: every seed of one variant in child processes (``launch.parallel_runs`` at
once, each running its share of the seeds in turn; one run per ``torchrun`` when ``nproc_per_node`` > 1),
then its headline metrics for DVC (:mod:`siasamrea.pipeline.headline`).

A training stage is one variant of one section (and dataset) with every seed of its section: the seeds run
as ``launch.parallel_runs`` processes at once (:func:`run_group`), which on a CPU keeps every core busy with
small models that one process cannot parallelise, and starts one notebook kernel per variant, not per seed.
Every run is a child process, so this module (and the stage's notebook kernel) never imports torch or
transformers: that import costs ~8 s per stage, once more than the runs need.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from siasamrea.method.config import Config, dump_config
from siasamrea.pipeline.headline import export_metrics
from siasamrea.pipeline.stages import (
    GROUNDING_DIR,
    INIT_DIR,
    INIT_DRAWS_DIR,
    grounding_dir,
    grounding_epochs,
    group_dir,
    init_draws,
    init_seed,
    stage_configs,
)
from siasamrea.pipeline.workspace import dataset_section


def run_grounding(params: dict, *, out: str | Path, seed: int, threads: int | None = None) -> None:
    """Train the ResNet on the stills' caption attributes (:mod:`siasamrea.training.grounding`, in a child
    process) into ``out`` with ``seed`` (an init draw's: :func:`~siasamrea.pipeline.stages.grounding_dir`,
    :func:`~siasamrea.pipeline.stages.init_seed`). ``threads``: torch's intra-op threads (default: torch's
    own)."""
    g, init = params["init"]["grounding"], params["init"]
    stills = dataset_section(params, init["dataset"])
    model = params.get("model", {})
    cmd = [sys.executable, "-m", "siasamrea.training.grounding", "--stills", stills["root"],
           "--cache", stills["cache"], "--out", str(out), "--seed", str(seed),
           "--vision", json.dumps(model.get("vision") or {}), "--stem", model.get("stem", "imagenet"),
           "--epochs", str(g["epochs"]), "--lr", str(g["lr"])]  # fmt: skip
    if threads:
        cmd += ["--threads", str(threads)]
    subprocess.run(cmd, check=True, env={**os.environ})


def share_threads(params: dict, jobs: int, threads: int | None = None) -> tuple[int, int]:
    """How ``jobs`` runs share the machine: ``launch.parallel_runs`` processes at once (no more than the
    jobs), each with ``threads // parallel`` torch threads (at least 1). ``threads``: the runs' own
    ``run.threads``, else the profile's, else every core. Returns ``(parallel, threads per process)``."""
    parallel = max(1, min(int(params["launch"].get("parallel_runs", 1)), jobs))
    total = threads or (params.get("run") or {}).get("threads") or os.cpu_count() or 1
    return parallel, max(1, total // parallel)


def run_groundings(params: dict, jobs: list[tuple[str | Path, int]]) -> None:
    """Ground several ResNets (``(out, seed)`` each: :func:`run_grounding`), ``launch.parallel_runs`` at
    once with the threads shared between them (:func:`share_threads`)."""
    parallel, threads = share_threads(params, len(jobs))
    with ThreadPoolExecutor(parallel) as pool:  # threads only wait on the processes
        list(pool.map(lambda job: run_grounding(params, out=job[0], seed=job[1], threads=threads), jobs))


def run_init_draws(params: dict) -> tuple[list[Config], list[dict]]:
    """The ``init`` stage: every init draw's grounding (``launch.parallel_runs`` at once, when the profile
    grounds), then every draw's ``init`` run (:func:`run_group`); writes ``runs/init-draws/draws.json``, the
    draws and their directories. Returns the ``init`` runs' configurations and metrics, draw by draw."""
    shutil.rmtree(GROUNDING_DIR, ignore_errors=True)
    shutil.rmtree(INIT_DRAWS_DIR, ignore_errors=True)
    draws = list(range(init_draws(params)))
    if grounding_epochs(params):
        run_groundings(params, [(grounding_dir(k), init_seed(params, k)) for k in draws])
    configs = stage_configs(params, "init")  # validated: every draw's grounded ResNet exists now
    results = run_group(configs, params)
    Path(INIT_DRAWS_DIR).mkdir(parents=True, exist_ok=True)  # a DVC output, also with one draw
    manifest = {"draws": len(draws), "seed_to_draw": "seed mod draws",
                "runs": {k: {"seed": init_seed(params, k), "init": c.run.out_dir,
                             "grounding": grounding_dir(k) if grounding_epochs(params) else None}
                         for k, c in zip(draws, configs, strict=True)}}  # fmt: skip
    (Path(INIT_DRAWS_DIR) / "draws.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return configs, results


def _fresh_run_dir(cfg: Config) -> Path:
    """Empty ``run.out_dir`` with the run's ``launch.yaml`` in it. From scratch: a DVC stage re-runs because
    something it depends on changed, so stale checkpoints in the run directory must not be resumed."""
    out = Path(cfg.run.out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dump_config(cfg, out / "launch.yaml")
    return out / "launch.yaml"


def run_training(cfg: Config, *, nproc: int = 1) -> dict:
    """Train one configuration from scratch in a child process: ``python -m siasamrea.training --config``, or
    ``torchrun`` with ``nproc`` processes. Returns the run's metrics.json."""
    return run_in_one_process([cfg], nproc=nproc)[0]


def run_in_one_process(configs: list[Config], *, nproc: int = 1) -> list[dict]:
    """Train several configurations from scratch, one after the other in one child process (torch's and
    transformers' import, ~9 s, paid once: :mod:`siasamrea.training.cli`), or in ``nproc`` processes under
    ``torchrun``. Returns their metrics.json in order."""
    paths = [str(_fresh_run_dir(c)) for c in configs]
    runner = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    cmd = [sys.executable, *runner, "-m", "siasamrea.training", "--config", *paths]
    subprocess.run(cmd, check=True, env={**os.environ})
    return [json.loads((Path(c.run.out_dir) / "metrics.json").read_text()) for c in configs]


def run_group(configs: list[Config], params: dict) -> list[dict]:
    """Train every configuration of a stage (its seeds) from scratch; returns their metrics in order.

    ``launch.parallel_runs`` > 1 (and ``nproc_per_node`` 1): that many processes at once, each with
    ``run.threads // parallel_runs`` threads (at least 1) and every ``parallel_runs``-th seed, run in turn.
    ``parallel_runs`` 1: every seed in turn in one process. ``nproc_per_node`` > 1: one ``torchrun`` per seed.
    """
    launch = params["launch"]
    parallel, threads = share_threads(params, len(configs), configs[0].run.threads)
    if launch["nproc_per_node"] > 1:
        return [run_training(c, nproc=launch["nproc_per_node"]) for c in configs]
    if parallel <= 1:
        return run_in_one_process(configs)
    configs = [c.model_copy(update={"run": c.run.model_copy(update={"threads": threads})}) for c in configs]
    shares = [configs[i::parallel] for i in range(parallel)]  # seeds 0, 2, 4 and 1, 3, 5: equal lengths
    with ThreadPoolExecutor(parallel) as pool:  # threads only wait on the processes
        done = list(pool.map(run_in_one_process, shares))
    by_dir = {}
    for share, metrics in zip(shares, done, strict=True):
        by_dir.update(zip([c.run.out_dir for c in share], metrics, strict=True))
    return [by_dir[c.run.out_dir] for c in configs]


def run_stage_group(params: dict, stage: str, dataset: str | None = None, variant: str | None = None) -> dict:
    """Run a DVC training stage: every seed (:func:`run_group`; ``init``: every draw, :func:`run_init_draws`),
    then its metrics for DVC (``init``: the draws' mean in ``metrics/init.json``). Returns
    ``{run_dir: metrics}``."""
    if stage == "init":
        if not params["init"].get("enabled", True):
            return {INIT_DIR: run_stage(None, params, stage)}
        configs, results = run_init_draws(params)
    else:
        configs = stage_configs(params, stage, dataset=dataset, variant=variant)
        results = run_group(configs, params)
    group = group_dir(stage, dataset, variant) if stage != "init" else INIT_DIR
    export_metrics(group, [c.run.out_dir for c in configs])
    return {c.run.out_dir: m for c, m in zip(configs, results, strict=True)}


def run_stage(cfg: Config | None, params: dict, stage: str) -> dict:
    """Run a stage's training (``cfg=None``: a disabled init stage, which leaves a note and no weights)."""
    if cfg is None:
        out = Path("runs") / stage
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        if stage == "init":  # the stage's other outputs exist, empty, so that DVC can record them
            for d in (GROUNDING_DIR, INIT_DRAWS_DIR):
                shutil.rmtree(d, ignore_errors=True)
                Path(d).mkdir(parents=True)
        note = {"skipped": f"{stage} is disabled in profile {params['name']!r}"}
        (out / "metrics.json").write_text(json.dumps(note))
        export_metrics(out)
        return note
    metrics = run_training(cfg, nproc=params["launch"]["nproc_per_node"])
    export_metrics(cfg.run.out_dir)
    return metrics
