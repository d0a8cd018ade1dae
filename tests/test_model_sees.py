"""The model sees what the questions ask about: colour, shape, number and location of the object on a small
`stills` set (the object visible in every frame), learned to near-perfect held-out accuracy by the default
architecture and recipe on 600 stills (tiny ResNet with the small stem, grounded on the stills' caption
attributes first, then the whole model on the questions; 32x32 frames, 2-layer BERT).

This is the test that would have caught the embedded benchmark's blind model (issue 10): with the ResNet's
ImageNet stem (/4 before the first stage) an 8-pixel object is 2 cells wide and shape stayed below 60%;
without the grounding, colour could stay at chance (README, "Does the model see?").
"""

import json
from pathlib import Path

import pytest
import torch

from siasamrea.data.frames import build_frame_cache
from siasamrea.data.tokenization import build_from_vocab_file
from siasamrea.method.config import load_config
from siasamrea.method.model import TINY_VISION
from siasamrea.synthetic.generator import COUNT_FIELDS, SynthConfig, generate
from siasamrea.training.cli import train
from siasamrea.training.grounding import ground

TYPES = ("color", "object", "number", "location")  # TGIF-QA frameqa types; "object" asks the shape


@pytest.fixture(scope="module")
def stills(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stills")
    sizes = {k: 1 for k in COUNT_FIELDS} | {"stills_train": 600, "stills_test": 100}
    generate(SynthConfig(seed=11, tgif_format="mp4", workers=2, **sizes), root, progress=False)
    build_from_vocab_file(root / "vocab.txt", root / "tokenizer")
    build_frame_cache(sorted((root / "stills" / "mp4").glob("*.mp4")), root / "cache", 32, workers=2)
    return root


@pytest.fixture
def one_thread():
    """One intra-op thread, restored afterwards. `make test` runs this file beside the smoke pipeline's
    runs on two cores: with two threads here as well, torch's threads oversubscribe the cores and wait on
    each other (this test took 8-9 minutes there against 1.5 alone)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_attribute_is_learned(stills, tmp_path, one_thread):
    vision = {**TINY_VISION, "downsample_in_first_stage": True}
    ground(stills / "stills", stills / "cache", tmp_path / "grounding", vision=vision, stem="small",
           epochs=8, lr=1e-3)  # fmt: skip  # as profiles/default.yaml's init.grounding
    out = tmp_path / "run"
    overrides = [
        "data.dataset=tgif-qa", f"data.root={stills / 'stills'}",
        'data.reader={"video_dir": "mp4", "ext": "mp4"}', 'data.eval_splits=["test"]',
        f"data.tokenizer={stills / 'tokenizer'}", f"data.cache={stills / 'cache'}",
        'data.tasks=["frameqa"]', f"run.out_dir={out}", "run.progress=false", "run.threads=1",
        "run.analysis_videos=0", "method.variant=baseline", "method.frames_per_clip=1",  # a still
        'model.vision={"downsample_in_first_stage": true}', "model.stem=small",
        f"model.init_from={tmp_path / 'grounding'}",
        "model.freeze_at=1",  # the stem stays at the grounded weights, as in the init stage
        "optim.epochs=8", "optim.lr=1e-3",
    ]  # fmt: skip
    train(load_config(None, overrides))
    last = json.loads((out / "metrics.json").read_text())["last"]["frameqa"]["test"]
    rows = json.loads((out / "predictions" / "frameqa_test_last.json").read_text())["rows"]
    for qtype in TYPES:
        hits = [r["pred"] == r["target"] for r in rows if r["question_type"] == qtype]
        assert len(hits) >= 100, qtype  # every still is asked every type (two shape questions)
        assert sum(hits) / len(hits) >= 0.9, (qtype, sum(hits) / len(hits), last)
