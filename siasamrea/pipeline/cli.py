"""``python -m siasamrea.pipeline show-config <stage> ...``: the configuration a stage would run, resolved
from the active profile (or another one), and the command that launches it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from siasamrea.method.config import ConfigError
from siasamrea.pipeline.profiles import load_profile
from siasamrea.pipeline.stages import FINETUNE_SECTIONS, stage_config
from siasamrea.pipeline.workspace import PARAMS_FILE, load_params


def show_config(argv: list[str] | None = None) -> int:
    """``python -m siasamrea.pipeline show-config <stage> [--dataset D] [--variant V] [--seed S]
    [--profile P]``: print the resolved configuration a stage would run (YAML) and the command that
    launches it. Returns 1 (after printing) if the configuration does not validate here, e.g. data or
    checkpoints missing."""
    ap = argparse.ArgumentParser(
        prog="python -m siasamrea.pipeline show-config", description=show_config.__doc__
    )
    ap.add_argument("stage", choices=("init", "pretrain", *FINETUNE_SECTIONS))
    ap.add_argument("--dataset", default=None, help="downstream dataset (finetune, ablations, budget)")
    ap.add_argument("--variant", default=None, help="variant name of the stage's section in params.yaml")
    ap.add_argument(
        "--seed", type=int, default=0, help="the run's seed (init: the init draw, 0 .. init.draws - 1)"
    )
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
    except (KeyError, ValueError) as exc:  # a dataset, variant or draw the profile lacks: no traceback
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
        print("usage: python -m siasamrea.pipeline show-config <stage> [--dataset D] [--variant V] "
              "[--seed S] [--profile P]", file=sys.stderr)  # fmt: skip
        return 2
    return show_config(argv[1:])
