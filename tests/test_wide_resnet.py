"""WRN-28-10 as the data-parameters code builds it (DP:models/wide_resnet.py)."""

import pytest
import torch

from curriculum_bench.models import create_model


def test_wrn28_10_has_dp_parameter_count_for_cifar100():
    model = create_model("wrn28_10", (3, 32, 32), 100)
    # 36.5 M: conv biases included, as DP's (meliketoy's) file has them.
    assert sum(p.numel() for p in model.parameters()) == 36_546_980


def test_wide_resnet_keeps_the_spatial_plan_on_small_inputs():
    model = create_model("wrn28_10", (1, 8, 8), 10, depth=10, widen=2, dropout=0.3)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert len(model.layer1) == 1 and model.layer3[0].conv2.stride == (2, 2)


def test_wide_resnet_rejects_a_depth_that_is_not_6n_plus_4():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
        create_model("wrn28_10", (3, 32, 32), 10, depth=27)
