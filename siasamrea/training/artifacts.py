"""The files of a run directory: their names, layout and formats, written by rank 0 only.

Run layout (``run.out_dir``)::

    config.yaml        the resolved configuration
    data.json          what the datasets kept, dropped and why
    log.csv            per-step losses and learning rate (dvc plots)
    epochs.csv         per-epoch metrics, one column per task/split/metric (dvc plots)
    metrics.json       best and last epoch metrics, and the test metric at the best validation epoch
    predictions/       per-question predictions of the last and of each task's best epoch
                       (``<task>_<split>_<tag>.json``, tag ``last`` or ``best``)
    instrument.json    the last model under each of ``eval.conditions`` (with per-question predictions)
    analysis.json      affinity matrices, clip features and logits, clip predictions, soft labels and W1/W2 of
                       a few training videos, after training (the explorer recomputes Â, P and Q from them)
    analysis/epoch-<e>.json  the same after each evaluated epoch
    checkpoints/       resumable checkpoints (safetensors; siasamrea.training.checkpoint)
    model/             the inference model (save_pretrained; no W1/W2: they are training-only)
    objective.safetensors  the trained W1/W2 (and projection g), for analysis

What goes into the files is the trainer's (siasamrea.training.trainer): this module decides where each one
lives and how it is encoded. Results are written atomically (siasamrea.core.fileio); ``log.csv`` is appended
to row by row, and cut back to a checkpoint's step on resume.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from safetensors import SafetensorError
from torch import nn

from siasamrea.core.fileio import atomic_path, write_json
from siasamrea.method.config import Config, dump_config
from siasamrea.training import checkpoint as ckpt

#: What a run writes besides its checkpoints: removed when it starts afresh (no intact checkpoint), so rows
#: and results of an earlier attempt are neither appended to nor mistaken for this run's.
RUN_OUTPUTS = ("log.csv", "epochs.csv", "metrics.json", "analysis.json", "analysis", "instrument.json",
               "objective.safetensors", "model", "predictions")  # fmt: skip

LOG_FIELDS = ["step", "epoch", "task", "lr", "loss", "loss_gt", "loss_siamese", "loss_weights", "seconds"]
#: The losses of a log row, in LOG_FIELDS order (keys of the training step's output).
LOG_LOSSES = ("loss", "gt", "siamese", "weights")

#: One task and split's predictions: the main metric's name, the file tags (``last``, ``best``), the rows.
Predictions = tuple[str, Sequence[str], list[dict]]


class RunArtifacts:
    """The run directory ``root``. Only the main process calls the writing methods."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model(self) -> Path:
        return self.root / "model"

    # -- start ------------------------------------------------------------------------------------------
    def remove_stale_outputs(self) -> list[Path]:
        """Remove every :data:`RUN_OUTPUTS` entry an earlier attempt left; returns what was removed."""
        stale = [self.root / name for name in RUN_OUTPUTS if (self.root / name).exists()]
        for p in stale:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        return stale

    def write_start(self, cfg: Config, data_report: dict) -> None:
        """``config.yaml`` and ``data.json``, before the first step."""
        self.root.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, self.root / "config.yaml")
        write_json(self.root / "data.json", data_report)

    # -- during training ---------------------------------------------------------------------------------
    def append_log(
        self, step: int, epoch: int, task: str, lr: float, losses: Mapping[str, float], seconds: float
    ) -> None:
        """One ``log.csv`` row (the header first if the file is new); ``losses``: :data:`LOG_LOSSES`."""
        path = self.root / "log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(LOG_FIELDS)
            w.writerow([
                step, epoch, task, f"{lr:.6g}", *(f"{float(losses[k]):.5f}" for k in LOG_LOSSES),
                f"{seconds:.4f}",
            ])  # fmt: skip

    def truncate_log(self, step: int) -> None:
        """Drop the ``log.csv`` rows after ``step`` (written after the checkpoint a run resumes from)."""
        path = self.root / "log.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        keep = [rows[0], *(r for r in rows[1:] if int(r[0]) <= step)]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(keep)

    def write_epochs(self, rows: Sequence[dict]) -> None:
        """``epochs.csv``: one row per evaluated epoch, one column per ``<task>/<split>/<metric>`` key
        (``/`` written as ``_``); no rows, no file."""
        path = self.root / "epochs.csv"
        if not rows:
            path.unlink(missing_ok=True)
            return
        keys = sorted({k for r in rows for k in r} - {"epoch", "step"})
        with atomic_path(path, fsync=False) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "step", *(k.replace("/", "_") for k in keys)])
            for r in rows:
                w.writerow([r["epoch"], r["step"], *(r.get(k, "") for k in keys)])

    def write_predictions(self, epoch: int, sets: Mapping[tuple[str, str], Predictions]) -> None:
        """``predictions/<task>_<split>_<tag>.json`` for each ``(task, split) -> (metric, tags, rows)``: the
        rows of an epoch's evaluation, tagged ``last`` and, at a task's best epoch so far, ``best``."""
        d = self.root / "predictions"
        d.mkdir(exist_ok=True)
        for (task, split), (metric, tags, rows) in sets.items():
            for tag in tags:
                write_json(d / f"{task}_{split}_{tag}.json", {"epoch": epoch, "metric": metric, "rows": rows})

    def write_analysis(self, snapshot: dict, epoch: int | None = None) -> None:
        """``analysis.json``, or with ``epoch`` the snapshot ``analysis/epoch-<e>.json``."""
        name = "analysis.json" if epoch is None else f"analysis/epoch-{epoch:03d}.json"
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, snapshot)

    # -- after training ----------------------------------------------------------------------------------
    def write_instrument(self, epoch: int, kinds: dict, sets: dict) -> None:
        write_json(self.root / "instrument.json", {"epoch": epoch, "kind": kinds, "sets": sets})

    def write_final(self, model, objective: nn.Module, metrics: dict) -> None:
        """The inference model (``model/``), W1/W2 (``objective.safetensors``, if the objective has any),
        and last ``metrics.json``: its presence means the run finished and its model is complete."""
        try:
            model.save_pretrained(self.model)
        except (OSError, SafetensorError) as e:
            raise OSError(f"cannot write the model to {self.model}: {e}") from e
        obj = {k: v.contiguous() for k, v in objective.state_dict().items()}
        if obj:
            ckpt.save_tensors(obj, self.root / "objective.safetensors")
        write_json(self.root / "metrics.json", metrics)
