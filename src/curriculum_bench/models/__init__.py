"""Model registry: `create_model(name, in_shape, num_classes, **kwargs)`."""

from __future__ import annotations

from torch import nn

from ..config import ConfigError
from ..registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def create_model(
    name: str, in_shape: tuple[int, int, int], num_classes: int, weights: str | None = None, **kwargs
) -> nn.Module:
    """Build a registered model for inputs of shape (C, H, W); `weights` is a local file of
    pretrained weights to start from (nothing is ever downloaded)."""
    model = MODELS.get(name)(in_shape=in_shape, num_classes=num_classes, **kwargs)
    if weights:
        load_weights(model, weights)
    return model


def named_module(model: nn.Module, name: str, key: str) -> nn.Module:
    """The submodule a setting names (a layer whose output a method reads); an unknown name is
    a ConfigError at `key` that lists the model's top-level modules."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise ConfigError(f"{key}: {type(model).__name__} has no module {name!r} (top level: {names})") from None


def load_weights(model: nn.Module, path: str) -> list[str]:
    """Load a state dict saved with torch.save (bare, or under "model"/"state_dict", as in a
    checkpoint of this engine or of most repositories). Names must match; a tensor whose shape
    differs (the classifier of a model trained on another number of classes) keeps its fresh
    initialisation and is returned, so the caller can log it."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"weights {path}: names do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    skipped = [k for k, v in state.items() if v.shape != own[k].shape]
    model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    if skipped:
        print(f"weights {path}: kept the fresh initialisation of {skipped} (shape differs)", flush=True)
    return skipped


from . import convnet, convnext, cvt, finetune, resnet, simclr, wide_resnet  # noqa: E402,F401  (fill the registry)
