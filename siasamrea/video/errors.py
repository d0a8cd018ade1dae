"""What can be wrong with a video file, and how to say so: :class:`VideoError` and the diagnosis helpers.

Every problem with a file raises :class:`VideoError`, whose message starts with the file path. The
problems that can be named before decoding (missing, empty, a GIF) are checked up front
(:func:`check_readable`); when decord fails anyway, :func:`diagnose` asks FFmpeg (through PyAV) why.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

GIF_MAGIC = (b"GIF87a", b"GIF89a")
CONVERT_HINT = (
    "decord cannot decode GIF; convert GIFs to mp4 first with the `convert-gifs` pipeline step "
    "(siasamrea.video.convert_gifs)"
)


class VideoError(RuntimeError):
    """A video file that is missing, unreadable, empty, of the wrong kind, or asked for a frame it lacks.

    Attributes:
        path: the offending file.
        reason: what is wrong with it (the message is ``"<path>: <reason>"``).
        kind: machine-readable category: ``"missing"``, ``"empty"``, ``"gif"``, ``"unreadable"`` (corrupt or
            truncated), ``"zero_frames"``, ``"index"`` (frame index out of range).
    """

    def __init__(self, path: str | os.PathLike, reason: str, kind: str = "unreadable"):
        self.path = str(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"{self.path}: {reason}")


def is_gif(path: str | os.PathLike) -> bool:
    """True if the file starts with a GIF signature (``GIF87a``/``GIF89a``), whatever its extension."""
    with open(path, "rb") as f:
        return f.read(6) in GIF_MAGIC


def check_readable(path: Path) -> None:
    """Raise :class:`VideoError` for the problems we can name before handing the file to decord."""
    if not path.exists():
        raise VideoError(path, "missing: no such file", kind="missing")
    if not path.is_file():
        raise VideoError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes), zero frames", kind="empty")
    # decord fails on GIFs with an opaque "broken metadata" error; say what to do instead.
    if is_gif(path):
        raise VideoError(path, f"is a GIF. {CONVERT_HINT}", kind="gif")


def decord_message(exc: BaseException) -> str:
    """decord's C++ errors carry a timestamp and a source path; keep the last informative line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    msg = lines[-1] if lines else type(exc).__name__
    # "[12:00:00] /github/workspace/src/video/video_reader.cc:486: Error: ..." -> "Error: ..."
    if msg.startswith("[") and ".cc:" in msg:
        msg = msg.split(".cc:", 1)[1].split(":", 1)[-1].strip()
    return msg


def diagnose(path: Path, exc: BaseException) -> str:
    """Why decord could not open ``path``.

    decord's exceptions say little ("Error reading x.mp4..."): FFmpeg's reason only goes to its log on
    stderr. On this (rare) failure path, reopen the file with PyAV to get FFmpeg's reason as a string.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream (zero frames, or not a video)"
    except av.FFmpegError as err:
        return f"corrupt or truncated (FFmpeg: {err.strerror or err})"
    # FFmpeg opens it but decord cannot index it, e.g. an mp4 whose index (moov) survived truncation.
    return f"corrupt or truncated (decord: {decord_message(exc)})"
