"""The run configuration: one pydantic model per section, loaded from YAML and ``--set key=value`` overrides.

Every key is checked before anything trains: an unknown key, a value of the wrong type, a non-finite or
out-of-range number, an impossible clip count or a checkpoint path that does not exist raises
:class:`ConfigError` naming the key (e.g. ``method.num_clips``). Each key is a pydantic ``Field``: its
default, one line of meaning (``description``), its range (``ge``/``gt``/``le``/``lt``) and, for a choice,
a ``Literal`` of the tuples in :mod:`siasamrea.core.choices`. Pydantic enforces them (strictly: no string
becomes a number, no bool a number; an integer where a float is expected becomes a float, and so does
``5e-4``, which YAML 1.1 leaves a string); ``python -m siasamrea.training --help`` prints them
(:func:`describe_keys`), so the two cannot disagree. :func:`validate` adds the checks that involve several
keys or the file system.

What each method variant (``method.variant``) sets is :mod:`siasamrea.core.variants`. The W1/W2 ablation
is ``method.learn_w1`` / ``method.learn_w2``; the open points of docs/method.md are ``method.gt_on``,
``method.stop_gradient``, ``method.weight_objective`` and ``method.temperature``.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

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


# -- value types -----------------------------------------------------------------------------------------
#: Scientific notation without a dot (``5e-4``): PyYAML's YAML 1.1 resolver reads it as a string.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _float_text(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()) else value


#: A float key: strict (no bool, no text) but for integers and ``5e-4`` text, which become floats.
Float = Annotated[float, BeforeValidator(_float_text)]


def _one_of(choices: tuple) -> Any:
    """``Literal[*choices]`` (Python 3.10 has no star in subscripts) that also refuses values of another
    type (a pydantic Literal takes ``True`` or ``1.0`` for ``1``): those are type errors, as for any key."""
    kinds = {type(c) for c in choices}

    def same_type(value: Any) -> Any:
        if type(value) not in kinds:
            raise PydanticCustomError("choice_type", "a value of the wrong type")
        return value

    return Annotated[Literal.__getitem__(tuple(choices)), BeforeValidator(same_type)]


class _Keys(BaseModel):
    """A section of keys: unknown keys, wrong types and non-finite numbers refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# -- the sections ------------------------------------------------------------------------------------------
class DataConfig(_Keys):
    """Where the questions and videos come from and how they become tensors."""

    dataset: _one_of(tuple(DATASET_TASKS)) = Field(
        "tgif-qa", description="a dataset known to siasamrea.data.registry"
    )
    root: str = Field("data/synthetic/tgif-qa", description="folder with the annotation files")
    tasks: list[str] | None = Field(
        None, description="TGIF-QA: the tasks to train on together (null: every task found)"
    )
    reader: dict = Field(
        default_factory=dict,
        description="extra reader options (video_dir, ext, ...; checked against the reader)",
    )
    train_split: str = Field("train", description="the split to train on")
    eval_splits: list[str] = Field(
        default_factory=lambda: ["test"], description="splits evaluated after each evaluation epoch"
    )
    filter_manifest: str | None = Field(
        None, description="the frame filter's manifest: train only on videos it kept"
    )
    tokenizer: str = Field("data/synthetic/tokenizer", description="local tokenizer directory")
    answer_vocab_size: int = Field(
        1000, description="open-ended answers: the most frequent training answers", ge=1
    )
    frame_size: int = Field(
        32, description="frames are resized to frame_size x frame_size on decode", ge=16, le=4096
    )
    max_text_len: int = Field(40, description="question (+ candidate) tokens, longer text is cut", ge=4)
    num_workers: int = Field(0, description="DataLoader workers per process", ge=0)
    cache: str | None = Field(
        None, description="a decoded-frame cache directory (siasamrea.data.frames), or null: decode"
    )
    train_limit: int | None = Field(
        None, description="use only the first n training questions (smoke runs)", ge=1
    )
    eval_limit: int | None = Field(
        None, description="use only the first n questions of each evaluation split", ge=1
    )
    on_error: _one_of(("raise", "skip")) = Field(
        "raise", description="bad annotation rows: raise, or skip (skips are counted in data.json)"
    )
    resize: _one_of(("pad", "stretch")) = Field(
        "pad",
        description="pad: longer side to frame_size, zero-pad right/bottom (ClipBERT); stretch: squash to a "
        "square",
    )
    use_span: bool = Field(
        True, description="sample clips within a question's time span where the annotation gives one"
    )
    evidence: str | None = Field(
        None, description="synthetic ground truth (evidence.jsonl) for the analysis dumps"
    )


class ModelSection(_Keys):
    """Encoder sizes or local checkpoints (see siasamrea.method.model.ModelConfig)."""

    vision: dict = Field(default_factory=dict, description="ResNetConfig overrides of the tiny default")
    text: dict = Field(
        default_factory=dict,
        description="BertConfig overrides of the tiny default (e.g. hidden_dropout_prob)",
    )
    vision_checkpoint: str | None = Field(
        None, description="a local transformers ResNet checkpoint (null: tiny, random)"
    )
    text_checkpoint: str | None = Field(
        None, description="a local transformers BERT checkpoint (null: tiny, random)"
    )
    grid_pool: int | None = Field(
        None, description="average-pool the vision grid to this size (null: no pooling)", ge=1
    )
    max_grid: int = Field(16, description="largest grid side the 2-D position embeddings cover", ge=1)
    # ClipBERT freezes BatchNorm (per-sample, so DDP equals one big batch). That needs statistics from
    # pretraining: a from-scratch encoder with frozen (identity) BN barely learns, so None means "frozen
    # iff model.vision_checkpoint is given".
    freeze_bn: bool | None = Field(
        None, description="freeze BatchNorm (null: iff model.vision_checkpoint is given)"
    )
    init_from: str | None = Field(None, description="a run or model directory to start from (pretraining)")
    freeze_at: _one_of((0, 1, 2)) = Field(
        0,
        description="freeze the ResNet's stem (1) or stem and first stage (2; detectron2's FREEZE_AT, "
        "ClipBERT's 2): weights and BatchNorm statistics fixed, no backward through them",
    )
    visual_head: _one_of(("linear", "clipbert")) = Field(
        "linear", description="linear (projection) or clipbert (ClipBERT's conv3x3 grid encoder)"
    )
    clipbert_checkpoint: str | None = Field(
        None, description="a ClipBERT .pt state dict to start from (needs model.visual_head: clipbert)"
    )
    stem: _one_of(("imagenet", "small")) = Field(
        "imagenet",
        description="imagenet: the ResNet's /4 stem (pretrained checkpoints); small: 3x3 stride 1, "
        "no max-pool",
    )
    vision_chunk_frames: int | None = Field(
        None, description="run the ResNet over this many clip-frames at a time", ge=1
    )
    checkpoint_vision: bool = Field(False, description="activation checkpointing of the ResNet (per chunk)")


class MethodConfig(_Keys):
    """The method variant and its hyper-parameters (Eq. 1-8)."""

    variant: _one_of(VARIANTS) = Field(
        "siasamrea", description="the method variant (table in siasamrea/core/variants.py)"
    )
    num_clips: int = Field(
        9, description="N: the anchor and N-1 siamese clips (paper: 8 siamese clips)", ge=1, le=64
    )
    frames_per_clip: int | str = Field(
        4, description="B frames per clip, or 'auto' for the paper's 5..16 by video length"
    )
    offsets: _one_of(OFFSET_MODES) = Field(
        "after", description="siamese starts after the anchor's, or alternate (+1, -1, +2, ...)"
    )
    # The sampling interval leaves room for this many clips. Runs compared with each other must share it:
    # then every run (baseline, N = 2..13) draws its anchor, and is evaluated, on the same clips.
    reserve_clips: int = Field(
        13, description="clips the sampling interval leaves room for (compared runs share it)", ge=1
    )
    alpha: Float = Field(
        1.0,
        description="weight of L_siamese in L = alpha L_siamese + L_gt (> 0 for reasoning variants)",
        ge=0,
    )
    omega: Float = Field(
        0.5, description="omega of Eq. 3: share of the affinity term in the soft label", ge=0, le=1
    )
    temperature: Float = Field(1.0, description="softmax temperature of the clip predictions", gt=0)
    affinity_temperature: Float = Field(1.0, description="softmax temperature of the affinity (Eq. 2)", gt=0)
    learn_w1: bool = Field(True, description="train W1 (false: fixed uniform; the W1/W2 ablation)")
    learn_w2: bool = Field(True, description="train W2 (false: fixed uniform; the W1/W2 ablation)")
    projection_dim: int | None = Field(
        None, description="g of Eq. 1: a linear projection to this size (null: identity)", ge=1
    )
    gt_on: _one_of(GT_ON) = Field("anchor", description="L_gt on the anchor only, or on every clip")
    stop_gradient: _one_of(STOP_GRADIENT) = Field(
        "none", description="none (the paper's text) or target (detach P and A as BAKE does)"
    )
    weight_objective: _one_of(WEIGHT_OBJECTIVES) = Field(
        "siamese", description="what trains W1/W2: the siamese loss, or gt (CE of Q vs truth)"
    )


class OptimConfig(_Keys):
    """AdamW with linear warm-up and decay (paper Sec. 4.2)."""

    lr: Float = Field(5e-4, description="peak learning rate (paper: 5e-4)", gt=0)
    weight_decay: Float = Field(
        0.01, description="AdamW weight decay (not on biases, norms, embeddings, W1/W2)", ge=0
    )
    warmup_ratio: Float = Field(
        0.1, description="share of steps of linear warm-up, then linear decay to 0", ge=0, lt=1
    )
    epochs: int = Field(10, description="training epochs", ge=1)
    batch_size: int = Field(8, description="videos per process per step", ge=1)
    grad_clip: Float | None = Field(
        1.0, description="clip the gradient norm to this (0 or null: no clipping)", ge=0
    )
    betas: list[Float] = Field(
        default_factory=lambda: [0.9, 0.98], description="AdamW betas, two values in [0, 1)"
    )


class EvalConfig(_Keys):
    """Evaluation protocol."""

    every_epochs: int = Field(1, description="evaluate every this many epochs (and after the last)", ge=1)
    multi_clip: _one_of(AGGREGATIONS) | None = Field(
        None, description="null: the anchor clip only (the paper); else mean, max or lse"
    )
    num_clips: int = Field(4, description="clips of multi-clip inference", ge=1)
    conditions: list[_one_of(("blank", "oracle", "multi_clip"))] = Field(
        default_factory=list,
        description="after training, also evaluate the last model with: blank (text only), oracle (a clip on "
        "the evidence), multi_clip (method.num_clips uniform clips, mean) -> instrument.json",
    )
    seed: int = Field(12345, description="anchor positions of evaluation (the same for every run and epoch)")
    batch_size: int = Field(32, description="videos per process per evaluation batch", ge=1)


class RunConfig(_Keys):
    """Where and how a run executes."""

    out_dir: str = Field(
        "runs/debug", description="the run directory (re-running resumes from its checkpoints)"
    )
    seed: int = Field(0, description="seed of weights, sampling and data order")
    device: _one_of(("auto", "cpu", "cuda")) = Field(
        "auto", description="auto (CUDA if available), cpu or cuda"
    )
    bf16: bool = Field(True, description="autocast to bf16 on CUDA (ignored on CPU; false: fp32)")
    precision: _one_of(("auto", "fp32", "bf16", "fp16")) = Field(
        "auto",
        description="auto (CUDA: bf16 if supported, else fp16 with GradScaler; CPU: fp32), fp32, bf16 "
        "or fp16",
    )
    threads: int | None = Field(
        None, description="torch intra-op threads on CPU (null: torch's default)", ge=1
    )
    log_every: int = Field(10, description="steps between log.csv rows", ge=1)
    checkpoint_every: int = Field(
        0, description="steps between mid-epoch checkpoints (0: at epoch ends only)", ge=0
    )
    keep_checkpoints: int = Field(2, description="newest checkpoints kept (0: all)", ge=0)
    analysis_videos: int = Field(
        16, description="training videos whose affinity and clip predictions are saved", ge=0
    )
    max_steps: int | None = Field(
        None, description="stop after this many steps, unfinished (tests of resume)", ge=0
    )
    progress: bool = Field(True, description="show a progress bar")


class Config(BaseModel):
    """A whole run configuration: its sections. A missing, null or empty section takes the defaults."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSection = Field(default_factory=ModelSection)
    method: MethodConfig = Field(default_factory=MethodConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, values: Any) -> Any:
        """A section given as null, ``{}`` (or any empty value) takes its defaults."""
        if not isinstance(values, dict):
            return values
        return {k: {} if k in cls.model_fields and not v else v for k, v in values.items()}

    def to_dict(self) -> dict:
        return self.model_dump()

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


# -- pydantic errors as ConfigError ------------------------------------------------------------------------
#: Errors of a value of the right type: reported after every type error, in key order.
_RANGE_ERRORS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "finite_number",
    "literal_error",
}


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _config_error(error: ValidationError, values: Any) -> ConfigError:
    """The first problem of a failed validation, named by its dotted key.

    Which one is first follows the hand-written checks this replaced: wrong structure and types first (in the
    order of the input, unknown keys of a mapping before its values), then ranges and choices in key order.
    """
    problems = [_problem(e, values) for e in error.errors(include_url=False)]
    return min(problems, key=lambda p: p[0])[1]


_MISSING = object()


def _problem(err: dict, values: Any) -> tuple[tuple, ConfigError]:
    """``(sort key, ConfigError)`` of one pydantic error of :class:`Config` given ``values``."""
    owner: type[BaseModel] | None = Config  # whose keys the next part of the location names
    field: FieldInfo | None = None
    names: list[str] = []
    given, rank = values, []  # what the input holds there, and where it is in the input
    # down to the key: a section, then its field; nothing deeper (list indices, members of a union)
    for part in err["loc"]:
        if owner is None or not isinstance(part, str) or part not in owner.model_fields:
            break
        field = owner.model_fields[part]
        names.append(part)
        rank.append((1, _position(given, part)))
        given = given.get(part, _MISSING) if isinstance(given, dict) else _MISSING
        owner = field.annotation if _is_section(field.annotation) else None
    kind, value = err["type"], err["input"]
    key = ".".join(names)
    if kind == "extra_forbidden":
        extra = str(err["loc"][len(rank)])
        known = ", ".join(sorted(owner.model_fields)) if owner is not None else ""
        rank.append((0, _position(given, extra)))
        return (0, rank), ConfigError(f"{key}.{extra}" if key else extra, f"unknown key (known: {known})")
    if owner is not None:  # the whole configuration, or one section, is not a mapping
        return (0, rank), ConfigError(key, f"expected a mapping, got {type(value).__name__}")
    if kind not in _RANGE_ERRORS:  # a value of the wrong type (named whole: a list, not its element)
        value = value if given is _MISSING else given
        tp = _type_name(field.annotation)
        return (0, rank), ConfigError(key, f"expected {tp}, got {value!r} ({type(value).__name__})")
    order = (1, _KEY_ORDER.get(key, len(_KEY_ORDER)))
    if kind == "finite_number":
        return order, ConfigError(key, f"must be a finite number, got {value}")
    if kind == "literal_error":
        return order, ConfigError(key, f"must be one of {list(_choices(field.annotation))}, got {value!r}")
    return order, ConfigError(key, f"must be {_bounds(key_bounds(field))}, got {_typed(field, value)}")


def _position(values: Any, name: str) -> int:
    return list(values).index(name) if isinstance(values, dict) and name in values else len(_KEY_ORDER)


def _typed(field: FieldInfo, value: Any) -> Any:
    """An out-of-range value as the key holds it (``-1`` given for a float key is ``-1.0``)."""
    try:
        return TypeAdapter(field.annotation, config=ConfigDict(strict=True)).validate_python(value)
    except ValidationError:
        return value


# -- keys and their description ------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    """``int``, ``str | None``, ``list[float]``...: a key's type as ``--help`` prints it (a choice by the
    type of its values)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(dict.fromkeys(type(a).__name__ for a in args))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return "None" if tp is type(None) else tp.__name__


def _choices(tp: Any) -> tuple | None:
    """The values a choice key (or each element of a list of choices) may take, or ``None``."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    for arg in typing.get_args(tp):
        if (found := _choices(arg)) is not None:
            return found
    return None


def key_bounds(field: FieldInfo) -> dict[str, float]:
    """A key's range: ``{"ge": 0, "le": 1}``..., from its ``Field(ge=..., ...)``."""
    return {
        name: getattr(m, name)
        for m in field.metadata
        for name in ("ge", "gt", "le", "lt")
        if getattr(m, name, None) is not None
    }


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _bounds(limits: typing.Mapping) -> str | None:
    """``">= 1"``, ``"> 0"``, ``"in [0, 1]"``, ``"in [0, 1)"``... of a key's bounds, or ``None``."""
    ge, gt, le, lt = (limits.get(k) for k in ("ge", "gt", "le", "lt"))
    low = f"[{_number(ge)}" if ge is not None else f"({_number(gt)}" if gt is not None else None
    high = f"{_number(le)}]" if le is not None else f"{_number(lt)})" if lt is not None else None
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f"{'>=' if ge is not None else '>'} {low[1:]}"
    if high:
        return f"{'<=' if le is not None else '<'} {high[:-1]}"
    return None


def iter_keys(cls: type[BaseModel] | None = None, prefix: str = "") -> Iterator[tuple[str, FieldInfo, Any]]:
    """``(dotted key, pydantic field, type)`` of every configuration key, in declaration order."""
    for name, f in (cls or Config).model_fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if _is_section(f.annotation):
            yield from iter_keys(f.annotation, dotted)
        else:
            yield dotted, f, f.annotation


#: Dotted key -> its place in the declaration (ranges and choices are reported in this order).
_KEY_ORDER = {name: i for i, (name, _, _) in enumerate(iter_keys())}


def describe_keys() -> str:
    """Every key with its type, default, allowed values and meaning: the text of ``train --help``."""
    defaults = Config().to_dict()
    lines = []
    section = None
    for name, f, tp in iter_keys():
        head, key = name.split(".")
        if head != section:
            section = head
            doc = (Config.model_fields[head].annotation.__doc__ or "").strip().splitlines()[0]
            lines.append(f"\n{head}:  {doc}")
        allowed = []
        if (choices := _choices(tp)) is not None:
            allowed.append("one of " + ", ".join(map(str, choices)))
        if bounds := _bounds(key_bounds(f)):
            allowed.append(bounds)
        extra = f" ({'; '.join(allowed)})" if allowed else ""
        lines.append(f"  {name}: {_type_name(tp)} = {json.dumps(defaults[head][key])}")
        lines.append(f"      {f.description or ''}{extra}")
    return "\n".join(lines)


# -- loading and validation ------------------------------------------------------------------------------
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


def build_config(values: Any) -> Config:
    """A :class:`Config` from nested values, each key checked on its own (type, range, choices) but not
    :func:`validate` (e.g. for showing a configuration whose data is on another machine)."""
    try:
        return Config.model_validate(values)
    except ValidationError as e:
        raise _config_error(e, values) from None


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
    cfg = build_config(values)
    validate(cfg)
    return cfg


def config_from_dict(values: dict) -> Config:
    cfg = build_config(values)
    validate(cfg)
    return cfg


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {list(allowed)}, got {value!r}")


def validate(cfg: Config) -> None:
    """Check every key again (attribute assignment is not checked), then what one key alone cannot: clip
    counts, combinations of keys, paths. Raises :class:`ConfigError`."""
    build_config(cfg.to_dict())
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
