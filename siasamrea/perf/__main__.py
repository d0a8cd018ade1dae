"""``python -m siasamrea.perf [--quick] [--out FILE] [--threads N] [--compile] [--only SECTION ...]``;
``python -m siasamrea.perf --scale paper [--out FILE] [--threads N]``: ResNet-50 + BERT-base cost, memory."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from siasamrea.perf import format_table, run_benchmark, write_report
from siasamrea.perf.timing import available_cores, machine_info

SECTIONS = ("training", "reasoning", "inference", "loading", "loader", "memory", "explore")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m siasamrea.perf", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes (under a minute)")
    ap.add_argument("--out", default="bench.json", help="JSON report path (default: bench.json)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: available cores)")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (full run; slow)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    ap.add_argument("--workdir", default=None, help="keep generated videos here (default: a temp dir)")
    ap.add_argument(
        "--scale",
        choices=("tiny", "paper"),
        default="tiny",
        help="tiny: the embedded default's model (the sections above); paper: ResNet-50 + BERT-base, "
        "random weights, one video (siasamrea.perf.paper; a few minutes on 2 cores)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.scale == "paper":
        # Imported only now: it loads transformers, which must see the offline settings above (and --help
        # should not wait for it).
        from siasamrea.perf.paper import format_paper, run_paper_scale  # noqa: PLC0415

        threads = args.threads or available_cores()
        torch.set_num_threads(threads)
        report = {"machine": machine_info(threads), **run_paper_scale(quick=args.quick, log=log)}
        write_report(report, args.out)
        print(format_paper(report))
        print(f"report: {args.out}")
        return 0
    report = run_benchmark(
        quick=args.quick, threads=args.threads, workdir=args.workdir, compile=args.compile,
        sections=tuple(args.only) if args.only else None, log=log,
    )  # fmt: skip
    write_report(report, args.out)
    print(format_table(report))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
