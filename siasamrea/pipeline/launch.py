"""Running a DVC training stage: every seed of one variant, in this process, under torchrun, or as parallel
processes, then its headline metrics for DVC (:mod:`siasamrea.pipeline.headline`).

A training stage is one variant of one section (and dataset) with every seed of its section: the seeds run
as ``launch.parallel_runs`` processes at once (:func:`run_group`), which on a CPU keeps every core busy with
small models that one process cannot parallelise, and starts one notebook kernel per variant, not per seed.
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
from siasamrea.method.model import TINY_VISION
from siasamrea.pipeline.headline import export_metrics
from siasamrea.pipeline.stages import (
    GROUNDING_DIR,
    grounding_epochs,
    group_dir,
    stage_configs,
)
from siasamrea.pipeline.workspace import dataset_section
from siasamrea.training.cli import train
from siasamrea.training.grounding import ground


def run_grounding(params: dict) -> list[dict]:
    """Train the ResNet on the stills' caption attributes into :data:`GROUNDING_DIR`
    (:mod:`siasamrea.training.grounding`)."""
    g, init = params["init"]["grounding"], params["init"]
    stills = dataset_section(params, init["dataset"])
    model = params.get("model", {})
    return ground(
        stills["root"], stills["cache"], GROUNDING_DIR, vision={**TINY_VISION, **(model.get("vision") or {})},
        stem=model.get("stem", "imagenet"), epochs=g["epochs"], lr=g["lr"], seed=init.get("seed", 0),
    )  # fmt: skip


def run_training(cfg: Config, *, nproc: int = 1, fresh: bool = True) -> dict:
    """Train one configuration: in this process, or under ``torchrun`` with ``nproc`` processes.

    ``fresh``: start from scratch (a DVC stage re-runs because something it depends on changed, so stale
    checkpoints in the run directory must not be resumed). Returns the run's metrics.json.
    """
    out = Path(cfg.run.out_dir)
    if fresh and out.exists():
        shutil.rmtree(out)
    if nproc <= 1:
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
    configs = [c.model_copy(update={"run": c.run.model_copy(update={"threads": threads})}) for c in configs]
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
