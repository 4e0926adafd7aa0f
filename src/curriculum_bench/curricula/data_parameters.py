"""Data parameters: a learnable temperature per class and per training instance.

Saxena, Tuzel & DeCoste, "Data Parameters: A New Family of Parameters for Learning a
Differentiable Curriculum", NeurIPS 2019, §3 (class- and instance-level parameters, Eq. 2-3);
official code apple/ml-data-parameters (main_cifar.py, utils.py, optimizer/sparse_sgd.py).
docs/methods.md §4.1-4.2, §6 pitfall 5 and §8 (behaviour confirmed on the official code).

- Each class c and each training sample i owns a scalar stored in **log space**; its
  temperature is σ = exp(stored). A sample's effective temperature is σ_class[y_i] +
  σ_inst[i] (joint), σ_class[y_i] (class only) or σ_inst[i] (instance only).
- The training logits are **divided** by that σ before the cross-entropy: a large σ softens
  the prediction and lowers the sample's gradient, so a mislabelled sample can raise its own
  temperature and stop pulling the model (the "curriculum" is learned, not scheduled).
- Weight decay on data parameters is an L2 penalty **in log space** on the minibatch members
  only, 0.5·wd_inst·Σ_batch (log σ_inst)² + 0.5·wd_class·Σ_batch (log σ_class[y])², the class
  term summed per *sample* (a class present m times is penalised m times; docs/methods.md §8).
- Each tensor has its own SparseSGD (momentum 0.9, no weight decay, its own LR, **no LR
  schedule**): a plain momentum step after which every entry whose gradient is exactly zero
  gets its value and momentum buffer back (so samples outside the batch neither drift with
  momentum nor decay it). After the step the learned tensors are clamped to
  [log(1/20), log(20)].
- Evaluation uses the raw logits: data parameters exist only in the training loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..train.hooks import Hook, TrainState, register_method

SIGMA_MIN, SIGMA_MAX = 1 / 20, 20.0  # DP config clamp_{cls,inst}_sigma: σ in [0.05, 20] (docs/methods.md §4.2)


@dataclass(frozen=True)
class DataParametersConfig:
    learn_class: bool = False  # DP --learn_class_parameters (off by default)
    learn_inst: bool = False  # DP --learn_inst_parameters (off by default)
    init_class: float = 1.0  # DP --init_class_param: σ at start (stored as log 1 = 0)
    init_inst: float = 1.0  # DP --init_inst_param; README joint runs: 0.001 so σ_class + σ_inst ≈ 1
    lr_class: float = 0.1  # DP --lr_class_param
    lr_inst: float = 0.1  # DP --lr_inst_param; README CIFAR-100 noisy: 0.2, ImageNet joint: 0.8
    wd_class: float = 0.0  # DP --wd_class_param; README ImageNet: 1e-4
    wd_inst: float = 0.0  # DP --wd_inst_param; README ImageNet joint: 1e-8
    momentum: float = 0.9  # DP utils.get_class_inst_data_params_n_optimizer (hard-coded)
    clamp: bool = True  # DP: clamp unless --skip_clamp_data_param

    def __post_init__(self):
        if not (self.learn_class or self.learn_inst):
            raise ValueError(
                "learn_class and learn_inst are both false: that is the baseline; "
                "leave the data_parameters method out of the variant instead"
            )
        for name in ("init_class", "init_inst", "lr_class", "lr_inst"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("wd_class", "wd_inst"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


def minibatch_sigma(
    class_log: torch.Tensor | None, inst_log: torch.Tensor | None, y: torch.Tensor, idx: torch.Tensor
) -> torch.Tensor:
    """Effective temperature per sample (DP utils.get_data_param_for_minibatch).

    A tensor left as None is not learned: class and instance give the joint σ_class + σ_inst,
    one alone gives its own σ.
    """
    if class_log is None and inst_log is None:
        raise ValueError("at least one of class_log and inst_log is needed")
    sigma = torch.zeros(len(y), device=y.device)
    if class_log is not None:
        sigma = sigma + class_log[y].exp()
    if inst_log is not None:
        sigma = sigma + inst_log[idx].exp()
    return sigma


def scaled_cross_entropy(logits: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample CE(logits / σ, y): DP divides each sample's logits by its temperature."""
    return F.cross_entropy(logits / sigma.unsqueeze(1), y, reduction="none")


def log_space_penalty(
    class_log: torch.Tensor | None,
    inst_log: torch.Tensor | None,
    y: torch.Tensor,
    idx: torch.Tensor,
    wd_class: float,
    wd_inst: float,
) -> torch.Tensor:
    """Per-sample share of DP's minibatch weight decay (utils.apply_weight_decay_data_parameters).

    Sample i carries 0.5·wd_inst·(log σ_inst[i])² + 0.5·wd_class·(log σ_class[y_i])²; the sum
    over the batch is DP's penalty, with the class term counted once per sample (docs/methods.md §8).
    Only learned tensors are penalised (None = not learned).
    """
    penalty = torch.zeros(len(y), device=y.device)
    if inst_log is not None and wd_inst > 0:
        penalty = penalty + 0.5 * wd_inst * inst_log[idx] ** 2
    if class_log is not None and wd_class > 0:
        penalty = penalty + 0.5 * wd_class * class_log[y] ** 2
    return penalty


def clamp_log_sigma(log_sigma: torch.Tensor) -> None:
    """In place: keep σ = exp(value) within [1/20, 20] (DP utils.clamp_data_parameters).

    Every entry is clamped, seen in this batch or not: with instance init 0.001 the first
    step lifts all instance σ to 0.05 (docs/methods.md §8)."""
    with torch.no_grad():
        log_sigma.clamp_(math.log(SIGMA_MIN), math.log(SIGMA_MAX))


class SparseSGD(torch.optim.Optimizer):
    """SGD with momentum for parameters of which each step touches only a few entries.

    DP optimizer/sparse_sgd.py with skip_update_zero_grad=True, dampening 0, no Nesterov:
    buf = momentum·buf + grad (the first step starts from a zero buffer, so buf = grad);
    value -= lr·buf; then every entry whose gradient is exactly zero gets its pre-step value
    and pre-step buffer back. An in-batch entry whose gradient happens to be 0.0 is treated
    as absent (docs/methods.md §8). Weight decay is not an option: DP asserts it is 0 and puts an
    explicit penalty on the minibatch members into the loss instead (log_space_penalty).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9):
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"SparseSGD needs lr > 0 and momentum in [0, 1), got {lr}, {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                untouched = grad == 0
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                value_before, buf_before = p.clone(), buf.clone()
                buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])
                # torch.where, not p[untouched] = ...: a boolean-mask write waits for the GPU.
                p.copy_(torch.where(untouched, value_before, p))
                buf.copy_(torch.where(untouched, buf_before, buf))
        return None


def snapshot_epochs(epochs: int) -> list[int]:
    """Epochs (1-based) after which the instance σ are kept for the histogram figure:
    the first, the quarters and the last."""
    return sorted({1, *(max(1, round(epochs * q)) for q in (0.25, 0.5, 0.75)), epochs})


def sigma_stats(sigma: np.ndarray, mask: np.ndarray, prefix: str) -> dict:
    """Mean and median of σ over the samples in `mask` (None when there are none)."""
    chosen = sigma[mask]
    if chosen.size == 0:
        return {f"{prefix}_mean": None, f"{prefix}_median": None}
    return {f"{prefix}_mean": float(chosen.mean()), f"{prefix}_median": float(np.median(chosen))}


@register_method("data_parameters", DataParametersConfig)
class DataParameters(Hook):
    """Learned class and/or instance temperatures, per variant:

        class:    {data_parameters: {learn_class: true}}
        instance: {data_parameters: {learn_inst: true, lr_inst: 0.2}}
        joint:    {data_parameters: {learn_class: true, learn_inst: true, init_inst: 0.001}}

    `loss` replaces the per-sample cross-entropy it receives by CE(logits / σ) plus each
    sample's penalty share times the batch size, so the engine's batch mean is DP's objective
    mean CE + Σ_batch penalty (gradients identical to DP's).
    """

    def __init__(self, cfg: DataParametersConfig):
        self.cfg = cfg
        self.class_log: torch.Tensor | None = None
        self.inst_log: torch.Tensor | None = None
        self.optimizers: dict[str, SparseSGD] = {}
        self.snapshots: dict[int, torch.Tensor] = {}  # epoch -> instance σ (CPU), for the figure

    def on_fit_start(self, state: TrainState) -> None:
        cfg = self.cfg
        num_samples = len(state.train_labels)
        if cfg.learn_class:
            self.class_log = torch.full(
                (state.num_classes,), math.log(cfg.init_class), device=state.device, requires_grad=True
            )
            self.optimizers["class"] = SparseSGD([self.class_log], lr=cfg.lr_class, momentum=cfg.momentum)
        if cfg.learn_inst:
            self.inst_log = torch.full((num_samples,), math.log(cfg.init_inst), device=state.device, requires_grad=True)
            self.optimizers["inst"] = SparseSGD([self.inst_log], lr=cfg.lr_inst, momentum=cfg.momentum)
        self.corrupted = self._store_mask(state, "train_corrupted", num_samples)
        self.snapshot_at = snapshot_epochs(state.epochs)

    @staticmethod
    def _store_mask(state: TrainState, name: str, num_samples: int) -> np.ndarray:
        """A boolean per-sample array of a label-noise store; all False for a clean dataset."""
        from ..data.store import load_array, read_manifest

        if state.data_dir is None or name not in read_manifest(state.data_dir)["arrays"]:
            return np.zeros(num_samples, dtype=bool)
        return np.asarray(load_array(state.data_dir, name), dtype=bool)

    def on_batch_start(self, state: TrainState) -> None:
        # The engine zeroes the model's gradients only; these accumulate otherwise.
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def loss(self, state: TrainState, idx, logits, y, loss):
        sigma = minibatch_sigma(self.class_log, self.inst_log, y, idx)
        penalty = log_space_penalty(self.class_log, self.inst_log, y, idx, self.cfg.wd_class, self.cfg.wd_inst)
        return scaled_cross_entropy(logits, y, sigma) + len(y) * penalty

    def after_step(self, state: TrainState) -> None:
        # DP order: model step (engine), class step, instance step, then the clamp.
        for optimizer in self.optimizers.values():
            optimizer.step()
        if self.cfg.clamp:
            for log_sigma in (self.class_log, self.inst_log):
                if log_sigma is not None:
                    clamp_log_sigma(log_sigma)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.inst_log is not None and state.epoch + 1 in self.snapshot_at:
            self.snapshots[state.epoch + 1] = self.inst_log.detach().exp().cpu()

    def epoch_log(self, state: TrainState) -> dict:
        record = {}
        if self.class_log is not None:
            record["class_sigma"] = self.class_log.detach().exp().cpu().tolist()
        if self.inst_log is not None:
            sigma = self.inst_log.detach().exp().cpu().numpy()
            record.update(sigma_stats(sigma, ~self.corrupted, "inst_sigma_clean"))
            record.update(sigma_stats(sigma, self.corrupted, "inst_sigma_corrupted"))
        return record

    def on_fit_end(self, state: TrainState) -> None:
        arrays = {"corrupted": self.corrupted}
        if self.class_log is not None:
            arrays["class_sigma"] = self.class_log.detach().exp().cpu().numpy()
        if self.inst_log is not None:
            epochs = sorted(self.snapshots)
            arrays["inst_sigma"] = self.inst_log.detach().exp().cpu().numpy()
            arrays["snapshot_epochs"] = np.asarray(epochs, dtype=np.int64)
            arrays["inst_sigma_snapshots"] = (
                np.stack([self.snapshots[e].numpy() for e in epochs])
                if epochs
                else np.zeros((0, len(self.corrupted)), dtype=np.float32)
            )
        np.savez_compressed(state.out_dir / "data_parameters.npz", **arrays)

    def state_dict(self) -> dict:
        return {
            "class_log": None if self.class_log is None else self.class_log.detach().cpu().clone(),
            "inst_log": None if self.inst_log is None else self.inst_log.detach().cpu().clone(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "snapshots": dict(self.snapshots),
        }

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        with torch.no_grad():
            for name in ("class_log", "inst_log"):
                current = getattr(self, name)
                if current is not None and state.get(name) is not None:
                    current.copy_(state[name])
        for name, optimizer in self.optimizers.items():
            if name in state.get("optimizers", {}):
                optimizer.load_state_dict(state["optimizers"][name])
        self.snapshots = dict(state.get("snapshots", {}))
