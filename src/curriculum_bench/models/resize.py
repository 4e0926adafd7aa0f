"""Resizing inside a model, so a dataset store keeps its own resolution.

HCL trains ConvNeXt on CIFAR resized to 224 px and cifar_1k its ImageNet-pretrained ResNets on
CIFAR upsampled to 224 px; a model built with `input_size` does that resize itself (bilinear,
as torchvision's v2 Resize on tensors).
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import nn


def resize_input(size: int, module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the input batch resized to size x size. A hook rather than a wrapper
    keeps the model's type and parameter names (LeRaC's block rules, pretrained state dicts)."""
    x = args[0]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x, *args[1:])


def resize_inputs_to(model: nn.Module, input_size: int | None) -> nn.Module:
    if input_size:
        if input_size < 1:
            raise ValueError(f"model_args.input_size must be a positive number of pixels, got {input_size}")
        model.register_forward_pre_hook(partial(resize_input, input_size))
    return model
