"""The catalogue's planned techniques: distillation, transfer, layer-wise LR/WD, initialisation,
augmentation as a variant, LR schedules. Each against hand-computed or PyTorch values."""

import copy
import re

import pytest
import torch
import torch.nn.functional as F
import yaml

from curriculum_bench.config import ConfigError, resolve_run
from curriculum_bench.curricula.distill import DistillConfig, distillation_loss, teacher_path
from curriculum_bench.curricula.layerwise_lr import LayerwiseLRConfig, layer_scales, layerwise_groups
from curriculum_bench.curricula.lr_schedule import LRScheduleConfig, schedule_factor
from curriculum_bench.curricula.transfer import transferable
from curriculum_bench.curricula.weight_init import WeightInitConfig, initialise
from curriculum_bench.models import create_model
from curriculum_bench.run_inputs import run_inputs
from curriculum_bench.train.config import TrainConfig
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import TrainState, build_hooks
from curriculum_bench.train.schedule import lr_factor

from .conftest import REPO, snakemake, tiny_run

# --- distillation ------------------------------------------------------------------------------


def test_distillation_loss_is_the_hinton_mix_of_hard_and_soft_terms():
    student, teacher = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    hard = F.cross_entropy(student, torch.tensor([0]), reduction="none")
    T, alpha = 2.0, 0.75
    p = torch.softmax(teacher / T, 1)[0]
    q = torch.softmax(student / T, 1)[0]
    kl = float((p * (p / q).log()).sum())
    expected = (1 - alpha) * float(hard) + alpha * T * T * kl
    assert float(distillation_loss(student, teacher, hard, T, alpha)) == pytest.approx(expected)
    assert float(distillation_loss(teacher, teacher, hard, T, 1.0)) == pytest.approx(0.0, abs=1e-7)


def test_teacher_is_the_same_seed_of_the_teacher_variant():
    student = "results/techniques/mnist/mlt_convnet/distill/seed2"
    assert (
        str(teacher_path(student, DistillConfig()))
        == "results/techniques/mnist/mlt_convnet/baseline/seed2/final_model.pt"
    )
    assert (
        str(teacher_path(student, DistillConfig(teacher_model="resnet18", teacher_seed=0)))
        == "results/techniques/mnist/resnet18/baseline/seed0/final_model.pt"
    )


def tiny_config(variants: dict) -> dict:
    """The tiny config's techniques study alone, with these variants and seed 0."""
    config = yaml.safe_load((REPO / ".test/config.yaml").read_text())
    study = config["studies"]["techniques"]
    study.update(seeds=[0], variants=variants)
    config["studies"] = {"techniques": study}
    return config


def test_student_run_reads_the_teacher_run_final_model(tmp_path):
    config = tiny_config({"baseline": {}, "distill": {"distill": {"teacher_variant": "baseline"}}})
    assert run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "distill", 0) == [
        "results/techniques/digits_sklearn/mlt_convnet/baseline/seed0/final_model.pt"
    ]
    assert run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "baseline", 0) == []
    config["studies"]["techniques"]["variants"]["distill"]["distill"]["teacher_variant"] = "nope"
    with pytest.raises(ConfigError, match=r"variants\.distill\.distill\.teacher_variant: 'nope'"):
        run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "distill", 0)


def test_distillation_edge_follows_a_per_model_override_of_the_teacher(tmp_path):
    """The edge comes from the resolved run: overrides.<model>.variants.<variant>.distill wins over the variant's."""
    config = tiny_config(
        {"baseline": {}, "teacher": {"weighted_sampling": {}}, "distill": {"distill": {"teacher_variant": "baseline"}}}
    )
    config["studies"]["techniques"]["overrides"] = {
        "mlt_convnet": {"variants": {"distill": {"distill": {"teacher_variant": "teacher", "teacher_seed": 3}}}}
    }
    assert run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "distill", 0) == [
        "results/techniques/digits_sklearn/mlt_convnet/teacher/seed3/final_model.pt"
    ]
    # The trainer reads the same path (curricula/distill.py uses run_inputs.teacher_file too).
    resolved = resolve_run(config, "techniques", "digits_sklearn", "mlt_convnet", "distill", 0)
    student = "results/techniques/digits_sklearn/mlt_convnet/distill/seed0"
    assert (
        str(teacher_path(student, DistillConfig(**resolved["methods"]["distill"])))
        == "results/techniques/digits_sklearn/mlt_convnet/teacher/seed3/final_model.pt"
    )
    config["studies"]["techniques"]["overrides"]["mlt_convnet"]["variants"]["distill"]["distill"]["teacher_variant"] = (
        "nope"
    )
    with pytest.raises(
        ConfigError, match=r"overrides\.mlt_convnet\.variants\.distill\.distill\.teacher_variant: 'nope'"
    ):
        run_inputs(config, "techniques", "digits_sklearn", "mlt_convnet", "distill", 0)


@pytest.mark.workflow
def test_distillation_edge_exists_in_the_workflow_dag(tmp_path):
    config = tiny_config({"baseline": {}, "distill": {"distill": {"teacher_variant": "baseline"}}})
    path = tmp_path / "distill.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(path), "--dag")
    assert result.returncode == 0, result.stderr[-2000:]
    nodes = dict(re.findall(r"^\s*(\d+)\[label = \"([^\"]*)\"", result.stdout, re.MULTILINE))
    edges = set(re.findall(r"^\s*(\d+) -> (\d+)", result.stdout, re.MULTILINE))
    teacher = next(n for n, label in nodes.items() if label.startswith("train") and "baseline" in label)
    student = next(n for n, label in nodes.items() if label.startswith("train") and "distill" in label)
    assert (teacher, student) in edges and (student, teacher) not in edges


def test_distilled_student_trains_from_the_teacher_weights(digits_store, tmp_path):
    results = tmp_path / "results/techniques/digits_sklearn/mlt_convnet"
    fit(tiny_run(epochs=1), digits_store, results / "baseline/seed0", tmp_path / "t.pt", device="cpu")
    run = tiny_run({"distill": {"alpha": 1.0}}, epochs=1)
    metrics = fit(run, digits_store, results / "distill/seed0", tmp_path / "s.pt", device="cpu")
    assert 0 < metrics["final_acc"] <= 1
    missing = tiny_run({"distill": {"teacher_variant": "absent"}}, epochs=1)
    with pytest.raises(FileNotFoundError, match="absent/seed0/final_model.pt: the distillation teacher's weights"):
        fit(missing, digits_store, results / "distill2/seed0", tmp_path / "m.pt", device="cpu")


# --- transfer ------------------------------------------------------------------------------------


def test_transfer_copies_all_but_the_excluded_head_and_names_gaps():
    source = create_model("mlt_convnet", (1, 8, 8), 10).state_dict()
    target = create_model("mlt_convnet", (1, 28, 28), 10).state_dict()  # fc differs in shape
    chosen = transferable(source, target, ("fc.",), strict=True)
    assert set(chosen) == {k for k in target if not k.startswith("fc.")}
    with pytest.raises(ValueError, match=r"shape mismatch \['fc.weight'\]"):
        transferable(source, target, (), strict=True)
    assert "fc.weight" not in transferable(source, target, (), strict=False)


def test_pretrained_run_starts_from_the_checkpoint_with_a_fresh_head(digits_store, tmp_path):
    source = create_model("mlt_convnet", (1, 8, 8), 10)
    with torch.no_grad():
        for p in source.parameters():
            p.fill_(0.5)
    torch.save(source.state_dict(), tmp_path / "pre.pt")
    (hook,) = build_hooks({"pretrained": {"checkpoint": str(tmp_path / "pre.pt"), "freeze": ["block1."]}})
    torch.manual_seed(0)
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    fresh_fc = model.fc.weight.detach().clone()
    hook.on_fit_start(TrainState(model, None, torch.device("cpu"), torch.zeros(1), 10, 1))
    assert torch.all(model.block2.conv1.weight == 0.5) and torch.equal(model.fc.weight, fresh_fc)
    assert not model.block1.conv1.weight.requires_grad and model.block2.conv1.weight.requires_grad
    (absent,) = build_hooks({"pretrained": {"checkpoint": str(tmp_path / "nope.pt")}})
    with pytest.raises(FileNotFoundError, match="pretrained.checkpoint"):
        absent.on_fit_start(TrainState(model, None, torch.device("cpu"), torch.zeros(1), 10, 1))


# --- layer-wise LR and weight decay ---------------------------------------------------------------


def test_layer_scales_decay_from_the_head_to_the_input():
    assert layer_scales(3, 0.5) == [0.25, 0.5, 1.0]


def test_layerwise_groups_scale_lr_per_block_and_spare_1d_params_from_decay():
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    groups = layerwise_groups(model, LayerwiseLRConfig(layer_decay=0.5, weight_decay=0.2))
    summary = [(g["name"], g["lr_scale"], g["weight_decay"]) for g in groups]
    assert summary == [
        ("block1.weights", 0.25, 0.2),
        ("block1.1d", 0.25, 0.0),
        ("block2.weights", 0.5, 0.2),
        ("block2.1d", 0.5, 0.0),
        ("fc.weights", 1.0, 0.2),
        ("fc.1d", 1.0, 0.0),
    ]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_layerwise_run_trains_each_group_at_its_scale(digits_store, tmp_path):
    import json

    fit(
        tiny_run({"layerwise_lr": {"layer_decay": 0.1}}, epochs=1, schedule="constant"),
        digits_store,
        tmp_path / "run",
        tmp_path / "ckpt.pt",
        device="cpu",
    )
    record = json.loads((tmp_path / "run/history.jsonl").read_text().splitlines()[0])
    assert record["lr"] == pytest.approx([1e-4, 1e-4, 1e-3, 1e-3, 1e-2, 1e-2])


# --- initialisation ---------------------------------------------------------------------------------


def test_orthogonal_init_gives_orthonormal_rows_and_zero_biases():
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    assert initialise(model, WeightInitConfig(scheme="orthogonal")) == 7  # 2 x (two 3x3 convs + 1x1 skip) + fc
    w = model.fc.weight
    assert torch.allclose(w @ w.T, torch.eye(10), atol=1e-5) and torch.all(model.fc.bias == 0)


def test_kaiming_init_is_the_seeded_draw_of_nn_init():
    torch.manual_seed(3)
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    expected = copy.deepcopy(model)
    state = torch.get_rng_state()
    initialise(model, WeightInitConfig(scheme="kaiming_normal", mode="fan_out"))
    torch.set_rng_state(state)
    for m in expected.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    assert torch.equal(model.block1.conv1.weight, expected.block1.conv1.weight)
    assert torch.equal(model.fc.weight, expected.fc.weight)


def test_init_draws_the_same_weights_whatever_the_models_memory_layout():
    # auto puts a model in channels-last on a GPU or a bf16 CPU: the init must not depend on it
    models = [create_model("mlt_convnet", (1, 8, 8), 10) for _ in range(2)]
    models[1].to(memory_format=torch.channels_last)
    for model in models:
        torch.manual_seed(5)
        initialise(model, WeightInitConfig(scheme="kaiming_normal"))
    assert models[1].block1.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)


# --- augmentation as a variant -----------------------------------------------------------------------


def test_augment_variant_shifts_images_reproducibly_per_step():
    (hook,) = build_hooks({"augment": {"ops": [{"op": "random_crop", "size": 8, "padding": 2}]}})
    state = TrainState(None, None, torch.device("cpu"), torch.zeros(1), 10, 1, seed=0, step=5)
    x = torch.rand(16, 1, 8, 8)
    a, _ = hook.transform_batch(state, None, x, None)
    b, _ = hook.transform_batch(state, None, x, None)
    assert torch.equal(a, b) and not torch.equal(a, x) and a.shape == x.shape
    state.step = 6
    assert not torch.equal(hook.transform_batch(state, None, x, None)[0], a)


# --- LR schedules -----------------------------------------------------------------------------------


def torch_factors(make_scheduler, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


def test_one_cycle_matches_torch_onecyclelr():
    total = 40
    expected = torch_factors(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=total), total)
    ours = [schedule_factor(LRScheduleConfig(kind="one_cycle"), t, t // 10, 10, total) for t in range(total)]
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_cosine_matches_torch_cosineannealinglr_per_step():
    total = 30
    expected = torch_factors(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.1), total)
    ours = [schedule_factor(LRScheduleConfig(kind="cosine", min_factor=0.1), t, 0, 10, total) for t in range(total)]
    assert ours == pytest.approx(expected)


def test_step_and_warmup_by_hand():
    step = LRScheduleConfig(kind="step", step_size=3, gamma=0.1)
    assert [schedule_factor(step, 0, e, 10, 100) for e in (0, 2, 3, 6)] == pytest.approx([1, 1, 0.1, 0.01])
    warm = LRScheduleConfig(kind="warmup", warmup_epochs=1, warmup_start_factor=0.1)
    assert [schedule_factor(warm, t, 0, 10, 100) for t in (0, 5, 10, 50)] == pytest.approx([0.1, 0.55, 1, 1])


def test_variant_schedule_replaces_the_study_schedule():
    cfg = TrainConfig(epochs=4, warmup_epochs=2)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": model.parameters(), "lr_scale": 0.5}], lr=1.0)
    (hook,) = build_hooks({"lr_schedule": {"kind": "step", "step_size": 1, "gamma": 0.5}})
    state = TrainState(
        model,
        opt,
        torch.device("cpu"),
        torch.zeros(1),
        2,
        4,
        steps_per_epoch=10,
        epoch=1,
        step=12,
        train_config=cfg,
    )
    hook.on_fit_start(state)
    hook.on_batch_start(state)
    engine_lr = cfg.lr * lr_factor(1, cfg) * opt.param_groups[0]["lr_scale"]
    assert engine_lr == pytest.approx(cfg.lr * 0.5 * 0.5)  # variant factor 0.5 x the group's own 0.5


@pytest.mark.parametrize(
    "method, args, key",
    [
        ("distill", {"temperature": 0}, "temperature"),
        ("distill", {"alpha": 2}, "alpha"),
        ("pretrained", {}, "checkpoint"),
        ("layerwise_lr", {"layer_decay": 0}, "layer_decay"),
        ("weight_init", {"scheme": "zeros"}, "scheme"),
        ("augment", {"ops": [{"op": "rotate"}]}, "op"),
        ("augment", {"ops": []}, "ops"),
        ("lr_schedule", {"kind": "poly"}, "kind"),
        ("lr_schedule", {"pct_start": 1}, "pct_start"),
    ],
)
def test_bad_settings_are_rejected_by_name(method, args, key):
    with pytest.raises(ConfigError, match=key):
        build_hooks({method: args})
