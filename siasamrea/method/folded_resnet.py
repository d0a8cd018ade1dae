"""A ResNet forward pass with BatchNorm folded into the convolutions where BatchNorm is a fixed affine map.

In eval mode (and in the parts ``model.freeze_at`` freezes, which stay in eval mode) a BatchNorm computes
``y = (x - mean) / sqrt(var + eps) * gamma + beta`` per channel, so a convolution followed by it is one
convolution with weight ``w * s`` and bias ``beta - mean * s``, ``s = gamma / sqrt(var + eps)``
(``torch.nn.utils.fusion.fuse_conv_bn_weights``). On the embedded default's 32-px frames the stem and the
first stage run at the highest resolutions, where the BatchNorm and ReLU passes over ``[F, 16, 32, 32]``
cost as much as the convolutions: folded (and the ReLU applied in place), the frozen stem + first stage
forward of 288 frames took 30 ms instead of 69 ms on one core. The folded weights are recomputed from the
module's own parameters and running statistics on every call (tiny tensors), so loading a checkpoint or
moving the model needs nothing else. Same function up to floating-point rounding, not bitwise.

Only transformers' ResNet building blocks (``ResNetEmbeddings``, ``ResNetStage`` of basic or bottleneck
layers) are understood; anything else raises rather than being run differently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from transformers.models.resnet.modeling_resnet import (
    ResNetBasicLayer,
    ResNetBottleNeckLayer,
    ResNetConvLayer,
    ResNetEmbeddings,
    ResNetShortCut,
    ResNetStage,
)


def foldable(part: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``part`` may run folded on ``x``: every BatchNorm in eval mode, and no gradient is wanted
    (grad disabled, or neither its parameters nor ``x`` require one)."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in part.modules()):
        return False
    if not torch.is_grad_enabled():
        return True
    return not x.requires_grad and not any(p.requires_grad for p in part.parameters())


def forward_parts(parts: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """``x`` through ``parts`` in order (a ResNet's embedder, then its stages), leading foldable parts folded.

    Args:
        parts: ``[embedder, stage 0, stage 1, ...]`` of a ``transformers`` ``ResNetModel``.
        x: ``[F, 3, H, W]`` normalised pixels.

    Returns:
        ``[F, C, h, w]``, the last part's output (``ResNetModel(x).last_hidden_state``).
    """
    i = 0
    if parts and foldable(parts[0], x):
        with torch.no_grad():
            while i < len(parts) and foldable(parts[i], x):
                x = _folded(parts[i], x)
                i += 1
    for part in parts[i:]:
        x = part(x)
    return x


def _folded(part: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(part, ResNetEmbeddings):
        return part.pooler(_conv_layer(part.embedder, x))
    if isinstance(part, ResNetStage):
        for layer in part.layers:
            x = _residual_layer(layer, x)
        return x
    raise TypeError(f"cannot fold BatchNorm in {type(part).__name__}: not a ResNet embedder or stage")


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    w, b = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    return conv._conv_forward(x, w, b)


def _activate(activation: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # x is a fresh tensor of this pass (no autograd here), so the ReLU may overwrite it.
    return torch.relu_(x) if isinstance(activation, nn.ReLU) else activation(x)


def _conv_layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(layer, ResNetConvLayer):
        raise TypeError(f"cannot fold BatchNorm in {type(layer).__name__}: expected a ResNetConvLayer")
    return _activate(layer.activation, _conv_bn(layer.convolution, layer.normalization, x))


def _residual_layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(layer, (ResNetBasicLayer, ResNetBottleNeckLayer)):
        raise TypeError(f"cannot fold BatchNorm in {type(layer).__name__}: not a basic or bottleneck layer")
    h = x
    for conv_layer in layer.layer:
        h = _conv_layer(conv_layer, h)
    if isinstance(layer.shortcut, ResNetShortCut):
        h += _conv_bn(layer.shortcut.convolution, layer.shortcut.normalization, x)
    elif isinstance(layer.shortcut, nn.Identity):
        h += x
    else:
        raise TypeError(f"cannot fold BatchNorm in a shortcut of type {type(layer.shortcut).__name__}")
    return _activate(layer.activation, h)
