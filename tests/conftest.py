"""Shared test set-up: offline Hugging Face, deterministic single-threaded torch, paths to shared data."""

import os
from pathlib import Path

# Nothing may be downloaded at test time: every model is a tiny random config or a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_ANNOTATIONS = SHARED / "data" / "real-annotations"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def real_annotations() -> Path:
    if not REAL_ANNOTATIONS.is_dir():
        pytest.skip(f"real annotation files not found at {REAL_ANNOTATIONS} (../shared beside the repo)")
    return REAL_ANNOTATIONS
