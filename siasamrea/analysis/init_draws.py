"""How much a re-drawn initialisation moves the fine-tuning results.

The pipeline starts seed ``s`` of every stage from init draw ``s mod init.draws``, so with six draws the
seeds' intervals include the draw but cannot tell it apart from the fine-tuning seed. This module separates
the two: it fine-tunes *every* seed of the chosen variants from one draw at a time ("draw" = the seed of the
grounding and ``init`` runs), exactly as the pipeline's stage would (only the run directory and
``model.init_from`` differ), and reports, per draw, the baseline, where the anchor shows the evidence, the
oracle clip, the multi-clip control and each variant's paired gap to the baseline; then the spread of the
draws' means beside the seeds' own spread. A draw the ``init`` stage has trained (seeds ``init.seed`` to
``init.seed + init.draws - 1``) is reused from ``runs/``; others are trained here. With ``init.draws: 1``
every stage run starts from draw ``init.seed``, so that draw's fine-tuning runs are the workspace's own.

    python -m siasamrea.analysis.init_draws run --draws 0 1 2 --variants baseline siasamrea
    python -m siasamrea.analysis.init_draws report

Runs go to ``--out`` (``runs/init_draws/draw<k>/{grounding,init,<dataset>-<variant>/s<seed>}``), outside
every DVC output, so the pipeline stays up to date. It needs a workspace after ``dvc repro`` (data,
``runs/init`` and the stage's runs).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from siasamrea.analysis.instrument import seed_view
from siasamrea.analysis.results import headline_split
from siasamrea.analysis.stats import Summary, mean_ci, paired_diff
from siasamrea.method.config import Config
from siasamrea.pipeline.launch import run_groundings, run_group
from siasamrea.pipeline.stages import (
    finetune_config,
    finetune_dir,
    grounding_epochs,
    init_config,
    init_dir,
    init_draws,
    init_seed,
)
from siasamrea.pipeline.workspace import load_params

OUT = "runs/init_draws"
BASELINE = "baseline"
SEEDS_ONLY = "sd of a draw's mean from its seeds alone"


def _with(
    cfg: Config, *, out_dir: str | Path, seed: int | None = None, init_from: str | Path | None
) -> Config:
    run = {"out_dir": str(out_dir)} | ({} if seed is None else {"seed": int(seed)})
    model = cfg.model if init_from is None else cfg.model.model_copy(update={"init_from": str(init_from)})
    return cfg.model_copy(update={"run": cfg.run.model_copy(update=run), "model": model})


def own_draw(params: dict) -> int | None:
    """The draw every fine-tuning run of the workspace starts from: ``init.seed`` with ``init.draws: 1``;
    ``None`` when the stage's seeds start from different draws."""
    return init_seed(params, 0) if init_draws(params) == 1 else None


def pipeline_init(params: dict, draw: int) -> str | None:
    """The ``init`` stage's run of this draw (its seed), if the stage trained it."""
    k = draw - init_seed(params, 0)
    return init_dir(k) if 0 <= k < init_draws(params) else None


def draw_dir(out: str | Path, draw: int) -> Path:
    return Path(out) / f"draw{draw}"


def run_dir(params: dict, out: str | Path, draw: int, dataset: str, variant: str, seed: int) -> Path:
    """A fine-tuning run of one draw; the workspace's own stage run for the workspace's draw."""
    if draw == own_draw(params):
        return Path(finetune_dir("finetune", dataset, variant, seed))
    return draw_dir(out, draw) / f"{dataset}-{variant}" / f"s{seed}"


def draw_configs(
    params: dict, draw: int, out: str | Path, dataset: str, variants: list[str], validate: bool = True
) -> tuple[Config | None, list[Config]]:
    """The ``init`` run of one draw (seed ``draw``, from that draw's grounding when the profile grounds;
    ``None`` when the ``init`` stage has trained it: :func:`pipeline_init`) and the fine-tuning runs from
    it: the ``finetune`` stage's configurations of ``dataset`` and ``variants``, every seed, with only
    ``run.out_dir`` and ``model.init_from`` changed."""
    if draw == own_draw(params):
        raise ValueError(f"draw {draw} is the workspace's own init (init.seed); choose other seeds")
    if dataset not in params["finetune"]["datasets"]:
        raise ValueError(
            f"dataset {dataset!r} is not fine-tuned by this profile: {list(params['finetune']['datasets'])}"
        )
    known = list(params["finetune"]["variants"])
    if BASELINE not in variants or any(v not in known for v in variants):
        raise ValueError(
            f"variants must include {BASELINE!r} and come from finetune.variants {known}, got {variants}"
        )
    root = draw_dir(out, draw)
    grounded = root / "grounding" if grounding_epochs(params) else None
    init = None
    start = pipeline_init(params, draw)
    if start is None:
        init = _with(
            init_config(params, validate=validate), out_dir=root / "init", seed=draw, init_from=grounded
        )
        start = init.run.out_dir
    runs = [
        _with(finetune_config(params, dataset, v, s, validate=validate), init_from=start,
              out_dir=run_dir(params, out, draw, dataset, v, s))
        for v in variants
        for s in params["finetune"]["seeds"]
    ]  # fmt: skip
    return init, runs


def run(params: dict, draws: list[int], out: str | Path, dataset: str, variants: list[str]) -> None:
    """Train every draw the ``init`` stage has not: grounding (as the stage does, ``launch.parallel_runs`` at
    once), then the ``init`` runs; then every draw's fine-tuning runs, each set as the pipeline runs a stage
    (``launch.parallel_runs`` processes)."""
    plans = {k: draw_configs(params, k, out, dataset, variants) for k in draws}
    inits = [init for init, _ in plans.values() if init is not None]
    if grounding_epochs(params):
        run_groundings(params, [(init.model.init_from, init.run.seed) for init in inits])
    if inits:
        run_group(inits, params)
    run_group([c for _, runs in plans.values() for c in runs], params)


def read_draw(params: dict, out: str | Path, draw: int, dataset: str, variants: list[str]) -> dict:
    """One draw's per-seed numbers (fractions): ``{"baseline": {condition: {seed: acc}}, "shown": {seed: acc},
    <variant>: {seed: acc}}``; conditions are the baseline's ``eval.conditions`` and ``anchor``."""
    split = headline_split(params, dataset)
    views = [seed_view(run_dir(params, out, draw, dataset, BASELINE, s), s, dataset, split)
             for s in params["finetune"]["seeds"]]  # fmt: skip
    numbers = {
        BASELINE: {c: {v.seed: float(v.correct[c].mean()) for v in views} for c in views[0].correct},
        "shown": {v.seed: float(v.correct["anchor"][v.covered].mean()) for v in views if v.covered.any()},
    }
    for variant in variants:
        if variant == BASELINE:
            continue
        accs = {}
        for s in params["finetune"]["seeds"]:
            metrics = json.loads(
                (run_dir(params, out, draw, dataset, variant, s) / "metrics.json").read_text()
            )
            accs[s] = float(metrics["last"][dataset][split]["acc"])
        numbers[variant] = accs
    return numbers


def _pct(values: dict) -> dict:
    return {seed: 100.0 * x for seed, x in values.items()}


def summarise(per_draw: dict[int, dict]) -> dict:
    """Per draw, a :class:`Summary` (in %) of: the baseline, where the anchor shows the evidence, the
    oracle clip, multi-clip − anchor and each variant − baseline (paired by seed); and across draws, for each
    of those, the draws' means, their standard deviation, and the standard deviation a draw's mean would have
    if only the fine-tuning seeds varied (the seeds' pooled variance over their number): the init draw's share
    is the excess of the first over the second."""
    rows = {}
    for draw, n in per_draw.items():
        base = {c: _pct(v) for c, v in n[BASELINE].items()}
        row = {"baseline": mean_ci(base["anchor"]), "anchor shows evidence": mean_ci(_pct(n["shown"]))}
        if "blank" in base:
            row["text only"] = mean_ci(base["blank"])
        if "oracle" in base:
            row["oracle clip"] = mean_ci(base["oracle"])
        if "multi_clip" in base:
            row["multi-clip − anchor"] = paired_diff(base["multi_clip"], base["anchor"])
        for v in n:
            if v not in (BASELINE, "shown"):
                row[f"{v} − baseline"] = paired_diff(_pct(n[v]), base["anchor"])
        rows[draw] = row
    spread = {}
    for key in next(iter(rows.values())):
        summaries: list[Summary] = [r[key] for r in rows.values() if key in r]
        means = [s.mean for s in summaries]
        within = [(s.sd, s.n) for s in summaries if not math.isnan(s.sd)]
        # what the draws' means would scatter by if only the fine-tuning seeds varied: pooled sd / sqrt(n)
        seeds_only = float(np.sqrt(np.mean([sd**2 / n for sd, n in within]))) if within else float("nan")
        spread[key] = {
            "draw means": means,
            "sd of draw means": float(np.std(means, ddof=1)) if len(means) > 1 else float("nan"),
            SEEDS_ONLY: seeds_only,
        }
    return {"draws": rows, "spread": spread}


def to_markdown(summary: dict, dataset: str) -> str:
    draws = sorted(summary["draws"])
    keys = list(summary["spread"])
    head = f"| {dataset}, test, last epoch (%) | " + " | ".join(f"init draw {d}" for d in draws)
    lines = [head + " | sd of the draws' means | from the seeds alone |", "|---" * (len(draws) + 3) + "|"]
    for key in keys:
        cells = [summary["draws"][d][key].format(sign="−" in key) if key in summary["draws"][d] else "n/a"
                 for d in draws]  # fmt: skip
        between, within = summary["spread"][key]["sd of draw means"], summary["spread"][key][SEEDS_ONLY]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {between:.2f} | {within:.2f} |")
    return "\n".join(lines) + "\n"


def report(params: dict, out: str | Path, dataset: str, variants: list[str], draws: list[int]) -> dict:
    """Read every draw (the workspace's own first, if it has one), summarise, write ``out/report.json`` and
    ``report.md``."""
    own = own_draw(params)
    order = ([] if own is None else [own]) + sorted(d for d in draws if d != own)
    summary = summarise({d: read_draw(params, out, d, dataset, variants) for d in order})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    as_json = {
        "dataset": dataset,
        "draws": {str(d): {k: s.as_dict() for k, s in r.items()} for d, r in summary["draws"].items()},
        "spread": summary["spread"],
    }
    (out / "report.json").write_text(json.dumps(as_json, indent=1))
    (out / "report.md").write_text(to_markdown(summary, dataset))
    return summary


def _draws_on_disk(out: str | Path) -> list[int]:
    return sorted(int(p.name[4:]) for p in Path(out).glob("draw*") if p.name[4:].isdigit())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m siasamrea.analysis.init_draws", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "action", choices=("run", "report"), help="run: train the draws, then report; report: read only"
    )
    p.add_argument(
        "--draws", type=int, nargs="+", help="init seeds to draw (run); default for report: all in --out"
    )
    p.add_argument("--dataset", help="fine-tuned dataset (default: the profile's first)")
    p.add_argument(
        "--variants", nargs="+", default=[BASELINE, "siasamrea"], help="finetune.variants to re-run"
    )
    p.add_argument("--out", default=OUT, help=f"where the draws' runs go (default {OUT})")
    p.add_argument("--params", default="params.yaml", help="the workspace's params.yaml")
    args = p.parse_args(argv)
    params = load_params(args.params)
    dataset = args.dataset or next(iter(params["finetune"]["datasets"]))
    if args.action == "run":
        if not args.draws:
            p.error("run needs --draws")
        run(params, args.draws, args.out, dataset, args.variants)
    draws = args.draws or _draws_on_disk(args.out)
    summary = report(params, args.out, dataset, args.variants, draws)
    print(to_markdown(summary, dataset), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
