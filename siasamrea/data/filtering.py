"""The pretraining frame filter (paper Sec. 4.2): videos with fewer than 40 frames are dropped.

On TGIF-QA this keeps 31,406 of 71,739 GIFs. The threshold is a parameter (``min_frames``). Frames are
counted with decord (:func:`siasamrea.video.count_frames`), so GIFs must be converted to mp4 first.

Nothing is dropped silently. Every video gets a :class:`VideoEntry` with a reason when it is dropped:

* ``"too_short: 23 < 40"``: fewer than ``min_frames`` frames;
* ``"missing"``: no such file;
* ``"unreadable: <error>"``: decord could not open it (corrupt, truncated, GIF, zero frames).

Missing and unreadable files raise :class:`~siasamrea.video.VideoError` naming the file under
``on_error="raise"`` (the default); under ``"skip"`` they are recorded and counted in
:meth:`FilterReport.summary`. :func:`write_manifest` / :func:`read_manifest` store the entries as CSV
or JSON lines (chosen by the file extension).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from siasamrea.core.fileio import atomic_path
from siasamrea.core.parallel import ordered_map
from siasamrea.video import VideoError, count_frames

__all__ = [
    "PAPER_MIN_FRAMES",
    "VideoEntry",
    "FilterReport",
    "filter_videos",
    "write_manifest",
    "read_manifest",
]

PAPER_MIN_FRAMES = 40  # paper Sec. 4.2
MANIFEST_FIELDS = ("video_id", "path", "num_frames", "kept", "reason", "min_frames")


@dataclass(frozen=True)
class VideoEntry:
    """One manifest row. ``num_frames`` is ``None`` when the file could not be counted; ``reason`` is
    empty for kept videos."""

    video_id: str
    path: str
    num_frames: int | None
    kept: bool
    reason: str = ""

    @property
    def reason_kind(self) -> str:
        """``"too_short"``, ``"missing"``, ``"unreadable"`` (or ``""`` when kept)."""
        return self.reason.split(":", 1)[0]


@dataclass
class FilterReport:
    """Result of :func:`filter_videos`: one entry per input video, in input order."""

    min_frames: int
    entries: list[VideoEntry] = field(default_factory=list)

    @property
    def kept(self) -> list[VideoEntry]:
        return [e for e in self.entries if e.kept]

    @property
    def dropped(self) -> list[VideoEntry]:
        return [e for e in self.entries if not e.kept]

    def kept_ids(self) -> set[str]:
        return {e.video_id for e in self.kept}

    def summary(self) -> dict:
        """Counts: ``{"total", "kept", "dropped": {"too_short", "missing", "unreadable"}, "min_frames"}``."""
        dropped = Counter(e.reason_kind for e in self.dropped)
        return {
            "total": len(self.entries),
            "kept": len(self.kept),
            "dropped": {kind: dropped.get(kind, 0) for kind in ("too_short", "missing", "unreadable")},
            "min_frames": self.min_frames,
        }

    def __str__(self) -> str:
        s = self.summary()
        d = s["dropped"]
        return (
            f"kept {s['kept']} of {s['total']} videos with >= {self.min_frames} frames; dropped "
            f"{d['too_short']} too short, {d['missing']} missing, {d['unreadable']} unreadable"
        )


def _normalise(videos: Iterable) -> list[tuple[str, str]]:
    """Paths or ``(video_id, path)`` pairs -> unique ``(video_id, path)`` pairs in first-seen order.

    A bare path's id is its file stem. The same pair listed twice (e.g. once per question) is kept once;
    one id with two different paths is an error, since the manifest could not say which one was counted.
    """
    pairs: dict[str, str] = {}
    for item in videos:
        if isinstance(item, (str, os.PathLike)):
            vid, path = Path(item).stem, str(item)
        else:
            vid, path = item
            vid, path = str(vid), str(path)
        if pairs.setdefault(vid, path) != path:
            raise ValueError(f"video id {vid!r} maps to two paths: {pairs[vid]} and {path}")
    return list(pairs.items())


def _count(pair: tuple[str, str]) -> tuple[int | None, VideoError | None]:
    try:
        return count_frames(pair[1]), None
    except VideoError as exc:
        return None, exc


def filter_videos(
    videos: Iterable[str | os.PathLike | tuple[str, str | os.PathLike]],
    *,
    min_frames: int = PAPER_MIN_FRAMES,
    on_error: Literal["raise", "skip"] = "raise",
    workers: int | None = None,
) -> FilterReport:
    """Count the frames of every video and keep those with at least ``min_frames``.

    Args:
        videos: paths (id = file stem) or ``(video_id, path)`` pairs.
        min_frames: keep videos with ``num_frames >= min_frames`` (the paper drops "fewer than 40").
        on_error: ``"raise"``: a missing or unreadable video raises :class:`VideoError` naming it (the
            first such video in input order). ``"skip"``: it is dropped with reason ``"missing"`` /
            ``"unreadable: ..."`` and counted in the summary.
        workers: threads counting in parallel (default ``min(8, cpu_count)``). decord is called through
            ctypes, which releases the GIL, so threads scale: ~0.8 ms/file serial vs ~0.45 ms/file with
            2-4 threads on a 2-core machine for 32x32 mp4s.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if min_frames < 1:
        raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    pairs = _normalise(videos)
    stop = (lambda result: result[1] is not None) if on_error == "raise" else None
    report = FilterReport(min_frames=min_frames)
    counts = ordered_map(_count, pairs, workers, stop=stop)  # stops at the first error under "raise"
    for (vid, path), (n, err) in zip(pairs, counts, strict=False):
        if err is not None:
            if on_error == "raise":
                raise err
            reason = "missing" if err.kind == "missing" else f"unreadable: {err.reason}"
            report.entries.append(VideoEntry(vid, path, None, False, reason))
        elif n < min_frames:
            report.entries.append(VideoEntry(vid, path, n, False, f"too_short: {n} < {min_frames}"))
        else:
            report.entries.append(VideoEntry(vid, path, n, True))
    return report


def _manifest_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"{path}: manifest must end in .csv or .jsonl")


def write_manifest(report: FilterReport, path: str | os.PathLike) -> Path:
    """Write one row per video (``video_id, path, num_frames, kept, reason, min_frames``), atomically.

    CSV for ``.csv`` (empty ``num_frames`` when unknown, ``kept`` as ``true``/``false``), JSON lines for
    ``.jsonl``/``.ndjson``.
    """
    path = Path(path)
    fmt = _manifest_format(path)
    rows = [{**asdict(e), "min_frames": report.min_frames} for e in report.entries]
    with atomic_path(path, fsync=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        if fmt == "csv":
            writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {
                        **row,
                        "num_frames": "" if row["num_frames"] is None else row["num_frames"],
                        "kept": "true" if row["kept"] else "false",
                    }
                )
        else:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_manifest(path: str | os.PathLike) -> FilterReport:
    """Read a manifest written by :func:`write_manifest` back into a :class:`FilterReport`."""
    path = Path(path)
    fmt = _manifest_format(path)
    with open(path, newline="", encoding="utf-8") as f:
        if fmt == "csv":
            rows = list(csv.DictReader(f))
            for row in rows:
                row["num_frames"] = int(row["num_frames"]) if row["num_frames"] else None
                if row["kept"] not in ("true", "false"):
                    raise ValueError(f"{path}: kept must be 'true' or 'false', got {row['kept']!r}")
                row["kept"] = row["kept"] == "true"
                row["min_frames"] = int(row["min_frames"])
        else:
            rows = [json.loads(line) for line in f if line.strip()]
    thresholds = {row.pop("min_frames") for row in rows}
    if len(thresholds) > 1:
        raise ValueError(f"{path}: rows disagree on min_frames: {sorted(thresholds)}")
    min_frames = thresholds.pop() if thresholds else PAPER_MIN_FRAMES
    return FilterReport(min_frames=min_frames, entries=[VideoEntry(**row) for row in rows])
