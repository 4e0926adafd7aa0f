"""Data parameters (docs/methods.md §4): the maths against hand-computed cases, then the hook at its
moments, then short runs through the engine on sklearn's digits."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from curriculum_bench.config import ConfigError, config_from_dict
from curriculum_bench.curricula.data_parameters import (
    SIGMA_MAX,
    SIGMA_MIN,
    DataParameters,
    DataParametersConfig,
    SparseSGD,
    log_space_penalty,
    minibatch_sigma,
    scaled_cross_entropy,
    snapshot_epochs,
)
from curriculum_bench.data.derive import derive
from curriculum_bench.models import create_model
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import TrainState

from .conftest import tiny_run
from .test_engine import results_only


def test_sparse_sgd_moves_touched_entries_with_momentum_and_freezes_the_rest():
    p = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    opt = SparseSGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.tensor([0.5, 0.0, -1.0])
    opt.step()
    # First step: buffer = gradient; entry 1 has no gradient and stays.
    assert p.tolist() == pytest.approx([0.95, 2.0, 3.1])
    assert opt.state[p]["momentum_buffer"].tolist() == pytest.approx([0.5, 0.0, -1.0])
    p.grad = torch.tensor([0.0, 2.0, 1.0])
    opt.step()
    # Entry 0 is absent now: plain SGD would move it to 0.95 - 0.1 * 0.45 = 0.905 and decay its
    # buffer to 0.45; SparseSGD leaves both exactly as they were.
    # Entry 1: buf = 0.9 * 0 + 2 = 2, p = 2 - 0.2. Entry 2: buf = 0.9 * -1 + 1 = 0.1, p = 3.1 - 0.01.
    assert p.tolist() == pytest.approx([0.95, 1.8, 3.09])
    assert opt.state[p]["momentum_buffer"].tolist() == pytest.approx([0.5, 2.0, 0.1])
    assert p[0].item() == torch.tensor(0.95).item()  # bit-exact, not just close


def test_sparse_sgd_rejects_bad_rates():
    with pytest.raises(ValueError, match="lr > 0"):
        SparseSGD([torch.zeros(2, requires_grad=True)], lr=0.0)


def test_scaled_loss_with_unit_sigma_is_plain_cross_entropy():
    logits, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    assert torch.equal(scaled_cross_entropy(logits, y, torch.ones(5)), F.cross_entropy(logits, y, reduction="none"))


def test_scaled_loss_divides_logits_by_the_sample_temperature():
    logits, y = torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 0])
    # sigma 2 turns logits (2, 0) into (1, 0): CE = log(1 + e^-1).
    loss = scaled_cross_entropy(logits, y, torch.tensor([1.0, 2.0]))
    assert loss.tolist() == pytest.approx([math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1))])


def test_minibatch_sigma_adds_class_and_instance_temperatures_when_joint():
    class_log, inst_log = torch.log(torch.tensor([2.0, 0.5])), torch.log(torch.tensor([0.1, 0.2, 0.3]))
    y, idx = torch.tensor([0, 1]), torch.tensor([2, 0])
    assert minibatch_sigma(class_log, inst_log, y, idx).tolist() == pytest.approx([2.3, 0.6])
    assert minibatch_sigma(class_log, None, y, idx).tolist() == pytest.approx([2.0, 0.5])
    assert minibatch_sigma(None, inst_log, y, idx).tolist() == pytest.approx([0.3, 0.1])


def test_penalty_is_l2_in_log_space_over_batch_members_with_classes_counted_per_sample():
    class_log = torch.tensor([math.log(2), math.log(0.5), 0.0])
    inst_log = torch.tensor([0.1, -0.2, 0.3, 0.4])
    y, idx = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 3])
    penalty = log_space_penalty(class_log, inst_log, y, idx, wd_class=0.01, wd_inst=0.1)
    ln2sq = math.log(2) ** 2
    # instance: 0.5 * 0.1 * (0.1², 0.2², 0.4²); class: 0.5 * 0.01 * (ln 2)² for each of 3 samples
    # (class 0 appears twice and is penalised twice; class 2 and instance 2 are not in the batch).
    assert penalty.tolist() == pytest.approx(
        [0.05 * 0.01 + 0.005 * ln2sq, 0.05 * 0.04 + 0.005 * ln2sq, 0.05 * 0.16 + 0.005 * ln2sq]
    )
    assert penalty.sum().item() == pytest.approx(0.0105 + 0.015 * ln2sq)
    assert log_space_penalty(class_log, None, y, idx, 0.01, 0.1).sum().item() == pytest.approx(0.015 * ln2sq)


@pytest.mark.parametrize(
    "values, name",
    [
        ({}, "learn_class and learn_inst are both false"),
        ({"learn_inst": True, "lr_inst": 0.0}, "lr_inst must be > 0"),
        ({"learn_inst": True, "init_inst": 0.0}, "init_inst must be > 0"),
        ({"learn_class": True, "wd_class": -1e-4}, "wd_class must be >= 0"),
        ({"learn_class": True, "momentum": 1.0}, "momentum must be in"),
        ({"learn_class": True, "lr": 0.1}, r"methods\.data_parameters\.lr: unknown key"),
    ],
)
def test_config_rejects_bad_settings_by_name(values, name):
    with pytest.raises(ConfigError, match=name):
        config_from_dict(DataParametersConfig, values, where="methods.data_parameters")


def hook_on(cfg: DataParametersConfig, num_samples: int = 6, num_classes: int = 3) -> DataParameters:
    model = torch.nn.Linear(2, num_classes)
    state = TrainState(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.device("cpu"),
        torch.arange(num_samples) % num_classes,
        num_classes,
        epochs=4,
    )
    hook = DataParameters(cfg)
    hook.on_fit_start(state)
    return hook


def hook_step(hook: DataParameters, logits, y, idx):
    hook.on_batch_start(None)
    hook.loss(None, idx, logits, y, F.cross_entropy(logits, y, reduction="none")).mean().backward()
    hook.after_step(None)


def test_hook_loss_with_initial_sigma_one_is_the_engine_cross_entropy():
    hook = hook_on(DataParametersConfig(learn_class=True, learn_inst=True, init_class=0.5, init_inst=0.5))
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert torch.allclose(
        hook.loss(None, torch.tensor([0, 1, 2, 3]), logits, y, None), F.cross_entropy(logits, y, reduction="none")
    )


def test_hook_batch_mean_is_mean_cross_entropy_plus_summed_penalty():
    """The engine averages the per-sample loss; the average must be DP's objective."""
    cfg = DataParametersConfig(
        learn_class=True, learn_inst=True, init_class=2.0, init_inst=0.5, wd_class=0.1, wd_inst=0.2
    )
    hook = hook_on(cfg)
    logits, y, idx = torch.randn(4, 3), torch.tensor([0, 1, 1, 0]), torch.tensor([5, 1, 4, 0])
    sigma = torch.full((4,), 2.5)
    penalty = 4 * (0.5 * 0.2 * math.log(0.5) ** 2 + 0.5 * 0.1 * math.log(2.0) ** 2)
    expected = F.cross_entropy(logits / 2.5, y) + penalty
    assert hook.loss(None, idx, logits, y, None).mean().item() == pytest.approx(expected.item())
    assert torch.allclose(
        scaled_cross_entropy(logits, y, sigma),
        hook.loss(None, idx, logits, y, None)
        - 4 * log_space_penalty(hook.class_log, hook.inst_log, y, idx, 0.1, 0.2).detach(),
    )


def test_hook_step_moves_only_batch_members_and_their_classes():
    hook = hook_on(DataParametersConfig(learn_class=True, learn_inst=True))
    hook_step(hook, torch.randn(2, 3), torch.tensor([0, 2]), torch.tensor([3, 5]))
    moved_inst = (hook.inst_log != 0).nonzero().flatten().tolist()
    moved_class = (hook.class_log != 0).nonzero().flatten().tolist()
    assert moved_inst == [3, 5] and moved_class == [0, 2]


def test_clamp_keeps_sigma_within_one_twentieth_and_twenty():
    hook = hook_on(DataParametersConfig(learn_class=True, learn_inst=True, lr_class=1e4, lr_inst=1e4))
    for _ in range(3):
        hook_step(hook, torch.randn(6, 3) * 10, torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(6))
    for log_sigma in (hook.class_log, hook.inst_log):
        sigma = log_sigma.detach().exp()
        assert (sigma >= SIGMA_MIN * (1 - 1e-6)).all() and (sigma <= SIGMA_MAX * (1 + 1e-6)).all()
    assert {round(s, 3) for s in hook.inst_log.detach().exp().tolist()} <= {0.05, 20.0}


def test_clamp_lifts_every_instance_sigma_from_a_tiny_init_after_the_first_step():
    """docs/methods.md §8: with the README's joint init 0.001, even samples outside the batch go to 0.05."""
    hook = hook_on(DataParametersConfig(learn_class=True, learn_inst=True, init_inst=0.001))
    hook_step(hook, torch.randn(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert hook.inst_log.detach().exp()[2:].tolist() == pytest.approx([SIGMA_MIN] * 4)
    unclamped = hook_on(DataParametersConfig(learn_class=True, learn_inst=True, init_inst=0.001, clamp=False))
    hook_step(unclamped, torch.randn(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert unclamped.inst_log.detach().exp()[2:].tolist() == pytest.approx([0.001] * 4)


def test_snapshot_epochs_are_first_quarters_and_last():
    assert snapshot_epochs(120) == [1, 30, 60, 90, 120]
    assert snapshot_epochs(2) == [1, 2]


@pytest.fixture(scope="module")
def noisy_digits(digits_store, tmp_path_factory):
    """The digits with DP's permute_first noise on the first 40 % (574 of 1,437 samples)."""
    out = tmp_path_factory.mktemp("noisy_digits")
    derive(
        "digits_noisy40",
        {
            "source": "derived",
            "from": "digits_sklearn",
            "label_noise": {"mode": "permute_first", "fraction": 0.4, "seed": 0},
        },
        digits_store,
        out,
    )
    return out


def dp_run(methods: dict, epochs: int, seed: int = 0) -> dict:
    # fp32 NCHW whatever the CPU: the evaluation check recomputes the test loss in fp32 eager
    return tiny_run(
        methods,
        epochs=epochs,
        seed=seed,
        optimizer="sgd",
        lr=0.05,
        weight_decay=5e-4,
        schedule="constant",
        precision="fp32",
        channels_last=False,
    )


def test_data_parameters_are_unused_at_evaluation(noisy_digits, tmp_path):
    run = dp_run({"data_parameters": {"learn_class": True, "lr_class": 50.0}}, epochs=1)
    fit(run, noisy_digits, tmp_path / "run", tmp_path / "run.pt", device="cpu")
    class_sigma = torch.from_numpy(np.load(tmp_path / "run/data_parameters.npz")["class_sigma"])
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    model.load_state_dict(torch.load(tmp_path / "run/final_model.pt"))
    model.eval()
    from curriculum_bench.data.store import load_split

    test = load_split(noisy_digits, "test")
    y = torch.from_numpy(np.asarray(test.labels))
    with torch.no_grad():
        logits = model(torch.from_numpy(np.asarray(test.images)).float() / 255)
    raw = F.cross_entropy(logits, y).item()
    scaled = scaled_cross_entropy(logits, y, class_sigma[y]).mean().item()
    assert abs(scaled - raw) > 0.05  # the learned temperatures would change the test loss ...
    history = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert history[-1]["eval_loss"] == pytest.approx(raw, rel=1e-5)  # ... but evaluation ignores them


def test_resume_after_stop_matches_uninterrupted_run_on_cpu(noisy_digits, tmp_path):
    run = dp_run(
        {
            "data_parameters": {
                "learn_class": True,
                "learn_inst": True,
                "init_inst": 0.001,
                "wd_class": 1e-4,
                "wd_inst": 1e-8,
            }
        },
        epochs=4,
    )
    full = fit(run, noisy_digits, tmp_path / "full", tmp_path / "full.pt", device="cpu")
    assert fit(run, noisy_digits, tmp_path / "cut", tmp_path / "cut.pt", device="cpu", stop_after_epoch=2) is None
    resumed = fit(run, noisy_digits, tmp_path / "cut", tmp_path / "cut.pt", device="cpu")
    assert resumed["resumed_at"] == [[2, 0]]
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    assert (resumed["final_acc"], resumed["best_acc"]) == (full["final_acc"], full["best_acc"])
    a, b = np.load(tmp_path / "full/data_parameters.npz"), np.load(tmp_path / "cut/data_parameters.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert np.array_equal(a[key], b[key]), key
    assert list(a["snapshot_epochs"]) == snapshot_epochs(4) and a["inst_sigma_snapshots"].shape == (4, 1437)


@pytest.mark.parametrize("seed", [0, 1])
def test_instance_sigma_grows_on_corrupted_samples_under_label_noise(noisy_digits, tmp_path, seed):
    """The paper's mechanism, measured: mislabelled samples learn higher temperatures.
    (6 epochs, lr_inst 0.2 as DP's README; seeds 0-4 all give ~1.1 vs ~0.94 at 10 epochs.)"""
    run = dp_run({"data_parameters": {"learn_inst": True, "lr_inst": 0.2}}, epochs=6, seed=seed)
    fit(run, noisy_digits, tmp_path / "run", tmp_path / "run.pt", device="cpu")
    saved = np.load(tmp_path / "run/data_parameters.npz")
    corrupted, sigma = saved["corrupted"], saved["inst_sigma"]
    assert corrupted.sum() == int(1437 * 0.4) and corrupted[:574].all()
    assert sigma[corrupted].mean() > sigma[~corrupted].mean() + 0.05
    assert np.median(sigma[corrupted]) > np.median(sigma[~corrupted])
    last = json.loads((tmp_path / "run/history.jsonl").read_text().splitlines()[-1])
    assert last["data_parameters/inst_sigma_corrupted_mean"] == pytest.approx(float(sigma[corrupted].mean()))


def fake_dp_run(tmp_path, variant, seed, corrupted, snapshots):
    """A finished run folder as the engine and the hook leave it."""
    folder = tmp_path / variant / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "study": "data_parameters",
                "dataset": "toy_noisy",
                "model": "m",
                "variant": variant,
                "seed": seed,
                "eval_split": "test",
            }
        )
    )
    records = [
        {
            "epoch": e + 1,
            "eval_acc": 0.5,
            "data_parameters/class_sigma": [1.0 + e, 1.0 / (1 + e)],
            "data_parameters/inst_sigma_clean_mean": 1.0,
            "data_parameters/inst_sigma_corrupted_mean": 1.0 + e,
        }
        for e in range(3)
    ]
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    np.savez(
        folder / "data_parameters.npz",
        corrupted=corrupted,
        inst_sigma=snapshots[-1],
        snapshot_epochs=np.arange(1, len(snapshots) + 1),
        inst_sigma_snapshots=np.stack(snapshots),
    )
    return folder / "metrics.json"


def test_dp_figures_show_clean_and_corrupted_instance_sigma_per_snapshot_epoch(tmp_path):
    from curriculum_bench.report.figures import figure_names, load_runs
    from curriculum_bench.report.figures_data_parameters import class_sigma, instance_sigma_histogram

    corrupted = np.array([True, True, False, False, False])
    snapshots = [np.ones(5, dtype=np.float32), np.array([3.0, 2.0, 0.9, 0.8, 1.0], dtype=np.float32)]
    runs = load_runs([fake_dp_run(tmp_path, "instance", 0, corrupted, snapshots)])
    assert {"instance_sigma_histogram", "class_sigma", "instance_sigma_mean"} <= set(figure_names("data_parameters"))
    fig = instance_sigma_histogram(runs)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().split(", ")[-1] for ax in axes] == ["epoch 1", "epoch 2"]
    # Two histograms per panel (clean, corrupted) whose bar heights count 3 and 2 samples.
    heights = [sum(p.get_height() for p in container) for container in axes[1].containers]
    assert heights == [3, 2]
    lines = class_sigma(runs).axes[0].get_lines()
    assert list(lines[0].get_ydata()) == [1.0, 2.0, 3.0] and list(lines[-1].get_ydata()) == pytest.approx(
        [1.0, 1.25, 1 + 2 / 3]
    )
