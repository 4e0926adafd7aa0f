"""Curriculum by Smoothing: Gaussian smoothing of every convolution's output, less each epoch.

Sinha, Garg & Larochelle, "Curriculum by Smoothing" (NeurIPS 2020); docs/methods.md §1.4 (the
official code, CBS:resnet.py, utils.py `get_gaussian_filter`, solver_cbs.py, arguments.py).
The hybrid repository cites it as the origin of its input blur (§1.3); CBS blurs feature maps,
not images.

- After each convolution and before what follows it (CBS: conv -> Gaussian -> BatchNorm), a
  fixed depthwise Gaussian: a k x k kernel exp(-|p - c|^2 / (2 sigma^2)) over the grid
  centred at c = (k - 1) / 2, normalised to sum 1, zero padding k // 2, not trained.
- CBS adds it after the stem conv and both convs of every BasicBlock, not after the 1x1
  shortcut convs. Here it wraps, through forward hooks and without editing the model, every
  nn.Conv2d whose kernel is larger than 1 x 1: in a torchvision ResNet exactly CBS's convs.
- ``decay`` (CBS): sigma(e) = sigma x decay ** (e // decay_epochs), e the 0-based epoch (CBS
  `get_new_kernels`: x std_factor at every epoch e % epoch == 0, e != 0, before it trains).
- ``shuffled`` (ours, the random control): the same per-epoch sigmas over the run's epochs in
  a random order, drawn once per run from the seed (Stream.CBS): as much smoothing in all, in
  no easy-to-hard order.
- ``constant`` (ours, a second control): sigma at every epoch, no curriculum.
- The kernels stay on at evaluation, with the epoch's sigma (CBS evaluates its model as it
  trains it). The hooks are removed at the end of the run, so `final_model.pt` is the plain
  model's state dict (the Gaussian kernels are not parameters).

Differences from CBS: kernel sizes other than 3 and 5 are padded k // 2 (CBS pads 0, which
shrinks the maps and breaks a ResNet's residual sum, so it never ran with them); sigma must be
> 0. Nothing is checkpointed: the schedule is a pure function of (epoch, seed, epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..train.hooks import Hook, Stream, TrainState, register_method, seeded_generator

SCHEDULES = ("decay", "shuffled", "constant")


@dataclass(frozen=True)
class CBSConfig:
    sigma: float = 1.0  # CBS --std: the first epochs' sigma
    decay: float = 0.9  # CBS --std_factor: sigma x decay every decay_epochs
    decay_epochs: int = 5  # CBS --epoch
    kernel_size: int = 3  # CBS --kernel_size
    schedule: str = "decay"  # decay: CBS | shuffled: its random control | constant: sigma throughout

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")
        if not isinstance(self.decay_epochs, int) or self.decay_epochs < 1:
            raise ValueError(f"decay_epochs must be an int >= 1, got {self.decay_epochs!r}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 1, got {self.kernel_size!r}")


def decay_sigma(epoch: int, cfg: CBSConfig) -> float:
    """CBS's sigma in 0-based `epoch`: sigma x decay ** (epoch // decay_epochs)."""
    return cfg.sigma * cfg.decay ** (epoch // cfg.decay_epochs)


def shuffled_epochs(epochs: int, seed: int) -> list[int]:
    """The epoch whose CBS sigma each epoch takes under `shuffled`: a permutation from the seed."""
    return torch.randperm(epochs, generator=seeded_generator(seed, 0, Stream.CBS)).tolist()


def cbs_sigma(epoch: int, cfg: CBSConfig, epochs: int, seed: int) -> float:
    if cfg.schedule == "constant":
        return cfg.sigma
    if cfg.schedule == "shuffled":
        return decay_sigma(shuffled_epochs(epochs, seed)[epoch], cfg)
    return decay_sigma(epoch, cfg)


def gaussian_kernel(kernel_size: int, sigma: float) -> torch.Tensor:
    """CBS get_gaussian_filter's (k, k) kernel: a 2-D Gaussian of variance sigma^2 centred in the
    grid, normalised to sum 1 (its 1 / (2 pi sigma^2) factor cancels)."""
    t = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    squared = t[None, :] ** 2 + t[:, None] ** 2
    kernel = torch.exp(-squared / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    return (kernel / kernel.sum()).float()


def smooth(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise convolution of every channel of x (N, C, H, W) with `kernel` (k, k), zero padded."""
    c, k = x.shape[1], kernel.shape[-1]
    weight = kernel.to(x.dtype).repeat(c, 1, 1, 1).view(c, 1, k, k)
    return F.conv2d(x, weight, padding=k // 2, groups=c)


def smoothed_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The convolutions CBS smooths: every Conv2d with a kernel larger than 1 x 1."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) != (1, 1)]


@register_method("cbs", CBSConfig)
class CurriculumBySmoothing(Hook):
    """Usage (a variant in the config):  cbs: {sigma: 1.0, decay: 0.9, decay_epochs: 5, kernel_size: 3}"""

    def __init__(self, cfg: CBSConfig):
        self.cfg = cfg
        self.kernel: torch.Tensor | None = None  # updated in place each epoch: a compiled model keeps its graph
        self.handles: list = []

    def on_fit_start(self, state: TrainState) -> None:
        convs = smoothed_convs(state.model)
        if not convs:
            raise ValueError(f"methods.cbs: {type(state.model).__name__} has no convolution larger than 1x1 to smooth")
        self.kernel = gaussian_kernel(self.cfg.kernel_size, self.cfg.sigma).to(state.device)
        self.handles = [conv.register_forward_hook(self._smooth_output) for _, conv in convs]

    def _smooth_output(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        return smooth(output, self.kernel)

    def sigma(self, state: TrainState) -> float:
        return cbs_sigma(state.epoch, self.cfg, state.epochs, state.seed)

    def on_epoch_start(self, state: TrainState) -> None:
        self.kernel.copy_(gaussian_kernel(self.cfg.kernel_size, self.sigma(state)))

    def epoch_log(self, state: TrainState) -> dict:
        return {"sigma": self.sigma(state)}

    def on_fit_end(self, state: TrainState) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
