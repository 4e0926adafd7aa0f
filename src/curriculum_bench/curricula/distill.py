"""Knowledge distillation from a trained teacher run (the catalogue's planned technique).

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015), §2: the
student minimises (1 - α) CE(y, s) + α T² KL(softmax(t / T) || softmax(s / T)); the T²
keeps the soft term's gradients on the scale of the hard one when T changes (§2.1).

The teacher is another run of the same study, by default the same dataset, model and seed
under `teacher_variant` (`baseline`): its `final_model.pt`, which the engine writes into
every run folder. The workflow makes that file an input of the student's train job
(`curriculum_bench.run_inputs`), so Snakemake trains the teacher first. `teacher_checkpoint`
names a local file instead. The teacher predicts in eval mode on the batch the student
sees (after earlier methods' transforms), normalised as evaluation does.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MissingInputFile
from ..models import create_model
from ..run_inputs import teacher_file_of_run_dir
from ..train.hooks import Hook, TrainState, register_method
from ..train.identity import model_files
from ..train.speed import prepare_model, run_model
from .transfer import load_weights


@dataclass(frozen=True)
class DistillConfig:
    teacher_variant: str = "baseline"  # a variant of the same study; its final_model.pt
    teacher_model: str | None = None  # None = the student's model (registered name otherwise)
    teacher_model_args: dict = field(default_factory=dict)  # with teacher_model
    teacher_seed: int | None = None  # None = the student's seed
    teacher_checkpoint: str | None = None  # a local state-dict file instead of a run
    temperature: float = 4.0  # T; Hinton et al. §3 use 1-20, 4 is common in KD code
    alpha: float = 0.9  # weight of the soft (teacher) term

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.teacher_seed is not None and self.teacher_seed < 0:
            raise ValueError(f"teacher_seed must be >= 0 or null, got {self.teacher_seed}")
        if self.teacher_model_args and self.teacher_model is None:
            raise ValueError("teacher_model_args needs teacher_model")


def teacher_path(student_dir: Path, cfg: DistillConfig) -> Path:
    """results/{study}/{dataset}/{model}/{variant}/seed{s} -> the teacher's weights, by the same
    function that wires the workflow's edge (run_inputs.teacher_file)."""
    if cfg.teacher_checkpoint:  # a local file: the student's folder need not be a results/ path
        return Path(cfg.teacher_checkpoint)
    return Path(teacher_file_of_run_dir(student_dir, asdict(cfg)))


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    hard_loss: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Per sample: (1 - α) hard + α T² KL(p_teacher^T || p_student^T)."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    soft = (log_teacher.exp() * (log_teacher - log_student)).sum(1)
    return (1 - alpha) * hard_loss + alpha * temperature**2 * soft


def load_teacher(state: TrainState, cfg, method: str) -> torch.nn.Module:
    """The frozen teacher of a student run, in eval mode at the student's precision and layout:
    `cfg` holds the teacher_* settings (DistillConfig, or another method's with the same
    fields: curricula/hint.py)."""
    path = teacher_path(state.out_dir, cfg)
    if not path.exists():
        raise MissingInputFile(
            path,
            f"the distillation teacher's weights do not exist (methods.{method})",
            "train the teacher run first; the workflow does so",
        )
    if cfg.teacher_model:
        teacher = create_model(
            cfg.teacher_model, tuple(state.data.in_shape), state.num_classes, **cfg.teacher_model_args
        )
    else:
        teacher = copy.deepcopy(state.model)
    teacher.load_state_dict(load_weights(path))
    teacher = teacher.to(state.device).eval().requires_grad_(False)
    # The student's precision and layout; not compiled: one frozen forward per step.
    prepare_model(teacher, replace(state.speed, compile=False, cuda_graphs=False))
    return teacher


@register_method("distill", DistillConfig)
class Distill(Hook):
    def __init__(self, cfg: DistillConfig):
        self.cfg = cfg
        self.teacher: torch.nn.Module | None = None
        self.teacher_logits: torch.Tensor | None = None
        self.agree = self.seen = 0  # student argmax == teacher argmax, this epoch

    def input_files(self, state: TrainState) -> dict[str, Path]:
        files = {"methods.distill.teacher": teacher_path(state.out_dir, self.cfg)}
        files.update(model_files(self.cfg.teacher_model_args, "methods.distill.teacher_model_args"))
        return files

    def on_fit_start(self, state: TrainState) -> None:
        self.teacher = load_teacher(state, self.cfg, self.name)

    def on_epoch_start(self, state: TrainState) -> None:
        self.agree, self.seen = torch.zeros((), device=state.device), 0

    def transform_batch(self, state: TrainState, idx, x, y):
        with torch.no_grad():
            self.teacher_logits = run_model(self.teacher, state.pipeline.normalize(x), state.speed)
        return x, y

    def loss(self, state: TrainState, idx, logits, y, loss):
        self.agree += (logits.detach().argmax(1) == self.teacher_logits.argmax(1)).sum()  # no host sync
        self.seen += len(y)
        return distillation_loss(logits, self.teacher_logits, loss, self.cfg.temperature, self.cfg.alpha)

    def epoch_log(self, state: TrainState) -> dict:
        return {"teacher_agreement": float(self.agree) / max(self.seen, 1)}
