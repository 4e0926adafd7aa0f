"""Weight initialisation schemes (the catalogue's planned technique).

Replaces the layers' default initialisation (PyTorch: kaiming_uniform with a = sqrt(5)) at
the start of training, from the run's seeded generator, with one of
`kaiming_normal` / `kaiming_uniform` (He et al., ICCV 2015, §2.2: Var = 2 / fan, for ReLU),
`xavier_normal` / `xavier_uniform` (Glorot & Bengio, AISTATS 2010, Eq. 16) or `orthogonal`
(Saxe et al., ICLR 2014). Conv and Linear weights only; their biases are zeroed;
BatchNorm keeps weight 1, bias 0. A resumed run re-draws and then loads its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..train.hooks import Hook, TrainState, register_method

SCHEMES = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "orthogonal")


@dataclass(frozen=True)
class WeightInitConfig:
    scheme: str = "kaiming_normal"  # He et al. for the ReLU network of MLT
    mode: str = "fan_out"  # kaiming only: torchvision ResNet uses fan_out
    gain: float = 1.0  # xavier / orthogonal

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.mode not in ("fan_in", "fan_out"):
            raise ValueError(f"mode must be fan_in or fan_out, got {self.mode!r}")
        if not self.gain > 0:
            raise ValueError(f"gain must be > 0, got {self.gain}")


def initialise(model: nn.Module, cfg: WeightInitConfig) -> int:
    """Re-initialise every Conv/Linear weight in place; returns how many tensors changed."""
    count = 0
    for module in model.modules():
        if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            continue
        # Drawn into a contiguous tensor and copied: init fills memory in storage order, so
        # drawing into a channels-last weight would put other values at each position.
        w = torch.empty(module.weight.shape, dtype=module.weight.dtype, device=module.weight.device)
        if cfg.scheme == "kaiming_normal":
            nn.init.kaiming_normal_(w, mode=cfg.mode, nonlinearity="relu")
        elif cfg.scheme == "kaiming_uniform":
            nn.init.kaiming_uniform_(w, mode=cfg.mode, nonlinearity="relu")
        elif cfg.scheme == "xavier_normal":
            nn.init.xavier_normal_(w, gain=cfg.gain)
        elif cfg.scheme == "xavier_uniform":
            nn.init.xavier_uniform_(w, gain=cfg.gain)
        else:
            nn.init.orthogonal_(w, gain=cfg.gain)
        with torch.no_grad():
            module.weight.copy_(w)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
        count += 1
    return count


@register_method("weight_init", WeightInitConfig)
class WeightInit(Hook):
    def __init__(self, cfg: WeightInitConfig):
        self.cfg = cfg

    def on_fit_start(self, state: TrainState) -> None:
        if initialise(state.model, self.cfg) == 0:
            raise ValueError("methods.weight_init: the model has no Conv or Linear layers")
