"""Siamese knowledge generation and reasoning against an independent, loop-by-loop reading of Eq. 1–5."""

import math

import pytest
import torch

from siasamrea.method.reasoning import SiameseReasoner, average_affinity, siamese_affinity, soft_label


def reference_affinity(f):
    """Eq. 1–2 written element by element in float64 Python: f is a list of N feature lists."""
    n = len(f)
    norm = [math.sqrt(sum(x * x for x in v)) for v in f]
    a = [
        [sum(x * y for x, y in zip(f[i], f[j], strict=True)) / (norm[i] * norm[j]) for j in range(n)]
        for i in range(n)
    ]
    out = []
    for i in range(n):
        z = sum(math.exp(a[i][j]) for j in range(n) if j != i)
        out.append([0.0 if j == i else math.exp(a[i][j]) / z for j in range(n)])
    return out


def reference_soft_label(a_hat, p, w1, w2, omega):
    """Eq. 5: Q(k) = ω Σ_i w1_i Σ_j Â(i,j) P(j,k) + (1-ω) Σ_i w2_i P(i,k)."""
    n, k = len(p), len(p[0])
    return [
        omega * sum(w1[i] * sum(a_hat[i][j] * p[j][c] for j in range(n)) for i in range(n))
        + (1 - omega) * sum(w2[i] * p[i][c] for i in range(n))
        for c in range(k)
    ]


@pytest.mark.parametrize("n,d", [(2, 3), (5, 8), (9, 16), (13, 4)])
def test_affinity_matches_equations(n, d):
    f = torch.randn(n, d, dtype=torch.float64) * 3
    got = siamese_affinity(f)
    ref = torch.tensor(reference_affinity(f.tolist()), dtype=torch.float64)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert bool((got.diagonal() == 0).all())  # exactly zero, not just small
    torch.testing.assert_close(got.sum(-1), torch.ones(n, dtype=torch.float64))


def test_affinity_batched_and_scale_invariant():
    f = torch.randn(4, 6, 10, dtype=torch.float64)
    batched = siamese_affinity(f)
    for v in range(4):
        torch.testing.assert_close(batched[v], siamese_affinity(f[v]))
    # L2 normalisation: rescaling a clip's feature does not change Â
    scaled = f.clone()
    scaled[:, 2] *= 17.0
    torch.testing.assert_close(siamese_affinity(scaled), batched)


def test_affinity_prefers_similar_clips():
    base = torch.randn(8)
    f = torch.stack([base, base + 0.01 * torch.randn(8), -base, torch.randn(8)])
    a = siamese_affinity(f)
    assert int(a[0].argmax()) == 1 and int(a[0, 1:].argmin()) + 1 == 2  # the diagonal (0) is not a clip


def test_affinity_needs_two_clips():
    with pytest.raises(ValueError, match="at least 2 clips"):
        siamese_affinity(torch.randn(1, 4))


def test_average_affinity():
    for n in (2, 3, 9):
        a = average_affinity(n)
        assert bool((a.diagonal() == 0).all())
        off = a[~torch.eye(n, dtype=torch.bool)]
        torch.testing.assert_close(off, torch.full_like(off, 1 / (n - 1)))
        torch.testing.assert_close(a.sum(-1), torch.ones(n))


@pytest.mark.parametrize("omega", [0.0, 0.5, 0.3, 1.0])
def test_soft_label_matches_equation(omega):
    n, k = 6, 7
    f = torch.randn(n, 5, dtype=torch.float64)
    a = siamese_affinity(f)
    p = torch.randn(n, k, dtype=torch.float64).softmax(-1)
    w1 = torch.randn(n, dtype=torch.float64).softmax(-1)
    w2 = torch.randn(n, dtype=torch.float64).softmax(-1)
    q = soft_label(a, p, w1, w2, omega)
    ref = torch.tensor(
        reference_soft_label(a.tolist(), p.tolist(), w1.tolist(), w2.tolist(), omega), dtype=torch.float64
    )
    torch.testing.assert_close(q, ref, rtol=1e-12, atol=1e-12)
    assert q.shape == (k,)
    assert math.isclose(float(q.sum()), 1.0, rel_tol=1e-12)


def test_soft_label_batch_dimension():
    v, n, k = 3, 4, 5
    a = siamese_affinity(torch.randn(v, n, 8))
    p = torch.randn(v, n, k).softmax(-1)
    w1, w2 = torch.randn(n).softmax(-1), torch.randn(n).softmax(-1)
    q = soft_label(a, p, w1, w2, 0.5)
    assert q.shape == (v, k)
    for i in range(v):
        torch.testing.assert_close(q[i], soft_label(a[i], p[i], w1, w2, 0.5))
    # per-video weights broadcast too
    w1b = torch.randn(v, n).softmax(-1)
    qb = soft_label(a, p, w1b, w2, 0.5)
    torch.testing.assert_close(qb[1], soft_label(a[1], p[1], w1b[1], w2, 0.5))


def test_reasoner_initial_weights_uniform_and_q_is_distribution():
    r = SiameseReasoner(5, 8)
    w1, w2 = r.weights()
    torch.testing.assert_close(w1, torch.full((5,), 0.2))
    torch.testing.assert_close(w2, torch.full((5,), 0.2))
    out = r(torch.randn(2, 5, 8), torch.randn(2, 5, 11).softmax(-1))
    torch.testing.assert_close(out.soft_label.sum(-1), torch.ones(2))
    assert out.affinity.shape == (2, 5, 5)


def test_reasoner_average_mode_uses_average_affinity():
    r = SiameseReasoner(4, 8, affinity="average")
    feats, p = torch.randn(3, 4, 8), torch.randn(3, 4, 6).softmax(-1)
    out = r(feats, p)
    for v in range(3):
        torch.testing.assert_close(out.affinity[v], average_affinity(4))
        expected = soft_label(average_affinity(4), p[v], torch.full((4,), 0.25), torch.full((4,), 0.25), 0.5)
        torch.testing.assert_close(out.soft_label[v], expected)


def test_w1_w2_switches():
    full = SiameseReasoner(4, 8)
    no_w1 = SiameseReasoner(4, 8, learn_w1=False)
    no_w2 = SiameseReasoner(4, 8, learn_w2=False)
    none = SiameseReasoner(4, 8, learn_w1=False, learn_w2=False)
    names = lambda m: sorted(n for n, _ in m.named_parameters())  # noqa: E731
    assert names(full) == ["w1_logits", "w2_logits"]
    assert names(no_w1) == ["w2_logits"] and names(no_w2) == ["w1_logits"] and names(none) == []
    # a fixed weight stays uniform through training steps; a learnable one moves
    feats, p = torch.randn(2, 4, 8), torch.randn(2, 4, 3).softmax(-1)
    for m in (full, no_w1):
        opt = torch.optim.SGD(m.parameters(), lr=1.0)
        for _ in range(3):
            out = m(feats, p)
            (-(out.soft_label[:, 0]).log().mean()).backward()
            opt.step()
            opt.zero_grad()
    w1, w2 = no_w1.weights()
    torch.testing.assert_close(w1, torch.full((4,), 0.25))
    assert not torch.allclose(w2, torch.full((4,), 0.25))
    fw1, _ = full.weights()
    assert not torch.allclose(fw1, torch.full((4,), 0.25))


def test_projection_g_changes_affinity_and_is_learnable():
    r = SiameseReasoner(3, 8, projection_dim=4)
    feats = torch.randn(2, 3, 8)
    out = r(feats, torch.randn(2, 3, 5).softmax(-1))
    torch.testing.assert_close(out.affinity, siamese_affinity(r.projection(feats)))
    assert any(n.startswith("projection") for n, _ in r.named_parameters())


def test_reasoner_rejects_bad_arguments():
    with pytest.raises(ValueError, match="omega"):
        SiameseReasoner(3, omega=1.5)
    with pytest.raises(ValueError, match="affinity"):
        SiameseReasoner(3, affinity="max")
    with pytest.raises(ValueError, match="N=3"):
        SiameseReasoner(3)(torch.randn(1, 4, 2), torch.randn(1, 4, 2))
