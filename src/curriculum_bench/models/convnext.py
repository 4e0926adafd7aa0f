"""ConvNeXt-Tiny from timm (Liu et al., CVPR 2022), as the hybrid repository trains it.

spec/methods.md §1.3 (HCL src/convNext_runner.py): torchvision's `convnext_tiny(weights=None)`
with the last Linear replaced; timm's `convnext_tiny` is the same network (depths 3/3/9/3,
dims 96/192/384/768, 28.6 M parameters for 1000 classes) and the parameter layout LeRaC's
block rule reads (stem, stages.i.downsample, stages.i.blocks, head.norm, head.fc). Never
downloads: pretrained weights come only from a local file (the model's `weights:` argument).

HCL resizes CIFAR images to 224 px for ConvNeXt; `input_size` does that inside the model
(bilinear), so the dataset store can stay at its own resolution.
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import nn

from . import register_model


def resize_input(size: int, module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: resize the input batch to size x size (bilinear, as v2 Resize on
    tensors). A hook rather than a wrapper keeps timm's type and parameter names."""
    x = args[0]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x, *args[1:])


@register_model("convnext_tiny")
def convnext_tiny(in_shape, num_classes: int, input_size: int | None = None) -> nn.Module:
    import timm

    model = timm.create_model("convnext_tiny", pretrained=False, num_classes=num_classes, in_chans=in_shape[0])
    if input_size:
        model.register_forward_pre_hook(partial(resize_input, input_size))
    return model
