"""The embedded synthetic benchmark: real video files and annotation files in the real datasets' formats.

``generate(SynthConfig(...), root)`` writes, deterministically from ``seed``::

    root/tgif-qa/{Train,Test}_{action,transition,count,frameqa}_question.csv   (TGIF-QA's TSV format)
    root/tgif-qa/gifs/<gif_name>.gif          (GIFs, as TGIF-QA ships them; ``tgif_format="mp4"`` -> mp4/)
    root/msvd-qa/{train,val,test}_qa.json, youtube_mapping.txt, videos/vid<k>.mp4
    root/how2qa/how2QA_{train,val}_release.csv, how2_vid_mapping.json, videos/<ytid>_0_60.mp4
    root/<dataset>/evidence.jsonl             (per video: frame count, evidence frame ranges)
    root/vocab.txt                            (every word of every question and answer, for the tokenizer)
    root/synthetic.json                       (the configuration and what was written)

so the same readers serve the synthetic and the real data. TGIF-QA-like videos are short and long (the
paper's 40-frame filter drops about half of them, as it drops 56% of TGIF-QA); the downstream sets are
longer and look different (backgrounds, object sizes, colours and shapes), so that pretraining and
fine-tuning are distinct distributions. Every video and question comes from its own random stream
``(seed, dataset, split, index)``, so the output does not depend on the number of workers or on the order.

Difficulty is set by the visibility of the evidence (``core``/``ramp``/``faint_alpha`` of each
:class:`~siasamrea.synthetic.tasks.Domain`), fixed from the baseline's accuracy only: see the README.
"""

from __future__ import annotations

import csv
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from siasamrea.synthetic.render import render
from siasamrea.synthetic.tasks import TGIF_TASKS, Domain, VideoSpec, how2qa_video, msvd_video
from siasamrea.video import write_gif, write_video

DATASET_CODES = {"tgif-qa": 1, "msvd-qa": 2, "how2qa": 3}
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
TASK_CODES = {"action": 1, "transition": 2, "count": 3, "frameqa": 4, "msvd-qa": 5, "how2qa": 6}

TGIF_DOMAIN = Domain(
    name="tgif-qa",
    styles=("plain", "gradient"),
    # about half shorter than 40 frames, like TGIF-QA (40,333 of 71,739 GIFs)
    lengths=((16, 39, 0.5), (40, 96, 0.5)),
    colors=("red", "green", "blue", "yellow", "purple", "orange", "white", "cyan"),
    shapes=("square", "circle", "triangle", "diamond", "cross", "ring"),
)
MSVD_DOMAIN = Domain(
    name="msvd-qa",
    styles=("stripes", "plain"),
    lengths=((48, 120, 1.0),),
    colors=("red", "green", "blue", "yellow", "purple", "orange", "pink", "brown"),
    shapes=("square", "circle", "triangle", "diamond", "cross", "ring", "bar", "star"),
    object_size=(11, 15),
)
HOW2QA_DOMAIN = Domain(
    name="how2qa",
    styles=("checker", "gradient"),
    lengths=((64, 144, 1.0),),
    colors=("red", "green", "blue", "yellow", "white", "cyan", "pink", "brown"),
    shapes=("square", "circle", "triangle", "diamond", "cross", "star", "bar"),
    object_size=(12, 16),
)


@dataclass
class SynthConfig:
    """Sizes and look of the benchmark. Counts are videos; MSVD-like videos carry 2–3 questions each."""

    seed: int = 0
    frame_size: int = 64
    fps: int = 10
    tgif_train: int = 400  # per task, before the 40-frame filter
    tgif_test: int = 100  # per task
    msvd_train: int = 300
    msvd_val: int = 60
    msvd_test: int = 120
    how2qa_train: int = 300
    how2qa_val: int = 120
    tgif_format: str = "gif"  # "gif" (as TGIF-QA ships; the pipeline converts) or "mp4"
    keyframe_interval: int | None = 16  # GOP of the mp4s: sparse reads seek at most this far
    workers: int = 2
    domains: dict[str, Domain] = field(
        default_factory=lambda: {"tgif-qa": TGIF_DOMAIN, "msvd-qa": MSVD_DOMAIN, "how2qa": HOW2QA_DOMAIN}
    )

    def __post_init__(self):
        if self.tgif_format not in ("gif", "mp4"):
            raise ValueError(f"tgif_format must be 'gif' or 'mp4', got {self.tgif_format!r}")
        if self.frame_size < 32 or self.frame_size % 2:
            raise ValueError(f"frame_size must be even and >= 32, got {self.frame_size}")
        for name in (
            "tgif_train",
            "tgif_test",
            "msvd_train",
            "msvd_val",
            "msvd_test",
            "how2qa_train",
            "how2qa_val",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.domains = {k: v if isinstance(v, Domain) else Domain(**v) for k, v in self.domains.items()}


@dataclass
class _Job:
    dataset: str
    task: str
    split: str
    index: int
    path: str
    fmt: str


def _rng(cfg: SynthConfig, dataset: str, task: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(
        [cfg.seed, DATASET_CODES[dataset], TASK_CODES[task], SPLIT_CODES[split], index]
    )


def _spec(cfg: SynthConfig, job: _Job) -> tuple[VideoSpec, np.random.Generator]:
    rng = _rng(cfg, job.dataset, job.task, job.split, job.index)
    domain = cfg.domains[job.dataset]
    if job.dataset == "tgif-qa":
        spec = TGIF_TASKS[job.task](domain, cfg.frame_size, rng)
    elif job.dataset == "msvd-qa":
        spec = msvd_video(domain, cfg.frame_size, rng)
    else:
        spec = how2qa_video(domain, cfg.frame_size, rng)
    return spec, rng


def _make_video(args: tuple[SynthConfig, _Job]) -> dict:
    """Render and write one video; returns its questions and evidence (run in a worker process)."""
    cfg, job = args
    spec, rng = _spec(cfg, job)
    frames = render(
        spec.num_frames, cfg.frame_size, spec.style, spec.sprites, rng, cfg.domains[job.dataset].noise
    )
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    if job.fmt == "gif":
        write_gif(job.path, frames, fps=cfg.fps)
    else:
        # "veryfast": a third of x264's default encoding time at these sizes, same crf quality
        write_video(job.path, frames, fps=cfg.fps, keyframe_interval=cfg.keyframe_interval, preset="veryfast")
    return {
        "video_id": Path(job.path).stem,
        "questions": [asdict(q) for q in spec.questions],
        "num_frames": spec.num_frames,
        "core": [list(r) for r in spec.core],
        "faint": [list(r) for r in spec.faint],
    }


def _jobs(cfg: SynthConfig, root: Path) -> list[_Job]:
    jobs = []
    tgif_dir, tgif_ext = ("gifs", "gif") if cfg.tgif_format == "gif" else ("mp4", "mp4")
    for task in TGIF_TASKS:
        for split, n in (("train", cfg.tgif_train), ("test", cfg.tgif_test)):
            for i in range(n):
                name = tgif_name(task, split, i)
                jobs.append(
                    _Job(
                        "tgif-qa",
                        task,
                        split,
                        i,
                        str(root / "tgif-qa" / tgif_dir / f"{name}.{tgif_ext}"),
                        cfg.tgif_format,
                    )
                )
    k = 0
    for split, n in (("train", cfg.msvd_train), ("val", cfg.msvd_val), ("test", cfg.msvd_test)):
        for i in range(n):
            k += 1
            jobs.append(
                _Job("msvd-qa", "msvd-qa", split, i, str(root / "msvd-qa" / "videos" / f"vid{k}.mp4"), "mp4")
            )
    for split, n in (("train", cfg.how2qa_train), ("val", cfg.how2qa_val)):
        for i in range(n):
            jobs.append(
                _Job(
                    "how2qa",
                    "how2qa",
                    split,
                    i,
                    str(root / "how2qa" / "videos" / f"{how2qa_youtube_id(split, i)}_0_60.mp4"),
                    "mp4",
                )
            )
    return jobs


def tgif_name(task: str, split: str, index: int) -> str:
    return f"synth_{task}_{split}_{index:05d}"


def how2qa_youtube_id(split: str, index: int) -> str:
    return f"syn{split[:2]}{index:06d}"


# -- annotation writers (the real formats) ------------------------------------------------------------
def _write_text(path: Path, text: str, newline: str = "\n") -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline=newline) as f:
        f.write(text)
    os.replace(tmp, path)


def _tsv_line(fields) -> str:
    return "\t".join(str(f) for f in fields)


def _write_tgif(root: Path, results: dict[tuple, dict]) -> None:
    headers = {
        "action": ["gif_name", "question", "a1", "a2", "a3", "a4", "a5", "answer", "vid_id", "key"],
        "transition": ["gif_name", "question", "a1", "a2", "a3", "a4", "a5", "answer", "vid_id", "key"],
        "count": ["gif_name", "question", "answer", "vid_id", "key"],
        "frameqa": ["gif_name", "question", "answer", "type", "vid_id", "key", "description"],
    }
    prefix = {"action": "ACTION", "transition": "TRANS", "count": "COUNT", "frameqa": "FRAMEQA"}
    qtype_code = {"object": 0, "number": 1, "color": 2, "location": 3}
    key = 0
    for task in TGIF_TASKS:
        for split, fname in (("train", f"Train_{task}_question.csv"), ("test", f"Test_{task}_question.csv")):
            lines = [_tsv_line(headers[task])]
            for (ds, t, sp, i), res in sorted(results.items()):
                if ds != "tgif-qa" or t != task or sp != split:
                    continue
                key += 1
                q = res["questions"][0]
                name, vid = tgif_name(task, split, i), f"{prefix[task]}{key}"
                if task in ("action", "transition"):
                    row = [name, q["question"], *q["candidates"], q["answer_index"], vid, key]
                elif task == "count":
                    row = [name, q["question"], q["answer"], vid, key]
                else:
                    row = [
                        name,
                        q["question"],
                        q["answer"],
                        qtype_code[q["question_type"]],
                        vid,
                        key,
                        q["description"],
                    ]
                lines.append(_tsv_line(row))
            _write_text(
                root / "tgif-qa" / fname, "\r\n".join(lines) + "\r\n", newline=""
            )  # CRLF, as released


def _write_msvd(root: Path, results: dict[tuple, dict]) -> None:
    items = {s: [] for s in SPLIT_CODES}
    videos: dict[int, int] = {}  # k of vid<k> -> frames
    qid = 0
    for split in ("train", "val", "test"):
        for (ds, _, sp, _), res in sorted(results.items()):
            if ds != "msvd-qa" or sp != split:
                continue
            k = int(res["video_id"].removeprefix("vid"))
            videos[k] = res["num_frames"]
            for q in res["questions"]:
                items[split].append(
                    {"answer": q["answer"], "id": qid, "question": q["question"], "video_id": k}
                )
                qid += 1
    for split in ("train", "val", "test"):
        _write_text(root / "msvd-qa" / f"{split}_qa.json", json.dumps(items[split], separators=(",", ":")))
    # line k of the mapping is vid<k>, as in the real release
    mapping = [f"synthMSVD{k:05d}_0_{videos[k]} vid{k}" for k in sorted(videos)]
    assert sorted(videos) == list(range(1, len(videos) + 1))
    _write_text(root / "msvd-qa" / "youtube_mapping.txt", "\n".join(mapping) + "\n")


def _write_how2qa(root: Path, results: dict[tuple, dict], fps: int) -> None:
    segments = []
    for split in ("train", "val"):
        rows = []
        for (ds, _, sp, i), res in sorted(results.items()):
            if ds != "how2qa" or sp != split:
                continue
            q = res["questions"][0]
            ytid = how2qa_youtube_id(split, i)
            segments.append(f"{ytid}_0_60")
            wrong = [c for j, c in enumerate(q["candidates"]) if j != q["answer_index"]]
            span = f"[0.0:{res['num_frames'] / fps:.2f}]"
            rows.append([ytid, span, *wrong, q["question"], q["answer"]])
        path = root / "how2qa" / f"how2QA_{split}_release.csv"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        os.replace(tmp, path)
    mapping = {str(i): s for i, s in enumerate(segments)}
    _write_text(root / "how2qa" / "how2_vid_mapping.json", json.dumps(mapping))


def _write_evidence(root: Path, jobs: list[_Job], results: dict[tuple, dict]) -> None:
    by_ds: dict[str, list[str]] = {d: [] for d in DATASET_CODES}
    for job in jobs:
        res = results[(job.dataset, job.task, job.split, job.index)]
        by_ds[job.dataset].append(
            json.dumps(
                {
                    "video_id": Path(job.path).stem,
                    "task": job.task,
                    "split": job.split,
                    "num_frames": res["num_frames"],
                    "core": res["core"],
                    "faint": res["faint"],
                }
            )
        )
    for ds, lines in by_ds.items():
        _write_text(root / ds / "evidence.jsonl", "\n".join(lines) + "\n")


def _vocabulary(results: dict[tuple, dict]) -> list[str]:
    words = set()
    for res in results.values():
        for q in res["questions"]:
            for text in (q["question"], q["answer"], *q["candidates"], q.get("description", "")):
                words.update(text.lower().split())
    return sorted(words)


def generate(cfg: SynthConfig, root: str | Path, *, progress: bool = True) -> dict:
    """Write the whole benchmark under ``root``; returns the summary also written to ``synthetic.json``."""
    root = Path(root)
    for ds in DATASET_CODES:
        (root / ds).mkdir(parents=True, exist_ok=True)
    jobs = _jobs(cfg, root)
    t0 = time.perf_counter()
    args = [(cfg, j) for j in jobs]
    if cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers) as pool:
            outs = list(_progress(pool.map(_make_video, args, chunksize=16), len(jobs), progress))
    else:
        outs = list(_progress(map(_make_video, args), len(jobs), progress))
    results = {(j.dataset, j.task, j.split, j.index): o for j, o in zip(jobs, outs, strict=True)}
    _write_tgif(root, results)
    _write_msvd(root, results)
    _write_how2qa(root, results, cfg.fps)
    _write_evidence(root, jobs, results)
    _write_text(root / "vocab.txt", "\n".join(_vocabulary(results)) + "\n")
    lengths = {ds: [results[k]["num_frames"] for k in results if k[0] == ds] for ds in DATASET_CODES}
    summary = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "domains"},
        "domains": {k: asdict(v) for k, v in cfg.domains.items()},
        "videos": {ds: len(v) for ds, v in lengths.items()},
        "questions": {
            ds: sum(len(results[k]["questions"]) for k in results if k[0] == ds) for ds in DATASET_CODES
        },
        "frames": {
            ds: {"min": min(v), "max": max(v), "mean": float(np.mean(v))} for ds, v in lengths.items()
        },
        "tgif_shorter_than_40": int(sum(n < 40 for n in lengths["tgif-qa"])),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    _write_text(root / "synthetic.json", json.dumps(summary, indent=2))
    return summary


def _progress(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc="synthetic videos", unit="video")


def scaled(cfg: SynthConfig, factor: float) -> SynthConfig:
    """The same benchmark with every count multiplied by ``factor`` (at least 1)."""
    counts = ("tgif_train", "tgif_test", "msvd_train", "msvd_val", "msvd_test", "how2qa_train", "how2qa_val")
    return replace(cfg, **{k: max(1, round(getattr(cfg, k) * factor)) for k in counts})
