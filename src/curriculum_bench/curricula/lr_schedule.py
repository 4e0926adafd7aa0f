"""A variant's own learning-rate schedule (the catalogue's planned technique).

The study's `train.schedule` is shared by every variant; this method replaces it for one
variant by setting each group's `lr_scale` before every step to f(t) / s(e), f the
variant's factor at step t and s the study's factor in epoch e (train/schedule.py), so the
engine's lr = lr · s(e) · lr_scale = lr · f(t) (times any per-group scale set by another
method). Factors are pure functions of the step (nanoGPT's get_lr), matching PyTorch's
schedulers stepped per iteration (per epoch for `step`):

* `step`      StepLR: gamma^(epoch // step_size)
* `cosine`    CosineAnnealingLR(T_max = all steps, eta_min = min_factor · lr)
* `one_cycle` OneCycleLR (Smith & Topin 2017; torch defaults pct_start 0.3, div_factor 25,
              final_div_factor 1e4, cosine annealing): peak lr at 30 % of the steps
* `warmup`    LinearLR from warmup_start_factor to 1 over warmup_epochs, then constant
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..train.hooks import Hook, TrainState, register_method
from ..train.schedule import lr_factor

KINDS = ("step", "cosine", "one_cycle", "warmup")


@dataclass(frozen=True)
class LRScheduleConfig:
    kind: str = "one_cycle"
    step_size: int = 3  # step: epochs between decays (StepLR)
    gamma: float = 0.1  # step: decay factor (StepLR default)
    min_factor: float = 0.0  # cosine: eta_min / lr (CosineAnnealingLR default 0)
    pct_start: float = 0.3  # one_cycle: torch OneCycleLR defaults
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    warmup_epochs: float = 1.0  # warmup: LinearLR over this many epochs (in steps)
    warmup_start_factor: float = 1e-3

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {self.step_size}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.min_factor <= 1:
            raise ValueError(f"min_factor must be in [0, 1], got {self.min_factor}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start}")
        if self.div_factor < 1 or self.final_div_factor < 1:
            raise ValueError("div_factor and final_div_factor must be >= 1")
        if not self.warmup_epochs > 0:
            raise ValueError(f"warmup_epochs must be > 0, got {self.warmup_epochs}")
        if not 0 < self.warmup_start_factor <= 1:
            raise ValueError(f"warmup_start_factor must be in (0, 1], got {self.warmup_start_factor}")


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def schedule_factor(cfg: LRScheduleConfig, step: int, epoch: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base LR at optimiser step `step` (0-based) of `total_steps`."""
    if cfg.kind == "step":
        return cfg.gamma ** (epoch // cfg.step_size)
    if cfg.kind == "cosine":
        return _cos_anneal(1.0, cfg.min_factor, step / total_steps)
    if cfg.kind == "warmup":
        warmup_steps = cfg.warmup_epochs * steps_per_epoch
        return cfg.warmup_start_factor + (1 - cfg.warmup_start_factor) * min(step / warmup_steps, 1.0)
    # one_cycle, as torch.optim.lr_scheduler.OneCycleLR(three_phase=False, anneal_strategy="cos")
    initial = 1 / cfg.div_factor
    final = initial / cfg.final_div_factor
    peak_step = cfg.pct_start * total_steps - 1
    if step <= peak_step:
        return _cos_anneal(initial, 1.0, step / peak_step)
    return _cos_anneal(1.0, final, (step - peak_step) / (total_steps - 1 - peak_step))


@register_method("lr_schedule", LRScheduleConfig)
class LRSchedule(Hook):
    def __init__(self, cfg: LRScheduleConfig):
        self.cfg = cfg

    def factor(self, state: TrainState, step: int) -> float:
        """The variant's factor at optimiser step `step` of this epoch."""
        steps = state.steps_per_epoch
        return schedule_factor(self.cfg, step, state.epoch, steps, state.epochs * steps)

    def on_fit_start(self, state: TrainState) -> None:
        self.group_scales = [g["lr_scale"] for g in state.optimizer.param_groups]  # other methods' scales

    def on_batch_start(self, state: TrainState) -> None:
        factor, study = self.factor(state, state.step), lr_factor(state.epoch, state.train_config)
        if study <= 0:
            raise ValueError(
                f"methods.lr_schedule: the study's schedule is 0 in epoch {state.epoch + 1}; "
                "nothing to rescale (use train.schedule: constant)"
            )
        for group, scale in zip(state.optimizer.param_groups, self.group_scales, strict=True):
            group["lr_scale"] = scale * factor / study

    def epoch_log(self, state: TrainState) -> dict:
        return {"factor": self.factor(state, state.step - 1)}  # the epoch's last step's
