"""Means and 95% intervals over seeds, and paired differences between variants.

The paper reports single runs; we report the mean over seeds with a Student-t confidence interval
(``mean ± t_{1-α/2, n-1} · s / √n``). With one seed there is no interval: :class:`Summary` keeps
``half = nan`` and says so (``"n=1, no CI"``) instead of printing a misleading ``± 0``.

Paired differences compare two variants on the *same* seeds (same initial weights, same data order up to
the variant): the per-seed differences cancel the seed-to-seed noise the two runs share, so the interval
of the difference is usually much narrower than the two intervals side by side suggest.

The t quantile is computed here (regularised incomplete beta + bisection) so that scipy, which is not a
declared dependency, is not needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

LEVEL = 0.95


# -- Student t quantile ----------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(lbeta)
    # The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (e.g. ``t_quantile(0.975, 2) = 4.3027``), by bisection on the CDF."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket: the t tails are heavy for df = 1 (q_0.975 = 12.7, q_0.9995 = 637)
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


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
