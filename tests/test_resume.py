"""Kill and resume: a run interrupted anywhere and re-run ends bitwise identical to an uninterrupted one.

Everything runs on the CPU with one thread, so every run of a configuration computes the same bits. Dropout is
left on and BatchNorm in training mode on purpose: resuming must restore the RNG state and the running
statistics too.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import synthetic_overrides
from safetensors.torch import load_file

from siasamrea.method.config import load_config
from siasamrea.training import checkpoint as ckpt
from siasamrea.training.cli import train

SETTINGS = {
    # one task: 24 questions, 6 steps per epoch, 12 in all
    "msvd-qa": ["method.num_clips=3", "method.frames_per_clip=2", "optim.epochs=2", "optim.batch_size=4",
                "data.train_limit=24", "eval.batch_size=16", "run.log_every=1"],
    # four tasks (interleaved batches: resuming mid-epoch must skip the right batches of each task)
    "tgif-qa": ["method.num_clips=3", "method.frames_per_clip=2", "optim.epochs=2", "optim.batch_size=4",
                "data.train_limit=12", "eval.batch_size=16", "run.log_every=1", "run.analysis_videos=2"],
}  # fmt: skip


def overrides(root: Path, dataset: str, out: Path, *extra: str) -> list[str]:
    return synthetic_overrides(root, dataset, out, *SETTINGS[dataset], *extra)


def run(root: Path, dataset: str, out: Path, *extra: str) -> dict:
    return train(load_config(None, overrides(root, dataset, out, *extra)))


def steps(out: Path) -> int:
    return json.loads((out / "data.json").read_text())["steps_per_epoch"]


@pytest.fixture(scope="module")
def reference(synthetic_root, tmp_path_factory):
    """Uninterrupted runs (no mid-epoch checkpoints), per dataset, made on first use."""
    made = {}

    def get(dataset: str) -> Path:
        if dataset not in made:
            out = tmp_path_factory.mktemp("reference") / dataset
            result = run(synthetic_root, dataset, out)
            assert result["steps"] == 2 * steps(out)
            made[dataset] = out
        return made[dataset]

    return get


def _log_rows(out: Path) -> list[list[str]]:
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.reader(f))
    seconds = rows[0].index("seconds")
    return [r[:seconds] + r[seconds + 1 :] for r in rows]


def _tensors_equal(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), (
            f"{what}: {k} differs (max {float((a[k].double() - b[k].double()).abs().max()):.3g})"
        )


def assert_same_run(a: Path, b: Path) -> None:
    """Bitwise-equal weights, W1/W2, final optimiser state and RNG; equal metrics, logs and predictions."""
    _tensors_equal(load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors"),
                   "model")  # fmt: skip
    if (a / "objective.safetensors").exists() or (b / "objective.safetensors").exists():
        _tensors_equal(
            load_file(a / "objective.safetensors"), load_file(b / "objective.safetensors"), "W1/W2"
        )
    last_a, last_b = ckpt.latest_checkpoint(a / "checkpoints"), ckpt.latest_checkpoint(b / "checkpoints")
    assert last_a.name == last_b.name
    for f in (ckpt.WEIGHTS, ckpt.STATE):  # the optimiser's moments, its step counts and the RNG state
        _tensors_equal(load_file(last_a / f), load_file(last_b / f), f"{last_a.name}/{f}")
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ma.pop("train_seconds"), mb.pop("train_seconds")
    assert ma == mb
    assert (a / "epochs.csv").read_text() == (b / "epochs.csv").read_text()
    assert _log_rows(a) == _log_rows(b)  # no step logged twice, none missing
    preds = sorted(p.name for p in (a / "predictions").iterdir())
    assert preds == sorted(p.name for p in (b / "predictions").iterdir())
    for name in preds:
        assert (a / "predictions" / name).read_text() == (b / "predictions" / name).read_text(), name
    if (a / "analysis.json").exists():
        assert (a / "analysis.json").read_text() == (b / "analysis.json").read_text()


# -- (a) stop and resume ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["msvd-qa", "tgif-qa"])
def test_stop_and_resume_is_bitwise_identical(synthetic_root, reference, tmp_path, dataset):
    ref = reference(dataset)
    n = steps(ref)
    out = tmp_path / "run"
    # stop mid-epoch one step after a checkpoint: that step is lost and done again on resume
    assert run(synthetic_root, dataset, out, "run.checkpoint_every=2", f"run.max_steps={n - 1}") == {}
    assert not (out / "metrics.json").exists() and not (out / "model").exists()
    last = ckpt.latest_checkpoint(out / "checkpoints")
    assert json.loads((last / ckpt.META).read_text())["step_in_epoch"] not in (0, n)  # a mid-epoch checkpoint
    # again, across the epoch boundary (epoch-end evaluation and checkpoint included), then to the end
    assert run(synthetic_root, dataset, out, "run.checkpoint_every=2", f"run.max_steps={n + 3}") == {}
    result = run(synthetic_root, dataset, out, "run.checkpoint_every=2")
    assert result["steps"] == 2 * n and result["epochs"] == 2
    assert_same_run(ref, out)


def test_resume_of_a_finished_run_changes_nothing(synthetic_root, reference, tmp_path):
    ref = reference("msvd-qa")
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    before = load_file(out / "model" / "model.safetensors")
    result = run(synthetic_root, "msvd-qa", out)  # resumes from the last checkpoint: nothing left to train
    assert result["steps"] == 2 * steps(ref)
    _tensors_equal(before, load_file(out / "model" / "model.safetensors"), "model")
    assert_same_run(ref, out)


# -- (b) a real SIGKILL --------------------------------------------------------------------------------
def _cli(root: Path, out: Path, *extra: str) -> list[str]:
    args = [a for o in overrides(root, "msvd-qa", out, *extra) for a in ("--set", o)]
    return [sys.executable, "-m", "siasamrea.training", *args]


def test_sigkill_and_resume_is_bitwise_identical(synthetic_root, tmp_path):
    # Every run here is a fresh process, as after a real crash: the reference too (the pytest process carries
    # whatever state earlier tests left, and floating-point state such as denormal handling is per process).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "reference"
    subprocess.run(_cli(synthetic_root, ref), env=env, check=True, capture_output=True)
    out = tmp_path / "run"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(_cli(synthetic_root, out, "run.checkpoint_every=1"), env=env,
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while not ckpt.list_checkpoints(out / "checkpoints"):
                assert proc.poll() is None, f"the run ended before its first checkpoint: {log.read_text()}"
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists()  # killed while training, not after
    killed_at = ckpt.latest_checkpoint(out / "checkpoints")
    assert killed_at is not None
    assert int(killed_at.name.split("-")[1]) < 2 * steps(ref)

    resumed = _cli(synthetic_root, out, "run.checkpoint_every=1")
    subprocess.run(resumed, env=env, check=True, capture_output=True)
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2 * steps(ref)
    assert_same_run(ref, out)


# -- (c) a broken checkpoint ---------------------------------------------------------------------------
def _stopped_run(root, out: Path, max_steps: int) -> list[Path]:
    assert run(root, "msvd-qa", out, "run.checkpoint_every=2", f"run.max_steps={max_steps}") == {}
    return ckpt.list_checkpoints(out / "checkpoints")


def test_truncated_checkpoint_is_skipped_and_resume_still_exact(synthetic_root, reference, tmp_path):
    ref = reference("msvd-qa")
    out = tmp_path / "run"
    older, newest = _stopped_run(synthetic_root, out, 5)
    assert (older.name, newest.name) == ("step-000000002", "step-000000004")
    weights = newest / ckpt.WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated mid-write (e.g. a full disk, a copy cut short)
    # the leftovers of a save interrupted before its rename
    tmp = out / "checkpoints" / ".step-000000006.tmp-424242"
    tmp.mkdir()
    (tmp / ckpt.WEIGHTS).write_bytes(data[:100])

    with pytest.warns(UserWarning, match=r"step-000000004.*weights\.safetensors.*checksum"):
        assert ckpt.latest_checkpoint(out / "checkpoints") == older
    with pytest.raises(ValueError, match="not usable"):
        ckpt.load_checkpoint(newest)
    assert tmp not in ckpt.list_checkpoints(out / "checkpoints")

    with pytest.warns(UserWarning, match=r"skipping checkpoint .*step-000000004"):
        result = run(synthetic_root, "msvd-qa", out, "run.checkpoint_every=2")
    assert result["steps"] == 2 * steps(ref)
    assert_same_run(ref, out)


@pytest.mark.parametrize("damage", ["state truncated", "meta truncated", "meta missing", "weights missing"])
def test_every_kind_of_damage_is_detected(synthetic_root, tmp_path, damage):
    out = tmp_path / "run"
    older, newest = _stopped_run(synthetic_root, out, 5)
    what, how = damage.split()
    path = newest / {"state": ckpt.STATE, "meta": ckpt.META, "weights": ckpt.WEIGHTS}[what]
    if how == "missing":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 7])
    with pytest.warns(UserWarning, match="step-000000004"):
        assert ckpt.latest_checkpoint(out / "checkpoints") == older
    assert ckpt.validate(older) is None and ckpt.validate(newest) is not None


def test_no_intact_checkpoint_means_a_fresh_start(tmp_path):
    root = tmp_path / "checkpoints"
    assert ckpt.latest_checkpoint(root) is None
    (root / ".step-000000002.tmp-1").mkdir(parents=True)
    (root / "step-000000003").mkdir()  # no meta.json
    with pytest.warns(UserWarning, match="no meta.json"):
        assert ckpt.latest_checkpoint(root) is None


# -- (d) another configuration ------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "key"), [("optim.lr=1e-3", "optim.lr"),
                                             ("method.num_clips=4", "method.num_clips"),
                                             ("run.seed=1", "run.seed")])  # fmt: skip
def test_resume_with_another_configuration_is_refused(synthetic_root, tmp_path, change, key):
    out = tmp_path / "run"
    _stopped_run(synthetic_root, out, 3)
    config_before = (out / "config.yaml").read_text()
    log_before = (out / "log.csv").read_text()
    with pytest.raises(ValueError, match=rf"another configuration \(differs in {key}\)"):
        run(synthetic_root, "msvd-qa", out, "run.checkpoint_every=2", change)
    # nothing in the run directory was touched by the refused run
    assert (out / "config.yaml").read_text() == config_before
    assert (out / "log.csv").read_text() == log_before
    assert load_config(out / "config.yaml") == load_config(
        None, overrides(synthetic_root, "msvd-qa", out, "run.checkpoint_every=2", "run.max_steps=3")
    )
    # operational settings may change: this resumes
    assert run(synthetic_root, "msvd-qa", out, "run.checkpoint_every=3", "run.keep_checkpoints=1",
               "run.max_steps=4", "run.log_every=2") == {}  # fmt: skip
    assert [p.name for p in ckpt.list_checkpoints(out / "checkpoints")] == ["step-000000003"]
