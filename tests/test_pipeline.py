"""The DVC pipeline end to end, on the smoke profile, in a fresh copy of the repository.

One module-scoped fixture copies the repository (``siasamrea.pipeline.profiles.sandbox``: the files git tracks
or would track, without the committed results), selects the smoke profile and runs ``dvc repro`` once; the
tests then check what it produced (the figures, a short ``dvc metrics show``, an offline ``dvc plots show``
covering every run), that a second ``dvc repro`` runs nothing, that changing one ablation variant puts exactly
that variant's stage and the stages that read it out of date, and that changing it back restores the earlier
results from DVC's run cache without training, after which nothing is out of date.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from siasamrea.analysis.results import expected_runs
from siasamrea.data.tgif_qa import is_val_gif
from siasamrea.pipeline import profiles

BIN = Path(sys.executable).parent


def _env() -> dict:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _run(args: list[str], cwd: Path, timeout: int = 3600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> tuple[Path, str]:
    repo = tmp_path_factory.mktemp("smoke-repo")
    profiles.sandbox("smoke", repo, REPO, share_cache=False)
    assert yaml.safe_load((repo / "params.yaml").read_text())["active"]["name"] == "smoke"
    assert not (repo / "figures").exists() and not (repo / "dvc.lock").exists(), "committed results copied"
    proc = _run([str(BIN / "dvc"), "repro"], repo)
    return repo, proc.stdout


def _declared(repo: Path) -> tuple[dict, list[str]]:
    """The stages DVC generates for the smoke profile and every output path they declare."""
    out = _run([str(BIN / "dvc"), "stage", "list", "--name-only"], repo).stdout.split()
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    figures = [
        next(iter(o)) if isinstance(o, dict) else o
        for name in ("tables", "mechanism", "instrument", "figure1", "figure4", "explorer")
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
    # Table 5 states the count floor, the MSE of the (filtered) training mean, recomputed from the files
    tgif = repo / "data" / "synthetic" / "tgif-qa"
    kept = {r["video_id"] for r in csv.DictReader((tgif / "frame_filter.csv").open()) if r["kept"] == "true"}

    def answers(split: str) -> list[float]:
        rows = csv.DictReader((tgif / f"{split}_count_question.csv").open(newline=""), delimiter="\t")
        # training: the GIFs the frame filter kept, less the 10% the reader holds out as TGIF-QA's val split
        train = {g for g in kept if not is_val_gif(g, 0.1)}
        return [float(r["answer"]) for r in rows if split == "Test" or r["gif_name"] in train]

    mean = sum(answers("Train")) / len(answers("Train"))
    mse = sum((a - mean) ** 2 for a in answers("Test")) / len(answers("Test"))
    assert f"Count (MSE) MSE of the training mean {mse:.2f}" in (repo / "figures" / "table5.md").read_text()
    # every executed notebook is a stage output and ran without an error cell (`curves` is a plain command)
    notebooks = sorted((repo / "runs" / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == len([s for s in stages if s != "curves"])
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{nb.name}: {errors[0].get('ename')}"
    # dvc metrics show: one short row of headline numbers per training run, nothing else
    shown = json.loads(_run([str(BIN / "dvc"), "metrics", "show", "--json"], repo).stdout)
    files = {p: v["data"] for rev in shown.values() for p, v in rev["data"].items()}
    sections = ("init", "pretrain", "finetune", "ablations", "budget", "sweep_evidence", "sweep_size")
    training = [s for s in stages if s.split("@")[0] in sections]
    assert len(files) == len(training), sorted(files)
    for path, values in files.items():
        assert len(values) <= 5 and all(not isinstance(v, dict) for v in values.values()), (path, values)
        assert values.get("seeds", 1) >= 1  # a stage's row: its seeds' mean
        if any(s in path for s in ("finetune", "ablations", "budget", "sweep")):  # seeds' mean, last epoch
            assert set(values) == {"acc", "best", "seeds"} and 0 <= values["acc"] <= 100, (path, values)


def test_plots_cover_every_run_and_open_offline(smoke_repo):
    repo, _ = smoke_repo

    params = yaml.safe_load((repo / "params.yaml").read_text())["active"]
    points = json.loads((repo / "metrics" / "curves.json").read_text())["curves"]
    seen = {(p["panel"].split(":")[0], p["variant"], p["seed"]) for p in points}
    for ref in expected_runs(params):
        assert (ref.section, ref.variant, ref.seed) in seen, f"{ref.path} has no curve"
    assert {("init", "init", 0), ("init", "init", 1)} <= seen, "every init draw has its curve"
    epochs = {p["epoch"] for p in points if p["panel"].startswith("budget")}
    assert epochs == {1, 2}, "the budget runs' two epochs are plotted"
    _run([str(BIN / "dvc"), "plots", "show", "-o", "plots_out"], repo)
    page = (repo / "plots_out" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "<script src=" not in page, "the page must not load Vega from a CDN"
    assert "vegaEmbed" in page and '"field": "variant"' in page, "the variants template draws the page"


def test_second_repro_runs_nothing(smoke_repo):
    repo, _ = smoke_repo
    proc = _run([str(BIN / "dvc"), "repro"], repo)
    assert _stages_run(proc.stdout) == set(), proc.stdout[-2000:]


def _out_of_date(repo: Path) -> set[str]:
    """The stages ``dvc status`` finds out of date (what the next ``dvc repro`` would run)."""
    return set(json.loads(_run([str(BIN / "dvc"), "status", "--json"], repo).stdout or "{}"))


def test_changing_one_ablation_reruns_only_it_and_the_figures(smoke_repo):
    repo, _ = smoke_repo
    profile = repo / "profiles" / "smoke.yaml"
    text = profile.read_text()
    old = "no_w1: {method: {variant: siasamrea, learn_w1: false}}"
    assert text.count(old) == 1, "the smoke profile's no_w1 ablation is where the test expects it"
    profile.write_text(text.replace(old, old.replace("learn_w1: false", "learn_w1: false, omega: 0.4")))
    _run([sys.executable, "-m", "siasamrea.pipeline.profiles", "use", "smoke"], repo)
    stage = "ablations@msvd-qa-no_w1"
    readers = {"curves", "tables", "mechanism", "instrument", "explorer"}  # read its params and runs
    assert _out_of_date(repo) == {stage} | readers
    proc = _run([str(BIN / "dvc"), "repro", stage], repo)
    assert _stages_run(proc.stdout) == {stage}
    run = repo / "runs" / "ablations" / "msvd-qa-no_w1" / "s0"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["method"]["omega"] == 0.4 and cfg["method"]["learn_w1"] is False
    # the stages that read the ablation are still out of date (now its runs changed too), and no other
    assert _out_of_date(repo) == readers

    # back to the committed setting: the training run comes from DVC's run cache, nothing trains again, and
    # its outputs are the earlier ones bit for bit, so every stage that reads them is up to date again
    profile.write_text(text)
    _run([sys.executable, "-m", "siasamrea.pipeline.profiles", "use", "smoke"], repo)
    proc = _run([str(BIN / "dvc"), "repro", stage], repo)
    assert _stages_run(proc.stdout) == set() and f"'{stage}' is cached" in proc.stdout, proc.stdout[-2000:]
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["omega"] == 0.5
    assert _out_of_date(repo) == set()


def test_every_init_draw_is_trained_and_seed_s_starts_from_draw_s_mod_k(smoke_repo):
    repo, _ = smoke_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())["active"]
    k = params["init"]["draws"]
    assert k == 2 and params["ablations"]["seeds"] == [0, 1], "the smoke profile exercises a second draw"
    manifest = json.loads((repo / "runs" / "init-draws" / "draws.json").read_text())
    dirs = {
        0: ("runs/init", "runs/grounding"),
        1: ("runs/init-draws/d1/init", "runs/init-draws/d1/grounding"),
    }
    for draw, (init_dir, grounding) in dirs.items():
        cfg = yaml.safe_load((repo / init_dir / "config.yaml").read_text())
        assert cfg["run"]["seed"] == params["init"]["seed"] + draw and cfg["model"]["init_from"] == grounding
        assert (repo / grounding / "model.safetensors").is_file() and (repo / init_dir / "model").is_dir()
        assert manifest["runs"][str(draw)]["init"] == init_dir
    # two draws, two different initialisations
    a, b = (json.loads((repo / d / "metrics.json").read_text())["last"] for d in ("runs/init", dirs[1][0]))
    assert a != b
    assert json.loads((repo / "metrics" / "init.json").read_text())["seeds"] == k, "the draws' mean"
    for variant in params["ablations"]["variants"]:
        for seed in (0, 1):
            cfg = yaml.safe_load((repo / f"runs/ablations/msvd-qa-{variant}/s{seed}/config.yaml").read_text())
            assert cfg["model"]["init_from"] == dirs[seed % k][0], (variant, seed)
    for name in ("table1.md", "instrument.md", "regime.md"):  # the tables say what their intervals cover
        assert f"draw s mod {k}" in (repo / "figures" / name).read_text(), name


def test_init_draws_fine_tune_every_seed_from_one_draw_and_leave_the_pipeline_up_to_date(smoke_repo):
    repo, _ = smoke_repo
    out = repo / "build" / "init_draws"
    # draw 0: the init stage's (reused); draw 2: beyond the stage's two, trained here
    cmd = [
        sys.executable,
        "-m",
        "siasamrea.analysis.init_draws",
        "run",
        "--draws",
        "0",
        "2",
        "--out",
        str(out),
    ]
    table = _run(cmd, repo).stdout
    draw = out / "draw2"
    init = yaml.safe_load((draw / "init" / "config.yaml").read_text())
    assert init["run"]["seed"] == 2 and init["model"]["init_from"] == str(draw / "grounding")
    assert (draw / "grounding" / "model.safetensors").is_file()
    assert not (out / "draw0" / "init").exists(), "a draw the init stage trained is not trained again"
    own = yaml.safe_load((repo / "runs/finetune/msvd-qa-baseline/s0/config.yaml").read_text())
    again = yaml.safe_load((out / "draw0" / "msvd-qa-baseline" / "s0" / "config.yaml").read_text())
    new = yaml.safe_load((draw / "msvd-qa-baseline" / "s0" / "config.yaml").read_text())
    assert again["model"]["init_from"] == own["model"]["init_from"] == "runs/init"
    assert new["model"].pop("init_from") == str(draw / "init")
    for cfg in (own, again, new):
        cfg["run"].pop("out_dir"), cfg["model"].pop("init_from", None)
    assert new == own == again  # only where it starts from and where it is written differ
    report = json.loads((out / "report.json").read_text())
    measured = json.loads((repo / "runs/finetune/msvd-qa-baseline/s0/metrics.json").read_text())
    acc = 100 * measured["last"]["msvd-qa"]["test"]["acc"]
    # draw 0 fine-tuned again equals the stage's own seed-0 run (same configuration, machine and threads)
    assert report["draws"]["0"]["baseline"]["mean"] == pytest.approx(acc)
    assert set(report["draws"]) == {"0", "2"} and "| siasamrea − baseline |" in table
    assert _out_of_date(repo) == set()  # nothing the pipeline owns was touched
