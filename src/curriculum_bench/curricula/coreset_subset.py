"""Train on a selected subset of the training split: a coreset, or everything but a removal set.

docs/methods.md §5.2 (C1K:main.py, `create_coreset` then a shuffled DataLoader over the
1,000 chosen examples) and §5.1 (FE:run_cifar.py `--remove_n`: the training set minus the
examples a sorting file names). The indices come from a selection file written by
`python -m curriculum_bench select` (coreset/select.py) and refer to the train split of the
store this run trains on; the proxy that scored them trained on the same store.

Only `sample_order` is touched: each epoch is a permutation of the kept indices, drawn from
the engine's per-epoch order stream, so a resumed run draws the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputFileError, read_json_file
from ..train.hooks import Hook, TrainState, register_method

MODES = ("keep", "drop")


@dataclass(frozen=True)
class CoresetSubsetConfig:
    selection: str = ""  # selection JSON (coreset/select.py); its `indices` index the train split
    mode: str = "keep"  # keep: train on those indices only (C1K) | drop: train on all others (FE removal)

    def __post_init__(self):
        if not self.selection:
            raise ValueError("selection must name a selection file")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")


def read_selection(path: str | Path) -> dict:
    return read_json_file(path, "a coreset selection (coreset/select.py)", keys=("indices", "num_train"))


def kept_indices(selected: torch.Tensor, num_train: int, mode: str) -> torch.Tensor:
    """The training indices a run uses: the selection itself, or its complement in index order."""
    if mode == "keep":
        return selected
    keep = torch.ones(num_train, dtype=torch.bool)
    keep[selected] = False
    return keep.nonzero().squeeze(1)


@register_method("coreset_subset", CoresetSubsetConfig)
class CoresetSubset(Hook):
    def __init__(self, cfg: CoresetSubsetConfig):
        self.cfg = cfg
        self.indices: torch.Tensor | None = None

    def input_files(self, state: TrainState) -> dict[str, Path]:
        return {"methods.coreset_subset.selection": Path(self.cfg.selection)}

    def on_fit_start(self, state: TrainState) -> None:
        selection = read_selection(self.cfg.selection)
        num_train = len(state.train_labels)
        if selection["num_train"] != num_train:
            raise InputFileError(
                self.cfg.selection,
                f"indexes a train split of {selection['num_train']} examples, this run's has {num_train}",
                "the proxy and this run must train on the same store; rerun the selection",
            )
        from ..coreset.select import labels_digest

        if selection.get("train_labels_sha256") not in (None, labels_digest(state.train_labels.cpu().numpy())):
            raise InputFileError(
                self.cfg.selection,
                "was scored on a train split with other labels than this run's",
                "the proxy and this run must train on the same store; rerun the selection",
            )
        selected = torch.tensor(selection["indices"], dtype=torch.long)
        if len(selected) and (int(selected.min()) < 0 or int(selected.max()) >= num_train):
            raise InputFileError(self.cfg.selection, f"indices outside [0, {num_train})", "rerun the selection")
        self.indices = kept_indices(selected, num_train, self.cfg.mode)
        if len(self.indices) == 0:
            raise InputFileError(
                self.cfg.selection,
                f"mode {self.cfg.mode!r} leaves no training example",
                "select fewer examples or use mode 'keep'",
            )

    def sample_order(self, state: TrainState, generator: torch.Generator) -> torch.Tensor:
        return self.indices[torch.randperm(len(self.indices), generator=generator)]

    def epoch_log(self, state: TrainState) -> dict:
        return {"train_examples": len(self.indices)}
