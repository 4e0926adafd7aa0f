"""Training hyper-parameters shared by every study (a study's `train:` section)."""

from __future__ import annotations

from dataclasses import dataclass, field

OPTIMIZERS = ("adamw", "sgd", "adam", "adamax")
SCHEDULES = ("warmup_cosine", "constant", "multistep", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")
SPEED_SWITCHES = ("channels_last", "fused_optimizer", "compile", "cuda_graphs")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # MLT Trainer max_epochs (spec §2.1)
    batch_size: int = 32  # MLT SimpleDataModule
    eval_batch_size: int = 1000  # evaluation only; does not change results
    optimizer: str = "adamw"  # MLT: AdamW
    lr: float = 0.01  # MLT scripts
    weight_decay: float = 0.1  # MLT scripts (module default 0.01)
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only (forgetting events: true)
    schedule: str = "warmup_cosine"  # MLT: LinearLR warm-up then CosineAnnealingLR, per epoch
    warmup_epochs: int = 3  # MLT: 3 epochs from 1e-3 x lr
    warmup_start_factor: float = 1e-3
    cosine_t_max: float = 3.0  # MLT: T_max = 3 epochs, so the cosine oscillates over 10
    min_lr_factor: float = 0.1  # MLT: eta_min = lr / 10
    milestones: tuple[int, ...] = ()  # multistep: epochs at which the LR is multiplied by gamma
    gamma: float = 0.1  # multistep factor (DP: x0.1 at 80 and 100)
    log_every: int = 50  # progress line every N steps
    augment: list = field(default_factory=list)  # [{op: name, ...}], on the device (data/augment.py)
    normalize: dict | None = None  # {mean: [...], std: [...]} per channel; MLT: none
    # Speed (train/speed.py): "auto" = on where the run is on a CUDA GPU, off on the CPU.
    precision: str = "auto"  # "bf16" autocast or "fp32"
    channels_last: str | bool = "auto"
    fused_optimizer: str | bool = "auto"
    compile: str | bool = "auto"  # torch.compile; kernels cached between jobs
    cuda_graphs: str | bool = "auto"  # via compile's reduce-overhead mode; auto at batch <= 256

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {list(self.milestones)}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        positive = ("epochs", "batch_size", "eval_batch_size", "cosine_t_max", "log_every")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("weight_decay and warmup_epochs must be >= 0")
        if not 0 < self.warmup_start_factor <= 1 or not 0 <= self.min_lr_factor <= 1:
            raise ValueError("warmup_start_factor must be in (0, 1] and min_lr_factor in [0, 1]")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.normalize is not None and set(self.normalize) != {"mean", "std"}:
            raise ValueError(f"normalize must have exactly the keys mean and std, got {sorted(self.normalize)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in SPEED_SWITCHES:
            if getattr(self, name) not in ("auto", True, False):
                raise ValueError(f"{name} must be auto, true or false, got {getattr(self, name)!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
