"""The embedded synthetic benchmark: real video files and annotation files in the real datasets' formats.

``generate(SynthConfig(...), root)`` writes, deterministically from ``seed``::

    root/tgif-qa/{Train,Test}_{action,transition,count,frameqa}_question.csv   (TGIF-QA's TSV format)
    root/tgif-qa/gifs/<gif_name>.gif      (GIFs, as TGIF-QA ships them; ``tgif_format="mp4"``: mp4/<name>.mp4)
    root/msvd-qa/{train,val,test}_qa.json, youtube_mapping.txt, videos/vid<k>.mp4
    root/how2qa/how2QA_{train,val}_release.csv, how2_vid_mapping.json, videos/<ytid>_0_60.mp4
    root/stills/{Train,Test}_{frameqa,transition}_question.csv, mp4/<name>.mp4
                                (still scenes: the stand-in for ClipBERT's image-text initialisation)
    root/<dataset>/evidence.jsonl         (per video: frame count and the frames showing the answer)
    root/vocab.txt                        (every word of every question and answer, for the tokenizer)
    root/synthetic.json                   (the configuration and what was written)

so the same readers serve the synthetic and the real data. TGIF-QA-like videos are short and long (the
paper's 40-frame filter drops about half of them, as it drops 56% of TGIF-QA); the downstream sets are
longer and look different (background patterns, number of distractors, lengths), so that pretraining and
fine-tuning are distinct distributions; all sets share the colours and shapes, so knowledge transfers.
Every video comes from its own random stream ``(seed, dataset, task, split, index)``: the output does
not depend on the number of workers or the order.

Difficulty is set by the visibility of the evidence (``core``/``ramp``/``faint_alpha`` of each
:class:`~siasamrea.synthetic.tasks.Domain`), chosen from the baseline's accuracy only: see the README.
"""

from __future__ import annotations

import csv
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from siasamrea.core.fileio import atomic_path, write_text
from siasamrea.synthetic.render import render
from siasamrea.synthetic.tasks import STILLS_TASKS, TGIF_TASKS, Domain, VideoSpec, how2qa_video, msvd_video
from siasamrea.video import write_gif, write_video

DATASET_CODES = {"tgif-qa": 1, "msvd-qa": 2, "how2qa": 3, "stills": 4}
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
TASK_CODES = {"action": 1, "transition": 2, "count": 3, "frameqa": 4, "msvd-qa": 5, "how2qa": 6}

# Four silhouettes and eight colours that stay distinct when the 64x64 videos are decoded at 32x32 for
# training (with eight shapes and close colours such as pink/red, the tiny model did not get past the
# answer prior within the default budget).
SHAPES_DEFAULT = ("square", "triangle", "cross", "bar")
COLORS_DEFAULT = ("red", "green", "blue", "yellow", "purple", "orange", "white", "cyan")

TGIF_DOMAIN = Domain(
    name="tgif-qa",
    styles=("plain", "gradient"),
    # about half shorter than 40 frames, like TGIF-QA (40,333 of 71,739 GIFs)
    lengths=((16, 39, 0.5), (40, 96, 0.5)),
    colors=COLORS_DEFAULT,
    shapes=SHAPES_DEFAULT,
)
MSVD_DOMAIN = Domain(
    name="msvd-qa",
    styles=("stripes", "plain"),
    lengths=((48, 120, 1.0),),
    colors=COLORS_DEFAULT,
    shapes=SHAPES_DEFAULT,
    distractors=(2, 3),
)
HOW2QA_DOMAIN = Domain(
    name="how2qa",
    styles=("checker", "gradient"),
    lengths=((64, 144, 1.0),),
    colors=COLORS_DEFAULT,
    shapes=SHAPES_DEFAULT,
    object_size=(16, 20),
)
#: Still scenes (8 identical-content frames, the object always visible): the embedded stand-in for the
#: image-text data (COCO / Visual Genome captions) ClipBERT's initial weights were trained on.
STILLS_DOMAIN = Domain(
    name="stills",
    styles=("plain", "stripes", "checker", "gradient"),
    lengths=((8, 8, 1.0),),
    colors=COLORS_DEFAULT,
    shapes=SHAPES_DEFAULT,
    core=(8, 8),
    ramp=(0, 0),
)
DOMAINS = {"tgif-qa": TGIF_DOMAIN, "msvd-qa": MSVD_DOMAIN, "how2qa": HOW2QA_DOMAIN, "stills": STILLS_DOMAIN}
COUNT_FIELDS = (
    "tgif_train", "tgif_test", "msvd_train", "msvd_val", "msvd_test", "how2qa_train", "how2qa_val",
    "stills_train", "stills_test",
)  # fmt: skip
OPTIONAL_FIELDS = ("how2qa_train", "how2qa_val")


@dataclass
class SynthConfig:
    """Sizes and look of the benchmark. Counts are videos (per task for the TGIF-QA-format sets)."""

    seed: int = 0
    frame_size: int = 64
    fps: int = 10
    tgif_train: int = 400  # per task, before the 40-frame filter
    tgif_test: int = 100  # per task
    # Training videos of the tasks that need a different number, e.g. {"action": 3200}: telling five motions
    # apart from their temporal-mean footprint takes more examples than reading a colour (README). Video i is
    # the same whatever the count (each video's random stream is seeded by its index), so more videos only add
    # to a set.
    tgif_train_tasks: dict[str, int] = field(default_factory=dict)
    msvd_train: int = 300  # MSVD-like videos carry 2-3 questions each
    msvd_val: int = 60
    msvd_test: int = 120
    how2qa_train: int = 300
    how2qa_val: int = 120
    stills_train: int = 1000  # per task (frameqa, transition)
    stills_test: int = 100
    tgif_format: str = "gif"  # "gif" (as TGIF-QA ships; the pipeline converts) or "mp4"
    keyframe_interval: int | None = 16  # GOP of the mp4s: sparse reads seek at most this far
    workers: int = 2
    domains: dict[str, Domain] = field(default_factory=lambda: dict(DOMAINS))
    # The regime knob: how long the answer evidence of the downstream sets (MSVD-QA-like, How2QA-like) stays
    # visible, as a factor on their domains' core and ramp frames. Below 1 a sparse anchor clip misses it
    # more often, above 1 it rarely misses (anchor coverage from ~20% to ~90%, tests/test_synthetic.py).
    evidence_scale: float = 1.0

    def __post_init__(self):
        if self.tgif_format not in ("gif", "mp4"):
            raise ValueError(f"tgif_format must be 'gif' or 'mp4', got {self.tgif_format!r}")
        if self.frame_size < 32 or self.frame_size % 2:
            raise ValueError(f"frame_size must be even and >= 32, got {self.frame_size}")
        skipped = self.skipped_datasets
        for name in COUNT_FIELDS:
            if getattr(self, name) < 1 and not (name in OPTIONAL_FIELDS and "how2qa" in skipped):
                raise ValueError(
                    f"{name} must be >= 1, got {getattr(self, name)}"
                    + (" (how2qa_train and how2qa_val may both be 0: no How2QA-like set)"
                       if name in OPTIONAL_FIELDS else "")
                )  # fmt: skip
        for task, n in self.tgif_train_tasks.items():
            if task not in TGIF_TASKS:
                raise ValueError(f"tgif_train_tasks: unknown task {task!r}; tasks: {sorted(TGIF_TASKS)}")
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"tgif_train_tasks.{task} must be an integer >= 1, got {n!r}")
        self.domains = {k: v if isinstance(v, Domain) else Domain(**v) for k, v in self.domains.items()}
        if not (np.isfinite(self.evidence_scale) and self.evidence_scale > 0):
            raise ValueError(f"evidence_scale must be a finite number > 0, got {self.evidence_scale}")

    def count(self, dataset: str, task: str, split: str) -> int:
        """Videos of one task and split of a TGIF-QA-format set (``dataset``: "tgif-qa" or "stills")."""
        prefix = "tgif" if dataset == "tgif-qa" else dataset
        if dataset == "tgif-qa" and split == "train" and task in self.tgif_train_tasks:
            return self.tgif_train_tasks[task]
        return getattr(self, f"{prefix}_{split}")

    @property
    def skipped_datasets(self) -> tuple[str, ...]:
        """Sets not generated: the How2QA-like set when both its counts are 0 (a profile that does not use it
        saves its rendering and frame cache)."""
        return ("how2qa",) if self.how2qa_train == 0 and self.how2qa_val == 0 else ()


def with_evidence_scale(domain: Domain, factor: float) -> Domain:
    """``domain`` with its evidence ``factor`` times as long: core and ramp frames, at least one core."""
    if factor == 1.0:
        return domain
    core = tuple(max(1, round(c * factor)) for c in domain.core)
    ramp = tuple(max(0, round(r * factor)) for r in domain.ramp)
    return replace(domain, core=core, ramp=ramp)


#: The sets the evidence knob acts on (pretraining and the stills keep their look).
EVIDENCE_SCALED = ("msvd-qa", "how2qa")


@dataclass
class _Job:
    dataset: str
    task: str
    split: str
    index: int
    path: str
    fmt: str  # "gif" or "mp4"

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dataset, self.task, self.split, self.index)


def _spec(cfg: SynthConfig, job: _Job) -> tuple[VideoSpec, np.random.Generator]:
    codes = [cfg.seed, DATASET_CODES[job.dataset], TASK_CODES[job.task], SPLIT_CODES[job.split], job.index]
    rng = np.random.default_rng(codes)
    domain = cfg.domains[job.dataset]
    if job.dataset in EVIDENCE_SCALED:
        domain = with_evidence_scale(domain, cfg.evidence_scale)
    if job.dataset == "tgif-qa":
        spec = TGIF_TASKS[job.task](domain, cfg.frame_size, rng)
    elif job.dataset == "stills":
        spec = STILLS_TASKS[job.task](domain, cfg.frame_size, rng)
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
        # "veryfast": a third of x264's default encoding time at these sizes, same crf quality; one encoder
        # thread (the workers are processes already): the same bytes, a quarter less time; no fsync: the data
        # stage is re-run whole if it is killed
        write_video(job.path, frames, fps=cfg.fps, keyframe_interval=cfg.keyframe_interval, preset="veryfast",
                    threads=1, fsync=False)  # fmt: skip
    return {
        "video_id": Path(job.path).stem,
        "questions": [asdict(q) for q in spec.questions],
        "num_frames": spec.num_frames,
        "core": [list(r) for r in spec.core],
        "faint": [list(r) for r in spec.faint],
    }


def tgif_name(dataset: str, task: str, split: str, index: int) -> str:
    return f"{'still' if dataset == 'stills' else 'synth'}_{task}_{split}_{index:05d}"


def how2qa_youtube_id(split: str, index: int) -> str:
    return f"syn{split[:2]}{index:06d}"


def _jobs(cfg: SynthConfig, root: Path) -> list[_Job]:
    jobs = []
    for ds, tasks, fmt in (("tgif-qa", TGIF_TASKS, cfg.tgif_format), ("stills", STILLS_TASKS, "mp4")):
        folder = "gifs" if fmt == "gif" else "mp4"
        for task in tasks:
            for split in ("train", "test"):
                for i in range(cfg.count(ds, task, split)):
                    name = tgif_name(ds, task, split, i)
                    jobs.append(_Job(ds, task, split, i, str(root / ds / folder / f"{name}.{fmt}"), fmt))
    k = 0
    for split in ("train", "val", "test"):
        for i in range(getattr(cfg, f"msvd_{split}")):
            k += 1
            jobs.append(
                _Job("msvd-qa", "msvd-qa", split, i, str(root / "msvd-qa" / "videos" / f"vid{k}.mp4"), "mp4")
            )
    for split in ("train", "val"):
        for i in range(getattr(cfg, f"how2qa_{split}")):
            seg = f"{how2qa_youtube_id(split, i)}_0_60"
            jobs.append(
                _Job("how2qa", "how2qa", split, i, str(root / "how2qa" / "videos" / f"{seg}.mp4"), "mp4")
            )
    return jobs


# -- annotation writers (the real formats) ------------------------------------------------------------
def _write_text(path: Path, text: str, newline: str = "\n") -> None:
    write_text(path, text, newline=newline)


TGIF_HEADERS = {
    "action": ["gif_name", "question", "a1", "a2", "a3", "a4", "a5", "answer", "vid_id", "key"],
    "transition": ["gif_name", "question", "a1", "a2", "a3", "a4", "a5", "answer", "vid_id", "key"],
    "count": ["gif_name", "question", "answer", "vid_id", "key"],
    "frameqa": ["gif_name", "question", "answer", "type", "vid_id", "key", "description"],
}
TGIF_PREFIX = {"action": "ACTION", "transition": "TRANS", "count": "COUNT", "frameqa": "FRAMEQA"}
TGIF_TYPE_CODES = {"object": 0, "number": 1, "color": 2, "location": 3}


def _write_tgif(root: Path, jobs: list[_Job], results: dict[tuple, dict], dataset: str) -> None:
    """TGIF-QA's files: tab-separated, header, CRLF; ``key`` one integer per GIF, ``vid_id`` per question."""
    key = qid = 0
    tasks = TGIF_TASKS if dataset == "tgif-qa" else STILLS_TASKS
    for task in tasks:
        for split, fname in (("train", f"Train_{task}_question.csv"), ("test", f"Test_{task}_question.csv")):
            lines = ["\t".join(TGIF_HEADERS[task])]
            for job in jobs:
                if (job.dataset, job.task, job.split) != (dataset, task, split):
                    continue
                key += 1
                name = Path(job.path).stem
                for q in results[job.key]["questions"]:
                    qid += 1
                    vid = f"{TGIF_PREFIX[task]}{qid}"
                    if task in ("action", "transition"):
                        row = [name, q["question"], *q["candidates"], q["answer_index"], vid, key]
                    elif task == "count":
                        row = [name, q["question"], q["answer"], vid, key]
                    else:
                        qtype = TGIF_TYPE_CODES[q["question_type"]]
                        row = [name, q["question"], q["answer"], qtype, vid, key, q["description"]]
                    lines.append("\t".join(str(f) for f in row))
            _write_text(root / dataset / fname, "\r\n".join(lines) + "\r\n", newline="")


def _write_msvd(root: Path, jobs: list[_Job], results: dict[tuple, dict]) -> None:
    """MSVD-QA's files: a compact JSON array per split; line k of youtube_mapping.txt names vid<k>."""
    items: dict[str, list] = {s: [] for s in SPLIT_CODES}
    mapping, qid = [], 0
    for job in (j for j in jobs if j.dataset == "msvd-qa"):  # jobs are in vid<k> order
        res = results[job.key]
        k = int(res["video_id"].removeprefix("vid"))
        mapping.append(f"synthmsvd{k:05d}_0_{res['num_frames']} vid{k}")
        for q in res["questions"]:
            items[job.split].append(
                {"answer": q["answer"], "id": qid, "question": q["question"], "video_id": k}
            )
            qid += 1
    for split, rows in items.items():
        _write_text(root / "msvd-qa" / f"{split}_qa.json", json.dumps(rows, separators=(",", ":")))
    _write_text(root / "msvd-qa" / "youtube_mapping.txt", "\n".join(mapping) + "\n")


def _write_how2qa(root: Path, jobs: list[_Job], results: dict[tuple, dict], fps: int) -> None:
    """How2QA's raw release: no header, ``ytid,[start:end],wrong1,wrong2,wrong3,question,correct``."""
    rows: dict[str, list] = {"train": [], "val": []}
    segments = []
    for job in (j for j in jobs if j.dataset == "how2qa"):
        res = results[job.key]
        q = res["questions"][0]
        segments.append(res["video_id"])
        wrong = [c for i, c in enumerate(q["candidates"]) if i != q["answer_index"]]
        span = f"[0.0:{res['num_frames'] / fps:.2f}]"
        rows[job.split].append(
            [how2qa_youtube_id(job.split, job.index), span, *wrong, q["question"], q["answer"]]
        )
    for split, data in rows.items():
        path = root / "how2qa" / f"how2QA_{split}_release.csv"
        with atomic_path(path, fsync=False) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(data)
    _write_text(
        root / "how2qa" / "how2_vid_mapping.json", json.dumps({str(i): s for i, s in enumerate(segments)})
    )


def _write_evidence(root: Path, jobs: list[_Job], results: dict[tuple, dict]) -> None:
    lines: dict[str, list[str]] = {d: [] for d in DATASET_CODES}
    for job in jobs:
        res = results[job.key]
        entry = {"video_id": res["video_id"], "task": job.task, "split": job.split,
                 "num_frames": res["num_frames"], "core": res["core"], "faint": res["faint"]}  # fmt: skip
        lines[job.dataset].append(json.dumps(entry))
    for ds, rows in lines.items():
        _write_text(root / ds / "evidence.jsonl", "\n".join(rows) + "\n")


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
    results = {j.key: o for j, o in zip(jobs, outs, strict=True)}
    _write_tgif(root, jobs, results, "tgif-qa")
    _write_tgif(root, jobs, results, "stills")
    _write_msvd(root, jobs, results)
    if "how2qa" not in cfg.skipped_datasets:
        _write_how2qa(root, jobs, results, cfg.fps)
    _write_evidence(root, jobs, results)
    _write_text(root / "vocab.txt", "\n".join(_vocabulary(results)) + "\n")
    lengths = {ds: [results[j.key]["num_frames"] for j in jobs if j.dataset == ds] for ds in DATASET_CODES}
    summary = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "domains"},
        "domains": {k: asdict(v) for k, v in cfg.domains.items()},
        "videos": {ds: len(v) for ds, v in lengths.items()},
        "questions": {
            ds: sum(len(results[j.key]["questions"]) for j in jobs if j.dataset == ds) for ds in DATASET_CODES
        },
        "frames": {
            ds: {"min": min(v), "max": max(v), "mean": round(float(np.mean(v)), 2)}
            for ds, v in lengths.items()
            if v
        },
        "tgif_shorter_than_40": int(sum(n < 40 for n in lengths["tgif-qa"])),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    _write_text(root / "synthetic.json", json.dumps(summary, indent=2))
    return summary


def _progress(it, total: int, enabled: bool):
    if not enabled:
        return it

    return tqdm(it, total=total, desc="synthetic videos", unit="video")


def scaled(cfg: SynthConfig, factor: float) -> SynthConfig:
    """The same benchmark with every count times ``factor`` (at least 1; a set not generated stays so)."""
    return replace(
        cfg,
        **{k: max(1, round(v * factor)) if (v := getattr(cfg, k)) else 0 for k in COUNT_FIELDS},
        tgif_train_tasks={t: max(1, round(v * factor)) for t, v in cfg.tgif_train_tasks.items()},
    )
