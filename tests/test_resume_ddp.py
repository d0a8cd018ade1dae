"""Two processes (``torchrun``, gloo, CPU) with dropout on: a run stopped and resumed, or killed -9 at random
points and resumed, ends bitwise equal to an uninterrupted two-process run.

Each rank draws its own dropout masks (their number depends on the rank's batch, padded to its own longest
question), so each rank's RNG state is its own: checkpoints store every rank's and each rank restores its
own. ``tests/kill_resume.py`` is the same kill test with more kill points (README, *Reliability*).
"""

from pathlib import Path

import pytest
import torch
from kill_resume import command, kill_and_resume, run_to_end
from safetensors.torch import load_file
from test_resume import assert_same_run

from siasamrea.training import checkpoint as ckpt


@pytest.fixture(scope="module")
def reference(synthetic_root, tmp_path_factory) -> Path:
    """An uninterrupted two-process run (18 steps, 6 per epoch, checkpoints every 2 steps)."""
    out = tmp_path_factory.mktemp("ddp-reference") / "run"
    run_to_end(command(synthetic_root, out, 2))
    return out


def test_two_process_stop_and_resume_with_dropout_is_bitwise_identical(synthetic_root, reference, tmp_path):
    out = tmp_path / "run"
    run_to_end(command(synthetic_root, out, 2, "run.max_steps=9"))  # mid-epoch 2; step 9 is lost and redone
    last = ckpt.latest_checkpoint(out / "checkpoints")
    assert last.name == "step-000000008"
    state = load_file(last / ckpt.STATE)
    # The ranks' generators have diverged (rank 1 is not a copy of rank 0): restoring rank 0's state on
    # every rank, as before, would change rank 1's dropout masks after the resume.
    assert not torch.equal(state["rng.torch"], state["rng.rank1.torch"])
    run_to_end(command(synthetic_root, out, 2))
    assert_same_run(reference, out)


def test_two_process_kill_at_random_points_is_bitwise_identical(synthetic_root, reference, tmp_path):
    report = kill_and_resume(synthetic_root, tmp_path, nproc=2, kills=2, seed=3, reference=reference)
    assert len(report["events"]) == 2
    # a kill after a logged step killed torchrun and both workers (they run in sessions of their own)
    assert all(
        e["processes_killed"] >= 3 for e in report["events"] if e["target_step"] and not e["finished_first"]
    )
    assert_same_run(reference, Path(report["killed"]))
