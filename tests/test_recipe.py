"""The hybrid repository's training recipe: mixed batches and their soft targets, RandAugment,
AutoAugment, random erasing, weight-decay groups, gradient clipping and accumulation
(train/recipe.py, data/policies.py, data/augment.py `mix_batch`)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from curriculum_bench.config import ConfigError
from curriculum_bench.data import policies
from curriculum_bench.data.augment import MixConfig, _paste, cutmix_box, mix_batch, smoothed_one_hot
from curriculum_bench.data.policy_config import RandAugmentConfig
from curriculum_bench.report.table import recipe_label
from curriculum_bench.train.config import TrainConfig
from curriculum_bench.train.engine import build_optimizer, fit
from curriculum_bench.train.recipe import (
    check_recipe,
    classification_loss,
    clip_gradients,
    no_decay_parameters,
    soft_cross_entropy,
    split_weight_decay,
)

from .conftest import tiny_run
from .test_engine import results_only


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- soft targets and the loss they give ----------------------------------------------------


def test_smoothed_one_hot_puts_smoothing_over_classes_as_timm():
    # 3 classes, smoothing 0.3: off = 0.1, on = 1 - 0.3 + 0.1 = 0.8
    targets = smoothed_one_hot(torch.tensor([0, 2]), 3, 0.3)
    assert torch.allclose(targets, torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))


def test_mixed_targets_match_timm_mixup_target():
    from timm.data.mixup import mixup_target

    labels = torch.tensor([0, 1, 2, 1])
    for lam, smoothing in ((0.7, 0.0), (0.3, 0.1)):
        ours = smoothed_one_hot(labels, 3, smoothing)
        ours = ours * lam + ours.flip(0) * (1 - lam)
        assert torch.allclose(ours, mixup_target(labels, 3, lam, smoothing))


def test_soft_cross_entropy_of_a_hand_computed_case():
    # softmax([0, ln 3]) = [0.25, 0.75]; target [0.75, 0.25]: -(0.75 ln 0.25 + 0.25 ln 0.75)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    loss = soft_cross_entropy(logits, torch.tensor([[0.75, 0.25]]))
    assert loss.item() == pytest.approx(-(0.75 * math.log(0.25) + 0.25 * math.log(0.75)))  # 1.111642
    assert loss.item() == pytest.approx(1.111642, abs=1e-6)


def test_classification_loss_with_smoothing_equals_soft_ce_of_smoothed_targets():
    logits, labels = torch.randn(5, 4, generator=gen()), torch.tensor([0, 1, 2, 3, 0])
    smoothed = classification_loss(logits, labels, 0.2)
    assert torch.allclose(smoothed, soft_cross_entropy(logits, smoothed_one_hot(labels, 4, 0.2)), atol=1e-6)
    assert torch.equal(classification_loss(logits, labels), F.cross_entropy(logits, labels, reduction="none"))


def test_mixup_batch_mixes_images_and_targets_with_one_lambda():
    x, labels = torch.rand(4, 1, 6, 6, generator=gen(1)), torch.tensor([0, 1, 2, 3])
    mixed, targets, lam, kind = mix_batch(x, labels, 4, MixConfig(mixup_alpha=0.8), gen(3))
    assert kind == "mixup" and 0 < lam < 1
    assert torch.allclose(mixed, lam * x + (1 - lam) * x.flip(0))
    assert targets[0].tolist() == pytest.approx([lam, 0, 0, 1 - lam])  # sample 0 paired with sample 3
    # The loss of a mixed batch is lam x CE(own label) + (1 - lam) x CE(partner's).
    logits = torch.randn(4, 4, generator=gen(2))
    expected = lam * F.cross_entropy(logits, labels, reduction="none") + (1 - lam) * F.cross_entropy(
        logits, labels.flip(0), reduction="none"
    )
    assert torch.allclose(classification_loss(logits, targets), expected, atol=1e-6)


def test_cutmix_lambda_is_the_share_of_the_image_kept():
    x = torch.zeros(4, 1, 10, 10)
    x[:2] = 1.0  # samples 0, 1 are ones; their partners 3, 2 are zeros
    out, lam = _paste(x, (2, 5, 0, 4))  # rows 2-4, columns 0-3: 12 of 100 pixels
    assert lam == pytest.approx(0.88) and out[0].sum().item() == 88
    for seed in range(5):
        mixed, targets, lam, kind = mix_batch(x, torch.arange(4), 4, MixConfig(cutmix_alpha=1.0), gen(seed))
        if kind == "cutmix":
            assert mixed[0].mean().item() == pytest.approx(lam)
            assert targets[0].tolist() == pytest.approx([lam, 0, 0, 1 - lam])


def test_cutmix_box_side_is_sqrt_one_minus_lambda_clipped_to_the_image():
    for seed in range(20):
        y0, y1, x0, x1 = cutmix_box(10, 10, 0.64, gen(seed))  # side int(10 x 0.6) = 6
        assert 0 <= y0 <= y1 <= 10 and 0 <= x0 <= x1 <= 10 and y1 - y0 <= 6 and x1 - x0 <= 6


def test_switch_prob_chooses_cutmix_or_mixup_and_prob_zero_leaves_the_batch():
    x, labels = torch.rand(4, 3, 8, 8, generator=gen()), torch.arange(4)
    kinds = {mix_batch(x, labels, 4, MixConfig(0.8, 1.0), gen(s))[3] for s in range(30)}
    assert kinds == {"mixup", "cutmix"}
    same, targets, lam, kind = mix_batch(x, labels, 4, MixConfig(0.8, 1.0, prob=0.0), gen())
    assert kind == "none" and lam == 1.0 and same is x and torch.equal(targets, F.one_hot(labels, 4).float())


# --- RandAugment, AutoAugment, random erasing -----------------------------------------------


def test_rand_augment_string_parses_as_timm_reads_it():
    assert RandAugmentConfig.parse("rand-m9-mstd0.5-inc1") == RandAugmentConfig(9, 2, 0.5, 10.0, True, 0.5)
    assert RandAugmentConfig.parse("rand-m7-n3-p1.0").num_layers == 3
    with pytest.raises(ValueError, match="unknown section 'x3'"):
        RandAugmentConfig.parse("rand-m9-x3")


def test_rand_augment_arguments_at_magnitude_9():
    from timm.data.auto_augment import LEVEL_TO_ARG

    m, neg = torch.tensor([9.0]), torch.tensor([-1.0])

    def arg(name):
        return policies.rand_augment_arguments(name, m, neg, (32, 32), increasing=True).item()

    assert arg("Rotate") == pytest.approx(-27.0)
    assert arg("ShearX") == pytest.approx(-0.27)
    assert arg("TranslateXRel") == pytest.approx(-0.45 * 0.9 * 32)  # 12.96 pixels
    assert arg("Posterize") == 4 - 3 == LEVEL_TO_ARG["PosterizeIncreasing"](9, {})[0]
    assert arg("Solarize") == 256 - 230 == LEVEL_TO_ARG["SolarizeIncreasing"](9, {})[0]
    assert arg("SolarizeAdd") == 99 == LEVEL_TO_ARG["SolarizeAdd"](9, {})[0]
    assert arg("Color") == pytest.approx(1 - 0.81)  # timm: max(0.1, 1 + negated 0.81)


def test_auto_augment_magnitudes_are_torchvisions():
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    space = AutoAugment(AutoAugmentPolicy.CIFAR10)._augmentation_space(10, (32, 24))
    for name, (values, signed) in space.items():
        assert policies.AUTO_OPS[name][1] == signed, name
        for b in range(len(values) if values.ndim else 0):
            assert policies.auto_augment_magnitude(name, b, (32, 24)) == pytest.approx(float(values[b])), (name, b)
    assert len(policies.auto_augment_policy("cifar10")) == 25


@pytest.mark.parametrize(
    "kernel, arg, reference",
    [
        ("brightness", 1.6, lambda x: TF.adjust_brightness(x, 1.6)),
        ("contrast", 0.4, lambda x: TF.adjust_contrast(x, 0.4)),
        ("color", 1.5, lambda x: TF.adjust_saturation(x, 1.5)),
        ("sharpness", 1.8, lambda x: TF.adjust_sharpness(x, 1.8)),
        ("auto_contrast", 0.0, lambda x: TF.autocontrast(x)),
        ("invert", 0.0, lambda x: 1 - x),
    ],
)
def test_point_and_blend_kernels_match_torchvision(kernel, arg, reference):
    x = torch.rand(3, 3, 9, 7, generator=gen(4)) * 0.8 + 0.1
    ours = policies.apply_kernels(
        x, torch.full((3,), policies.KERNEL_NAMES.index(kernel)), torch.full((3,), arg, dtype=torch.float64), (0,), ""
    )
    assert torch.allclose(ours, reference(x), atol=1e-5)


def test_uint8_kernels_match_torchvision_on_uint8_images():
    q = torch.randint(0, 256, (2, 3, 8, 8), generator=gen(5), dtype=torch.uint8)
    x = q.float() / 255

    def run(name, value):
        k = torch.full((2,), policies.KERNEL_NAMES.index(name))
        return policies.apply_kernels(x, k, torch.full((2,), value, dtype=torch.float64), (0,), "")

    assert torch.equal((run("posterize", 3) * 255).round().to(torch.uint8), TF.posterize(q, 3))
    assert torch.equal((run("solarize", 128) * 255).round().to(torch.uint8), TF.solarize(q, 128))
    assert torch.equal((run("equalize", 0) * 255).round().to(torch.uint8), TF.equalize(q))
    assert torch.equal(run("posterize", 0), torch.zeros_like(x))  # 0 bits: black, as PIL


def test_translate_and_rotate_move_pixels_as_torchvision():
    from torchvision.transforms import InterpolationMode

    x = torch.rand(1, 3, 8, 8, generator=gen(6))
    k = torch.tensor([policies.KERNEL_NAMES.index("translate_x")])
    moved = policies.apply_kernels(x, k, torch.tensor([-3.0], dtype=torch.float64), (0.0,), "nearest")
    reference = TF.affine(
        x, angle=0.0, translate=[3, 0], scale=1.0, shear=[0.0, 0.0], interpolation=InterpolationMode.NEAREST, fill=0.0
    )
    assert torch.equal(moved, reference)
    k = torch.tensor([policies.KERNEL_NAMES.index("rotate")])
    turned = policies.apply_kernels(x, k, torch.tensor([90.0], dtype=torch.float64), (0.0,), "nearest")
    assert torch.equal(turned, torch.rot90(x, 1, (2, 3))) or torch.equal(turned, torch.rot90(x, -1, (2, 3)))


def test_policies_are_deterministic_per_generator_and_keep_range():
    x = torch.rand(16, 3, 12, 12, generator=gen(7))
    cfg = RandAugmentConfig.parse("rand-m9-mstd0.5-inc1")
    a, b = policies.rand_augment(x, cfg, gen(1)), policies.rand_augment(x, cfg, gen(1))
    assert torch.equal(a, b) and not torch.equal(a, x) and a.min() >= 0 and a.max() <= 1
    c = policies.auto_augment(x, "cifar10", gen(2))
    assert torch.equal(c, policies.auto_augment(x, "cifar10", gen(2))) and c.min() >= 0 and c.max() <= 1
    assert torch.equal(policies.rand_augment(x, RandAugmentConfig.parse("rand-m9-p0"), gen()), x)


def test_random_erasing_boxes_follow_timms_rule():
    boxes = policies.erasing_boxes(200, 32, 32, 0.25, gen(8))
    erased = boxes[:, 2] > 0
    assert 20 < int(erased.sum()) < 80  # about a quarter
    area = (boxes[erased, 2] * boxes[erased, 3]).double() / (32 * 32)
    assert area.min() >= 0.015 and area.max() <= 0.36  # U(0.02, 1/3) of the image, rounded sides
    assert (boxes[erased, 0] + boxes[erased, 2] <= 32).all() and (boxes[erased, 1] + boxes[erased, 3] <= 32).all()
    x = torch.rand(6, 3, 16, 16, generator=gen())
    assert torch.equal(policies.random_erasing(x, 0.0, gen()), x)
    out = policies.random_erasing(x, 1.0, gen(9), torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25))
    changed = (out != x).flatten(1).sum(1)
    assert (changed > 0).all()  # every sample gets a box at p = 1 (10 tries always fit at 16 px)


# --- the optimiser and the gradient --------------------------------------------------------


def test_no_weight_decay_on_norms_and_biases_splits_each_group():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    skip = no_decay_parameters(model)
    assert skip == {id(p) for p in (model[0].bias, model[1].weight, model[1].bias, model[3].bias)}
    groups = split_weight_decay(model, [{"params": list(model.parameters()), "name": "all", "lr_scale": 0.5}])
    assert [len(g["params"]) for g in groups] == [2, 4]
    assert [g.get("weight_decay") for g in groups] == [None, 0.0] and {g["name"] for g in groups} == {"all"}
    optimizer = build_optimizer(model, TrainConfig(weight_decay=0.05, no_weight_decay_on_norm_and_bias=True))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]
    assert len(build_optimizer(model, TrainConfig(weight_decay=0.05)).param_groups) == 1


def test_gradients_are_clamped_then_norm_clipped_as_hcl_does():
    model = nn.Linear(2, 1, bias=False)
    model.weight.grad = torch.tensor([[3.0, -4.0]])
    clip_gradients(model, TrainConfig(grad_clip_value=0.5, grad_clip=0.5))
    # clamp: [0.5, -0.5] (norm 0.7071), then x 0.5 / 0.7071
    assert model.weight.grad.tolist()[0] == pytest.approx([0.5 / math.sqrt(2), -0.5 / math.sqrt(2)], rel=1e-5)
    model.weight.grad = torch.tensor([[3.0, -4.0]])
    clip_gradients(model, TrainConfig())
    assert model.weight.grad.tolist() == [[3.0, -4.0]]


# --- settings and refusals ------------------------------------------------------------------


def test_train_config_rejects_bad_recipe_values_by_name():
    for values, name in (
        ({"rand_augment": "augmix-m5"}, "rand_augment"),
        ({"auto_augment": "cifar100"}, "auto_augment"),
        ({"rand_augment": "rand-m9", "auto_augment": "cifar10"}, "rand_augment and auto_augment"),
        ({"random_erasing": 1.5}, "random_erasing"),
        ({"mixup_alpha": -1}, "mixup_alpha"),
        ({"grad_clip": 0}, "grad_clip"),
        ({"grad_accumulation_steps": 0}, "grad_accumulation_steps"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
    ):
        with pytest.raises(ValueError, match=name):
            TrainConfig(**values)


def test_label_reading_methods_are_refused_on_mixed_batches_by_name():
    mixed = TrainConfig(mixup_alpha=0.8)
    check_recipe(mixed, ["blur", "lerac", "cbs"])
    for name in ("data_parameters", "forgetting", "self_labeling", "distill", "simclr", "some_new_method"):
        with pytest.raises(ValueError, match=f"method '{name}' cannot train on mixed batches"):
            check_recipe(mixed, [name])
    check_recipe(TrainConfig(), ["data_parameters", "forgetting"])
    with pytest.raises(ValueError, match="'data_parameters' cannot train with train.grad_accumulation_steps"):
        check_recipe(TrainConfig(grad_accumulation_steps=2), ["data_parameters"])


def test_the_config_check_refuses_forgetting_on_mixed_batches(default_config):
    from curriculum_bench.config_checks import check_config_values

    study = default_config["studies"]["techniques"]
    study["train"]["mixup_alpha"] = 0.8
    study["variants"] = {"forgetting": {"forgetting": {}}}
    with pytest.raises(ConfigError, match=r"studies\.techniques\.variants\.forgetting: method 'forgetting' cannot"):
        check_config_values(default_config)


def test_recipe_label_names_what_a_run_used():
    assert recipe_label({}) == recipe_label(json.loads(json.dumps(TrainConfig().__dict__))) == "plain"
    cvt = {
        "rand_augment": "rand-m9-mstd0.5-inc1",
        "random_erasing": 0.25,
        "mixup_alpha": 0.8,
        "cutmix_alpha": 1.0,
        "mix_prob": 1.0,
        "grad_clip": 0.5,
        "grad_clip_value": 0.5,
        "no_weight_decay_on_norm_and_bias": True,
        "grad_accumulation_steps": 4,
    }
    assert recipe_label(cvt) == (
        "RandAugment rand-m9-mstd0.5-inc1; erasing 0.25; mixup 0.8 / cutmix 1; clip ±0.5, norm 0.5; "
        "no WD on norms/biases; 4 batches per step"
    )


# --- the engine ------------------------------------------------------------------------------

RECIPE = {
    "augment": [{"op": "random_crop", "size": 8, "padding": 1}],
    "normalize": {"mean": [0.5], "std": [0.25]},
    "rand_augment": "rand-m9-mstd0.5-inc1",
    "random_erasing": 0.25,
    "mixup_alpha": 0.8,
    "cutmix_alpha": 1.0,
    "label_smoothing": 0.1,
    "grad_clip": 1.0,
    "grad_clip_value": 0.5,
    "no_weight_decay_on_norm_and_bias": True,
    "grad_accumulation_steps": 3,
}


def test_a_run_with_the_whole_recipe_trains_resumes_exactly_and_differs_from_plain(digits_store, tmp_path):
    run = tiny_run({"blur": {"blur_epochs": 1, "kernel_size": 3, "keep_augmentation": True}}, epochs=3, **RECIPE)
    full = fit(run, digits_store, tmp_path / "full", tmp_path / "full.pt", device="cpu")
    assert fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu", stop_after_epoch=1) is None
    fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu")
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    assert math.isfinite(full["final_acc"]) and full["train_config"]["grad_accumulation_steps"] == 3
    plain = tiny_run({"blur": {"blur_epochs": 1, "kernel_size": 3, "keep_augmentation": True}}, epochs=3)
    fit(plain, digits_store, tmp_path / "plain", tmp_path / "plain.pt", device="cpu")
    assert results_only(tmp_path / "plain/history.jsonl") != results_only(tmp_path / "full/history.jsonl")


def test_accumulation_steps_once_per_window_and_on_the_leftover(digits_store, tmp_path, monkeypatch):
    steps = []
    original = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    # 1,437 images / 64 = 23 batches per epoch: windows of 4 give 5 full steps and one of 3.
    fit(tiny_run(epochs=1, grad_accumulation_steps=4), digits_store, tmp_path / "r", tmp_path / "r.pt", device="cpu")
    assert len(steps) == 6


def test_a_mixed_run_refuses_a_label_reading_method_before_training(digits_store, tmp_path):
    with pytest.raises(ValueError, match="'forgetting' cannot train on mixed batches"):
        fit(
            tiny_run({"forgetting": {}}, mixup_alpha=0.8), digits_store, tmp_path / "r", tmp_path / "r.pt", device="cpu"
        )


def test_lerac_keeps_one_scale_per_block_when_its_groups_are_split_by_weight_decay(digits_store, tmp_path):
    lerac = {"lerac": {"lerac_epochs": 2, "eta_min": 1e-5}}
    fit(tiny_run(lerac, epochs=2), digits_store, tmp_path / "a", tmp_path / "a.pt", device="cpu")
    split = tiny_run(lerac, epochs=2, no_weight_decay_on_norm_and_bias=True)
    fit(split, digits_store, tmp_path / "b", tmp_path / "b.pt", device="cpu")
    a, b = (json.loads((tmp_path / r / "history.jsonl").read_text().splitlines()[0]) for r in "ab")
    assert a["lerac/groups"] == b["lerac/groups"] and len(b["lr"]) > len(a["lr"])
    assert a["lerac/lr_scale_last_step"] == b["lerac/lr_scale_last_step"]
    assert sorted(set(b["lr"])) == sorted(set(a["lr"]))  # each block's two parts at its one LR
