"""Per-presentation statistics of every training example, for forgetting events.

Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network
Learning" (ICLR 2019), §3; docs/methods.md §5.1 (FE:run_cifar.py `train`) and §5.2
(C1K:coreset.py `update_fe`). Statistics come from the forward pass of each training
minibatch: train mode, augmented input, before that step's update. For every presentation
of every example this hook records

    correct = argmax(logits) == y
    loss    = cross-entropy of that example (the engine's unweighted per-sample loss)
    margin  = logit(true class) - max logit(other classes)

and the epoch it happened in. Counting events from these records is a pure function in
coreset/forgetting_stats.py; this hook only observes, it never changes training.

The records stay on the training device (no host sync per step); `on_fit_end` writes
`forgetting.npz` into the run folder, and `state_dict` carries them, so a resumed run
records exactly what an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..train.hooks import Hook, TrainState, register_method

ARTIFACT = "forgetting.npz"
NOT_PRESENTED = -1  # `correct` cell of a presentation that did not happen


@dataclass(frozen=True)
class ForgettingConfig:
    record_loss_and_margin: bool = True  # FE keeps loss and margin too; counting needs only `correct`

    def __post_init__(self):
        if not isinstance(self.record_loss_and_margin, bool):
            raise ValueError(f"record_loss_and_margin must be true or false, got {self.record_loss_and_margin!r}")


def presentation_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FE margin: logit of the true class minus the largest logit of any other class."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - others.max(1).values


@register_method("forgetting", ForgettingConfig)
class ForgettingRecorder(Hook):
    """Fills (presentation, example) tables; row p holds every example's (p+1)-th presentation."""

    def __init__(self, cfg: ForgettingConfig):
        self.cfg = cfg
        self.tables: dict[str, torch.Tensor] = {}
        self.presentations: torch.Tensor | None = None  # per example, how many so far

    def on_fit_start(self, state: TrainState) -> None:
        n, rows, dev = len(state.train_labels), state.epochs, state.device
        self.presentations = torch.zeros(n, dtype=torch.long, device=dev)
        # One row per epoch fits the usual one-presentation-per-epoch order; `_grow` adds
        # rows when a sampler presents an example more often.
        self.tables = {
            "correct": torch.full((rows, n), NOT_PRESENTED, dtype=torch.int8, device=dev),
            "epoch": torch.full((rows, n), -1, dtype=torch.int16, device=dev),
        }
        if self.cfg.record_loss_and_margin:
            for key in ("loss", "margin"):
                self.tables[key] = torch.full((rows, n), float("nan"), dtype=torch.float32, device=dev)

    def on_epoch_start(self, state: TrainState) -> None:
        self.rows_checked = False

    def on_batch_start(self, state: TrainState) -> None:
        if not self.rows_checked:
            # Once per epoch, from the epoch's whole order: a sampler may present an example
            # more often than the table has rows. One host sync here, none per step.
            presented = torch.bincount(state.order, minlength=len(self.presentations))
            self._grow(int((self.presentations + presented).max()))
            self.rows_checked = True

    def _grow(self, rows_needed: int) -> None:
        rows = self.tables["correct"].shape[0]
        if rows_needed <= rows:
            return
        extra = max(rows_needed, 2 * rows) - rows
        for key, table in self.tables.items():
            fill = torch.full(
                (extra, table.shape[1]),
                NOT_PRESENTED if key in ("correct", "epoch") else float("nan"),
                dtype=table.dtype,
                device=table.device,
            )
            self.tables[key] = torch.cat([table, fill])

    def after_forward(self, state: TrainState, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        # An index twice in one batch (sampling with replacement) is two presentations.
        order = torch.argsort(idx, stable=True)
        sorted_idx = idx[order]
        first_of_run = torch.ones_like(sorted_idx, dtype=torch.bool)
        first_of_run[1:] = sorted_idx[1:] != sorted_idx[:-1]
        positions = torch.arange(len(idx), device=idx.device)
        run_start = torch.cummax(torch.where(first_of_run, positions, 0), 0).values
        repeat = torch.empty_like(idx)
        repeat[order] = positions - run_start
        rows = self.presentations[idx] + repeat  # within the rows on_batch_start made room for
        self.tables["correct"][rows, idx] = (logits.argmax(1) == y).to(torch.int8)
        self.tables["epoch"][rows, idx] = state.epoch
        if self.cfg.record_loss_and_margin:
            self.tables["loss"][rows, idx] = F.cross_entropy(logits.float(), y, reduction="none")
            self.tables["margin"][rows, idx] = presentation_margin(logits.float(), y)
        self.presentations.index_add_(0, idx, torch.ones_like(idx))

    def epoch_log(self, state: TrainState) -> dict:
        correct = self.tables["correct"]
        # Share of examples whose latest presentation was correct: cheap, once per epoch.
        latest = correct.gather(0, (self.presentations - 1).clamp(min=0)[None]).squeeze(0)
        return {"latest_correct_fraction": float((latest == 1).float().mean())}

    def on_fit_end(self, state: TrainState) -> None:
        used = int(self.presentations.max()) if len(self.presentations) else 0
        arrays = {key: table[:used].cpu().numpy() for key, table in self.tables.items()}
        np.savez_compressed(
            state.out_dir / ARTIFACT,
            labels=state.train_labels.cpu().numpy(),
            presentations=self.presentations.cpu().numpy(),
            **arrays,
        )

    def state_dict(self) -> dict:
        return {
            "presentations": self.presentations.cpu(),
            "tables": {key: table.cpu() for key, table in self.tables.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        device = self.presentations.device
        self.presentations = state["presentations"].to(device)
        self.tables = {key: table.to(device) for key, table in state["tables"].items()}
