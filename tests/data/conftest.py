"""Fixtures for the annotation-reader tests: where the real public annotation files live."""

from __future__ import annotations

from pathlib import Path

import pytest

# The unchanged public releases are shared next to the repository (never copied into it):
# /work/main/tests/data/conftest.py -> parents[2] is the repo root -> ../shared/data/real-annotations.
REAL_ANNOTATIONS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real-annotations"


def _real_dir(name: str) -> Path:
    path = REAL_ANNOTATIONS / name
    if not path.is_dir():
        pytest.skip(f"real annotation folder {path} is missing; these tests need the public releases there")
    return path


@pytest.fixture(scope="session")
def tgif_root() -> Path:
    return _real_dir("tgif-qa")


@pytest.fixture(scope="session")
def msvd_root() -> Path:
    return _real_dir("msvd-qa")


@pytest.fixture(scope="session")
def activitynet_root() -> Path:
    return _real_dir("activitynet-qa")


@pytest.fixture(scope="session")
def how2qa_root() -> Path:
    return _real_dir("how2qa")
