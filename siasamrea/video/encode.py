"""Writing mp4 videos with PyAV: :class:`VideoWriter` (incremental) and :func:`write_video` (all at once).

Frames in are ``uint8`` RGB ``[T, H, W, 3]`` (numpy or torch), encoded as yuv420p, one output frame per
input frame at a constant rate. The encoder options are chosen so the output is a function of the frames
(reproducible bit for bit) and, on request, has a keyframe exactly every ``keyframe_interval`` frames.
Files are written atomically (:func:`siasamrea.core.fileio.atomic_path`): a killed run never leaves a
truncated video under the final name.
"""

from __future__ import annotations

import os
from contextlib import suppress
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from siasamrea.core.fileio import atomic_path

# x264 and x265 are the encoders with a constant-quality (crf) mode; other codecs ignore `crf`.
_CRF_CODECS = {"libx264", "libx265"}


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Pad ``[..., H, W, C]`` frames to even H and W by repeating the last row/column.

    yuv420p stores chroma at half resolution, so x264 needs even dimensions. Padding (not cropping)
    keeps every source pixel, and repeating the edge (not adding black) keeps colours statistics intact.
    """
    h, w = frames.shape[-3], frames.shape[-2]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return frames
    pad = [(0, 0)] * (frames.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
    return np.pad(frames, pad, mode="edge")


def as_uint8_frames(frames) -> np.ndarray:
    """numpy/torch ``uint8 [T, H, W, 3]`` -> contiguous numpy array, with a clear error otherwise."""
    arr = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must have shape [T, H, W, 3], got {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError("no frames to write (a zero-frame mp4 is not a readable video)")
    return np.ascontiguousarray(arr)


def as_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction, as the containers' time bases want it."""
    # limit_denominator(1001) maps 29.97002997 back to 30000/1001 and keeps 12.5 as 25/2.
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def _encoder_options(
    codec: str,
    keyframe_interval: int | None,
    crf: float | None,
    preset: str | None,
    threads: int | None = None,
) -> dict[str, str]:
    opts: dict[str, str] = {}
    if codec in _CRF_CODECS and crf is not None:
        opts["crf"] = str(crf)
    if preset is not None:
        opts["preset"] = preset
    if threads is not None:
        # x264's output does not depend on its thread count; one thread per file is faster when the caller
        # already encodes several files at once (a 64x64 video cannot keep x264's frame threads busy)
        opts["threads"] = str(threads)
    # x264's macroblock-tree rate control makes the bitstream (and the decoded pixels, by up to ~25 levels
    # on some frames) differ from run to run on identical input frames: seen on 64x64 videos, in one
    # process and across processes, with any thread count. Without it the output is a function of the frames,
    # so the synthetic benchmark and converted GIFs are reproducible.
    x264_params = ["mbtree=0"] if codec == "libx264" else []
    if keyframe_interval is not None:
        # gop_size alone is not enough for x264: its scene-cut detection adds keyframes and its default
        # min-keyint lets GOPs come out shorter (gop_size=10 gave keyframes every 9 frames). Fix both
        # through the generic options and, for x264/x265, their own parameter strings.
        n = str(keyframe_interval)
        opts.update({"g": n, "keyint_min": n, "sc_threshold": "0"})
        if codec == "libx264":
            x264_params += [f"keyint={n}", f"min-keyint={n}", "scenecut=0"]
        elif codec == "libx265":
            opts["x265-params"] = f"keyint={n}:min-keyint={n}:scenecut=0"
    if x264_params:
        opts["x264-params"] = ":".join(x264_params)
    return opts


class VideoWriter:
    """Incremental, atomic mp4 writer: ``with VideoWriter(path, height=H, width=W) as w: w.write(frame)``.

    Frames are ``uint8 [H, W, 3]`` RGB (or batches ``[T, H, W, 3]``); they are encoded as yuv420p, which
    requires even ``height`` and ``width`` (use :func:`pad_to_even`). Each written frame becomes exactly
    one output frame at constant rate ``fps`` (pts = frame number), so the frame count is preserved.
    The file appears under ``path`` only when the ``with`` block exits without error.

    Args:
        keyframe_interval: GOP size; ``None`` keeps the encoder default (x264: at most 250, plus scene cuts).
            With a value, keyframes are placed exactly every ``keyframe_interval`` frames (scene cuts off).
        crf: constant-rate-factor quality for x264/x265 (lower = better; 18 is visually near-lossless).
        preset: x264/x265 speed preset (``None`` = encoder default, "medium").
        threads: encoder threads (``None`` = the encoder's choice); the bitstream is the same for any value.
        fsync: flush the file to disk before it appears under ``path``. ``False`` for files whose producer
            is re-run whole after a crash (a DVC stage's outputs): the rename stays atomic, only durability
            on power loss is given up.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        height: int,
        width: int,
        fps: float | Fraction = 25,
        codec: str = "libx264",
        keyframe_interval: int | None = None,
        crf: float | None = 18,
        preset: str | None = None,
        pix_fmt: str = "yuv420p",
        threads: int | None = None,
        fsync: bool = True,
    ):
        if height <= 0 or width <= 0:
            raise ValueError(f"{path}: frame size must be positive, got {height}x{width}")
        if pix_fmt == "yuv420p" and (height % 2 or width % 2):
            raise ValueError(
                f"{path}: yuv420p needs even frame dimensions, got H={height} W={width}; "
                "pad the frames first (siasamrea.video.pad_to_even)"
            )
        if keyframe_interval is not None and keyframe_interval < 1:
            raise ValueError(f"keyframe_interval must be >= 1, got {keyframe_interval}")
        self.path = Path(path)
        self.height, self.width = height, width
        self.rate = as_rate(fps)
        self.codec, self.keyframe_interval, self.crf, self.preset, self.pix_fmt = (
            codec,
            keyframe_interval,
            crf,
            preset,
            pix_fmt,
        )
        self.threads, self.fsync = threads, fsync
        self.frames_written = 0
        self._target = None
        self._container = None
        self._stream = None

    def __enter__(self) -> VideoWriter:
        # The temporary keeps the real suffix (``.mp4``): FFmpeg chooses the muxer by it.
        self._target = atomic_path(self.path, fsync=self.fsync)
        tmp = self._target.__enter__()
        try:
            self._container = av.open(str(tmp), mode="w")
            stream = self._container.add_stream(self.codec, rate=self.rate)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
            stream.codec_context.time_base = 1 / self.rate
            if self.keyframe_interval is not None:
                stream.codec_context.gop_size = self.keyframe_interval
            stream.codec_context.options = _encoder_options(
                self.codec, self.keyframe_interval, self.crf, self.preset, self.threads
            )
            self._stream = stream
        except BaseException as exc:
            self._abort(exc)
            raise
        return self

    def write(self, frames) -> None:
        """Append ``uint8 [H, W, 3]`` or ``[T, H, W, 3]`` RGB frames (numpy or torch)."""
        arr = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        batch = as_uint8_frames(arr[None] if arr.ndim == 3 else arr)
        if batch.shape[1:3] != (self.height, self.width):
            raise ValueError(
                f"{self.path}: frame size {batch.shape[1]}x{batch.shape[2]} "
                f"!= writer size {self.height}x{self.width}"
            )
        for frame in batch:
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = self.frames_written
            vf.time_base = 1 / self.rate
            self._container.mux(self._stream.encode(vf))
            self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._abort(exc)
            return
        try:
            if self.frames_written == 0:
                raise ValueError(f"{self.path}: no frames written (a zero-frame mp4 is not a readable video)")
            self._container.mux(self._stream.encode(None))  # flush delayed (B-)frames
            self._container.close()
        except BaseException as err:
            self._abort(err)
            raise
        self._target.__exit__(None, None, None)

    def _abort(self, exc: BaseException) -> None:
        if self._container is not None:
            # Already failing: the original error is the one to report, not a close() error.
            with suppress(Exception):
                self._container.close()
        self._target.__exit__(type(exc), exc, exc.__traceback__)


def write_video(
    path: str | os.PathLike,
    frames,
    *,
    fps: float | Fraction = 25,
    codec: str = "libx264",
    keyframe_interval: int | None = None,
    crf: float | None = 18,
    preset: str | None = None,
    threads: int | None = None,
    fsync: bool = True,
) -> int:
    """Write ``uint8 [T, H, W, 3]`` RGB frames (numpy or torch) to an mp4 (yuv420p), atomically.

    H and W must be even (yuv420p): odd sizes raise ``ValueError`` rather than being silently padded; call
    :func:`pad_to_even` first if padding is what you want. See :class:`VideoWriter` for the other
    arguments. Returns the number of frames written (== T).
    """
    arr = as_uint8_frames(frames)
    _, h, w, _ = arr.shape
    with VideoWriter(
        path,
        height=h,
        width=w,
        fps=fps,
        codec=codec,
        keyframe_interval=keyframe_interval,
        crf=crf,
        preset=preset,
        threads=threads,
        fsync=fsync,
    ) as writer:
        writer.write(arr)
    return writer.frames_written
