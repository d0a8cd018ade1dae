"""The data stage: from nothing (synthetic) or from downloaded releases (real) to trainable datasets.

Synthetic (the embedded default)::

    generate the benchmark (TGIF-QA part as GIFs, as released) -> convert GIFs to mp4 -> 40-frame filter
    (manifest) -> word-level tokenizer -> decoded-frame caches -> a JSON summary of every split

Real (the ``paper`` profile): the user places each release under ``data/real/<dataset>/`` (annotation files
plus a ``videos/`` or ``gifs/`` folder); the stage converts TGIF-QA's GIFs, applies the 40-frame filter and
summarises every split. The tokenizer is the pretrained BERT's (``data.tokenizer`` points at it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from siasamrea.data.filtering import filter_videos, write_manifest
from siasamrea.data.frames import build_frame_cache
from siasamrea.data.registry import available_splits, read_split, summarize
from siasamrea.data.tokenization import build_from_vocab_file
from siasamrea.data.vocab import AnswerVocab
from siasamrea.synthetic.generator import COUNT_FIELDS, SynthConfig, generate
from siasamrea.video import convert_gifs


def convert_and_filter(tgif: dict, min_frames: int, workers: int) -> dict:
    """GIFs -> mp4 (``gif_folder`` -> ``mp4_folder``), then the frame filter over the mp4s (its manifest is
    ``filter_manifest``). Unconvertible GIFs and unreadable videos are counted and listed, never dropped."""
    out: dict = {}
    gifs, mp4 = Path(tgif["gif_folder"]), Path(tgif["mp4_folder"])
    if gifs.is_dir():
        report = convert_gifs(gifs, mp4, workers=workers, on_error="skip", preset="veryfast",
                              keyframe_interval=tgif.get("keyframe_interval", 16))  # fmt: skip
        failures = [{"file": str(r.src), "reason": r.reason} for r in report.failed]
        out["convert_gifs"] = {**report.summary(), "failures": failures}
    videos = sorted(mp4.glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"{mp4}: no mp4 videos to filter")
    report = filter_videos(videos, min_frames=min_frames, on_error="skip", workers=workers)
    write_manifest(report, tgif["filter_manifest"])
    out["frame_filter"] = report.summary()
    return out


def dataset_stats(datasets: dict) -> dict:
    """Per dataset and split: questions, videos, vocabulary, question types, skipped rows (``stats``)."""
    out = {}
    for name, d in datasets.items():
        fmt, root, reader = d.get("format", name), d["root"], d.get("reader", {})
        reader = {k: v for k, v in reader.items() if k != "task"}
        splits = available_splits(fmt, root)
        results = {s: read_split(fmt, root, s, on_error="skip", **reader) for s in splits}
        vocab = (
            AnswerVocab.build(results["train"].records, d.get("answer_vocab_size", 1000))
            if "train" in results
            else None
        )
        out[name] = {s: summarize(r, vocab) for s, r in results.items()}
    return out


def prepare(params: dict, *, progress: bool = False) -> dict:
    """Run the data stage for the active profile's ``data`` section; returns (and writes) its summary."""
    data = params["data"]
    t0 = time.perf_counter()
    summary: dict = {"source": data["source"]}
    if data["source"] == "synthetic":
        root = Path(data["synthetic_root"])
        synth = SynthConfig(**data["synth"])
        wanted = sorted(set(synth.skipped_datasets) & set(data["datasets"]))
        if wanted:
            raise ValueError(
                f"params: data.datasets lists {wanted}, but data.synth does not generate them "
                "(how2qa_train and how2qa_val are 0): give them counts or drop them from data.datasets"
            )
        summary["synthetic"] = generate(synth, root, progress=progress)
        build_from_vocab_file(root / "vocab.txt", data["tokenizer"])
    elif data["source"] != "real":
        raise ValueError(f"params: data.source must be 'synthetic' or 'real', got {data['source']!r}")
    tgif = data["datasets"].get("tgif-qa")
    if tgif is not None and "mp4_folder" in tgif:
        summary.update(convert_and_filter(tgif, data["min_frames"], data.get("workers", 2)))
    caches = {}
    for name, d in data["datasets"].items():
        if d.get("cache"):
            folder = Path(d["root"]) / d.get("video_folder", "videos")
            videos = sorted(folder.glob("*.mp4"))
            caches[name] = build_frame_cache(
                videos, d["cache"], data["frame_size"], workers=data.get("workers", 2)
            )
    summary["frame_caches"] = caches
    summary["datasets"] = dataset_stats(data["datasets"])
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(data["stats"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=str))
    metrics = Path(data.get("metrics", "metrics/data.json"))
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(headline(summary), indent=1))
    return summary


def prepare_sweep(params: dict, root: str | Path, evidence_scale: float) -> dict:
    """The data of one evidence point of the regime sweep (``sweep.evidence``): ``sweep.dataset`` alone,
    generated with ``evidence_scale`` and ``sweep.synth``'s sizes under ``root``, and its frame cache. The
    other sets get one video each (the generator needs them; ``tgif_train_tasks`` is dropped too); the default
    tokenizer is used (the vocabulary is the domains', the same at every scale)."""

    sw, data, root = params["sweep"], params["data"], Path(root)
    sizes = {k: 1 for k in COUNT_FIELDS} | dict(sw.get("synth") or {})
    synth = {**data["synth"], **sizes, "tgif_train_tasks": {}}
    synth |= {"evidence_scale": evidence_scale, "tgif_format": "mp4"}
    summary = {
        "evidence_scale": evidence_scale,
        "synthetic": generate(SynthConfig(**synth), root, progress=False),
    }
    ds = sw["dataset"]
    d = data["datasets"][ds]
    videos = sorted((root / ds / d.get("video_folder", "videos")).glob("*.mp4"))
    summary["frame_cache"] = build_frame_cache(
        videos, root / "cache" / ds, data["frame_size"], workers=data.get("workers", 2)
    )
    (root / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def headline(summary: dict) -> dict:
    """The few numbers of the data stage worth a DVC metric: the frame filter and the split sizes."""
    out: dict = {k: summary[k] for k in ("frame_filter", "convert_gifs") if k in summary}
    if "convert_gifs" in out:
        out["convert_gifs"] = {k: v for k, v in out["convert_gifs"].items() if k != "failures"}
    for ds, splits in summary["datasets"].items():
        for split, s in splits.items():
            out.setdefault(ds, {})[split] = {"questions": s["questions"], "videos": s["videos"],
                                             "skipped": s["skipped"]["total"]}  # fmt: skip
    return out
