"""The statistics behind the verdict: paired estimates, their standard errors, and anytime-valid bounds.

Every gate is reduced to an estimate and a standard error on a scale where it is close to normal
(a difference of rates, the log of a quantile ratio). Two things turn that into a decision:

* ``cs_half_width``: the half-width of an asymptotic confidence sequence (Waudby-Smith et al. 2021,
  "Time-uniform central limit theory and asymptotic confidence sequences", the two-sided normal
  mixture boundary). It covers the true value at every sample size at once, so an experiment
  looked at every hour keeps its error rate: that is what "anytime-valid" buys.
* ``fixed_half_width`` / ``fixed_p_value``: the fixed-sample normal interval, for ``inference:
  fixed`` (narrower; valid only when the report is read once, at a pre-registered sample size).
* ``holm_levels``: the level each gate of a family is judged at (Holm's step-down), so a FAIL
  among many gates and segments is a false alarm in at most ``alpha`` of experiments.

Latency quantiles are Harrell–Davis estimates up to ``HARRELL_DAVIS_MAX_PAIRS`` pairs (a weighted
mean of all order statistics, Beta-distributed weights: less spread than one order statistic at
the same sample size), the sample quantile above it.

All functions are vectorized numpy and take plain arrays; nothing here knows about SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

__all__ = [
    "HARRELL_DAVIS_MAX_PAIRS",
    "QuantileRatio",
    "beta_cdf",
    "cs_half_width",
    "cs_p_value",
    "cs_rho2",
    "fixed_half_width",
    "fixed_p_value",
    "harrell_davis",
    "holm_levels",
    "paired_proportion_difference",
    "paired_quantile_ratios",
    "sorted_quantiles",
    "two_sample_proportion_difference",
    "wilson",
]

_NORMAL = NormalDist()

# How far (in standard deviations of the rank) a resampled quantile is looked for.
_WINDOW_SD = 6

# The boundary is tightest near this many observations; it stays valid at every other count.
DEFAULT_TUNING_PAIRS = 5000

# Harrell–Davis up to this many pairs, the sample quantile above. HD's edge over one order statistic
# is a second-order term that shrinks as n grows, while its bootstrap evaluates a Beta CDF at every
# windowed pair of every resample (cost ~ B·√n·√n): past this size it costs more than it buys, and
# the million-pair report keeps its O(n + B·√n) sample-quantile bootstrap.
HARRELL_DAVIS_MAX_PAIRS = 20_000

Estimator = Literal["auto", "harrell_davis", "sample"]

# Beta CDF: continued-fraction tolerance, and the log prefactor below which the tail is taken as 0
_CF_EPS = 1e-13
_NEGLIGIBLE_LOG = -60.0

# A resample's Beta CDF is integrated cell by cell when both parameters are at least this (below,
# the density may be singular at 0 or 1 and each edge goes through the continued fraction instead)
_HD_INTEGRATE_MIN_PARAM = 10.0
# 3-point Gauss–Legendre on [0, 1]: (node, weight)
_GAUSS_LEGENDRE_3 = (
    (0.5 - math.sqrt(0.15), 5.0 / 18.0),
    (0.5, 8.0 / 18.0),
    (0.5 + math.sqrt(0.15), 5.0 / 18.0),
)


def cs_rho2(alpha: float, tuning: int = DEFAULT_TUNING_PAIRS) -> float:
    """The mixture's variance, chosen so the boundary is tightest at ``tuning`` observations."""
    la = -2.0 * math.log(alpha)
    return (la + math.log(la + 1.0)) / tuning


def cs_half_width(se: float | np.ndarray, n: float | np.ndarray, alpha: float | np.ndarray, rho2: float) -> np.ndarray:
    """Half-width of the (1 − alpha) asymptotic confidence sequence at ``n`` observations.

    ``se`` is the estimate's standard error (σ/√n); the boundary multiplies it by
    sqrt(2(nρ²+1)/(nρ²) · ln(√(nρ²+1)/α)), which exceeds the fixed-sample z and grows like
    sqrt(ln n): the price of being allowed to look at any time.
    """
    x = np.asarray(n, dtype=float) * rho2
    z = np.sqrt(2.0 * (x + 1.0) / x * np.log(np.sqrt(x + 1.0) / np.asarray(alpha, dtype=float)))
    return np.asarray(se, dtype=float) * z


def cs_p_value(distance: float, se: float, n: float, rho2: float) -> float:
    """Anytime-valid p-value for "the true value is on the other side of ``distance`` standard units".

    The smallest alpha whose confidence sequence excludes a point ``distance`` (in the estimate's
    units) from the estimate: the inverse of ``cs_half_width``. 1.0 when the estimate is not
    beyond the point.
    """
    if distance <= 0 or n <= 0:
        return 1.0
    if se <= 0:
        return 0.0
    x = n * rho2
    z2 = (distance / se) ** 2
    return float(min(1.0, math.sqrt(x + 1.0) * math.exp(-z2 * x / (2.0 * (x + 1.0)))))


def fixed_half_width(se: float | np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Half-width of the fixed-sample (1 − alpha) two-sided normal interval: se · z(1 − alpha/2).

    Valid only when read once, at a sample size fixed in advance; looked at repeatedly it excludes
    the truth far more often than alpha (``inference: fixed`` in docs/report.md).
    """
    alpha_ = np.atleast_1d(np.asarray(alpha, dtype=float))
    z = np.array([_NORMAL.inv_cdf(1.0 - a / 2.0) for a in alpha_.ravel()]).reshape(alpha_.shape)
    out = np.asarray(se, dtype=float) * z
    return out if np.ndim(alpha) else out.reshape(np.shape(se))


def fixed_p_value(distance: float, se: float) -> float:
    """Fixed-sample two-sided p-value for "the true value is on the other side of ``distance``":
    the smallest alpha whose ``fixed_half_width`` interval excludes it. 1.0 when not beyond."""
    if distance <= 0:
        return 1.0
    if se <= 0:
        return 0.0
    return float(min(1.0, 2.0 * (1.0 - _NORMAL.cdf(distance / se))))


def holm_levels(p_values: list[float], alpha: float) -> list[float]:
    """The level each hypothesis is judged at under Holm's step-down procedure.

    Sorted by p-value, the k-th (from 0) of m is judged at alpha/(m − k) while all before it were
    rejected; from the first that is not, every remaining one is judged at that same level, so a
    gate's interval at its level excludes the limit exactly when Holm rejects it.
    """
    m = len(p_values)
    levels = [alpha] * m
    order = sorted(range(m), key=lambda i: p_values[i])
    stopped: float | None = None
    for k, i in enumerate(order):
        level = alpha / (m - k)
        if stopped is None and p_values[i] > level:
            stopped = level
        levels[i] = stopped if stopped is not None else level
    return levels


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (sound at 0 and n, unlike the Wald interval)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_proportion_difference(only_candidate: int, only_primary: int, n: int) -> tuple[float, float]:
    """Difference of two rates measured on the same n pairs, and its McNemar-style standard error.

    Only discordant pairs carry information: b pairs where only the candidate had the event, c
    where only the primary did. Estimate (b − c)/n; variance (b + c − (b − c)²/n)/n². Half a pair is
    added to each discordant count for the variance so that zero events still give a width (the
    "rule of three" situation: 0 errors in 50 pairs is not proof of 0%).
    """
    if n == 0:
        return (0.0, math.inf)
    b, c = only_candidate, only_primary
    estimate = (b - c) / n
    bb, cc = b + 0.5, c + 0.5
    variance = max(bb + cc - (bb - cc) ** 2 / n, 0.0) / (n * n)
    return (estimate, math.sqrt(variance))


def two_sample_proportion_difference(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Difference x1/n1 − x2/n2 of two independent rates and its standard error (half-count smoothed)."""
    if n1 == 0 or n2 == 0:
        return (0.0, math.inf)
    p1, p2 = (x1 + 0.5) / (n1 + 1), (x2 + 0.5) / (n2 + 1)
    return (x1 / n1 - x2 / n2, math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2))


def _log_beta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log B(a, b) elementwise (numpy has no lgamma; callers pass one (a, b) per row, so this is short)."""
    flat = [math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y) for x, y in zip(a.ravel(), b.ravel(), strict=True)]
    return np.array(flat, dtype=float).reshape(a.shape)


def beta_cdf(x: np.ndarray, a: float | np.ndarray, b: float | np.ndarray) -> np.ndarray:
    """Regularized incomplete beta function I_x(a, b), the Beta(a, b) CDF, elementwise, in numpy.

    The continued fraction of Numerical Recipes (§6.4, ``betacf``) by the modified Lentz method,
    run on all elements at once until each has converged; on the side x > (a+1)/(a+b+2) it is
    evaluated as 1 − I_{1−x}(b, a), where it converges in O(√max(a, b)) terms. Elements whose
    prefactor x^a(1−x)^b/B(a, b) is below e^-60 are taken as 0 (or 1) without iterating: the
    Harrell–Davis weights far from the quantile. ``a`` and ``b`` broadcast against ``x`` and
    should vary along few rows (one log-Beta per distinct row is computed in Python).
    """
    x = np.asarray(x, dtype=float)
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.any(a_arr <= 0) or np.any(b_arr <= 0):
        raise ValueError(f"beta_cdf needs a > 0 and b > 0, got a={a!r}, b={b!r}")
    a_arr, b_arr = np.broadcast_arrays(a_arr, b_arr)
    log_beta = _log_beta(a_arr, b_arr)
    x, aa, bb, lb = np.broadcast_arrays(x, a_arr, b_arr, log_beta)
    out = np.where(x >= 1.0, 1.0, 0.0)
    inner = (x > 0.0) & (x < 1.0)
    flip = inner & (x > (aa + 1.0) / (aa + bb + 2.0))
    xs = np.where(flip, 1.0 - x, x)[inner]
    ps, qs = np.where(flip, bb, aa)[inner], np.where(flip, aa, bb)[inner]
    log_front = ps * np.log(xs) + qs * np.log1p(-xs) - lb[inner] - np.log(ps)
    tail = np.zeros(len(xs))
    live = np.flatnonzero(log_front > _NEGLIGIBLE_LOG)
    if len(live):
        tail[live] = np.exp(log_front[live]) * _beta_continued_fraction(xs[live], ps[live], qs[live])
    out[inner] = np.where(flip[inner], 1.0 - tail, tail)
    return np.clip(out, 0.0, 1.0)


def _beta_continued_fraction(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The continued fraction of I_x(a, b) (Numerical Recipes ``betacf``), modified Lentz, vectorized."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    active = np.arange(len(x))
    max_terms = int(10 * math.sqrt(float(max(a.max(), b.max())))) + 100
    for m in range(1, max_terms + 1):
        xa, aa_, ba = x[active], a[active], b[active]
        m2 = 2 * m
        num = m * (ba - m) * xa / ((qam[active] + m2) * (aa_ + m2))
        dd = 1.0 + num * d[active]
        dd = 1.0 / np.where(np.abs(dd) < tiny, tiny, dd)
        cc = 1.0 + num / c[active]
        cc = np.where(np.abs(cc) < tiny, tiny, cc)
        hh = h[active] * dd * cc
        num = -(aa_ + m) * (qab[active] + m) * xa / ((aa_ + m2) * (qap[active] + m2))
        dd = 1.0 + num * dd
        dd = 1.0 / np.where(np.abs(dd) < tiny, tiny, dd)
        cc = 1.0 + num / cc
        cc = np.where(np.abs(cc) < tiny, tiny, cc)
        delta = dd * cc
        h[active], d[active], c[active] = hh * delta, dd, cc
        done = np.abs(delta - 1.0) < _CF_EPS
        active = active[~done]
        if not len(active):
            break
    return h


def harrell_davis(values: np.ndarray, q: float) -> float:
    """The Harrell–Davis estimate of the q-quantile (Harrell & Davis 1982, Biometrika 69:635).

    Σ w_i x_(i) over the sorted sample, w_i = I_{i/n}(a, b) − I_{(i−1)/n}(a, b) with a = (n+1)q,
    b = (n+1)(1−q): the mean of the order statistic a Beta(a, b)-distributed rank would pick, i.e.
    a bootstrap estimate of E[x_((n+1)q)]. Exact for constant data, monotone in q, and for smooth
    distributions less variable than the sample quantile at small and moderate n.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0 or not 0.0 < q < 1.0:
        raise ValueError(f"harrell_davis needs values and 0 < q < 1, got {n} values and q={q}")
    edges = beta_cdf(np.arange(n + 1) / n, (n + 1) * q, (n + 1) * (1 - q))
    return float(np.diff(edges) @ x)


@dataclass(frozen=True, slots=True)
class QuantileRatio:
    """candidate / primary at one quantile, from a paired bootstrap (``estimator``: which quantile)."""

    q: float
    primary: float
    candidate: float
    ratio: float
    log_se: float  # standard error of log(ratio)
    interval: tuple[float, float]  # fixed-sample 95% percentile interval of the ratio
    estimator: str = "sample"  # "harrell_davis" or "sample"


def _quantile_rank(n: int, q: float) -> int:
    """0-based rank of the sample q-quantile (the inverted empirical CDF: smallest x with F(x) ≥ q)."""
    return max(0, min(n - 1, math.ceil(q * n) - 1))


def _poisson_one_table(bits: int = 16) -> np.ndarray:
    """Inverse CDF of Poisson(1) on a 2**bits grid: table[u] is a Poisson(1) draw for uniform u."""
    size = 1 << bits
    cdf = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(20)])
    return np.searchsorted(cdf, (np.arange(size) + 0.5) / size).astype(np.float32)


# Poisson(1) weights by table lookup on 16-bit uniforms: ~20× faster than drawing them one by one;
# probabilities are exact to 1/65,536, far below the bootstrap's own noise.
_POISSON_ONE = _poisson_one_table()


def sorted_quantiles(ordered: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``np.quantile(values, probs)`` (its default, linear method) read off ``values`` already
    sorted: a gather instead of a partition over every value, equal to numpy's to the last bit."""
    n = len(ordered)
    h = (n - 1) * np.asarray(probs, dtype=float)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def paired_quantile_ratios(
    primary: np.ndarray,
    candidate: np.ndarray,
    quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
    resamples: int = 600,
    seed: int = 0,
    estimator: Estimator = "auto",
    ordered: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[QuantileRatio]:
    """Paired (Poisson) bootstrap of candidate/primary quantile ratios, resampling whole pairs.

    Each pair gets a Poisson(1) weight per resample (the Poisson bootstrap, which matches the
    multinomial one for all but tiny samples and needs no joint draw). A resampled quantile can
    only land within a few standard deviations of ranks of the sample's, so only the pairs whose
    primary or candidate value lies in that window get individual weights; the others are
    counted by where they lie (below or above each arm's window) and get one Poisson weight per
    cell. The result equals the full bootstrap whenever no resampled quantile leaves its window
    (±6 sd: about once in 10⁹ resamples). The windows come from a partition, not a sort, so the
    cost is O(n + B·√n) instead of O(B·n). Pairs in a window are weighted in a canonical order
    (by primary, then candidate), so the same pairs read in any order give the same result.

    ``estimator``: "sample" is the sample quantile (the inverted empirical CDF); "harrell_davis"
    is ``harrell_davis`` for the point estimate and, in each resample, the same estimator on the
    resampled multiset (its Beta weights over the window's cumulative Poisson weights; the mass
    left outside the window, below e^-18 of it, goes to the window's edge values); "auto" is
    Harrell–Davis up to ``HARRELL_DAVIS_MAX_PAIRS`` pairs and the sample quantile above.

    ``ordered``: each arm's values sorted, if the caller has them already (each arm is sorted once,
    not partitioned once per quantile: one sort costs less than a partition at millions of pairs).
    """
    primary = np.asarray(primary, dtype=float)
    candidate = np.asarray(candidate, dtype=float)
    n = len(primary)
    if n == 0 or len(candidate) != n:
        raise ValueError(f"paired arrays needed, got {len(primary)} primary and {len(candidate)} candidate values")
    if estimator not in ("auto", "harrell_davis", "sample"):
        raise ValueError(f"estimator must be 'auto', 'harrell_davis' or 'sample', got {estimator!r}")
    use_hd = estimator == "harrell_davis" or (estimator == "auto" and n <= HARRELL_DAVIS_MAX_PAIRS)
    rng = np.random.default_rng(seed)
    p_sorted, c_sorted = ordered if ordered is not None else (np.sort(primary), np.sort(candidate))
    out = []
    for q in quantiles:
        k = _quantile_rank(n, q)
        half = int(_WINDOW_SD * math.sqrt(n * q * (1 - q))) + 20
        lo, hi = max(0, k - half), min(n, k + half + 1)
        p_lo, p_hat, p_hi = float(p_sorted[lo]), float(p_sorted[k]), float(p_sorted[hi - 1])
        c_lo, c_hat, c_hi = float(c_sorted[lo]), float(c_sorted[k]), float(c_sorted[hi - 1])
        # 0 below the window, 1 in it, 2 above it (by value: ties fall on the same side)
        region_p = (primary >= p_lo).astype(np.int8) + (primary > p_hi)
        region_c = (candidate >= c_lo).astype(np.int8) + (candidate > c_hi)
        idx = np.flatnonzero((region_p == 1) | (region_c == 1))  # pairs weighted one by one
        idx = idx[np.lexsort((candidate[idx], primary[idx]))]  # canonical order
        # the rest, by cell: (below/above primary window) × (below/above candidate window)
        cells = np.bincount(region_p * 3 + region_c, minlength=9)[[0, 2, 6, 8]]
        w_cells = rng.poisson(cells, size=(resamples, 4)).astype(np.float32)  # (0,0) (0,2) (2,0) (2,2)
        w_pairs = _POISSON_ONE[rng.integers(0, len(_POISSON_ONE), size=(resamples, len(idx)), dtype=np.uint16)]
        total = w_cells.sum(axis=1) + w_pairs.sum(axis=1)
        values = []
        for arm, region, below_cells in (
            (primary, region_p, w_cells[:, 0] + w_cells[:, 1]),
            (candidate, region_c, w_cells[:, 0] + w_cells[:, 2]),
        ):
            r = region[idx]
            below = below_cells + w_pairs @ (r == 0).astype(np.float32)
            in_window = np.flatnonzero(r == 1)
            window_values = arm[idx[in_window]]
            order = np.argsort(window_values, kind="stable")
            cum = below[:, None] + np.cumsum(w_pairs[:, in_window[order]], axis=1)
            if use_hd:
                values.append(_resampled_harrell_davis(window_values[order], below, cum, total, q))
                continue
            hit = np.argmax(cum >= q * total[:, None], axis=1)  # first position reaching q of the weight
            values.append(window_values[order][hit])
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratios = np.log(values[1]) - np.log(values[0])
        log_ratios = log_ratios[np.isfinite(log_ratios)]
        if use_hd:
            p_hat, c_hat = harrell_davis(p_sorted, q), harrell_davis(c_sorted, q)
        ratio = c_hat / p_hat if p_hat > 0 else math.inf
        se = float(np.std(log_ratios, ddof=1)) if len(log_ratios) > 1 else math.inf
        lo_r, hi_r = np.exp(np.percentile(log_ratios, [2.5, 97.5])) if len(log_ratios) else (math.nan, math.nan)
        name = "harrell_davis" if use_hd else "sample"
        out.append(QuantileRatio(q, p_hat, c_hat, ratio, se, (float(lo_r), float(hi_r)), name))
    return out


def _resampled_harrell_davis(
    window_values: np.ndarray, below: np.ndarray, cum: np.ndarray, total: np.ndarray, q: float
) -> np.ndarray:
    """Harrell–Davis estimate of each resample (rows) from its window: sorted values, the weight
    below the window, the cumulative weights through it, and each resample's total weight W.

    A resample is a multiset of W values, so its Beta weights sit on the grid m/W for integer m.
    When both Beta parameters are ≥ ``_HD_INTEGRATE_MIN_PARAM`` the CDF on that grid is the exact
    CDF at the window's first grid point plus the density integrated over each unit cell by 3-point
    Gauss–Legendre (a unit cell is at most a third of the Beta's standard deviation there, where
    the rule's error is ~1e-9); below that (tiny samples) every edge goes through ``beta_cdf``.
    """
    size = np.maximum(total, 1.0)  # an empty resample gives NaN below, dropped as non-finite
    a, b = (size + 1.0) * q, (size + 1.0) * (1.0 - q)
    if min(float(a.min()), float(b.min())) < _HD_INTEGRATE_MIN_PARAM:
        edges = np.concatenate([below[:, None], cum], axis=1) / size[:, None]
        cdf = beta_cdf(np.minimum(edges, 1.0), a[:, None], b[:, None])
    else:
        steps = int(np.max(cum[:, -1] - below))
        grid_lo = (below[:, None] + np.arange(steps)[None, :]) / size[:, None]  # unit cells [m/W, (m+1)/W)
        width = 1.0 / size[:, None]
        log_norm = _log_beta(a, b)[:, None]
        mass = np.zeros(grid_lo.shape)
        for node, weight in _GAUSS_LEGENDRE_3:
            u = np.clip(grid_lo + node * width, 1e-300, 1.0 - 1e-16)
            mass += weight * np.exp((a[:, None] - 1.0) * np.log(u) + (b[:, None] - 1.0) * np.log1p(-u) - log_norm)
        mass *= width
        start = beta_cdf(np.minimum(below / size, 1.0)[:, None], a[:, None], b[:, None])
        table = np.concatenate([start, start + np.cumsum(mass, axis=1)], axis=1)  # I(m/W), m = below..
        table = np.minimum(table, 1.0)
        offsets = np.concatenate([np.zeros((len(below), 1)), cum - below[:, None]], axis=1).astype(np.int64)
        cdf = np.take_along_axis(table, offsets, axis=1)
    estimate = np.diff(cdf, axis=1) @ window_values  # the window is never empty: it holds the quantile's rank
    estimate += cdf[:, 0] * window_values[0] + (1.0 - cdf[:, -1]) * window_values[-1]
    return np.where(total > 0, estimate, np.nan)
