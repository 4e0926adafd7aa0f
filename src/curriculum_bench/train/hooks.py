"""The hook interface: how a curriculum method plugs into the one training engine.

A method overrides only the moments it needs (composer's events, ClassyHook's no-op
defaults). Every moment reads the same way: the training state first, then the batch in one
fixed order (`idx, x, y`, then `logits`, then `loss`). In loop order:

    param_groups(state, model)          -> optimiser parameter groups, or None for one group;
                                        the optimiser is built from them: state.optimizer is None
    on_fit_start(state)                 once, after the model, optimiser and data exist
    input_files(state)                  -> {role: path} of files it reads besides the dataset
                                        store (teacher, weights, selection): part of the run's identity
    on_epoch_start(state)
    sample_order(state, generator)      -> this epoch's training indices, or None for a shuffle
    on_batch_start(state)
    transform_batch(state, idx, x, y)   -> (x, y): on-device batch transform
    loss(state, idx, logits, y, loss)   -> per-sample loss (receives the previous one)
    after_forward(state, idx, logits, y)  per-sample statistics from the training forward pass
    after_step(state)                   after the optimiser step (extra optimisers, clamps)
    on_epoch_end(state)
    epoch_log(state)                    -> {key: value} logged as "<method>/<key>" in history
    on_fit_end(state)                   once, after the last epoch: write artifacts to state.out_dir
    state_dict() / load_state_dict()    learned or counted state a resumed run needs

and, when the workflow is parsed, before any job: `check_train(cfg, train)`, a rule between the
method's settings and the run's `train` ones (config_checks.py builds every run's settings).

Schedules should be pure functions of `state.epoch` / `state.step`, so that only real
learned or counted state goes into `state_dict`, and a hook reads the run's settings, its
input pipeline and its speed switches from the state instead of keeping a copy.

A method is one module in `curricula/` (or `contrastive/`) with a `@register_method` class:
`discover_methods` imports every module there, so no list needs the new file's name.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..config import config_from_dict
from ..registry import Registry
from .config import TrainConfig
from .pipeline import InputPipeline
from .speed import Speed

if TYPE_CHECKING:
    from .engine import Data


@dataclass
class TrainState:
    """What the engine shows its hooks: the run's objects, its settings and where training stands."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None  # None only while param_groups is asked
    device: torch.device
    train_labels: torch.Tensor  # on `device`, indexed by sample index
    num_classes: int
    epochs: int
    seed: int = 0  # the run's seed, for a method's own random streams (Stream)
    steps_per_epoch: int = 0  # this epoch's steps, known once its sample order is drawn (from on_batch_start)
    epoch: int = 0  # 0-based epoch being trained
    step: int = 0  # batches trained since the start (optimiser steps unless train.grad_accumulation_steps > 1)
    batch: int = 0  # 0-based batch within the epoch (set before on_batch_start)
    order: torch.Tensor | None = None  # this epoch's sample indices, on `device` (set before on_batch_start)
    augment: bool = True  # False: this epoch's batches skip train.augment (set in on_epoch_start)
    out_dir: Path | None = None  # the run directory (metrics.json, history.jsonl, artifacts)
    data_dir: Path | None = None  # the dataset store (extra arrays: train_corrupted, clean labels)
    data: Data | None = None  # train/eval/val splits, for hooks that predict on them
    # The study's `train:` settings: a method with its own LR schedule divides out the study's
    # (train/schedule.py), a multi-round method restarts it.
    train_config: TrainConfig = field(default_factory=TrainConfig)
    # Hooks that predict (self-labelling, a distillation teacher) normalise as evaluation does,
    # at the run's precision and layout.
    pipeline: InputPipeline = field(default_factory=InputPipeline)
    speed: Speed = Speed()
    forward: nn.Module | None = None  # the module a training step calls: `model` compiled, or `model`

    def __post_init__(self):
        if self.forward is None:
            self.forward = self.model


class Hook:
    name: str = "hook"  # set by register_method
    # False for a method that changes the model's Python attributes while it trains (a
    # dropout rate, a tensor kept by forward): torch.compile would recompile at each change.
    compilable: bool = True

    @staticmethod
    def check_train(cfg: Any, train: TrainConfig) -> None:
        """Raise ValueError when the method's settings cannot mean what they say under the run's
        `train` settings (rounds that do not fit the epochs). Called when the workflow is parsed
        (config_checks.py), so `snakemake -n` refuses the config before any job runs."""

    def param_groups(self, state: TrainState, model: nn.Module) -> list[dict] | None:
        return None

    def on_fit_start(self, state: TrainState) -> None:
        pass

    def input_files(self, state: TrainState) -> dict[str, Path]:
        # Their checksums join the run's identity (train/identity.py): a checkpoint made
        # from other file content is never resumed.
        return {}

    def on_epoch_start(self, state: TrainState) -> None:
        pass

    def sample_order(self, state: TrainState, generator: torch.Generator) -> torch.Tensor | None:
        return None

    def on_batch_start(self, state: TrainState) -> None:
        pass

    def transform_batch(
        self, state: TrainState, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def loss(
        self, state: TrainState, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor
    ) -> torch.Tensor:
        return loss

    def after_forward(self, state: TrainState, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        pass

    def after_step(self, state: TrainState) -> None:
        pass

    def on_epoch_end(self, state: TrainState) -> None:
        pass

    def epoch_log(self, state: TrainState) -> dict[str, Any]:
        return {}

    def on_fit_end(self, state: TrainState) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Stream(enum.IntEnum):
    """Every random stream of a run, each drawn only through `seeded_generator`.

    Streams are kept apart so that one method's draws never shift another's: adding blur to a
    variant leaves its sample order as it was. A value is part of what a run computes;
    changing one changes measured numbers.
    """

    ORDER = 0  # the engine's sample order (or a method's sampler), per epoch
    AUGMENT = 1  # the engine's train.augment, per epoch
    VIEWS = 2  # the two views of each image of SimCLR and MoCo, per epoch
    AUGMENT_METHOD = 3  # the `augment` method's ops, per step
    BLUR = 4  # which images the blur curriculum blurs, per step
    MEAN_EPOCH = 5  # Weighted NT-Xent's random mu (random, random_then_const), per epoch
    MEAN_STEP = 6  # Weighted NT-Xent's random mu (random_every_iter), per step
    MASK = 7  # which patches masked image modelling masks, per step
    QUEUE = 8  # MoCo's initial queue of random keys, once (t = 0)
    MIX = 9  # the engine's mixup / cutmix (train.mixup_alpha, cutmix_alpha), per step
    CBS = 10  # Curriculum by Smoothing's shuffled sigma order (its random control), once (t = 0)


def seeded_generator(seed: int, t: int, stream: Stream) -> torch.Generator:
    """A CPU generator that depends only on (seed, t, stream), t an epoch or a step: a resumed
    run draws the same numbers, on any device."""
    return torch.Generator().manual_seed(seed * 1_000_003 + t + int(stream) * 7_919_993)


METHODS: Registry = Registry("method")
# Packages whose modules hold the methods: curricula/ one file per paper section, contrastive/
# SimCLR with its loss and probe.
METHOD_PACKAGES = ("curricula", "contrastive")


def register_method(name: str, config_cls):
    """Class decorator: file a Hook under `name`, built from a frozen config dataclass."""

    def add(hook_cls):
        hook_cls.name = name
        hook_cls.config_cls = config_cls
        METHODS.register(name)(hook_cls)
        return hook_cls

    return add


def discover_methods() -> Registry:
    """Import every module of the method packages, so that each file's @register_method runs:
    a new method is a new file, with no list of names to edit. Returns METHODS."""
    root = __name__.split(".")[0]
    for package_name in METHOD_PACKAGES:
        package = importlib.import_module(f"{root}.{package_name}")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return METHODS


def build_hooks(methods: dict[str, dict]) -> list[Hook]:
    """A variant's methods, in config order, each from its own config section."""
    discover_methods()
    hooks = []
    for name, args in methods.items():
        hook_cls = METHODS.get(name)
        hooks.append(hook_cls(config_from_dict(hook_cls.config_cls, args, where=f"methods.{name}")))
    return hooks
