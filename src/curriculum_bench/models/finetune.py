"""Fine-tuning forms of the classifiers: local pretrained weights, cifar_1k's MLP head, frozen backbone.

docs/methods.md §5.2 (C1K:model_initialization.py): a torchvision backbone whose `fc` is
replaced by an MLP in_features -> 256 -> ReLU -> 64 -> ReLU -> K (with `dropout`: a Dropout
after each hidden Linear). Freezing sets requires_grad False on the whole backbone *before*
the head is replaced, so only the new head trains. C1K's 11th output (clamped to 1, no
effect on loss or prediction) is left out.

BatchNorm running statistics of a frozen backbone still update in train mode, as in C1K
(which only clears requires_grad); its parameters never change.

Weights come from a local file only (nothing is downloaded): a state dict as torch.save
writes it (torchvision's ImageNet .pth files, or a run's `final_model.pt`). The old head's
keys are dropped; any other missing or unexpected key is an error naming it.

`input_size` resizes every input batch inside the model (cifar_1k upsamples CIFAR to 224 px
for its ImageNet-pretrained ResNets; models/resize.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import register_model
from .convnet import MLTConvNet
from .resize import resize_inputs_to

HEADS = ("linear", "mlp")


def mlp_head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """C1K: Linear(in, 256) [Dropout] ReLU, Linear(256, 64) [Dropout] ReLU, Linear(64, K)."""
    layers: list[nn.Module] = []
    for a, b in ((in_features, 256), (256, 64)):
        layers.append(nn.Linear(a, b))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.Linear(64, num_classes))
    return nn.Sequential(*layers)


def read_state_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"model_args.pretrained: {path} does not exist (weights are read from a local file; nothing is downloaded)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_backbone(model: nn.Module, path: str | Path, head_attr: str) -> None:
    """Every weight but the head's from `path`; a mismatch outside the head is an error."""
    prefix = f"{head_attr}."
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(prefix)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(prefix)]
    if missing or unexpected:
        raise ValueError(
            f"model_args.pretrained: {path} does not fit this model: "
            + (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}")
        )


def finetune_form(
    model: nn.Module,
    num_classes: int,
    pretrained: str | None,
    head: str,
    freeze_backbone: bool,
    dropout: float,
    head_attr: str = "fc",
    input_size: int | None = None,
) -> nn.Module:
    if head not in HEADS:
        raise ValueError(f"model_args.head must be one of {HEADS}, got {head!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"model_args.dropout must be in [0, 1), got {dropout}")
    if pretrained:
        load_backbone(model, pretrained, head_attr)
    if freeze_backbone:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    in_features = getattr(model, head_attr).in_features
    # The new head is trainable whatever the backbone does.
    new_head = mlp_head(in_features, num_classes, dropout) if head == "mlp" else nn.Linear(in_features, num_classes)
    setattr(model, head_attr, new_head)
    return resize_inputs_to(model, input_size)


def torchvision_model(name: str):
    """torchvision's constructor `name`, imported when a model is built: importing torchvision
    costs a job about a second, and most runs train other models."""
    import torchvision.models

    return getattr(torchvision.models, name)


def torchvision_finetune(
    build,
    in_shape,
    num_classes: int,
    pretrained: str | None,
    head: str,
    freeze_backbone: bool,
    dropout: float,
    input_size: int | None,
) -> nn.Module:
    """A torchvision ResNet (ImageNet form) with C1K's options; a grey stem for 1-channel input."""
    model = build(num_classes=1000 if pretrained else num_classes)
    if in_shape[0] != 3:
        model.conv1 = nn.Conv2d(in_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return finetune_form(model, num_classes, pretrained, head, freeze_backbone, dropout, input_size=input_size)


@register_model("resnet50")
def resnet50(
    in_shape,
    num_classes: int,
    pretrained: str | None = None,
    head: str = "linear",
    freeze_backbone: bool = False,
    dropout: float = 0.0,
    input_size: int | None = None,
) -> nn.Module:
    """torchvision ResNet-50; C1K's core: pretrained, head mlp."""
    return torchvision_finetune(
        torchvision_model("resnet50"), in_shape, num_classes, pretrained, head, freeze_backbone, dropout, input_size
    )


@register_model("resnet18_finetune")
def resnet18_finetune(
    in_shape,
    num_classes: int,
    pretrained: str | None = None,
    head: str = "mlp",
    freeze_backbone: bool = False,
    dropout: float = 0.0,
    input_size: int | None = None,
) -> nn.Module:
    """torchvision ResNet-18; C1K's proxy: pretrained, all trainable."""
    return torchvision_finetune(
        torchvision_model("resnet18"), in_shape, num_classes, pretrained, head, freeze_backbone, dropout, input_size
    )


@register_model("mlt_convnet_finetune")
def mlt_convnet_finetune(
    in_shape,
    num_classes: int,
    pretrained: str | None = None,
    head: str = "mlp",
    freeze_backbone: bool = False,
    dropout: float = 0.0,
    input_size: int | None = None,
) -> nn.Module:
    """The small MNIST ConvNet with C1K's options: a CPU-sized stand-in for the core ResNet-50.

    Separate BatchNorms per convolution (not MLT's shared one, a techniques-study quirk that
    ruins eval-mode statistics under augmentation: 56 % vs 97 % test on digits, 6 epochs)."""
    return finetune_form(
        MLTConvNet(in_shape, num_classes, share_bn=False),
        num_classes,
        pretrained,
        head,
        freeze_backbone,
        dropout,
        input_size=input_size,
    )
