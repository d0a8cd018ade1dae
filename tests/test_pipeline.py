"""The DVC pipeline end to end, on the smoke profile, in a fresh copy of the repository.

One module-scoped fixture copies the repository (the files git tracks or would track), switches
``params.yaml`` to the smoke profile and runs ``dvc repro`` once; the tests then check what it produced,
that a second ``dvc repro`` runs nothing, and that changing one ablation variant re-runs exactly that
variant's stage and the figures that read it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent


def _env() -> dict:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _run(args: list[str], cwd: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for rel in files:
        src = REPO / rel
        if not src.is_file() or rel.startswith(("figures/", "metrics/")) or rel == "dvc.lock":
            continue  # generated: the smoke run must make them itself
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> tuple[Path, str]:
    repo = tmp_path_factory.mktemp("smoke-repo")
    _copy_repo(repo)
    params = repo / "params.yaml"
    text = params.read_text()
    assert "\nactive: *default" in text
    params.write_text(text.replace("\nactive: *default", "\nactive: *smoke"))
    git = ["git", "-c", "user.email=smoke@test", "-c", "user.name=smoke"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "smoke"]):
        subprocess.run(git + cmd, cwd=repo, check=True, capture_output=True)
    proc = _run([str(BIN / "dvc"), "repro"], repo)
    return repo, proc.stdout


def _declared(repo: Path) -> tuple[dict, list[str]]:
    """The stages DVC generates for the smoke profile and every output path they declare."""
    out = _run([str(BIN / "dvc"), "stage", "list", "--name-only"], repo).stdout.split()
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    figures = [
        next(iter(o)) if isinstance(o, dict) else o
        for name in ("tables", "mechanism", "figure1", "figure4", "explorer")
        for key in ("outs", "metrics")
        for o in dvc["stages"][name].get(key, [])
    ]
    return out, figures


def test_smoke_repro_runs_every_stage_and_writes_every_figure(smoke_repo):
    repo, output = smoke_repo
    stages, figures = _declared(repo)
    assert _stages_run(output) == set(stages), "every stage of the smoke profile runs on a fresh copy"
    for path in figures:
        f = repo / path
        assert f.is_file() and f.stat().st_size > 0, f"{path} was not written"
    for md in (repo / "figures").glob("*.md"):
        text = md.read_text()
        assert "synthetic" in text.lower(), f"{md.name} does not say its data are synthetic"
    tables = (repo / "figures" / "table1.md").read_text()
    assert "84.1" in tables and "45.5" in tables, "Table 1 shows the paper's numbers beside ours"
    # every executed notebook is a stage output and ran without an error cell
    notebooks = sorted((repo / "runs" / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == len(stages)
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{nb.name}: {errors[0].get('ename')}"
    metrics = _run([str(BIN / "dvc"), "metrics", "show", "--json"], repo).stdout
    assert "frame_filter" in metrics and "msvd-qa" in metrics


def test_second_repro_runs_nothing(smoke_repo):
    repo, _ = smoke_repo
    proc = _run([str(BIN / "dvc"), "repro"], repo)
    assert _stages_run(proc.stdout) == set(), proc.stdout[-2000:]


def test_changing_one_ablation_reruns_only_it_and_the_figures(smoke_repo):
    repo, _ = smoke_repo
    params = repo / "params.yaml"
    text = params.read_text()
    old = "no_w1: {method: {variant: siasamrea, learn_w1: false}},"
    i = text.index("  smoke: &smoke")
    assert old in text[i:], "the smoke profile's no_w1 ablation is where the test expects it"
    params.write_text(
        text[:i] + text[i:].replace(old, old.replace("learn_w1: false", "learn_w1: false, omega: 0.4"), 1)
    )
    proc = _run([str(BIN / "dvc"), "repro"], repo)
    assert _stages_run(proc.stdout) == {"ablations@msvd-qa-no_w1-0", "tables", "mechanism", "explorer"}
    cfg = yaml.safe_load((repo / "runs" / "ablations" / "msvd-qa-no_w1-s0" / "config.yaml").read_text())
    assert cfg["method"]["omega"] == 0.4 and cfg["method"]["learn_w1"] is False
