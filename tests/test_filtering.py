"""The 40-frame pretraining filter on a directory of written videos of known lengths."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from siasamrea.data.filtering import (
    PAPER_MIN_FRAMES,
    FilterReport,
    VideoEntry,
    filter_videos,
    read_manifest,
    write_manifest,
)
from siasamrea.video import VideoError, write_gif, write_video

LENGTHS = {"v10": 10, "v39": 39, "v40": 40, "v41": 41, "v55": 55}


def pyav_count_decoded(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    """Videos of known lengths, plus one corrupt file and one GIF; ``missing.mp4`` is never written."""
    d = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    for name, n in LENGTHS.items():
        frames = rng.integers(0, 256, (n, 16, 32, 3), dtype=np.uint8)
        write_video(d / f"{name}.mp4", frames, fps=10, preset="ultrafast")
    (d / "corrupt.mp4").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    write_gif(d / "anim.gif", rng.integers(0, 256, (50, 16, 16, 3), dtype=np.uint8))
    return d


def all_paths(d: Path) -> list[Path]:
    return [d / f"{name}.mp4" for name in LENGTHS] + [d / "corrupt.mp4", d / "missing.mp4"]


def test_fixture_lengths_are_what_we_think(video_dir):
    assert {name: pyav_count_decoded(video_dir / f"{name}.mp4") for name in LENGTHS} == LENGTHS


@pytest.mark.parametrize("workers", [1, 4])
def test_filter_counts_and_reasons(video_dir, workers):
    report = filter_videos(all_paths(video_dir), on_error="skip", workers=workers)
    assert report.min_frames == PAPER_MIN_FRAMES == 40
    by_id = {e.video_id: e for e in report.entries}
    assert [e.video_id for e in report.entries] == [*LENGTHS, "corrupt", "missing"]  # input order
    assert {e.video_id for e in report.kept} == report.kept_ids() == {"v40", "v41", "v55"}
    for name, n in LENGTHS.items():
        assert by_id[name].num_frames == n
    assert by_id["v10"].reason == "too_short: 10 < 40"
    assert by_id["v39"].reason == "too_short: 39 < 40"
    assert by_id["v40"].kept and by_id["v40"].reason == ""
    assert by_id["missing"].reason == "missing" and by_id["missing"].num_frames is None
    assert by_id["corrupt"].reason.startswith("unreadable: ") and not by_id["corrupt"].kept
    assert report.summary() == {
        "total": 7,
        "kept": 3,
        "dropped": {"too_short": 2, "missing": 1, "unreadable": 1},
        "min_frames": 40,
    }
    assert "kept 3 of 7" in str(report)


def test_threshold_is_a_parameter(video_dir):
    paths = [video_dir / f"{name}.mp4" for name in LENGTHS]
    assert filter_videos(paths, min_frames=11).kept_ids() == {"v39", "v40", "v41", "v55"}
    assert filter_videos(paths, min_frames=41).kept_ids() == {"v41", "v55"}
    assert filter_videos(paths, min_frames=1).kept_ids() == set(LENGTHS)
    with pytest.raises(ValueError, match="min_frames"):
        filter_videos(paths, min_frames=0)


@pytest.mark.parametrize("bad", ["corrupt.mp4", "missing.mp4", "anim.gif"])
def test_raise_mode_names_the_file(video_dir, bad):
    paths = [video_dir / "v40.mp4", video_dir / bad, video_dir / "v55.mp4"]
    with pytest.raises(VideoError) as info:
        filter_videos(paths, on_error="raise", workers=2)
    assert str(video_dir / bad) in str(info.value)


def test_gif_is_reported_with_conversion_hint(video_dir):
    report = filter_videos([video_dir / "anim.gif"], on_error="skip")
    (entry,) = report.entries
    assert not entry.kept and entry.reason_kind == "unreadable" and "convert-gifs" in entry.reason


def test_ids_from_pairs_and_duplicates(video_dir):
    v40, v55 = video_dir / "v40.mp4", video_dir / "v55.mp4"
    report = filter_videos([("tumblr_a", v40), ("tumblr_b", str(v55)), ("tumblr_a", v40)])
    assert [(e.video_id, e.num_frames) for e in report.entries] == [("tumblr_a", 40), ("tumblr_b", 55)]
    with pytest.raises(ValueError, match="tumblr_a"):
        filter_videos([("tumblr_a", v40), ("tumblr_a", v55)])
    with pytest.raises(ValueError, match="on_error"):
        filter_videos([v40], on_error="ignore")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_manifest_round_trip(video_dir, tmp_path, suffix):
    report = filter_videos(all_paths(video_dir), on_error="skip", min_frames=40)
    path = write_manifest(report, tmp_path / f"manifest{suffix}")
    back = read_manifest(path)
    assert back.min_frames == 40
    assert back.entries == report.entries
    assert back.summary() == report.summary()
    assert [p.name for p in tmp_path.iterdir()] == [f"manifest{suffix}"]  # no temp file left
    text = path.read_text()
    assert "too_short: 39 < 40" in text and "missing" in text and "unreadable: " in text


def test_manifest_formats_on_disk(tmp_path):
    report = FilterReport(
        min_frames=40,
        entries=[
            VideoEntry("a", "/v/a.mp4", 52, True),
            VideoEntry("b", "/v/b.mp4", None, False, "missing"),
            VideoEntry("c, with comma", "/v/c.mp4", 23, False, "too_short: 23 < 40"),
        ],
    )
    csv_lines = write_manifest(report, tmp_path / "m.csv").read_text().splitlines()
    assert csv_lines[0] == "video_id,path,num_frames,kept,reason,min_frames"
    assert csv_lines[1] == "a,/v/a.mp4,52,true,,40"
    assert csv_lines[2] == "b,/v/b.mp4,,false,missing,40"
    jsonl = write_manifest(report, tmp_path / "m.jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows[1] == {
        "video_id": "b",
        "path": "/v/b.mp4",
        "num_frames": None,
        "kept": False,
        "reason": "missing",
        "min_frames": 40,
    }
    assert read_manifest(tmp_path / "m.csv").entries == report.entries
    with pytest.raises(ValueError, match="csv or .jsonl"):
        write_manifest(report, tmp_path / "m.txt")
