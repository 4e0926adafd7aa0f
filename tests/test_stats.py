"""Paired differences, their interval and verdicts, against hand-computed cases."""

import math

import pytest

from curriculum_bench.report.stats import (
    CONTRADICTED,
    INCONCLUSIVE,
    REPRODUCED,
    paired_difference,
    seeds_to_decide,
    verdict,
)


def test_clear_effect_n3_matches_the_hand_computed_interval():
    # differences 0.10, 0.11, 0.09: mean 0.10, sd 0.01, t(0.975, 2) = 4.302653
    diff = paired_difference({0: 0.80, 1: 0.82, 2: 0.84}, {0: 0.70, 1: 0.71, 2: 0.75})
    assert diff.n == 3 and diff.mean == pytest.approx(0.10) and diff.sd == pytest.approx(0.01)
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert (diff.low, diff.high) == pytest.approx((0.10 - half, 0.10 + half), abs=1e-6)
    assert verdict(diff, "higher") == REPRODUCED
    assert verdict(diff, "lower") == CONTRADICTED


def test_clear_reverse_is_contradicted():
    diff = paired_difference({0: 0.70, 1: 0.71, 2: 0.75}, {0: 0.80, 1: 0.82, 2: 0.84})
    assert verdict(diff, "higher") == CONTRADICTED


def test_a_null_difference_is_inconclusive():
    diff = paired_difference({0: 0.55, 1: 0.45, 2: 0.51}, {0: 0.50, 1: 0.50, 2: 0.50})
    assert diff.low < 0 < diff.high
    assert verdict(diff, "higher") == verdict(diff, "lower") == INCONCLUSIVE


def test_n5_interval_and_n2_needing_more_seeds():
    five = paired_difference({s: float(s + 1) for s in range(5)}, dict.fromkeys(range(5), 0.0))
    # differences 1..5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert (five.low, five.high) == pytest.approx((3 - half, 3 + half), abs=1e-5)
    assert verdict(five, "higher") == REPRODUCED

    two = paired_difference({0: 1.0, 1: 3.0}, {0: 0.0, 1: 0.0})
    # t(0.975, 1) = 12.706: the interval 2 ± 12.7 cannot decide
    assert (two.low, two.high) == pytest.approx((2 - 12.7062, 2 + 12.7062), abs=1e-3)
    assert verdict(two, "higher") == INCONCLUSIVE
    # smallest n with t(n-1) sqrt(2) / sqrt(n) < 2: n = 4 gives 2.25, n = 5 gives 1.76
    assert seeds_to_decide(two) == 5


def test_a_row_missing_a_seed_is_paired_over_the_shared_seeds_only():
    diff = paired_difference({0: 0.9, 1: 0.1, 2: 0.8}, {0: 0.7, 2: 0.6})
    assert diff.seeds == (0, 2) and diff.mean == pytest.approx(0.2)
    assert paired_difference({0: 0.9}, {1: 0.7}) is None
    one = paired_difference({0: 0.9}, {0: 0.7})
    assert one.n == 1 and math.isnan(one.low) and verdict(one, "higher") == INCONCLUSIVE
    assert seeds_to_decide(one) is None
