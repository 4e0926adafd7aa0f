"""Self-supervised contrastive pretraining with a momentum encoder and a queue (MoCo v2).

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020 §3.2
and Algorithm 1, and Chen et al., "Improved Baselines with Momentum Contrastive Learning"
(arXiv 2003.04297, MoCo v2: MLP head, stronger views, temperature 0.2); official code
facebookresearch/moco, moco/builder.py and main_moco.py. docs/methods.md §2.7.

- Query encoder = the run's model up to its classifier (the input of its last Linear, h),
  then a projection head: MoCo v2's MLP Linear(h, hidden) -> ReLU -> Linear(hidden, dim).
  Key encoder = a copy of both, never trained by gradients: before each step's keys,
  θ_k <- m θ_k + (1 - m) θ_q over the parameters (builder.py `_momentum_update_key_encoder`;
  BatchNorm statistics are each encoder's own).
- Per image two views (the same on-device view pipeline as SimCLR: data/augment.py ops from
  the run's Stream.VIEWS, per epoch); the first is the query, the second the key.
- Loss (Eq. 1, InfoNCE): logits = [q·k+, q·queue] / τ on L2-normalised vectors, cross-entropy
  with the positive at index 0. After the loss the batch's keys enter the queue, replacing
  the oldest (`_dequeue_and_enqueue`; here the pointer wraps, so K need not be a multiple of
  the batch size). The queue starts as random unit vectors (Stream.QUEUE).
- Deviations, stated: one device, so no Shuffle BN (He et al. §3.3: BatchNorm statistics
  are shared by a batch's queries, and the keys' by theirs); the head's hidden width is
  `hidden_dim`, not the encoder's width (the MLT ConvNet's flattened map is 12,544 wide);
  on a small pool, a queue of K below the pool's size (MoCo's 65,536 keys are 5 % of
  ImageNet's 1.28 M images). With train.grad_accumulation_steps > 1 the key encoder still
  moves once per batch.

The pretraining run reads no label: the loss replaces the classifier's cross-entropy, and
its `final_model.pt` is the query encoder (the classifier untouched), which `pretrained`
fine-tunes or, with every layer but the classifier frozen, probes linearly. Head, key
encoder and queue are the method's own state, saved with the checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data.augment import Augment
from ..train.hooks import Hook, Stream, TrainState, register_method, seeded_generator
from ..train.speed import run_model

# MoCo v2 main_moco.py --aug-plus at MNIST's 28 px: RandomResizedCrop(scale 0.2-1), colour
# jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale p 0.2, Gaussian blur sigma 0.1-2 p 0.5, flip.
MOCO_V2_VIEWS = (
    {"op": "random_resized_crop", "size": 28, "scale": [0.2, 1.0]},
    {"op": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "p": 0.8},
    {"op": "random_grayscale", "p": 0.2},
    {"op": "gaussian_blur", "kernel_size": 3, "sigma": [0.1, 2.0], "p": 0.5},
    {"op": "horizontal_flip", "p": 0.5},
)


@dataclass(frozen=True)
class MoCoConfig:
    views: tuple = MOCO_V2_VIEWS  # ops making each view (data/augment.py)
    dim: int = 128  # main_moco.py --moco-dim
    queue_size: int = 65536  # --moco-k (ImageNet); keep it below the pool's size
    momentum: float = 0.999  # --moco-m
    temperature: float = 0.2  # --moco-t: MoCo v2 0.2 (v1 0.07)
    mlp: bool = True  # --mlp (v2); false: one Linear(h, dim) as v1
    hidden_dim: int = 2048  # ours: MoCo v2's hidden width is the encoder's (2048 for ResNet-50)

    def __post_init__(self):
        object.__setattr__(self, "views", tuple(dict(v) for v in self.views))
        for name in ("dim", "queue_size", "hidden_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        self.augment  # noqa: B018  (builds the views' ops: a bad op is refused with the config)

    @cached_property
    def augment(self) -> Augment:
        """The ops making each view, built (and so checked) once, when the config is."""
        return Augment.from_config(self.views, where="views")


# --- the maths (pure) ---------------------------------------------------------------------------


@torch.no_grad()
def momentum_update(key: list[torch.Tensor], query: list[torch.Tensor], m: float) -> None:
    """In place, pair by pair: key <- m key + (1 - m) query (builder.py)."""
    torch._foreach_mul_(key, m)
    torch._foreach_add_(key, query, alpha=1 - m)


def moco_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, 1 + K): the positive q·k, then q against each queued key, over τ; q, k, queue rows
    L2-normalised. The positive is class 0 of the InfoNCE cross-entropy."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.T  # bf16 under autocast: the logits are gathered in float32
    return torch.cat([positive.float(), negative.float()], dim=1) / temperature


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per query: -log softmax(moco_logits)[0] (MoCo Eq. 1)."""
    logits = moco_logits(q, k, queue, temperature)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device), reduction="none")


@torch.no_grad()
def enqueue(queue: torch.Tensor, pointer: int, keys: torch.Tensor) -> int:
    """Write `keys` over the oldest rows of `queue` (K, dim) from `pointer` on, wrapping at K,
    as one key after another would; returns the next pointer. A batch larger than K leaves its
    last K keys (each row written once: repeated indices would make the result undefined)."""
    size, count = len(queue), len(keys)
    skipped = max(count - size, 0)
    rows = (pointer + skipped + torch.arange(count - skipped, device=queue.device)) % size
    queue[rows] = keys[skipped:].to(queue.dtype)
    return (pointer + count) % size


def projection_head(width: int, cfg: MoCoConfig) -> nn.Module:
    if cfg.mlp:
        return nn.Sequential(
            nn.Linear(width, cfg.hidden_dim), nn.ReLU(inplace=True), nn.Linear(cfg.hidden_dim, cfg.dim)
        )
    return nn.Linear(width, cfg.dim)


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"methods.moco: {type(model).__name__} has no Linear classifier whose input to encode")
    return linears[-1]


# --- the hook -----------------------------------------------------------------------------------


@register_method("moco", MoCoConfig)
class MoCo(Hook):
    """MoCo v2 pretraining of the run's model (see the module docstring).

    Usage (a pretraining variant):  moco: {queue_size: 4096, momentum: 0.999, temperature: 0.2}
    """

    compilable = False  # the encoders' features are kept by hooks on their classifiers

    def __init__(self, cfg: MoCoConfig):
        self.cfg = cfg
        self.augment = cfg.augment
        self.generator = torch.Generator()  # this epoch's views (Stream.VIEWS), drawn on as batches go
        self.epoch = -1
        self.resumed: dict[str, Any] | None = None
        self.query_features: torch.Tensor | None = None
        self.key_features: torch.Tensor | None = None
        self.pointer = 0

    def _keep_query(self, module, args) -> None:
        if module is self.query_fc:
            self.query_features = args[0]

    def _keep_key(self, module, args) -> None:
        if module is self.key_fc:
            self.key_features = args[0]

    def on_fit_start(self, state: TrainState) -> None:
        cfg, model = self.cfg, state.model
        self.model = model
        # The key encoder starts as the query's copy (builder.py: param_k.data.copy_(param_q.data)).
        self.key_encoder = copy.deepcopy(model).requires_grad_(False)
        self.query_fc, self.key_fc = last_linear(model), last_linear(self.key_encoder)
        self.query_fc.register_forward_pre_hook(self._keep_query)
        self.key_fc.register_forward_pre_hook(self._keep_key)
        self.head = projection_head(self.query_fc.in_features, cfg).to(state.device)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        state.optimizer.add_param_group({"params": list(self.head.parameters()), "lr_scale": 1.0})
        generator = seeded_generator(state.seed, 0, Stream.QUEUE)
        self.queue = F.normalize(torch.randn(cfg.queue_size, cfg.dim, generator=generator), dim=1).to(state.device)
        self.pointer = 0
        self.loss_sum = torch.zeros((), device=state.device)
        self.seen = 0

    def key_parameters(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(key, query) parameters, encoder then head, in matching order (deepcopy keeps it)."""
        key = [*self.key_encoder.parameters(), *self.key_head.parameters()]
        query = [p.detach() for p in (*self.model.parameters(), *self.head.parameters())]
        return key, query

    def on_epoch_start(self, state: TrainState) -> None:
        self.epoch = state.epoch
        self.key_encoder.train()  # MoCo's key encoder runs in train mode (batch statistics)
        self.loss_sum.zero_()
        self.seen = 0
        if self.resumed is not None and self.resumed.get("epoch") == state.epoch:
            self.generator.set_state(self.resumed["generator"])  # finish an interrupted epoch exactly
            self.loss_sum += self.resumed["loss_sum"]
            self.seen = self.resumed["seen"]
        else:
            self.generator = seeded_generator(state.seed, state.epoch, Stream.VIEWS)
        self.resumed = None

    def transform_batch(self, state: TrainState, idx, x, y):
        query, key = self.augment(x, self.generator), self.augment(x, self.generator)
        with torch.no_grad():
            momentum_update(*self.key_parameters(), self.cfg.momentum)
            run_model(self.key_encoder, state.pipeline.normalize(key), state.speed)
            self.keys = F.normalize(self.key_head(self.key_features.float()), dim=1)
        return query, y

    def loss(self, state: TrainState, idx, logits, y, loss):
        q = F.normalize(self.head(self.query_features.float()), dim=1)
        # A copy: the queue changes in after_forward, before this step's backward reads it.
        contrastive = info_nce(q, self.keys, self.queue.clone(), self.cfg.temperature)
        self.loss_sum += contrastive.detach().sum()
        self.seen += len(contrastive)
        return contrastive  # replaces the cross-entropy: pretraining reads no label

    def after_forward(self, state: TrainState, idx, logits, y) -> None:
        self.pointer = enqueue(self.queue, self.pointer, self.keys)  # every batch, stepped or not

    def epoch_log(self, state: TrainState) -> dict:
        return {"contrastive_loss": self.loss_sum.item() / max(self.seen, 1)}

    def state_dict(self) -> dict[str, Any]:
        if self.epoch < 0:
            return {}
        return {
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
            "loss_sum": self.loss_sum.item(),
            "seen": self.seen,
            "head": self.head.state_dict(),
            "key_encoder": self.key_encoder.state_dict(),
            "key_head": self.key_head.state_dict(),
            "queue": self.queue.clone(),
            "pointer": self.pointer,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.head.load_state_dict(state["head"])
        self.key_encoder.load_state_dict(state["key_encoder"])
        self.key_head.load_state_dict(state["key_head"])
        self.queue.copy_(state["queue"])
        self.pointer = state["pointer"]
        self.resumed = state
