"""The run configuration: one dataclass per section, loaded from YAML and ``--set key=value`` overrides.

Every key is checked before anything trains: an unknown key, a value of the wrong type, an impossible clip
count or a checkpoint path that does not exist raises :class:`ConfigError` naming the key
(e.g. ``method.num_clips``).

Method variants (``method.variant``) and what they set:

=================  =========================================================================================
``siasamrea``       siamese sampling + SKG (Eq. 1–2) + SKR (Eq. 3–5), L = α L_siamese + L_gt ("w/ SKG+SKR")
``skr_average``     as ``siasamrea`` with Â(i, j) = 1/(N−1) ("w/ SKR", Table 1)
``anchor_copies``   as ``siasamrea`` with the siamese clips replaced by copies of the anchor (Sec. 4.3)
``baseline``        one sparse clip, ``L = L_gt`` ("training without L_siamese", Table 1)
``all_clips``       the equal-clip-budget control: the same N siamese clips, every clip supervised by L_gt,
                    no reasoning (DESIGN.md §2)
=================  =========================================================================================

The W1/W2 ablation is ``method.learn_w1`` / ``method.learn_w2``; the open points of DESIGN.md §2 are
``method.gt_on``, ``method.stop_gradient``, ``method.weight_objective`` and ``method.temperature``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VARIANTS = ("siasamrea", "skr_average", "anchor_copies", "baseline", "all_clips")
AGGREGATIONS = ("mean", "max", "lse")


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the dotted key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass
class DataConfig:
    """Where the questions and videos come from and how they become tensors."""

    dataset: str = "tgif-qa"  # a name known to siasamrea.data.registry
    root: str = "data/synthetic/tgif-qa"  # folder with the annotation files
    tasks: list[str] | None = None  # TGIF-QA: the tasks to train on together (None: every task found)
    reader: dict = field(default_factory=dict)  # extra reader options (video_dir, ext, ...)
    train_split: str = "train"
    eval_splits: list[str] = field(default_factory=lambda: ["test"])
    filter_manifest: str | None = None  # the frame filter's manifest: train only on videos it kept
    tokenizer: str = "data/synthetic/tokenizer"  # local tokenizer directory
    answer_vocab_size: int = 1000  # open-ended answers: the most frequent training answers
    frame_size: int = 32  # frames are resized to frame_size x frame_size on decode
    max_text_len: int = 40
    num_workers: int = 0  # DataLoader workers per process
    cache: str | None = None  # a decoded-frame cache directory (siasamrea.data.frame_cache), or None
    train_limit: int | None = None  # use only the first n training questions (smoke runs)
    eval_limit: int | None = None
    on_error: str = "raise"  # bad annotation rows: "raise" or "skip" (skips are counted and reported)
    resize: str = "pad"  # "pad": longer side to frame_size, zero-pad right/bottom (ClipBERT); "stretch"
    use_span: bool = True  # sample clips within a question's time span where the annotation gives one
    evidence: str | None = None  # synthetic ground truth (evidence.jsonl) for the analysis dumps


@dataclass
class ModelSection:
    """Encoder sizes or local checkpoints (see siasamrea.model.ModelConfig)."""

    vision: dict = field(default_factory=dict)  # ResNetConfig overrides of the tiny default
    text: dict = field(default_factory=dict)  # BertConfig overrides of the tiny default
    vision_checkpoint: str | None = None
    text_checkpoint: str | None = None
    grid_pool: int | None = None
    max_grid: int = 16
    # ClipBERT freezes BatchNorm (per-sample, so DDP equals one big batch). That needs statistics from
    # pretraining: a from-scratch encoder with frozen (identity) BN barely learns, so None means "frozen
    # iff model.vision_checkpoint is given".
    freeze_bn: bool | None = None
    init_from: str | None = None  # a run directory or model directory to start from (pretraining)
    visual_head: str = "linear"  # "linear" (projection) or "clipbert" (ClipBERT's conv3x3 grid encoder)
    clipbert_checkpoint: str | None = None  # a ClipBERT .pt state dict to start from (visual_head: clipbert)
    vision_chunk_frames: int | None = None  # run the ResNet over this many clip-frames at a time
    checkpoint_vision: bool = False  # activation checkpointing of the ResNet (per chunk)


@dataclass
class MethodConfig:
    variant: str = "siasamrea"
    num_clips: int = 9  # N: the anchor and N-1 siamese clips (paper: 8 siamese clips)
    frames_per_clip: int | str = 4  # B, or "auto" for the paper's 5..16 by video length
    offsets: str = "after"  # siamese starts after the anchor's, or "alternate" (+1, -1, +2, ...)
    # The sampling interval leaves room for this many clips. Runs compared with each other must share it:
    # then every run (baseline, N = 2..13) draws its anchor, and is evaluated, on the same clips.
    reserve_clips: int = 13
    alpha: float = 1.0
    omega: float = 0.5
    temperature: float = 1.0
    affinity_temperature: float = 1.0
    learn_w1: bool = True
    learn_w2: bool = True
    projection_dim: int | None = None  # g of Eq. 1 (None: identity)
    gt_on: str = "anchor"
    stop_gradient: str = "none"
    weight_objective: str = "siamese"


@dataclass
class OptimConfig:
    lr: float = 5e-4  # paper
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # paper: warm-up over the first 10% of steps, then linear decay to 0
    epochs: int = 10
    batch_size: int = 8  # videos per process per step
    grad_clip: float | None = 1.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])


@dataclass
class EvalConfig:
    every_epochs: int = 1
    multi_clip: str | None = None  # None: the anchor clip only (the paper); else "mean" / "max" / "lse"
    num_clips: int = 4  # clips of multi-clip inference
    seed: int = 12345  # anchor positions of evaluation (the same for every run and epoch)
    batch_size: int = 32


@dataclass
class RunConfig:
    out_dir: str = "runs/debug"
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    bf16: bool = True  # autocast to bf16 on CUDA (ignored on CPU)
    # "auto" (CUDA: bf16 if supported, else fp16 with GradScaler; CPU: fp32) | "fp32" | "bf16" | "fp16"
    precision: str = "auto"
    threads: int | None = None  # torch intra-op threads on CPU (None: torch's default)
    log_every: int = 10
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints (0: at epoch ends only)
    keep_checkpoints: int = 2
    analysis_videos: int = 16  # training videos whose affinity and clip predictions are saved
    max_steps: int | None = None  # stop early (tests of resume)
    progress: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # -- derived settings of the method variant -----------------------------------------------------------
    @property
    def sampler(self) -> str:
        return {"baseline": "sparse", "anchor_copies": "anchor_copies"}.get(self.method.variant, "siamese")

    @property
    def train_clips(self) -> int:
        return 1 if self.method.variant == "baseline" else self.method.num_clips

    @property
    def uses_reasoning(self) -> bool:
        return self.method.variant in ("siasamrea", "skr_average", "anchor_copies") and self.method.alpha > 0

    @property
    def affinity(self) -> str:
        return "average" if self.method.variant == "skr_average" else "siamese"

    @property
    def freeze_bn(self) -> bool:
        if self.model.freeze_bn is None:
            return self.model.vision_checkpoint is not None or self.model.clipbert_checkpoint is not None
        return self.model.freeze_bn

    @property
    def gt_on(self) -> str:
        return "all" if self.method.variant == "all_clips" else self.method.gt_on


# -- loading and validation ------------------------------------------------------------------------------
def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(tp)
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


#: Scientific notation without a dot (``5e-4``): PyYAML's YAML 1.1 resolver reads it as a string.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _accepts_float(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_accepts_float(a) for a in typing.get_args(tp))
    return tp is float


def _coerce(value: Any, tp: Any) -> Any:
    """Integers where a float is expected become floats; so does ``5e-4``, which YAML 1.1 leaves a string."""
    if typing.get_origin(tp) is list and isinstance(value, list):
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner) for v in value]
    if not _accepts_float(tp) or isinstance(value, bool):
        return value
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, int):
        return float(value)
    return value


def _build(cls, values: dict, prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(prefix, f"expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(
                f"{prefix}.{key}" if prefix else key, f"unknown key (known: {', '.join(sorted(known))})"
            )
    kwargs = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, name)
            continue
        value = _coerce(value, tp)
        if not _type_ok(value, tp):
            raise ConfigError(name, f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
        kwargs[key] = value
    return cls(**kwargs)


def _type_name(tp) -> str:
    return str(tp).replace("typing.", "") if not isinstance(tp, type) else tp.__name__


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> dict:
    """``"method.num_clips=5"`` -> ``{"method": {"num_clips": 5}}``; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(item, "an override must look like section.key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(key.strip(), f"cannot parse {raw!r} as a YAML value ({e})") from None
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Load a YAML config (or none: the defaults), apply overrides, validate; see :func:`validate`."""
    values: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        values = yaml.safe_load(p.read_text()) or {}
    if isinstance(overrides, dict):
        values = _merge(values, overrides)
    else:
        for item in overrides or []:
            values = _merge(values, parse_override(item))
    cfg = _build(Config, values, "")
    validate(cfg)
    return cfg


def config_from_dict(values: dict) -> Config:
    cfg = _build(Config, values, "")
    validate(cfg)
    return cfg


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {list(allowed)}, got {value!r}")


def validate(cfg: Config) -> None:
    """Check what a type alone cannot: choices, ranges, clip counts, paths. Raises :class:`ConfigError`."""
    from siasamrea.losses import GT_ON, STOP_GRADIENT, WEIGHT_OBJECTIVES
    from siasamrea.sampling import MAX_FRAMES_PER_CLIP, OFFSET_MODES

    m = cfg.method
    _choice("method.variant", m.variant, VARIANTS)
    _choice("method.offsets", m.offsets, OFFSET_MODES)
    _choice("method.gt_on", m.gt_on, GT_ON)
    _choice("method.stop_gradient", m.stop_gradient, STOP_GRADIENT)
    _choice("method.weight_objective", m.weight_objective, WEIGHT_OBJECTIVES)
    if m.variant != "baseline" and m.num_clips < 2:
        raise ConfigError(
            "method.num_clips",
            f"variant {m.variant!r} needs the anchor and >= 1 siamese clip, got {m.num_clips}",
        )
    if m.reserve_clips < 1:
        raise ConfigError("method.reserve_clips", f"must be >= 1, got {m.reserve_clips}")
    if m.num_clips < 1 or m.num_clips > 64:
        raise ConfigError("method.num_clips", f"must be in [1, 64], got {m.num_clips}")
    if isinstance(m.frames_per_clip, str):
        if m.frames_per_clip != "auto":
            raise ConfigError("method.frames_per_clip", f"an integer or 'auto', got {m.frames_per_clip!r}")
    elif not 1 <= m.frames_per_clip <= MAX_FRAMES_PER_CLIP:
        raise ConfigError(
            "method.frames_per_clip", f"must be in [1, {MAX_FRAMES_PER_CLIP}], got {m.frames_per_clip}"
        )
    if not 0.0 <= m.omega <= 1.0:
        raise ConfigError("method.omega", f"must be in [0, 1], got {m.omega}")
    for key in ("alpha",):
        if getattr(m, key) < 0:
            raise ConfigError(f"method.{key}", f"must be >= 0, got {getattr(m, key)}")
    for key in ("temperature", "affinity_temperature"):
        if getattr(m, key) <= 0:
            raise ConfigError(f"method.{key}", f"must be > 0, got {getattr(m, key)}")
    o = cfg.optim
    if o.lr <= 0:
        raise ConfigError("optim.lr", f"must be > 0, got {o.lr}")
    if o.epochs < 1:
        raise ConfigError("optim.epochs", f"must be >= 1, got {o.epochs}")
    if o.batch_size < 1:
        raise ConfigError("optim.batch_size", f"must be >= 1, got {o.batch_size}")
    if not 0 <= o.warmup_ratio < 1:
        raise ConfigError("optim.warmup_ratio", f"must be in [0, 1), got {o.warmup_ratio}")
    if len(o.betas) != 2 or not all(0.0 <= b < 1.0 for b in o.betas):
        raise ConfigError("optim.betas", f"needs two values in [0, 1), got {o.betas}")
    if o.weight_decay < 0:
        raise ConfigError("optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    if o.grad_clip is not None and o.grad_clip < 0:  # a negative norm would flip the gradient's sign
        raise ConfigError("optim.grad_clip", f"must be >= 0 (0 or null: no clipping), got {o.grad_clip}")
    e = cfg.eval
    if e.multi_clip is not None:
        _choice("eval.multi_clip", e.multi_clip, AGGREGATIONS)
    if e.num_clips < 1:
        raise ConfigError("eval.num_clips", f"must be >= 1, got {e.num_clips}")
    # Used as divisors and counts during training: caught here, not after an epoch of training.
    for key, value, low in (
        ("eval.every_epochs", e.every_epochs, 1),
        ("eval.batch_size", e.batch_size, 1),
        ("run.log_every", cfg.run.log_every, 1),
        ("run.checkpoint_every", cfg.run.checkpoint_every, 0),
        ("run.keep_checkpoints", cfg.run.keep_checkpoints, 0),
        ("run.max_steps", cfg.run.max_steps, 0),
        ("run.threads", cfg.run.threads, 1),
        ("data.num_workers", cfg.data.num_workers, 0),
        ("data.train_limit", cfg.data.train_limit, 1),
        ("data.eval_limit", cfg.data.eval_limit, 1),
    ):
        if value is not None and value < low:
            raise ConfigError(key, f"must be >= {low}, got {value}")
    _choice("run.device", cfg.run.device, ("auto", "cpu", "cuda"))
    _choice("data.on_error", cfg.data.on_error, ("raise", "skip"))
    _choice("data.resize", cfg.data.resize, ("pad", "stretch"))
    _choice("model.visual_head", cfg.model.visual_head, ("linear", "clipbert"))
    _choice("run.precision", cfg.run.precision, ("auto", "fp32", "bf16", "fp16"))
    if cfg.model.clipbert_checkpoint is not None and cfg.model.visual_head != "clipbert":
        raise ConfigError("model.clipbert_checkpoint", "needs model.visual_head: clipbert (its grid encoder)")
    if cfg.model.vision_chunk_frames is not None and cfg.model.vision_chunk_frames < 1:
        raise ConfigError("model.vision_chunk_frames", f"must be >= 1, got {cfg.model.vision_chunk_frames}")
    if (cfg.model.vision_chunk_frames or cfg.model.checkpoint_vision) and not cfg.freeze_bn:
        # Training-mode BatchNorm normalises by the statistics of what it sees: chunks would change the
        # result, and recomputation would update the running statistics twice.
        raise ConfigError(
            "model.vision_chunk_frames",
            "chunking/checkpointing the ResNet needs frozen BatchNorm (model.freeze_bn: true, or a "
            "model.vision_checkpoint / model.clipbert_checkpoint)",
        )
    from siasamrea.data.registry import DATASETS

    _choice("data.dataset", cfg.data.dataset, DATASETS)
    if cfg.data.tasks is not None:
        known = DATASETS[cfg.data.dataset].tasks
        if cfg.data.dataset != "tgif-qa" and cfg.data.tasks:
            raise ConfigError("data.tasks", f"{cfg.data.dataset} has a single task; leave data.tasks empty")
        for task in cfg.data.tasks:
            _choice("data.tasks", task, known)
    if cfg.data.frame_size < 16:
        raise ConfigError("data.frame_size", f"must be >= 16, got {cfg.data.frame_size}")
    for key in ("vision_checkpoint", "text_checkpoint", "init_from", "clipbert_checkpoint"):
        path = getattr(cfg.model, key)
        if path is not None and not Path(path).exists():
            raise ConfigError(f"model.{key}", f"no such file or directory: {path}")
    if cfg.data.filter_manifest is not None and not Path(cfg.data.filter_manifest).is_file():
        raise ConfigError("data.filter_manifest", f"no such file: {cfg.data.filter_manifest}")
    if not Path(cfg.data.root).is_dir():
        raise ConfigError("data.root", f"no such directory: {cfg.data.root}")
    if not Path(cfg.data.tokenizer).is_dir():
        raise ConfigError("data.tokenizer", f"no such tokenizer directory: {cfg.data.tokenizer}")


#: Settings that change how a run executes, not what it computes: a run may resume with other values.
OPERATIONAL_KEYS = {
    "run": (
        "max_steps",
        "progress",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "threads",
        "out_dir",
    ),
    "data": ("num_workers",),
}


def resume_identity(cfg: Config) -> dict:
    """The configuration a checkpoint belongs to: everything but :data:`OPERATIONAL_KEYS` (flattened)."""
    out = {}
    for section, values in cfg.to_dict().items():
        for key, value in values.items():
            if key not in OPERATIONAL_KEYS.get(section, ()):
                out[f"{section}.{key}"] = value
    return out


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
