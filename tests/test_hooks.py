"""The hook interface (train/hooks.py): one signature convention for every moment and one enum
of random streams."""

import inspect

import torch

from curriculum_bench import curricula  # noqa: F401  (fills METHODS)
from curriculum_bench.train.hooks import METHODS, Hook, Stream, seeded_generator

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
    for name in METHODS:
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
