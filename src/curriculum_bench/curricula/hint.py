"""Distillation of intermediate layer outputs: FitNets' hint loss (the catalogue's planned technique).

Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015 §2.2, Eq. 3: a student's
intermediate feature map (the guided layer) goes through a learned regressor r and is pulled
towards the teacher's feature map at the hint layer, L_HT = ½‖u_h(x) − r(v_g(x))‖². Here, as
in the distillation benchmark code of Tian et al. (CRD, ICLR 2020; HobbitLong/RepDistiller,
distiller_zoo/FitNet.py `HintLoss`, models/util.py `ConvReg`), the hint is trained in one
stage beside the task loss: loss = previous loss + β · mean((r(s) − t)²) per image, β = 100
(RepDistiller's `-b 100` for FitNet). FitNets first trains up to the guided layer on the hint
alone, then the whole student by logit distillation; that two-stage schedule is not here.
docs/methods.md §2.8.

- The teacher is a run of the same study, found exactly as `distill`'s (`teacher_variant`,
  `teacher_model`, `teacher_seed`, `teacher_checkpoint`; curricula/distill.py), so the
  workflow trains it first. With `distill` in the same variant the two compose: Hinton's soft
  logits and the hint (each method runs its own frozen copy of the teacher).
- Layers are module names (`student_layer`, `teacher_layer`, default the same name): the
  MLT ConvNet's first residual block, the middle of its two, as FitNets' middle layers.
- Regressor (`adapter`): `conv1x1` a learned 1x1 convolution from the student's channels to
  the teacher's (FitNets' convolutional regressor, RepDistiller's ConvReg without its BN and
  ReLU), trained with the student in an optimiser group of its own; `auto` the same only where
  the channel counts differ, else none. Where spatial sizes differ, the regressor's output is
  average-pooled to the teacher's size (FitNets sizes its regressor kernel for that instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..models import named_module
from ..train.hooks import Hook, TrainState, register_method
from ..train.identity import model_files
from ..train.speed import run_model
from .distill import load_teacher, teacher_path

ADAPTERS = ("conv1x1", "auto")


@dataclass(frozen=True)
class HintConfig:
    teacher_variant: str = "baseline"  # as distill: a variant of the same study; its final_model.pt
    teacher_model: str | None = None  # None = the student's model (registered name otherwise)
    teacher_model_args: dict = field(default_factory=dict)  # with teacher_model
    teacher_seed: int | None = None  # None = the student's seed
    teacher_checkpoint: str | None = None  # a local state-dict file instead of a run
    student_layer: str = "block1"  # the guided layer; FitNets: the student's middle layer
    teacher_layer: str | None = None  # the hint layer; None = student_layer's name
    weight: float = 100.0  # β; RepDistiller FitNet -b 100 (CRD, Tian et al. 2020, Appendix)
    adapter: str = "conv1x1"  # FitNets' regressor always | "auto": only where channels differ

    def __post_init__(self):
        if not self.student_layer:
            raise ValueError("student_layer must name a module of the student")
        if self.teacher_layer is not None and not self.teacher_layer:
            raise ValueError("teacher_layer must name a module of the teacher, or be null")
        if not self.weight > 0:
            raise ValueError(f"weight must be > 0, got {self.weight}")
        if self.adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {ADAPTERS}, got {self.adapter!r}")
        if self.teacher_seed is not None and self.teacher_seed < 0:
            raise ValueError(f"teacher_seed must be >= 0 or null, got {self.teacher_seed}")
        if self.teacher_model_args and self.teacher_model is None:
            raise ValueError("teacher_model_args needs teacher_model")


# --- the maths (pure) ---------------------------------------------------------------------------


def hint_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per image: the mean squared difference of two (n, C, H, W) maps (RepDistiller HintLoss,
    nn.MSELoss, per image); FitNets' ½‖·‖² is the same up to a constant factor."""
    return (student - teacher).pow(2).flatten(1).mean(dim=1)


def make_adapter(student_channels: int, teacher_channels: int, adapter: str) -> nn.Module:
    if adapter == "auto" and student_channels == teacher_channels:
        return nn.Identity()
    return nn.Conv2d(student_channels, teacher_channels, 1)


def adapt(adapter: nn.Module, student: torch.Tensor, teacher_size: tuple[int, int]) -> torch.Tensor:
    """The regressor r(v_g): the adapter, then average pooling to the teacher's size if it differs."""
    out = adapter(student)
    if tuple(out.shape[-2:]) != tuple(teacher_size):
        out = F.adaptive_avg_pool2d(out, teacher_size)
    return out


# --- the hook -----------------------------------------------------------------------------------


@register_method("hint", HintConfig)
class Hint(Hook):
    """FitNets' hint loss from a trained teacher (see the module docstring).

    Usage (a variant, alone or beside distill):  hint: {student_layer: block1, weight: 100}
    """

    compilable = False  # the student's feature map is kept by a forward hook on its layer

    def __init__(self, cfg: HintConfig):
        self.cfg = cfg
        self.teacher: nn.Module | None = None
        self.adapter: nn.Module | None = None
        self.student_features: torch.Tensor | None = None
        self.teacher_features: torch.Tensor | None = None

    def _keep_student(self, module, args, output) -> None:
        if module is self.student_module:  # not a copy of the model (another method's teacher)
            self.student_features = output

    def _keep_teacher(self, module, args, output) -> None:
        if module is self.teacher_module:
            self.teacher_features = output

    def input_files(self, state: TrainState) -> dict[str, Path]:
        files = {"methods.hint.teacher": teacher_path(state.out_dir, self.cfg)}
        files.update(model_files(self.cfg.teacher_model_args, "methods.hint.teacher_model_args"))
        return files

    def on_fit_start(self, state: TrainState) -> None:
        cfg = self.cfg
        self.teacher = load_teacher(state, cfg, self.name)  # before the student's layer is hooked
        self.student_module = named_module(state.model, cfg.student_layer, "methods.hint.student_layer")
        self.teacher_module = named_module(
            self.teacher, cfg.teacher_layer or cfg.student_layer, "methods.hint.teacher_layer"
        )
        self.student_module.register_forward_hook(self._keep_student)
        self.teacher_module.register_forward_hook(self._keep_teacher)
        student, teacher = self._feature_shapes(state)
        if len(student) != 4 or len(teacher) != 4:
            raise ConfigError(f"methods.hint: layers give {tuple(student)} / {tuple(teacher)}, not feature maps")
        self.adapter = make_adapter(student[1], teacher[1], cfg.adapter).to(state.device)
        params = list(self.adapter.parameters())
        if params:
            state.optimizer.add_param_group({"params": params, "lr_scale": 1.0})
        self.loss_sum = torch.zeros((), device=state.device)
        self.seen = 0

    @torch.no_grad()
    def _feature_shapes(self, state: TrainState) -> tuple[torch.Size, torch.Size]:
        x = torch.zeros(2, *state.data.in_shape, device=state.device)
        was_training = state.model.training
        state.model.eval()  # leave the BatchNorm statistics as they are
        run_model(state.model, x, state.speed)
        state.model.train(was_training)
        run_model(self.teacher, x, state.speed)
        shapes = self.student_features.shape, self.teacher_features.shape
        self.student_features = self.teacher_features = None
        return shapes

    def on_epoch_start(self, state: TrainState) -> None:
        self.loss_sum.zero_()
        self.seen = 0

    def transform_batch(self, state: TrainState, idx, x, y):
        with torch.no_grad():
            run_model(self.teacher, state.pipeline.normalize(x), state.speed)
        return x, y

    def loss(self, state: TrainState, idx, logits, y, loss):
        teacher = self.teacher_features.float()
        student = adapt(self.adapter, self.student_features, tuple(teacher.shape[-2:])).float()
        hint = hint_loss(student, teacher)
        self.loss_sum += hint.detach().sum()
        self.seen += len(hint)
        return loss + self.cfg.weight * hint

    def epoch_log(self, state: TrainState) -> dict:
        return {"hint_loss": self.loss_sum.item() / max(self.seen, 1)}

    def state_dict(self) -> dict[str, Any]:
        return {} if self.adapter is None else {"adapter": self.adapter.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.adapter.load_state_dict(state["adapter"])
