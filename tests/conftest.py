"""Shared test set-up: offline Hugging Face, deterministic single-threaded torch, paths to shared data."""

import os
from pathlib import Path

# Nothing may be downloaded at test time: every model is a tiny random config or a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from siasamrea.data.filtering import filter_videos, write_manifest
from siasamrea.data.frames import build_frame_cache
from siasamrea.data.tokenization import build_from_vocab_file
from siasamrea.synthetic.generator import SynthConfig, generate

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_ANNOTATIONS = SHARED / "data" / "real-annotations"


# `make test` runs the suite in two pytest-xdist workers, one file at a time per worker (`-n 2 --dist
# loadfile --no-loadscope-reorder`), handing files out in collection order. The smoke pipeline
# (tests/test_pipeline.py, about 10 of the suite's 21 single-process minutes) must start first, or it would
# start last and run alone; the browser test (2 min) goes to the other worker first, and a light file follows
# the pipeline so the rest balances.
SCHEDULE_FIRST = ("test_pipeline.py", "test_explorer.py", "test_architecture.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SCHEDULE_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keeps its order


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def real_annotations() -> Path:
    if not REAL_ANNOTATIONS.is_dir():
        pytest.skip(f"real annotation files not found at {REAL_ANNOTATIONS} (../shared beside the repo)")
    return REAL_ANNOTATIONS


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic benchmark (real mp4 files and annotation files), its tokenizer, the 40-frame
    filter's manifest and 32x32 frame caches: everything a training run needs, built once per session."""

    root = tmp_path_factory.mktemp("synthetic")
    cfg = SynthConfig(
        seed=7, tgif_format="mp4", tgif_train=40, tgif_test=12, msvd_train=60, msvd_val=10, msvd_test=24,
        how2qa_train=60, how2qa_val=24, stills_train=40, stills_test=10, workers=2,
    )  # fmt: skip
    generate(cfg, root, progress=False)
    build_from_vocab_file(root / "vocab.txt", root / "tokenizer")
    tgif = sorted((root / "tgif-qa" / "mp4").glob("*.mp4"))
    write_manifest(filter_videos(tgif, min_frames=40), root / "tgif-qa" / "frame_filter.csv")
    for ds, folder in (("tgif-qa", "mp4"), ("msvd-qa", "videos"), ("how2qa", "videos"), ("stills", "mp4")):
        build_frame_cache(sorted((root / ds / folder).glob("*.mp4")), root / "cache32" / ds, 32, workers=2)
    return root


def synthetic_overrides(root: Path, dataset: str, out_dir: Path, *extra: str) -> list[str]:
    """``--set`` overrides that point a training run at the ``synthetic_root`` fixture's ``dataset``."""
    reader = {"tgif-qa": '{"video_dir": "mp4", "ext": "mp4"}', "stills": '{"video_dir": "mp4", "ext": "mp4"}',
              "msvd-qa": '{"ext": "mp4"}', "how2qa": "{}"}[dataset]  # fmt: skip
    evals = {"tgif-qa": '["test"]', "stills": '["test"]', "msvd-qa": '["val", "test"]', "how2qa": '["val"]'}[
        dataset
    ]
    out = [
        f"data.dataset={'tgif-qa' if dataset == 'stills' else dataset}",
        f"data.root={root / dataset}",
        f"data.reader={reader}",
        f"data.eval_splits={evals}",
        f"data.tokenizer={root / 'tokenizer'}",
        f"data.cache={root / 'cache32' / dataset}",
        f"data.evidence={root / dataset / 'evidence.jsonl'}",
        f"run.out_dir={out_dir}",
        "run.progress=false",
        "run.threads=1",
    ]
    if dataset == "tgif-qa":
        out.append(f"data.filter_manifest={root / 'tgif-qa' / 'frame_filter.csv'}")
    if dataset == "stills":
        out.append('data.tasks=["frameqa", "transition"]')
    return out + list(extra)
