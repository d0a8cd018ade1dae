"""Reading videos with decord: frame counts, stream metadata and sparse frame reads.

Reading goes through decord because SiaSamRea samples a handful of frames per clip (paper Sec. 3.2)
and decord's ``VideoReader.get_batch`` seeks to the nearest keyframe instead of decoding the whole file.
decord cannot decode GIF: GIFs are converted to mp4 first (:mod:`siasamrea.video.gif`).

Frames come back as ``uint8`` RGB tensors ``[T, H, W, 3]``; ``size`` arguments are ``(H, W)``, height
first (decord's own arguments are ``width``/``height`` keywords; the order swap happens here only).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import av
import decord
import numpy as np
import torch

from siasamrea.video.errors import VideoError, check_readable, decord_message, diagnose

#: The largest frame side a resize may ask for: beyond it decord's failure would read "corrupt or truncated".
MAX_FRAME_SIDE = 8192


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
        raise ValueError(f"size must be (H, W) with positive integers, got {size!r}")
    if max(size) > MAX_FRAME_SIDE:
        raise ValueError(
            f"resize to {size[0]}x{size[1]} is absurd (at most {MAX_FRAME_SIDE} pixels a side); "
            "check the frame size asked for"
        )
    return int(size[0]), int(size[1])


def _open_reader(path: str | os.PathLike, size: tuple[int, int] | None = None, num_threads: int = 0):
    """Open a decord VideoReader, translating every failure into :class:`VideoError` naming the file."""
    path = Path(path)
    check_readable(path)
    height, width = (-1, -1) if size is None else _check_size(size)
    try:
        vr = decord.VideoReader(
            str(path), ctx=decord.cpu(0), width=width, height=height, num_threads=num_threads
        )
    # decord raises RuntimeError ("Error reading ...") for files FFmpeg cannot open (truncated mp4 whose
    # moov atom is gone, garbage), DECORDError for files it opens but cannot index (no video stream,
    # truncated mdat), and AssertionError for a zero frame count.
    except (decord.DECORDError, RuntimeError, AssertionError) as exc:
        if isinstance(exc, AssertionError) and "frame count" in str(exc):
            raise VideoError(path, "zero frames (decord counts none)", kind="zero_frames") from exc
        raise VideoError(path, diagnose(path, exc)) from exc
    if len(vr) <= 0:  # the assert above is skipped under `python -O`
        raise VideoError(path, "zero frames", kind="zero_frames")
    return vr


def _to_numpy(batch) -> np.ndarray:
    """decord output -> numpy, whatever decord bridge the calling thread has set.

    We use the native bridge (``NDArray.asnumpy()``, fine with numpy 2) rather than decord's torch bridge,
    which depends on torch's DLPack interop (it works with torch 2.13, but is one more moving part).
    The bridge is thread-local global state that other code may have changed
    (``decord.bridge.set_bridge("torch")``), so accept every output type instead of setting it here.
    """
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if isinstance(batch, torch.Tensor):
        return batch.cpu().numpy()
    return np.asarray(batch)


def count_frames(path: str | os.PathLike, *, num_threads: int = 1) -> int:
    """Number of frames in a video, as decord reports it (the container's frame count).

    Opening a reader does not decode frames, so this costs about a millisecond for a small mp4.
    ``num_threads=1`` because no frame is decoded (decoder threads would only be spawned and joined);
    parallelise over files instead (see :func:`siasamrea.data.filtering.filter_videos`).

    Raises:
        VideoError: missing, empty, GIF, corrupt/truncated or zero-frame file.
    """
    return len(_open_reader(path, num_threads=num_threads))


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of a video's frames, from the container's stream header (nothing is decoded)."""
    path = Path(path)
    check_readable(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(path, "no video stream (zero frames, or not a video)", kind="zero_frames")
            ctx = container.streams.video[0].codec_context
            return int(ctx.height), int(ctx.width)
    except av.FFmpegError as exc:
        raise VideoError(path, f"corrupt or truncated (FFmpeg: {exc.strerror or exc})") from exc


def video_fps(path: str | os.PathLike) -> float:
    """Mean frame rate as decord reports it (frames per second), to map time spans to frame indices."""
    return float(_open_reader(path, num_threads=1).get_avg_fps())


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    size: tuple[int, int] | None = None,
    num_threads: int = 0,
) -> torch.Tensor:
    """Decode only the frames at ``indices``.

    Args:
        path: a video decord can read (mp4 etc., not GIF).
        indices: ``[T]`` frame indices in ``[0, num_frames)``; may repeat and be unsorted. Negative indices
            are rejected rather than counted from the end: in a sampler they are a bug, not a wish.
        size: ``(H, W)`` to resize to; the resize happens inside the decoder (decord's
            ``width``/``height``), so full-resolution frames are never materialised in Python.
        num_threads: decoder threads (0 = FFmpeg's choice).

    Returns:
        ``uint8`` tensor ``[T, H, W, 3]`` (RGB), frame ``t`` being the video frame ``indices[t]``.

    Raises:
        VideoError: unreadable file (see :func:`count_frames`) or an index out of range (the message names
            the index, the frame count and the file).
    """
    idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
    if idx.size == 0:
        idx = idx.astype(np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a 1-D integer sequence, got shape {idx.shape} dtype {idx.dtype}")
    vr = _open_reader(path, size=size, num_threads=num_threads)
    n = len(vr)
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.size:
        raise VideoError(
            path,
            f"frame index {int(bad[0])} out of range: the video has {n} frames (valid 0..{n - 1})",
            kind="index",
        )
    if idx.size == 0:
        h, w = size if size is not None else _to_numpy(vr[0]).shape[:2]
        return torch.empty((0, h, w, 3), dtype=torch.uint8)
    # Decode each distinct frame once, in increasing order (decord then only seeks forward between
    # keyframes), and expand back to the requested order/repeats with a gather.
    uniq, inverse = np.unique(idx, return_inverse=True)
    try:
        try:
            frames = _to_numpy(vr.get_batch(uniq.tolist()))
        except decord.DECORDError as exc:
            if "DECORDArrayCopyFromTo" not in str(exc):
                raise
            frames = _read_padded_rows(vr, uniq)
    except (decord.DECORDError, RuntimeError) as exc:
        reason = f"decoding failed, corrupt or truncated (decord: {decord_message(exc)})"
        raise VideoError(path, reason) from exc
    out = frames[inverse.reshape(-1)] if len(uniq) != len(idx) or not np.array_equal(uniq, idx) else frames
    return torch.from_numpy(np.ascontiguousarray(out))


def _read_padded_rows(vr, indices: np.ndarray) -> np.ndarray:
    """Work around a decord 0.6 bug for narrow frames (width <= 72 px, e.g. 2, 4, 8, 12, 16, 24, 48, 72).

    For these widths FFmpeg pads each row (linesize) to a multiple of W * 3 bytes and decord takes the
    padded row for ``W * C`` values with ``C = linesize / W``: single frames come back as ``[H, W, 6]``
    (W=16) or ``[H, W, 4]`` (W=24, 48, 72), and ``get_batch`` fails with "DECORDArrayCopyFromTo: The size
    must exactly match". The pixels are right, so decode frame by frame and keep the first ``3 * W`` bytes
    of each row. Slower (one accurate seek per frame) but only such tiny videos take this path.

    Returns ``uint8 [len(indices), H, W, 3]``.
    """
    frames = []
    for i in indices.tolist():
        raw = _to_numpy(vr[i])  # [H, W, C], C = linesize / W
        h, w = raw.shape[:2]
        frames.append(raw.reshape(h, -1)[:, : 3 * w].reshape(h, w, 3))
    return np.stack(frames)


def fit_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """``(H, W)`` with the longer side ``max_size`` and the aspect ratio kept, as ClipBERT's
    ``get_resize_size`` (``src/datasets/data_utils.py``): the shorter side is truncated to an integer
    (never below 1)."""
    if height >= width:
        return max_size, max(1, int(max_size * width / height))
    return max(1, int(max_size * height / width)), max_size


def read_frames_fit(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | torch.Tensor,
    max_size: int,
    *,
    source_size: tuple[int, int] | None = None,
    num_threads: int = 0,
) -> torch.Tensor:
    """ClipBERT's frame preprocessing (``ImageResize`` + ``ImagePad`` of ``get_imagenet_transform``): the
    longer side resized to ``max_size`` keeping the aspect ratio, then zero-padded on the right and bottom
    (the image stays in the upper-left corner) to ``max_size`` x ``max_size``. A square video is exactly
    ``read_frames(..., size=(max_size, max_size))``.

    The resize happens in the decoder (FFmpeg's scaler), ClipBERT's in ``torch.nn.functional.interpolate``
    (bilinear) after decoding: the geometry is the same, the interpolation kernel may differ.

    Args:
        source_size: the video's ``(H, W)`` if known (else read from the file header).

    Returns:
        ``uint8 [T, max_size, max_size, 3]``.
    """
    h, w = source_size if source_size is not None else video_size(path)
    fh, fw = fit_size(h, w, max_size)
    frames = read_frames(path, indices, size=(fh, fw), num_threads=num_threads)
    if (fh, fw) == (max_size, max_size):
        return frames
    out = torch.zeros((frames.shape[0], max_size, max_size, 3), dtype=torch.uint8)
    out[:, :fh, :fw] = frames
    return out
