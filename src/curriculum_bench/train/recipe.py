"""The training recipe around a method: mixed batches with soft targets, weight-decay groups,
gradient clipping and accumulation (train.mixup_alpha ... train.grad_accumulation_steps).

docs/methods.md §1.3: the hybrid repository's CvT and ResNet-18 runners (HCL
src/cvt_runner.py, src/resnet18_runner.py, src/optimizers/cvt_optimizer.py) train with timm
Mixup/CutMix and a soft-target cross-entropy (src/criterion.py), no weight decay on the
parameters of norm layers and on biases (WITHOUT_WD_LIST [bn, bias, ln]), each gradient
element clamped to +-0.5 and then the global norm clipped to 0.5 before every optimiser step,
and gradient accumulation (the loss divided by the steps, a last step on the epoch's leftover
batches). The engine (train/engine.py) calls these; every setting's default is off, and off
leaves the engine's arithmetic exactly as it was.

Mixed batches and the methods that read labels: after mixing, a batch's targets are soft
(N, classes) rows, and the `loss` and `after_forward` moments receive them as `y`
(`transform_batch`, which runs before mixing, still gets the integer labels). A method that
reads `y` as class indices after that point cannot take a mixed batch, and the combination is
refused by name when the config is checked (config_checks.check_run_settings) and when a run
starts: MIXED_BATCH_REFUSED says why for each known one; any method not in MIXED_BATCH_METHODS
(a new one) is refused too until it says what it does with soft targets.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig

# Methods that never read the labels after transform_batch: a mixed batch is fine for them.
MIXED_BATCH_METHODS = frozenset(
    {
        "blur",  # transforms images before mixing (HCL mixes blurred batches too)
        "cbs",  # smooths feature maps
        "lerac",
        "layerwise_lr",
        "lr_schedule",
        "progressive_dropout",
        "weight_init",
        "pretrained",
        "augment",  # per-step image ops before mixing
        "weighted_sampling",  # chooses the sample order from the stored labels, not the batch's
        "coreset_subset",  # chooses the sample order
    }
)
MIXED_BATCH_REFUSED = {
    "data_parameters": "its class temperatures are indexed by the batch's labels and its loss is a hard-label CE",
    "forgetting": "a forgetting event compares each prediction with the sample's one label",
    "self_labeling": "its pseudo-labels and its loss are hard labels",
    "curriculum_labeling": "its pseudo-labels and its loss are hard labels",
    "distill": "the teacher predicts on the unmixed images, before mixing",
    "simclr": "its loss is contrastive over two views of each image, not a classification target",
}
# Methods with their own optimiser stepped every batch: their gradients would not accumulate.
ACCUMULATION_REFUSED = {
    "data_parameters": "its SparseSGD optimisers zero and step their gradients every batch",
}
RECIPE_KEYS = (
    "rand_augment",
    "auto_augment",
    "random_erasing",
    "mixup_alpha",
    "cutmix_alpha",
    "mix_prob",
    "mix_switch_prob",
    "label_smoothing",
    "grad_clip",
    "grad_clip_value",
    "no_weight_decay_on_norm_and_bias",
    "grad_accumulation_steps",
)


def check_recipe(train: TrainConfig, methods: Iterable[str]) -> None:
    """Raise ValueError naming the first method that cannot run under `train`'s recipe."""
    for name in methods:
        if train.mixes and name not in MIXED_BATCH_METHODS:
            reason = MIXED_BATCH_REFUSED.get(name, "it does not declare what it does with soft targets")
            raise ValueError(
                f"method {name!r} cannot train on mixed batches (train.mixup_alpha / cutmix_alpha): {reason}; "
                f"methods that can: {sorted(MIXED_BATCH_METHODS)}"
            )
        if train.grad_accumulation_steps > 1 and name in ACCUMULATION_REFUSED:
            raise ValueError(
                f"method {name!r} cannot train with train.grad_accumulation_steps > 1: {ACCUMULATION_REFUSED[name]}"
            )


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy with soft targets (HCL src/criterion.py SoftTargetCrossEntropy,
    before its mean)."""
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1)


def classification_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-sample loss: soft targets (N, classes) by soft_cross_entropy, labels by cross_entropy."""
    if y.dim() == 2:
        return soft_cross_entropy(logits, y)
    if label_smoothing > 0:
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)
    return F.cross_entropy(logits, y, reduction="none")


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """The class each target names (a mixed row: the larger share, as HCL scores its accuracy)."""
    return y.argmax(1) if y.dim() == 2 else y


# --- weight-decay groups -----------------------------------------------------------------------

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def no_decay_parameters(model: nn.Module) -> set[int]:
    """ids of the parameters of norm layers (BatchNorm, LayerNorm, GroupNorm and their
    subclasses) and of every bias: HCL cvt_optimizer.py's WITHOUT_WD_LIST [bn, bias, ln]."""
    ids = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, NORM_LAYERS) or name == "bias":
                ids.add(id(param))
    return ids


def split_weight_decay(model: nn.Module, groups: list[dict]) -> list[dict]:
    """Each group as a decayed part and a part with weight_decay 0 (norms and biases), in that
    order, both keeping the group's other keys (name, lr_scale); empty parts are dropped."""
    skip = no_decay_parameters(model)
    out = []
    for group in groups:
        params = list(group["params"])
        decay = [p for p in params if id(p) not in skip]
        no_decay = [p for p in params if id(p) in skip]
        rest = {k: v for k, v in group.items() if k != "params"}
        if decay:
            out.append({**rest, "params": decay})
        if no_decay:
            out.append({**rest, "params": no_decay, "weight_decay": 0.0})
    return out


# --- gradients ------------------------------------------------------------------------------------


def clip_gradients(model: nn.Module, cfg: TrainConfig) -> None:
    """HCL's order: clamp every element to +-grad_clip_value, then clip the global norm."""
    params = [p for p in model.parameters() if p.grad is not None]
    if cfg.grad_clip_value is not None:
        for p in params:
            p.grad.clamp_(-cfg.grad_clip_value, cfg.grad_clip_value)
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm=cfg.grad_clip)
