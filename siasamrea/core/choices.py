"""The task kinds and the values each enumerated configuration key may take.

They live here, in a leaf, so that the configuration (which checks them), the method modules (which act on
them) and the readers (which produce task kinds) all import them from below instead of from each other.
"""

from __future__ import annotations

import enum


class TaskKind(str, enum.Enum):
    """How a question is answered, which decides the head and the loss (paper Sec. 3.4)."""

    OPEN_ENDED = "open_ended"  # one class out of a fixed answer vocabulary (cross-entropy)
    MULTIPLE_CHOICE = "multiple_choice"  # one score per candidate (summed pairwise hinge)
    COUNT = "count"  # a scalar (MSE), TGIF-QA repetition count


#: ``method.variant``; what each sets is :func:`siasamrea.core.variants.variant_rule`.
VARIANTS = ("siasamrea", "skr_average", "anchor_copies", "baseline", "all_clips")
#: The variants trained with L_siamese (they need method.alpha > 0).
REASONING_VARIANTS = ("siasamrea", "skr_average", "anchor_copies")
#: ``eval.multi_clip``: how clip scores are pooled (ClipBERT's mean, max, log-sum-exp).
AGGREGATIONS = ("mean", "max", "lse")

#: Clip samplers: one sparse clip (ClipBERT), the anchor and its siamese clips, or anchor copies (Sec. 4.3).
SAMPLERS = ("siamese", "anchor_copies", "sparse")
#: ``method.offsets``: siamese clips start after the anchor's, or alternate around it (+1, -1, +2, ...).
OFFSET_MODES = ("after", "alternate")
#: What sampling does with a video shorter than the clips need: refuse, or clamp indices.
SHORT_MODES = ("error", "clamp")
#: The paper's frames per clip B: 5 to 16, by video length (``method.frames_per_clip: auto``).
MIN_FRAMES_PER_CLIP = 5
MAX_FRAMES_PER_CLIP = 16

#: Â of Eq. 2 (``siamese``) or uniform 1/(N-1) (``average``, Table 1's "w/ SKR").
AFFINITY_MODES = ("siamese", "average")
#: ``method.gt_on``: L_gt on the anchor only (the paper) or on every clip.
GT_ON = ("anchor", "all")
#: ``method.stop_gradient``: none (the paper's text) or detach the soft label's inputs (BAKE).
STOP_GRADIENT = ("none", "target")
#: ``method.weight_objective``: what trains W1/W2.
WEIGHT_OBJECTIVES = ("siamese", "gt")

#: ``data.dataset``: the datasets a reader exists for, and their tasks (``data.tasks``).
DATASET_TASKS = {
    "tgif-qa": ("action", "transition", "count", "frameqa"),
    "msvd-qa": ("msvd-qa",),
    "msrvtt-qa": ("msrvtt-qa",),
    "activitynet-qa": ("activitynet-qa",),
    "how2qa": ("how2qa",),
}
