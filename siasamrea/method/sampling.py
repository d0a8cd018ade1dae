"""Frame samplers: the anchor clip, the siamese clips (paper Sec. 3.2), and the baselines' samplers.

Every sampler returns frame indices, ``LongTensor[num_clips, frames_per_clip]``, row 0 the anchor clip.

The paper's rules for siamese sampling, and how this module reads them:

* "We use the same interval frame for all clips": one interval ``d`` shared by every clip.
* The anchor start ``s0`` is drawn uniformly at random from the first third of the video,
  ``s0 ∈ [0, ceil(L/3) - 1]`` ("to guarantee the equilibrium of sampling").
* "The index of the siamese clip should be next to the index of the anchor clip. The pace of sampling is
  consecutive before or after the anchor index": the N clip starts form one contiguous run of integers that
  contains ``s0``. ``offsets="after"`` (default) gives ``s0+1, s0+2, ...``; ``offsets="alternate"`` gives
  ``s0+1, s0-1, s0+2, s0-2, ...``. Where that run would start before frame 0 (alternate mode near the
  start of the video) it is moved to the nearest run that still contains ``s0``; the anchor never moves.
* The interval is not given by the paper. We take the largest ``d`` for which a clip started anywhere in
  the first third (plus the siamese offsets) stays inside the video:
  ``d = max(1, (L - ceil(L/3) - (N - 1)) // (B - 1))``, so the anchor spans about the last two thirds of
  the video from its start, i.e. it is "sparse and uniform" over the video, as ClipBERT's clip is. Because
  ``d`` is usually larger than ``N``, the siamese clips fill the gaps between the anchor's frames (Fig. 1c).
  ``interval=`` overrides it. Only for videos so short that ``d = 1`` and a clip started late in the first
  third would run past the end is ``s0`` drawn from the part of the first third where everything fits.

A video with fewer than ``N + B - 1`` frames cannot hold N distinct-start clips of B frames even with
``d = 1``. ``on_short="error"`` (default) raises :class:`VideoTooShortError`; ``on_short="clamp"`` is the
defined fallback: indices are computed as for a long enough video with ``d = 1`` and clamped to ``L - 1``
(so some frames repeat; every index stays inside the video).
"""

from __future__ import annotations

import math

import torch

from siasamrea.core.choices import (
    MAX_FRAMES_PER_CLIP,
    MIN_FRAMES_PER_CLIP,
    OFFSET_MODES,
    SAMPLERS,
    SHORT_MODES,
)


class VideoTooShortError(ValueError):
    """The video has too few frames for the requested clips."""


def frames_per_clip_for_length(num_frames: int, frames_per_step: int = 8) -> int:
    """Frames per clip chosen from the video length, within the paper's range of 5 to 16.

    The paper gives only the range. We use one frame per ``frames_per_step`` video frames, clamped to
    [5, 16]: a 40-frame video (the pretraining filter's minimum) gets 5 frames, a video of 128 or more
    frames gets 16. ``frames_per_step=8`` keeps the anchor's interval near 8 frames for short videos,
    which leaves room for 8 siamese clips between consecutive anchor frames.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if frames_per_step < 1:
        raise ValueError(f"frames_per_step must be >= 1, got {frames_per_step}")
    return int(min(MAX_FRAMES_PER_CLIP, max(MIN_FRAMES_PER_CLIP, num_frames // frames_per_step)))


def siamese_interval(num_frames: int, num_clips: int, frames_per_clip: int) -> int:
    """The frame interval ``d`` shared by all clips (see the module docstring)."""
    if frames_per_clip == 1:
        return 1
    first_third = math.ceil(num_frames / 3)
    return max(1, (num_frames - first_third - (num_clips - 1)) // (frames_per_clip - 1))


def min_frames_required(num_clips: int, frames_per_clip: int) -> int:
    """Fewest frames a video needs for ``num_clips`` distinct-start clips of ``frames_per_clip`` frames."""
    return num_clips + frames_per_clip - 1


def _clip_offsets(num_clips: int, offsets: str) -> list[int]:
    """Clip start offsets relative to the anchor, anchor first: ``[0, 1, 2, ...]`` or ``[0, 1, -1, ...]``."""
    if offsets == "after":
        return list(range(num_clips))
    if offsets == "alternate":
        out = [0]
        k = 1
        while len(out) < num_clips:
            out.append(k)
            if len(out) < num_clips:
                out.append(-k)
            k += 1
        return out
    raise ValueError(f"offsets must be one of {OFFSET_MODES}, got {offsets!r}")


def _check_args(num_frames: int, num_clips: int, frames_per_clip: int, on_short: str) -> None:
    if num_frames < 1:
        raise VideoTooShortError(f"video has {num_frames} frames; cannot sample from an empty video")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    if on_short not in SHORT_MODES:
        raise ValueError(f"on_short must be one of {SHORT_MODES}, got {on_short!r}")


def siamese_sample(
    num_frames: int,
    num_clips: int,
    frames_per_clip: int,
    generator: torch.Generator | None = None,
    *,
    interval: int | None = None,
    reserve_clips: int | None = None,
    offsets: str = "after",
    on_short: str = "error",
) -> torch.Tensor:
    """Sample the anchor clip and ``num_clips - 1`` siamese clips from a video of ``num_frames`` frames.

    Args:
        num_frames: video length L.
        num_clips: N, the anchor plus the siamese clips (the paper's final setting is N = 9).
        frames_per_clip: B.
        generator: source of randomness (the anchor start); same generator state → same indices.
        interval: frame interval d; default: the largest that keeps every clip inside the video.
        reserve_clips: compute the default interval as if ``max(N, reserve_clips)`` clips were sampled.
            Runs compared with each other (the baseline, N = 2..13) should share one value: then the
            anchor is drawn from exactly the same distribution whatever N is, and evaluation (anchor only)
            sees the same clips for every run.
        offsets: ``"after"`` or ``"alternate"`` (see the module docstring).
        on_short: ``"error"`` or ``"clamp"`` for videos shorter than ``N + B - 1`` frames.

    Returns:
        ``LongTensor[N, B]``; row 0 the anchor, row k the k-th siamese clip; ``out[k, t] = start_k + t * d``.
    """
    _check_args(num_frames, num_clips, frames_per_clip, on_short)
    offs = _clip_offsets(num_clips, offsets)
    short = num_frames < min_frames_required(num_clips, frames_per_clip)
    if short and on_short == "error":
        raise VideoTooShortError(
            f"video has {num_frames} frames; {num_clips} clips of {frames_per_clip} frames need at least "
            f"{min_frames_required(num_clips, frames_per_clip)} (use on_short='clamp' to repeat frames)"
        )
    if short or interval is None:
        reserve = max(num_clips, reserve_clips or 0)
        d = 1 if short else siamese_interval(num_frames, reserve, frames_per_clip)
    else:
        d = int(interval)
        if d < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")

    # s0 is uniform over the first third, cut (for very short videos only) to the starts from which the run
    # of N starts and a clip of B frames still fit in the video.
    feasible = num_frames - (num_clips - 1) - (frames_per_clip - 1) * d
    if feasible < 1 and not short:
        raise ValueError(
            f"interval {d} with {frames_per_clip} frames per clip does not fit a {num_frames}-frame video "
            f"(largest possible: {siamese_interval(num_frames, num_clips, frames_per_clip)})"
        )
    first_third = max(1, min(math.ceil(num_frames / 3), feasible))
    s0 = int(torch.randint(first_third, (1,), generator=generator).item())

    # The N starts are the run [r, r + N - 1]. r is the preferred start of the offset mode, moved (if it must)
    # into the range where the run still contains s0 and every clip ends inside the video. The anchor never
    # moves. With the default interval the preferred run always fits (see siamese_interval).
    last_index = num_frames - 1
    preferred = s0 + min(offs)
    lowest = max(0, s0 - (num_clips - 1))
    highest = min(s0, last_index - (frames_per_clip - 1) * d - (num_clips - 1))
    r = lowest if lowest > highest else min(max(preferred, lowest), highest)
    # Order the siamese clips by closeness to the anchor, "after" before "before" at equal distance, which
    # reproduces the offset mode's own order whenever the run did not have to move.
    others = sorted((s for s in range(r, r + num_clips) if s != s0), key=lambda s: (abs(s - s0), s < s0))
    starts = torch.tensor([s0, *others], dtype=torch.long)

    idx = starts[:, None] + d * torch.arange(frames_per_clip, dtype=torch.long)[None, :]
    if short:
        idx = idx.clamp_(max=last_index)  # the documented fallback for short videos
    return idx


def sparse_sample(
    num_frames: int,
    frames_per_clip: int,
    generator: torch.Generator | None = None,
    *,
    reserve_clips: int | None = None,
    interval: int | None = None,
    on_short: str = "error",
) -> torch.Tensor:
    """The baseline's ClipBERT-style sparse sampler: one clip, drawn exactly as SiaSamRea's anchor.

    Using the anchor rule for the baseline keeps the comparison fair: the baseline and SiaSamRea see anchor
    clips from the same distribution (give both the same ``reserve_clips``); only the siamese clips differ.

    Returns:
        ``LongTensor[1, B]``.
    """
    return siamese_sample(
        num_frames,
        1,
        frames_per_clip,
        generator,
        interval=interval,
        reserve_clips=reserve_clips,
        on_short=on_short,
    )


def anchor_copies_sample(
    num_frames: int,
    num_clips: int,
    frames_per_clip: int,
    generator: torch.Generator | None = None,
    **kwargs,
) -> torch.Tensor:
    """The "anchor copies" ablation (Sec. 4.3): the siamese clips are replaced by copies of the anchor.

    The anchor is drawn exactly as in :func:`siamese_sample` (same generator use, same interval), so with
    the same generator state row 0 equals siamese sampling's anchor. Copies differ in the model only through
    dropout, which is why the model keeps its dropout.

    Returns:
        ``LongTensor[N, B]`` whose rows are all equal.
    """
    clips = siamese_sample(num_frames, num_clips, frames_per_clip, generator, **kwargs)
    return clips[:1].expand(num_clips, -1).clone()


def uniform_clips(num_frames: int, num_clips: int, frames_per_clip: int) -> torch.Tensor:
    """Deterministic, evenly spread clips for ClipBERT-style multi-clip ("dense") inference.

    The video is cut into ``num_clips`` equal segments; clip c takes ``frames_per_clip`` frames at the
    centres of equal sub-segments of segment c. Indices can repeat when a segment is shorter than B.

    Returns:
        ``LongTensor[num_clips, B]``.
    """
    _check_args(num_frames, num_clips, frames_per_clip, "clamp")
    n_sub = num_clips * frames_per_clip
    centres = (torch.arange(n_sub, dtype=torch.float64) + 0.5) * (num_frames / n_sub)
    idx = centres.floor().long().clamp_(0, num_frames - 1)
    return idx.view(num_clips, frames_per_clip)


def dense_frames(num_frames: int) -> torch.Tensor:
    """Every frame of the video, the "dense" sampling of Fig. 1a. ``LongTensor[1, L]``."""
    if num_frames < 1:
        raise VideoTooShortError(f"video has {num_frames} frames")
    return torch.arange(num_frames, dtype=torch.long)[None, :]


def sample_clips(
    sampler: str,
    num_frames: int,
    num_clips: int,
    frames_per_clip: int,
    generator: torch.Generator | None = None,
    **kwargs,
) -> torch.Tensor:
    """Dispatch by name: ``"siamese"``, ``"anchor_copies"`` or ``"sparse"`` (the latter returns one clip)."""
    if sampler == "siamese":
        return siamese_sample(num_frames, num_clips, frames_per_clip, generator, **kwargs)
    if sampler == "anchor_copies":
        return anchor_copies_sample(num_frames, num_clips, frames_per_clip, generator, **kwargs)
    if sampler == "sparse":
        kwargs.pop("offsets", None)
        return sparse_sample(num_frames, frames_per_clip, generator, **kwargs)
    raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
