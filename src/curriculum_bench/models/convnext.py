"""ConvNeXt-Tiny from timm (Liu et al., CVPR 2022), as the hybrid repository trains it.

docs/methods.md §1.3 (HCL src/convNext_runner.py): torchvision's `convnext_tiny(weights=None)`
with the last Linear replaced; timm's `convnext_tiny` is the same network (depths 3/3/9/3,
dims 96/192/384/768, 28.6 M parameters for 1000 classes) and the parameter layout LeRaC's
block rule reads (stem, stages.i.downsample, stages.i.blocks, head.norm, head.fc). Never
downloads: pretrained weights come only from a local file (the model's `weights:` argument).

HCL resizes CIFAR images to 224 px for ConvNeXt; `input_size` does that inside the model
(bilinear), so the dataset store can stay at its own resolution.
"""

from __future__ import annotations

from torch import nn

from . import register_model
from .resize import resize_inputs_to


@register_model("convnext_tiny")
def convnext_tiny(in_shape, num_classes: int, input_size: int | None = None) -> nn.Module:
    import timm

    model = timm.create_model("convnext_tiny", pretrained=False, num_classes=num_classes, in_chans=in_shape[0])
    return resize_inputs_to(model, input_size)
