"""What a method variant (``method.variant``) sets: the one rule that both training and the analysis read.

=================  =========================================================================================
``siasamrea``       siamese sampling + SKG (Eq. 1–2) + SKR (Eq. 3–5), L = α L_siamese + L_gt ("w/ SKG+SKR")
``skr_average``     as ``siasamrea`` with Â(i, j) = 1/(N−1) ("w/ SKR", Table 1)
``anchor_copies``   as ``siasamrea`` with the siamese clips replaced by copies of the anchor (Sec. 4.3)
``baseline``        one sparse clip, ``L = L_gt`` ("training without L_siamese", Table 1)
``all_clips``       the equal-clip-budget control: the same N siamese clips, every clip supervised by L_gt,
                    no reasoning (docs/method.md)
=================  =========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from siasamrea.core.choices import REASONING_VARIANTS, VARIANTS


@dataclass(frozen=True)
class VariantRule:
    """How a variant trains.

    ``sampler``: the clip sampler (``siamese``, ``anchor_copies`` or ``sparse``); ``train_clips``: clips per
    training video; ``uses_reasoning``: L_siamese is on; ``affinity``: Â of Eq. 2 (``siamese``) or uniform
    (``average``); ``gt_on``: where L_gt applies (``anchor`` or ``all``).
    """

    sampler: str
    train_clips: int
    uses_reasoning: bool
    affinity: str
    gt_on: str


def variant_rule(variant: str, num_clips: int = 9, alpha: float = 1.0, gt_on: str = "anchor") -> VariantRule:
    """The :class:`VariantRule` of ``variant`` with ``method.num_clips``, ``method.alpha``, ``method.gt_on``.

    >>> variant_rule("baseline").train_clips
    1
    """
    if variant not in VARIANTS:
        raise ValueError(f"method.variant: must be one of {list(VARIANTS)}, got {variant!r}")
    return VariantRule(
        sampler={"baseline": "sparse", "anchor_copies": "anchor_copies"}.get(variant, "siamese"),
        train_clips=1 if variant == "baseline" else num_clips,
        uses_reasoning=variant in REASONING_VARIANTS and alpha > 0,
        affinity="average" if variant == "skr_average" else "siamese",
        gt_on="all" if variant == "all_clips" else gt_on,
    )
