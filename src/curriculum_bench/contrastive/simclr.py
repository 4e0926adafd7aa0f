"""SimCLR pretraining with a curriculum over negatives, on the one engine (docs/methods.md §3).

Two augmented views of every image are made on the device (ETH config: random-resized
crop, flip, colour jitter p 0.8, grayscale p 0.2, blur p 0.5) and interleaved so that rows
2i and 2i+1 are a positive pair; the model (`simclr` in the model registry) returns its
online-probe logits and keeps the projections z, on which the loss adds Weighted NT-Xent
(contrastive/weighted_ntxent.py). With `sigma: null` the loss is plain NT-Xent (SimCLR);
with a sigma, `mean_schedule` moves the desired hardness mu of negatives over epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from ..config import ConfigError
from ..data.augment import Augment
from ..train.hooks import Hook, Stream, TrainState, register_method, seeded_generator
from .weighted_ntxent import MEAN_SCHEDULES, NORMALIZATIONS, mean_at, weighted_nt_xent

# ETH config/config_example.yaml augmentations, CIFAR-10 at 32 px (docs/methods.md §3.3).
ETH_VIEWS = (
    {"op": "random_resized_crop", "size": 32, "scale": [0.08, 1.0], "ratio": [0.75, 1.3333333]},
    {"op": "horizontal_flip", "p": 0.5},
    {"op": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "p": 0.8},
    {"op": "random_grayscale", "p": 0.2},
    {"op": "gaussian_blur", "kernel_size": 3, "sigma": [0.1, 2.0], "p": 0.5},
)


@dataclass(frozen=True)
class SimCLRConfig:
    views: tuple = ETH_VIEWS  # ops making each view (data/augment.py), ETH's at 32 px
    temperature: float = 0.1  # ETH tau (Tab. 2: best of 0.05 / 0.1 / 0.5 / 1)
    sigma: float | None = None  # None: NT-Xent; ETH experiments 0.5 (0.25 unstable)
    weight_normalization: str = "negatives_constant_total_weight"  # ETH default; or "none"
    mean_schedule: str = "constant"  # ETH `mean` class: constant, linear, exponential, random, ...
    mean_begin: float = -1.0  # ETH mean_config.begin (example -0.99; experiments -1)
    mean_end: float = 1.0  # ETH mean_config.end
    mean_steps: int = 50  # ETH example 50; experiments 25-750 (epochs to reach end)
    mean_factor: float = 0.99  # ExponentialParam
    mean_const_value: float = 0.8  # RandomThenConst
    b_l: float = -1.0  # weights x1e-3 below b_l / above b_u (ETH: never active)
    b_u: float = 1.0
    # Snapshot the model after these epochs for linear evaluation (ETH: every 100); the final
    # epoch always is.
    probe_epochs: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "views", tuple(dict(v) for v in self.views))
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.sigma is not None and self.sigma <= 0:
            raise ValueError(f"sigma must be > 0 or null (NT-Xent), got {self.sigma}")
        if self.weight_normalization not in NORMALIZATIONS:
            raise ValueError(f"weight_normalization must be one of {NORMALIZATIONS}, got {self.weight_normalization!r}")
        if self.mean_schedule not in MEAN_SCHEDULES:
            raise ValueError(f"mean_schedule must be one of {MEAN_SCHEDULES}, got {self.mean_schedule!r}")
        if self.mean_steps < 1 or not 0 < self.mean_factor <= 1:
            raise ValueError("mean_steps must be >= 1 and mean_factor in (0, 1]")
        if self.b_l > self.b_u:
            raise ValueError(f"b_l ({self.b_l}) must not exceed b_u ({self.b_u})")
        object.__setattr__(self, "probe_epochs", tuple(int(e) for e in self.probe_epochs))
        if any(e < 1 for e in self.probe_epochs):
            raise ValueError(f"probe_epochs must be epochs >= 1, got {list(self.probe_epochs)}")
        self.augment  # noqa: B018  (builds the views' ops: a bad op is refused with the config)

    @cached_property
    def augment(self) -> Augment:
        """The ops making each view, built (and so checked) once, when the config is."""
        return Augment.from_config(self.views, where="views")

    def mean(self, epoch: int, step: int, seed: int) -> float:
        return mean_at(
            self.mean_schedule,
            epoch,
            step,
            seed,
            self.mean_begin,
            self.mean_end,
            self.mean_steps,
            self.mean_factor,
            self.mean_const_value,
        )


def interleave_views(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(B, ...) x 2 -> (2B, ...) with rows 2i, 2i+1 the two views of image i."""
    return torch.stack([first, second], dim=1).flatten(0, 1)


def snapshot_path(run_dir, epoch: int):
    """Where the model after `epoch` waits for its linear evaluation."""
    from pathlib import Path

    return Path(run_dir) / "snapshots" / f"epoch{epoch}.pt"


@register_method("simclr", SimCLRConfig)
class SimCLR(Hook):
    compilable = False  # the loss reads `projections`, which the model's forward stores on itself

    def __init__(self, cfg: SimCLRConfig):
        self.cfg = cfg
        self.augment = cfg.augment
        self.generator = torch.Generator()  # this epoch's views (Stream.VIEWS), drawn on as batches go
        self.epoch = -1  # the epoch the views generator and the running loss belong to
        self.resumed: dict[str, Any] | None = None

    def on_fit_start(self, state: TrainState) -> None:
        if not hasattr(state.model, "projections"):
            raise ConfigError(
                f"methods.simclr needs the `simclr` model (encoder + projection head), got {type(state.model).__name__}"
            )
        self.loss_sum = torch.zeros((), device=state.device)
        self.anchors = 0

    def on_epoch_start(self, state: TrainState) -> None:
        self.epoch = state.epoch
        self.loss_sum.zero_()
        self.anchors = 0
        if self.resumed is not None and self.resumed["epoch"] == state.epoch:
            # Finish an epoch interrupted mid-way exactly: same views, same running loss.
            self.generator.set_state(self.resumed["generator"])
            self.loss_sum += self.resumed["loss_sum"]
            self.anchors = self.resumed["anchors"]
        else:
            self.generator = seeded_generator(state.seed, state.epoch, Stream.VIEWS)
        self.resumed = None

    def transform_batch(self, state: TrainState, idx, x, y):
        views = interleave_views(self.augment(x, self.generator), self.augment(x, self.generator))
        return views, y.repeat_interleave(2)

    def loss(self, state: TrainState, idx, logits, y, loss):
        cfg = self.cfg
        mean = cfg.mean(state.epoch, state.step, state.seed)
        contrastive = weighted_nt_xent(
            state.model.projections, cfg.temperature, mean, cfg.sigma, cfg.weight_normalization, cfg.b_l, cfg.b_u
        )
        self.loss_sum += contrastive.detach().sum()
        self.anchors += len(contrastive)
        return loss + contrastive  # the online probe's CE trains only the probe (detached h)

    def on_epoch_end(self, state: TrainState) -> None:
        epoch = state.epoch + 1
        if epoch in self.cfg.probe_epochs and epoch < state.epochs:
            from ..train.checkpoint import save_checkpoint

            save_checkpoint(snapshot_path(state.out_dir, epoch), state.model.state_dict())

    def epoch_log(self, state: TrainState) -> dict:
        return {
            "mean": self.cfg.mean(state.epoch, state.step - 1, state.seed),  # the epoch's last step's
            "contrastive_loss": self.loss_sum.item() / max(self.anchors, 1),
        }

    def state_dict(self) -> dict:
        if self.epoch < 0:
            return {}
        return {
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
            "loss_sum": self.loss_sum.item(),
            "anchors": self.anchors,
        }

    def load_state_dict(self, state: dict) -> None:
        self.resumed = state or None
