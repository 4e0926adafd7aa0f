"""Layer-wise learning rates and weight decay (the catalogue's planned technique).

Layer-wise LR decay as timm's `create_optimizer_v2(layer_decay=...)` and BEiT (Bao et al.,
ICLR 2022, §2.4 "layer-wise learning rate decay"): the model's top-level children that own
parameters are layers 0 .. L-1 from input to output, and layer i trains at
lr · layer_decay^(L - 1 - i), so the classifier gets the full rate and early layers less.
Weight decay as nanoGPT's `configure_optimizers` and timm's param groups: tensors with
fewer than 2 dimensions (biases, BatchNorm affine) get `weight_decay_1d` (0: no decay);
the others the study's weight decay, or `weight_decay` when set. The scales are fixed, the
study's LR schedule multiplies them (`lr_scale`), nothing to checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..train.hooks import Hook, TrainState, register_method


@dataclass(frozen=True)
class LayerwiseLRConfig:
    layer_decay: float = 0.5  # BEiT uses 0.65-0.9 for 12-24 layers; 3 layers here
    weight_decay: float | None = None  # matrices and kernels; None = the study's train.weight_decay
    weight_decay_1d: float = 0.0  # biases and norms: no decay (nanoGPT, timm)

    def __post_init__(self):
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0 or null, got {self.weight_decay}")
        if self.weight_decay_1d < 0:
            raise ValueError(f"weight_decay_1d must be >= 0, got {self.weight_decay_1d}")


def layer_scales(num_layers: int, layer_decay: float) -> list[float]:
    """lr multiplier of layers 0 .. L-1 (input to output): decay^(L - 1 - i)."""
    return [layer_decay ** (num_layers - 1 - i) for i in range(num_layers)]


def layerwise_groups(model: nn.Module, cfg: LayerwiseLRConfig) -> list[dict]:
    layers = [
        (name, child) for name, child in model.named_children() if any(p.requires_grad for p in child.parameters())
    ]
    groups = []
    for (name, child), scale in zip(layers, layer_scales(len(layers), cfg.layer_decay), strict=True):
        params = [p for p in child.parameters() if p.requires_grad]
        matrices = [p for p in params if p.ndim >= 2]
        vectors = [p for p in params if p.ndim < 2]
        for kind, members, decay in (("weights", matrices, cfg.weight_decay), ("1d", vectors, cfg.weight_decay_1d)):
            if members:
                group = {"params": members, "lr_scale": scale, "name": f"{name}.{kind}"}
                if decay is not None:
                    group["weight_decay"] = decay  # else the optimiser's default (train.weight_decay)
                groups.append(group)
    return groups


@register_method("layerwise_lr", LayerwiseLRConfig)
class LayerwiseLR(Hook):
    def __init__(self, cfg: LayerwiseLRConfig):
        self.cfg = cfg

    def param_groups(self, state: TrainState, model: nn.Module) -> list[dict]:
        return layerwise_groups(model, self.cfg)

    def on_fit_start(self, state: TrainState) -> None:
        for group in state.optimizer.param_groups:
            print(
                f"layerwise_lr: {group['name']}: {sum(p.numel() for p in group['params']):,} parameters, "
                f"lr x {group['lr_scale']:.3g}, weight decay {group['weight_decay']}",
                flush=True,
            )

    def epoch_log(self, state: TrainState) -> dict:
        return {"groups": [g["name"] for g in state.optimizer.param_groups]}
