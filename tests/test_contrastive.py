"""Weighted NT-Xent, its mu schedules, the SimCLR hook and linear evaluation (docs/methods.md §3)."""

import json
import math

import pytest
import torch

from curriculum_bench.config import ConfigError
from curriculum_bench.contrastive import linear_probe as linear_probe_module
from curriculum_bench.contrastive.linear_probe import ProbeConfig, linear_probe, probe_run, stratified_split
from curriculum_bench.contrastive.simclr import SimCLRConfig, interleave_views
from curriculum_bench.contrastive.weighted_ntxent import mean_at, negative_weights, nt_xent_reference, weighted_nt_xent
from curriculum_bench.models import create_model
from curriculum_bench.models.simclr import strip_classifier
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import build_hooks
from curriculum_bench.train.speed import Speed

from .conftest import tiny_run

# Four views in 2-D: (v0, v1) and (v2, v3) are the positive pairs.
VIEWS = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)


def test_large_sigma_with_normalisation_equals_nt_xent():
    z = torch.randn(16, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weighted = weighted_nt_xent(z, temperature=0.1, mean=0.3, sigma=1e6)
    assert torch.allclose(weighted, nt_xent_reference(z, 0.1), atol=1e-9)
    assert torch.allclose(weighted_nt_xent(z, 0.1, sigma=None), nt_xent_reference(z, 0.1), atol=1e-12)


def test_two_pair_batch_matches_the_hand_computed_loss():
    # tau 1, mu 0, sigma 1, normalised. Similarities: s01 = 1, s02 = 0, s03 = -1, s23 = 0, s12 = 0, s13 = -1.
    loss = weighted_nt_xent(VIEWS, temperature=1.0, mean=0.0, sigma=1.0)
    e = math.e
    # anchor 0 (and 1): positive s=1; negatives s=0 (alpha 1), s=-1 (alpha e^-1); rho = 2 / (1 + e^-1)
    rho = 2 / (1 + 1 / e)
    anchor0 = -math.log(e / (e + rho * (1 * 1 + (1 / e) * (1 / e))))
    anchor2 = math.log(3)  # positive s=0; negatives v0, v1 at s=0: alpha 1, rho 1
    anchor3 = math.log(1 + 2 / e)  # negatives at s=-1: alpha e^-1 each, rho = e
    expected = torch.tensor([anchor0, anchor0, anchor2, anchor3], dtype=torch.float64)
    assert torch.allclose(loss, expected, atol=1e-9)
    unnormalised = weighted_nt_xent(VIEWS, 1.0, 0.0, 1.0, normalization="none")
    assert unnormalised[0].item() == pytest.approx(-math.log(e / (e + 1 + (1 / e) ** 2)), abs=1e-9)


def test_weights_carry_no_gradient_and_use_sigma_squared():
    sim = torch.tensor([[0.5]], requires_grad=True)
    alpha = negative_weights(sim, mean=0.0, sigma=0.5)
    assert not alpha.requires_grad
    assert alpha.item() == pytest.approx(math.exp(-0.25 / 0.25))  # exp(-(s-mu)^2 / sigma^2), no factor 2
    z = VIEWS.clone().requires_grad_(True)
    weighted_nt_xent(z, 1.0, 0.0, 1.0).mean().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_out_of_range_similarities_are_down_weighted():
    alpha = negative_weights(torch.tensor([[0.9, 0.1]]), mean=0.0, sigma=1e6, b_l=0.0, b_u=0.5)
    assert alpha.tolist()[0] == pytest.approx([1e-3, 1.0])


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("linear", [-1.0, -0.5, 0.0, 0.5, 1.0, 1.0, 1.0]),  # steps 4: then constant at end
        ("constant", [-1.0] * 7),
        ("exponential", [1 + (-1 - 1) * 0.5**t for t in range(7)]),  # never reaches end
    ],
)
def test_deterministic_mean_schedules_per_epoch(schedule, expected):
    values = [
        mean_at(schedule, epoch=t, step=0, seed=0, begin=-1.0, end=1.0, steps=4, factor=0.5, const_value=0.8)
        for t in range(7)
    ]
    assert values == pytest.approx(expected)


def test_random_schedules_are_uniform_in_range_and_reproducible():
    def mu(schedule, epoch, step=0, seed=0):
        return mean_at(schedule, epoch, step, seed, -0.6, 0.6, 2, 0.99, 0.8)

    per_epoch = [mu("random", t) for t in range(20)]
    assert all(-0.6 <= v <= 0.6 for v in per_epoch) and len(set(per_epoch)) == 20
    assert per_epoch == [mu("random", t) for t in range(20)]  # same seed, same draws
    assert mu("random", 3, step=0) == mu("random", 3, step=99)  # fixed within an epoch
    assert mu("random_every_iter", 3, step=0) != mu("random_every_iter", 3, step=1)
    assert mu("random", 0, seed=1) != mu("random", 0, seed=0)
    # RandomThenConst stays random for steps + 1 epochs (0, 1, 2), then holds const_value
    assert [mu("random_then_const", t) for t in (3, 4)] == [0.8, 0.8]
    assert mu("random_then_const", 2) == mu("random", 2)


def test_views_are_interleaved_as_positive_pairs():
    first, second = torch.arange(3).float().view(3, 1), 10 + torch.arange(3).float().view(3, 1)
    assert interleave_views(first, second).flatten().tolist() == [0, 10, 1, 11, 2, 12]


@pytest.mark.parametrize(
    "key, value",
    [("temperature", 0), ("sigma", -1.0), ("mean_schedule", "cosine"), ("weight_normalization", "sum"), ("b_l", 2.0)],
)
def test_simclr_config_rejects_bad_values_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        SimCLRConfig(**{key: value})


def test_an_unknown_view_op_is_named():
    # The views are built with the config (SimCLRConfig), so the method's settings are refused
    # wherever they are read: when the workflow is parsed, and when a job builds its hooks.
    with pytest.raises(ConfigError, match=r"^methods\.simclr: views\[0\]\.op: unknown op 'rotate'"):
        build_hooks({"simclr": {"views": [{"op": "rotate"}]}})


def test_strip_classifier_removes_the_last_linear():
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    body, width = strip_classifier(model)
    assert width == 64 * 4 * 4 and body(torch.zeros(2, 1, 8, 8)).flatten(1).shape == (2, width)


def test_a_pooled_encoder_gives_simclr_the_channel_means_as_h():
    model = create_model("simclr", (1, 8, 8), 10, encoder="mlt_convnet", encoder_args={"global_pool": True})
    x = torch.randn(3, 1, 8, 8)
    encoder = model.encoder
    spatial = encoder.drop2(encoder.block2(encoder.drop1(encoder.block1(x))))
    assert model.projection.in_features == 64
    torch.testing.assert_close(model.features(x), spatial.mean(dim=(2, 3)))


def test_stratified_split_holds_out_the_fraction_of_every_class():
    labels = torch.tensor([0] * 50 + [1] * 30)
    fit_idx, val_idx = stratified_split(labels, 0.1, seed=0)
    assert sorted(torch.cat([fit_idx, val_idx]).tolist()) == list(range(80))
    assert (labels[val_idx] == 0).sum() == 5 and (labels[val_idx] == 1).sum() == 3


def test_linear_probe_chooses_the_weight_decay_best_on_validation():
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 4, generator=generator) + 3 * y[:, None].float()  # separable classes
    cfg = ProbeConfig(weight_decays=(1e-6, 10.0), epochs=30, batch_size=50, lr=0.05)
    result = linear_probe(x, y, x, y, 2, cfg)
    assert result["weight_decay"] == 1e-6  # weight decay 10 collapses the classifier
    assert result["val_acc_per_weight_decay"]["1e-06"] > result["val_acc_per_weight_decay"]["10.0"]
    assert result["test_acc"] > 0.95


DIGIT_VIEWS = [
    {"op": "random_resized_crop", "size": 8, "scale": [0.5, 1.0]},
    {"op": "gaussian_blur", "kernel_size": 3, "sigma": [0.1, 1.0], "p": 0.5},
]


def simclr_run(epochs=2, **simclr):
    run = tiny_run(
        {"simclr": {"views": DIGIT_VIEWS, **simclr}},
        epochs=epochs,
        schedule="constant",
        optimizer="adam",
        lr=1e-3,
        weight_decay=1e-6,
    )
    run.update(study="contrastive", model="simclr", model_args={"encoder": "mlt_convnet", "projection_dim": 32})
    return run


def test_pretraining_resumes_exactly_and_the_probe_scores_it(digits_store, tmp_path):
    run = simclr_run(
        epochs=3, sigma=0.5, mean_schedule="linear", mean_begin=-1.0, mean_end=1.0, mean_steps=2, probe_epochs=[1]
    )
    full = fit(run, digits_store, tmp_path / "full", tmp_path / "full.pt", device="cpu")
    assert fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu", stop_after_epoch=1) is None
    resumed = fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu")
    history = [json.loads(line) for line in (tmp_path / "cut/history.jsonl").read_text().splitlines()]
    full_history = [json.loads(line) for line in (tmp_path / "full/history.jsonl").read_text().splitlines()]
    assert [r["simclr/contrastive_loss"] for r in history] == [r["simclr/contrastive_loss"] for r in full_history]
    assert [r["simclr/mean"] for r in history] == [-1.0, 0.0, 1.0]
    assert resumed["final_acc"] == full["final_acc"] and 0 <= history[0]["train_acc"] <= 1
    summary = probe_run(
        tmp_path / "full",
        digits_store,
        tmp_path / "full/probe_metrics.json",
        {"epochs": 20, "weight_decays": [1e-6, 1e-3]},
        device="cpu",
    )
    assert summary["probe"]["weight_decay"] in (1e-6, 1e-3)
    assert summary["final_acc"] > 0.5  # chance is 0.1; a linear probe on conv features does far better
    assert summary["eval_split"] == "test, linear probe" and summary["online_probe_final_acc"] == full["final_acc"]
    # The snapshot after epoch 1 (written before the stop, kept across the resume) is scored too.
    assert (tmp_path / "cut/snapshots/epoch1.pt").exists() and not (tmp_path / "full/snapshots/epoch3.pt").exists()
    assert list(summary["probe_per_epoch"]) == ["1", "3"] and summary["probe_per_epoch"]["3"] == summary["final_acc"]


def test_the_probe_embeds_at_the_precision_and_layout_its_run_trained_at(digits_store, tmp_path, monkeypatch):
    run = simclr_run(epochs=1)
    run["train"].update(precision="bf16", channels_last=True)
    fit(run, digits_store, tmp_path / "run", tmp_path / "run.pt", device="cpu")
    embedded_at = []

    def recording_run_model(model, x, speed):
        embedded_at.append(speed)
        return run_model(model, x, speed)

    run_model = linear_probe_module.run_model
    monkeypatch.setattr(linear_probe_module, "run_model", recording_run_model)
    summary = probe_run(tmp_path / "run", digits_store, tmp_path / "probe.json", {"epochs": 1}, device="cpu")
    assert embedded_at and set(embedded_at) == {Speed(bf16=True, channels_last=True)}
    assert summary["speed"]["bf16"] and summary["speed"]["channels_last"]


def test_simclr_needs_the_simclr_model(digits_store, tmp_path):
    run = simclr_run()
    run["model"], run["model_args"] = "mlt_convnet", {}
    with pytest.raises(ConfigError, match="needs the `simclr` model"):
        fit(run, digits_store, tmp_path / "r", tmp_path / "c.pt", device="cpu")
