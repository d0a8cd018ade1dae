"""Turn a :class:`~siasamrea.method.config.Config` into data, a model and an objective (no training loop
here).

* :func:`load_tasks` reads the annotation files of every task (TGIF-QA's four for pretraining, one for a
  downstream dataset), applies the frame filter's manifest to the training questions, and builds the
  open-ended answer vocabularies from the training split.
* :func:`build_model` makes the ClipBERT-style model with one head per task and, for fine-tuning, copies
  every weight of ``model.init_from`` whose name and shape match (the backbone; heads of new tasks start
  fresh). :func:`build_objective` makes Eq. 8's loss with the reasoner for the chosen variant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from siasamrea.core.choices import TaskKind
from siasamrea.data.dataset import ClipSpec, VideoQADataset
from siasamrea.data.filtering import read_manifest
from siasamrea.data.frames import CachedFrames, DecodedFrames
from siasamrea.data.records import QARecord, ReadResult
from siasamrea.data.registry import empty_split_message, get_dataset, read_split, reader_options
from siasamrea.data.tokenization import load_tokenizer
from siasamrea.data.vocab import AnswerVocab
from siasamrea.method.clipbert import CLIPBERT_PIXEL_STD, load_clipbert
from siasamrea.method.config import Config, ConfigError
from siasamrea.method.losses import SiaSamReaLoss
from siasamrea.method.model import TINY_TEXT, TINY_VISION, ClipBertVQA, HeadSpec, ModelConfig
from siasamrea.method.reasoning import SiameseReasoner

TGIF_TASKS = ("action", "transition", "count", "frameqa")


@dataclass
class TaskData:
    """One task's questions: training records, evaluation records per split, vocabulary."""

    name: str
    kind: str
    train: list[QARecord]
    eval: dict[str, list[QARecord]]
    vocab: AnswerVocab | None
    skipped: dict[str, int]
    count_range: tuple[float, float] | None = None


def _task_names(cfg: Config) -> list[str | None]:
    if cfg.data.dataset == "tgif-qa":
        return list(cfg.data.tasks or TGIF_TASKS)
    if cfg.data.tasks:
        raise ValueError(f"data.tasks: {cfg.data.dataset} has a single task; leave data.tasks empty")
    return [None]


def _read(cfg: Config, split: str, task: str | None) -> ReadResult:
    kw = dict(cfg.data.reader)
    if task is not None:
        kw["task"] = task
    return read_split(cfg.data.dataset, cfg.data.root, split, on_error=cfg.data.on_error, **kw)


def check_reader_options(cfg: Config) -> None:
    """``data.reader`` against the options of the dataset's reader (:class:`ConfigError` naming the key).

    Checked here, where the readers are known, not in :func:`siasamrea.method.config.validate`: the
    configuration sits below the data layer and must not import it.
    """
    known = reader_options(cfg.data.dataset)
    for option in cfg.data.reader:
        if option not in known:
            raise ConfigError(
                "data.reader",
                f"unknown option {option!r} for the {cfg.data.dataset} reader (known: {', '.join(known)})",
            )


def load_tasks(cfg: Config) -> list[TaskData]:
    get_dataset(cfg.data.dataset)  # unknown names fail here, naming the known ones
    check_reader_options(cfg)
    tasks = []
    for name in _task_names(cfg):
        train = _read(cfg, cfg.data.train_split, name)
        records = train.records[: cfg.data.train_limit] if cfg.data.train_limit else train.records
        if not records:
            why = empty_split_message(cfg.data.dataset, cfg.data.root, cfg.data.train_split, train, name)
            raise ValueError(
                f"data.train_split: no training questions for task {name or cfg.data.dataset}: {why}"
            )
        kind = records[0].kind.value
        vocab = (
            AnswerVocab.build(records, size=cfg.data.answer_vocab_size)
            if kind == TaskKind.OPEN_ENDED.value
            else None
        )
        evals, skipped = {}, {cfg.data.train_split: len(train.skipped)}
        for split in cfg.data.eval_splits:
            res = _read(cfg, split, name)
            if not res.records:  # it would fail later, far from the cause (an IndexError in the tokenizer)
                why = empty_split_message(cfg.data.dataset, cfg.data.root, split, res, name)
                raise ValueError(f"data.eval_splits: {why}")
            evals[split] = res.records[: cfg.data.eval_limit] if cfg.data.eval_limit else res.records
            skipped[split] = len(res.skipped)
        count_range = None
        if kind == TaskKind.COUNT.value:
            counts = [float(r.answer) for r in records]
            count_range = (min(counts), max(counts))
        tasks.append(TaskData(name or records[0].task, kind, records, evals, vocab, skipped, count_range))
    return tasks


def frame_source(cfg: Config):
    if cfg.data.cache:
        return CachedFrames(cfg.data.cache)
    return DecodedFrames(cfg.data.frame_size, cfg.data.resize)


def kept_videos(cfg: Config) -> set[str] | None:
    """Stems of the videos the frame filter kept (``None``: no filter)."""
    if not cfg.data.filter_manifest:
        return None
    return {Path(e.path).stem for e in read_manifest(cfg.data.filter_manifest).entries if e.kept}


def train_clip_spec(cfg: Config) -> ClipSpec:
    m = cfg.method
    return ClipSpec(
        sampler=cfg.sampler,
        num_clips=cfg.train_clips,
        frames_per_clip=m.frames_per_clip,
        reserve_clips=max(m.reserve_clips, cfg.train_clips),
        offsets=m.offsets,
    )


def eval_clip_spec(cfg: Config) -> ClipSpec:
    """The anchor alone (the paper's protocol), drawn as in training; or uniform clips (multi-clip)."""
    m = cfg.method
    if cfg.eval.multi_clip:
        return ClipSpec("uniform", cfg.eval.num_clips, m.frames_per_clip)
    return ClipSpec("sparse", 1, m.frames_per_clip, reserve_clips=max(m.reserve_clips, cfg.train_clips))


def build_datasets(cfg: Config, tasks: list[TaskData], tokenizer, frames) -> tuple[dict, dict]:
    """``(train, eval)`` datasets: ``{task: VideoQADataset}`` and ``{(task, split): VideoQADataset}``."""
    keep = kept_videos(cfg)
    common = dict(
        tokenizer=tokenizer, frames=frames, max_text_len=cfg.data.max_text_len, use_span=cfg.data.use_span
    )
    train = {
        t.name: VideoQADataset(t.train, clips=train_clip_spec(cfg), vocab=t.vocab, train=True,
                               seed=cfg.run.seed, keep_videos=keep, **common)
        for t in tasks
    }  # fmt: skip
    evals = {
        (t.name, split): VideoQADataset(recs, clips=eval_clip_spec(cfg), vocab=t.vocab, train=False,
                                        seed=cfg.eval.seed, **common)
        for t in tasks
        for split, recs in t.eval.items()
    }  # fmt: skip
    for name, ds in train.items():
        if len(ds) == 0:
            raise ValueError(f"task {name}: every training question was left out ({dict(ds.report.dropped)})")
    return train, evals


def model_config(cfg: Config, tasks: list[TaskData], vocab_size: int) -> ModelConfig:
    m = cfg.model
    heads = {t.name: HeadSpec(t.kind, len(t.vocab), list(t.vocab.answers)) if t.vocab else HeadSpec(t.kind)
             for t in tasks}  # fmt: skip
    text = {**TINY_TEXT, "vocab_size": vocab_size, **m.text}
    return ModelConfig(
        heads=heads,
        vision={**TINY_VISION, **m.vision},
        text=text,
        vision_checkpoint=m.vision_checkpoint,
        text_checkpoint=m.text_checkpoint,
        max_grid=m.max_grid,
        grid_pool=m.grid_pool,
        visual_head=m.visual_head,
        stem=m.stem,
        vision_chunk_frames=m.vision_chunk_frames,
        checkpoint_vision=m.checkpoint_vision,
        freeze_at=m.freeze_at,
        # ClipBERT normalises 0-255 pixels by the mean only (detectron2's MSRA convention: std 1)
        **({"pixel_std": CLIPBERT_PIXEL_STD} if m.visual_head == "clipbert" else {}),
    )


def init_weights_from(model: ClipBertVQA, source: str | Path) -> dict:
    """Start from a saved model: copy every tensor whose name and shape match.

    An open-ended head's output layer is matched by answer, not by position: each answer the new vocabulary
    shares with the saved one inherits its row; the other rows keep their fresh initialisation. (Two
    vocabularies of the same size rarely list the answers in the same order.)

    ``source``: a run directory (its ``model/``) or a ``save_pretrained`` directory. Returns what was loaded.
    """

    src = Path(source)
    folder = src / "model" if (src / "model").is_dir() else src
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"model.init_from: no model.safetensors under {src}")
    saved = load_file(str(folder / "model.safetensors"))
    saved_heads = json.loads((folder / "config.json").read_text()).get("heads", {})
    own = model.state_dict()
    report = {"loaded": 0, "shape_mismatch": [], "answers_inherited": {}}
    outputs = {f"heads.{name}.3.{p}": name for name in model.config.heads for p in ("weight", "bias")}
    for name, tensor in saved.items():
        if name not in own:
            continue
        head = outputs.get(name)
        new_labels = model.config.heads[head].labels if head else None
        old_labels = saved_heads.get(head, {}).get("labels") if head else None
        if new_labels is not None or old_labels is not None:
            if new_labels is None or old_labels is None:
                report["shape_mismatch"].append(name)  # answers unknown on one side: cannot match rows
                continue
            index = {a: i for i, a in enumerate(old_labels)}
            rows = [(j, index[a]) for j, a in enumerate(new_labels) if a in index]
            for j, i in rows:
                own[name][j] = tensor[i]
            report["answers_inherited"][head] = len(rows)
        elif own[name].shape == tensor.shape:
            own[name] = tensor
            report["loaded"] += 1
        else:
            report["shape_mismatch"].append(name)
    model.load_state_dict(own)
    report["not_in_source"] = sorted(set(own) - set(saved))
    return report


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Keep every BatchNorm in eval mode (running statistics, per-sample): ClipBERT's frozen BN."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.eval()


def build_model(cfg: Config, tasks: list[TaskData], tokenizer) -> tuple[ClipBertVQA, dict | None]:
    model = ClipBertVQA(model_config(cfg, tasks, len(tokenizer)))
    report = None
    if cfg.model.clipbert_checkpoint:
        report = {"clipbert": load_clipbert(model, cfg.model.clipbert_checkpoint).as_dict()}
    if cfg.model.init_from:
        report = {**(report or {}), **init_weights_from(model, cfg.model.init_from)}
    return model, report


def build_objective(cfg: Config, hidden_size: int) -> SiaSamReaLoss:
    m = cfg.method
    reasoner = None
    if cfg.uses_reasoning:
        reasoner = SiameseReasoner(
            cfg.train_clips,
            hidden_size,
            omega=m.omega,
            affinity=cfg.affinity,
            learn_w1=m.learn_w1,
            learn_w2=m.learn_w2,
            projection_dim=m.projection_dim,
            affinity_temperature=m.affinity_temperature,
        )
    return SiaSamReaLoss(
        reasoner,
        alpha=m.alpha if cfg.uses_reasoning else 0.0,
        temperature=m.temperature,
        gt_on=cfg.gt_on,
        stop_gradient=m.stop_gradient,
        weight_objective=m.weight_objective,
    )


def tokenizer_for(cfg: Config):
    return load_tokenizer(cfg.data.tokenizer)
