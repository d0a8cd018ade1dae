"""The learning-rate schedule (paper Sec. 4.2: linear warm-up over 10% of the steps, then linear decay to 0)
is ``transformers.get_linear_schedule_with_warmup``; this compares it with the schedule the engine used to
write by hand, step by step."""

from __future__ import annotations

import pytest
import torch

from siasamrea.training.trainer import linear_schedule


def _old_factor(total_steps: int, warmup_ratio: float):
    """The engine's former hand-written schedule (a LambdaLR factor), kept here as the reference."""
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor, warmup


def _lrs(total: int, ratio: float, lr: float = 0.5) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = linear_schedule(opt, total, ratio)
    out = []
    for _ in range(total + 2):  # two steps past the end: the rate stays at 0
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("total,ratio", [(100, 0.1), (576, 0.1), (37, 0.2), (10, 0.0), (3, 0.5)])
def test_linear_schedule_matches_the_former_one_after_warmup_and_shifts_warmup_by_one_step(total, ratio):
    lr = 0.5
    new = _lrs(total, ratio, lr)
    old, warmup = _old_factor(total, ratio)
    for step in range(total + 2):
        if step >= warmup:  # decay: identical
            assert new[step] == pytest.approx(lr * old(step), abs=1e-12), step
        else:  # warm-up: transformers starts at 0 and reaches the old rate one step later
            assert new[step] == pytest.approx(lr * step / warmup, abs=1e-12), step
            assert new[step] == pytest.approx(lr * old(step - 1) if step else 0.0, abs=1e-12), step
    assert new[warmup] == pytest.approx(lr) and new[total] == 0.0 and new[-1] == 0.0
    assert max(new) == pytest.approx(lr)
