"""The repository a stage or notebook runs in: its root and the active profile of ``params.yaml``.

Every path of the pipeline is relative to the repository root. papermill runs a stage there (``--cwd .``);
JupyterLab starts a notebook's kernel in ``notebooks/``, so notebooks call :func:`enter_root` first.
``params.yaml`` holds the one composed profile under ``active:`` (:mod:`siasamrea.pipeline.profiles`).

Kept apart from the stage logic so that a notebook that only needs its parameters (the data stage, the
figures) does not depend on the training code.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

PARAMS_FILE = "params.yaml"

ROOT_MARKERS = (PARAMS_FILE, "dvc.yaml")


def find_root(start: str | Path = ".") -> Path:
    """The repository root: the nearest directory at or above ``start`` holding params.yaml and dvc.yaml."""
    here = Path(start).resolve()
    for d in (here, *here.parents):
        if all((d / m).is_file() for m in ROOT_MARKERS):
            return d
    raise FileNotFoundError(f"{here}: neither it nor a parent directory holds {' and '.join(ROOT_MARKERS)}")


def enter_root(start: str | Path = ".") -> Path:
    """``chdir`` to the repository root and return it. Every path of the pipeline is relative to the root:
    papermill runs a stage there (``--cwd .``), JupyterLab starts a notebook's kernel in ``notebooks/``."""
    root = find_root(start)
    if Path.cwd().resolve() != root:
        print(f"working directory: {root} (the repository root)")
        os.chdir(root)
    return root


def load_params(path: str | Path = PARAMS_FILE, profile: str | None = None) -> dict:
    """The active profile of ``params.yaml`` (a plain dict).

    ``profile``, when given, must be the active profile's name: a stage passes the profile it was launched
    for, so a notebook executed against a different ``active`` fails instead of mixing runs. ``None`` (what
    a notebook opened in JupyterLab uses) takes whichever profile is active.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no params file (run from the repository root)")
    params = yaml.safe_load(p.read_text())
    if "active" not in params:
        raise KeyError(
            f"{p}: no 'active' profile (write one with `python -m siasamrea.pipeline.profiles use <profile>`)"
        )
    active = params["active"]
    if profile is not None and active.get("name") != profile:
        raise ValueError(
            f"{p}: the active profile is {active.get('name')!r}, the notebook asked for {profile!r}"
        )
    return active


def dataset_section(params: dict, dataset: str) -> dict:
    """``data`` settings of one dataset: root, reader options, splits (from ``params.data.datasets``)."""
    datasets = params["data"]["datasets"]
    if dataset not in datasets:
        raise KeyError(f"params: data.datasets has no {dataset!r} (known: {sorted(datasets)})")
    return datasets[dataset]
