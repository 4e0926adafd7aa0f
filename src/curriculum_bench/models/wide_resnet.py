"""Wide ResNet (Zagoruyko & Komodakis, BMVC 2016) as the data-parameters code trains it.

DP:models/wide_resnet.py (itself from meliketoy/wide-resnet.pytorch), docs/methods.md §4.2: depth
6n + 4, widths 16, 16k, 32k, 64k; pre-activation blocks BN-ReLU-conv3x3(-dropout)-BN-ReLU-conv3x3
with the stride on the *second* conv and a 1x1 conv shortcut when the shape changes; every
conv has a bias; the final BN uses PyTorch momentum 0.9 (a quirk of that file, kept: it only
changes the running statistics used at evaluation); ReLU, global average pooling, linear.
PyTorch's default initialisation (DP defines `conv_init` but never applies it). DP asserts
dropout 0 for WRN-28-10; `dropout` is kept configurable. 36.5 M parameters for 100 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import register_model


class WideBasic(nn.Module):
    def __init__(self, in_planes: int, planes: int, dropout: float, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"depth must be 6n + 4 with n >= 1, got {depth}")
        if widen < 1 or not 0 <= dropout < 1:
            raise ValueError(f"widen must be >= 1 and dropout in [0, 1), got {widen}, {dropout}")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=True)
        layers, in_planes = [], widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2), strict=True):
            stage = []
            for s in [stride] + [1] * (blocks - 1):
                stage.append(WideBasic(in_planes, planes, dropout, s))
                in_planes = planes
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn1 = nn.BatchNorm2d(widths[3], momentum=0.9)  # DP's value (see module docstring)
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        # DP pools with avg_pool2d(8) on 32x32 inputs, i.e. over the whole 8x8 map.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model("wrn28_10")
def wrn28_10(in_shape, num_classes: int, depth: int = 28, widen: int = 10, dropout: float = 0.0) -> nn.Module:
    """WRN-28-10 by default (DP's CIFAR-100 model); `depth`/`widen` give smaller ones for tests."""
    return WideResNet(depth, widen, num_classes, in_channels=in_shape[0], dropout=dropout)
