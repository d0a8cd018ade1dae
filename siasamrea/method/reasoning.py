"""Siamese knowledge generation (Eq. 1–2) and siamese knowledge reasoning (Eq. 3–5).

Notation (paper Sec. 3): a video gives N clip-text samples, row 0 the anchor. ``f`` are their multimodal
[CLS] features, ``P ∈ R^{N×K}`` their predicted probabilities.

* Eq. 1: ``A(i, j) = σ(g(f_i))ᵀ σ(g(f_j))``, σ the L2 normalisation, g an optional projection
  (identity by default: the paper writes ``F`` for "the feature extractor under training", which the
  features already are).
* ``A ← A ⊙ (1 − I)`` and Eq. 2: ``Â(i, j) = exp(A(i, j)) / Σ_{j≠i} exp(A(i, j))`` with ``Â(i, i) = 0``.
  We implement the diagonal removal by masking it out of the softmax, which is exactly Eq. 2.
* Eq. 5: ``Q = ω W1 Â P + (1 − ω) W2 P`` with ``W1, W2 ∈ R^{1×N}``. The paper requires ``Σ_k Q(k) = 1``;
  that holds for any ``ω ∈ [0, 1]`` iff ``W1 Â P`` and ``W2 P`` are themselves distributions, i.e. iff the
  weights are convex combinations. So W1 and W2 are kept as logits and used through a softmax (uniform at
  initialisation, where Q is the plain average of the two terms).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from siasamrea.core.choices import AFFINITY_MODES


def _check_num_clips(n: int) -> None:
    if n < 2:
        raise ValueError(f"siamese knowledge needs at least 2 clips (anchor + 1 siamese), got N={n}")


def siamese_affinity(features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Eq. 1–2: the row-normalised, diagonal-free affinity Â between the N clips of a video.

    Args:
        features: ``[..., N, D]`` clip-text features (already projected by g if g is used).
        temperature: divides the cosine similarities before the softmax (1.0 = the paper).

    Returns:
        ``[..., N, N]``; each row sums to 1 over ``j ≠ i``; the diagonal is exactly 0.
    """
    n = features.shape[-2]
    _check_num_clips(n)
    z = F.normalize(features, p=2, dim=-1)
    sim = z @ z.transpose(-1, -2) / temperature  # [..., N, N], cosine similarities
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    return sim.masked_fill(eye, float("-inf")).softmax(dim=-1)


def average_affinity(num_clips: int, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """The "w/ SKR" ablation's affinity: ``Â(i, j) = 1/(N−1)`` for ``j ≠ i``, 0 on the diagonal.

    Returns:
        ``[N, N]`` (dtype and device of ``like`` when given).
    """
    _check_num_clips(num_clips)
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    a = torch.full((num_clips, num_clips), 1.0 / (num_clips - 1), **kw)
    return a.fill_diagonal_(0.0)


def soft_label(
    affinity: torch.Tensor,
    probs: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    omega: float | torch.Tensor,
) -> torch.Tensor:
    """Eq. 5: ``Q = ω W1 Â P + (1 − ω) W2 P``.

    Args:
        affinity: ``[..., N, N]`` Â (rows sum to 1).
        probs: ``[..., N, K]`` P (rows sum to 1; for count questions K = 1 and the rows are the scalars).
        w1, w2: ``[..., N]`` or ``[N]`` weights over the clips (each sums to 1).
        omega: ω ∈ [0, 1].

    Returns:
        ``[..., K]`` the soft label Q (sums to 1 when the inputs are distributions).
    """
    # Q = (ω W1 Â + (1 − ω) W2) P: one weight per clip, then one product with P. Identical to forming W1 Â P
    # (Eq. 3–4) and W2 P separately, in fewer and smaller operations (measured: 0.66 -> 0.50 ms per step).
    clip_weights = omega * (w1.unsqueeze(-2) @ affinity).squeeze(-2) + (1.0 - omega) * w2  # [..., N]
    return (clip_weights.unsqueeze(-2) @ probs).squeeze(-2)


@dataclass
class ReasoningOutput:
    """What :class:`SiameseReasoner` produces for a batch of V videos with N clips and K classes."""

    affinity: torch.Tensor  # [V, N, N] Â
    soft_label: torch.Tensor  # [V, K] Q
    w1: torch.Tensor  # [N] softmax(W1 logits)
    w2: torch.Tensor  # [N]


class SiameseReasoner(nn.Module):
    """Owns the training-only parameters of the reasoning strategy: W1, W2 and the optional projection g.

    This module is not part of the inference model (the paper: no extra parameters at inference).

    Args:
        num_clips: N.
        feature_dim: D of the clip features (needed only for the projection g).
        omega: ω of Eq. 5 (paper: 0.5).
        affinity: ``"siamese"`` (Eq. 1–2, "w/ SKG+SKR") or ``"average"`` (1/(N−1), "w/ SKR").
        learn_w1, learn_w2: learn W1 / W2 (paper) or keep them fixed at uniform (the W1/W2 ablation).
        projection_dim: if set, g is a learnable linear map ``D -> projection_dim`` (default: identity).
        affinity_temperature: temperature of the affinity softmax (1.0 = the paper).
    """

    def __init__(
        self,
        num_clips: int,
        feature_dim: int | None = None,
        *,
        omega: float = 0.5,
        affinity: str = "siamese",
        learn_w1: bool = True,
        learn_w2: bool = True,
        projection_dim: int | None = None,
        affinity_temperature: float = 1.0,
    ):
        super().__init__()
        _check_num_clips(num_clips)
        if affinity not in AFFINITY_MODES:
            raise ValueError(f"affinity must be one of {AFFINITY_MODES}, got {affinity!r}")
        if not 0.0 <= omega <= 1.0:
            raise ValueError(f"omega must be in [0, 1], got {omega}")
        if affinity_temperature <= 0:
            raise ValueError(f"affinity_temperature must be > 0, got {affinity_temperature}")
        self.num_clips = num_clips
        self.omega = omega
        self.affinity_mode = affinity
        self.affinity_temperature = affinity_temperature
        # Zeros are uniform weights after the softmax. Fixed weights are buffers, so they stay out of the
        # optimiser and the parameter count, yet move with .to(device).
        for name, learn in (("w1_logits", learn_w1), ("w2_logits", learn_w2)):
            if learn:
                self.register_parameter(name, nn.Parameter(torch.zeros(num_clips)))
            else:
                self.register_buffer(name, torch.zeros(num_clips))
        self.projection = None
        if projection_dim is not None:
            if feature_dim is None:
                raise ValueError("projection_dim needs feature_dim")
            self.projection = nn.Linear(feature_dim, projection_dim)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w1, w2)``, each ``[N]`` and summing to 1."""
        return self.w1_logits.softmax(-1), self.w2_logits.softmax(-1)

    def affinity(self, features: torch.Tensor) -> torch.Tensor:
        """Â for ``features [V, N, D]`` -> ``[V, N, N]``."""
        if self.affinity_mode == "average":
            a = average_affinity(features.shape[-2], like=features)
            return a.expand(*features.shape[:-2], -1, -1)
        g = features if self.projection is None else self.projection(features)
        return siamese_affinity(g, self.affinity_temperature)

    def forward(
        self,
        features: torch.Tensor,
        probs: torch.Tensor,
        *,
        detach_inputs: bool = False,
        detach_weights: bool = False,
    ) -> ReasoningOutput:
        """Â and Q for a batch of videos.

        Args:
            features: ``[V, N, D]`` clip features, row 0 the anchor.
            probs: ``[V, N, K]`` clip predictions P.
            detach_inputs: compute Q from detached P and Â (stop-gradient into the network and into g,
                which is then trained by nothing: use a projection only with a live target).
            detach_weights: compute Q with detached W1/W2 (they then get no gradient from Q).

        Returns:
            :class:`ReasoningOutput`.
        """
        if features.shape[-2] != self.num_clips or probs.shape[-2] != self.num_clips:
            raise ValueError(
                f"reasoner built for N={self.num_clips} clips, got features {tuple(features.shape)} and "
                f"probs {tuple(probs.shape)}"
            )
        a = self.affinity(features)
        if detach_inputs:
            # Â and P become constants: no gradient into the network, nor into the projection g.
            a, probs = a.detach(), probs.detach()
        w1, w2 = self.weights()
        if detach_weights:
            w1, w2 = w1.detach(), w2.detach()
        q = soft_label(a, probs, w1, w2, self.omega)
        return ReasoningOutput(affinity=a, soft_label=q, w1=w1, w2=w2)
