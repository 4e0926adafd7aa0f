import pytest
import torch

from curriculum_bench.train.config import TrainConfig
from curriculum_bench.train.schedule import lr_factor


def mlt_scheduler_lrs(lr: float, epochs: int) -> list[float]:
    """The LR per epoch of MLT's SequentialLR(LinearLR warm-up, CosineAnnealingLR), docs/methods.md §2.1."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=lr)
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-3, total_iters=3)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3, eta_min=lr / 10)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[3])
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_cosine_matches_the_pytorch_schedulers_mlt_chains():
    cfg = TrainConfig(lr=0.01)
    ours = [cfg.lr * lr_factor(e, cfg) for e in range(10)]
    assert ours == pytest.approx(mlt_scheduler_lrs(0.01, 10), rel=1e-9, abs=1e-12)


def test_warmup_starts_at_start_factor_and_cosine_oscillates_past_t_max():
    cfg = TrainConfig()
    assert lr_factor(0, cfg) == pytest.approx(1e-3)
    assert lr_factor(3, cfg) == pytest.approx(1.0)  # warm-up done, cosine at its top
    assert lr_factor(6, cfg) == pytest.approx(0.1)  # T_max later: eta_min
    assert lr_factor(9, cfg) == pytest.approx(1.0)  # and back up (period 2 T_max)


def test_constant_schedule_is_one_everywhere():
    cfg = TrainConfig(schedule="constant")
    assert {lr_factor(e, cfg) for e in range(20)} == {1.0}


@pytest.mark.parametrize(
    "key, value",
    [
        ("epochs", 0),
        ("batch_size", -1),
        ("lr", 0.0),
        ("optimizer", "lamb"),
        ("schedule", "poly"),
        ("milestones", [5, 3]),
        ("gamma", 0.0),
    ],
)
def test_train_config_rejects_bad_values_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{key: value})


def test_multistep_matches_pytorch_multisteplr():
    cfg = TrainConfig(schedule="multistep", milestones=(3, 5), gamma=0.1, epochs=8)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 5], gamma=0.1)
    expected = []
    for _ in range(8):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [0.1 * lr_factor(e, cfg) for e in range(8)] == pytest.approx(expected, rel=1e-12)


def test_cosine_decays_once_from_one_to_min_after_warmup():
    cfg = TrainConfig(schedule="cosine", epochs=11, warmup_epochs=1, min_lr_factor=0.0)
    assert lr_factor(1, cfg) == pytest.approx(1.0)
    assert lr_factor(6, cfg) == pytest.approx(0.5)
    assert [lr_factor(e, cfg) for e in range(1, 11)] == sorted([lr_factor(e, cfg) for e in range(1, 11)], reverse=True)
