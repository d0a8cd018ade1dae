"""A ClipBERT-style video-question model built from ``transformers`` (paper Sec. 3.1, Fig. 3).

frames ──ResNet──> grid features [C, h, w] per frame ──mean over the B frames of a clip──> [C, h, w]
       ──linear + 2-D (row, column) position embeddings──> h·w visual tokens
text ──BERT word embeddings──> tokens;   [text tokens ; visual tokens] ──BERT encoder──> [CLS] = f
f ──task head──> open-ended logits [K] | multiple-choice score (one per candidate) | count (scalar)

The encoders are ``transformers.ResNetModel`` and ``transformers.BertModel``, so the same code runs a
tiny random config on a CPU and local pretrained checkpoints (``vision_checkpoint`` / ``text_checkpoint``)
on a GPU. Nothing here knows about siamese clips beyond the clip axis N: training feeds N clips per video,
inference feeds the anchor only (N = 1) through the very same parameters, so the inference model *is*
the baseline model (same parameters, same compute). W1/W2 live in :mod:`siasamrea.method.reasoning`.

Choices the paper leaves open:

* Visual tokens enter BERT as ``inputs_embeds`` with token type 1 and BERT position id 0, so BERT's own
  1-D position embeddings carry no information for them; their position is the 2-D (row, column)
  embedding, as in ClipBERT.
* For multiple choice the question and each candidate are encoded together
  (``[CLS] question [SEP] candidate [SEP]`` + visual tokens) and a head scores each [CLS]; the clip
  feature used for the affinity is the mean of the candidates' [CLS] features (it cannot depend on the
  label, and it is defined for every clip).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import BertConfig, BertModel, ResNetConfig, ResNetModel
from transformers.masking_utils import create_bidirectional_mask

from siasamrea.core.choices import TaskKind
from siasamrea.method.folded_resnet import forward_parts

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: A ResNet small enough to train on a laptop CPU: 64x64 frames -> a 4x4 grid of 64-d features.
TINY_VISION = dict(
    num_channels=3,
    embedding_size=16,
    hidden_sizes=[16, 32, 64],
    depths=[1, 1, 1],
    layer_type="basic",
    hidden_act="relu",
    downsample_in_first_stage=False,
)
#: A 2-layer, 64-d BERT.
TINY_TEXT = dict(
    vocab_size=512,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    max_position_embeddings=64,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    type_vocab_size=2,
    # BERT's 0.02 suits a 768-d model pretrained for days; a 64-d model trained from scratch on a few
    # thousand questions learns the cross-modal attention far sooner from 0.1 (measured on the synthetic
    # benchmark: chance-level after 10 epochs with 0.02, 35% with 0.1 when the evidence is always visible).
    initializer_range=0.1,
)


@dataclass
class HeadSpec:
    """A task head: ``kind`` and, for open-ended tasks, the answer vocabulary (its size and its answers,
    so that a fine-tuned model can inherit the rows of the answers it shares with its initialisation)."""

    kind: str
    num_answers: int = 1
    labels: list[str] | None = None

    def __post_init__(self):
        self.kind = TaskKind(self.kind).value
        if self.kind == TaskKind.OPEN_ENDED.value and self.num_answers < 2:
            raise ValueError(f"an open-ended head needs num_answers >= 2, got {self.num_answers}")
        if self.labels is not None and len(self.labels) != self.num_answers:
            raise ValueError(f"head has {self.num_answers} answers but {len(self.labels)} labels")


@dataclass
class ModelConfig:
    """Sizes and sources of the encoders, and the task heads.

    ``vision`` / ``text`` are ``ResNetConfig`` / ``BertConfig`` keyword arguments used when no checkpoint is
    given. ``vision_checkpoint`` / ``text_checkpoint`` are local directories loaded with
    ``from_pretrained(path, local_files_only=True)`` (nothing is downloaded).
    """

    heads: dict[str, HeadSpec] = field(default_factory=dict)
    vision: dict = field(default_factory=lambda: dict(TINY_VISION))
    text: dict = field(default_factory=lambda: dict(TINY_TEXT))
    vision_checkpoint: str | None = None
    text_checkpoint: str | None = None
    max_grid: int = 16  # rows/columns the 2-D position embeddings cover
    grid_pool: int | None = None  # average-pool the grid to this size (None: keep the backbone's grid)
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    # "linear": grid features -> Linear + 2-D positions -> BERT's embedding layer (this repository's default).
    # "clipbert": ClipBERT's own path (src/modeling/grid_feat.py, modeling.py): conv3x3 + 2x2 max-pool + ReLU
    # per frame, temporal mean, 2-D positions, a visual token type and LayerNorm, then straight into BERT's
    # encoder. Needed to start from a ClipBERT checkpoint (siasamrea.method.clipbert).
    visual_head: str = "linear"
    # "imagenet": the ResNet's own stem (7x7 stride-2 conv + 3x3 stride-2 max-pool: /4), which pretrained
    # checkpoints expect. "small": a 3x3 stride-1 conv and no max-pool, the CIFAR ResNet stem (He et al.,
    # 2016, Sec. 4.2) for frames of a few dozen pixels, where /4 leaves an 8-pixel object 2 cells wide and its
    # silhouette is lost (the embedded benchmark's shape questions: README, "Does the model see?").
    stem: str = "imagenet"
    # Memory options of the vision pass (same result up to floating-point order, with frozen BatchNorm):
    # the VNT clip-frames go through the ResNet in chunks of this many, each chunk checkpointed if asked.
    vision_chunk_frames: int | None = None
    checkpoint_vision: bool = False
    # detectron2's FREEZE_AT, which ClipBERT's grid-feature ResNet keeps at its default 2 (its config never
    # changes it): 0 trains the whole ResNet; 1 freezes the stem; 2 the stem and the first stage. Frozen
    # parts keep their weights and their BatchNorm statistics (eval mode whatever model.train() says), and
    # the backward pass stops above them, which on a CPU also saves most of the ResNet's backward cost.
    freeze_at: int = 0

    def __post_init__(self):
        if self.freeze_at not in (0, 1, 2):
            raise ValueError(f"freeze_at must be 0, 1 or 2, got {self.freeze_at!r}")
        if self.visual_head not in ("linear", "clipbert"):
            raise ValueError(f"visual_head must be 'linear' or 'clipbert', got {self.visual_head!r}")
        if self.stem not in ("imagenet", "small"):
            raise ValueError(f"stem must be 'imagenet' or 'small', got {self.stem!r}")
        self.heads = {k: v if isinstance(v, HeadSpec) else HeadSpec(**v) for k, v in self.heads.items()}
        if not self.heads:
            raise ValueError("ModelConfig.heads is empty: give at least one task head")
        for key, path in (
            ("vision_checkpoint", self.vision_checkpoint),
            ("text_checkpoint", self.text_checkpoint),
        ):
            if path is not None and not Path(path).is_dir():
                raise FileNotFoundError(f"ModelConfig.{key}: no checkpoint directory at {path}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClipOutputs:
    """Outputs for V videos with N clips each.

    ``features``: ``[V, N, H]`` [CLS] features (mean over candidates for multiple choice).
    ``logits``: open-ended ``[V, N, K]``; multiple-choice ``[V, N, M]`` candidate scores; count ``[V, N]``.
    """

    features: torch.Tensor
    logits: torch.Tensor
    kind: str


def _mlp_head(hidden: int, out: int) -> nn.Sequential:
    # ClipBERT's answer head: Linear -> GELU -> LayerNorm -> Linear.
    return nn.Sequential(
        nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.LayerNorm(2 * hidden), nn.Linear(2 * hidden, out)
    )


class VisualEmbedding(nn.Module):
    """Grid features of a clip -> visual tokens with 2-D position embeddings.

    ``forward``: ``[S, C, h, w]`` -> ``[S, h*w, H]``.
    """

    def __init__(self, in_channels: int, hidden: int, max_grid: int):
        super().__init__()
        self.proj = nn.Linear(in_channels, hidden)
        self.row = nn.Embedding(max_grid, hidden)
        self.col = nn.Embedding(max_grid, hidden)
        self.max_grid = max_grid
        # nn.Embedding starts at N(0, 1): position would then swamp the content of every visual token (the
        # projected features vary across videos by ~0.05), and the model learns to look at the video only
        # very late. Start them as small as BERT starts its own position embeddings.
        nn.init.normal_(self.row.weight, std=0.02)
        nn.init.normal_(self.col.weight, std=0.02)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        s, c, h, w = grid.shape
        if h > self.max_grid or w > self.max_grid:
            raise ValueError(
                f"grid {h}x{w} exceeds max_grid={self.max_grid}; raise max_grid or set grid_pool"
            )
        tokens = self.proj(grid.flatten(2).transpose(1, 2))  # [S, h*w, H]
        rows = torch.arange(h, device=grid.device).repeat_interleave(w)
        cols = torch.arange(w, device=grid.device).repeat(h)
        return tokens + self.row(rows) + self.col(cols)


class ClipBertVisualEmbedding(nn.Module):
    """ClipBERT's visual path (``GridFeatBackbone.grid_encoder`` + ``VisualInputEmbedding``).

    ``encode_frames``: ResNet grid ``[F, C, h, w]`` -> ``[F, H, h/2, w/2]`` (conv3x3, 2x2 max-pool, ReLU; per
    frame, before the temporal mean, as ClipBERT). ``forward``: ``[S, H, h', w']`` -> ``[S, h'*w', H]`` visual
    tokens with row/column embeddings, ClipBERT's single visual token type, LayerNorm and dropout; they go
    to BERT's encoder without BERT's embedding layer.
    """

    def __init__(self, in_channels: int, hidden: int, max_grid: int, eps: float, dropout: float):
        super().__init__()
        self.grid_encoder = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1, bias=False),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.ReLU(inplace=True),
        )
        self.row = nn.Embedding(max_grid, hidden)
        self.col = nn.Embedding(max_grid, hidden)
        self.token_type = nn.Embedding(1, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.max_grid = max_grid
        for emb in (self.row, self.col, self.token_type):
            nn.init.normal_(emb.weight, std=0.02)

    def encode_frames(self, grid: torch.Tensor) -> torch.Tensor:
        return self.grid_encoder(grid)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        s, c, h, w = grid.shape
        if h > self.max_grid or w > self.max_grid:
            raise ValueError(
                f"grid {h}x{w} exceeds max_grid={self.max_grid}; raise max_grid or set grid_pool"
            )
        tokens = grid.flatten(2).transpose(1, 2)  # [S, h*w, H]
        rows = torch.arange(h, device=grid.device).repeat_interleave(w)
        cols = torch.arange(w, device=grid.device).repeat(h)
        tokens = tokens + self.row(rows) + self.col(cols) + self.token_type.weight[0]
        return self.dropout(self.norm(tokens))


class ClipBertVQA(nn.Module):
    """The ClipBERT-style model with one head per task (see the module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if config.vision_checkpoint:
            self.vision = ResNetModel.from_pretrained(config.vision_checkpoint, local_files_only=True)
        else:
            self.vision = ResNetModel(ResNetConfig(**config.vision))
        if config.stem == "small":
            use_small_stem(self.vision)
        if config.text_checkpoint:
            self.bert = BertModel.from_pretrained(
                config.text_checkpoint, add_pooling_layer=False, local_files_only=True
            )
        else:
            self.bert = BertModel(BertConfig(**config.text), add_pooling_layer=False)
        hidden = self.bert.config.hidden_size
        if config.visual_head == "clipbert":
            self.visual = ClipBertVisualEmbedding(
                self.vision.config.hidden_sizes[-1], hidden, config.max_grid,
                self.bert.config.layer_norm_eps, self.bert.config.hidden_dropout_prob,
            )  # fmt: skip
        else:
            self.visual = VisualEmbedding(self.vision.config.hidden_sizes[-1], hidden, config.max_grid)
        self.heads = nn.ModuleDict()
        for name, spec in config.heads.items():
            out = spec.num_answers if spec.kind == TaskKind.OPEN_ENDED.value else 1
            self.heads[name] = _mlp_head(hidden, out)
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(1, 3, 1, 1), persistent=False)
        for module in self.frozen_vision_modules():
            module.requires_grad_(False)
            module.eval()

    def frozen_vision_modules(self) -> list[nn.Module]:
        """The ResNet parts ``config.freeze_at`` freezes: ``[]``, ``[stem]`` or ``[stem, first stage]``."""
        parts = [self.vision.embedder, self.vision.encoder.stages[0]]
        return parts[: self.config.freeze_at]

    def train(self, mode: bool = True) -> ClipBertVQA:
        """As ``nn.Module.train``, but the frozen ResNet parts stay in eval mode (frozen BatchNorm)."""
        super().train(mode)
        for module in self.frozen_vision_modules():
            module.eval()
        return self

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    # -- encoders ---------------------------------------------------------------------------------------
    def encode_clips(
        self, pixel_values: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """All frames of all clips through the ResNet in one batch, then the temporal mean per clip.

        Args:
            pixel_values: ``[V, N, T, H, W, 3]`` uint8 (0–255) or float already in [0, 1].
            frame_mask: optional ``[V, N, T]`` bool, False for padding frames (left out of the mean).

        Returns:
            ``[V, N, h*w, hidden]`` visual tokens.
        """
        v, n, t, hh, ww, _ = pixel_values.shape
        # [VNT, 3, H, W] as a view of the channels-last input, which the convolutions prefer
        x = pixel_values.reshape(v * n * t, hh, ww, 3).permute(0, 3, 1, 2)
        chunk = self.config.vision_chunk_frames
        if chunk is None and not self.config.checkpoint_vision:
            grid = self._frame_grid(x)
        else:
            # Only one chunk's ResNet activations are alive at a time when checkpointed: the rest are
            # recomputed chunk by chunk in the backward pass.
            parts = x.split(chunk or x.shape[0])
            if self.config.checkpoint_vision and torch.is_grad_enabled():
                grid = torch.cat([checkpoint(self._frame_grid, p, use_reentrant=False) for p in parts])
            else:
                grid = torch.cat([self._frame_grid(p) for p in parts])
        grid = grid.reshape(v, n, t, *grid.shape[1:])
        if frame_mask is None:
            pooled = grid.mean(dim=2)
        else:
            m = frame_mask.to(grid.dtype).view(v, n, t, 1, 1, 1)
            pooled = (grid * m).sum(2) / m.sum(2).clamp_min(1.0)
        tokens = self.visual(pooled.flatten(0, 1))  # [VN, h*w, H]
        return tokens.view(v, n, *tokens.shape[1:])

    def _frame_grid(self, x: torch.Tensor) -> torch.Tensor:
        """``[F, 3, H, W]`` pixels (uint8, or float in [0, 1]) -> ``[F, C, h, w]`` grid features per frame."""
        # (x / 255 - mean) / std in one fused pass over the frames (four separate passes cost twice as much)
        scale = 1.0 / (self.pixel_std * (255.0 if x.dtype == torch.uint8 else 1.0))
        x = torch.addcmul(-self.pixel_mean / self.pixel_std, x.float(), scale)
        x = x.contiguous(memory_format=torch.channels_last)
        # = self.vision(x).last_hidden_state, BatchNorm folded into the convolutions where it is fixed
        # (frozen parts; every part in eval mode): siasamrea.method.folded_resnet
        grid = forward_parts([self.vision.embedder, *self.vision.encoder.stages], x)  # [F, C, h, w]
        if isinstance(self.visual, ClipBertVisualEmbedding):
            grid = self.visual.encode_frames(grid)
        if self.config.grid_pool:
            grid = nn.functional.adaptive_avg_pool2d(grid, self.config.grid_pool)
        return grid

    def fuse(
        self, visual: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Text and visual tokens through BERT; returns the [CLS] features.

        Args:
            visual: ``[S, P, H]`` visual tokens of S sequences.
            input_ids, attention_mask: ``[S, L]``.

        Returns:
            ``[S, H]``.
        """
        s, length = input_ids.shape
        p = visual.shape[1]
        if isinstance(self.visual, ClipBertVisualEmbedding):
            # ClipBERT: BERT's embedding layer for the text only; the visual tokens are already embedded.
            text = self.bert.embeddings(input_ids=input_ids)  # [S, L, H]
            embeds = torch.cat([text, visual.to(text.dtype)], dim=1)
            full = torch.cat([attention_mask, attention_mask.new_ones(s, p)], dim=1)
            mask = create_bidirectional_mask(
                config=self.bert.config, inputs_embeds=embeds, attention_mask=full
            )
            return self.bert.encoder(embeds, attention_mask=mask).last_hidden_state[:, 0]
        word = self.bert.embeddings.word_embeddings(input_ids)  # [S, L, H]
        embeds = torch.cat([word, visual.to(word.dtype)], dim=1)
        dev = input_ids.device
        position_ids = torch.cat(
            [torch.arange(length, device=dev), torch.zeros(p, dtype=torch.long, device=dev)]
        )
        token_type = torch.cat(
            [torch.zeros(length, dtype=torch.long, device=dev), torch.ones(p, dtype=torch.long, device=dev)]
        )
        mask = torch.cat([attention_mask, attention_mask.new_ones(s, p)], dim=1)
        out = self.bert(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=position_ids.expand(s, -1),
            token_type_ids=token_type.expand(s, -1),
        )
        return out.last_hidden_state[:, 0]

    # -- forward ----------------------------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        task: str,
        frame_mask: torch.Tensor | None = None,
    ) -> ClipOutputs:
        """Training forward over every clip of every video.

        Args:
            pixel_values: ``[V, N, T, H, W, 3]``.
            input_ids, attention_mask: ``[V, L]`` (open-ended, count) or ``[V, M, L]`` (multiple choice:
                question and candidate m encoded together).
            task: name of the head to use.
            frame_mask: optional ``[V, N, T]``.

        Returns:
            :class:`ClipOutputs` with ``features [V, N, H]`` and ``logits`` ``[V, N, K]`` / ``[V, N, M]`` /
            ``[V, N]``.
        """
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r}; this model has heads {sorted(self.heads)}")
        kind = self.config.heads[task].kind
        v, n = pixel_values.shape[:2]
        visual = self.encode_clips(pixel_values, frame_mask)  # [V, N, P, H]
        if kind == TaskKind.MULTIPLE_CHOICE.value:
            if input_ids.dim() != 3:
                raise ValueError(
                    f"multiple-choice task {task!r} needs input_ids [V, M, L], got {tuple(input_ids.shape)}"
                )
            m = input_ids.shape[1]
            # Sequences ordered (video, clip, candidate): every clip's tokens paired with every candidate.
            vis = visual[:, :, None].expand(-1, -1, m, -1, -1).flatten(0, 2)
            ids = input_ids[:, None].expand(-1, n, -1, -1).flatten(0, 2)
            att = attention_mask[:, None].expand(-1, n, -1, -1).flatten(0, 2)
            cls = self.fuse(vis, ids, att).view(v, n, m, -1)
            logits = self.heads[task](cls).squeeze(-1)  # [V, N, M]
            features = cls.mean(dim=2)
        else:
            if input_ids.dim() != 2:
                raise ValueError(f"task {task!r} needs input_ids [V, L], got {tuple(input_ids.shape)}")
            ids = input_ids[:, None].expand(-1, n, -1).flatten(0, 1)
            att = attention_mask[:, None].expand(-1, n, -1).flatten(0, 1)
            cls = self.fuse(visual.flatten(0, 1), ids, att).view(v, n, -1)
            logits = self.heads[task](cls)
            features = cls
            if kind == TaskKind.COUNT.value:
                logits = logits.squeeze(-1)  # [V, N]
        return ClipOutputs(features=features, logits=logits, kind=kind)

    def predict(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        task: str,
        frame_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inference on one clip per video (the anchor, as the paper evaluates).

        Args:
            pixel_values: ``[V, T, H, W, 3]``.
            frame_mask: optional ``[V, T]``.

        Returns:
            ``[V, K]`` / ``[V, M]`` / ``[V]``.
        """
        fm = None if frame_mask is None else frame_mask[:, None]
        return self.forward(pixel_values[:, None], input_ids, attention_mask, task, fm).logits[:, 0]

    # -- persistence ------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (the whole model, encoders included)."""

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = self.config.to_dict()
        # Checkpoint paths are resolved now: the saved model carries the encoders' configs instead.
        cfg.update(
            vision=self.vision.config.to_dict(),
            text=self.bert.config.to_dict(),
            vision_checkpoint=None,
            text_checkpoint=None,
        )
        (d / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
        save_model(self, str(d / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ClipBertVQA:
        """Load a model written by :meth:`save_pretrained` from a local directory."""

        d = Path(directory)
        if not (d / "config.json").is_file() or not (d / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{d}: expected config.json and model.safetensors (save_pretrained output)"
            )
        cfg = json.loads((d / "config.json").read_text())
        cfg["vision"] = _config_kwargs(cfg["vision"], ResNetConfig)
        cfg["text"] = _config_kwargs(cfg["text"], BertConfig)
        model = cls(ModelConfig(**cfg))
        load_model(model, str(d / "model.safetensors"))
        return model


def use_small_stem(resnet: ResNetModel) -> None:
    """Replace a ``transformers`` ResNet's /4 stem by a 3x3 stride-1 conv without max-pool (in place).

    The grid is then 4x finer per side: ``[F, 3, H, W]`` -> ``[F, C, H/4, W/4]`` with the default three
    stages (two of them downsampling) instead of ``[F, C, H/16, W/16]``.
    """
    conv = resnet.embedder.embedder.convolution
    resnet.embedder.embedder.convolution = nn.Conv2d(
        conv.in_channels, conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False
    )
    resnet.embedder.pooler = nn.Identity()


def _config_kwargs(saved: dict, config_cls) -> dict:
    """Keep only the keys a ``transformers`` config class accepts back (drops bookkeeping fields)."""
    reference = config_cls().to_dict()
    return {
        k: v for k, v in saved.items() if k in reference and k not in ("transformers_version", "model_type")
    }
