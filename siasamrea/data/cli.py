"""``python -m siasamrea.data``: generate the synthetic benchmark, convert GIFs, filter, cache, summarise.

Commands::

    synth        --out DIR [--seed S] [--scale F] [--tgif-format gif|mp4] [--workers N]
    convert-gifs --src DIR --dst DIR [--workers N] [--on-error raise|skip] [--keyframe-interval K]
    filter       --videos DIR [--min-frames 40] --manifest FILE [--on-error raise|skip] [--ext mp4]
    tokenizer    --vocab FILE --out DIR          (word-level tokenizer of the synthetic vocabulary)
    cache        --videos DIR [DIR ...] --out DIR --frame-size S
    stats        --dataset NAME --root DIR [--split S ...] [--option key=value ...] [--vocab-size K]

``stats`` prints one JSON object: per split, the questions, videos, answer vocabulary size, counts per task
and question type, out-of-vocabulary answers against the training vocabulary, and skipped rows with reasons.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from siasamrea.data.filtering import filter_videos, write_manifest
from siasamrea.data.frames import build_frame_cache
from siasamrea.data.registry import (
    available_splits,
    empty_split_message,
    get_dataset,
    read_split,
    summarize,
)
from siasamrea.data.tokenization import build_from_vocab_file
from siasamrea.data.vocab import AnswerVocab
from siasamrea.synthetic.generator import SynthConfig, generate, scaled
from siasamrea.video import convert_gifs


class EmptySplitError(ValueError):
    """A split with no questions (its JSON summary is printed first)."""


def _options(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--option must look like key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise SystemExit(f"--option {k}: cannot parse {v!r} as a YAML value ({e})") from None
    return out


def cmd_synth(args) -> dict:

    if not args.scale > 0:  # also NaN; 0 or less would still write one video of each kind
        raise ValueError(f"synth: --scale must be > 0, got {args.scale}")
    cfg = scaled(SynthConfig(seed=args.seed, tgif_format=args.tgif_format, workers=args.workers), args.scale)
    return generate(cfg, args.out, progress=not args.quiet)


def cmd_convert(args) -> dict:
    report = convert_gifs(args.src, args.dst, workers=args.workers, on_error=args.on_error,
                          keyframe_interval=args.keyframe_interval)  # fmt: skip
    return {**report.summary(), "failures": [{"file": str(r.src), "reason": r.reason} for r in report.failed]}


def cmd_filter(args) -> dict:

    if not Path(args.videos).is_dir():
        raise FileNotFoundError(f"filter: video folder not found: {args.videos}")
    videos = sorted(Path(args.videos).glob(f"*.{args.ext}"))
    if not videos:
        raise SystemExit(f"filter: no *.{args.ext} files in {args.videos}")
    report = filter_videos(videos, min_frames=args.min_frames, on_error=args.on_error, workers=args.workers)
    write_manifest(report, args.manifest)
    return report.summary()


def cmd_tokenizer(args) -> dict:

    tok = build_from_vocab_file(args.vocab, args.out)
    return {"tokenizer": args.out, "vocab_size": len(tok)}


def cmd_cache(args) -> dict:

    missing = [d for d in args.videos if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"cache: video folder not found: {', '.join(missing)}")
    videos = sorted(p for d in args.videos for p in Path(d).glob(f"*.{args.ext}"))
    if not videos:  # an empty cache would only fail later, at the first read
        raise SystemExit(f"cache: no *.{args.ext} files in {', '.join(args.videos)}")
    return build_frame_cache(videos, args.out, args.frame_size, workers=args.workers, progress=not args.quiet)


def cmd_stats(args) -> dict:

    options = _options(args.option)
    get_dataset(args.dataset)  # an unknown name fails first, listing the known ones
    if not Path(args.root).is_dir():
        raise FileNotFoundError(f"{args.dataset} annotation folder not found: {args.root}")
    splits = args.split or available_splits(args.dataset, args.root)
    if not splits:  # not an empty summary: the root is most likely wrong
        raise FileNotFoundError(f"no {args.dataset} annotation files in {args.root}")
    results = {s: read_split(args.dataset, args.root, s, on_error=args.on_error, **options) for s in splits}
    vocab = None
    if "train" in results:
        vocab = AnswerVocab.build(results["train"].records, size=args.vocab_size)
    out = {"dataset": args.dataset, "root": str(args.root),
           "splits": {s: summarize(r, vocab) for s, r in results.items()}}  # fmt: skip
    empty = [empty_split_message(args.dataset, args.root, s, r) for s, r in results.items() if not r.records]
    if empty:  # a summary of 0 questions exiting 0 looks like success
        out["errors"] = empty
        print(json.dumps(out, indent=1, default=str))
        raise EmptySplitError("; ".join(empty))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m siasamrea.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate the synthetic benchmark")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--scale", type=float, default=1.0, help="multiply every video count")
    s.add_argument("--tgif-format", choices=("gif", "mp4"), default="gif")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    c = sub.add_parser("convert-gifs", help="convert a folder of GIFs to mp4 (decord cannot read GIF)")
    c.add_argument("--src", required=True)
    c.add_argument("--dst", required=True)
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    c.add_argument("--keyframe-interval", type=int, default=None)
    c.set_defaults(func=cmd_convert)

    f = sub.add_parser("filter", help="the paper's frame filter: keep videos with >= --min-frames frames")
    f.add_argument("--videos", required=True)
    f.add_argument("--ext", default="mp4")
    f.add_argument("--min-frames", type=int, default=40)
    f.add_argument("--manifest", required=True, help="output manifest (.csv or .jsonl)")
    f.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    f.add_argument("--workers", type=int, default=4)
    f.set_defaults(func=cmd_filter)

    t = sub.add_parser("tokenizer", help="build the word-level tokenizer of a vocabulary file")
    t.add_argument("--vocab", required=True)
    t.add_argument("--out", required=True)
    t.set_defaults(func=cmd_tokenizer)

    k = sub.add_parser("cache", help="decode every frame of the videos into a frame cache")
    k.add_argument("--videos", required=True, nargs="+")
    k.add_argument("--ext", default="mp4")
    k.add_argument("--out", required=True)
    k.add_argument("--frame-size", type=int, required=True)
    k.add_argument("--workers", type=int, default=2)
    k.add_argument("--quiet", action="store_true")
    k.set_defaults(func=cmd_cache)

    st = sub.add_parser("stats", help="print a JSON summary of a dataset's splits")
    st.add_argument("--dataset", required=True)
    st.add_argument("--root", required=True)
    st.add_argument("--split", action="append", help="a split to summarise (default: every split found)")
    st.add_argument("--option", action="append", default=[], help="reader option key=value (e.g. ext=mp4)")
    st.add_argument("--vocab-size", type=int, default=1000)
    st.add_argument("--on-error", choices=("raise", "skip"), default="skip")
    st.set_defaults(func=cmd_stats)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1, default=str))
    return 0
