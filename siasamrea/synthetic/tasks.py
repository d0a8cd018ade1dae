"""What each synthetic video shows and what is asked about it, for every task of the benchmark.

Each generator draws one video from a :class:`Domain` (its look and its lengths) and returns a
:class:`VideoSpec`: the sprites to draw, the questions, and the ground truth of *when* the answer is
visible (``core`` frames fully, ``faint`` frames faintly), which Figure 4 and the mechanism analysis use.

TGIF-QA-like tasks (pretraining):

* ``frameqa`` (open-ended; question types object / number / color / location as in TGIF-QA): a coloured
  shape (1–3 copies) flashes for a few frames; questions ask its colour, its shape, how many, or where.
* ``count``: a shape flashes k times (1–5, whatever the length); "how many times does the red star flash ?".
* ``action`` (5-way multiple choice): a shape visible throughout performs one of five actions (jump, slide,
  grow, blink, shake) over and over through most of the video, as a GIF loops; "what does the red star do ?".
  Every question lists all five.
* ``transition`` (5-way multiple choice): a shape visible throughout turns another colour in the first half
  of the video and stays so; "what color does the star turn into ?".

Downstream sets, distributed differently (other background patterns, distractors and lengths):

* MSVD-QA-like (open-ended, question types by first word: what / who / how / where): one coloured shape
  (1–3 copies) flashes in one region of the frame; questions ask its colour, its shape, how many, where.
  TGIF-QA's frameqa uses the same kind of scene.
* How2QA-like (4-way multiple choice): the same kind of scene in longer videos, with 4 candidates.

And still scenes (the object visible in every frame), in TGIF-QA's format, as the embedded stand-in for
the image-text data ClipBERT's initial weights were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from siasamrea.synthetic.render import COLORS, Sprite, drifting_distractors, envelope

#: Five actions whose footprints in ClipBERT's temporal mean differ: a vertical, a horizontal and a diagonal
#: smear, a larger silhouette, a fainter one (``python -m siasamrea.analysis.action_footprints``). An earlier
#: set had "shrink" (fainter at the edges, taken for "blink") and a horizontal "shake" (taken for "slide"):
#: 64% separable from the footprint against 84% for these five, and 22% learned (README).
ACTIONS = ("jump", "slide", "grow", "blink", "shake")
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
    object_size: tuple[int, int] = (16, 20)  # pixels at 64x64, scaled with the frame size
    core: tuple[int, int] = (4, 7)  # frames the evidence is fully visible
    ramp: tuple[int, int] = (2, 3)  # faint frames either side
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


#: A TGIF-QA-like action loops, as a GIF does: it repeats through a window covering this share of the video,
#: with a period of ACTION_PERIOD frames (low inclusive, high exclusive). Performed once over a few frames, an
#: action was shown by the anchor clip for 41% of the questions and, averaged over the clip's frames, not
#: recognised even then (20.5% where shown, chance 20%; README).
ACTION_SPAN = (0.6, 0.9)
ACTION_PERIOD = (4, 8)


def _action_window(n: int, rng: np.random.Generator) -> tuple[int, int]:
    core_len = int(round(n * rng.uniform(*ACTION_SPAN)))
    first = int(rng.integers(0, n - core_len + 1))
    return first, first + core_len - 1


def _perform(sprite: Sprite, action: str, core: tuple[int, int], rng: np.random.Generator) -> None:
    """Make a visible-throughout sprite perform ``action`` over and over on the ``core`` frames: its strength
    follows a triangle wave (0 -> 1 -> 0) of a random period and phase, so any few frames of the window catch
    it at different phases, and the frames outside it show the sprite at rest."""
    first, last = core
    period = int(rng.integers(*ACTION_PERIOD))
    phase0 = int(rng.integers(0, period))
    s0 = int(sprite.sizes[0])
    for t in range(first, last + 1):
        k = 1.0 - abs(2.0 * ((t - first + phase0) % period) / period - 1.0)  # how far into the action, 0..1
        if action == "jump":
            sprite.positions[t, 0] -= int(round(k * s0 * 0.9))
        elif action == "slide":
            sprite.positions[t, 1] += int(round(k * s0 * 0.9))
        elif action == "grow":
            grow = int(round(s0 * (1 + 0.7 * k)))
            sprite.sizes[t] = grow
            sprite.positions[t] -= (grow - s0) // 2
        elif action == "blink":
            sprite.alphas[t] = 1.0 - k
        elif action == "shake":  # diagonally up-left and down-right in turn (sideways, it smeared as "slide")
            sprite.positions[t] += int(round(k * s0 * 0.6)) * (1 if t % 2 else -1)
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
def count_video(domain: Domain, frame: int, rng: np.random.Generator, max_count: int = 5) -> VideoSpec:
    """k flashes, k uniform in 1..max_count whatever the video's length (a short video gets shorter flashes
    rather than fewer: otherwise the length alone would predict the count)."""
    n, style, sprites = _base(domain, frame, rng)
    shape, color = _pick(rng, domain.shapes), _pick(rng, domain.colors)
    s = _object_size(domain, frame, rng)
    pos = (int(rng.integers(0, frame - s + 1)), int(rng.integers(0, frame - s + 1)))
    if n < 2 * max_count:
        raise ValueError(f"a count video needs >= {2 * max_count} frames for {max_count} flashes, got {n}")
    k = int(rng.integers(1, max_count + 1))
    # k flashes in k disjoint slots spread over the video, each with at least one dark frame after it
    bounds = np.linspace(0, n, k + 1).astype(int)
    alphas = np.zeros(n, dtype=np.float32)
    cores, faints = [], []
    for i in range(k):
        lo, hi = int(bounds[i]), int(bounds[i + 1]) - 1  # the last frame of a slot stays dark
        core_len = int(rng.integers(domain.core[0], domain.core[1] + 1))
        ramp = int(rng.integers(domain.ramp[0], domain.ramp[1] + 1))
        core_len = max(1, min(core_len, hi - lo - 2 * ramp))
        ramp = max(0, min(ramp, (hi - lo - core_len) // 2))
        core = _window(n, core_len, ramp, rng, lo=lo, hi=hi)
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
    core = _action_window(n, rng)
    _perform(actor, action, core, rng)
    sprites.append(actor)
    cands, idx = _mc(rng, action, ACTIONS, num_candidates)
    q = Question(f"what does the {color} {shape} do ?", action, "multiple_choice", cands, idx)
    return VideoSpec(n, style, sprites, [q], [core], [])


#: Where a transition's change happens, as fractions of the video: in its first half, so that the new
#: state lasts (TGIF-QA's transitions are state changes: "what does the man do after ...").
TRANSITION_CHANGE = (0.1, 0.4)


def transition_video(
    domain: Domain, frame: int, rng: np.random.Generator, num_candidates: int = 5
) -> VideoSpec:
    """A shape visible throughout turns another colour and stays so: the core evidence is every frame from
    the change to the end (the new state), the ramp frames before it blend the two colours."""
    n, style, sprites = _base(domain, frame, rng)
    shape, before = _pick(rng, domain.shapes), _pick(rng, domain.colors)
    after = _pick(rng, domain.colors, exclude=(before,))
    actor = _actor(domain, frame, n, rng, shape, before)
    ramp = int(rng.integers(domain.ramp[0], domain.ramp[1] + 1))
    lo, hi = (int(f * n) + ramp for f in TRANSITION_CHANGE)
    change = int(rng.integers(lo, hi + 1))
    core = (change, n - 1)
    mix = envelope(n, core, ramp, domain.faint_alpha)
    b, a = np.array(COLORS[before], float), np.array(COLORS[after], float)
    actor.colors = [tuple(int(v) for v in (1 - m) * b + m * a) for m in mix]
    sprites.append(actor)
    # the colour it had before is not a candidate: the question is which colour appears, not which dominates
    cands, idx = _mc(rng, after, [c for c in domain.colors if c != before], num_candidates)
    q = Question(f"what color does the {shape} turn into ?", after, "multiple_choice", cands, idx)
    return VideoSpec(n, style, sprites, [q], [core], _faint_ranges(core, ramp, n))


# -- one event, several questions: TGIF-QA frameqa, MSVD-QA, How2QA and the stills ---------------------
@dataclass
class _Scene:
    spec: VideoSpec
    shape: str
    color: str
    copies: int
    region: str


def _event_scene(domain: Domain, frame: int, rng: np.random.Generator) -> _Scene:
    """One coloured shape (1–3 copies side by side) flashes in one region; grey distractors drift about."""
    n, style, sprites = _base(domain, frame, rng)
    shape, color = _pick(rng, domain.shapes), _pick(rng, domain.colors)
    copies = int(rng.integers(1, 4))
    region = _pick(rng, REGIONS)
    core, ramp = _evidence_window(domain, n, rng)
    s = _object_size(domain, frame, rng)
    for k in range(copies):  # side by side along the region's edge, so "where" has one answer
        top, left = _region_position(region, frame, s, rng)
        if region in ("top", "bottom"):
            left = (frame - copies * s) // 2 + k * s
        else:
            top = (frame - copies * s) // 2 + k * s
        sprites.append(_flash(shape, color, (top, left), s, n, core, ramp, domain))
    spec = VideoSpec(n, style, sprites, [], [core], _faint_ranges(core, ramp, n))
    return _Scene(spec, shape, color, copies, region)


@dataclass(frozen=True)
class _Template:
    question: str
    answer: str
    msvd_type: str  # MSVD/MSRVTT-QA question type: the first word
    tgif_type: str  # TGIF-QA frameqa type: object / number / color / location
    pool: tuple[str, ...]  # answers of the same kind (multiple-choice candidates)


def _templates(sc: _Scene, domain: Domain) -> list[_Template]:
    """Every question the scene answers."""
    plural = sc.shape if sc.copies == 1 else _plural(sc.shape)
    return [
        _Template(f"what color is the {sc.shape} that appears ?", sc.color, "what", "color", domain.colors),
        _Template(
            f"what shape is the {sc.color} thing that appears ?", sc.shape, "what", "object", domain.shapes
        ),
        _Template(f"who appears at the {sc.region} ?", sc.shape, "who", "object", domain.shapes),
        _Template(
            f"how many {sc.color} {_plural(sc.shape)} appear ?",
            NUMBER_WORDS[sc.copies],
            "how",
            "number",
            NUMBER_WORDS[1:4],
        ),  # fmt: skip
        _Template(f"where does the {sc.color} {plural} appear ?", sc.region, "where", "location", REGIONS),
    ]


def _description(sc: _Scene) -> str:
    what = (
        f"a {sc.color} {sc.shape} appears"
        if sc.copies == 1
        else (f"{NUMBER_WORDS[sc.copies]} {sc.color} {_plural(sc.shape)} appear")
    )
    return f"{what} at the {sc.region} ."


def _open_ended(domain, frame, rng, questions: tuple[int, int], qtype: str) -> VideoSpec:
    sc = _event_scene(domain, frame, rng)
    templates = _templates(sc, domain)
    k = int(rng.integers(questions[0], questions[1] + 1))
    for i in sorted(rng.choice(len(templates), size=k, replace=False)):
        t = templates[int(i)]
        qt = t.msvd_type if qtype == "msvd" else t.tgif_type
        sc.spec.questions.append(Question(t.question, t.answer, "open_ended", question_type=qt,
                                          description=_description(sc)))  # fmt: skip
    return sc.spec


def _multiple_choice(domain, frame, rng, num_candidates: int) -> VideoSpec:
    sc = _event_scene(domain, frame, rng)
    # Only questions whose answers are at least as many as the candidates: the decoys are then answers of
    # other videos, drawn uniformly, so every candidate is the answer equally often. (Padding a small pool
    # with words that are never an answer -- "four" among one/two/three -- lets a text-only model rule
    # them out without looking.)
    templates = [t for t in _templates(sc, domain) if len(set(t.pool)) >= num_candidates]
    if not templates:
        raise ValueError(f"no question of domain {domain.name!r} has {num_candidates} possible answers")
    t = templates[int(rng.integers(len(templates)))]
    cands, idx = _mc(rng, t.answer, list(t.pool), num_candidates)
    sc.spec.questions.append(
        Question(t.question, t.answer, "multiple_choice", cands, idx, question_type=t.msvd_type)
    )
    return sc.spec


def frameqa_video(domain: Domain, frame: int, rng: np.random.Generator, questions=(1, 2)) -> VideoSpec:
    """TGIF-QA frameqa: 1–2 open-ended questions typed object / number / color / location."""
    return _open_ended(domain, frame, rng, questions, "tgif")


def msvd_video(domain: Domain, frame: int, rng: np.random.Generator, questions=(2, 3)) -> VideoSpec:
    """MSVD-QA-like: 2–3 open-ended questions typed by first word (what / who / how / where)."""
    return _open_ended(domain, frame, rng, questions, "msvd")


def how2qa_video(domain: Domain, frame: int, rng: np.random.Generator, num_candidates: int = 4) -> VideoSpec:
    """How2QA-like: one 4-way multiple-choice question."""
    return _multiple_choice(domain, frame, rng, num_candidates)


def stills_frameqa_video(domain: Domain, frame: int, rng: np.random.Generator) -> VideoSpec:
    """Stills, open-ended: every question the scene answers (colour, shape, who, how many, where), as a
    caption of an image-text corpus states every attribute at once. With one or two random questions per
    still the tiny model stayed near chance on colour and shape within the default budget; asking every
    attribute of every still gives each attribute several times the signal per image (README, *Does the
    model see?*)."""
    return _open_ended(domain, frame, rng, (5, 5), "tgif")


def stills_choice_video(
    domain: Domain, frame: int, rng: np.random.Generator, num_candidates: int = 5
) -> VideoSpec:
    """Stills, multiple choice (the image-text-matching stand-in), written in TGIF-QA's 5-candidate layout."""
    return _multiple_choice(domain, frame, rng, num_candidates)


TGIF_TASKS = {
    "action": action_video,
    "transition": transition_video,
    "count": count_video,
    "frameqa": frameqa_video,
}
#: The stills are written in TGIF-QA's format: open-ended questions in the frameqa file, multiple-choice
#: ones in the transition file (5 candidates).
STILLS_TASKS = {"frameqa": stills_frameqa_video, "transition": stills_choice_video}
