"""Two processes (gloo, launched by ``torchrun``) train as one process with the same global batch does, and
evaluate every item exactly once.

The runs use dropout 0 and frozen BatchNorm: dropout masks are drawn per process, and BatchNorm batch
statistics are per process on CPU (SyncBatchNorm needs GPUs), so only then are the two computations the
same up to the order of floating-point sums.

About the tolerance: Adam divides each element's update by the root of its squared-gradient average, so an
element whose gradient is rounding noise moves by up to ``lr`` per step in both runs, in unrelated directions.
Whole tensors are like that when the loss does not depend on them at all (the attention key biases: the
softmax is invariant to adding the same amount to every score of a query; for multiple choice, the scorer's
output bias and the LayerNorm bias before it: every candidate's score moves by the same amount). Those tensors
are checked to be loss-invariant instead (perturbing them changes no loss-relevant output); in every other
tensor at most one element in a thousand (at least one) may differ by more than ``ATOL``, and by no more than
Adam's step bound.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import synthetic_overrides
from safetensors.torch import load_file

from siasamrea.method.config import load_config
from siasamrea.method.model import ClipBertVQA
from siasamrea.training.cli import train
from siasamrea.training.distributed import DistInfo
from siasamrea.training.rank_samplers import EvalBatchSampler, TrainBatchSampler
from siasamrea.training.trainer import Trainer, linear_schedule

ATOL = 5e-5
NO_DROPOUT = 'model.text={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}'
COMMON = ["method.variant=siasamrea", "method.num_clips=3", "method.frames_per_clip=2", "optim.epochs=2",
          "data.train_limit=16", "model.freeze_bn=true", NO_DROPOUT, "eval.batch_size=5"]  # fmt: skip
INVARIANT = {
    "open_ended": re.compile(r"attention\.self\.key\.bias$"),
    "multiple_choice": re.compile(r"attention\.self\.key\.bias$|^heads\.[^.]+\.[23]\.bias$"),
}
KINDS = {"msvd-qa": "open_ended", "how2qa": "multiple_choice"}


def _torchrun(args: list[str], nproc: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "siasamrea.training", *args]  # fmt: skip
    return subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def pair(synthetic_root, tmp_path_factory):
    """Per dataset: a one-process run with batch 8 and a two-process run with batch 4 per process."""
    made = {}

    def get(dataset: str) -> tuple[Path, Path, list[str]]:
        if dataset not in made:
            base = tmp_path_factory.mktemp(f"ddp-{dataset}")
            one, two = base / "one", base / "two"
            extra = [*COMMON, "data.eval_limit=23"] if dataset == "how2qa" else COMMON
            single = synthetic_overrides(synthetic_root, dataset, one, *extra, "optim.batch_size=8")
            train(load_config(None, single))
            sets = synthetic_overrides(synthetic_root, dataset, two, *extra, "optim.batch_size=4")
            proc = _torchrun([a for s in sets for a in ("--set", s)], 2)
            assert proc.returncode == 0, proc.stderr[-5000:]
            made[dataset] = (one, two, single)
        return made[dataset]

    return get


def _lr_budget(overrides: list[str]) -> float:
    """Adam's bound on how far one element can move: about lr per step (1.5x margin for bias correction)."""
    cfg = load_config(None, overrides)
    steps = (
        json.loads((Path(cfg.run.out_dir) / "data.json").read_text())["steps_per_epoch"] * cfg.optim.epochs
    )
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = linear_schedule(opt, steps, cfg.optim.warmup_ratio)
    return 1.5 * cfg.optim.lr * sum(sched.lr_lambdas[0](s) for s in range(steps))


def _check_loss_invariant(model_dir: Path, names: list[str], kind: str) -> None:
    """Perturbing ``names`` changes nothing the losses see (for multiple choice: score differences)."""
    model = ClipBertVQA.from_pretrained(model_dir).eval()
    task = next(iter(model.config.heads))
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 2, 2, 32, 32, 3), generator=g, dtype=torch.uint8)
    shape = (3, 4, 9) if kind == "multiple_choice" else (3, 9)
    ids = torch.randint(5, model.bert.config.vocab_size, shape, generator=g)
    mask = torch.ones_like(ids)

    def outputs():
        with torch.no_grad():
            out = model(frames, ids, mask, task)
        logits = out.logits - out.logits.mean(-1, keepdim=True) if kind == "multiple_choice" else out.logits
        return logits, out.features

    before = outputs()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n in names:
            params[n].add_(torch.randn(params[n].shape, generator=g))
    after = outputs()
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # and the check itself can fail: a loss-relevant tensor does change them
    other = next(n for n in params if n.endswith("attention.self.query.weight"))
    with torch.no_grad():
        params[other].add_(torch.randn(params[other].shape, generator=g))
    assert not torch.allclose(outputs()[0], after[0], atol=1e-3)


def _assert_same_parameters(one: Path, two: Path, kind: str, budget: float) -> list[str]:
    a, b = load_file(one / "model" / "model.safetensors"), load_file(two / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    invariant = [k for k in a if INVARIANT[kind].search(k)]
    assert invariant  # the pattern still names real tensors
    for k in a:
        if not a[k].is_floating_point():
            assert torch.equal(a[k], b[k]), k
            continue
        diff = (a[k] - b[k]).abs()
        assert float(diff.max()) <= budget, f"{k}: differs by more than Adam can move it"
        if k in invariant:
            continue
        # Summation order differs between one process and two, and Adam divides by sqrt(v): an element whose
        # gradient stays near zero moves by up to lr per step whatever its size, so its direction is float
        # noise. A few such elements per tensor are expected (the first convolution of the synthetic data
        # has 4 of 2352); a real DDP error moves most of a tensor.
        outliers = int((diff > ATOL).sum())
        assert outliers <= max(2, a[k].numel() // 250), f"{k}: {outliers} elements differ by > {ATOL}"
    return invariant


@pytest.mark.parametrize("dataset", ["msvd-qa", "how2qa"])
def test_two_processes_train_like_one_with_the_global_batch(pair, dataset):
    one, two, overrides = pair(dataset)
    kind = KINDS[dataset]
    d1, d2 = (json.loads((d / "data.json").read_text()) for d in (one, two))
    assert (d1["world_size"], d2["world_size"]) == (1, 2)
    assert d1["steps_per_epoch"] == d2["steps_per_epoch"] == 2  # 16 questions, global batch 8
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m1["steps"] == m2["steps"] == 4

    budget = _lr_budget(overrides)
    invariant = _assert_same_parameters(one, two, kind, budget)
    _check_loss_invariant(one / "model", invariant, kind)

    # training moved the parameters far more than the tolerance (else the comparison would prove nothing)
    init = Trainer(load_config(None, overrides), DistInfo()).model.state_dict()
    final = load_file(one / "model" / "model.safetensors")
    moved = [float((final[k] - init[k]).abs().max()) for k in final if final[k].is_floating_point()]
    assert sorted(moved)[len(moved) // 4] > 10 * ATOL  # three quarters of the tensors moved by > 10 x ATOL


def test_reasoner_weights_agree(pair):
    """W1/W2 (the objective's parameters, synchronised by DDP with the network) after 4 steps."""
    one, two, _ = pair("msvd-qa")
    a, b = load_file(one / "objective.safetensors"), load_file(two / "objective.safetensors")
    assert sorted(a) == ["reasoner.w1_logits", "reasoner.w2_logits"] and a.keys() == b.keys()
    tol = ATOL / 10
    for k in a:
        # they moved from their zero initialisation by far more than the tolerance they must agree to (the
        # movement depends on the data's vocabulary through the initialisation: 4e-4 with today's)
        assert float(a[k].abs().max()) > 10 * tol
        torch.testing.assert_close(b[k], a[k], atol=tol, rtol=0)


@pytest.mark.parametrize("dataset", ["msvd-qa", "how2qa"])
def test_evaluation_scores_every_item_once(pair, dataset):
    one, two, _ = pair(dataset)
    files = sorted(p.name for p in (one / "predictions").glob("*_last.json"))
    assert files and files == sorted(p.name for p in (two / "predictions").glob("*_last.json"))
    for name in files:
        p1, p2 = (json.loads((d / "predictions" / name).read_text()) for d in (one, two))
        n = len(p1["rows"])
        assert n % 2 == 1  # an odd number of items: the two processes get different numbers of them
        assert [r["index"] for r in p2["rows"]] == list(range(n)) == [r["index"] for r in p1["rows"]]
        assert len({r["qid"] for r in p2["rows"]}) == n
        assert p2["rows"] == p1["rows"]  # the same question, target, anchor clip and prediction per item
    if dataset == "how2qa":  # predictions that vary, so a prediction given to the wrong item would show
        preds = [r["pred"] for r in json.loads((two / "predictions" / files[0]).read_text())["rows"]]
        assert len(set(preds)) > 1
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m1["best"] == m2["best"] and m1["last"] == m2["last"]
    assert (one / "epochs.csv").read_text() == (two / "epochs.csv").read_text()


def test_resume_with_another_number_of_processes_is_refused(pair, synthetic_root):
    _, two, _ = pair("msvd-qa")
    cfg = load_config(
        None, synthetic_overrides(synthetic_root, "msvd-qa", two, *COMMON, "optim.batch_size=4")
    )
    with pytest.raises(ValueError, match="written by 2 processes"):
        train(cfg)


@pytest.mark.parametrize("setting", [["method.stop_gradient=target"], ["method.variant=skr_average"]])
def test_a_parameter_without_gradient_does_not_stop_ddp(synthetic_root, tmp_path, setting):
    """The projection g of Eq. 1 gets no gradient under stop_gradient="target" and is unused by the average
    affinity: DDP must be told (find_unused_parameters), or the second step fails waiting for its gradient."""
    out = tmp_path / "run"
    extra = ["optim.batch_size=4", "optim.epochs=1", "method.projection_dim=8", *setting, "eval.batch_size=9"]
    sets = synthetic_overrides(synthetic_root, "msvd-qa", out, *COMMON, *extra)
    proc = _torchrun([a for s in sets for a in ("--set", s)], 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


# -- the samplers alone, for more sizes than the runs can afford ----------------------------------------
@pytest.mark.parametrize("n", [16, 17, 23, 3])
@pytest.mark.parametrize("world", [2, 3])
def test_train_batches_of_the_ranks_make_up_the_global_batch(n, world):
    b = 2
    single = TrainBatchSampler(n, b * world, seed=5)
    ranks = [TrainBatchSampler(n, b, rank=r, world_size=world, seed=5) for r in range(world)]
    for epoch in (0, 1):
        for s in (single, *ranks):
            s.set_epoch(epoch)
        assert len({len(s) for s in ranks}) == 1  # every rank takes the same number of steps
        per_rank = [list(s) for s in ranks]
        seen = [i for batches in per_rank for batch in batches for i in batch]
        assert set(seen) == set(range(n))  # every item in each epoch
        assert len(seen) == math.ceil(n / world) * world  # padded by at most world - 1 repeats
        if n % (b * world) == 0:  # then step k of the ranks together is step k of the single process
            for k, batch in enumerate(single):
                assert sorted(batch) == sorted(i for r in per_rank for i in r[k])
    # resuming mid-epoch skips whole batches and nothing else
    for s in ranks:
        s.set_epoch(1)
        full = list(s)
        s.set_skip(1)
        assert list(s) == full[1:]
        s.set_skip(0)


@pytest.mark.parametrize("n", [0, 1, 5, 23])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_eval_batches_cover_every_item_exactly_once(n, world):
    seen = [
        i for r in range(world) for batch in EvalBatchSampler(n, 4, rank=r, world_size=world) for i in batch
    ]
    assert sorted(seen) == list(range(n))
