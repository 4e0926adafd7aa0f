"""The hook interface (train/hooks.py): one enum of random streams."""

import torch

from curriculum_bench.train.hooks import Stream, seeded_generator


def test_each_random_stream_draws_its_own_numbers_and_the_engine_keeps_its_values():
    # The engine's order and augmentation and the `augment` method draw as they always have:
    # their runs' measured numbers depend on these values.
    assert (Stream.ORDER, Stream.AUGMENT, Stream.AUGMENT_METHOD) == (0, 1, 3)
    assert len({int(stream) for stream in Stream}) == len(Stream)
    draws = {stream: torch.rand(8, generator=seeded_generator(7, 3, stream)) for stream in Stream}
    assert len({tuple(d.tolist()) for d in draws.values()}) == len(Stream)
    assert torch.equal(torch.rand(8, generator=seeded_generator(7, 3, Stream.BLUR)), draws[Stream.BLUR])
