"""BatchNorm folded into the convolutions (siasamrea.method.folded_resnet): the same function and the same
gradients as transformers' own ResNet forward, folded only where BatchNorm is a fixed affine map."""

import copy

import pytest
import torch
from torch import nn
from transformers import ResNetConfig, ResNetModel

from siasamrea.method.folded_resnet import foldable, forward_parts
from siasamrea.method.model import ClipBertVQA, ModelConfig, use_small_stem

HEADS = {"oe": {"kind": "open_ended", "num_answers": 11}}


def parts_of(resnet: ResNetModel) -> list[nn.Module]:
    return [resnet.embedder, *resnet.encoder.stages]


def randomise_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters far from the identity, so an unfolded BN would show."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g))
            m.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.2)
            with torch.no_grad():
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))


def assert_same_function(out: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float32 rounding, relative to the output's scale: the randomised statistics make outputs of
    magnitude ~10-50, and the summation order of folded weights differs (thread counts change it too)."""
    assert out.shape == expected.shape
    err = (out - expected).abs().max()
    assert err <= 5e-5 * expected.abs().max(), f"max |diff| {float(err):.3g}"


def resnet(layer_type: str, stem: str) -> ResNetModel:
    torch.manual_seed(0)
    cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32], depths=[2, 1, 2], layer_type=layer_type,
                       downsample_in_first_stage=True)  # fmt: skip
    model = ResNetModel(cfg)
    if stem == "small":
        use_small_stem(model)
    randomise_batchnorm(model)
    return model.eval()


@pytest.mark.parametrize("layer_type", ["basic", "bottleneck"])
@pytest.mark.parametrize("stem", ["small", "imagenet"])
def test_folded_eval_forward_equals_transformers_resnet(layer_type, stem):
    model = resnet(layer_type, stem)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).last_hidden_state
        folded = forward_parts(parts_of(model), x)
        # the statistics matter: with BatchNorm as the identity the output is far from the expected one
        plain = copy.deepcopy(model)
        for m in plain.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()
        unnormalised = plain(x).last_hidden_state
    assert_same_function(folded, expected)
    assert (unnormalised - expected).abs().max() > 0.1


def test_only_the_frozen_prefix_is_folded_and_gradients_are_unchanged():
    """In training with freeze_at 2 the stem and first stage run folded; the rest runs as usual, so its
    gradients and its BatchNorm statistics updates are those of the unfolded model."""
    torch.manual_seed(0)
    folded = ClipBertVQA(ModelConfig(heads=HEADS, freeze_at=2, stem="small"))
    randomise_batchnorm(folded.vision)
    reference = copy.deepcopy(folded)
    folded.train()
    reference.train()
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    grid = folded._frame_grid(x)
    with torch.no_grad():  # reference: transformers' forward of the same weights
        xr = (x.float() / 255 - reference.pixel_mean) / reference.pixel_std
    ref_grid = reference.vision(xr).last_hidden_state
    assert_same_function(grid.detach(), ref_grid.detach())
    grid.square().sum().backward()
    ref_grid.square().sum().backward()
    pairs = zip(folded.vision.named_parameters(), reference.vision.named_parameters(), strict=True)
    for (name, p), (_, q) in pairs:
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            # float rounding: elementwise tolerances fail on gradient entries that nearly cancel
            assert (p.grad - q.grad).norm() <= 1e-4 * q.grad.norm(), name
    stage2 = folded.vision.encoder.stages[1].layers[0].layer[0].normalization
    ref_stage2 = reference.vision.encoder.stages[1].layers[0].layer[0].normalization
    assert_same_function(stage2.running_mean, ref_stage2.running_mean)
    assert folded.vision.encoder.stages[0].layers[0].layer[0].convolution.weight.grad is None


def test_foldable_needs_eval_mode_batchnorm_and_no_gradient():
    model = resnet("basic", "small")
    stem, stage = model.embedder, model.encoder.stages[0]
    x = torch.randn(2, 3, 32, 32)
    assert not foldable(stem, x)  # trainable parameters and grad enabled: the backward needs the BN
    with torch.no_grad():
        assert foldable(stem, x)
    stem.requires_grad_(False)
    assert foldable(stem, x)
    assert not foldable(stem, x.requires_grad_())  # a gradient with respect to the pixels is wanted
    stage.requires_grad_(False)
    stage.train()  # batch statistics: not an affine map
    with torch.no_grad():
        assert not foldable(stage, x)


def test_train_mode_and_unknown_parts_run_unfolded_or_raise():
    model = resnet("basic", "small").train()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():  # BN in train mode is not folded: identical to the module's own forward
        torch.testing.assert_close(forward_parts(parts_of(model), x), model(x).last_hidden_state)
    odd = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with torch.no_grad(), pytest.raises(TypeError, match="Sequential"):
        forward_parts([odd], x)
