"""The run configuration: one dataclass per section, loaded from YAML and ``--set key=value`` overrides.

Every key is checked before anything trains: an unknown key, a value of the wrong type, a non-finite or
out-of-range number, an impossible clip count or a checkpoint path that does not exist raises
:class:`ConfigError` naming the key (e.g. ``method.num_clips``). Each key is declared with :func:`key`: its
default, one line of meaning and its range or choices. :func:`validate` checks those and
``python -m siasamrea.training --help`` prints them (:func:`describe_keys`), so the two cannot disagree.

What each method variant (``method.variant``) sets is :mod:`siasamrea.core.variants`. The W1/W2 ablation
is ``method.learn_w1`` / ``method.learn_w2``; the open points of docs/method.md are ``method.gt_on``,
``method.stop_gradient``, ``method.weight_objective`` and ``method.temperature``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from siasamrea.core.choices import (
    AGGREGATIONS,
    DATASET_TASKS,
    GT_ON,
    MAX_FRAMES_PER_CLIP,
    OFFSET_MODES,
    REASONING_VARIANTS,
    STOP_GRADIENT,
    VARIANTS,
    WEIGHT_OBJECTIVES,
)
from siasamrea.core.mapping import deep_merge
from siasamrea.core.variants import VariantRule, variant_rule


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the dotted key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


def key(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory: Any = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple | str | None = None,
) -> Any:
    """A configuration key: its default, one line of meaning and the range :func:`validate` enforces.

    ``ge``/``gt``/``le``/``lt`` bound a number (``None`` values are allowed when the type admits them);
    ``choices`` is a tuple, or the dotted ``module:NAME`` of one (resolved when validating, so this module
    imports nothing heavy). ``python -m siasamrea.training --help`` prints the same metadata.
    """
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Where the questions and videos come from and how they become tensors."""

    dataset: str = key(
        "tgif-qa", "a dataset known to siasamrea.data.registry", choices=tuple(DATASET_TASKS)
    )
    root: str = key("data/synthetic/tgif-qa", "folder with the annotation files")
    tasks: list[str] | None = key(None, "TGIF-QA: the tasks to train on together (null: every task found)")
    reader: dict = key(
        help="extra reader options (video_dir, ext, ...; checked against the reader)", factory=dict
    )
    train_split: str = key("train", "the split to train on")
    eval_splits: list[str] = key(
        help="splits evaluated after each evaluation epoch", factory=lambda: ["test"]
    )
    filter_manifest: str | None = key(None, "the frame filter's manifest: train only on videos it kept")
    tokenizer: str = key("data/synthetic/tokenizer", "local tokenizer directory")
    answer_vocab_size: int = key(1000, "open-ended answers: the most frequent training answers", ge=1)
    frame_size: int = key(32, "frames are resized to frame_size x frame_size on decode", ge=16, le=4096)
    max_text_len: int = key(40, "question (+ candidate) tokens, longer text is cut", ge=4)
    num_workers: int = key(0, "DataLoader workers per process", ge=0)
    cache: str | None = key(None, "a decoded-frame cache directory (siasamrea.data.frames), or null: decode")
    train_limit: int | None = key(None, "use only the first n training questions (smoke runs)", ge=1)
    eval_limit: int | None = key(None, "use only the first n questions of each evaluation split", ge=1)
    on_error: str = key(
        "raise",
        "bad annotation rows: raise, or skip (skips are counted in data.json)",
        choices=("raise", "skip"),
    )
    resize: str = key(
        "pad",
        "pad: longer side to frame_size, zero-pad right/bottom (ClipBERT); stretch: squash to a square",
        choices=("pad", "stretch"),
    )
    use_span: bool = key(True, "sample clips within a question's time span where the annotation gives one")
    evidence: str | None = key(None, "synthetic ground truth (evidence.jsonl) for the analysis dumps")


@dataclass
class ModelSection:
    """Encoder sizes or local checkpoints (see siasamrea.method.model.ModelConfig)."""

    vision: dict = key(help="ResNetConfig overrides of the tiny default", factory=dict)
    text: dict = key(help="BertConfig overrides of the tiny default (e.g. hidden_dropout_prob)", factory=dict)
    vision_checkpoint: str | None = key(None, "a local transformers ResNet checkpoint (null: tiny, random)")
    text_checkpoint: str | None = key(None, "a local transformers BERT checkpoint (null: tiny, random)")
    grid_pool: int | None = key(None, "average-pool the vision grid to this size (null: no pooling)", ge=1)
    max_grid: int = key(16, "largest grid side the 2-D position embeddings cover", ge=1)
    # ClipBERT freezes BatchNorm (per-sample, so DDP equals one big batch). That needs statistics from
    # pretraining: a from-scratch encoder with frozen (identity) BN barely learns, so None means "frozen
    # iff model.vision_checkpoint is given".
    freeze_bn: bool | None = key(None, "freeze BatchNorm (null: iff model.vision_checkpoint is given)")
    init_from: str | None = key(None, "a run or model directory to start from (pretraining)")
    freeze_at: int = key(
        0,
        "freeze the ResNet's stem (1) or stem and first stage (2; detectron2's FREEZE_AT, ClipBERT's 2): "
        "weights and BatchNorm statistics fixed, no backward through them",
        choices=(0, 1, 2),
    )
    visual_head: str = key(
        "linear",
        "linear (projection) or clipbert (ClipBERT's conv3x3 grid encoder)",
        choices=("linear", "clipbert"),
    )
    clipbert_checkpoint: str | None = key(
        None, "a ClipBERT .pt state dict to start from (needs model.visual_head: clipbert)"
    )
    stem: str = key(
        "imagenet",
        "imagenet: the ResNet's /4 stem (pretrained checkpoints); small: 3x3 stride 1, no max-pool",
        choices=("imagenet", "small"),
    )
    vision_chunk_frames: int | None = key(None, "run the ResNet over this many clip-frames at a time", ge=1)
    checkpoint_vision: bool = key(False, "activation checkpointing of the ResNet (per chunk)")


@dataclass
class MethodConfig:
    """The method variant and its hyper-parameters (Eq. 1-8)."""

    variant: str = key("siasamrea", "the method variant (table in siasamrea/core/variants.py)", choices=VARIANTS)
    num_clips: int = key(9, "N: the anchor and N-1 siamese clips (paper: 8 siamese clips)", ge=1, le=64)
    frames_per_clip: int | str = key(4, "B frames per clip, or 'auto' for the paper's 5..16 by video length")
    offsets: str = key(
        "after",
        "siamese starts after the anchor's, or alternate (+1, -1, +2, ...)",
        choices=OFFSET_MODES,
    )
    # The sampling interval leaves room for this many clips. Runs compared with each other must share it:
    # then every run (baseline, N = 2..13) draws its anchor, and is evaluated, on the same clips.
    reserve_clips: int = key(13, "clips the sampling interval leaves room for (compared runs share it)", ge=1)
    alpha: float = key(
        1.0, "weight of L_siamese in L = alpha L_siamese + L_gt (> 0 for reasoning variants)", ge=0
    )
    omega: float = key(0.5, "omega of Eq. 3: share of the affinity term in the soft label", ge=0, le=1)
    temperature: float = key(1.0, "softmax temperature of the clip predictions", gt=0)
    affinity_temperature: float = key(1.0, "softmax temperature of the affinity (Eq. 2)", gt=0)
    learn_w1: bool = key(True, "train W1 (false: fixed uniform; the W1/W2 ablation)")
    learn_w2: bool = key(True, "train W2 (false: fixed uniform; the W1/W2 ablation)")
    projection_dim: int | None = key(
        None, "g of Eq. 1: a linear projection to this size (null: identity)", ge=1
    )
    gt_on: str = key("anchor", "L_gt on the anchor only, or on every clip", choices=GT_ON)
    stop_gradient: str = key(
        "none",
        "none (the paper's text) or target (detach P and A as BAKE does)",
        choices=STOP_GRADIENT,
    )
    weight_objective: str = key(
        "siamese",
        "what trains W1/W2: the siamese loss, or gt (CE of Q vs truth)",
        choices=WEIGHT_OBJECTIVES,
    )


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and decay (paper Sec. 4.2)."""

    lr: float = key(5e-4, "peak learning rate (paper: 5e-4)", gt=0)
    weight_decay: float = key(0.01, "AdamW weight decay (not on biases, norms, embeddings, W1/W2)", ge=0)
    warmup_ratio: float = key(0.1, "share of steps of linear warm-up, then linear decay to 0", ge=0, lt=1)
    epochs: int = key(10, "training epochs", ge=1)
    batch_size: int = key(8, "videos per process per step", ge=1)
    grad_clip: float | None = key(1.0, "clip the gradient norm to this (0 or null: no clipping)", ge=0)
    betas: list[float] = key(help="AdamW betas, two values in [0, 1)", factory=lambda: [0.9, 0.98])


@dataclass
class EvalConfig:
    """Evaluation protocol."""

    every_epochs: int = key(1, "evaluate every this many epochs (and after the last)", ge=1)
    multi_clip: str | None = key(
        None, "null: the anchor clip only (the paper); else mean, max or lse", choices=AGGREGATIONS
    )
    num_clips: int = key(4, "clips of multi-clip inference", ge=1)
    conditions: list[str] = key(
        help="after training, also evaluate the last model with: blank (text only), oracle (a clip on the "
        "evidence), multi_clip (method.num_clips uniform clips, mean) -> instrument.json",
        factory=list,
        choices=("blank", "oracle", "multi_clip"),
    )
    seed: int = key(12345, "anchor positions of evaluation (the same for every run and epoch)")
    batch_size: int = key(32, "videos per process per evaluation batch", ge=1)


@dataclass
class RunConfig:
    """Where and how a run executes."""

    out_dir: str = key("runs/debug", "the run directory (re-running resumes from its checkpoints)")
    seed: int = key(0, "seed of weights, sampling and data order")
    device: str = key("auto", "auto (CUDA if available), cpu or cuda", choices=("auto", "cpu", "cuda"))
    bf16: bool = key(True, "autocast to bf16 on CUDA (ignored on CPU; false: fp32)")
    precision: str = key(
        "auto",
        "auto (CUDA: bf16 if supported, else fp16 with GradScaler; CPU: fp32), fp32, bf16 or fp16",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    threads: int | None = key(None, "torch intra-op threads on CPU (null: torch's default)", ge=1)
    log_every: int = key(10, "steps between log.csv rows", ge=1)
    checkpoint_every: int = key(0, "steps between mid-epoch checkpoints (0: at epoch ends only)", ge=0)
    keep_checkpoints: int = key(2, "newest checkpoints kept (0: all)", ge=0)
    analysis_videos: int = key(16, "training videos whose affinity and clip predictions are saved", ge=0)
    max_steps: int | None = key(None, "stop after this many steps, unfinished (tests of resume)", ge=0)
    progress: bool = key(True, "show a progress bar")


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

    # -- derived settings of the method variant (siasamrea.core.variants) ------------------------------------
    @property
    def variant_rule(self) -> VariantRule:
        m = self.method
        return variant_rule(m.variant, m.num_clips, m.alpha, m.gt_on)

    @property
    def sampler(self) -> str:
        return self.variant_rule.sampler

    @property
    def train_clips(self) -> int:
        return self.variant_rule.train_clips

    @property
    def uses_reasoning(self) -> bool:
        return self.variant_rule.uses_reasoning

    @property
    def affinity(self) -> str:
        return self.variant_rule.affinity

    @property
    def freeze_bn(self) -> bool:
        if self.model.freeze_bn is None:
            return self.model.vision_checkpoint is not None or self.model.clipbert_checkpoint is not None
        return self.model.freeze_bn

    @property
    def gt_on(self) -> str:
        return self.variant_rule.gt_on


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
        try:
            values = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"{p}, line {mark.line + 1}" if mark is not None else str(p)
            raise ConfigError(where, f"YAML syntax error: {e.problem or e.context}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(str(p), f"not a readable YAML file ({e})") from None
    if isinstance(overrides, dict):
        values = deep_merge(values, overrides)
    else:
        for item in overrides or []:
            values = deep_merge(values, parse_override(item))
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


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _bounds(meta: typing.Mapping) -> str | None:
    """``">= 1"``, ``"> 0"``, ``"in [0, 1]"``, ``"in [0, 1)"``... of a key's metadata, or ``None``."""
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    low = f"[{_number(ge)}" if ge is not None else f"({_number(gt)}" if gt is not None else None
    high = f"{_number(le)}]" if le is not None else f"{_number(lt)})" if lt is not None else None
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f"{'>=' if ge is not None else '>'} {low[1:]}"
    if high:
        return f"{'<=' if le is not None else '<'} {high[:-1]}"
    return None


def _check_key(name: str, value: Any, meta: typing.Mapping) -> None:
    """Finite numbers, the key's range and choices (from its :func:`key` metadata)."""
    if value is None:
        return
    numbers = value if isinstance(value, list) else [value]
    for v in numbers:
        # NaN compares false with every bound, so a range check alone would let it through.
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(name, f"must be a finite number, got {v}")
    choices = meta.get("choices")
    if choices is not None:
        for v in value if isinstance(value, list) else [value]:  # a list key: each element is a choice
            _choice(name, v, choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    if (
        (ge is not None and value < ge)
        or (gt is not None and value <= gt)
        or (le is not None and value > le)
        or (lt is not None and value >= lt)
    ):
        raise ConfigError(name, f"must be {_bounds(meta)}, got {value}")


def iter_keys(cls=None, prefix: str = ""):
    """``(dotted key, dataclass field, type)`` of every configuration key, in declaration order."""
    cls = cls or Config
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            yield from iter_keys(hints[f.name], name)
        else:
            yield name, f, hints[f.name]


def describe_keys() -> str:
    """Every key with its type, default, allowed values and meaning: the text of ``train --help``."""
    defaults = Config().to_dict()
    lines = []
    section = None
    for name, f, tp in iter_keys():
        head = name.split(".")[0]
        if head != section:
            section = head
            doc = (typing.get_type_hints(Config)[head].__doc__ or "").strip().splitlines()[0]
            lines.append(f"\n{head}:  {doc}")
        default = defaults[head][f.name]
        allowed = []
        choices = f.metadata.get("choices")
        if choices is not None:
            allowed.append("one of " + ", ".join(map(str, choices)))
        if _bounds(f.metadata):
            allowed.append(_bounds(f.metadata))
        extra = f" ({'; '.join(allowed)})" if allowed else ""
        lines.append(f"  {name}: {_type_name(tp)} = {json.dumps(default)}")
        lines.append(f"      {f.metadata.get('help', '')}{extra}")
    return "\n".join(lines)


def validate(cfg: Config) -> None:
    """Check what a type alone cannot: choices, ranges, clip counts, paths. Raises :class:`ConfigError`.

    Ranges and choices come from each key's :func:`key` metadata (what ``--help`` prints); the checks that
    involve several keys or the file system follow.
    """

    values = cfg.to_dict()
    for name, f, _ in iter_keys():
        section, k = name.split(".")
        _check_key(name, values[section][k], f.metadata)
    m = cfg.method
    if m.variant != "baseline" and m.num_clips < 2:
        raise ConfigError(
            "method.num_clips",
            f"variant {m.variant!r} needs the anchor and >= 1 siamese clip, got {m.num_clips}",
        )
    if isinstance(m.frames_per_clip, str):
        if m.frames_per_clip != "auto":
            raise ConfigError("method.frames_per_clip", f"an integer or 'auto', got {m.frames_per_clip!r}")
    elif not 1 <= m.frames_per_clip <= MAX_FRAMES_PER_CLIP:
        raise ConfigError(
            "method.frames_per_clip", f"must be in [1, {MAX_FRAMES_PER_CLIP}], got {m.frames_per_clip}"
        )
    if m.variant in REASONING_VARIANTS and m.alpha <= 0:
        # alpha = 0 would switch reasoning off while the run is still labelled with a reasoning variant.
        raise ConfigError(
            "method.alpha",
            f"must be > 0 for variant {m.variant!r}, got {m.alpha} (no L_siamese: use variant 'baseline' "
            "or 'all_clips')",
        )
    o = cfg.optim
    if len(o.betas) != 2 or not all(0.0 <= b < 1.0 for b in o.betas):
        raise ConfigError("optim.betas", f"needs two values in [0, 1), got {o.betas}")
    if "oracle" in cfg.eval.conditions and not cfg.data.evidence:
        raise ConfigError("eval.conditions", "'oracle' places a clip on the evidence: set data.evidence")
    if cfg.model.stem == "small" and (cfg.model.vision_checkpoint or cfg.model.clipbert_checkpoint):
        raise ConfigError("model.stem", "small replaces the stem a pretrained checkpoint was trained with")
    if cfg.model.clipbert_checkpoint is not None and cfg.model.visual_head != "clipbert":
        raise ConfigError("model.clipbert_checkpoint", "needs model.visual_head: clipbert (its grid encoder)")
    if (cfg.model.vision_chunk_frames or cfg.model.checkpoint_vision) and not cfg.freeze_bn:
        # Training-mode BatchNorm normalises by the statistics of what it sees: chunks would change the
        # result, and recomputation would update the running statistics twice.
        raise ConfigError(
            "model.vision_chunk_frames",
            "chunking/checkpointing the ResNet needs frozen BatchNorm (model.freeze_bn: true, or a "
            "model.vision_checkpoint / model.clipbert_checkpoint)",
        )
    if cfg.data.tasks is not None:
        known = DATASET_TASKS[cfg.data.dataset]
        if cfg.data.dataset != "tgif-qa" and cfg.data.tasks:
            raise ConfigError("data.tasks", f"{cfg.data.dataset} has a single task; leave data.tasks empty")
        for task in cfg.data.tasks:
            _choice("data.tasks", task, known)
    for key_name in ("vision_checkpoint", "text_checkpoint", "init_from", "clipbert_checkpoint"):
        path = getattr(cfg.model, key_name)
        if path is not None and not Path(path).exists():
            raise ConfigError(f"model.{key_name}", f"no such file or directory: {path}")
    if cfg.data.filter_manifest is not None and not Path(cfg.data.filter_manifest).is_file():
        raise ConfigError("data.filter_manifest", f"no such file: {cfg.data.filter_manifest}")
    if not Path(cfg.data.root).is_dir():
        raise ConfigError("data.root", f"no such directory: {cfg.data.root}")
    if not Path(cfg.data.tokenizer).is_dir():
        raise ConfigError("data.tokenizer", f"no such tokenizer directory: {cfg.data.tokenizer}")
    if cfg.data.cache is not None:
        _check_cache(cfg.data.cache, cfg.data.frame_size)


def _check_cache(cache: str, frame_size: int) -> None:
    """The frame cache must exist and hold frames of ``data.frame_size``: it would override it silently."""
    index = Path(cache) / "index.json"
    if not index.is_file():
        raise ConfigError("data.cache", f"not a frame cache (no {index})")
    try:
        cached = json.loads(index.read_text())["frame_size"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError("data.cache", f"{index} is unreadable ({e!r})") from None
    if cached != frame_size:
        raise ConfigError(
            "data.frame_size",
            f"is {frame_size} but data.cache {cache} holds {cached}x{cached} frames; set data.frame_size="
            f"{cached} or rebuild the cache (python -m siasamrea.data cache --frame-size {frame_size})",
        )


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
