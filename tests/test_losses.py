"""Eq. 8 and its parts, checked against hand-written formulas, and where each loss term sends gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from siasamrea.method.losses import (
    SiaSamReaLoss,
    clip_probabilities,
    gt_loss,
    pairwise_hinge,
    siamese_loss,
    soft_label_gt_loss,
)
from siasamrea.method.model import ClipOutputs
from siasamrea.method.reasoning import SiameseReasoner, siamese_affinity, soft_label

OE, MC, COUNT = "open_ended", "multiple_choice", "count"


def test_pairwise_hinge_against_loop():
    scores = torch.randn(6, 5, dtype=torch.float64) * 2
    target = torch.tensor([0, 4, 2, 2, 1, 3])
    expected = 0.0
    for q in range(6):
        pos = float(scores[q, target[q]])
        expected += sum(max(0.0, 1.0 - (pos - float(scores[q, m]))) for m in range(5) if m != int(target[q]))
    assert math.isclose(float(pairwise_hinge(scores, target)), expected / 6, rel_tol=1e-12)
    # a correct candidate ahead of every other by more than the margin costs nothing
    s = torch.tensor([[5.0, 1.0, 0.0, -1.0]])
    assert float(pairwise_hinge(s, torch.tensor([0]))) == 0.0
    # a wrong ranking costs 1 + gap per violated pair: (1 - (1 - 5)) + (1 - (1 - 0)) + (1 - (1 + 1)) clipped
    assert math.isclose(
        float(pairwise_hinge(s, torch.tensor([1]))), 5.0 + 0.0 + 0.0 + 1.0 - 1.0, rel_tol=1e-6
    )


def test_gt_losses():
    logits = torch.randn(4, 7)
    y = torch.tensor([1, 0, 6, 3])
    manual = -sum(float(logits[i].log_softmax(-1)[y[i]]) for i in range(4)) / 4
    assert math.isclose(float(gt_loss(OE, logits, y)), manual, rel_tol=1e-6)
    pred, cnt = torch.tensor([1.0, 2.5, 4.0]), torch.tensor([1, 3, 7])
    assert math.isclose(float(gt_loss(COUNT, pred, cnt)), (0 + 0.25 + 9) / 3, rel_tol=1e-6)
    with pytest.raises(ValueError, match="unknown task kind"):
        gt_loss("ranking", logits, y)


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_siamese_loss_is_cross_entropy_with_soft_label(tau):
    q = torch.randn(3, 6).softmax(-1)
    anchor = torch.randn(3, 6)
    manual = 0.0
    for v in range(3):
        log_p = (anchor[v] / tau).log_softmax(-1)
        manual += -float((q[v] * log_p).sum())
    assert math.isclose(float(siamese_loss(OE, q, anchor, tau)), manual / 3 * tau**2, rel_tol=1e-6)
    # count: MSE between the anchor's scalar and the combined scalar
    assert math.isclose(
        float(siamese_loss(COUNT, torch.tensor([[2.0], [5.0]]), torch.tensor([3.0, 1.0]))),
        (1 + 16) / 2,
        rel_tol=1e-6,
    )


def test_soft_label_gt_loss():
    q = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = torch.tensor([0, 1])
    assert math.isclose(
        float(soft_label_gt_loss(OE, q, y)), -(math.log(0.7) + math.log(0.1)) / 2, rel_tol=1e-6
    )


def _outputs(kind, v=3, n=4, k=5, d=6):
    feats = torch.randn(v, n, d, requires_grad=True)
    shape = (v, n) if kind == COUNT else (v, n, k)
    logits = torch.randn(*shape, requires_grad=True)
    target = torch.rand(v) * 5 if kind == COUNT else torch.randint(0, k, (v,))
    return ClipOutputs(features=feats, logits=logits, kind=kind), target


@pytest.mark.parametrize("kind", [OE, MC, COUNT])
def test_total_loss_value_against_equations(kind):
    torch.manual_seed(1)
    out, y = _outputs(kind)
    loss = SiaSamReaLoss(SiameseReasoner(4, 6), alpha=0.7)
    with torch.no_grad():
        loss.reasoner.w1_logits.copy_(torch.randn(4))
        loss.reasoner.w2_logits.copy_(torch.randn(4))
    res = loss(out, y)
    # recompute from the equations independently of SiaSamReaLoss
    a = siamese_affinity(out.features)
    p = out.logits.unsqueeze(-1) if kind == COUNT else out.logits.softmax(-1)
    w1, w2 = loss.reasoner.w1_logits.softmax(-1), loss.reasoner.w2_logits.softmax(-1)
    q = soft_label(a, p, w1, w2, 0.5)
    anchor = out.logits[:, 0]
    if kind == OE:
        l_gt = F.cross_entropy(anchor, y)
        l_sia = -(q * anchor.log_softmax(-1)).sum(-1).mean()
    elif kind == MC:
        l_gt = pairwise_hinge(anchor, y)
        l_sia = -(q * anchor.log_softmax(-1)).sum(-1).mean()
    else:
        l_gt = ((anchor - y) ** 2).mean()
        l_sia = ((anchor - q[:, 0]) ** 2).mean()
    torch.testing.assert_close(res.gt, l_gt)
    torch.testing.assert_close(res.siamese, l_sia)
    torch.testing.assert_close(res.total, 0.7 * l_sia + l_gt)
    torch.testing.assert_close(res.soft_label, q)


def test_baseline_and_gt_on_all():
    out, y = _outputs(OE)
    base = SiaSamReaLoss(None)(out, y)
    torch.testing.assert_close(base.total, F.cross_entropy(out.logits[:, 0], y))
    assert float(base.siamese) == 0.0
    every = SiaSamReaLoss(None, gt_on="all")(out, y)
    per_clip = torch.stack([F.cross_entropy(out.logits[:, c], y) for c in range(4)]).mean()
    torch.testing.assert_close(every.total, per_clip)


def _grads(loss_value, tensors):
    gs = torch.autograd.grad(loss_value, tensors, retain_graph=True, allow_unused=True)
    return [None if g is None or float(g.abs().sum()) == 0.0 else g for g in gs]


@pytest.mark.parametrize("kind", [OE, MC, COUNT])
@pytest.mark.parametrize(
    "stop_gradient,weight_objective",
    [("none", "siamese"), ("target", "siamese"), ("target", "gt"), ("none", "gt")],
)
def test_gradients_reach_exactly_the_right_tensors(kind, stop_gradient, weight_objective):
    torch.manual_seed(2)
    out, y = _outputs(kind)
    reasoner = SiameseReasoner(4, 6, projection_dim=3)
    loss = SiaSamReaLoss(reasoner, stop_gradient=stop_gradient, weight_objective=weight_objective)
    res = loss(out, y)
    w = [reasoner.w1_logits, reasoner.w2_logits]
    g_proj = list(reasoner.projection.parameters())

    # L_siamese
    g_logits, g_feats, g_w1, g_w2, *g_p = _grads(res.siamese, [out.logits, out.features, *w, *g_proj])
    assert g_logits is not None and g_logits[:, 0].abs().sum() > 0  # the anchor is always distilled
    live_target = stop_gradient == "none"
    assert (g_logits[:, 1:].abs().sum() > 0) == live_target  # siamese clips only through a live P
    assert (g_feats is not None) == live_target  # features only through a live Â
    assert all((g is not None) == live_target for g in g_p)  # projection g likewise
    by_siamese = weight_objective == "siamese"
    assert (g_w1 is not None) == by_siamese and (g_w2 is not None) == by_siamese

    # L_W (only with weight_objective="gt"): trains W1/W2 and nothing else
    if weight_objective == "gt":
        g_logits, g_feats, g_w1, g_w2, *g_p = _grads(res.weights, [out.logits, out.features, *w, *g_proj])
        assert g_w1 is not None and g_w2 is not None
        assert g_logits is None and g_feats is None and all(g is None for g in g_p)
    else:
        assert float(res.weights) == 0.0

    # L_gt on the anchor only
    g_logits, g_feats, g_w1, g_w2 = _grads(res.gt, [out.logits, out.features, *w])
    assert g_logits[:, 0].abs().sum() > 0 and g_logits[:, 1:].abs().sum() == 0
    assert g_feats is None and g_w1 is None and g_w2 is None


def test_temperature_softens_probabilities():
    logits = torch.tensor([[[4.0, 0.0, -4.0]]])
    p1 = clip_probabilities(OE, logits, 1.0)
    p4 = clip_probabilities(OE, logits, 4.0)
    assert float(p4.max()) < float(p1.max())
    torch.testing.assert_close(p4, (logits / 4).softmax(-1))


def test_bad_options_name_the_option():
    for kw, name in (
        ({"gt_on": "some"}, "gt_on"),
        ({"stop_gradient": "all"}, "stop_gradient"),
        ({"weight_objective": "x"}, "weight_objective"),
        ({"temperature": 0}, "temperature"),
    ):
        with pytest.raises(ValueError, match=name):
            SiaSamReaLoss(None, **kw)
