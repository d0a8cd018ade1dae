"""Video I/O: frame counting and sparse frame reads with decord, mp4/GIF writing and GIF -> mp4 with PyAV.

* :mod:`~siasamrea.video.errors`: :class:`VideoError` and what can be said about a bad file before decoding.
* :mod:`~siasamrea.video.decode`: reading with decord (frame counts, stream size and rate, sparse reads).
* :mod:`~siasamrea.video.encode`: writing mp4 with PyAV (:class:`VideoWriter`, :func:`write_video`).
* :mod:`~siasamrea.video.gif`: writing GIFs and converting them to mp4 (decord cannot decode GIF).

Conventions:

* Frames are ``uint8`` RGB, channels last: ``[T, H, W, 3]`` (a single frame is ``[H, W, 3]``).
* ``size`` is always ``(H, W)``, height first, like tensor shapes.
* Every problem with a file raises :class:`VideoError`, whose message starts with the file path.
* Every file this package writes is written to a hidden temporary file next to the target and moved into
  place with :func:`os.replace` (:func:`siasamrea.core.fileio.atomic_path`), so a killed run never leaves a
  truncated video under the final name.
"""

from siasamrea.video.decode import count_frames, fit_size, read_frames, read_frames_fit, video_fps, video_size
from siasamrea.video.encode import VideoWriter, pad_to_even, write_video
from siasamrea.video.errors import VideoError, is_gif
from siasamrea.video.gif import ConvertReport, ConvertResult, convert_gif_to_mp4, convert_gifs, write_gif

__all__ = [
    "VideoError",
    "is_gif",
    "count_frames",
    "read_frames",
    "fit_size",
    "video_size",
    "video_fps",
    "read_frames_fit",
    "pad_to_even",
    "VideoWriter",
    "write_video",
    "write_gif",
    "convert_gif_to_mp4",
    "ConvertResult",
    "ConvertReport",
    "convert_gifs",
]
