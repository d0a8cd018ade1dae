"""Means and 95% intervals over seeds, and paired differences between variants.

The paper reports single runs; we report the mean over seeds with a Student-t confidence interval
(``mean ± t_{1-α/2, n-1} · s / √n``). With one seed there is no interval: :class:`Summary` keeps
``half = nan`` and says so (``"n=1, no CI"``) instead of printing a misleading ``± 0``.

Paired differences compare two variants on the *same* seeds (same initial weights, same data order up to
the variant): the per-seed differences cancel the seed-to-seed noise the two runs share, so the interval
of the difference is usually much narrower than the two intervals side by side suggest.

The t quantile is ``scipy.stats.t.ppf``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import scipy.stats

LEVEL = 0.95


# -- Student t quantile ----------------------------------------------------------------------------------
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (e.g. ``t_quantile(0.975, 2) = 4.3027``)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    return float(scipy.stats.t.ppf(p, df))


# -- summaries -------------------------------------------------------------------------------------------
@dataclass
class Summary:
    """Mean and two-sided t interval of a handful of values (one per seed).

    ``half`` is the interval's half-width (``nan`` when n < 2); ``lo``/``hi`` its ends; ``values`` the
    inputs by seed (when known), so every number of a table can be traced back to its runs.
    """

    mean: float
    half: float
    n: int
    sd: float
    level: float = LEVEL
    values: dict = field(default_factory=dict)

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not math.isnan(self.half)

    def format(self, scale: float = 1.0, digits: int = 1, sign: bool = False) -> str:
        """``"45.5 ± 1.2"``, ``"45.5 (n=1, no CI)"`` or ``"n/a"`` (no values)."""
        if self.n == 0 or math.isnan(self.mean):
            return "n/a"
        fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
        text = fmt.format(self.mean * scale)
        if self.has_interval:
            return f"{text} ± {self.half * scale:.{digits}f}"
        return f"{text} (n=1, no CI)" if self.n == 1 else text

    def as_dict(self, scale: float = 1.0) -> dict:
        d = asdict(self)
        for k in ("mean", "half", "sd"):
            d[k] = _json_float(d[k] * scale)
        d["lo"] = _json_float(self.lo * scale)
        d["hi"] = _json_float(self.hi * scale)
        d["values"] = {str(k): _json_float(v * scale) for k, v in self.values.items()}
        d["interval"] = "t" if self.has_interval else ("n/a: one seed" if self.n == 1 else "n/a: no values")
        return d


def _json_float(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


#: The 95% half-width, in points, a headline paired difference of the embedded benchmark should reach: enough
#: to tell a gain of the paper's size (+2 to +6 points on Table 1) from none (README, "The instrument first").
TARGET_HALF_WIDTH = 1.5


def seeds_for_half_width(sd: float, target: float = TARGET_HALF_WIDTH, level: float = LEVEL,
                         most: int = 1000) -> int | None:  # fmt: skip
    """Fewest seeds ``n >= 2`` whose interval would be at most ``target`` on each side if the seed-to-seed
    spread were ``sd`` (same units): the least n with ``t_{(1+level)/2, n-1} · sd / √n <= target``. A
    planning number (``sd`` is itself estimated from the seeds at hand); None for an unknown spread, or
    when even ``most`` seeds would not do."""
    if sd is None or math.isnan(sd) or target <= 0:
        return None
    for n in range(2, most + 1):
        if t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n) <= target:
            return n
    return None


def seeds_needed_text(diff: Summary, scale: float = 1.0, target: float = TARGET_HALF_WIDTH) -> str:
    """:func:`seeds_for_half_width` at a summary's spread (``sd × scale``, in the target's points), as a
    table cell: "—" without an interval (fewer than two seeds)."""
    if not diff.has_interval:
        return "—"
    n = seeds_for_half_width(diff.sd * scale, target)
    return "more than 1000" if n is None else str(n)


def empty() -> Summary:
    """No values: every number is nan and ``n = 0`` (printed as "n/a")."""
    return Summary(float("nan"), float("nan"), 0, float("nan"))


def mean_ci(values: Iterable[float] | Mapping, level: float = LEVEL) -> Summary:
    """Mean and ``level`` Student-t interval; a mapping ``{seed: value}`` keeps the seeds; NaNs dropped."""
    by_seed = dict(values) if isinstance(values, Mapping) else dict(enumerate(values))
    by_seed = {k: float(v) for k, v in by_seed.items() if v is not None and not math.isnan(float(v))}
    xs = list(by_seed.values())
    n = len(xs)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0, float("nan"), level, {})
    mean = sum(xs) / n
    if n == 1:
        return Summary(mean, float("nan"), 1, float("nan"), level, by_seed)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return Summary(mean, half, n, sd, level, by_seed)


def paired_diff(a: Mapping, b: Mapping, level: float = LEVEL) -> Summary:
    """``a − b`` on the seeds both have (``{seed: value}`` each), with the t interval of the differences.

    Seeds only one side has are left out (the result's ``values`` names the seeds used).
    """
    seeds = sorted(set(a) & set(b), key=str)
    diffs = {}
    for s in seeds:
        x, y = a[s], b[s]
        if x is None or y is None or math.isnan(float(x)) or math.isnan(float(y)):
            continue
        diffs[s] = float(x) - float(y)
    return mean_ci(diffs, level)
