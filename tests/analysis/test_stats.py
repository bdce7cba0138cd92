"""The statistics: each agrees with a direct (slow) computation or with its textbook property."""

from __future__ import annotations

import math

import numpy as np
import pytest

from otel_shadow.analysis.stats import (
    HARRELL_DAVIS_MAX_PAIRS,
    beta_cdf,
    cs_half_width,
    cs_p_value,
    cs_rho2,
    fixed_half_width,
    fixed_p_value,
    harrell_davis,
    holm_levels,
    paired_proportion_difference,
    paired_quantile_ratios,
    sorted_quantiles,
    wilson,
)


def test_windowed_bootstrap_matches_the_full_paired_bootstrap() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    shared = rng.normal(0, 0.5, n)
    primary = np.exp(5 + shared + rng.normal(0, 0.25, n))
    candidate = np.exp(5 + shared + rng.normal(0, 0.25, n)) * 1.1
    fast = paired_quantile_ratios(primary, candidate, resamples=1500, seed=1, estimator="sample")
    idx = rng.integers(0, n, (1500, n))  # the textbook bootstrap: resample whole pairs
    for r in fast:
        full = np.log(np.quantile(candidate[idx], r.q, axis=1, method="inverted_cdf")) - np.log(
            np.quantile(primary[idx], r.q, axis=1, method="inverted_cdf")
        )
        assert r.log_se == pytest.approx(full.std(ddof=1), rel=0.15)
        assert r.ratio == pytest.approx(
            np.quantile(candidate, r.q, method="inverted_cdf") / np.quantile(primary, r.q, method="inverted_cdf")
        )


def test_pairing_narrows_the_latency_interval() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    shared = rng.normal(0, 0.6, n)
    primary = np.exp(shared + rng.normal(0, 0.1, n))
    paired = np.exp(shared + rng.normal(0, 0.1, n))
    shuffled = rng.permutation(paired)  # same marginals, pairing destroyed
    se_paired = paired_quantile_ratios(primary, paired)[1].log_se
    se_unpaired = paired_quantile_ratios(primary, shuffled)[1].log_se
    assert se_paired < 0.75 * se_unpaired


def test_confidence_sequence_is_wider_than_a_fixed_sample_interval_and_inverts_to_its_p_value() -> None:
    rho2 = cs_rho2(0.05, 5000)
    for n in (100, 2000, 10**6):
        half = float(cs_half_width(1.0, n, 0.05, rho2))
        assert half > 1.96
        # a point exactly at the boundary has p-value alpha
        assert cs_p_value(half, 1.0, n, rho2) == pytest.approx(0.05, rel=1e-9)
    assert cs_p_value(-1.0, 1.0, 100, rho2) == 1.0


def test_fixed_interval_is_the_normal_interval_and_inverts_to_its_p_value() -> None:
    assert float(fixed_half_width(1.0, 0.05)) == pytest.approx(1.959964, abs=1e-6)
    assert float(fixed_half_width(2.0, 0.10)) == pytest.approx(2 * 1.644854, abs=1e-6)
    assert fixed_half_width(np.array([1.0, 3.0]), 0.05) == pytest.approx([1.959964, 3 * 1.959964], abs=1e-5)
    assert fixed_p_value(1.959964, 1.0) == pytest.approx(0.05, rel=1e-5)
    assert fixed_p_value(-1.0, 1.0) == 1.0
    # a fixed interval is narrower than the confidence sequence at every count
    rho2 = cs_rho2(0.05, 5000)
    assert all(
        float(fixed_half_width(1.0, 0.05)) < float(cs_half_width(1.0, n, 0.05, rho2)) for n in (100, 2000, 10**6)
    )


def test_confidence_sequence_keeps_its_level_over_twenty_looks() -> None:
    # 2,000 simulated A/A streams of N(0,1), looked at 20 times each: the fixed 95% interval
    # excludes 0 at some look far more often than 5%; the confidence sequence does not
    rng = np.random.default_rng(5)
    looks = np.linspace(100, 2000, 20).astype(int)
    x = rng.normal(0, 1, (2000, looks[-1]))
    cums = np.cumsum(x, axis=1)[:, looks - 1]
    means = cums / looks
    se = 1 / np.sqrt(looks)
    rho2 = cs_rho2(0.05, 5000)
    fixed = (np.abs(means) > fixed_half_width(se, 0.05)).any(axis=1).mean()
    anytime = (np.abs(means) > cs_half_width(se, looks, 0.05, rho2)).any(axis=1).mean()
    assert fixed > 0.12 and anytime < 0.05


def test_holm_levels_step_down_and_stop_at_the_first_acceptance() -> None:
    assert holm_levels([0.001, 0.02, 0.5], 0.05) == pytest.approx([0.05 / 3, 0.05 / 2, 0.05])
    # second is not rejected at 0.025: every later one is judged at that level too
    assert holm_levels([0.001, 0.03, 0.04], 0.05) == pytest.approx([0.05 / 3, 0.025, 0.025])


def test_paired_difference_uses_discordant_pairs_only() -> None:
    estimate, se = paired_proportion_difference(30, 10, 1000)
    assert estimate == pytest.approx(0.02)
    b, c, n = 30.5, 10.5, 1000
    assert se == pytest.approx(math.sqrt(b + c - (b - c) ** 2 / n) / n)
    assert paired_proportion_difference(0, 0, 50)[1] > 0  # no events is not certainty


def test_wilson_interval_is_sound_at_zero() -> None:
    lo, hi = wilson(0, 100)
    assert lo == 0.0 and 0.03 < hi < 0.045


def test_bootstrap_does_not_depend_on_the_order_pairs_are_read_in() -> None:
    rng = np.random.default_rng(12)
    n = 5000
    primary = rng.lognormal(5, 0.5, n)
    candidate = primary * rng.lognormal(0, 0.2, n)
    order = rng.permutation(n)
    assert paired_quantile_ratios(primary, candidate, seed=3) == paired_quantile_ratios(
        primary[order], candidate[order], seed=3
    )


def _binomial_tail(x: float, a: int, b: int) -> float:
    """I_x(a, b) for integer a, b: P(Binomial(a + b − 1, x) ≥ a), summed exactly."""
    m = a + b - 1
    return sum(math.comb(m, j) * x**j * (1 - x) ** (m - j) for j in range(a, m + 1))


def test_beta_cdf_matches_the_binomial_tail_for_integer_parameters() -> None:
    x = np.linspace(0.0, 1.0, 41)
    for a, b in [(10, 10), (19, 1), (1, 19), (95, 6), (3, 40), (950, 51)]:
        expected = [_binomial_tail(float(v), a, b) for v in x]
        assert beta_cdf(x, a, b) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="a > 0 and b > 0"):
        beta_cdf(x, 0.0, 1.0)


def test_harrell_davis_matches_a_direct_computation_on_a_small_sample() -> None:
    values = np.random.default_rng(7).lognormal(0, 1, 19)
    x = np.sort(values)
    n = len(x)
    # n + 1 = 20: q = 0.5 gives Beta(10, 10), q = 0.95 gives Beta(19, 1) whose CDF is u**19
    for q, a, b in [(0.5, 10, 10), (0.95, 19, 1)]:
        weights = [_binomial_tail(i / n, a, b) - _binomial_tail((i - 1) / n, a, b) for i in range(1, n + 1)]
        assert harrell_davis(values, q) == pytest.approx(float(np.dot(weights, x)), rel=1e-12)
    expected = sum(((i / n) ** 19 - ((i - 1) / n) ** 19) * x[i - 1] for i in range(1, n + 1))
    assert harrell_davis(values, 0.95) == pytest.approx(expected, rel=1e-12)


def test_harrell_davis_is_exact_for_constant_data_and_monotone_in_q() -> None:
    assert harrell_davis(np.full(50, 812.5), 0.95) == pytest.approx(812.5, rel=1e-12)
    values = np.random.default_rng(8).lognormal(6, 0.6, 400)
    estimates = [harrell_davis(values, q) for q in np.linspace(0.01, 0.99, 99)]
    assert all(later > earlier for earlier, later in zip(estimates, estimates[1:], strict=False))
    assert values.min() < estimates[0] and estimates[-1] < values.max()
    with pytest.raises(ValueError, match="0 < q < 1"):
        harrell_davis(values, 1.0)


def test_harrell_davis_bootstrap_matches_the_full_bootstrap_of_the_same_estimator() -> None:
    rng = np.random.default_rng(9)
    n = 1500
    shared = rng.normal(0, 0.5, n)
    primary = np.exp(6 + shared + rng.normal(0, 0.25, n))
    candidate = np.exp(6 + shared + rng.normal(0, 0.25, n)) * 1.2
    fast = paired_quantile_ratios(primary, candidate, resamples=1000, seed=2, estimator="harrell_davis")
    idx = np.sort(rng.integers(0, n, (1000, n)), axis=1)  # textbook bootstrap: resample whole pairs
    for r in fast:
        assert r.estimator == "harrell_davis"
        assert r.ratio == pytest.approx(harrell_davis(candidate, r.q) / harrell_davis(primary, r.q), rel=1e-12)
        w = np.diff(beta_cdf(np.arange(n + 1) / n, (n + 1) * r.q, (n + 1) * (1 - r.q)))
        full = np.log(np.sort(candidate[idx], axis=1) @ w) - np.log(np.sort(primary[idx], axis=1) @ w)
        assert r.log_se == pytest.approx(full.std(ddof=1), rel=0.12)


def test_latency_quantiles_use_harrell_davis_up_to_the_limit_and_the_sample_quantile_above() -> None:
    rng = np.random.default_rng(10)
    for n, expected in [(500, "harrell_davis"), (HARRELL_DAVIS_MAX_PAIRS + 1, "sample")]:
        primary = rng.lognormal(6, 0.5, n)
        (r,) = paired_quantile_ratios(primary, primary * 1.1, quantiles=(0.95,), resamples=50)
        assert r.estimator == expected and r.ratio == pytest.approx(1.1)
    with pytest.raises(ValueError, match="estimator must be"):
        paired_quantile_ratios(primary, primary, estimator="median")  # type: ignore[arg-type]


def test_harrell_davis_interval_covers_the_true_ratio_at_the_nominal_rate() -> None:
    # 200 paired samples of 400 pairs: the candidate is the primary's distribution × 1.3, so the
    # true ratio is 1.3 at every quantile; the 95% normal interval on the bootstrap SE covers it
    # in ~95% of samples (binomial sd 1.5 points: a bootstrap SE half its true size would give ~66%)
    covered = {0.5: 0, 0.95: 0}
    seeds = 200
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        shared = rng.normal(0, 0.5, 400)
        primary = np.exp(6 + shared + rng.normal(0, 0.25, 400))
        candidate = np.exp(6 + shared + rng.normal(0, 0.25, 400)) * 1.3
        for r in paired_quantile_ratios(primary, candidate, quantiles=(0.5, 0.95), resamples=150, seed=seed):
            covered[r.q] += abs(math.log(r.ratio) - math.log(1.3)) <= 1.959964 * r.log_se
    for q, hits in covered.items():
        assert 0.90 <= hits / seeds <= 0.99, (q, hits)


def test_sorted_quantiles_equal_numpys_linear_quantiles_to_the_bit() -> None:
    rng = np.random.default_rng(3)
    probs = np.linspace(0.02, 0.98, 49)
    for values in (rng.lognormal(6.0, 0.5, 10_001), np.round(rng.lognormal(6.0, 0.5, 997), 1), np.array([5.0])):
        assert np.array_equal(sorted_quantiles(np.sort(values), probs), np.quantile(values, probs))


def test_bootstrap_on_presorted_arms_gives_the_same_ratios_as_sorting_itself() -> None:
    rng = np.random.default_rng(4)
    primary = rng.lognormal(6.0, 0.4, 30_000)
    candidate = primary * rng.uniform(0.9, 1.3, 30_000)
    ordered = (np.sort(primary), np.sort(candidate))
    assert paired_quantile_ratios(primary, candidate, seed=1, ordered=ordered) == paired_quantile_ratios(
        primary, candidate, seed=1
    )
