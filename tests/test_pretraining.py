"""The catalogue's self-supervised pretraining (SimMIM-style masked image modelling, MoCo v2)
and FitNets' hint distillation: each against a hand-computed case, then the hook in a run, then
every new variant through the workflow with its control."""

import json
import math

import pytest
import torch
import yaml
from torch import nn

from curriculum_bench.config import ConfigError
from curriculum_bench.contrastive.moco import MoCoConfig, enqueue, info_nce, moco_logits, momentum_update
from curriculum_bench.curricula.hint import HintConfig, adapt, hint_loss, make_adapter
from curriculum_bench.curricula.masked_image_modeling import (
    MIMConfig,
    decoder_for,
    mask_input,
    masked_l1,
    pixel_mask,
    random_patch_mask,
)
from curriculum_bench.models import create_model, named_module
from curriculum_bench.run_inputs import run_inputs
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import Stream, TrainState, build_hooks, seeded_generator

from .conftest import REPO, snakemake, tiny_run

# --- masked image modelling ------------------------------------------------------------------------


def test_mask_covers_exactly_ceil_ratio_of_the_patches_of_each_image():
    mask = random_patch_mask(6, (2, 2), 0.5, seeded_generator(0, 0, Stream.MASK))
    assert mask.shape == (6, 2, 2) and mask.sum(dim=(1, 2)).tolist() == [2.0] * 6
    assert len({tuple(m.flatten().tolist()) for m in mask}) > 1  # drawn per image
    again = random_patch_mask(6, (2, 2), 0.5, seeded_generator(0, 0, Stream.MASK))
    assert torch.equal(mask, again)  # a resumed run masks the same patches
    mnist = random_patch_mask(3, (7, 7), 0.6, torch.Generator().manual_seed(1))
    assert mnist.sum(dim=(1, 2)).tolist() == [30.0] * 3  # SimMIM: ceil(49 x 0.6)


def test_masking_and_reconstruction_loss_on_a_2x2_patch_image_by_hand():
    """A 4x4 image of 2x2-pixel patches, the top-left and bottom-right ones masked."""
    x = (torch.arange(16.0) / 15).view(1, 1, 4, 4)
    pixels = pixel_mask(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), 2)
    assert pixels[0, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    masked = mask_input(x, pixels, torch.tensor([0.5]))
    t = 0.5
    expected = torch.tensor([[t, t, 2, 3], [t, t, 6, 7], [8, 9, t, t], [12, 13, t, t]])
    expected = torch.where(expected == t, t, expected / 15)
    assert torch.allclose(masked[0, 0], expected)
    # L1 on the 8 masked pixels only: (0 + 1 + 4 + 5 + 10 + 11 + 14 + 15) / 15 / 8 = 0.5
    assert masked_l1(torch.zeros_like(x), x, pixels).tolist() == pytest.approx([0.5])
    wrong_where_visible = x.clone()
    wrong_where_visible[0, 0, 0, 3] += 7.0
    assert masked_l1(wrong_where_visible, x, pixels).tolist() == [0.0]


def test_decoder_predicts_every_input_pixel_from_the_feature_map():
    decoder = decoder_for(64, 2, 1)
    assert decoder(torch.zeros(3, 64, 14, 14)).shape == (3, 1, 28, 28)
    assert sum(p.numel() for p in decoder.parameters()) == 64 * 4 + 4  # one 1x1 conv: light


@pytest.mark.parametrize(
    "args, key",
    [
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"mask_ratio": 0.0}, "mask_ratio"),
        ({"mask_patch_size": 0}, "mask_patch_size"),
        ({"mask_token": "noise"}, "mask_token"),
        ({"feature_layer": ""}, "feature_layer"),
    ],
)
def test_mim_config_rejects_bad_settings_by_name(args, key):
    with pytest.raises(ValueError, match=key):
        MIMConfig(**args)


def test_mim_hook_masks_and_scores_reconstruction_not_labels(digits_store, tmp_path):
    run = tiny_run({"mim": {"feature_layer": "block2", "mask_patch_size": 4, "mask_ratio": 0.6}}, epochs=1)
    metrics = fit(run, digits_store, tmp_path / "mim/seed0", tmp_path / "mim.pt", device="cpu")
    history = [json.loads(line) for line in (tmp_path / "mim/seed0/history.jsonl").read_text().splitlines()]
    assert history[-1]["mim/reconstruction_l1"] > 0 and len(history[-1]["mim/mask_token"]) == 1
    assert (tmp_path / "mim/seed0/final_model.pt").exists() and metrics["final_epoch"] == 1
    # The loss is the reconstruction alone: the same for any labels.
    (hook,) = build_hooks({"mim": {"mask_patch_size": 4}})
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"), torch.zeros(1), 10, 1)
    state.data = type("Data", (), {"in_shape": (1, 8, 8)})()
    hook.on_fit_start(state)
    x = torch.rand(4, 1, 8, 8)
    masked, y = hook.transform_batch(state, torch.arange(4), x, torch.zeros(4, dtype=torch.long))
    assert masked.eq(0).flatten(1).sum(1).tolist() == [48] * 4  # 3 of 4 patches set to the token (0)
    logits = model(masked)
    first = hook.loss(state, None, logits, y, torch.full((4,), 9.0))
    second = hook.loss(state, None, logits, y + 3, torch.full((4,), 1.0))
    assert torch.equal(first, second)
    with pytest.raises(ConfigError, match="mask_patch_size: 3 does not divide"):
        (bad,) = build_hooks({"mim": {"mask_patch_size": 3}})
        bad.on_fit_start(state)


# --- MoCo v2 -----------------------------------------------------------------------------------------


def test_momentum_step_by_hand():
    key, query = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, -2.0])]
    momentum_update(key, query, 0.9)  # 0.9 k + 0.1 q
    assert key[0].tolist() == pytest.approx([1.2, 1.6])
    momentum_update(key, query, 0.0)
    assert key[0].tolist() == [3.0, -2.0]


def test_queue_update_replaces_the_oldest_keys_and_wraps():
    queue = torch.zeros(4, 2)
    pointer = enqueue(queue, 3, torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    assert queue.tolist() == [[2, 2], [0, 0], [0, 0], [1, 1]] and pointer == 1
    pointer = enqueue(queue, pointer, torch.tensor([[3.0, 3.0]]))
    assert queue.tolist() == [[2, 2], [3, 3], [0, 0], [1, 1]] and pointer == 2
    # A batch larger than the queue: key by key, rows 1, 0, 1 get a, b, c; b and c stay.
    small = torch.zeros(2, 1)
    pointer = enqueue(small, 1, torch.tensor([[1.0], [2.0], [3.0]]))
    assert small.tolist() == [[2.0], [3.0]] and pointer == 0


def test_info_nce_by_hand():
    q, k = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    assert moco_logits(q, k, queue, 0.5).tolist() == [[2.0, 0.0, -2.0]]  # [q.k+, q.queue] / tau
    expected = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    assert info_nce(q, k, queue, 0.5).tolist() == pytest.approx([expected])


def test_moco_key_encoder_starts_as_the_query_and_follows_by_momentum():
    (hook,) = build_hooks(
        {"moco": {"views": [{"op": "random_resized_crop", "size": 8}], "queue_size": 16, "hidden_dim": 8}}
    )
    torch.manual_seed(0)
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"), torch.zeros(1), 10, 1)
    hook.on_fit_start(state)
    assert len(state.optimizer.param_groups) == 2  # the projection head trains with the encoder
    hook.on_epoch_start(state)
    assert torch.allclose(hook.queue.norm(dim=1), torch.ones(16))
    key_before = hook.key_encoder.block1.conv1.weight.clone()
    assert torch.equal(key_before, model.block1.conv1.weight)
    with torch.no_grad():
        model.block1.conv1.weight.add_(1.0)  # as if the optimiser had stepped
    query, _ = hook.transform_batch(state, torch.arange(4), torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    assert torch.allclose(hook.key_encoder.block1.conv1.weight, key_before + 0.001, atol=1e-6)  # m = 0.999
    assert hook.keys.shape == (4, 128) and query.shape == (4, 1, 8, 8)
    loss = hook.loss(state, None, model(query), None, torch.zeros(4))
    assert loss.shape == (4,) and torch.all(loss > 0)
    hook.after_forward(state, None, None, None)
    assert torch.equal(hook.queue[:4], hook.keys) and hook.pointer == 4


def test_moco_config_rejects_bad_settings_by_name():
    for args, key in (
        ({"momentum": 1.5}, "momentum"),
        ({"queue_size": 0}, "queue_size"),
        ({"temperature": 0}, "temperature"),
    ):
        with pytest.raises(ValueError, match=key):
            MoCoConfig(**args)
    with pytest.raises(ValueError, match="views"):
        MoCoConfig(views=[{"op": "no_such_op"}])


def test_moco_pretraining_run_then_linear_probe_of_its_encoder(digits_store, tmp_path):
    moco = {
        "views": [{"op": "random_resized_crop", "size": 8, "scale": [0.5, 1.0]}],
        "queue_size": 256,
        "hidden_dim": 32,
    }
    fit(tiny_run({"moco": moco}, epochs=1), digits_store, tmp_path / "moco/seed0", tmp_path / "m.pt", device="cpu")
    history = json.loads((tmp_path / "moco/seed0/history.jsonl").read_text().splitlines()[-1])
    assert history["moco/contrastive_loss"] > 0
    encoder = torch.load(tmp_path / "moco/seed0/final_model.pt")
    probe = {"checkpoint": str(tmp_path / "moco/seed0/final_model.pt"), "freeze": ["block1.", "block2."]}
    fit(
        tiny_run({"pretrained": probe}, epochs=1),
        digits_store,
        tmp_path / "probe/seed0",
        tmp_path / "p.pt",
        device="cpu",
    )
    probed = torch.load(tmp_path / "probe/seed0/final_model.pt")
    # A linear probe: only the classifier changed, BatchNorm statistics included.
    assert all(torch.equal(probed[k], v) for k, v in encoder.items() if not k.startswith("fc."))
    assert not torch.equal(probed["fc.weight"], encoder["fc.weight"])


def test_frozen_modules_stay_in_eval_mode_while_training(tmp_path):
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (hook,) = build_hooks({"pretrained": {"checkpoint": str(tmp_path / "w.pt"), "freeze": ["block1."]}})
    state = TrainState(model, None, torch.device("cpu"), torch.zeros(1), 10, 1)
    hook.on_fit_start(state)
    model.train()
    hook.on_batch_start(state)
    assert not model.block1.training and not model.block1.bn1.training
    assert model.block2.bn1.training and model.training


# --- FitNets hint --------------------------------------------------------------------------------------


def test_hint_loss_with_its_adapter_by_hand():
    """Student map [1, 2] (1 channel, 1x2); the 1x1 adapter maps it to 2 channels:
    2s and -s + 1 = [2, 4] and [0, -1]; the teacher's [1, 4] and [0, 1] leave differences
    [1, 0] and [0, -2]: a mean square of (1 + 0 + 0 + 4) / 4 = 1.25."""
    adapter = make_adapter(1, 2, "conv1x1")
    with torch.no_grad():
        adapter.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        adapter.bias.copy_(torch.tensor([0.0, 1.0]))
    student = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    teacher = torch.tensor([[1.0, 4.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    regressed = adapt(adapter, student, (1, 2))
    assert regressed.tolist() == [[[[2.0, 4.0]], [[0.0, -1.0]]]]
    assert hint_loss(regressed, teacher).tolist() == [1.25]
    # Spatial sizes that differ: the regressed map is average-pooled to the teacher's.
    pooled = adapt(nn.Identity(), torch.tensor([1.0, 3.0, 5.0, 7.0]).view(1, 1, 2, 2), (1, 1))
    assert pooled.flatten().tolist() == [4.0]
    assert isinstance(make_adapter(32, 32, "auto"), nn.Identity)
    assert isinstance(make_adapter(32, 64, "auto"), nn.Conv2d)


def test_hint_config_rejects_bad_settings_by_name():
    for args, key in (
        ({"weight": 0}, "weight"),
        ({"adapter": "mlp"}, "adapter"),
        ({"student_layer": ""}, "student_layer"),
    ):
        with pytest.raises(ValueError, match=key):
            HintConfig(**args)


def tiny_config(variants: dict) -> dict:
    config = yaml.safe_load((REPO / ".test/config.yaml").read_text())
    study = config["studies"]["techniques"]
    study.update(seeds=[0], variants=variants, train={**study["train"], "epochs": 1})
    config["studies"] = {"techniques": study}
    return config


def test_hint_student_reads_the_teacher_run_once_beside_distill():
    teacher = "results/techniques/digits_sklearn/mlt_convnet/baseline/seed0/final_model.pt"
    config = tiny_config({"baseline": {}, "hint": {"hint": {}}, "both": {"distill": {}, "hint": {}}})
    assert run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "hint", 0) == [teacher]
    assert run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "both", 0) == [teacher]
    config["studies"]["techniques"]["variants"]["hint"]["hint"] = {"teacher_variant": "nope"}
    with pytest.raises(ConfigError, match=r"variants\.hint\.hint\.teacher_variant: 'nope'"):
        run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "hint", 0)


def test_hint_composes_with_logit_distillation(digits_store, tmp_path):
    results = tmp_path / "results/techniques/digits_sklearn/mlt_convnet"
    fit(tiny_run(epochs=1), digits_store, results / "baseline/seed0", tmp_path / "t.pt", device="cpu")
    run = tiny_run({"distill": {}, "hint": {"student_layer": "block1"}}, epochs=1)
    fit(run, digits_store, results / "both/seed0", tmp_path / "s.pt", device="cpu")
    history = json.loads((results / "both/seed0/history.jsonl").read_text().splitlines()[-1])
    assert history["hint/hint_loss"] >= 0 and 0 <= history["distill/teacher_agreement"] <= 1
    assert len(history["lr"]) == 2  # the student's group and the adapter's


# --- every new variant through the workflow, with its control ----------------------------------------

VIEWS_8PX = [{"op": "random_resized_crop", "size": 8, "scale": [0.5, 1.0]}]
WEIGHTS = "results/techniques/digits_sklearn/mlt_convnet/{}/seed0/final_model.pt"
NEW_VARIANTS = {
    "baseline": {},
    "distill": {"distill": {}},
    "mim_pretrain": {"mim": {"mask_patch_size": 4}},
    "mim_finetune": {"pretrained": {"checkpoint": WEIGHTS.format("mim_pretrain"), "exclude": ["fc."]}},
    "moco_pretrain": {"moco": {"views": VIEWS_8PX, "queue_size": 256, "hidden_dim": 32}},
    "moco_finetune": {"pretrained": {"checkpoint": WEIGHTS.format("moco_pretrain"), "exclude": ["fc."]}},
    "moco_probe": {
        "pretrained": {
            "checkpoint": WEIGHTS.format("moco_pretrain"),
            "exclude": ["fc."],
            "freeze": ["block1.", "block2."],
        }
    },
    "hint": {"hint": {"student_layer": "block1"}},
    "distill_hint": {"distill": {}, "hint": {"student_layer": "block1"}},
}


@pytest.mark.workflow
def test_each_new_variant_and_its_control_run_through_the_workflow(tmp_path):
    config = tiny_config(NEW_VARIANTS)
    config["studies"]["techniques"]["report"] = {
        "baseline": "baseline",
        "controls": {
            "mim_finetune": "baseline",
            "moco_finetune": "baseline",
            "moco_probe": "baseline",
            "hint": "baseline",
            "distill_hint": "distill",
        },
    }
    path = tmp_path / "pretraining.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(path), "--cores", "2", "paper_tables/techniques.csv")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    table = (tmp_path / "paper_tables/techniques.csv").read_text()
    for variant in NEW_VARIANTS:
        assert f",{variant}," in table, variant
        metrics = json.loads((tmp_path / WEIGHTS.format(variant).replace("final_model.pt", "metrics.json")).read_text())
        assert metrics["final_epoch"] == 1


@pytest.mark.parametrize(
    "methods",
    [
        {"mim": {"mask_patch_size": 4}},
        {"moco": {"views": VIEWS_8PX, "queue_size": 256, "hidden_dim": 32}},
    ],
    ids=["mim", "moco"],
)
def test_pretraining_resumed_after_an_epoch_equals_an_uninterrupted_run(digits_store, tmp_path, methods):
    """Decoder, token, heads, key encoder and queue travel in the checkpoint; masks and views
    are drawn from the run's streams, so a resumed run trains exactly as an uninterrupted one."""
    run = tiny_run(methods, epochs=2, batch_size=512)  # 3 steps an epoch
    whole = fit(run, digits_store, tmp_path / "whole", tmp_path / "whole.pt", device="cpu")
    assert fit(run, digits_store, tmp_path / "split", tmp_path / "split.pt", device="cpu", stop_after_epoch=1) is None
    resumed = fit(run, digits_store, tmp_path / "split", tmp_path / "split.pt", device="cpu")
    assert resumed["resumed_at"] == [[1, 0]]
    a, b = torch.load(tmp_path / "whole/final_model.pt"), torch.load(tmp_path / "split/final_model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final_acc"] == whole["final_acc"]


def test_a_layer_the_model_lacks_is_refused_naming_the_setting():
    # The one lookup mim's feature_layer and hint's student_layer / teacher_layer go through.
    (hook,) = build_hooks({"mim": {"feature_layer": "block9", "mask_patch_size": 4}})
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"), torch.zeros(1), 10, 1)
    state.data = type("Data", (), {"in_shape": (1, 8, 8)})()
    with pytest.raises(
        ConfigError, match=r"^methods\.mim\.feature_layer: MLTConvNet has no module 'block9' \(top level: \["
    ):
        hook.on_fit_start(state)
    assert named_module(model, "block2", "methods.hint.student_layer") is model.block2
