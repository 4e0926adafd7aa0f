"""Transfer from a pretrained checkpoint (the catalogue's planned technique).

Fine-tuning (e.g. Yosinski et al., "How transferable are features in deep neural
networks?", NeurIPS 2014): start from weights trained elsewhere instead of a random
initialisation. `checkpoint` is a local file: a state dict (a run's `final_model.pt`) or a
training checkpoint holding one under `model`. Parameters whose name starts with one of
`exclude` (default the classifier `fc.`, whose shape depends on the task) keep their fresh
initialisation; every other parameter must be present with the same shape, unless
`strict: false`, which also skips missing and mismatched ones. `freeze` prefixes are
excluded from the optimiser's gradient updates (requires_grad = False), and the modules under
them stay in eval mode while training (BatchNorm statistics frozen too), as MoCo's linear
classification does (facebookresearch/moco main_lincls.py: `model.eval()` while the
classifier trains): freezing all but `fc.` is a linear probe. The workflow makes
the file an input of the train job (`curriculum_bench.run_inputs`), so a file produced by
another run is trained first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputFileError, MissingInputFile
from ..train.hooks import Hook, TrainState, register_method


@dataclass(frozen=True)
class PretrainedConfig:
    checkpoint: str = ""  # required: path of the weights file
    exclude: tuple[str, ...] = ("fc.",)  # name prefixes not loaded (the task head)
    strict: bool = True  # every other parameter present with the same shape
    freeze: tuple[str, ...] = ()  # name prefixes trained no further (linear probe: all but fc.)

    def __post_init__(self):
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "freeze", tuple(self.freeze))
        if not self.checkpoint:
            raise ValueError("checkpoint must name a weights file")


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from `path`: a plain state dict or a checkpoint with one under `model`."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(payload).__name__}")
    return payload


def transferable(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], exclude: tuple[str, ...], strict: bool
) -> dict[str, torch.Tensor]:
    """The entries of `source` to copy into `target`; with `strict`, any other gap is an error."""
    wanted = {k for k in target if not k.startswith(exclude)}
    chosen = {k: v for k, v in source.items() if k in wanted and v.shape == target[k].shape}
    if strict:
        missing = sorted(wanted - set(source))
        mismatched = sorted(k for k in wanted & set(source) if source[k].shape != target[k].shape)
        if missing or mismatched:
            raise ValueError(
                f"missing {missing[:3]}, shape mismatch {mismatched[:3]} (exclude them or set strict: false)"
            )
    return chosen


@register_method("pretrained", PretrainedConfig)
class Pretrained(Hook):
    def __init__(self, cfg: PretrainedConfig):
        self.cfg = cfg
        self.loaded = 0
        self.frozen: list[torch.nn.Module] = []  # modules under a `freeze` prefix

    def input_files(self, state: TrainState) -> dict[str, Path]:
        return {"methods.pretrained.checkpoint": Path(self.cfg.checkpoint)}

    def on_fit_start(self, state: TrainState) -> None:
        path = Path(self.cfg.checkpoint)
        if not path.exists():
            raise MissingInputFile(
                path,
                "no such file (methods.pretrained.checkpoint)",
                "train the run it names first, or point checkpoint at a weights file",
            )
        target = state.model.state_dict()
        try:
            chosen = transferable(load_weights(path), target, self.cfg.exclude, self.cfg.strict)
        except ValueError as err:
            raise InputFileError(path, f"does not fit this model (methods.pretrained.checkpoint): {err}") from None
        state.model.load_state_dict(chosen, strict=False)
        self.loaded = len(chosen)
        for name, param in state.model.named_parameters():
            if name.startswith(self.cfg.freeze):
                param.requires_grad_(False)
        self.frozen = [
            module
            for name, module in state.model.named_modules()
            if self.cfg.freeze and name and f"{name}.".startswith(self.cfg.freeze)
        ]

    def on_batch_start(self, state: TrainState) -> None:
        for module in self.frozen:  # the engine put the whole model in train mode for the epoch
            module.eval()

    def epoch_log(self, state: TrainState) -> dict:
        return {"tensors_loaded": self.loaded}
