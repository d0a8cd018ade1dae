"""The objective of Eq. 8, ``L = α · L_siamese + L_gt``, for open-ended, multiple-choice and count questions.

* ``L_gt`` (Sec. 3.4): cross-entropy over the answer vocabulary (open-ended); the summed pairwise hinge
  ``Σ_n max(0, 1 − (s_pos − s_n))`` over the negative candidates (multiple choice); MSE (count).
* ``L_siamese``: cross-entropy between the soft label Q and the anchor's prediction,
  ``−Σ_k Q(k) log p_anchor(k)``; for multiple choice P is the softmax over the candidate scores; for count
  the "soft label" is the same weighted combination of the clips' scalar predictions and the loss is MSE.

Open points the paper leaves to us (docs/method.md, "What the paper leaves open"), each a switch, with the
paper's literal reading as default:

* ``gt_on``: ``"anchor"`` (default; Eq. 8 applies ``L_gt`` to "the predictions", and the anchor is the
  only clip the model is evaluated on) or ``"all"`` (every clip supervised, averaged over clips).
* ``stop_gradient``: ``"none"`` (default; the paper writes no stop-gradient, so ``L_siamese`` trains every
  clip's branch through P and Â) or ``"target"`` (Q is formed from detached P and Â, as BAKE does, so only
  the anchor's prediction is pulled towards Q).
* ``weight_objective``: what trains W1/W2. ``"siamese"`` (default; they get the gradient of
  ``L_siamese`` through Q) or ``"gt"`` (Q is detached from W in ``L_siamese``; W1/W2 are trained by the
  ground-truth loss of Q formed from detached P and Â, ``L_W = CE(Q, y)`` / ``MSE(Q, y)``, which is what
  is left to train them when the target is detached).
* ``temperature`` τ: P and the anchor's probabilities are ``softmax(logits / τ)`` and ``L_siamese`` is
  scaled by τ² (Hinton et al.) so that its gradient does not shrink with τ. τ = 1 is the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from siasamrea.core.choices import GT_ON, STOP_GRADIENT, WEIGHT_OBJECTIVES, TaskKind
from siasamrea.method.model import ClipOutputs
from siasamrea.method.reasoning import SiameseReasoner

OE, MC, COUNT = TaskKind.OPEN_ENDED.value, TaskKind.MULTIPLE_CHOICE.value, TaskKind.COUNT.value


def pairwise_hinge(scores: torch.Tensor, target: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Summed pairwise hinge loss of Sec. 3.4, averaged over questions.

    Args:
        scores: ``[Q, M]`` candidate scores.
        target: ``[Q]`` index of the correct candidate.

    Returns:
        scalar ``mean_q Σ_{m ≠ y_q} max(0, margin − (s_{q,y} − s_{q,m}))``.
    """
    pos = scores.gather(1, target[:, None])  # [Q, 1]
    hinge = (margin - (pos - scores)).clamp_min(0.0)  # [Q, M]
    negatives = torch.ones_like(hinge, dtype=torch.bool).scatter_(1, target[:, None], False)
    return (hinge * negatives).sum(1).mean()


def gt_loss(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``L_gt`` for one prediction per question.

    Args:
        logits: open-ended ``[Q, K]``; multiple-choice ``[Q, M]``; count ``[Q]``.
        target: ``[Q]`` class index / correct candidate index / count (float).
    """
    if kind == OE:
        return F.cross_entropy(logits, target)
    if kind == MC:
        return pairwise_hinge(logits, target)
    if kind == COUNT:
        return F.mse_loss(logits, target.to(logits.dtype))
    raise ValueError(f"unknown task kind {kind!r}")


def clip_probabilities(kind: str, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """P of Eq. 3–5 from the clips' outputs.

    Args:
        logits: ``[V, N, K]`` / ``[V, N, M]`` / ``[V, N]`` (count).

    Returns:
        ``[V, N, K]``: softmax over classes or candidates; for count the scalars as ``K = 1``.
    """
    if kind == COUNT:
        return logits.unsqueeze(-1)
    return (logits / temperature).softmax(dim=-1)


def siamese_loss(
    kind: str, soft_label: torch.Tensor, anchor_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``L_siamese`` between Q and the anchor's prediction.

    Args:
        soft_label: ``[V, K]`` (count: ``[V, 1]``).
        anchor_logits: ``[V, K]`` / ``[V, M]`` / ``[V]``.
    """
    if kind == COUNT:
        return F.mse_loss(anchor_logits, soft_label[:, 0])
    log_p = (anchor_logits / temperature).log_softmax(dim=-1)
    return -(soft_label * log_p).sum(-1).mean() * temperature**2


def soft_label_gt_loss(kind: str, soft_label: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Ground-truth loss of the soft label itself (``weight_objective="gt"``): ``CE(Q, y)`` or ``MSE``."""
    if kind == COUNT:
        return F.mse_loss(soft_label[:, 0], target.to(soft_label.dtype))
    return F.nll_loss(soft_label.clamp_min(1e-12).log(), target)


@dataclass
class LossOutput:
    """Loss terms of one step (scalars) and, for analysis, the reasoning tensors (None without L_siamese)."""

    total: torch.Tensor
    gt: torch.Tensor
    siamese: torch.Tensor
    weights: torch.Tensor  # L_W (0 unless weight_objective="gt")
    affinity: torch.Tensor | None = None  # [V, N, N]
    soft_label: torch.Tensor | None = None  # [V, K]
    probs: torch.Tensor | None = None  # [V, N, K]


class SiaSamReaLoss(nn.Module):
    """Eq. 8 for a batch of videos; owns the :class:`SiameseReasoner` (W1/W2), which is training-only.

    Args:
        reasoner: the reasoner, or ``None`` for training without ``L_siamese`` (the baseline and the
            equal-clip-budget control).
        alpha: α of Eq. 8 (paper: 1.0).
        temperature, gt_on, stop_gradient, weight_objective: see the module docstring.
    """

    def __init__(
        self,
        reasoner: SiameseReasoner | None,
        *,
        alpha: float = 1.0,
        temperature: float = 1.0,
        gt_on: str = "anchor",
        stop_gradient: str = "none",
        weight_objective: str = "siamese",
    ):
        super().__init__()
        for name, value, allowed in (
            ("gt_on", gt_on, GT_ON),
            ("stop_gradient", stop_gradient, STOP_GRADIENT),
            ("weight_objective", weight_objective, WEIGHT_OBJECTIVES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.reasoner = reasoner
        self.alpha = alpha
        self.temperature = temperature
        self.gt_on = gt_on
        self.stop_gradient = stop_gradient
        self.weight_objective = weight_objective

    def forward(self, outputs: ClipOutputs, target: torch.Tensor) -> LossOutput:
        """Args: ``outputs`` of the model for V videos × N clips; ``target`` ``[V]``."""
        kind, logits = outputs.kind, outputs.logits
        n = logits.shape[1]
        if self.gt_on == "all":
            per_clip_target = target[:, None].expand(-1, n).flatten()
            l_gt = gt_loss(kind, logits.flatten(0, 1), per_clip_target)
        else:
            l_gt = gt_loss(kind, logits[:, 0], target)
        zero = l_gt.new_zeros(())
        if self.reasoner is None or self.alpha == 0:
            return LossOutput(total=l_gt, gt=l_gt, siamese=zero, weights=zero)

        probs = clip_probabilities(kind, logits, self.temperature)
        by_gt = self.weight_objective == "gt"
        reasoned = self.reasoner(
            outputs.features, probs, detach_inputs=self.stop_gradient == "target", detach_weights=by_gt
        )
        l_sia = siamese_loss(kind, reasoned.soft_label, logits[:, 0], self.temperature)
        l_w = zero
        if by_gt:
            q_w = self.reasoner(outputs.features, probs, detach_inputs=True).soft_label
            l_w = soft_label_gt_loss(kind, q_w, target)
        total = self.alpha * l_sia + l_gt + l_w
        return LossOutput(
            total=total,
            gt=l_gt,
            siamese=l_sia,
            weights=l_w,
            affinity=reasoned.affinity,
            soft_label=reasoned.soft_label,
            probs=probs,
        )
