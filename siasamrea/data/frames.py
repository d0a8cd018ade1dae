"""Where a dataset's frames come from: decoded on the fly with decord, or read from a decoded-frame cache.

* :class:`DecodedFrames` decodes only the frames a sample needs (``siasamrea.video.read_frames``, resized
  in the decoder). It is the path for real data: nothing is stored besides the videos.
* :class:`CachedFrames` reads from a cache built once by :func:`build_frame_cache`: every frame of every
  video, decoded at the training resolution, in one ``uint8`` memory-mapped array. A read is a memory copy,
  so on a CPU the data loader never waits for the decoder. This is the path of the embedded synthetic
  benchmark, where videos are small (64x64) and training steps are short, so decoding (~12 ms per
  video for 9 clips of 4 frames) would otherwise cost half a training step. On a GPU with real data,
  decode on the fly with DataLoader workers instead (the cache of a real dataset would be terabytes).

Both are keyed by the video file's stem, which is unique within each supported dataset.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from siasamrea.core.fileio import atomic_path, remove_stale_temporaries
from siasamrea.video import VideoError, count_frames, read_frames, read_frames_fit, video_fps, video_size

RESIZE_MODES = ("pad", "stretch")

INDEX_FILE = "index.json"
FRAMES_FILE = "frames.npy"


class DecodedFrames:
    """Decode on demand. ``frame_size`` resizes in the decoder (``None``: native size): ``resize="pad"`` keeps
    the aspect ratio and zero-pads to a square as ClipBERT (:func:`~siasamrea.video.read_frames_fit`; square
    videos are unaffected), ``"stretch"`` resizes to ``frame_size`` x ``frame_size``."""

    def __init__(self, frame_size: int | None = None, resize: str = "pad"):
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.size = None if frame_size is None else (frame_size, frame_size)
        self.resize = resize
        self._counts: dict[str, int] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._fps: dict[str, float] = {}

    def fps(self, path: str | Path) -> float | None:
        key = str(path)
        if key not in self._fps:
            self._fps[key] = video_fps(path)
        return self._fps[key]

    def num_frames(self, path: str | Path) -> int:
        key = str(path)
        if key not in self._counts:
            self._counts[key] = count_frames(path)
        return self._counts[key]

    def count_all(self, paths: list[str], workers: int = 4) -> dict[str, int]:
        """Frame counts of many videos at once (threads: decord releases the GIL)."""
        todo = [p for p in dict.fromkeys(map(str, paths)) if p not in self._counts]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for p, n in zip(todo, pool.map(count_frames, todo), strict=True):
                self._counts[p] = n
        return {str(p): self._counts[str(p)] for p in paths}

    def read(self, path: str | Path, indices: torch.Tensor) -> torch.Tensor:
        """``indices`` any shape -> ``uint8 [*indices.shape, H, W, 3]``; each distinct frame decoded once."""
        flat = indices.reshape(-1)
        unique, inverse = torch.unique(flat, return_inverse=True)
        if self.size is not None and self.resize == "pad":
            key = str(path)
            if key not in self._sizes:  # per process: DataLoader workers each probe a video once
                self._sizes[key] = video_size(path)
            frames = read_frames_fit(path, unique, self.size[0], source_size=self._sizes[key], num_threads=1)
        else:
            frames = read_frames(path, unique, size=self.size, num_threads=1)
        return frames[inverse].reshape(*indices.shape, *frames.shape[1:])


class CachedFrames:
    """Read frames from a cache directory written by :func:`build_frame_cache`."""

    def __init__(self, cache_dir: str | Path):
        self.dir = Path(cache_dir)
        index_path = self.dir / INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(
                f"{self.dir}: not a frame cache (no {INDEX_FILE}); build it with build_frame_cache"
            )
        meta = json.loads(index_path.read_text())
        self.index: dict[str, tuple[int, int]] = {k: tuple(v) for k, v in meta["videos"].items()}
        self.frame_size = meta["frame_size"]
        # The cache index records no frame rates (its files stay as the pipeline first wrote them): question
        # time spans cannot be mapped to frames here, and clips are drawn from the whole video.
        self._fps: dict[str, float] = meta.get("fps", {})
        self._frames = None  # opened lazily, once per process (DataLoader workers fork after __init__)

    def _key(self, path: str | Path) -> str:
        key = Path(path).stem
        if key not in self.index:
            raise KeyError(
                f"{path}: video not in the frame cache {self.dir} (rebuild it after adding videos)"
            )
        return key

    def num_frames(self, path: str | Path) -> int:
        return self.index[self._key(path)][1]

    def count_all(self, paths: list[str], workers: int = 4) -> dict[str, int]:
        return {str(p): self.num_frames(p) for p in paths}

    def fps(self, path: str | Path) -> float | None:
        """The video's frame rate if the index has it (``None``: spans are not used)."""
        return self._fps.get(self._key(path))

    def read(self, path: str | Path, indices: torch.Tensor) -> torch.Tensor:
        offset, length = self.index[self._key(path)]
        if int(indices.min()) < 0 or int(indices.max()) >= length:
            raise VideoError(path, f"frame index out of range for a {length}-frame video", kind="index")
        if self._frames is None:
            self._frames = np.load(self.dir / FRAMES_FILE, mmap_mode="r")
        rows = (indices.reshape(-1) + offset).numpy()
        out = torch.from_numpy(np.ascontiguousarray(self._frames[rows]))
        return out.reshape(*indices.shape, *out.shape[1:])


def build_frame_cache(
    videos: list[str | Path],
    cache_dir: str | Path,
    frame_size: int,
    *,
    workers: int = 2,
    progress: bool = False,
    resize: str = "pad",
) -> dict:
    """Decode every frame of ``videos`` at ``frame_size`` x ``frame_size`` into ``cache_dir`` (atomically).

    Returns a summary: videos, frames, bytes, seconds. A video that cannot be decoded raises
    :class:`~siasamrea.video.VideoError` naming it (filter bad videos out first).
    """
    t0 = time.perf_counter()
    paths = list(dict.fromkeys(str(v) for v in videos))
    stems = [Path(p).stem for p in paths]
    dup = {s for s in stems if stems.count(s) > 1} if len(set(stems)) != len(stems) else set()
    if dup:
        raise ValueError(f"video file stems must be unique in a frame cache; repeated: {sorted(dup)[:5]}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    with ThreadPoolExecutor(max(1, workers)) as pool:
        counts = list(pool.map(count_frames, paths))

    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    final = Path(cache_dir)
    # Leftovers of builds that were killed: nothing else would ever remove them.
    remove_stale_temporaries(final.parent, re.escape(final.name))
    with atomic_path(final, fsync=False) as tmp:
        tmp.mkdir(parents=True)
        frames = np.lib.format.open_memmap(
            tmp / FRAMES_FILE, mode="w+", dtype=np.uint8, shape=(int(offsets[-1]), frame_size, frame_size, 3)
        )

        def decode(i: int) -> None:
            n = counts[i]
            if resize == "pad":
                decoded = read_frames_fit(paths[i], range(n), frame_size)
            else:
                decoded = read_frames(paths[i], range(n), size=(frame_size, frame_size))
            frames[offsets[i] : offsets[i] + n] = decoded.numpy()

        it = range(len(paths))
        if progress:
            it = tqdm(it, desc=f"frame cache {final.name}", unit="video")
        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(decode, it))
        frames.flush()
        summary = {
            "frame_size": frame_size,
            "videos": {s: [int(offsets[i]), int(counts[i])] for i, s in enumerate(stems)},
        }
        (tmp / INDEX_FILE).write_text(json.dumps(summary))
    return {
        "videos": len(paths),
        "frames": int(offsets[-1]),
        "bytes": int(offsets[-1]) * frame_size * frame_size * 3,
        "seconds": round(time.perf_counter() - t0, 1),
    }
