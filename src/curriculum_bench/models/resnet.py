"""ResNet-18 from torchvision, in its ImageNet form and the usual CIFAR form.

The CIFAR form (3x3 stride-1 stem, no max-pool) is what the LeRaC, forgetting-events and
hybrid repositories train on 32x32 images (docs/methods.md §1.2, §5.1); the ImageNet form is
torchvision's own, used at 224 px (ImageNet-100, cifar_1k's upsampled CIFAR).
"""

from __future__ import annotations

from torch import nn

from . import register_model


def torchvision_resnet18(num_classes: int) -> nn.Module:
    # Imported here: importing torchvision costs a job about a second, and most runs train other models.
    from torchvision.models import resnet18

    return resnet18(num_classes=num_classes)


@register_model("resnet18")
def resnet18(in_shape, num_classes: int) -> nn.Module:
    model = torchvision_resnet18(num_classes=num_classes)
    if in_shape[0] != 3:
        model.conv1 = nn.Conv2d(in_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


@register_model("resnet18_cifar")
def resnet18_cifar(in_shape, num_classes: int) -> nn.Module:
    model = torchvision_resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
