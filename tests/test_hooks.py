"""The hook interface (train/hooks.py): one signature convention for every moment, one enum of
random streams, and methods found by file, so that adding a method is one file."""

import inspect
import json
import sys

import pytest
import torch

from curriculum_bench import cli
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import METHODS, Hook, Stream, build_hooks, discover_methods, seeded_generator

from .conftest import tiny_run

# Every moment of the loop, in loop order (state_dict / load_state_dict carry no state).
MOMENTS = (
    "param_groups",
    "on_fit_start",
    "input_files",
    "on_epoch_start",
    "sample_order",
    "on_batch_start",
    "transform_batch",
    "loss",
    "after_forward",
    "after_step",
    "on_epoch_end",
    "epoch_log",
    "on_fit_end",
)


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)[1:]  # without self


def test_every_moment_takes_the_state_first_then_the_batch_in_one_order():
    for moment in MOMENTS:
        assert parameters(getattr(Hook, moment))[0] == "state", moment
    assert parameters(Hook.transform_batch) == ["state", "idx", "x", "y"]
    assert parameters(Hook.loss) == ["state", "idx", "logits", "y", "loss"]
    assert parameters(Hook.after_forward) == ["state", "idx", "logits", "y"]


def test_the_hooks_docstring_lists_every_moment_in_loop_order():
    from curriculum_bench.train import hooks

    listed = [line.split("(")[0].strip() for line in hooks.__doc__.splitlines() if "(state" in line]
    assert listed == list(MOMENTS)


def test_every_registered_method_overrides_a_moment_with_the_base_signature():
    for name in discover_methods():
        hook_cls = METHODS.get(name)
        for moment in MOMENTS:
            if getattr(hook_cls, moment) is not getattr(Hook, moment):
                assert parameters(getattr(hook_cls, moment)) == parameters(getattr(Hook, moment)), (name, moment)


def test_each_random_stream_draws_its_own_numbers_and_the_engine_keeps_its_values():
    # The engine's order and augmentation and the `augment` method draw as they always have:
    # their runs' measured numbers depend on these values.
    assert (Stream.ORDER, Stream.AUGMENT, Stream.AUGMENT_METHOD) == (0, 1, 3)
    assert len({int(stream) for stream in Stream}) == len(Stream)
    draws = {stream: torch.rand(8, generator=seeded_generator(7, 3, stream)) for stream in Stream}
    assert len({tuple(d.tolist()) for d in draws.values()}) == len(Stream)
    assert torch.equal(torch.rand(8, generator=seeded_generator(7, 3, Stream.BLUR)), draws[Stream.BLUR])


# --- a method is one new file ------------------------------------------------------------------

NEW_METHOD_FILE = '''"""Label smoothing (Szegedy et al., CVPR 2016, §7): a method in one file, for the test."""

from dataclasses import dataclass

import torch.nn.functional as F

from curriculum_bench.train.hooks import Hook, TrainState, register_method


@dataclass(frozen=True)
class LabelSmoothingConfig:
    epsilon: float = 0.1  # Szegedy et al.: 0.1 on ImageNet


@register_method("test_label_smoothing", LabelSmoothingConfig)
class LabelSmoothing(Hook):
    def __init__(self, cfg: LabelSmoothingConfig):
        self.cfg = cfg

    def loss(self, state: TrainState, idx, logits, y, loss):
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=self.cfg.epsilon)

    def epoch_log(self, state: TrainState) -> dict:
        return {"epsilon": self.cfg.epsilon}
'''


@pytest.fixture
def new_method_file(tmp_path, monkeypatch):
    """A method written as one new file of curricula/ (a folder added to the package's path, so
    the repository stays as it is), and nothing else edited."""
    from curriculum_bench import curricula

    (tmp_path / "test_label_smoothing.py").write_text(NEW_METHOD_FILE)
    monkeypatch.setattr(curricula, "__path__", [*curricula.__path__, str(tmp_path)])
    yield "test_label_smoothing"
    METHODS._entries.pop("test_label_smoothing", None)
    sys.modules.pop("curriculum_bench.curricula.test_label_smoothing", None)


def test_a_method_in_a_new_file_is_built_listed_and_trained_without_editing_a_list(
    new_method_file, digits_store, tmp_path, capsys
):
    (hook,) = build_hooks({new_method_file: {"epsilon": 0.2}})
    assert hook.name == new_method_file and hook.cfg.epsilon == 0.2

    cli.main(["list"])
    methods = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("methods: "))
    assert new_method_file in methods.removeprefix("methods: ").split(", ")

    fit(tiny_run({new_method_file: {}}, epochs=1), digits_store, tmp_path / "run", tmp_path / "c.pt", device="cpu")
    (record,) = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert record[f"{new_method_file}/epsilon"] == 0.1
