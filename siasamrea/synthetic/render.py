"""Drawing the synthetic videos: shapes, backgrounds, distractors and brief events, with numpy.

A video is a background (a style per domain, so that pretraining and downstream data differ), a few grey
distractor blobs drifting the whole time (clutter that never carries an answer), and the *evidence*: one
or more events that last only a few frames. An event is fully visible for its ``core`` frames and faintly
visible (alpha ``faint_alpha``) for ``ramp`` frames on either side: the "ambiguous parts" of the paper's
Figure 4, where a sparse clip sees the bird only half-formed while a nearby siamese clip sees it whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 220, 50),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "cyan": (40, 210, 220),
    "pink": (245, 120, 190),
    "brown": (130, 80, 40),
}
SHAPES = ("square", "circle", "triangle", "diamond", "cross", "ring", "bar", "star")
BACKGROUNDS = ("plain", "stripes", "checker", "gradient")


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``[size, size]`` mask of a shape centred in its box."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = (y - c) / max(c, 1.0), (x - c) / max(c, 1.0)  # in [-1, 1]
    r = np.sqrt(dx**2 + dy**2)
    if shape == "square":
        m = (np.abs(dx) <= 0.8) & (np.abs(dy) <= 0.8)
    elif shape == "circle":
        m = r <= 0.9
    elif shape == "triangle":
        m = (dy >= -0.85) & (dy <= 0.85) & (np.abs(dx) <= (dy + 0.85) / 1.7 * 0.95)
    elif shape == "diamond":
        m = np.abs(dx) + np.abs(dy) <= 0.95
    elif shape == "cross":
        m = ((np.abs(dx) <= 0.28) | (np.abs(dy) <= 0.28)) & (np.abs(dx) <= 0.9) & (np.abs(dy) <= 0.9)
    elif shape == "ring":
        m = (r <= 0.95) & (r >= 0.55)
    elif shape == "bar":
        m = (np.abs(dx) <= 0.9) & (np.abs(dy) <= 0.3)
    elif shape == "star":
        angle = np.arctan2(dy, dx)
        m = r <= 0.45 + 0.45 * (np.cos(5 * angle) > 0.3)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    return m


def background(style: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """``float32 [size, size, 3]`` background of a style; colours dark and muted so objects stand out."""
    base = rng.uniform(20, 80, size=3).astype(np.float32)
    other = rng.uniform(20, 80, size=3).astype(np.float32)
    y, x = np.mgrid[0:size, 0:size]
    if style == "plain":
        img = np.broadcast_to(base, (size, size, 3)).copy()
    elif style == "stripes":
        period = int(rng.integers(6, 14))
        sel = ((x + y * int(rng.integers(0, 2))) // (period // 2)) % 2 == 0
        img = np.where(sel[..., None], base, other)
    elif style == "checker":
        cell = int(rng.integers(6, 12))
        sel = ((x // cell) + (y // cell)) % 2 == 0
        img = np.where(sel[..., None], base, other)
    elif style == "gradient":
        t = (x / max(size - 1, 1))[..., None]
        img = base * (1 - t) + other * t
    else:
        raise ValueError(f"unknown background style {style!r}; known: {BACKGROUNDS}")
    return img.astype(np.float32)


def paste(frame: np.ndarray, mask: np.ndarray, color, top: int, left: int, alpha: float = 1.0) -> None:
    """Blend ``color`` into ``frame [H, W, 3]`` (float32) where ``mask`` is set, clipped at the borders."""
    h, w = frame.shape[:2]
    mh, mw = mask.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + mh, h), min(left + mw, w)
    if t0 >= t1 or l0 >= l1:
        return
    m = mask[t0 - top : t1 - top, l0 - left : l1 - left]
    region = frame[t0:t1, l0:l1]
    col = np.asarray(color, dtype=np.float32)
    region[m] = (1 - alpha) * region[m] + alpha * col


@dataclass
class Sprite:
    """An object drawn on some frames: at ``positions[t]`` (top, left) with ``alphas[t]`` and ``sizes[t]``.

    Arrays are indexed by frame; alpha 0 means absent. ``colors`` may override the colour per frame.
    """

    shape: str
    color: tuple[int, int, int]
    positions: np.ndarray  # int [L, 2]
    alphas: np.ndarray  # float [L]
    sizes: np.ndarray  # int [L]
    colors: list[tuple[int, int, int]] | None = None
    _masks: dict = field(default_factory=dict, repr=False)

    def mask(self, size: int) -> np.ndarray:
        if size not in self._masks:
            self._masks[size] = shape_mask(self.shape, size)
        return self._masks[size]

    def draw(self, frame: np.ndarray, t: int) -> None:
        a = float(self.alphas[t])
        if a <= 0:
            return
        color = self.color if self.colors is None else self.colors[t]
        s = int(self.sizes[t])
        top, left = (int(v) for v in self.positions[t])
        paste(frame, self.mask(s), color, top, left, a)


def envelope(num_frames: int, core: tuple[int, int], ramp: int, faint_alpha: float) -> np.ndarray:
    """Visibility of an event: 1 on ``core = (first, last)`` (inclusive), ``faint_alpha`` on ``ramp`` frames
    either side, 0 elsewhere. ``float32 [num_frames]``."""
    a = np.zeros(num_frames, dtype=np.float32)
    first, last = core
    a[max(first - ramp, 0) : min(last + ramp + 1, num_frames)] = faint_alpha
    a[first : last + 1] = 1.0
    return a


def drifting_distractors(num_frames: int, size: int, count: int, rng: np.random.Generator) -> list[Sprite]:
    """Grey blobs that drift across the frame for the whole video; they never answer a question."""
    sprites = []
    for _ in range(count):
        s = int(rng.integers(size // 10, size // 6 + 1))
        start = rng.uniform(0, size - s, size=2)
        vel = rng.uniform(-0.8, 0.8, size=2)
        path = start[None, :] + vel[None, :] * np.arange(num_frames)[:, None]
        span = size - s
        path = np.abs(((path % (2 * span)) + 2 * span) % (2 * span))  # bounce off the borders
        path = np.where(path > span, 2 * span - path, path)
        grey = int(rng.integers(90, 160))
        sprites.append(
            Sprite(
                shape=str(rng.choice(["circle", "square"])),
                color=(grey, grey, grey),
                positions=path.astype(int),
                alphas=np.ones(num_frames, dtype=np.float32),
                sizes=np.full(num_frames, s),
            )
        )
    return sprites


def render(
    num_frames: int,
    size: int,
    style: str,
    sprites: list[Sprite],
    rng: np.random.Generator,
    noise: float = 6.0,
) -> np.ndarray:
    """Draw every frame: background, sprites in order, Gaussian noise. ``uint8 [L, size, size, 3]``."""
    bg = background(style, size, rng)
    out = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        frame = bg.copy()
        for sp in sprites:
            sp.draw(frame, t)
        if noise > 0:
            frame += rng.normal(0.0, noise, size=frame.shape).astype(np.float32)
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out
