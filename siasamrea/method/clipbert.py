"""Start from a ClipBERT checkpoint, as the paper does (Sec. 4.2: "the pretrained model trained on COCO and
Visual Genome Captions from ClipBERT as our initial weights").

ClipBERT (jayleicn/ClipBERT) saves ``torch.save(model.state_dict())`` of its ``ClipBert`` module
(``src/modeling/e2e_model.py``, ``src/utils/load_save.py``):

* ``cnn.feature.backbone.*``: detectron2's ResNet-50 (``src/modeling/grid_feat.py``, config
  ``R-50-grid.yaml``, MSRA weights: stride in the first 1x1 convolution of a bottleneck, FrozenBatchNorm,
  BGR input, 0-255 pixels minus the mean, std 1). Names: ``stem.conv1.weight``,
  ``stem.conv1.norm.{weight,bias,running_mean,running_var}``, ``res{2..5}.{i}.conv{1..3}[.norm].*``,
  ``res{k}.{i}.shortcut[.norm].*``.
* ``cnn.feature.roi_heads.*`` / ``cnn.feature.proposal_generator.*``: the detector's heads, unused by
  ClipBERT.
* ``cnn.grid_encoder.0.weight``: conv3x3 2048 -> 768 (then 2x2 max-pool and ReLU).
* ``transformer.bert.embeddings.*`` / ``transformer.bert.encoder.*``: BERT-base, ``transformers`` names.
* ``transformer.bert.visual_embeddings.{row,col}_position_embeddings`` (100 rows), ``token_type_embeddings``
  (1 row), ``LayerNorm``; its ``position_embeddings`` is defined but never used by ClipBERT's forward.
* ``transformer.bert.pooler.*``, ``transformer.cls.*`` (MLM/ITM heads), ``transformer.classifier.*``
  (task heads): not part of this model (heads are per task here and start fresh).

:func:`load_clipbert` maps these names onto :class:`~siasamrea.method.model.ClipBertVQA` built with
``visual_head="clipbert"`` and a bottleneck ResNet with ``downsample_in_bottleneck=True`` (the MSRA layout).
The model keeps RGB input: the stem convolution's input channels are reversed instead (BGR -> RGB), which
computes the same thing. Every source key that is not loaded and every model key left at its
initialisation is reported, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from siasamrea.method.model import ClipBertVisualEmbedding

#: ClipBERT's pixel normalisation: 0-255 pixels minus the ImageNet mean, std 1 (img_pixel_std in its configs).
CLIPBERT_PIXEL_STD = (1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0)

_BACKBONE = "cnn.feature.backbone."
_RES = re.compile(r"^res(\d)\.(\d+)\.(conv[123]|shortcut)(\.norm)?\.(\w+)$")
_STEM = re.compile(r"^stem\.conv1(\.norm)?\.(\w+)$")
_VISUAL = {
    "row_position_embeddings.weight": "visual.row.weight",
    "col_position_embeddings.weight": "visual.col.weight",
    "token_type_embeddings.weight": "visual.token_type.weight",
    "LayerNorm.weight": "visual.norm.weight",
    "LayerNorm.bias": "visual.norm.bias",
}
_UNUSED_PREFIXES = {
    "cnn.feature.roi_heads.": "detector head (unused by ClipBERT's grid features)",
    "cnn.feature.proposal_generator.": "detector RPN (unused by ClipBERT's grid features)",
    "cnn.feature.pixel_": "detectron2 pixel normalisation buffer (this model normalises itself)",
    "transformer.bert.pooler.": "BERT pooler (this model reads [CLS] directly)",
    "transformer.cls.": "ClipBERT's pretraining heads (MLM/ITM)",
    "transformer.classifier.": "ClipBERT's task head (heads here are per task and start fresh)",
    "transformer.bert.visual_embeddings.position_embeddings.": "defined but unused by ClipBERT's forward",
}


@dataclass
class ClipBertLoadReport:
    """What :func:`load_clipbert` did. ``unmatched_source``: ``{source key: reason}``; ``missing``: model
    keys not loaded (left at their initialisation); ``truncated``: position tables cut to ``max_grid``
    rows."""

    loaded: list[str] = field(default_factory=list)
    unmatched_source: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    shape_mismatch: dict[str, str] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["loaded"] = len(self.loaded)
        return out

    def __str__(self) -> str:
        lines = [f"{len(self.loaded)} tensors loaded from the ClipBERT checkpoint"]
        for k, why in sorted(self.unmatched_source.items()):
            lines.append(f"  not loaded: {k}: {why}")
        for k, why in sorted(self.shape_mismatch.items()):
            lines.append(f"  shape mismatch: {k}: {why}")
        lines += [f"  left at initialisation: {k}" for k in self.missing]
        return "\n".join(lines)


def _norm_param(name: str) -> str:
    return {"gamma": "weight", "beta": "bias"}.get(name, name)


def map_key(key: str) -> str | None:
    """The model key a ClipBERT key loads into, or ``None``.

    ``map_key("cnn.feature.backbone.res3.0.conv1.norm.running_var")`` is
    ``"vision.encoder.stages.1.layers.0.layer.0.normalization.running_var"``.
    """
    if key.startswith(_BACKBONE):
        rest = key[len(_BACKBONE) :]
        m = _STEM.match(rest)
        if m:
            part = "normalization" if m[1] else "convolution"
            return f"vision.embedder.embedder.{part}.{_norm_param(m[2])}"
        m = _RES.match(rest)
        if m:
            stage, block, conv, norm, param = int(m[1]) - 2, m[2], m[3], m[4], _norm_param(m[5])
            where = "shortcut" if conv == "shortcut" else f"layer.{int(conv[-1]) - 1}"
            part = "normalization" if norm else "convolution"
            return f"vision.encoder.stages.{stage}.layers.{block}.{where}.{part}.{param}"
        return None
    if key == "cnn.grid_encoder.0.weight":
        return "visual.grid_encoder.0.weight"
    for section in ("embeddings", "encoder"):
        prefix = f"transformer.bert.{section}."
        if key.startswith(prefix):
            rest = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key[len(prefix) :])
            rest = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", rest)
            return f"bert.{section}.{rest}"
    prefix = "transformer.bert.visual_embeddings."
    if key.startswith(prefix):
        rest = key[len(prefix) :].replace("LayerNorm.gamma", "LayerNorm.weight")
        return _VISUAL.get(rest.replace("LayerNorm.beta", "LayerNorm.bias"))
    return None


def _unmatched_reason(key: str) -> str:
    for prefix, why in _UNUSED_PREFIXES.items():
        if key.startswith(prefix):
            return why
    return "no counterpart in this model"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ClipBERT ``.pt`` (``weights_only=True``: no code is unpickled). Accepts a bare state
    dict or one under ``model_state_dict`` / ``model`` / ``state_dict``; strips DDP's ``module.`` prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ClipBERT checkpoint not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for wrapper in ("model_state_dict", "model", "state_dict"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict of tensors (got {type(obj).__name__})")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_clipbert(model: torch.nn.Module, source: str | Path | dict) -> ClipBertLoadReport:
    """Copy a ClipBERT checkpoint (a path or a state dict) into ``model`` in place; see the module docstring.

    Raises ``ValueError`` if ``model`` cannot hold ClipBERT's weights faithfully (linear visual head, or a
    ResNet whose bottleneck strides in the 3x3 convolution instead of the first 1x1 as MSRA's does).
    """

    if not isinstance(getattr(model, "visual", None), ClipBertVisualEmbedding):
        raise ValueError("a ClipBERT checkpoint needs model.visual_head: clipbert")
    vc = model.vision.config
    if vc.layer_type != "bottleneck" or not getattr(vc, "downsample_in_bottleneck", False):
        raise ValueError(
            "ClipBERT's ResNet-50 (detectron2, MSRA) strides in the first 1x1 convolution: set model.vision "
            "layer_type: bottleneck and downsample_in_bottleneck: true"
        )
    saved = read_state_dict(source) if not isinstance(source, dict) else source
    own = model.state_dict()
    report = ClipBertLoadReport()
    for key, tensor in saved.items():
        dst = map_key(key)
        if dst is None:
            report.unmatched_source[key] = _unmatched_reason(key)
            continue
        if dst not in own:
            report.unmatched_source[key] = f"maps to {dst}, which this model does not have"
            continue
        if dst == "vision.embedder.embedder.convolution.weight":
            tensor = tensor.flip(1)  # ClipBERT feeds BGR; this model feeds RGB: reverse the input channels
        target = own[dst]
        positions = dst in ("visual.row.weight", "visual.col.weight")
        if positions and tensor.shape[0] > target.shape[0] and tensor.shape[1:] == target.shape[1:]:
            tensor = tensor[: target.shape[0]]  # rows past max_grid are positions no grid reaches
            report.truncated.append(dst)
        if tensor.shape != target.shape:
            report.shape_mismatch[key] = (
                f"{tuple(tensor.shape)} in the checkpoint, {tuple(target.shape)} in {dst}"
            )
            continue
        own[dst] = tensor.to(target.dtype)
        report.loaded.append(dst)
    model.load_state_dict(own)
    filled = set(report.loaded)
    report.missing = sorted(k for k in own if k not in filled and not k.endswith("num_batches_tracked"))
    return report
