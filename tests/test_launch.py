"""How a training stage launches its seeds (siasamrea.pipeline.launch): parallel processes, each running its
share of the seeds one after the other. A run must not depend on what ran before it in its process."""

from __future__ import annotations

import subprocess
import sys

import torch
import yaml
from conftest import synthetic_overrides
from safetensors.torch import load_file

from siasamrea.method.config import dump_config, load_config
from siasamrea.pipeline import launch


def _config(root, out, variant: str, seed: int):
    extra = (f"method.variant={variant}", "method.num_clips=3", f"run.seed={seed}", "optim.epochs=1",
             "optim.batch_size=4", "data.train_limit=16", "data.eval_limit=8",
             "run.analysis_videos=0")  # fmt: skip
    return load_config(None, synthetic_overrides(root, "msvd-qa", out, *extra))


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_a_run_after_others_in_one_process_equals_the_run_alone(synthetic_root, tmp_path):
    configs = [
        _config(synthetic_root, tmp_path / "group" / name, variant, seed)
        for name, variant, seed in (("a", "siasamrea", 1), ("b", "baseline", 2), ("c", "baseline", 3))
    ]
    params = {"launch": {"parallel_runs": 2, "nproc_per_node": 1}}
    metrics = launch.run_group(configs, params)  # two processes: a then c, and b
    run = configs[2].run.model_copy(update={"out_dir": str(tmp_path / "alone")})
    alone_cfg = configs[2].model_copy(update={"run": run})
    alone = launch.run_in_one_process([alone_cfg])[0]

    # metrics come back in the configs' order, each the run's own
    assert [m["variant"] for m in metrics] == ["siasamrea", "baseline", "baseline"]
    assert [m["steps"] for m in metrics] == [4, 4, 4]
    # c ran second in its process (after a SiaSamRea run) and is bitwise the run made alone
    after, ref = _weights(tmp_path / "group" / "c"), _weights(tmp_path / "alone")
    assert after.keys() == ref.keys()
    assert all(torch.equal(after[k], ref[k]) for k in ref)
    assert metrics[2]["last"] == alone["last"]
    # and differs from b (another seed): the comparison can fail
    other = _weights(tmp_path / "group" / "b")
    assert not all(torch.equal(other[k], ref[k]) for k in ref)


def test_the_stage_kernel_does_not_import_torch():
    # every run is a child process, so a training stage's notebook kernel need not pay torch's import (~8 s)
    heavy = "{'torch', 'transformers'}"
    code = f"import sys, siasamrea.pipeline.launch; print(sorted({heavy} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_several_configs_are_all_checked_before_any_runs(synthetic_root, tmp_path):
    good = _config(synthetic_root, tmp_path / "good", "baseline", 0)
    dump_config(good, tmp_path / "good.yaml")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**good.to_dict(), "method": {"num_clips": "many"}}))
    paths = [str(tmp_path / "good.yaml"), str(tmp_path / "bad.yaml")]
    cmd = [sys.executable, "-m", "siasamrea.training", "--config", *paths]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "config error: method.num_clips" in proc.stderr, proc.stderr
    assert not (tmp_path / "good").exists()  # the valid first config did not start either


def test_runs_share_the_threads_of_one_run_and_never_exceed_the_jobs():
    params = {"launch": {"parallel_runs": 2}, "run": {"threads": 4}}
    assert launch.share_threads(params, 6) == (2, 2)  # two processes of two threads: the four cores
    assert launch.share_threads(params, 1) == (1, 4)  # one job keeps every thread
    assert launch.share_threads(params, 6, threads=2) == (2, 1)  # the runs' own run.threads wins
    assert launch.share_threads({"launch": {"parallel_runs": 3}, "run": {"threads": 2}}, 6) == (3, 1)  # >= 1
