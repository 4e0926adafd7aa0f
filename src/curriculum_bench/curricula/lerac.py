"""LeRaC: learning-rate curriculum, one learning rate per block of the network.

Croitoru et al., "LeRaC: Learning Rate Curriculum" (LRCp §3, Eq. 8, Tab. 1); docs/methods.md
§1.1 (paper), §1.2 (official code, LRC), §1.3 (the hybrid repository, HCL), §1.5, §8.

The network is cut into blocks f_1 ... f_n from input to output (the classifier is the last
block). Each block j starts at its own learning rate eta_j(0) <= eta(0), deeper blocks lower,
and all rise to the base rate; afterwards the normal schedule continues. Two update rules:

- ``paper`` (Eq. 8): eta_j(t) = eta_j(0) * (eta(0) / eta_j(0)) ** (min(t, k) / k), a straight
  line in log space; every block reaches the base rate at t = k together. The paper writes it
  with a base c that cancels, so `c_factor` has no effect here (HCL's `--c_factor` neither).
  Starting rates: the first block at the base rate, the last at `eta_min`, the blocks between
  evenly spaced in log10 space (HCL's intent, without its ln-in-log10 bug).
- ``official`` (LRC train/resnet_train.py, experiments/r18_experiments.py): starting rates on a
  x0.1-per-block ladder from the base rate, multiplied on while the current value is above
  `eta_min` (LRC's `min_lr`; float rounding makes it go one step below, §8), the classifier at
  base x `clf_lr`. Each update multiplies every group by `c_factor` if the product stays below
  `cap` x base; updates come at the end of each epoch and `updates_per_epoch - 1` times inside
  it, during the epochs before `lerac_epochs` (LRC's `stop_update_epoch`). Deep blocks arrive
  last (effective k = 5 epochs for CIFAR-10 ResNet-18).

The hook writes each group's multiplier into `lr_scale`, which the engine multiplies with the
base schedule before every step: lr_j = base_schedule(t) x scale_j(t). Nothing can snap back
to a starting rate (HCL's SequentialLR bug, §1.3), and the multipliers are pure functions of
(epoch, batch), so a resumed run needs no LeRaC state.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..train.hooks import Hook, TrainState, register_method

RULES = ("paper", "official")
STEP_UNITS = ("step", "epoch")
OFFICIAL_LADDER_FACTOR = 0.1  # LRC: `start_lr *= 1e-1` per block, hard-coded
CLASSIFIER = "classifier"


@dataclass(frozen=True)
class LeRaCConfig:
    # "paper": Eq. 8 (log-space, equal arrival) | "official": the LRC code's update rule.
    rule: str = "paper"
    # paper: k (Tab. 1: 5-7 ResNet, 2-5 CvT); HCL --lerac_epochs 5.
    # official: LRC stop_update_epoch (20 ResNet-18, 5 CvT).
    lerac_epochs: int = 5
    # Absolute LR. paper: eta_n(0) of the last block (Tab. 1 ResNet-18 1e-1 -> 1e-8; HCL --eta_min
    # 2e-8, ConvNeXt 1e-8). official: LRC min_lr, the ladder's floor (CIFAR-10 1e-5).
    eta_min: float = 1e-8
    # paper only. "step": t in fractional epochs (paper: per iteration); "epoch": t = whole epochs
    # (HCL CvT/ResNet step once per epoch).
    step_unit: str = "step"
    # official only: x per update (LRC scale_lr 10). The paper's c cancels in Eq. 8, so rule
    # "paper" ignores it (as HCL does).
    c_factor: float = 10.0
    clf_lr: float = 1e-3  # official only: classifier starts at base x clf_lr (LRC CIFAR-10)
    # official only: grow while the product < cap x base (LRC stop_lr 0.11 for base 0.1; CvT
    # 0.0021 for 2e-3, i.e. 1.05).
    cap: float = 1.1
    updates_per_epoch: int = 1  # official only: LRC update_per_epoch 1 (CIFAR), 2 (CvT), 4 (ImageNet)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.step_unit not in STEP_UNITS:
            raise ValueError(f"step_unit must be one of {STEP_UNITS}, got {self.step_unit!r}")
        if not isinstance(self.lerac_epochs, int) or self.lerac_epochs < 1:
            raise ValueError(f"lerac_epochs must be an int >= 1, got {self.lerac_epochs!r}")
        if not self.eta_min > 0:
            raise ValueError(f"eta_min must be > 0 (an absolute learning rate), got {self.eta_min}")
        if not self.c_factor > 1:
            raise ValueError(f"c_factor must be > 1, got {self.c_factor}")
        if not 0 < self.clf_lr <= 1:
            raise ValueError(f"clf_lr must be in (0, 1], got {self.clf_lr}")
        if not self.cap > 1:
            raise ValueError(f"cap must be > 1 (a multiple of the base LR), got {self.cap}")
        if self.updates_per_epoch not in (1, 2, 4):
            raise ValueError(f"updates_per_epoch must be 1, 2 or 4 (LRC), got {self.updates_per_epoch!r}")


# --- blocks: each supported model family, input -> output, classifier last ------------------


def _resnet_block(name: str) -> str:
    """torchvision ResNet (both stems): conv1/bn1 stem, one block per BasicBlock (LRC: the
    `layerX.Y` prefix, shortcut included), fc the classifier."""
    if name.startswith("fc."):
        return CLASSIFIER
    if name.startswith("layer"):
        return ".".join(name.split(".")[:2])
    return "stem"


def _mlt_convnet_block(name: str) -> str:
    """MLT ConvNet: block1, block2, fc."""
    return CLASSIFIER if name.startswith("fc.") else name.split(".")[0]


def _convnext_block(name: str) -> str:
    """timm ConvNeXt: HCL's 10 logical layers (torchvision features[0..7], head norm, head fc):
    stem, each stage's downsample, each stage's blocks, head.norm, head.fc."""
    if name.startswith("head.fc."):
        return CLASSIFIER
    if name.startswith("head.norm."):
        return "head.norm"
    if name.startswith("stages."):
        return ".".join(name.split(".")[:3])  # stages.i.downsample | stages.i.blocks
    return name.split(".")[0]  # stem


def _cvt_block(name: str) -> str:
    """CvT (LRC cvt_experiments.py): one block per transformer block; a stage's patch embedding
    (and stage 2's cls token) share the stage's first block; norm_final + head the classifier."""
    parts = name.split(".")
    if parts[0] in ("head", "norm_final"):
        return CLASSIFIER
    if parts[1] == "blocks":
        return ".".join(parts[:3])
    return f"{parts[0]}.blocks.0"  # stageN.patch_embed.*, stage2.cls_token


def _block_rule(model: nn.Module):
    from torchvision.models import ResNet

    from ..models.convnet import MLTConvNet
    from ..models.cvt import CvT

    if isinstance(model, ResNet):
        return _resnet_block
    if isinstance(model, MLTConvNet):
        return _mlt_convnet_block
    if isinstance(model, CvT):
        return _cvt_block
    if type(model).__name__ == "ConvNeXt" and type(model).__module__.startswith("timm"):
        return _convnext_block
    raise ValueError(
        f"methods.lerac: no block layout for {type(model).__name__}; supported: torchvision "
        "ResNet (resnet18, resnet18_cifar), MLTConvNet, CvT, timm ConvNeXt"
    )


def model_blocks(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's parameters as ordered blocks (input -> output, classifier last); every
    parameter lands in exactly one block, none is left out (LRC silently froze unmatched ones)."""
    rule = _block_rule(model)
    blocks: dict[str, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        blocks.setdefault(rule(name), []).append(param)
    if CLASSIFIER not in blocks or len(blocks) < 2:
        raise ValueError(f"methods.lerac: need a classifier and at least one other block, got {list(blocks)}")
    classifier = blocks.pop(CLASSIFIER)
    return list(blocks.items()) + [(CLASSIFIER, classifier)]


# --- the two update rules (pure) --------------------------------------------------------------


def paper_start_ratios(n_blocks: int, eta_min_ratio: float) -> list[float]:
    """eta_j(0) / eta(0): 1 for the first block, eta_min_ratio for the last, log-evenly between."""
    return [eta_min_ratio ** (j / (n_blocks - 1)) for j in range(n_blocks)]


def paper_scales(t_epochs: float, k_epochs: int, start_ratios: list[float]) -> list[float]:
    """Eq. 8 as multipliers of the base LR: r_j ** (1 - min(t, k) / k); all 1 from t = k on."""
    progress = min(max(t_epochs, 0.0), k_epochs) / k_epochs
    return [r ** (1.0 - progress) for r in start_ratios]


def official_start_lrs(n_blocks: int, base_lr: float, min_lr: float, clf_lr: float) -> list[float]:
    """LRC's starting LRs: the non-classifier blocks on a x0.1 ladder from the base LR (the
    value goes down again only while it is above min_lr, so it ends one step below min_lr
    when float rounding leaves it a hair above, §8); the classifier at base x clf_lr."""
    ladder, lr = [], base_lr
    for _ in range(n_blocks - 1):
        ladder.append(lr)
        if lr > min_lr:
            lr *= OFFICIAL_LADDER_FACTOR
    return ladder + [base_lr * clf_lr]


def official_update_points(steps_per_epoch: int, updates_per_epoch: int) -> list[int]:
    """In-epoch updates as LRC makes them: after the optimiser step whose 1-based count is in
    {len//2} (2 per epoch) or {len//4, len//2, 3 len//4} (4 per epoch); the epoch's end adds one."""
    n = steps_per_epoch
    points = {1: [], 2: [n // 2], 4: [n // 4, n // 2, 3 * n // 4]}[updates_per_epoch]
    return sorted({p for p in points if 1 <= p < n})


def official_updates_before(
    epoch: int, batch: int, steps_per_epoch: int, updates_per_epoch: int, stop_update_epoch: int
) -> int:
    """Updates made before 0-based `batch` of 0-based `epoch`. LRC updates in its 1-based
    epochs E < stop_update_epoch, i.e. 0-based epochs e < stop_update_epoch - 1."""
    points = official_update_points(steps_per_epoch, updates_per_epoch)
    updating_epochs = max(stop_update_epoch - 1, 0)
    done = min(epoch, updating_epochs) * (len(points) + 1)
    if epoch < updating_epochs:
        done += sum(p <= batch for p in points)
    return done


def official_lr(start_lr: float, updates: int, c_factor: float, cap_lr: float) -> float:
    """LRC Trainer.update_lr applied `updates` times: x c while the product stays below the cap."""
    lr = start_lr
    for _ in range(updates):
        if not lr * c_factor < cap_lr:
            break  # once over the cap, a group never grows again
        lr *= c_factor
    return lr


@register_method("lerac", LeRaCConfig)
class LeRaC(Hook):
    """Per-block learning rates rising to the base rate (see the module docstring).

    Usage (a variant in the config):  lerac: {rule: paper, lerac_epochs: 5, eta_min: 1.0e-8}
    """

    def __init__(self, cfg: LeRaCConfig):
        self.cfg = cfg
        self.start: list[float] = []  # per group: paper ratios, or official absolute LRs
        self.base_lr = 1.0  # train.lr, the schedule's peak: official starting LRs are absolute
        # The blocks, input -> output. train.no_weight_decay_on_norm_and_bias splits a block's
        # group in two (decayed, not decayed), both named after the block: scales go by name.
        self.blocks: list[str] = []

    def param_groups(self, state: TrainState, model: nn.Module) -> list[dict]:
        return [{"params": params, "name": name, "lr_scale": 1.0} for name, params in model_blocks(model)]

    def on_fit_start(self, state: TrainState) -> None:
        self.base_lr = state.train_config.lr
        if not self.cfg.eta_min < self.base_lr:
            raise ValueError(f"methods.lerac.eta_min ({self.cfg.eta_min}) must be below train.lr ({self.base_lr})")
        self.blocks = list(dict.fromkeys(group["name"] for group in state.optimizer.param_groups))
        n = len(self.blocks)
        if self.cfg.rule == "paper":
            self.start = paper_start_ratios(n, self.cfg.eta_min / self.base_lr)
        else:
            self.start = official_start_lrs(n, self.base_lr, self.cfg.eta_min, self.cfg.clf_lr)

    def scales(self, epoch: int, batch: int, steps_per_epoch: int) -> list[float]:
        """Each group's multiplier of the base schedule before 0-based `batch` of `epoch`."""
        cfg = self.cfg
        if cfg.rule == "paper":
            t = epoch + (batch / steps_per_epoch if cfg.step_unit == "step" else 0.0)
            return paper_scales(t, cfg.lerac_epochs, self.start)
        updates = official_updates_before(epoch, batch, steps_per_epoch, cfg.updates_per_epoch, cfg.lerac_epochs)
        cap = cfg.cap * self.base_lr
        return [official_lr(lr, updates, cfg.c_factor, cap) / self.base_lr for lr in self.start]

    def on_batch_start(self, state: TrainState) -> None:
        scales = dict(zip(self.blocks, self.scales(state.epoch, state.batch, state.steps_per_epoch), strict=True))
        for group in state.optimizer.param_groups:
            group["lr_scale"] = scales[group["name"]]

    def epoch_log(self, state: TrainState) -> dict:
        # The engine logs each group's LR at the epoch's last step; the first step's multiplier
        # completes the picture of a ramp inside the epoch.
        steps = state.steps_per_epoch
        return {
            "groups": self.blocks,
            "lr_scale_first_step": self.scales(state.epoch, 0, steps),
            "lr_scale_last_step": self.scales(state.epoch, steps - 1, steps),
        }
