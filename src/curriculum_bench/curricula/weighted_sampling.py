"""Weighted data sampling: draw training examples with per-class probabilities.

docs/methods.md §2.2 (MLT:training/tr_weighted_sampling.py): each training sample gets
weight `class_weights[label]`; an epoch is `num_samples` draws from
WeightedRandomSampler(weights, replacement=True). The script uses [0.1, 1, ..., 1], so
class 0 is drawn ten times less often; on balanced MNIST the expected effect is a lower
class-0 accuracy. Weights need not sum to one (the sampler normalises).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..train.hooks import Hook, TrainState, register_method


@dataclass(frozen=True)
class WeightedSamplingConfig:
    class_weights: tuple[float, ...] = (0.1,) + (1.0,) * 9  # MLT script: class 0 at 0.1
    replacement: bool = True  # torch WeightedRandomSampler default, as MLT
    num_samples: int | None = None  # draws per epoch; None = training-set size (MLT)

    def __post_init__(self):
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if any(w < 0 for w in self.class_weights) or not any(w > 0 for w in self.class_weights):
            raise ValueError(f"class_weights must be >= 0 with one > 0, got {list(self.class_weights)}")
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1 or null, got {self.num_samples}")


def sample_indices(
    labels: torch.Tensor, class_weights: torch.Tensor, num_samples: int, replacement: bool, generator: torch.Generator
) -> torch.Tensor:
    """Indices into `labels`, each drawn with probability proportional to its class weight."""
    weights = class_weights.to(labels.device)[labels].double()
    return torch.multinomial(weights.cpu(), num_samples, replacement, generator=generator).to(labels.device)


@register_method("weighted_sampling", WeightedSamplingConfig)
class WeightedSampling(Hook):
    def __init__(self, cfg: WeightedSamplingConfig):
        self.cfg = cfg

    def on_fit_start(self, state: TrainState) -> None:
        if len(self.cfg.class_weights) != state.num_classes:
            raise ValueError(
                f"methods.weighted_sampling.class_weights: {len(self.cfg.class_weights)} weights "
                f"for a dataset with {state.num_classes} classes"
            )
        n = self.cfg.num_samples or len(state.train_labels)
        if not self.cfg.replacement and n > int(
            (torch.tensor(self.cfg.class_weights)[state.train_labels.cpu()] > 0).sum()
        ):
            raise ValueError(
                "methods.weighted_sampling.num_samples exceeds the samples with weight > 0 while replacement is false"
            )

    def sample_order(self, state: TrainState, generator: torch.Generator) -> torch.Tensor:
        n = self.cfg.num_samples or len(state.train_labels)
        return sample_indices(
            state.train_labels, torch.tensor(self.cfg.class_weights), n, self.cfg.replacement, generator
        )
