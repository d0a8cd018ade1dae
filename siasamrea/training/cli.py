"""Train and evaluate: ``python -m siasamrea.training --config FILE [FILE ...] [--set key=value ...]``.

The same entry point runs one CPU process or, under ``torchrun --nproc_per_node N -m siasamrea.training ...``,
one process per GPU (or CPU process with gloo) with DDP. Re-running a command whose ``run.out_dir`` holds
checkpoints resumes from the newest intact one. Several config files run one after the other in this process
(each as it would alone: every run seeds its own RNGs), which pays torch's and transformers' import once: the
pipeline gives each of its parallel processes a share of a stage's seeds this way.
"""

from __future__ import annotations

import argparse
import json
import sys

from siasamrea.method.config import ConfigError, describe_keys, load_config
from siasamrea.training.build import check_reader_options
from siasamrea.training.distributed import cleanup, setup
from siasamrea.training.trainer import DivergedError, Trainer

#: Exit codes: 2 a bad configuration (nothing ran), 3 training diverged (no model written).
EXIT_CONFIG, EXIT_DIVERGED = 2, 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    epilog = (
        "configuration keys (--set KEY=VALUE or the same nesting in --config YAML; "
        "KEY: type = default, then its meaning and allowed values):\n" + describe_keys()
    )
    p = argparse.ArgumentParser(prog="python -m siasamrea.training", description=__doc__, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", nargs="+", default=[None], metavar="FILE",
                   help="YAML config file(s) (defaults are used for what they leave out); several run in "
                   "turn, each with the --set overrides, and none runs if one is invalid")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set method.num_clips=5 (YAML value)")  # fmt: skip
    return p.parse_args(argv)


def train(config, overrides=None) -> dict:
    """Run one configuration in this process (joining the torchrun group if there is one)."""

    cfg = config if not isinstance(config, (str, type(None))) else load_config(config, overrides)
    info = setup(cfg.run.device)
    try:
        return Trainer(cfg, info).run()
    finally:
        cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfgs = [load_config(path, args.overrides) for path in args.config]
        for cfg in cfgs:
            check_reader_options(cfg)
    except (ConfigError, FileNotFoundError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG

    for cfg in cfgs:
        try:
            result = train(cfg)
        except DivergedError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_DIVERGED
        if result:
            print(json.dumps({k: result[k] for k in ("best", "last")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
