"""Model registry: `create_model(name, in_shape, num_classes, **kwargs)`."""
from __future__ import annotations

from torch import nn

from ..registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def create_model(name: str, in_shape: tuple[int, int, int], num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model for inputs of shape (C, H, W)."""
    return MODELS.get(name)(in_shape=in_shape, num_classes=num_classes, **kwargs)


from . import convnet, finetune, resnet, simclr, wide_resnet  # noqa: E402,F401  (fill the registry)
