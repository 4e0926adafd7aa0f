"""Weighted NT-Xent: a curriculum over the hardness of negatives (docs/methods.md §3.1-3.2).

ETH (joelneeser/curriculum-contrastive-learning, paper.pdf §2, src/losses/): a batch of K
images gives 2K views, rows 2i and 2i+1 a positive pair. With cosine similarities s, every
negative k of anchor i gets the weight

    alpha_ik = exp(-(s_ik - mu(t))^2 / sigma^2)          (sigma^2, not 2 sigma^2)

computed without gradient, x1e-3 outside [b_l, b_u]. With weight normalisation the weighted
negatives are rescaled to the total weight 2K - 2 (rho_i = (2K-2) / sum_k alpha_ik; the code
adds 1e-10 to both), and

    l_i = -log( e^{s_ij/tau} / (e^{s_ij/tau} + rho_i sum_{k != i,j} alpha_ik e^{s_ik/tau}) ),

averaged over the 2K anchors. sigma -> inf (alpha = 1, rho = 1) is NT-Xent (SimCLR).

mu(t) follows one of ETH's schedules, stepped once per epoch (per batch for
RandomParamEveryIter); each is a pure function of (epoch, step, seed) here, the random ones
drawn from the run's own mu streams (train.hooks.Stream), so a resumed run draws the same values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..train.hooks import Stream, seeded_generator

MEAN_SCHEDULES = ("constant", "linear", "exponential", "random", "random_then_const", "random_every_iter")
NORMALIZATIONS = ("negatives_constant_total_weight", "none")
OUT_OF_RANGE_FACTOR = 1e-3  # ETH weights.py: entries outside [b_l, b_u]
EPS = 1e-10  # ETH: in the cosine norms and in 1/rho


def cosine_similarities(z: torch.Tensor) -> torch.Tensor:
    """(2K, d) projections -> (2K, 2K) cosine similarities, norms in float32 as ETH's code."""
    norms = z.float().norm(dim=1, keepdim=True).clamp_min(EPS)
    unit = z / norms.to(z.dtype)
    return unit @ unit.T


def negative_weights(
    sim: torch.Tensor, mean: float, sigma: float | None, b_l: float = -1.0, b_u: float = 1.0
) -> torch.Tensor:
    """alpha_ik for every pair (diagonal and positives included; the loss masks them)."""
    sim = sim.detach()
    if sigma is None:
        return torch.ones_like(sim)
    alpha = torch.exp(-((sim - mean) ** 2) / sigma**2)
    outside = (sim < b_l) | (sim > b_u)
    return torch.where(outside, alpha * OUT_OF_RANGE_FACTOR, alpha)


def weighted_nt_xent(
    z: torch.Tensor,
    temperature: float,
    mean: float = 0.0,
    sigma: float | None = None,
    normalization: str = "negatives_constant_total_weight",
    b_l: float = -1.0,
    b_u: float = 1.0,
) -> torch.Tensor:
    """Per-anchor loss (2K,) of views z (2K, d) paired as rows (2i, 2i+1); sigma None = NT-Xent."""
    n = z.shape[0]
    if n % 2:
        raise ValueError(f"expected an even number of views (pairs 2i, 2i+1), got {n}")
    sim = cosine_similarities(z)
    rows = torch.arange(n, device=z.device)
    positive = rows ^ 1
    negatives = torch.ones(n, n, dtype=torch.bool, device=z.device)
    negatives[rows, rows] = False
    negatives[rows, positive] = False
    alpha = negative_weights(sim, mean, sigma, b_l, b_u) * negatives
    if normalization == "negatives_constant_total_weight" and sigma is not None:
        rho = (n - 2 + EPS) / (alpha.sum(1) + EPS)
    elif normalization in NORMALIZATIONS:
        rho = torch.ones(n, device=z.device, dtype=sim.dtype)
    else:
        raise ValueError(f"weight_normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    logits = sim / temperature
    pos = logits[rows, positive]
    # log(rho * sum_k alpha_ik e^{s_ik/tau}) in log space; log(0) = -inf removes masked entries.
    weighted = torch.logsumexp(logits + torch.log(alpha.clamp_min(0)), dim=1) + torch.log(rho)
    return torch.logsumexp(torch.stack([pos, weighted]), dim=0) - pos


def mean_at(
    schedule: str,
    epoch: int,
    step: int,
    seed: int,
    begin: float,
    end: float,
    steps: int,
    factor: float,
    const_value: float,
) -> float:
    """mu for this epoch (and step, for random_every_iter): ETH's Param classes, §3.2, §8."""
    if schedule == "constant":
        return begin
    if schedule == "linear":  # LinearParam: + (end - begin) / steps per epoch for `steps` epochs
        return begin + (end - begin) * min(epoch, steps) / steps
    if schedule == "exponential":  # ExponentialParam: approaches `end`, never reaches it
        return end + (begin - end) * factor**epoch
    if schedule == "random_then_const" and epoch > steps:  # random for steps + 1 epochs (§8)
        return const_value
    if schedule in ("random", "random_then_const"):
        return _uniform(begin, end, seeded_generator(seed, epoch, Stream.MEAN_EPOCH))
    if schedule == "random_every_iter":
        return _uniform(begin, end, seeded_generator(seed, step, Stream.MEAN_STEP))
    raise ValueError(f"mean_schedule must be one of {MEAN_SCHEDULES}, got {schedule!r}")


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def nt_xent_reference(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """Plain NT-Xent as SimCLR writes it (cross-entropy over the other 2K-1 views): for tests."""
    n = z.shape[0]
    unit = F.normalize(z, dim=1)
    logits = unit @ unit.T / temperature
    logits = logits.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), -math.inf)
    return F.cross_entropy(logits, torch.arange(n, device=z.device) ^ 1, reduction="none")
