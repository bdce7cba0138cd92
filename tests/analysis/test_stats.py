"""The statistics: each agrees with a direct (slow) computation or with its textbook property."""

from __future__ import annotations

import math

import numpy as np
import pytest

from otel_shadow.analysis.stats import (
    cs_half_width,
    cs_p_value,
    cs_rho2,
    fixed_half_width,
    fixed_p_value,
    holm_levels,
    paired_proportion_difference,
    paired_quantile_ratios,
    wilson,
)


def test_windowed_bootstrap_matches_the_full_paired_bootstrap() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    shared = rng.normal(0, 0.5, n)
    primary = np.exp(5 + shared + rng.normal(0, 0.25, n))
    candidate = np.exp(5 + shared + rng.normal(0, 0.25, n)) * 1.1
    fast = paired_quantile_ratios(primary, candidate, resamples=1500, seed=1)
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
    assert all(float(fixed_half_width(1.0, 0.05)) < float(cs_half_width(1.0, n, 0.05, rho2)) for n in (100, 2000, 10**6))


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
    assert paired_quantile_ratios(primary, candidate, seed=3) == paired_quantile_ratios(primary[order], candidate[order], seed=3)
