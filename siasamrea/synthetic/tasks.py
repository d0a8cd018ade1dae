"""What each synthetic video shows and what is asked about it, for every task of the benchmark.

Each generator draws one video from a :class:`Domain` (its look and its lengths) and returns a
:class:`VideoSpec`: the sprites to draw, the questions, and the ground truth of *when* the answer is
visible (``core`` frames fully, ``faint`` frames faintly), which Figure 4 and the mechanism analysis use.

TGIF-QA-like tasks (pretraining):

* ``frameqa`` (open-ended; question types object / number / color / location as in TGIF-QA): a coloured
  shape flashes for a few frames; the question asks its colour, its shape, how many copies flash, or where.
* ``count``: a shape flashes k times (1–6); "how many times does the red star flash ?".
* ``action`` (5-way multiple choice): a shape visible throughout performs one of six actions during a few
  frames (jump, slide, grow, shrink, blink, shake); "what does the red star do ?".
* ``transition`` (5-way multiple choice): a shape visible throughout turns another colour for a few frames;
  "what color does the star turn into ?".

Downstream sets, distributed differently (other backgrounds, sizes, lengths, shapes and colours):

* MSVD-QA-like (open-ended, question types by first word: what / who / how / where): two shapes are
  visible throughout; during one short window one of them moves and a third, coloured shape appears.
* How2QA-like (4-way multiple choice): the same kind of scene in long videos with 4 candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from siasamrea.synthetic.render import COLORS, Sprite, drifting_distractors, envelope

ACTIONS = ("jump", "slide", "grow", "shrink", "blink", "shake")
REGIONS = ("top", "bottom", "left", "right")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
FRAMEQA_TYPES = ("object", "number", "color", "location")  # TGIF-QA's type 0..3


@dataclass(frozen=True)
class Domain:
    """The look of one dataset: sizes, backgrounds, vocabularies and the evidence's visibility."""

    name: str
    styles: tuple[str, ...]
    lengths: tuple[tuple[int, int, float], ...]  # (low, high, weight): mixture of uniform length ranges
    colors: tuple[str, ...]
    shapes: tuple[str, ...]
    object_size: tuple[int, int] = (12, 16)  # pixels at 64x64, scaled with the frame size
    core: tuple[int, int] = (2, 3)  # frames the evidence is fully visible
    ramp: tuple[int, int] = (1, 2)  # faint frames either side
    faint_alpha: float = 0.35
    distractors: tuple[int, int] = (1, 3)
    noise: float = 6.0

    def length(self, rng: np.random.Generator) -> int:
        w = np.array([r[2] for r in self.lengths], dtype=float)
        low, high, _ = self.lengths[int(rng.choice(len(self.lengths), p=w / w.sum()))]
        return int(rng.integers(low, high + 1))


@dataclass
class Question:
    """One question: open-ended/count answer, or multiple-choice candidates + index."""

    question: str
    answer: str
    kind: str  # "open_ended" | "multiple_choice" | "count"
    candidates: tuple[str, ...] = ()
    answer_index: int | None = None
    question_type: str | None = None
    description: str = ""


@dataclass
class VideoSpec:
    num_frames: int
    style: str
    sprites: list[Sprite]
    questions: list[Question]
    core: list[tuple[int, int]] = field(default_factory=list)  # inclusive frame ranges
    faint: list[tuple[int, int]] = field(default_factory=list)


# -- helpers -----------------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, items, k: int | None = None, exclude=()):
    pool = [x for x in items if x not in exclude]
    if k is None:
        return pool[int(rng.integers(len(pool)))]
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def _object_size(domain: Domain, frame: int, rng: np.random.Generator) -> int:
    lo, hi = (max(4, round(s * frame / 64)) for s in domain.object_size)
    return int(rng.integers(lo, hi + 1))


def _window(
    num_frames: int, core_len: int, ramp: int, rng: np.random.Generator, lo: int = 0, hi: int | None = None
):
    """A core window ``(first, last)`` with room for the ramp on both sides, inside ``[lo, hi)``."""
    hi = num_frames if hi is None else hi
    first_min = lo + ramp
    first_max = max(first_min, hi - ramp - core_len)
    first = int(rng.integers(first_min, first_max + 1))
    return first, min(first + core_len - 1, num_frames - 1)


def _faint_ranges(core: tuple[int, int], ramp: int, num_frames: int) -> list[tuple[int, int]]:
    first, last = core
    out = []
    if ramp and first > 0:
        out.append((max(first - ramp, 0), first - 1))
    if ramp and last < num_frames - 1:
        out.append((last + 1, min(last + ramp, num_frames - 1)))
    return out


def _region_position(region: str, frame: int, s: int, rng: np.random.Generator) -> tuple[int, int]:
    """(top, left) of an object of size s inside a region of the frame (bands of a quarter of the frame)."""
    q = frame // 4
    jitter = lambda lo, hi: int(rng.integers(lo, max(lo, hi) + 1))  # noqa: E731
    mid = (frame - s) // 2
    if region == "top":
        return jitter(0, q - s // 2), jitter(mid - q // 2, mid + q // 2)
    if region == "bottom":
        return jitter(frame - q - s // 2, frame - s), jitter(mid - q // 2, mid + q // 2)
    if region == "left":
        return jitter(mid - q // 2, mid + q // 2), jitter(0, q - s // 2)
    if region == "right":
        return jitter(mid - q // 2, mid + q // 2), jitter(frame - q - s // 2, frame - s)
    raise ValueError(region)


def _static(num_frames: int, pos, s: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tile(np.asarray(pos, dtype=int), (num_frames, 1)), np.full(num_frames, s, dtype=int)


def _flash(shape, color_name, pos, s, num_frames, core, ramp, domain) -> Sprite:
    positions, sizes = _static(num_frames, pos, s)
    return Sprite(
        shape, COLORS[color_name], positions, envelope(num_frames, core, ramp, domain.faint_alpha), sizes
    )


def _perform(sprite: Sprite, action: str, core: tuple[int, int], ramp: int, faint: float) -> None:
    """Make a visible-throughout sprite perform ``action`` on the core frames (half as much on the ramp)."""
    n = len(sprite.alphas)
    strength = envelope(n, core, ramp, faint * 1.4)  # how far into the action each frame is, 0..1
    s0 = int(sprite.sizes[0])
    for t in np.nonzero(strength)[0]:
        k = float(strength[t])
        if action == "jump":
            sprite.positions[t, 0] -= int(round(k * s0 * 0.9))
        elif action == "slide":
            sprite.positions[t, 1] += int(round(k * s0 * 0.9))
        elif action == "grow":
            grow = int(round(s0 * (1 + 0.7 * k)))
            sprite.sizes[t] = grow
            sprite.positions[t] -= (grow - s0) // 2
        elif action == "shrink":
            small = max(2, int(round(s0 * (1 - 0.55 * k))))
            sprite.sizes[t] = small
            sprite.positions[t] += (s0 - small) // 2
        elif action == "blink":
            sprite.alphas[t] = 1.0 - k
        elif action == "shake":
            sprite.positions[t, 1] += int(round(k * s0 * 0.6)) * (1 if t % 2 else -1)
        else:
            raise ValueError(f"unknown action {action!r}")


def _actor(domain: Domain, frame: int, num_frames: int, rng, shape, color_name) -> Sprite:
    s = _object_size(domain, frame, rng)
    margin = s  # room to jump/slide/grow without leaving the frame
    pos = (int(rng.integers(margin, frame - 2 * s + 1)), int(rng.integers(margin // 2, frame - 2 * s + 1)))
    positions, sizes = _static(num_frames, pos, s)
    return Sprite(shape, COLORS[color_name], positions, np.ones(num_frames, dtype=np.float32), sizes)


def _mc(rng, correct: str, pool, k: int) -> tuple[tuple[str, ...], int]:
    cands = [correct, *_pick(rng, pool, k - 1, exclude=(correct,))]
    order = rng.permutation(k)
    cands = [cands[i] for i in order]
    return tuple(cands), int(cands.index(correct))


def _base(domain: Domain, frame: int, rng) -> tuple[int, str, list[Sprite]]:
    n = domain.length(rng)
    style = _pick(rng, domain.styles)
    distract = drifting_distractors(
        n, frame, int(rng.integers(domain.distractors[0], domain.distractors[1] + 1)), rng
    )
    return n, style, distract


def _evidence_window(domain: Domain, n: int, rng) -> tuple[tuple[int, int], int]:
    core_len = int(rng.integers(domain.core[0], domain.core[1] + 1))
    ramp = int(rng.integers(domain.ramp[0], domain.ramp[1] + 1))
    return _window(n, core_len, ramp, rng), ramp


# -- TGIF-QA-like ------------------------------------------------------------------------------------
def frameqa_video(domain: Domain, frame: int, rng: np.random.Generator) -> VideoSpec:
    n, style, sprites = _base(domain, frame, rng)
    qtype = _pick(rng, FRAMEQA_TYPES)
    shape, color = _pick(rng, domain.shapes), _pick(rng, domain.colors)
    core, ramp = _evidence_window(domain, n, rng)
    s = _object_size(domain, frame, rng)
    copies = int(rng.integers(1, 4)) if qtype == "number" else 1
    region = _pick(rng, REGIONS)
    if qtype == "number":
        regions = _pick(rng, REGIONS, copies)
        positions = [_region_position(r, frame, s, rng) for r in regions]
    else:
        positions = [
            _region_position(region, frame, s, rng)
            if qtype == "location"
            else (int(rng.integers(0, frame - s + 1)), int(rng.integers(0, frame - s + 1)))
        ]
    for pos in positions:
        sprites.append(_flash(shape, color, pos, s, n, core, ramp, domain))
    if qtype == "color":
        q, a = f"what color is the {shape} that appears ?", color
    elif qtype == "object":
        q, a = f"what shape is the {color} object that appears ?", shape
    elif qtype == "number":
        q, a = f"how many {color} {_plural(shape)} appear ?", NUMBER_WORDS[copies]
    else:
        q, a = f"where does the {color} {shape} appear ?", region
    what = (
        f"a {color} {shape} appears"
        if copies == 1
        else f"{NUMBER_WORDS[copies]} {color} {_plural(shape)} appear"
    )
    desc = what + (f" at the {region}" if qtype == "location" else "")
    question = Question(q, a, "open_ended", question_type=qtype, description=desc + " .")
    return VideoSpec(n, style, sprites, [question], [core], _faint_ranges(core, ramp, n))


def count_video(domain: Domain, frame: int, rng: np.random.Generator, max_count: int = 6) -> VideoSpec:
    n, style, sprites = _base(domain, frame, rng)
    shape, color = _pick(rng, domain.shapes), _pick(rng, domain.colors)
    s = _object_size(domain, frame, rng)
    pos = (int(rng.integers(0, frame - s + 1)), int(rng.integers(0, frame - s + 1)))
    slot = domain.core[1] + 2 * domain.ramp[1] + 2  # frames one flash needs, gap included
    k = int(rng.integers(1, max(1, min(max_count, n // slot)) + 1))
    # k flashes in k disjoint slots spread over the video
    bounds = np.linspace(0, n, k + 1).astype(int)
    alphas = np.zeros(n, dtype=np.float32)
    cores, faints = [], []
    for i in range(k):
        core, ramp = _evidence_window(domain, n, rng)
        core_len = core[1] - core[0] + 1
        core = _window(n, core_len, ramp, rng, lo=int(bounds[i]), hi=int(bounds[i + 1]))
        alphas = np.maximum(alphas, envelope(n, core, ramp, domain.faint_alpha))
        cores.append(core)
        faints.extend(_faint_ranges(core, ramp, n))
    positions, sizes = _static(n, pos, s)
    sprites.append(Sprite(shape, COLORS[color], positions, alphas, sizes))
    q = Question(f"how many times does the {color} {shape} flash ?", str(k), "count")
    return VideoSpec(n, style, sprites, [q], cores, faints)


def action_video(domain: Domain, frame: int, rng: np.random.Generator, num_candidates: int = 5) -> VideoSpec:
    n, style, sprites = _base(domain, frame, rng)
    shape, color = _pick(rng, domain.shapes), _pick(rng, domain.colors)
    actor = _actor(domain, frame, n, rng, shape, color)
    action = _pick(rng, ACTIONS)
    core, ramp = _evidence_window(domain, n, rng)
    _perform(actor, action, core, ramp, domain.faint_alpha)
    sprites.append(actor)
    cands, idx = _mc(rng, action, ACTIONS, num_candidates)
    q = Question(f"what does the {color} {shape} do ?", action, "multiple_choice", cands, idx)
    return VideoSpec(n, style, sprites, [q], [core], _faint_ranges(core, ramp, n))


def transition_video(
    domain: Domain, frame: int, rng: np.random.Generator, num_candidates: int = 5
) -> VideoSpec:
    n, style, sprites = _base(domain, frame, rng)
    shape, before = _pick(rng, domain.shapes), _pick(rng, domain.colors)
    after = _pick(rng, domain.colors, exclude=(before,))
    actor = _actor(domain, frame, n, rng, shape, before)
    core, ramp = _evidence_window(domain, n, rng)
    mix = envelope(n, core, ramp, domain.faint_alpha)
    b, a = np.array(COLORS[before], float), np.array(COLORS[after], float)
    actor.colors = [tuple(int(v) for v in (1 - m) * b + m * a) for m in mix]
    sprites.append(actor)
    cands, idx = _mc(rng, after, domain.colors, num_candidates)
    q = Question(f"what color does the {shape} turn into ?", after, "multiple_choice", cands, idx)
    return VideoSpec(n, style, sprites, [q], [core], _faint_ranges(core, ramp, n))


# -- downstream: one shared event per video, several questions --------------------------------------
@dataclass
class _Scene:
    spec: VideoSpec
    mover: tuple[str, str]  # (shape, colour) of the shape that moves
    still: tuple[str, str]
    action: str
    flash: tuple[str, str]  # (shape, colour) of the shape that appears
    region: str


def _event_scene(domain: Domain, frame: int, rng: np.random.Generator) -> _Scene:
    n, style, sprites = _base(domain, frame, rng)
    s_mover, s_still, s_flash = _pick(rng, domain.shapes, 3)
    c_mover, c_still, c_flash = (_pick(rng, domain.colors) for _ in range(3))
    mover = _actor(domain, frame, n, rng, s_mover, c_mover)
    still = _actor(domain, frame, n, rng, s_still, c_still)
    action = _pick(rng, ACTIONS)
    core, ramp = _evidence_window(domain, n, rng)
    _perform(mover, action, core, ramp, domain.faint_alpha)
    region = _pick(rng, REGIONS)
    s = _object_size(domain, frame, rng)
    flash = _flash(s_flash, c_flash, _region_position(region, frame, s, rng), s, n, core, ramp, domain)
    sprites += [still, mover, flash]
    spec = VideoSpec(n, style, sprites, [], [core], _faint_ranges(core, ramp, n))
    return _Scene(spec, (s_mover, c_mover), (s_still, c_still), action, (s_flash, c_flash), region)


def _scene_questions(sc: _Scene) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(question, answer, type, answer pool) for every template about a scene."""
    (sm, cm), (sf, cf) = sc.mover, sc.flash
    return [
        (f"what color is the {sf} that appears ?", cf, "what", tuple(COLORS)),
        (f"what appears at the {sc.region} ?", sf, "what", None),
        (f"who {_plural(sc.action)} ?", sm, "who", None),
        (f"how does the {cm} {sm} move ?", sc.action, "how", ACTIONS),
        (f"where does the {cf} {sf} appear ?", sc.region, "where", REGIONS),
    ]


def msvd_video(
    domain: Domain, frame: int, rng: np.random.Generator, questions: tuple[int, int] = (2, 3)
) -> VideoSpec:
    sc = _event_scene(domain, frame, rng)
    templates = _scene_questions(sc)
    k = int(rng.integers(questions[0], questions[1] + 1))
    for i in sorted(rng.choice(len(templates), size=k, replace=False)):
        q, a, qtype, _ = templates[int(i)]
        sc.spec.questions.append(Question(q, a, "open_ended", question_type=qtype))
    return sc.spec


def how2qa_video(domain: Domain, frame: int, rng: np.random.Generator, num_candidates: int = 4) -> VideoSpec:
    sc = _event_scene(domain, frame, rng)
    q, a, qtype, pool = _scene_questions(sc)[int(rng.integers(5))]
    pool = pool or domain.shapes
    pool = [p for p in pool if p in domain.colors or p not in COLORS]  # colours restricted to the domain's
    cands, idx = _mc(rng, a, pool, num_candidates)
    sc.spec.questions.append(Question(q, a, "multiple_choice", cands, idx, question_type=qtype))
    return sc.spec


TGIF_TASKS = {
    "action": action_video,
    "transition": transition_video,
    "count": count_video,
    "frameqa": frameqa_video,
}
