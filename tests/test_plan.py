"""Every row is what its label says: the resolved plan, its refusals, and the local inputs."""

import copy
import re
import subprocess
import sys

import pytest
import yaml

from curriculum_bench import smoke
from curriculum_bench.config import ConfigError, resolve_run
from curriculum_bench.plan import (
    check_local_inputs,
    check_rows,
    format_plan,
    load_config,
    study_counts,
)

from .conftest import REPO, TINY, snakemake

PAPER = REPO / "config/paper.yaml"


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config([PAPER])


@pytest.fixture
def tiny() -> dict:
    return copy.deepcopy(load_config([TINY]))


def refused(config: dict) -> str:
    with pytest.raises(ConfigError) as err:
        check_rows(config)
    return str(err.value)


# --- paper.yaml: the two rows that were something else --------------------------------------


def test_paper_rows_resolve_as_labelled(paper):
    check_rows(paper)  # passes
    hybrid = paper["studies"]["hybrid"]
    kernel = {"resnet18_cifar": 7, "cvt13": 5, "convnext_tiny": 5}  # HCL: ResNet 7, CvT 5; the extension's 5
    # HCL's ResNet-18 notebook blurs the augmented images; CvT's loader (and its extension) blur alone
    augmented = {"resnet18_cifar": True, "cvt13": False, "convnext_tiny": False}
    for dataset in hybrid["datasets"]:
        for model in hybrid["models"]:
            random_blur = resolve_run(paper, "hybrid", dataset, model, "random_blur", 0)["methods"]["blur"]
            linear = resolve_run(paper, "hybrid", dataset, model, "linear_blur", 0)
            with_lerac = resolve_run(paper, "hybrid", dataset, model, "hybrid_linear_blur", 0)["methods"]["blur"]
            assert random_blur["schedule"] == "random_probability", (dataset, model)
            assert set(linear["methods"]) == {"blur"}  # the control pair differs in the order alone
            assert linear["methods"]["blur"]["schedule"] == with_lerac["schedule"] == "linear_probability"
            for blur in (random_blur, linear["methods"]["blur"], with_lerac):
                assert (blur["sigma"], blur["kernel_size"], blur["blur_epochs"], blur["keep_augmentation"]) == (
                    1.0,
                    kernel[model],
                    20,
                    augmented[model],
                ), (dataset, model)
    assert hybrid["report"]["controls"] == {"linear_blur": "random_blur", "cbs": "cbs_shuffled"}
    # ConvNeXt's own blur (HCL: sigma 2 -> 0 over 5 epochs, kernel 21 at 224 px; x 32/224 on CIFAR)
    for dataset, sigma, kernel_size in (("imagenet100", 2.0, 21), ("cifar10", 0.29, 3)):
        for variant in ("blur", "hybrid"):
            blur = resolve_run(paper, "hybrid", dataset, "convnext_tiny", variant, 0)["methods"]["blur"]
            assert (blur["schedule"], blur["sigma"], blur["kernel_size"]) == ("linear_sigma", sigma, kernel_size)


def test_the_old_convnext_blur_override_is_refused_naming_study_variant_and_setting(paper):
    config = copy.deepcopy(paper)
    overrides = config["studies"]["hybrid"]["overrides"]
    # paper.yaml before: one blur setting for every ConvNeXt variant, the CIFAR kernel for all of them
    overrides["convnext_tiny"]["methods"] = {
        "blur": {
            "schedule": "linear_sigma",
            "blur_epochs": 5,
            "sigma": 2.0,
            "kernel_size": 21,
            "keep_augmentation": True,
        }
    }
    del overrides["convnext_tiny"]["variants"]["random_blur"]
    overrides["cifar10/convnext_tiny"]["methods"] = {"blur": {"sigma": 0.29, "kernel_size": 3, "min_sigma": 0.014}}
    message = refused(config)
    assert (
        "studies.hybrid.overrides.convnext_tiny.methods.blur: changes what variant random_blur sets "
        "(studies.hybrid.variants.random_blur): schedule random_probability -> linear_sigma"
    ) in message
    assert "name the variant (overrides.convnext_tiny.variants.random_blur)" in message
    assert (
        "studies.hybrid.overrides.cifar10/convnext_tiny.methods.blur: changes what variant hybrid_linear_blur "
        "sets (studies.hybrid.overrides.convnext_tiny.variants.hybrid_linear_blur): kernel_size 5 -> 3"
    ) in message
    # and the outcome, two labels for one run:
    assert re.search(
        r"studies\.hybrid\.variants: blur, random_blur resolve to the same run on "
        r"imagenet100/convnext_tiny \(seeds 0, 1, 2\): blur\.schedule \(constant in blur, "
        r"random_probability in random_blur\) becomes linear_sigma in all of them, set by "
        r"studies\.hybrid\.overrides\.convnext_tiny\.methods",
        message,
    ), message


def test_paper_progressive_dropout_variants_drive_only_the_conv_dropout(paper):
    torch = pytest.importorskip("torch")
    from curriculum_bench.models import create_model
    from curriculum_bench.train.hooks import TrainState, build_hooks

    run = resolve_run(paper, "techniques", "mnist_first10pct", "mlt_convnet", "progressive_dropout_script", 0)
    assert run["model_args"] == {"input_dropout": True, "fc_dropout": True}
    model = create_model("mlt_convnet", (1, 28, 28), 10, **run["model_args"])
    (hook,) = build_hooks(run["methods"])
    state = TrainState(model, None, torch.device("cpu"), torch.zeros(1, dtype=torch.long), 10, 5, epoch=2, step=400)
    hook.on_fit_start(state)
    hook.on_epoch_start(state)
    assert (model.drop1.p, model.drop2.p, model.drop_in.p, model.drop_fc.p) == (1.0, 1.0, 0.0, 0.0)


# --- the refusals, each on a small config ---------------------------------------------------


def test_two_variants_resolving_to_the_same_run_are_refused_by_name(tiny):
    variants = tiny["studies"]["hybrid"]["variants"]
    variants["hybrid_again"] = copy.deepcopy(variants["hybrid"])
    assert refused(tiny).endswith(
        "studies.hybrid.variants: hybrid, hybrid_again resolve to the same run on digits_sklearn/mlt_convnet "
        "(seeds 0): their own settings are equal"
    )


def test_a_variant_named_override_that_erases_the_difference_is_refused(tiny):
    study = tiny["studies"]["techniques"]
    study["variants"]["dropout_late"] = {
        "progressive_dropout": {"schedule": "linear_epoch", "start": 0.0, "end": 0.5, "end_epoch": 2}
    }
    study["overrides"] = {"mlt_convnet": {"variants": {"dropout_late": {"progressive_dropout": {"end_epoch": 1}}}}}
    message = refused(tiny)
    assert (
        "studies.techniques.variants: progressive_dropout, dropout_late resolve to the same run on "
        "digits_sklearn/mlt_convnet (seeds 0, 1): progressive_dropout.end_epoch (1 in progressive_dropout, "
        "2 in dropout_late) becomes 1 in all of them, set by studies.techniques.overrides.mlt_convnet.variants."
        "dropout_late, studies.techniques.variants.progressive_dropout"
    ) in message


def test_an_override_for_every_variant_may_not_change_what_a_variant_sets(tiny):
    study = tiny["studies"]["hybrid"]
    study["overrides"] = {"digits_sklearn": {"methods": {"blur": {"sigma": 2.0, "keep_augmentation": True}}}}
    message = refused(tiny)
    assert message.startswith("studies: 1 row(s) would not be what they say")
    assert (
        "studies.hybrid.overrides.digits_sklearn.methods.blur: changes what variant hybrid sets "
        "(studies.hybrid.variants.hybrid): sigma 1.0 -> 2.0 on digits_sklearn/mlt_convnet"
    ) in message
    # what the variant leaves open may be set for every variant; named, the variant's own may change
    study["overrides"] = {
        "digits_sklearn": {
            "methods": {"blur": {"keep_augmentation": True}},
            "variants": {"hybrid": {"blur": {"sigma": 2.0}}},
        }
    }
    check_rows(tiny)
    blur = resolve_run(tiny, "hybrid", "digits_sklearn", "mlt_convnet", "hybrid", 0)["methods"]["blur"]
    assert blur == {"blur_epochs": 1, "sigma": 2.0, "kernel_size": 3, "keep_augmentation": True}


@pytest.mark.parametrize(
    "section, entry, expected",
    [
        (
            "overrides",
            {"mlt_convnett": {"train": {"lr": 0.5}}},
            (
                "studies.hybrid.overrides.mlt_convnett: names no dataset, model or dataset/model of study hybrid "
                "(datasets ['digits_sklearn'], models ['mlt_convnet']), so it would change no run"
            ),
        ),
        (
            "overrides",
            {"digits_sklearn/mlt_convnett": {"train": {"lr": 0.5}}},
            "studies.hybrid.overrides.digits_sklearn/mlt_convnett: names no dataset, model or dataset/model",
        ),
        (
            "overrides",
            {"mlt_convnet": {"variants": {"hybird": {"blur": {"sigma": 2.0}}}}},
            (
                "studies.hybrid.overrides.mlt_convnet.variants.hybird: study hybrid has no variant 'hybird' "
                "(variants ['baseline', 'hybrid'])"
            ),
        ),
        (
            "overrides",
            {"mlt_convnet": {"methods": {"weighted_sampling": {"replacement": False}}}},
            (
                "studies.hybrid.overrides.mlt_convnet.methods.weighted_sampling: no variant of study hybrid uses "
                "weighted_sampling"
            ),
        ),
        (
            "overrides",
            {"mlt_convnet": {"variants": {"baseline": {"blur": {"sigma": 2.0}}}}},
            "studies.hybrid.overrides.mlt_convnet.variants.baseline.blur: variant baseline does not use blur",
        ),
        (
            "resources",
            {"mlt_convnett": {"gpu": 2}},
            "studies.hybrid.resources.mlt_convnett: names no dataset, model or dataset/model of study hybrid",
        ),
    ],
)
def test_an_override_or_resources_key_naming_nothing_is_refused(tiny, section, entry, expected):
    tiny["studies"]["hybrid"][section] = entry
    assert expected in refused(tiny)


def test_coreset_resources_keys_are_its_stage_models(tiny):
    tiny["studies"]["coreset"]["resources"]["mlt_convnet_finetune"] = {"runtime": 9}
    check_rows(tiny)
    tiny["studies"]["coreset"]["resources"]["resnet50"] = {"runtime": 9}
    assert "studies.coreset.resources.resnet50: names no dataset, model" in refused(tiny)


def test_default_configs_pass_and_need_no_local_input(tmp_path):
    for files in ([], [TINY], [PAPER]):
        check_rows(load_config(files))
    check_local_inputs(load_config([]), tmp_path)
    check_local_inputs(load_config([TINY]), tmp_path)


# --- local inputs ---------------------------------------------------------------------------


def test_paper_local_inputs_are_all_named_with_source_and_checksum(paper, tmp_path):
    with pytest.raises(ConfigError) as err:
        check_local_inputs(paper, tmp_path)
    message = str(err.value)
    assert message.startswith("4 local input(s) missing")
    for path, key in (
        ("resources/raw/imagenet", "datasets.imagenet.path"),
        ("resources/raw/imagenet100", "datasets.imagenet100.path"),
        ("resources/pretrained/resnet18-f37072fd.pth", "studies.coreset.proxy.models.resnet18_finetune.pretrained"),
        ("resources/pretrained/resnet50-0676ba61.pth", "studies.coreset.core.models.resnet50.pretrained"),
    ):
        assert f"  - {path}  ({key})" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "checksum: sha256 starts with 0676ba61" in message
    assert "wilyzh/imagenet100" in message and "image-net.org" in message
    # the pretrained variant's checkpoint and the distillation teacher are runs of this workflow
    assert "final_model.pt" not in message
    for path in ("resources/raw/imagenet", "resources/raw/imagenet100"):
        (tmp_path / path).mkdir(parents=True)
    (tmp_path / "resources/pretrained").mkdir()
    (tmp_path / "resources/pretrained/resnet18-f37072fd.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"^1 local input\(s\) missing(.|\n)*resnet50-0676ba61\.pth"):
        check_local_inputs(paper, tmp_path)


def with_local_inputs(tiny: dict) -> dict:
    """.test/config.yaml plus one of each kind of local input, none of them present."""
    tiny["datasets"]["imagenet_small"] = {"source": "imagenet100", "path": "raw/imagenet_small", "image_size": 8}
    tiny["datasets"]["cifar_offline"] = {"source": "cifar10", "data_root": "raw/cifar", "download": False}
    tiny["studies"]["techniques"]["models"]["mlt_convnet"] = {"weights": "weights/convnet.pt"}
    tiny["studies"]["techniques"]["variants"]["distill"] = {"distill": {"teacher_checkpoint": "weights/teacher.pt"}}
    tiny["studies"]["techniques"]["variants"]["from_baseline"] = {
        "pretrained": {"checkpoint": "results/techniques/digits_sklearn/mlt_convnet/baseline/seed0/final_model.pt"}
    }
    tiny["studies"]["coreset"]["core"]["models"]["mlt_convnet_finetune"]["pretrained"] = "weights/core.pt"
    return tiny


MISSING = [
    "raw/imagenet_small",
    "raw/cifar/cifar-10-batches-py",
    "weights/convnet.pt",
    "weights/teacher.pt",
    "weights/core.pt",
]


def test_every_kind_of_local_input_is_listed(tiny, tmp_path):
    with pytest.raises(ConfigError) as err:
        check_local_inputs(with_local_inputs(tiny), tmp_path)
    listed = re.findall(r"^  - (\S+)  \(", str(err.value), flags=re.MULTILINE)
    assert listed == MISSING  # the baseline run's final_model.pt is made by the workflow
    assert "      or: raw/cifar/cifar-10-python.tar.gz" in str(err.value)
    (tmp_path / "raw/cifar").mkdir(parents=True)
    (tmp_path / "raw/cifar/cifar-10-python.tar.gz").write_bytes(b"")  # torchvision's archive does too
    with pytest.raises(ConfigError) as err:
        check_local_inputs(tiny, tmp_path)
    assert re.findall(r"^  - (\S+)  \(", str(err.value), flags=re.MULTILINE) == [
        path for path in MISSING if "cifar" not in path
    ]


@pytest.mark.workflow
def test_a_dry_run_lists_every_missing_local_input_at_once(tiny, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(with_local_inputs(tiny)))
    result = snakemake(tmp_path, "--configfile", str(config), "-n", timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "5 local input(s) missing: the config reads them and no rule makes them" in output, output[-3000:]
    for path in MISSING:
        assert f"  - {path}  (" in output
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_paper_dry_run_lists_its_missing_inputs_in_one_message(tmp_path):
    result = snakemake(tmp_path, "--configfile", str(PAPER), "-n", timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "4 local input(s) missing" in output, output[-3000:]
    assert "MissingInputException" not in output
    for name in ("imagenet", "imagenet100", "resnet18-f37072fd.pth", "resnet50-0676ba61.pth"):
        assert re.search(rf"  - resources/\S+/{re.escape(name)}  \(", output), name


# --- the plan -------------------------------------------------------------------------------


def test_plan_counts_match_the_readme(paper):
    counts = {study: study_counts(paper, study) for study in paper["studies"]}
    # plain: cvt13 on both datasets and convnext_tiny on cifar10; cbs, cbs_shuffled: cifar10/resnet18_cifar
    assert counts["hybrid"][0] == 141 and len(counts["hybrid"][1]) == 10
    assert (counts["hybrid"][1]["plain"], counts["hybrid"][1]["cbs"], counts["hybrid"][1]["cbs_shuffled"]) == (9, 3, 3)
    # transfer_source, mim_pretrain and moco_pretrain: 1 dataset each
    assert counts["techniques"][0] == 159 and len(counts["techniques"][1]) == 28
    text = format_plan(paper, ["hybrid"])
    assert "== hybrid: 141 runs (2 dataset(s) x 3 model(s) x 10 variants x 3 seed(s))" in text
    assert re.search(
        r"random_blur +train\.warmup_epochs=5 \[convnext_tiny\]  blur\.blur_epochs=20  "
        r"blur\.schedule=random_probability\s+blur\.sigma=1\.0  blur\.kernel_size 7 -> 5 \[convnext_tiny variants\]",
        text,
    ), text
    clab = format_plan(paper, ["techniques"])  # a variant's own train settings, as a diff
    assert re.search(r"curriculum_labeling +train\.epochs 10 -> 60  curriculum_labeling\.", clab), clab


def plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "curriculum_bench", "plan", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_plan_command_prints_counts_and_each_variants_diff():
    result = plan("--configfile", str(TINY))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "runs per study: techniques 8, contrastive 2, data_parameters 2, coreset 10, hybrid 2; total 24" in out
    assert "== hybrid: 2 runs (1 dataset(s) x 1 model(s) x 2 variants x 1 seed(s))" in out
    assert "  runs per variant: baseline 2, weighted_sampling 2, progressive_dropout 2, self_labeling 2" in out
    assert (
        "  baseline (studies.hybrid.train): epochs=2  batch_size=64  optimizer=sgd  lr=0.05  schedule=constant\n"
        "  -- digits_sklearn / mlt_convnet (seeds 0)\n"
        "    baseline        (the baseline)\n"
        "    hybrid          lerac.lerac_epochs=1  lerac.eta_min=1e-06  blur.blur_epochs=1  blur.sigma=1.0" in out
    )
    # what an override sets for every variant is marked with its key
    assert re.search(
        r"    every variant:  model\.encoder=mlt_convnet .*\s+.*simclr\.probe_epochs=\[1\] \[simclr\]\n"
        r"    ntxent          \(nothing more\)\n",
        out,
    ), out


def test_plan_merges_configfiles_as_snakemake_and_takes_a_study(tmp_path):
    overlay = tmp_path / "more_seeds.yaml"
    overlay.write_text(yaml.safe_dump({"studies": {"hybrid": {"seeds": [0, 1, 2], "train": {"lr": 0.1}}}}))
    result = plan("--configfile", str(TINY), str(overlay), "hybrid")
    assert result.returncode == 0, result.stderr
    assert "== hybrid: 6 runs" in result.stdout and "== techniques" not in result.stdout
    assert "lr=0.1" in result.stdout  # deep-merged: the rest of hybrid's train stays
    assert "epochs=2" in result.stdout


def test_plan_command_refuses_a_bad_config_after_printing_it(tiny, tmp_path):
    tiny["studies"]["hybrid"]["overrides"] = {"mlt_convnett": {"train": {"lr": 0.5}}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny))
    result = plan("--configfile", str(bad))
    assert result.returncode == 2
    assert "== hybrid" in result.stdout
    assert "error: studies: 1 row(s) would not be what they say" in result.stderr
    assert "studies.hybrid.overrides.mlt_convnett: names no dataset" in result.stderr
    tiny["studies"]["hybrid"]["train"]["epochs"] = 0
    bad.write_text(yaml.safe_dump(tiny))
    result = plan("--configfile", str(bad))
    assert result.returncode == 2
    assert "error: studies.hybrid.train.epochs: 0 is less than the minimum of 1" in result.stderr


def test_paper_runs_cifar_1k_frozen_proxy_beside_the_trainable_one(paper):
    """C1K's freeze_weights_proxy: a frozen ResNet-18 proxy with the proxy's own settings, ranking its
    own coresets for the same ResNet-50 core runs; the smoke run trains a row of each."""
    from curriculum_bench.coreset import plan as coreset_plan

    args = ("cifar10_val_tail", "resnet18_finetune")
    frozen = coreset_plan.resolve_coreset_run(paper, *args, "frozen_proxy", 0)
    trainable = coreset_plan.resolve_coreset_run(paper, *args, "proxy", 0)
    assert frozen["model_args"] == {**trainable["model_args"], "freeze_backbone": True}
    assert trainable["model_args"]["pretrained"] == frozen["model_args"]["pretrained"]
    assert frozen["train"] == trainable["train"] and frozen["train"]["epochs"] == 20
    core = ("cifar10_val_tail", "resnet50")
    for backbone, freeze in (("finetune", False), ("frozen", True), ("frozen_dropout", True)):
        by_frozen = coreset_plan.resolve_coreset_run(paper, *core, f"reverse_{backbone}_by_frozen_proxy", 0)
        same_core = coreset_plan.resolve_coreset_run(paper, *core, f"reverse_{backbone}", 0)
        assert by_frozen["model_args"] == same_core["model_args"] and by_frozen["train"] == same_core["train"]
        assert by_frozen["model_args"]["freeze_backbone"] is freeze and by_frozen["train"]["epochs"] == 150
        assert by_frozen["methods"]["coreset_subset"]["selection"].endswith("/selections/reverse_by_frozen_proxy.json")
        controls = paper["studies"]["coreset"]["report"]["controls"]
        assert controls[f"reverse_{backbone}_by_frozen_proxy"] == f"random_{backbone}"
    ran = {r["variant"] for r in smoke.smoke_plan(paper).selected["coreset"]}
    assert {"proxy", "frozen_proxy"} <= ran and any(v.endswith("_by_frozen_proxy") for v in ran)
