"""Progressive (curriculum) dropout: dropout that grows from none to its target during training.

docs/methods.md §2.3, two schedules selected by `schedule`:

* `linear_epoch` — the MNIST catalogue (MLT:training/tr_progressive_dropout.py,
  models/DynamicDropout.py): at the start of 0-based epoch e the `conv` dropout modules
  (the Dropout2d after each residual block, the ones MLT registers in `dropout_mem`) get
  p(e) = min(start + e / end_epoch * (end - start), end); the input and fc dropout of a
  model built for Curriculum Dropout stay as built (p = 0), as MLT has none. The catalogue's
  README snippet (MLT@eca81ce) and its script both ramp 0.05 -> 1.0 over 2 epochs, where
  Dropout2d zeroes every channel at p = 1 and the network trains on all-zero features (spec
  §2.3, §8): a bug, reproducible with `start: 0.05, end: 1.0` but not the default. The
  defaults, 0 -> 0.5 over 2 epochs, are ours: the same ramp stopped at a rate that trains
  (docs/methods.md §2.3 attributes them to the README, whose snippet at eca81ce shows 0.05 -> 1).
* `exp_iter` — Curriculum Dropout (Morerio et al., ICCV 2017, Eq. 7; CD:mnist/
  evaluate_mnist.py): per iteration t the *retain* probability of a layer with target
  θ̄ is θ(t) = (1 - θ̄) exp(-γ t) + θ̄, so dropout starts at p = 0 and approaches
  1 - θ̄. Targets per layer kind: input 0.9, conv 0.75, fc 0.5, γ = 1e-3 (CD configs).
  `direction: anneal` is the paper's opposite control (`ann_dropout`):
  θ(t) = 1 - (1 - θ̄) exp(-γ t), from θ̄ up to 1.

The model names its dropout modules by kind (`dropout_layers()`; MLT ConvNet: `conv` =
the Dropout2d after each residual block, `input`/`fc` when built with `input_dropout` /
`fc_dropout`); a model without that method has all its dropout modules treated as `conv`.
Both schedules are pure functions of the epoch or the step: nothing to checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from ..train.hooks import Hook, TrainState, register_method

SCHEDULES = ("linear_epoch", "exp_iter")
LAYER_KINDS = ("input", "conv", "fc")
# The layer kinds each schedule drives: MLT's callback sets only its DynamicDropout2d modules.
DRIVEN_KINDS = {"linear_epoch": ("conv",), "exp_iter": LAYER_KINDS}


@dataclass(frozen=True)
class ProgressiveDropoutConfig:
    schedule: str = "linear_epoch"  # linear_epoch (MLT, per epoch) | exp_iter (CD paper, per iteration)
    # linear_epoch (MLT README snippet; the script's end = 1.0 zeroes every channel, docs/methods.md §2.3)
    start: float = 0.0  # p at epoch 0 (script: 0.05)
    end: float = 0.5  # p from end_epoch on (ours; MLT's README and script: 1.0, the bug)
    end_epoch: int = 2  # MLT: 2
    # exp_iter (CD:mnist/experiments/*/input_configuration)
    gamma: float = 1e-3  # per iteration
    retain: dict = field(default_factory=lambda: {"input": 0.9, "conv": 0.75, "fc": 0.5})  # θ̄ per layer kind
    direction: str = "curriculum"  # curriculum (scheduled_dropout) | anneal (ann_dropout control)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("start", "end"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a dropout probability in [0, 1], got {getattr(self, name)}")
        if self.start > self.end:
            raise ValueError(f"start ({self.start}) must not exceed end ({self.end}): the schedule grows")
        if self.end_epoch < 1:
            raise ValueError(f"end_epoch must be >= 1, got {self.end_epoch}")
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        unknown = sorted(set(self.retain) - set(LAYER_KINDS))
        if unknown:
            raise ValueError(f"retain.{unknown[0]}: unknown layer kind; expected some of {list(LAYER_KINDS)}")
        for kind, theta in self.retain.items():
            if not 0 < theta <= 1:
                raise ValueError(f"retain.{kind} must be a retain probability in (0, 1], got {theta}")
        if self.direction not in ("curriculum", "anneal"):
            raise ValueError(f"direction must be curriculum or anneal, got {self.direction!r}")


def linear_epoch_p(epoch: int, start: float, end: float, end_epoch: int) -> float:
    """MLT: p(e) = min(start + e / end_epoch * (end - start), end), e 0-based."""
    return min(start + epoch / end_epoch * (end - start), end)


def curriculum_retain(step: int, target: float, gamma: float, direction: str = "curriculum") -> float:
    """CD Eq. 7: θ(t) = (1 - θ̄) exp(-γ t) + θ̄ (curriculum), or 1 - (1 - θ̄) exp(-γ t) (anneal)."""
    decay = math.exp(-gamma * step)
    if direction == "anneal":
        return 1 - (1 - target) * decay
    return (1 - target) * decay + target


def dropout_layers(model: nn.Module) -> dict[str, list[nn.Module]]:
    if hasattr(model, "dropout_layers"):
        return model.dropout_layers()
    return {"input": [], "conv": [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)], "fc": []}


@register_method("progressive_dropout", ProgressiveDropoutConfig)
class ProgressiveDropout(Hook):
    compilable = False  # sets each dropout module's p, a Python float, as the schedule moves

    def __init__(self, cfg: ProgressiveDropoutConfig):
        self.cfg = cfg
        self.layers: dict[str, list[nn.Module]] = {}

    def on_fit_start(self, state: TrainState) -> None:
        driven = DRIVEN_KINDS[self.cfg.schedule]
        self.layers = {k: v for k, v in dropout_layers(state.model).items() if v and k in driven}
        if not self.layers:
            raise ValueError(
                f"methods.progressive_dropout: the model has no {'/'.join(driven)} dropout modules "
                f"for the {self.cfg.schedule} schedule"
            )
        if self.cfg.schedule == "exp_iter":
            missing = sorted(set(self.layers) - set(self.cfg.retain))
            if missing:
                raise ValueError(
                    f"methods.progressive_dropout.retain: no target for the model's {missing[0]!r} dropout layers"
                )

    def p_at(self, kind: str, epoch: int, step: int) -> float:
        cfg = self.cfg
        if cfg.schedule == "linear_epoch":
            return linear_epoch_p(epoch, cfg.start, cfg.end, cfg.end_epoch)
        return 1 - curriculum_retain(step, cfg.retain[kind], cfg.gamma, cfg.direction)

    def _apply(self, state: TrainState) -> None:
        for kind, modules in self.layers.items():
            p = self.p_at(kind, state.epoch, state.step)
            for module in modules:
                module.p = p

    def on_epoch_start(self, state: TrainState) -> None:
        self._apply(state)  # linear_epoch: once per epoch, as MLT's on_train_epoch_start

    def on_batch_start(self, state: TrainState) -> None:
        if self.cfg.schedule == "exp_iter":
            self._apply(state)  # t = optimiser steps taken before this one

    def epoch_log(self, state: TrainState) -> dict:
        # The p the modules hold: the epoch's last step's (constant within an epoch for linear_epoch).
        return {f"p_{kind}": modules[0].p for kind, modules in self.layers.items()}
