"""The training and evaluation engine: one process or many (DDP), resumable, rank 0 writes everything.

The story of a run (:meth:`Trainer.run`): resume from the newest intact checkpoint, or start afresh and clear
what an earlier attempt left; train epoch by epoch (tasks' batches interleaved, one optimiser step per batch),
evaluating every ``eval.every_epochs`` epochs and checkpointing after each epoch; then evaluate the last model
under ``eval.conditions`` and write the model and the metrics. Where each result goes and how it is encoded
is :mod:`siasamrea.training.artifacts`'s (the run layout is described there); the checkpoints are
:mod:`siasamrea.training.checkpoint`'s.
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from siasamrea.core.fileio import remove_stale_temporaries
from siasamrea.data.dataset import collate, item_seed
from siasamrea.method.config import Config, resume_identity
from siasamrea.method.losses import clip_probabilities
from siasamrea.method.scoring import aggregate_clips, main_metric, predictions, task_metrics
from siasamrea.training import checkpoint as ckpt
from siasamrea.training.artifacts import LOG_LOSSES, RunArtifacts
from siasamrea.training.build import (
    build_datasets,
    build_model,
    build_objective,
    frame_source,
    freeze_batchnorm,
    load_tasks,
    tokenizer_for,
)
from siasamrea.training.conditions import multi_clip_dataset, oracle_dataset
from siasamrea.training.distributed import (
    DistInfo,
    all_gather_objects,
    any_rank,
    barrier,
    broadcast_object,
    wrap_ddp,
)
from siasamrea.training.evidence import load_evidence, load_evidence_records
from siasamrea.training.rank_samplers import EvalBatchSampler, TrainBatchSampler

AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def resolve_precision(precision: str, device: torch.device, bf16: bool = True) -> str:
    """``run.precision`` -> ``"fp32"`` / ``"bf16"`` / ``"fp16"`` on ``device``.

    ``auto``: fp32 on CPU; on CUDA bf16 where the GPU supports it (Ampere and later), else fp16 with a
    GradScaler (V100, the paper's GPUs). ``run.bf16: false`` keeps its old meaning under ``auto`` (fp32).
    A forced value is used as given.
    """
    if precision != "auto":
        return precision
    if device.type != "cuda" or not bf16:
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class DivergedError(RuntimeError):
    """A non-finite loss or gradient: training stops and nothing is written as a finished model."""


class TrainModule(nn.Module):
    """The model and the objective as one module, so DDP synchronises W1/W2 with the network."""

    def __init__(self, model: nn.Module, objective: nn.Module):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict, task: str) -> dict:
        out = self.model(
            batch["frames"], batch["input_ids"], batch["attention_mask"], task, batch["frame_mask"]
        )
        loss = self.objective(out, batch["target"])
        return {"loss": loss.total, "gt": loss.gt, "siamese": loss.siamese, "weights": loss.weights}


def _duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``."""
    m, sec = divmod(int(round(seconds)), 60)
    return f"{m}m{sec:02d}s" if m else f"{sec}s"


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Paper Sec. 4.2: linear warm-up over the first 10% of steps, then linear decay to zero
    (``transformers.get_linear_schedule_with_warmup``; its warm-up starts at lr 0 on step 0)."""
    return get_linear_schedule_with_warmup(optimizer, int(total_steps * warmup_ratio), total_steps)


def build_optimizer(module: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms, embeddings and the W1/W2 logits."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() < 2 or "embeddings" in name or name.endswith("_logits"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused=True: one multi-tensor kernel instead of a Python loop over ~100 small parameters; on the
    # benchmark's tiny CPU model the optimiser step drops from 2.66 ms to 0.76 ms (python -m siasamrea.perf).
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), fused=fused)


def _grad_norm(module: nn.Module) -> torch.Tensor:
    """The gradients' global L2 norm, as clip_grad_norm_ gives it (torch < 2.6 has no get_total_norm)."""
    norms = [torch.linalg.vector_norm(p.grad.detach()) for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _loader(dataset, batch_sampler, cfg: Config, info: DistInfo) -> DataLoader:
    g = torch.Generator().manual_seed(item_seed(cfg.run.seed, info.rank, 0xD1))  # never the global RNG
    workers = cfg.data.num_workers
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        persistent_workers=False,
        generator=g,
        prefetch_factor=2 if workers else None,
    )


@dataclass
class History:
    """Per-epoch metrics; survives resume through the checkpoint's meta.json."""

    rows: list[dict] = field(default_factory=list)  # {"epoch", "step", "<task>/<split>/<metric>": value, ...}

    def best(self, key: str, higher: bool) -> dict | None:
        rows = [r for r in self.rows if key in r and not math.isnan(r[key])]
        if not rows:
            return None
        pick = max if higher else min
        return pick(rows, key=lambda r: r[key])


class Trainer:
    """Train and evaluate one configuration. ``Trainer(cfg, info).run()``."""

    def __init__(self, cfg: Config, info: DistInfo):
        self.cfg, self.info = cfg, info
        self.artifacts = RunArtifacts(cfg.run.out_dir)  # the run directory's files
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        torch.manual_seed(cfg.run.seed)  # same initial weights on every rank
        self.tokenizer = tokenizer_for(cfg)
        self.tasks = load_tasks(cfg)
        self.kinds = {t.name: t.kind for t in self.tasks}
        self.frames = frame_source(cfg)
        self.train_sets, self.eval_sets = build_datasets(cfg, self.tasks, self.tokenizer, self.frames)
        self.model, self.init_report = build_model(cfg, self.tasks, self.tokenizer)
        self.objective = build_objective(cfg, self.model.hidden_size)
        self.module = TrainModule(self.model, self.objective).to(info.device)
        # Several heads, or a reasoner parameter unused by some step, leave parameters without gradient: the
        # projection g is never used with the average affinity, nor trained under stop_gradient="target".
        idle_projection = (
            cfg.uses_reasoning
            and cfg.method.projection_dim is not None
            and (cfg.method.stop_gradient == "target" or cfg.affinity == "average")
        )
        self.ddp = wrap_ddp(
            self.module,
            info,
            find_unused_parameters=len(self.tasks) > 1 or idle_projection,
            sync_batchnorm=not cfg.freeze_bn,
        )
        if self.ddp is not self.module:  # SyncBatchNorm conversion may have replaced layers
            self.module = self.ddp.module
            self.model, self.objective = self.module.model, self.module.objective
        self.optimizer = build_optimizer(self.module, cfg)
        self.samplers = {
            name: TrainBatchSampler(len(ds), cfg.optim.batch_size, rank=info.rank, world_size=info.world_size,
                                    seed=cfg.run.seed)
            for name, ds in self.train_sets.items()
        }  # fmt: skip
        self.steps_per_epoch = sum(len(s) for s in self.samplers.values())
        self.total_steps = self.steps_per_epoch * cfg.optim.epochs
        self.scheduler = linear_schedule(self.optimizer, self.total_steps, cfg.optim.warmup_ratio)
        self.history = History()
        self.step, self.epoch, self.step_in_epoch = 0, 0, 0
        self.precision = resolve_precision(cfg.run.precision, info.device, cfg.run.bf16)
        self.amp = (
            nullcontext()
            if self.precision == "fp32"
            else torch.autocast(info.device.type, dtype=getattr(torch, AMP_DTYPES[self.precision]))
        )
        # fp16 overflows where bf16 does not: scale the loss (GradScaler), unscale before clipping.
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=self.precision == "fp16")

    def run(self) -> dict:
        cfg, info = self.cfg, self.info
        # First: checkpoints of another configuration are refused before config.yaml is overwritten.
        self._resume()
        if info.is_main:
            self.artifacts.write_start(cfg, self._data_report())
        t_start = time.perf_counter()
        first_epoch = self.epoch  # > 0 when resumed: the ETA counts only epochs run in this process
        stopped = False
        while self.epoch < cfg.optim.epochs and not stopped:
            stopped = self._train_epoch()
            if stopped:
                break
            self.epoch += 1
            self.step_in_epoch = 0
            if self.epoch % cfg.eval.every_epochs == 0 or self.epoch == cfg.optim.epochs:
                self._evaluate_all()
                # Before the checkpoint: a resumed run never lacks the snapshot of an epoch it saved.
                self._write_analysis(epoch=self.epoch)
            self._save()
            if info.is_main:
                self._report_epoch(time.perf_counter() - t_start, self.epoch - first_epoch)
        result = {}
        if not stopped:
            if cfg.eval.conditions:
                self._evaluate_conditions()  # every rank: evaluation is split across them
            if info.is_main:
                result = self._finish(time.perf_counter() - t_start)
            self._write_analysis()
        barrier(info)
        return result

    # -- start: resume, or start afresh ---------------------------------------------------------------------
    def _resume(self) -> None:
        path = None
        if self.info.is_main:
            for tmp in remove_stale_temporaries(self.artifacts.checkpoints):
                print(f"removed {tmp}: the temporary directory of a save that was killed", flush=True)
            path = ckpt.latest_checkpoint(self.artifacts.checkpoints)
        path = broadcast_object(None if path is None else str(path), self.info)
        if path is None:
            if self.info.is_main:
                # A fresh start in a directory an earlier attempt wrote to: start clean.
                stale = self.artifacts.remove_stale_outputs()
                if stale:
                    print(f"{self.artifacts.root}: no intact checkpoint, starting afresh; removed the "
                          f"earlier attempt's {', '.join(p.name for p in stale)}", flush=True)  # fmt: skip
            return
        weights, state, meta = ckpt.load_checkpoint(path)
        saved, current = meta.get("config", {}), json.loads(json.dumps(resume_identity(self.cfg)))
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise ValueError(
                f"{self.artifacts.root} holds checkpoints of another configuration (differs in "
                f"{', '.join(changed)}); resume with the same configuration, or use a new run.out_dir"
            )
        if meta.get("world_size", 1) != self.info.world_size:
            raise ValueError(
                f"{path} was written by {meta['world_size']} processes; resume with the same number "
                f"(the data order per process depends on it), got {self.info.world_size}"
            )
        self.module.load_state_dict(weights)
        ckpt.restore_optimizer(self.optimizer, state, meta)
        self.scheduler.load_state_dict(meta["scheduler"])
        ckpt.set_rng_state(state, self.info.rank)
        self.step, self.epoch, self.step_in_epoch = meta["step"], meta["epoch"], meta["step_in_epoch"]
        self.history.rows = meta["history"]
        if self.info.is_main:
            # Rows written after this checkpoint by the run that was stopped go: log.csv is cut back to
            # its step, epochs.csv rewritten from the checkpoint's history (none: removed).
            self.artifacts.truncate_log(self.step)
            self.artifacts.write_epochs(self.history.rows)
            print(f"resumed from {path} (epoch {self.epoch}, step {self.step})", flush=True)

    def _data_report(self) -> dict:
        """What the datasets kept, dropped and why (``data.json``)."""
        return {
            "train": {name: ds.report.as_dict() for name, ds in self.train_sets.items()},
            "eval": {f"{t}/{s}": ds.report.as_dict() for (t, s), ds in self.eval_sets.items()},
            "annotation_rows_skipped": {t.name: t.skipped for t in self.tasks},
            "answer_vocab": {t.name: len(t.vocab) for t in self.tasks if t.vocab},
            "init_from": self.init_report,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.info.world_size,
        }

    # -- train ----------------------------------------------------------------------------------------------
    def epoch_schedule(self, epoch: int) -> list[str]:
        """The order of task batches in an epoch: shuffled with ``(seed, epoch)``, identical on every rank."""
        order = [name for name, s in self.samplers.items() for _ in range(len(s))]
        g = torch.Generator().manual_seed(item_seed(self.cfg.run.seed, epoch, 0x7A5))
        return [order[i] for i in torch.randperm(len(order), generator=g).tolist()]

    def _train_epoch(self) -> bool:
        """Train until the epoch ends (False) or ``run.max_steps`` is reached (True)."""
        cfg, info = self.cfg, self.info
        schedule = self.epoch_schedule(self.epoch)
        done = schedule[: self.step_in_epoch]
        iters = {}
        for name, sampler in self.samplers.items():
            sampler.set_epoch(self.epoch)
            sampler.set_skip(done.count(name))
            self.train_sets[name].set_epoch(self.epoch)
            iters[name] = iter(_loader(self.train_sets[name], sampler, cfg, info))
        self.module.train()
        if cfg.freeze_bn:
            freeze_batchnorm(self.module)
        bar = None
        if info.is_main and cfg.run.progress:
            bar = tqdm(
                total=len(schedule),
                initial=self.step_in_epoch,
                desc=f"epoch {self.epoch + 1}/{cfg.optim.epochs}",
            )
        t0 = time.perf_counter()
        for task in schedule[self.step_in_epoch :]:
            if cfg.run.max_steps is not None and self.step >= cfg.run.max_steps:
                return True
            batch = _to(next(iters[task]), info.device)
            with self.amp:
                out = self.ddp(batch, task)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(out["loss"]).backward()
            # unscale first, so that clipping and the finiteness check see the true gradient (a no-op without
            # fp16's GradScaler)
            self.scaler.unscale_(self.optimizer)
            if cfg.optim.grad_clip:
                norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.optim.grad_clip)
            else:
                norm = _grad_norm(self.module)
            # fp16: an overflowing gradient is the GradScaler's business (it skips the step and lowers the
            # scale); a non-finite loss is still divergence
            fp16_overflow_ok = torch.zeros(()) if self.scaler.is_enabled() else norm
            self._check_finite(out["loss"].detach(), fp16_overflow_ok, task)
            self.scaler.step(self.optimizer)  # skips the step if fp16 gradients overflowed
            self.scaler.update()
            self.scheduler.step()
            self.step += 1
            self.step_in_epoch += 1
            if info.is_main and (self.step % cfg.run.log_every == 0 or self.step_in_epoch == len(schedule)):
                self._log_step(task, out, time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(out['loss'].detach()):.3f}", task=task)
            if (
                cfg.run.checkpoint_every
                and self.step % cfg.run.checkpoint_every == 0
                and self.step_in_epoch < len(schedule)
            ):
                self._save()
            t0 = time.perf_counter()
        if bar is not None:
            bar.close()
        return False

    def _check_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor, task: str) -> None:
        """Stop before the optimiser step if this step's loss or gradient is not finite on any rank.

        A diverged run must not look valid: the weights would turn to NaN and the run would still write a
        model and report an accuracy. Every rank takes part (the loss is per rank), so all stop together.
        """
        ok = bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad_norm).all())
        if not any_rank(not ok, self.info):
            return
        raise DivergedError(
            f"training diverged at step {self.step + 1} (epoch {self.epoch + 1}, task {task}): "
            f"loss {float(loss):.4g}, gradient norm {float(grad_norm):.4g} on rank {self.info.rank}; "
            f"stopped before the update, no model written to {self.artifacts.model}. "
            f"Lower optim.lr (now {self.cfg.optim.lr:g}) or set optim.grad_clip; the last checkpoint in "
            f"{self.artifacts.checkpoints} (if any) holds finite weights"
        )

    def _log_step(self, task: str, out: dict, seconds: float) -> None:
        losses = {k: float(out[k].detach()) for k in LOG_LOSSES}
        lr = self.scheduler.get_last_lr()[0]
        self.artifacts.append_log(self.step, self.epoch, task, lr, losses, seconds)

    def _report_epoch(self, elapsed: float, done: int) -> None:
        """One line per epoch on the process's own stderr, with the ETA of this run.

        ``sys.__stderr__``, not ``sys.stderr``: under papermill (the DVC stages) the kernel's ``sys.stderr``
        is captured into the notebook, while the process's stderr reaches the terminal running
        ``dvc repro``; from the command line both are the same. One line per epoch keeps logs short."""
        left = self.cfg.optim.epochs - self.epoch
        eta = elapsed / max(done, 1) * left
        last = self.history.rows[-1] if self.history.rows else {}
        shown = [f"{k.replace('/acc', '')} {100 * v:.1f}%" for k, v in last.items()
                 if k.count("/") == 2 and k.endswith("/acc")][:3]  # fmt: skip
        line = f"  [{self.cfg.run.out_dir}] epoch {self.epoch}/{self.cfg.optim.epochs} {elapsed:.0f}s"
        line += f", ETA {_duration(eta)}" + (f" | {', '.join(shown)}" if shown else "")
        stream = sys.__stderr__ or sys.stderr
        print(line, file=stream, flush=True)

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _save(self) -> None:
        # Every rank's RNG state: each draws its own dropout masks (a collective: all ranks call it).
        rng = ckpt.merge_rng_states(all_gather_objects(ckpt.rng_state(), self.info))
        if self.info.is_main:
            meta = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "history": self.history.rows,
                    "world_size": self.info.world_size, "config": resume_identity(self.cfg)}  # fmt: skip
            ckpt.save_checkpoint(self.artifacts.checkpoints, self.step, self.module.state_dict(),
                                 self.optimizer,
                                 self.scheduler, meta, keep=self.cfg.run.keep_checkpoints,
                                 rng=rng)  # fmt: skip
        barrier(self.info)

    # -- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self,
        task: str,
        split: str,
        dataset=None,
        blank: bool = False,
        aggregate: str | None = None,
        keep_clips: bool = False,
    ) -> tuple[dict, list[dict]]:
        """Metrics of one task and split, and the per-question predictions (every rank gets both).

        ``dataset``: other clips of the same questions (siasamrea.training.conditions); ``blank``: black
        frames; ``aggregate``: how several clips' logits are combined (default ``eval.multi_clip``);
        ``keep_clips``: each row also gets every clip's frame indices (``clips``, ``[N][B]``).
        """
        cfg, info = self.cfg, self.info
        ds = self.eval_sets[(task, split)] if dataset is None else dataset
        task_data = next(t for t in self.tasks if t.name == task)
        sampler = EvalBatchSampler(len(ds), cfg.eval.batch_size, rank=info.rank, world_size=info.world_size)
        loader = _loader(ds, sampler,
                         cfg, info)  # fmt: skip
        self.model.eval()
        rows = []
        for batch in loader:
            b = _to(batch, info.device)
            if blank:
                b["frames"] = torch.zeros_like(b["frames"])
            with self.amp:
                logits = self.model(
                    b["frames"], b["input_ids"], b["attention_mask"], task, b["frame_mask"]
                ).logits
            how = aggregate or cfg.eval.multi_clip
            scores = aggregate_clips(logits.float(), how if logits.shape[1] > 1 else None)
            preds = predictions(self.kinds[task], scores, task_data.count_range)
            for j, i in enumerate(batch["index"].tolist()):
                r = ds.records[i]
                rows.append({
                    "index": i, "qid": r.qid, "video_id": r.video_id, "question_type": r.question_type,
                    "target": batch["target"][j].item(), "pred": preds[j].item(),
                    "anchor": batch["clip_indices"][j, 0].tolist(),
                    **({"clips": batch["clip_indices"][j].tolist()} if keep_clips else {}),
                })  # fmt: skip
        rows = sorted((r for part in all_gather_objects(rows, info) for r in part), key=lambda r: r["index"])
        metrics = task_metrics(
            self.kinds[task],
            [r["pred"] for r in rows],
            [r["target"] for r in rows],
            [r["question_type"] for r in rows],
        )
        return metrics, rows

    def _evaluate_all(self) -> None:
        """Every task and split: a row of the history; rank 0 writes ``epochs.csv`` and the predictions of
        the last and, where this epoch is the best so far, of the best epoch."""
        row = {"epoch": self.epoch, "step": self.step}
        preds = {}
        for task, split in self.eval_sets:
            metrics, rows = self.evaluate(task, split)
            name, _ = main_metric(self.kinds[task])
            row[f"{task}/{split}/{name}"] = metrics[name]
            for qtype, m in metrics["per_type"].items():
                row[f"{task}/{split}/{name}/{qtype}"] = m[name]
            preds[(task, split)] = rows
        self.history.rows.append(row)
        if not self.info.is_main:
            return
        self.artifacts.write_epochs(self.history.rows)
        tagged = {}
        for (task, split), rows in preds.items():
            name, higher = main_metric(self.kinds[task])
            best = self.history.best(f"{task}/{split}/{name}", higher)
            is_best = best is not None and best["epoch"] == row["epoch"]
            tagged[(task, split)] = (name, ["last", "best"] if is_best else ["last"], rows)
        self.artifacts.write_predictions(row["epoch"], tagged)

    def _evaluate_conditions(self) -> None:
        """The last model under each of ``eval.conditions`` (siasamrea.training.conditions) ->
        ``instrument.json``.

        Per task and split: the metrics of the anchor protocol and of each condition, and the per-question
        predictions of each, in the same question order (for paired comparisons).
        """
        cfg = self.cfg
        evidence = load_evidence(cfg.data.evidence) if cfg.data.evidence else {}
        out = {}
        for (task, split), ds in self.eval_sets.items():
            entry = {}
            missing = None
            for condition in ("anchor", *cfg.eval.conditions):
                kwargs = {}
                if condition == "blank":
                    kwargs = {"blank": True}
                elif condition == "oracle":
                    oracle, missing = oracle_dataset(ds, evidence, ds.clips.frames_for(0))
                    kwargs = {"dataset": oracle}
                elif condition == "multi_clip":
                    clips = multi_clip_dataset(ds, cfg.method.num_clips)
                    kwargs = {"dataset": clips, "aggregate": "mean"}
                metrics, rows = self.evaluate(task, split, keep_clips=True, **kwargs)
                entry[condition] = {
                    "metrics": {k: v for k, v in metrics.items() if k != "per_type"},
                    "per_type": metrics["per_type"],
                    "pred": [r["pred"] for r in rows],
                    "clips": [r["clips"] for r in rows],  # the frames each question was shown
                }
            entry["target"] = [r["target"] for r in rows]
            entry["qid"] = [r["qid"] for r in rows]
            entry["question_type"] = [r["question_type"] for r in rows]
            entry["oracle_without_evidence"] = missing
            out[f"{task}/{split}"] = entry
        if self.info.is_main:
            self.artifacts.write_instrument(self.epoch, self.kinds, out)

    # -- results --------------------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Best and last metrics per task and split, and the test metric at the best validation epoch."""
        out = {"best": {}, "last": {}, "at_best_val": {}}
        last = self.history.rows[-1] if self.history.rows else {}
        for task, split in self.eval_sets:
            name, higher = main_metric(self.kinds[task])
            key = f"{task}/{split}/{name}"
            best = self.history.best(key, higher)
            out["best"].setdefault(task, {})[split] = (
                {name: best[key], "epoch": best["epoch"]} if best else None
            )
            out["last"].setdefault(task, {})[split] = {name: last.get(key), "epoch": last.get("epoch")}
            val = self.history.best(f"{task}/val/{name}", higher)
            if val is not None and split != "val":
                out["at_best_val"].setdefault(task, {})[split] = {name: val.get(key), "epoch": val["epoch"]}
        return out

    def _finish(self, seconds: float) -> dict:
        result = {**self.summary(), "steps": self.step, "epochs": self.epoch,
                  "train_seconds": round(seconds, 1),
                  "variant": self.cfg.method.variant, "num_clips": self.cfg.train_clips}  # fmt: skip
        weights = self.module.state_dict().items()
        bad = [k for k, v in weights if v.is_floating_point() and not v.isfinite().all()]
        if bad:
            raise DivergedError(f"non-finite weights after training ({', '.join(bad[:5])}): "
                                f"no model written to {self.artifacts.model}")  # fmt: skip
        self.artifacts.write_final(self.model, self.objective, result)
        return result

    def _write_analysis(self, epoch: int | None = None) -> None:
        """``analysis.json`` (``epoch``: the snapshot ``analysis/epoch-<e>.json``), by rank 0, if the run
        keeps ``run.analysis_videos`` and its objective has a reasoner."""
        if self.cfg.run.analysis_videos <= 0 or not self.info.is_main or self.objective.reasoner is None:
            return
        self.artifacts.write_analysis(self._analysis_snapshot(), epoch)

    @torch.no_grad()
    def _analysis_snapshot(self) -> dict:
        """Affinity, clip features and logits, clip predictions, soft label and W1/W2 for the first
        ``run.analysis_videos`` training videos of each task. Deterministic clips, no gradient and no random
        numbers drawn, so taking it between epochs leaves training unchanged."""
        n = self.cfg.run.analysis_videos
        evidence = _evidence_ranges(self.cfg.data.evidence)
        self.module.eval()
        reasoner = self.objective.reasoner
        # What Q was computed with, so the explorer can recompute it (reasoning.py) and vary each setting.
        settings = {"omega": reasoner.omega, "affinity": reasoner.affinity_mode,
                    "affinity_temperature": reasoner.affinity_temperature,
                    "temperature": self.objective.temperature}  # fmt: skip
        out = {"epoch": self.epoch, "variant": self.cfg.method.variant, "settings": settings, "videos": []}
        w1, w2 = reasoner.weights()
        out["w1"], out["w2"] = w1.tolist(), w2.tolist()
        for task, ds in self.train_sets.items():
            # The clips of the last epoch trained, also if this process trained none (a finished run resumed).
            ds.set_epoch(max(self.epoch - 1, 0))
            items = [ds[i] for i in range(min(n, len(ds)))]
            if not items:
                continue
            b = _to(collate(items), self.info.device)
            res = self.model(b["frames"], b["input_ids"], b["attention_mask"], task, b["frame_mask"])
            probs = clip_probabilities(res.kind, res.logits.float(), self.objective.temperature)
            feats = res.features.float()
            reasoned = reasoner(feats, probs)
            if reasoner.projection is not None:
                feats = reasoner.projection(feats)  # Â is computed from g(f)
            task_data = next(t for t in self.tasks if t.name == task)
            for j, it in enumerate(items):
                r = ds.records[it["index"]]
                out["videos"].append({
                    "task": task, "kind": res.kind, "index": it["index"], "video_id": r.video_id,
                    "video_path": str(r.video_path), "question": r.question, "answer": r.answer,
                    "candidates": list(r.candidates), "target": it["target"], "num_frames": it["num_frames"],
                    "clip_indices": it["clip_indices"].tolist(),
                    "features": feats[j].tolist(), "logits": res.logits[j].float().tolist(),
                    "affinity": reasoned.affinity[j].tolist(), "probs": probs[j].tolist(),
                    "soft_label": reasoned.soft_label[j].tolist(),
                    "labels": task_data.vocab.answers if task_data.vocab else list(r.candidates),
                    "evidence": evidence.get(r.video_path.stem),
                })  # fmt: skip
        return out


def _evidence_ranges(path: str | None) -> dict:
    """``{video_id: {"core", "faint", "num_frames"}}`` as ``evidence.jsonl`` holds them (none: ``{}``)."""
    if not path:
        return {}
    return {
        e["video_id"]: {"core": e["core"], "faint": e["faint"], "num_frames": e["num_frames"]}
        for e in load_evidence_records(path)
    }
