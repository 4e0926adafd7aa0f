"""Learning-rate schedules as pure functions of the epoch (no scheduler state to save)."""

from __future__ import annotations

import math

from .config import TrainConfig


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base LR during 0-based `epoch`; constant within an epoch.

    `warmup_cosine` is MLT's SequentialLR (docs/methods.md §2.1): LinearLR from `warmup_start_factor`
    to 1 over `warmup_epochs`, then CosineAnnealingLR(T_max, eta_min = min_lr_factor * lr)
    continued past T_max, so it rises and falls with period 2 * T_max. `cosine` is the
    same warm-up followed by a single cosine over the remaining epochs; `multistep`
    multiplies by `gamma` at each of `milestones`.
    """
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "multistep":
        # torchvision/DP's MultiStepLR: x gamma from each milestone epoch on (no warm-up).
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_start_factor + (1 - cfg.warmup_start_factor) * epoch / cfg.warmup_epochs
    t = epoch - cfg.warmup_epochs
    low = cfg.min_lr_factor
    if cfg.schedule == "cosine":
        # One decay from 1 to min_lr_factor over the epochs after warm-up (no restart).
        span = max(cfg.epochs - cfg.warmup_epochs, 1)
        return low + (1 - low) * (1 + math.cos(math.pi * t / span)) / 2
    return low + (1 - low) * (1 + math.cos(math.pi * t / cfg.cosine_t_max)) / 2
