"""The researcher's daily tools around the pipeline: profiles composed into params.yaml, `dvc exp run -S`
touching one line, the offline `dvc plots show` page, the headline metrics DVC shows, the per-epoch curves,
the stage counter of `make repro`, the per-epoch ETA line and the venv stamp of the Makefile."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo
from dvc.utils.hydra import apply_overrides
from dvc_render import VegaRenderer, render_html

from siasamrea.analysis import curves
from siasamrea.pipeline import headline, profiles, progress, stages
from siasamrea.synthetic.generator import SynthConfig, _jobs
from siasamrea.training.trainer import Trainer


# -- profiles ---------------------------------------------------------------------------------------------
def test_committed_params_yaml_is_the_composed_default_profile():
    assert (REPO / "params.yaml").read_text() == profiles.params_text("default", REPO), (
        "params.yaml is out of date: run `python -m siasamrea.pipeline.profiles use default`"
    )


def test_overlays_say_only_what_they_change_and_compose_deeply(tmp_path):
    default = profiles.load_profile("default", REPO)
    smoke = profiles.load_profile("smoke", REPO)
    # deep merge: smoke changes sizes but keeps the rest of data.synth and every dataset definition
    assert smoke["data"]["synth"]["tgif_train"] == 24 and smoke["data"]["synth"]["tgif_format"] == "gif"
    # !replace inside data.synth: without it the default's 3,200 action videos made most of the smoke run
    assert default["data"]["synth"]["tgif_train_tasks"] and smoke["data"]["synth"]["tgif_train_tasks"] == {}
    assert len(_jobs(SynthConfig(**smoke["data"]["synth"]), tmp_path)) < 400, "the smoke benchmark is a toy"
    assert {k: v for k, v in smoke["data"]["datasets"].items() if k != "how2qa"} == default["data"][
        "datasets"
    ]
    assert "how2qa" not in default["data"]["datasets"] and "how2qa" in smoke["data"]["datasets"]  # added
    assert smoke["method"]["num_clips"] == 3 and smoke["method"]["alpha"] == default["method"]["alpha"]
    # !replace drops the default's other variants; a plain mapping adds to them
    assert sorted(smoke["ablations"]["variants"]) == ["all_clips", "anchor_copies", "no_w1"]
    assert set(smoke["finetune"]["variants"]) == set(default["finetune"]["variants"]) | {"n2"}
    # !replace on a mapping: smoke's init config keeps the default's model and method, drops its optim
    assert smoke["init"]["config"] == {
        "model": default["init"]["config"]["model"],
        "method": {"variant": "baseline", "frames_per_clip": 2},
    }
    assert "optim" in default["init"]["config"]
    paper = profiles.load_profile("paper", REPO)
    assert "stills" not in paper["data"]["datasets"] and paper["model"]["visual_head"] == "clipbert"
    assert paper["model"]["vision"]["depths"] == [3, 4, 6, 3]  # ResNet-50, replacing the tiny default's
    assert paper["pretrain"]["seeds"] == default["pretrain"]["seeds"]  # merged, not re-spelled
    assert paper["ablations"]["seeds"] == default["ablations"]["seeds"]  # merged: adds variants only
    assert set(paper["ablations"]["variants"]) > set(default["ablations"]["variants"]) | {"no_w1"}
    # the overlay files are short: they do not re-spell whole blocks
    for name in ("smoke", "paper"):
        lines = (REPO / "profiles" / f"{name}.yaml").read_text().count("\n")
        assert lines < (REPO / "profiles" / "default.yaml").read_text().count("\n") / 2


def test_profile_errors_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "profiles").mkdir()
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml: no such profile \(available: none\)"):
        profiles.load_profile("nope", tmp_path)
    (tmp_path / "profiles" / "a.yaml").write_text("extends: b\nname: a\n")
    (tmp_path / "profiles" / "b.yaml").write_text("extends: a\nname: b\n")
    with pytest.raises(ValueError, match="loops back"):
        profiles.load_profile("a", tmp_path)
    (tmp_path / "profiles" / "c.yaml").write_text("name: d\n")
    with pytest.raises(ValueError, match=r"c\.yaml: 'name' must be 'c'"):
        profiles.load_profile("c", tmp_path)


def test_merge_rules():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": {"p": 1, "q": 2}}
    over = {"a": {"y": [3]}, "b": profiles.Replace({"r": 3})}
    assert profiles.merge(base, over) == {"a": {"x": 1, "y": [3]}, "b": {"r": 3}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": {"p": 1, "q": 2}}, "the base is not modified"


def test_dvc_exp_run_set_param_changes_only_its_own_lines(tmp_path):
    """`dvc exp run -S` rewrites params.yaml with DVC's own YAML writer: the composed file is in its style."""

    path = tmp_path / "params.yaml"
    before = profiles.params_text("default", REPO)
    path.write_text(before)
    apply_overrides(str(path), ["active.method.omega=0.4", "active.bench.threads=2"])
    old, new = before.splitlines(), path.read_text().splitlines()
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert [b.strip() for _, b in changed] == ["omega: 0.4", "threads: 2"], changed


def test_use_writes_params_and_sandbox_leaves_out_the_committed_results(tmp_path):
    dst = profiles.sandbox("smoke", tmp_path / "box", REPO, share_cache=False)
    assert yaml.safe_load((dst / "params.yaml").read_text())["active"]["name"] == "smoke"
    assert (dst / "dvc.yaml").is_file() and (dst / "siasamrea" / "pipeline" / "profiles.py").is_file()
    assert (
        not (dst / "figures").exists() and not (dst / "metrics").exists() and not (dst / "dvc.lock").exists()
    )
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=dst, capture_output=True, text=True, check=True
    )
    assert status.stdout == "", "the sandbox is a clean git repository (DVC experiments need one)"
    assert (REPO / "params.yaml").read_text() == profiles.params_text("default", REPO), (
        "the repo is untouched"
    )


# -- what DVC shows ---------------------------------------------------------------------------------------
FULL = {
    "best": {"msvd-qa": {"val": {"acc": 0.40, "epoch": 2}, "test": {"acc": 0.3102, "epoch": 3}}},
    "last": {"msvd-qa": {"val": {"acc": 0.30, "epoch": 6}, "test": {"acc": 0.297, "epoch": 6}}},
    "steps": 10, "epochs": 6, "train_seconds": 1.0,
}  # fmt: skip


def test_headline_metrics_are_the_last_epoch_on_the_headline_split_in_percent():
    assert headline.headline_metrics(FULL) == {"acc": 29.7, "best": 31.02}
    multi = {
        "best": {"action": {"test": {"acc": 0.2, "epoch": 5}}, "count": {"test": {"mse": 1.76, "epoch": 8}}},
        "last": {"action": {"test": {"acc": 0.18, "epoch": 8}}, "count": {"test": {"mse": 1.8, "epoch": 8}}},
    }
    assert headline.headline_metrics(multi) == {"action": 18.0, "count_mse": 1.8}
    assert headline.headline_metrics({"skipped": "init is disabled"}) == {}
    other = {**FULL, "last": {"msvd-qa": {"test": {"acc": 0.3, "epoch": 6}}}}
    assert headline.group_headline([FULL, other]) == {"acc": 29.85, "best": 31.02, "seeds": 2}
    assert headline.group_headline([{"skipped": "init is disabled"}]) == {}


def test_a_mean_of_seeds_rounds_once_not_per_seed():
    """Seeds at MSE 1.0051, 1.0051, 1.0020: rounded per seed (1.01, 1.01, 1.0) their mean would be 1.01;
    the mean of the values themselves is 1.00407 -> 1.0, what the tables print (they once said 2.08/2.09)."""
    runs = [
        {"best": {"count": {"test": {"mse": v, "epoch": 6}}}, "last": {"count": {"test": {"mse": v}}}}
        for v in (1.0051, 1.0051, 1.0020)
    ]
    assert [headline.headline_metrics(r)["mse"] for r in runs] == [1.01, 1.01, 1.0]
    assert headline.group_headline(runs)["mse"] == round((1.0051 * 2 + 1.0020) / 3, 2) == 1.0


def test_committed_metrics_are_short():
    for f in (REPO / "metrics").rglob("*.json"):
        if f.name in ("data.json", "curves.json"):
            continue
        values = json.loads(f.read_text())
        assert len(values) <= 5 and not any(isinstance(v, dict) for v in values.values()), f  # tasks + seeds
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    declared = [next(iter(m)) for s in dvc["stages"].values() for m in s.get("metrics", [])]
    assert all(m.startswith("metrics/") and "summary" not in m for m in declared), declared


def test_committed_lock_holds_only_the_pipelines_stages():
    # DVC never prunes the lock entries of stages that left dvc.yaml, and each costs parse time in every `dvc`
    # call (the lock had 96 entries for 28 stages): a renamed stage's entry is removed when it is renamed.
    proc = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=REPO,
                          capture_output=True, text=True, check=True)  # fmt: skip
    live = set(proc.stdout.split())
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    assert live and locked <= live, f"dvc.lock has stages dvc.yaml no longer has: {sorted(locked - live)}"


def _only(params: dict, keys: list[str]) -> dict:
    """``params`` reduced to the dotted ``keys`` (and what they contain)."""
    out: dict = {}
    for key in keys:
        *parents, last = key.split(".")
        src, dst = params, out
        for part in parents:
            src, dst = src[part], dst.setdefault(part, {})
        dst[last] = src[last]
    return out


@pytest.mark.parametrize("drop", [None, "active.sweep.config"])
def test_each_training_stage_is_configured_by_the_params_it_lists(drop):
    # what a training stage's runs are configured from must be among its dvc.yaml params, or editing it
    # would not re-run the stage: rebuild every stage's configs from its listed keys alone
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    differs = []
    for stage in Repo(str(REPO)).index.stages:
        if "notebooks/train.ipynb" not in stage.cmd:
            continue
        keys = [k for d in stage.deps if isinstance(d, ParamsDependency) for k in d.params if k != drop]
        args = yaml.safe_load(re.search(r'-y "(\{.*\})"', stage.cmd).group(1))
        who = {"dataset": args.get("dataset"), "variant": args.get("variant"), "validate": False}
        want = stages.stage_configs(params["active"], args["stage"], **who)
        got = stages.stage_configs(_only(params, keys)["active"], args["stage"], **who)
        if [c.to_dict() for c in got] != [c.to_dict() for c in want]:
            differs.append(stage.addressing)
    if drop is None:
        assert differs == []
    else:  # the check sees a missing key: the sweep's runs evaluate once, as sweep.config says
        assert differs and all(name.startswith("sweep_") for name in differs), differs


def _write_epochs(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "epochs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_curves_take_the_headline_accuracy_of_every_listed_run(tmp_path):
    params = profiles.load_profile("smoke", REPO)
    _write_epochs(tmp_path / "runs" / "finetune" / "msvd-qa-baseline" / "s0", [
        {"epoch": 1, "step": 3, "msvd-qa_test_acc": 0.25, "msvd-qa_test_acc_who": 0.9, "msvd-qa_val_acc": .5},
        {"epoch": 2, "step": 6, "msvd-qa_test_acc": 0.3, "msvd-qa_test_acc_who": 0.1, "msvd-qa_val_acc": .6},
    ])  # fmt: skip
    _write_epochs(tmp_path / "runs" / "pretrain" / "siasamrea" / "s0", [
        {"epoch": 1, "step": 3, "action_test_acc": 0.2, "count_test_mse": 2.0, "frameqa_test_acc": 0.4},
    ])  # fmt: skip
    rows, missing = curves.curve_rows(params, tmp_path)
    ft = [r for r in rows if r["panel"] == "finetune: msvd-qa (test)"]
    assert [(r["epoch"], r["acc"]) for r in ft] == [(1, 25.0), (2, 30.0)], (
        "the test split, not the last column"
    )
    pre = {r["panel"]: r["acc"] for r in rows if r["panel"].startswith("pretrain")}
    assert pre == {"pretrain: action (test)": 20.0, "pretrain: frameqa (test)": 40.0}, "count (MSE) left out"
    assert "runs/init" in missing and "runs/finetune/how2qa-skr/s0" in missing
    assert len(missing) == len(curves._refs(params)) - 2


def test_offline_plots_template_carries_vega_and_no_cdn(tmp_path):

    config = (REPO / ".dvc" / "config").read_text()
    assert "html_template = plots/offline.html" in config
    page = (REPO / ".dvc" / "plots" / "offline.html").read_text()
    assert page.count("{plot_divs}") == 1 and "<script src=" not in page and "{scripts}" not in page
    for lib in ("vega", "vega-lite", "vega-embed"):
        assert (REPO / ".dvc" / "plots" / "vendor" / f"LICENSE.{lib}").is_file()
    renderer = VegaRenderer([{"epoch": 1, "acc": 2.0}], "x", x="epoch", y="acc")
    html = Path(
        render_html([renderer], tmp_path / "index.html", REPO / ".dvc" / "plots" / "offline.html")
    ).read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html and "vega-lite 5.2.0" in html


# -- progress -----------------------------------------------------------------------------------------------
def test_stage_counter_prefixes_each_stage_and_passes_output_through():
    script = (
        "print(\"Running stage 'data':\"); print('log'); print(\"Stage 'init' is cached - skipping run\")"
    )
    out = io.StringIO()
    rc = progress.run_with_counter([sys.executable, "-c", script], "2", out)
    lines = out.getvalue().splitlines()
    assert rc == 0
    assert lines[0].startswith("[1/2] data (running;") and lines[1] == "Running stage 'data':"
    assert lines[2] == "log" and lines[3].startswith("[2/2] init (from the run cache;")


def test_epoch_line_has_the_eta(capfd):
    stub = types.SimpleNamespace(
        cfg=types.SimpleNamespace(
            run=types.SimpleNamespace(out_dir="runs/x"), optim=types.SimpleNamespace(epochs=8)
        ),
        epoch=2,
        history=types.SimpleNamespace(
            rows=[{"epoch": 2, "msvd-qa/test/acc": 0.25, "msvd-qa/test/acc/who": 0.5}]
        ),
    )
    Trainer._report_epoch(stub, 20.0, 2)  # 10 s per epoch, 6 to go
    err = capfd.readouterr().err
    assert err == "  [runs/x] epoch 2/8 20s, ETA 1m00s | msvd-qa/test 25.0%\n"


# -- Makefile ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_venv_stamp_depends_on_torch_spec(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".installed-torch__2.13.0").write_text("")  # installed with the default TORCH_SPEC

    def plan(*args: str) -> str:
        cmd = ["make", "-n", "-C", str(REPO), f"VENV={venv}", *args, "setup"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    assert "pip install" not in plan(), "the default torch is installed already"
    assert 'pip install --quiet "torch==2.5.1"' in plan("TORCH_SPEC=torch==2.5.1")
