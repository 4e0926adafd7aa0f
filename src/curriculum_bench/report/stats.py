"""Paired differences over seeds, their Student-t interval, and what they decide.

Two rows of a table are compared over the seeds both ran: seed s of a curriculum and seed s
of its baseline share the initialisation and, where the method allows, the data order, so
the per-seed differences remove most of the seed-to-seed spread that an unpaired comparison
of two means would carry. The 95 % interval is mean ± t(0.975, n − 1) · sd / √n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
MAX_SEEDS_ESTIMATE = 1000  # beyond this "seeds to decide" is reported as "> 1000"


@dataclass(frozen=True)
class PairedDifference:
    """a − b over the shared seeds, in the metric's own units."""

    seeds: tuple[int, ...]
    mean: float
    sd: float  # sample standard deviation of the per-seed differences (ddof 1); nan for n = 1
    low: float  # 95 % interval; nan when n < 2
    high: float

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)


def t_quantile(n: int) -> float:
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def paired_difference(a: dict[int, float], b: dict[int, float]) -> PairedDifference | None:
    """`a` and `b` map seed -> value; None when they share no seed."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return PairedDifference(seeds, mean, math.nan, math.nan, math.nan)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(n) * sd / math.sqrt(n)
    return PairedDifference(seeds, mean, sd, mean - half, mean + half)


def verdict(diff: PairedDifference | None, expect: str) -> str:
    """`expect` "higher" (a > b) or "lower": reproduced when the interval excludes zero in
    that direction, contradicted when it excludes zero the other way, else inconclusive."""
    if expect not in ("higher", "lower"):
        raise ValueError(f"expect must be 'higher' or 'lower', got {expect!r}")
    if diff is None or not diff.excludes_zero:
        return INCONCLUSIVE
    claimed_sign = 1 if expect == "higher" else -1
    return REPRODUCED if claimed_sign * diff.mean > 0 else CONTRADICTED


def seeds_to_decide(diff: PairedDifference | None) -> int | None:
    """About how many seeds would make the interval exclude zero, if the observed mean
    difference and spread held: the smallest n with t(n − 1) · sd / √n < |mean|.
    None when that cannot be estimated (fewer than 2 seeds, or no difference at all)."""
    if diff is None or diff.n < 2 or not math.isfinite(diff.sd) or diff.mean == 0:
        return None
    if diff.sd == 0:
        return 2
    n = 2
    while n <= MAX_SEEDS_ESTIMATE and t_quantile(n) * diff.sd / math.sqrt(n) >= abs(diff.mean):
        n += 1
    return n


def describe_seeds_to_decide(diff: PairedDifference | None) -> str:
    n = seeds_to_decide(diff)
    if n is None:
        return "—"
    return f"> {MAX_SEEDS_ESTIMATE}" if n > MAX_SEEDS_ESTIMATE else f"~{n}"
