"""SimCLR's network: any registered classifier with its last Linear removed as the encoder,
a projection head for the contrastive loss, and an online linear probe.

ETH (docs/methods.md §3.1): encoder f = ResNet-50 without its fc (2048-d h), projection
g = one Linear 2048 -> 128, the loss on z = g(h). The online probe is ours: a Linear on
h.detach(), trained by cross-entropy beside the contrastive loss, so every epoch reports a
test accuracy without touching the encoder (the run's score is the separate linear
evaluation, contrastive/linear_probe.py).
"""

from __future__ import annotations

import torch
from torch import nn

from . import create_model, register_model


def strip_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace the model's last nn.Linear by Identity; returns (model, its input width)."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier to remove")
    name, last = linears[-1]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return model, last.in_features


class SimCLRNet(nn.Module):
    def __init__(self, encoder: nn.Module, width: int, projection_dim: int, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(width, projection_dim)  # ETH: hidden_layer_sizes None
        self.probe = nn.Linear(width, num_classes)
        self.projections: torch.Tensor | None = None  # z of the last forward, for the loss hook

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        self.projections = self.projection(h)
        return self.probe(h.detach())  # the probe must not train the encoder


@register_model("simclr")
def simclr(
    in_shape,
    num_classes: int,
    encoder: str = "resnet18_cifar",
    encoder_args: dict | None = None,
    projection_dim: int = 128,
) -> nn.Module:
    base = create_model(encoder, in_shape, num_classes, **(encoder_args or {}))
    body, width = strip_classifier(base)
    return SimCLRNet(body, width, projection_dim, num_classes)
