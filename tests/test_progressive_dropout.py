"""Progressive dropout: MLT's per-epoch linear ramp and Curriculum Dropout's per-iteration decay."""

import json
import math

import pytest
import torch

from curriculum_bench.config import ConfigError
from curriculum_bench.curricula.progressive_dropout import (
    curriculum_retain,
    linear_epoch_p,
)
from curriculum_bench.models import create_model
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import TrainState, build_hooks

from .conftest import tiny_run


@pytest.mark.parametrize("epoch, expected", [(0, 0.0), (1, 0.25), (2, 0.5), (5, 0.5)])
def test_linear_epoch_ramps_readme_values_and_holds_at_end(epoch, expected):
    assert linear_epoch_p(epoch, 0.0, 0.5, 2) == pytest.approx(expected)


def test_linear_epoch_with_the_script_values_reaches_p_one():
    """MLT script: 0.05 -> 1.0 over 2 epochs gives 0.05, 0.525, 1.0 (the bug, docs/methods.md §2.3)."""
    assert [linear_epoch_p(e, 0.05, 1.0, 2) for e in range(3)] == pytest.approx([0.05, 0.525, 1.0])


@pytest.mark.parametrize(
    "step, target, expected",
    [
        (0, 0.75, 1.0),  # no dropout at the start
        (1000, 0.75, 0.25 * math.exp(-1) + 0.75),  # 0.84197...
        (693, 0.5, 0.5 * math.exp(-0.693) + 0.5),  # about halfway to the target
        (100_000, 0.9, 0.9),  # converged to θ̄
    ],
)
def test_curriculum_retain_follows_eq7(step, target, expected):
    assert curriculum_retain(step, target, 1e-3) == pytest.approx(expected, abs=1e-12)


def test_annealed_control_starts_at_the_target_and_rises_to_one():
    assert curriculum_retain(0, 0.5, 1e-3, "anneal") == pytest.approx(0.5)
    assert curriculum_retain(1000, 0.5, 1e-3, "anneal") == pytest.approx(1 - 0.5 * math.exp(-1))


def make_state(model, epoch=0, step=0):
    return TrainState(model, None, torch.device("cpu"), torch.zeros(1, dtype=torch.long), 10, 5, epoch=epoch, step=step)


def test_hook_sets_p_per_layer_kind_at_the_step():
    model = create_model("mlt_convnet", (1, 8, 8), 10, input_dropout=True, fc_dropout=True)
    (hook,) = build_hooks({"progressive_dropout": {"schedule": "exp_iter", "gamma": 1e-3}})
    state = make_state(model, step=1000)
    hook.on_fit_start(state)
    hook.on_batch_start(state)
    decay = math.exp(-1)
    assert model.drop_in.p == pytest.approx(0.1 * (1 - decay))
    assert model.drop1.p == model.drop2.p == pytest.approx(0.25 * (1 - decay))
    assert model.drop_fc.p == pytest.approx(0.5 * (1 - decay))
    assert hook.epoch_log(state)["p_fc"] == pytest.approx(0.5 * (1 - decay))


def test_linear_epoch_sets_every_dropout_at_epoch_start_and_ignores_steps():
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    (hook,) = build_hooks({"progressive_dropout": {}})
    state = make_state(model, epoch=1, step=777)
    hook.on_fit_start(state)
    hook.on_epoch_start(state)
    hook.on_batch_start(state)
    assert model.drop1.p == model.drop2.p == pytest.approx(0.25)
    assert set(hook.epoch_log(state)) == {"p_conv"}  # the MLT network has conv dropout only


def test_linear_epoch_drives_only_the_conv_dropout_the_catalogue_drives():
    """paper.yaml's techniques model has input and fc dropout (for curriculum_dropout); MLT's
    callback sets only the Dropout2d modules in `dropout_mem`. Script values 0.05 -> 1.0 over
    2 epochs, by hand: p = 0.05 + e / 2 * 0.95, so 0.525 at epoch 1 and 1.0 at epoch 2, conv only."""
    model = create_model("mlt_convnet", (1, 8, 8), 10, input_dropout=True, fc_dropout=True)
    (hook,) = build_hooks(
        {"progressive_dropout": {"schedule": "linear_epoch", "start": 0.05, "end": 1.0, "end_epoch": 2}}
    )
    for epoch, conv_p in ((1, 0.525), (2, 1.0)):
        state = make_state(model, epoch=epoch, step=100 * epoch)
        hook.on_fit_start(state)
        hook.on_epoch_start(state)
        hook.on_batch_start(state)
        assert model.drop1.p == model.drop2.p == pytest.approx(conv_p)
        assert model.drop_in.p == 0.0 and model.drop_fc.p == 0.0
        assert hook.epoch_log(state) == {"p_conv": pytest.approx(conv_p)}
    model.train()
    x = torch.rand(2, 1, 8, 8)
    torch.manual_seed(0)
    assert torch.equal(model.drop_in(x), x)  # the input reaches the network at epoch 2


def test_optional_dropout_modules_leave_the_mlt_network_unchanged():
    torch.manual_seed(0)
    plain = create_model("mlt_convnet", (1, 8, 8), 10)
    torch.manual_seed(0)
    extended = create_model("mlt_convnet", (1, 8, 8), 10, input_dropout=True, fc_dropout=True)
    assert plain.state_dict().keys() == extended.state_dict().keys()
    x = torch.rand(4, 1, 8, 8)
    torch.manual_seed(1)
    out_plain, draw_plain = plain(x), torch.rand(1)
    torch.manual_seed(1)
    out_ext, draw_ext = extended(x), torch.rand(1)
    assert torch.equal(out_plain, out_ext) and torch.equal(draw_plain, draw_ext)  # p = 0 draws nothing


def test_exp_iter_needs_a_target_for_every_dropout_kind_of_the_model():
    model = create_model("mlt_convnet", (1, 8, 8), 10, fc_dropout=True)
    (hook,) = build_hooks({"progressive_dropout": {"schedule": "exp_iter", "retain": {"conv": 0.75}}})
    with pytest.raises(ValueError, match="retain: no target for the model's 'fc'"):
        hook.on_fit_start(make_state(model))


@pytest.mark.parametrize(
    "args, key",
    [
        ({"schedule": "cosine"}, "schedule"),
        ({"end": 1.5}, "end"),
        ({"start": 0.6, "end": 0.5}, "start"),
        ({"end_epoch": 0}, "end_epoch"),
        ({"gamma": 0}, "gamma"),
        ({"retain": {"conv": 0}}, "retain.conv"),
        ({"retain": {"attention": 0.5}}, "retain.attention"),
        ({"direction": "up"}, "direction"),
    ],
)
def test_bad_settings_are_rejected_by_name(args, key):
    with pytest.raises(ConfigError, match=key):
        build_hooks({"progressive_dropout": args})


def test_run_logs_p_per_epoch(digits_store, tmp_path):
    run = tiny_run({"progressive_dropout": {"start": 0.1, "end": 0.3, "end_epoch": 2}}, epochs=3)
    fit(run, digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu")
    history = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert [r["progressive_dropout/p_conv"] for r in history] == pytest.approx([0.1, 0.2, 0.3])


def test_schedules_figure_draws_dropout_p_and_pseudo_label_share(tmp_path):
    from curriculum_bench.report.figures import figure_names, load_runs
    from curriculum_bench.report.figures_techniques import schedules

    def fake(variant, records):
        folder = tmp_path / variant
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"study": "techniques", "variant": variant, "seed": 0}))
        (folder / "history.jsonl").write_text(
            "".join(json.dumps({"epoch": i + 1, **r}) + "\n" for i, r in enumerate(records))
        )
        return folder / "metrics.json"

    runs = load_runs(
        [
            fake("pd", [{"progressive_dropout/p_conv": p} for p in (0.0, 0.25, 0.5)]),
            fake("sl", [{"self_labeling/pool_fraction_used": f} for f in (0.0, 0.5)]),
            fake("baseline", [{}, {}]),
        ]
    )
    dropout_ax, pool_ax = schedules(runs).axes
    assert list(dropout_ax.get_lines()[0].get_ydata()) == pytest.approx([0.0, 0.25, 0.5])
    assert list(pool_ax.get_lines()[0].get_ydata()) == pytest.approx([0.0, 50.0])
    assert "schedules" in figure_names("techniques")
