"""What one training job is given: its `Run`, and the study's `train:` section as a `TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, config_from_dict

OPTIMIZERS = ("adamw", "sgd", "adam", "adamax")
SCHEDULES = ("warmup_cosine", "constant", "multistep", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")
SPEED_SWITCHES = ("channels_last", "fused_optimizer", "compile", "cuda_graphs")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # MLT Trainer max_epochs (docs/methods.md §2.1)
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
    # The hybrid repository's training recipe (docs/methods.md §1.3; train/recipe.py, data/policies.py).
    # Every default is off, so a study that sets none of them trains exactly as before.
    rand_augment: str | None = None  # timm config string after train.augment (HCL CvT: rand-m9-mstd0.5-inc1)
    auto_augment: str | None = None  # torchvision policy after train.augment (HCL ConvNeXt CIFAR: cifar10)
    random_erasing: float = 0.0  # timm RandomErasing probability, pixel mode, last (HCL CvT 0.25)
    mixup_alpha: float = 0.0  # timm Mixup, per batch; 0 = off (HCL CvT 0.8)
    cutmix_alpha: float = 0.0  # 0 = off (HCL CvT 1.0)
    mix_prob: float = 1.0  # timm Mixup `prob`: share of batches mixed (HCL 1.0)
    mix_switch_prob: float = 0.5  # timm `switch_prob`: cutmix instead of mixup when both are on
    label_smoothing: float = 0.0  # timm Mixup `label_smoothing` / CE label_smoothing (HCL passes 0.0)
    grad_clip: float | None = None  # max global L2 norm of the gradient (HCL CvT 0.5); None = off
    grad_clip_value: float | None = None  # clamp each gradient element to +-value first (HCL CvT 0.5)
    no_weight_decay_on_norm_and_bias: bool = False  # HCL WITHOUT_WD_LIST [bn, bias, ln]
    grad_accumulation_steps: int = 1  # batches per optimiser step (HCL CvT 4 on CIFAR, 8 on ImageNet-100)
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
        self._check_recipe()

    def _check_recipe(self) -> None:
        from ..data.policy_config import AUTO_AUGMENT_POLICIES, RandAugmentConfig

        if self.rand_augment is not None:
            RandAugmentConfig.parse(self.rand_augment)
        if self.auto_augment is not None and self.auto_augment not in AUTO_AUGMENT_POLICIES:
            raise ValueError(f"auto_augment must be one of {AUTO_AUGMENT_POLICIES}, got {self.auto_augment!r}")
        if self.rand_augment is not None and self.auto_augment is not None:
            raise ValueError("rand_augment and auto_augment are two policies for one place: set one")
        for name in ("random_erasing", "mix_prob", "mix_switch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0 (0: off)")
        for name in ("grad_clip", "grad_clip_value"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 or null (off), got {getattr(self, name)}")
        if isinstance(self.grad_accumulation_steps, bool) or not (
            isinstance(self.grad_accumulation_steps, int) and self.grad_accumulation_steps >= 1
        ):
            raise ValueError(f"grad_accumulation_steps must be an int >= 1, got {self.grad_accumulation_steps!r}")

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (mixup or cutmix): the loss then takes soft targets."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_prob > 0


# The keys of a resolved run config (config.resolve_run) that training reads.
RUN_KEYS = ("study", "dataset", "model", "model_args", "variant", "methods", "seed", "train")


@dataclass(frozen=True)
class Run:
    """One training job, built and checked once from the run config the workflow wrote.

    Build it with `Run.from_dict`: `resolved` keeps that JSON object exactly as written,
    because the run's identity, its checkpoint and metrics.json record it (train/identity.py
    hashes it), so its format cannot change under a finished run. Everything else reads the
    typed fields.
    """

    study: str
    dataset: str
    model: str  # a name in the model registry (curriculum_bench.models)
    variant: str
    seed: int  # model initialisation, and every random stream (train.hooks.Stream)
    model_args: dict[str, Any]  # the model's keyword arguments
    train: TrainConfig
    methods: dict[str, dict]  # method name -> its settings, in the variant's order (train.hooks.build_hooks)
    resolved: dict[str, Any] = field(repr=False, compare=False)  # the run config as written

    @classmethod
    def from_dict(cls, run: dict) -> Run:
        """A Run from a resolved run config; a missing key or a value of the wrong kind is named."""
        missing = [key for key in RUN_KEYS if key not in run]
        if missing:
            raise ConfigError(
                f"the run config has no key {missing[0]!r} (a resolved run config, as config.resolve_run "
                f"writes it, has {', '.join(RUN_KEYS)})"
            )
        for key in ("study", "dataset", "model", "variant"):
            if not isinstance(run[key], str) or not run[key]:
                raise ConfigError(f"the run config's {key} must be a non-empty string, got {run[key]!r}")
        if isinstance(run["seed"], bool) or not isinstance(run["seed"], int) or run["seed"] < 0:
            raise ConfigError(f"the run config's seed must be an int >= 0, got {run['seed']!r}")
        for key in ("model_args", "methods", "train"):
            if not isinstance(run[key], dict):
                raise ConfigError(f"the run config's {key} must be a mapping, got {type(run[key]).__name__}")
        for name, settings in run["methods"].items():
            if settings is not None and not isinstance(settings, dict):
                raise ConfigError(f"methods.{name}: settings must be a mapping, got {type(settings).__name__}")
        return cls(
            study=run["study"],
            dataset=run["dataset"],
            model=run["model"],
            variant=run["variant"],
            seed=run["seed"],
            model_args=dict(run["model_args"]),
            train=config_from_dict(TrainConfig, run["train"], where="train"),
            methods={name: dict(settings or {}) for name, settings in run["methods"].items()},
            resolved=run,
        )

    @property
    def name(self) -> str:
        """study/dataset/model/variant/seedN, as the run's folder under results/ is named."""
        return f"{self.study}/{self.dataset}/{self.model}/{self.variant}/seed{self.seed}"
