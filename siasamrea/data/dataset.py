"""From question records to batches: clip indices from the sampler, frames, tokens and targets.

One :class:`VideoQADataset` holds the questions of one task. Each item is a video's N clips (row 0 the
anchor) and its question; :func:`collate` pads the text of a batch. Randomness is explicit: the clips of
item ``i`` in epoch ``e`` come from a generator seeded with ``(seed, e, i)``, so the samples are the same
whatever the number of DataLoader workers or processes, and a resumed run sees exactly the clips an
uninterrupted run would. Evaluation uses ``(eval_seed, i)``: every run and every epoch is evaluated on the
same anchor clips.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from siasamrea.core.choices import TaskKind
from siasamrea.data.records import QARecord
from siasamrea.data.vocab import OOV, AnswerVocab
from siasamrea.method.sampling import (
    frames_per_clip_for_length,
    min_frames_required,
    sample_clips,
    uniform_clips,
)

SAMPLERS = ("siamese", "anchor_copies", "sparse", "uniform")


@dataclass
class ClipSpec:
    """How clips are drawn for a dataset.

    ``sampler``: ``"siamese"`` / ``"anchor_copies"`` / ``"sparse"`` (training, random) or ``"uniform"``
    (multi-clip inference, deterministic). ``frames_per_clip``: an int or ``"auto"`` (the paper's 5..16 by
    length; a batch is then padded to its longest clip and ``frame_mask`` marks real frames).
    """

    sampler: str = "siamese"
    num_clips: int = 9
    frames_per_clip: int | str = 4
    reserve_clips: int | None = None
    offsets: str = "after"

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")

    @property
    def clips_returned(self) -> int:
        return 1 if self.sampler == "sparse" else self.num_clips

    def frames_for(self, num_frames: int) -> int:
        return (
            frames_per_clip_for_length(num_frames)
            if self.frames_per_clip == "auto"
            else int(self.frames_per_clip)
        )

    def indices(self, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        """``LongTensor[N, B]`` for a video of ``num_frames`` frames."""
        b = self.frames_for(num_frames)
        if self.sampler == "uniform":
            return uniform_clips(num_frames, self.num_clips, b)
        return sample_clips(
            self.sampler, num_frames, self.num_clips, b, generator,
            reserve_clips=self.reserve_clips, offsets=self.offsets, on_short="clamp",
        )  # fmt: skip


def item_seed(*parts: int) -> int:
    """A 63-bit seed mixing ``parts`` (SeedSequence: well spread, no collisions between nearby tuples)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1
    )


@dataclass
class DatasetReport:
    """What a dataset kept and what it left out, and why (reported, never silent)."""

    questions: int = 0
    used: int = 0
    dropped: Counter = field(default_factory=Counter)
    short_videos: int = (
        0  # videos shorter than the clips need: clips repeat frames (sampling.on_short="clamp")
    )
    spans_used: int = 0  # questions whose clips are drawn within their time span
    spans_unusable: Counter = field(default_factory=Counter)  # spans not used (whole video used), by reason

    def as_dict(self) -> dict:
        return {"questions": self.questions, "used": self.used, "dropped": dict(self.dropped),
                "short_videos": self.short_videos, "spans_used": self.spans_used,
                "spans_unusable": dict(self.spans_unusable)}  # fmt: skip


class VideoQADataset(Dataset):
    """The questions of one task, as model inputs.

    Args:
        records: questions of one task (one :class:`TaskKind`).
        tokenizer: a ``transformers`` tokenizer.
        frames: a frame source (:class:`~siasamrea.data.frames.DecodedFrames` or ``CachedFrames``).
        clips: how clips are drawn.
        vocab: open-ended answer vocabulary (required for open-ended tasks).
        train: training set (random clips per epoch; open-ended questions with an out-of-vocabulary answer
            are left out and counted, since no class can learn them) or evaluation set (fixed clips; OOV
            questions kept, target -1, so they count as wrong, as the papers do).
        seed: training seed, or the evaluation seed.
        max_text_len: token budget (question + candidate).
        keep_videos: if given, only questions whose video stem is in it (the frame filter's kept set);
            the others are counted as ``dropped["frame_filter"]``.
        use_span: draw the clips within a record's ``span`` (seconds, How2QA) mapped to frames with the
            video's frame rate; a span the frame source cannot map (no frame rate) or that falls outside the
            video is counted in ``report.spans_unusable`` and the whole video is used.

    Item: ``frames uint8 [N, B, H, W, 3]``, ``frame_mask bool [N, B]``, ``input_ids`` ``[L]`` or ``[M, L]``,
    ``target`` (class / candidate index, or count as float), ``index``, ``clip_indices [N, B]``,
    ``num_frames``.
    """

    def __init__(
        self,
        records: list[QARecord],
        *,
        tokenizer,
        frames,
        clips: ClipSpec,
        vocab: AnswerVocab | None = None,
        train: bool = True,
        seed: int = 0,
        max_text_len: int = 40,
        keep_videos: set[str] | None = None,
        use_span: bool = True,
    ):
        kinds = {r.kind for r in records}
        if len(kinds) > 1:
            raise ValueError(f"a dataset holds one task kind; got {sorted(k.value for k in kinds)}")
        self.kind = kinds.pop().value if kinds else TaskKind.OPEN_ENDED.value
        if self.kind == TaskKind.OPEN_ENDED.value and vocab is None:
            raise ValueError("open-ended questions need an answer vocabulary")
        self.report = DatasetReport(questions=len(records))
        kept = []
        for r in records:
            if keep_videos is not None and r.video_path.stem not in keep_videos:
                self.report.dropped["frame_filter"] += 1
            elif train and self.kind == TaskKind.OPEN_ENDED.value and vocab.encode(r.answer) == OOV:
                self.report.dropped["answer_not_in_vocabulary"] += 1
            else:
                kept.append(r)
        self.records = kept
        self.report.used = len(kept)
        self.frames, self.clips, self.vocab = frames, clips, vocab
        self.train, self.seed, self.epoch = train, seed, 0
        self.fixed_clips: list[torch.Tensor] | None = None  # see with_clips
        counts = frames.count_all([str(r.video_path) for r in kept])
        self.num_frames = [counts[str(r.video_path)] for r in kept]
        self.ranges = [self._frame_range(r, n) if use_span else (0, n)
                       for r, n in zip(kept, self.num_frames, strict=True)]  # fmt: skip
        need = lambda n: min_frames_required(clips.clips_returned, clips.frames_for(n))  # noqa: E731
        spans = zip(kept, self.ranges, strict=True)
        self.report.short_videos = len({str(r.video_path) for r, (a, b) in spans if b - a < need(b - a)})
        self.input_ids = self._tokenize(tokenizer, max_text_len)

    def _frame_range(self, record: QARecord, n: int) -> tuple[int, int]:
        """``[lo, hi)`` frames the clips are drawn from: the record's span, else the whole video."""
        if record.span is None:
            return 0, n
        fps = self.frames.fps(record.video_path) if hasattr(self.frames, "fps") else None
        if not fps:
            self.report.spans_unusable["no_frame_rate"] += 1
            return 0, n
        start, end = record.span
        lo = min(int(math.floor(start * fps)), n)
        hi = min(int(math.ceil(end * fps)), n)
        if hi - lo < 1:
            self.report.spans_unusable["outside_video"] += 1
            return 0, n
        self.report.spans_used += 1
        return lo, hi

    def _tokenize(self, tokenizer, max_len: int) -> list:
        questions = [r.question for r in self.records]
        if self.kind != TaskKind.MULTIPLE_CHOICE.value:
            return tokenizer(questions, truncation=True, max_length=max_len)["input_ids"]
        pairs_q = [r.question for r in self.records for _ in r.candidates]
        pairs_a = [c for r in self.records for c in r.candidates]
        flat = tokenizer(pairs_q, pairs_a, truncation=True, max_length=max_len)["input_ids"]
        out, k = [], 0
        for r in self.records:
            out.append(flat[k : k + len(r.candidates)])
            k += len(r.candidates)
        return out

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def target(self, i: int) -> float | int:
        r = self.records[i]
        if self.kind == TaskKind.OPEN_ENDED.value:
            return self.vocab.encode(r.answer)
        if self.kind == TaskKind.MULTIPLE_CHOICE.value:
            return int(r.answer_index)
        return float(r.answer)

    def generator(self, i: int) -> torch.Generator:
        seed = item_seed(self.seed, self.epoch, i) if self.train else item_seed(self.seed, i)
        return torch.Generator().manual_seed(seed)

    def with_clips(self, clips: ClipSpec | list[torch.Tensor]) -> VideoQADataset:
        """The same questions with other clips: a ``ClipSpec``, or fixed ``[N, B]`` frame indices per question
        (absolute, e.g. an oracle clip on the evidence). Evaluation conditions of the instrument use it."""
        other = copy.copy(self)
        if isinstance(clips, ClipSpec):
            other.clips, other.fixed_clips = clips, None
        else:
            if len(clips) != len(self.records):
                raise ValueError(f"{len(clips)} fixed clips for {len(self.records)} questions")
            other.fixed_clips = list(clips)
        return other

    def __getitem__(self, i: int) -> dict:
        r, n = self.records[i], self.num_frames[i]
        lo, hi = self.ranges[i]
        if self.fixed_clips is not None:
            idx = self.fixed_clips[i]
        else:
            idx = self.clips.indices(hi - lo, self.generator(i)) + lo  # [N, B], within the question's span
        return {
            "frames": self.frames.read(r.video_path, idx),
            "frame_mask": torch.ones(idx.shape, dtype=torch.bool),
            "input_ids": self.input_ids[i],
            "target": self.target(i),
            "index": i,
            "clip_indices": idx,
            "num_frames": n,
        }


def _pad(seqs: list[list[int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(len(seqs), length, dtype=torch.long)  # [PAD] = 0
    mask = torch.zeros(len(seqs), length, dtype=torch.long)
    for j, s in enumerate(seqs):
        ids[j, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[j, : len(s)] = 1
    return ids, mask


def collate(items: list[dict]) -> dict:
    """Stack a batch. Text is padded to the batch's longest sequence; clips of different lengths
    (``frames_per_clip="auto"``) are padded with their last frame and masked out in ``frame_mask``.

    Returns ``frames [V, N, B, H, W, 3]``, ``frame_mask [V, N, B]``, ``input_ids``/``attention_mask``
    ``[V, L]`` or ``[V, M, L]``, ``target [V]``, ``index [V]``, ``clip_indices [V, N, B]`` (-1 = padding),
    ``num_frames [V]``.
    """
    b = max(it["frames"].shape[1] for it in items)

    def pad_time(x: torch.Tensor, fill=None) -> torch.Tensor:
        if x.shape[1] == b:
            return x
        extra = (
            x[:, -1:].expand(-1, b - x.shape[1], *x.shape[2:])
            if fill is None
            else torch.full((x.shape[0], b - x.shape[1], *x.shape[2:]), fill, dtype=x.dtype)
        )
        return torch.cat([x, extra], dim=1)

    frames = torch.stack([pad_time(it["frames"]) for it in items])
    frame_mask = torch.stack([pad_time(it["frame_mask"], False) for it in items])
    clip_indices = torch.stack([pad_time(it["clip_indices"], -1) for it in items])
    first = items[0]["input_ids"]
    if first and isinstance(first[0], list):  # multiple choice: [M, L] per item
        m = len(first)
        if any(len(it["input_ids"]) != m for it in items):
            raise ValueError("multiple-choice questions in one batch must have the same number of candidates")
        length = max(len(s) for it in items for s in it["input_ids"])
        ids, mask = _pad([s for it in items for s in it["input_ids"]], length)
        ids, mask = ids.view(len(items), m, length), mask.view(len(items), m, length)
    else:
        ids, mask = _pad([it["input_ids"] for it in items], max(len(it["input_ids"]) for it in items))
    target = torch.tensor([it["target"] for it in items])
    return {
        "frames": frames,
        "frame_mask": frame_mask,
        "input_ids": ids,
        "attention_mask": mask,
        "target": target,
        "index": torch.tensor([it["index"] for it in items]),
        "clip_indices": clip_indices,
        "num_frames": torch.tensor([it["num_frames"] for it in items]),
    }
