"""Workflow config -> one resolved run config per (study, dataset, model, variant, seed).

Pure Python with no torch import, so the Snakefile can use it to plan jobs. The workflow
config is validated against workflow/schemas/config.schema.yaml first; this module assumes that shape.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

RUN_DIR = "results/{study}/{dataset}/{model}/{variant}/seed{seed}"
METRICS = RUN_DIR + "/metrics.json"
PROBE_METRICS = RUN_DIR + "/probe_metrics.json"  # linear evaluation of a contrastive run
CHECKPOINT = "checkpoints/{study}/{dataset}/{model}/{variant}/seed{seed}.pt"


class ConfigError(ValueError):
    """A config value that is wrong; the message starts with the key's dotted path."""


def config_from_dict(cls, values: dict | None, where: str):
    """Build dataclass `cls` from a config mapping; an unknown key is an error naming it."""
    values = dict(values or {})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; expected one of {sorted(fields)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def iter_runs(config: dict) -> Iterator[dict]:
    """Every run the config asks for, in config order (which is also table row order).

    The coreset study has stages of its own shape; coreset.plan.iter_coreset_runs plans it.
    """
    for study, spec in config["studies"].items():
        if study == "coreset":
            continue
        for dataset, model, variant in study_cells(spec):
            for seed in variant_seeds(spec, variant):
                yield {"study": study, "dataset": dataset, "model": model, "variant": variant, "seed": seed}


def scored_by_linear_probe(config: dict, study: str) -> bool:
    """A study whose variants pretrain with SimCLR is scored by linear evaluation, not by
    the pretraining run's own accuracy."""
    variants = config["studies"][study].get("variants") or {}  # the coreset study has stages instead
    return any("simclr" in (methods or {}) for methods in variants.values())


def run_dir(study: str, dataset: str, model: str, variant: str, seed: int | str) -> str:
    return RUN_DIR.format(study=study, dataset=dataset, model=model, variant=variant, seed=seed)


# A variant is {method name: settings}, plus optionally its own `train` settings (the epochs of
# a multi-round method, one point of a batch-size sweep), its own `datasets` (a transfer
# source trained on a dataset no other variant uses), `only` (the dataset, model or
# dataset/model entries it runs on, as `overrides` keys name them: a method made for one
# model, a control where the recipe it removes exists) and its own `seeds` (more seeds for the
# rows a claim compares than for the rest). These reserved keys name no method.
VARIANT_TRAIN = "train"
VARIANT_DATASETS = "datasets"
VARIANT_ONLY = "only"
VARIANT_SEEDS = "seeds"
VARIANT_KEYS = (VARIANT_TRAIN, VARIANT_DATASETS, VARIANT_ONLY, VARIANT_SEEDS)


def variant_methods(variant_spec: dict | None) -> dict:
    """A variant's (or an override's variant entry's) methods, without its reserved keys."""
    return {name: args for name, args in (variant_spec or {}).items() if name not in VARIANT_KEYS}


def variant_datasets(spec: dict, variant: str) -> list[str]:
    """The datasets a variant runs on: its own `datasets`, else the study's."""
    return list((spec["variants"][variant] or {}).get(VARIANT_DATASETS) or spec["datasets"])


def variant_seeds(spec: dict, variant: str) -> list[int]:
    """The seeds a variant runs: its own `seeds`, else the study's."""
    return list((spec["variants"][variant] or {}).get(VARIANT_SEEDS) or spec["seeds"])


def variant_runs_on(spec: dict, variant: str, dataset: str, model: str) -> bool:
    """Whether the variant has a row for (dataset, model): every one, or those its `only` names."""
    only = (spec["variants"][variant] or {}).get(VARIANT_ONLY)
    return not only or any(key in only for key in override_keys(dataset, model))


def study_datasets(spec: dict) -> list[str]:
    """Every dataset some variant of the study runs on, the study's own first."""
    names = list(spec["datasets"])
    for variant in spec["variants"]:
        names += [d for d in variant_datasets(spec, variant) if d not in names]
    return names


def study_cells(spec: dict) -> Iterator[tuple[str, str, str]]:
    """(dataset, model, variant) of every table row of a (non-coreset) study, in row order."""
    for dataset in study_datasets(spec):
        for model in spec["models"]:
            for variant in spec["variants"]:
                if dataset in variant_datasets(spec, variant) and variant_runs_on(spec, variant, dataset, model):
                    yield dataset, model, variant


def variant_train(variant_spec: dict | None) -> dict:
    return dict((variant_spec or {}).get(VARIANT_TRAIN) or {})


def override_keys(dataset: str, model: str) -> tuple[str, str, str]:
    """The `overrides` (and `resources`) entries that apply to a run, least specific first."""
    return dataset, model, f"{dataset}/{model}"


@dataclasses.dataclass(frozen=True)
class Layer:
    """One place of the config that sets a run's settings, as resolve_run applies it.

    kind: `study` (the study's train), `variant` (the variant's own train and method settings),
    `override` (overrides.<key>.train / .methods: every variant) or `variant_override`
    (overrides.<key>.variants.<variant>: this variant only).
    """

    where: str
    kind: str
    train: dict
    methods: dict


def run_layers(config: dict, study: str, dataset: str, model: str, variant: str) -> list[Layer]:
    """Where a run's train and method settings come from, in the order resolve_run applies them
    (a later layer wins)."""
    spec = config["studies"][study]
    for key, name in (("models", model), ("variants", variant)):
        if name not in spec[key]:
            raise ConfigError(f"studies.{study}.{key}: no entry {name!r}; have {list(spec[key])}")
    if dataset not in variant_datasets(spec, variant):
        raise ConfigError(
            f"studies.{study}.datasets: variant {variant!r} runs on {variant_datasets(spec, variant)}, not {dataset!r}"
        )
    if not variant_runs_on(spec, variant, dataset, model):
        raise ConfigError(
            f"studies.{study}.variants.{variant}.only: the variant runs only on "
            f"{spec['variants'][variant][VARIANT_ONLY]}, not on {dataset}/{model}"
        )
    layers = [
        Layer(f"studies.{study}.train", "study", dict(spec["train"]), {}),
        Layer(
            f"studies.{study}.variants.{variant}",
            "variant",
            variant_train(spec["variants"][variant]),
            {name: dict(args or {}) for name, args in variant_methods(spec["variants"][variant]).items()},
        ),
    ]
    # `overrides`: per dataset, model or dataset/model (later, more specific entries win),
    # train settings, and settings of the methods a variant already uses: `methods` for every
    # variant, `variants` for one (a model's own LR, a blur kernel for its image size).
    for key in override_keys(dataset, model):
        override = (spec.get("overrides") or {}).get(key) or {}
        where = f"studies.{study}.overrides.{key}"
        layers.append(
            Layer(
                where,
                "override",
                dict(override.get("train") or {}),
                {name: dict(args or {}) for name, args in (override.get("methods") or {}).items()},
            )
        )
        mine = (override.get("variants") or {}).get(variant) or {}
        layers.append(
            Layer(
                f"{where}.variants.{variant}",
                "variant_override",
                variant_train(mine),
                {name: dict(args or {}) for name, args in variant_methods(mine).items()},
            )
        )
    return layers


def resolve_run_sources(
    config: dict, study: str, dataset: str, model: str, variant: str, seed: int
) -> tuple[dict, dict[str, str]]:
    """resolve_run's config, and for each setting ("train.lr", "methods.blur.sigma") the
    config path of the layer that set its value (the last one to set it)."""
    spec = config["studies"][study]
    layers = run_layers(config, study, dataset, model, variant)
    train: dict = {}
    methods: dict = {name: {} for name in layers[1].methods}  # an override never adds a method
    sources: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.train.items():
            train[key] = value
            sources[f"train.{key}"] = layer.where if layer.kind == "study" else f"{layer.where}.train"
        for name, args in layer.methods.items():
            if name in methods:
                for key, value in args.items():
                    methods[name][key] = value
                    sources[f"methods.{name}.{key}"] = (
                        f"{layer.where}.methods" if layer.kind == "override" else layer.where
                    )
    run = {
        "study": study,
        "dataset": dataset,
        "model": model,
        "model_args": dict(spec["models"][model] or {}),
        "variant": variant,
        "methods": methods,
        "seed": int(seed),
        "train": train,
    }
    return run, sources


def resolve_run(config: dict, study: str, dataset: str, model: str, variant: str, seed: int) -> dict:
    """Everything that determines one run's result, as plain JSON-able data.

    The trainer stores it in its checkpoint and in metrics.json; a checkpoint whose resolved
    config differs is not resumed. plan.check_rows refuses a config in which an override
    for every variant changes a setting that a variant sets itself.
    """
    return resolve_run_sources(config, study, dataset, model, variant, seed)[0]


@dataclasses.dataclass(frozen=True)
class OverrideConflict:
    """An override for every variant (`where`) that changes `setting` (method.key, or train.key),
    which the variant itself, or an override naming it, set to another value (at `set_at`)."""

    where: str
    setting: str
    old: Any
    new: Any
    set_at: str


def override_conflicts(config: dict, study: str, dataset: str, model: str, variant: str) -> list[OverrideConflict]:
    """Settings of a variant that an override for every variant silently rewrites.

    An `overrides.<key>.methods` entry may set what the variant leaves open; changing what
    the variant sets (its own settings, or an `overrides.<key>.variants.<variant>` entry
    applied before it) needs the variant named: `overrides.<key>.variants.<variant>`.
    """
    layers = run_layers(config, study, dataset, model, variant)
    used = set(layers[1].methods)
    explicit: dict[str, tuple[Any, str]] = {}  # method.key -> (value, where) set for this variant
    conflicts = []
    for layer in layers[1:]:
        for key, value in layer.train.items():
            setting = f"train.{key}"
            if layer.kind == "override":
                if setting in explicit and explicit[setting][0] != value:
                    conflicts.append(
                        OverrideConflict(
                            f"{layer.where}.train", setting, explicit[setting][0], value, explicit[setting][1]
                        )
                    )
            else:
                explicit[setting] = (value, f"{layer.where}.train")
        for name, args in layer.methods.items():
            if name not in used:
                continue
            for key, value in args.items():
                setting = f"{name}.{key}"
                if layer.kind == "override":
                    if setting in explicit and explicit[setting][0] != value:
                        conflicts.append(
                            OverrideConflict(
                                f"{layer.where}.methods.{name}",
                                setting,
                                explicit[setting][0],
                                value,
                                explicit[setting][1],
                            )
                        )
                else:
                    explicit[setting] = (value, layer.where)
    return conflicts


def to_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths at which two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [p for k in keys for p in diff_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".") or "<root>"]


def check_references(config: dict) -> None:
    """Cross-references that JSON Schema cannot express: studies name defined datasets,
    and a derived dataset derives from a defined one, without a cycle."""
    datasets = config["datasets"]
    for name, spec in datasets.items():
        seen = [name]
        while spec.get("source") == "derived":
            base = spec["from"]
            if base not in datasets:
                raise ConfigError(
                    f"datasets.{seen[-1]}.from: {base!r} is not defined under `datasets` (defined: {sorted(datasets)})"
                )
            if base in seen:
                raise ConfigError(f"datasets.{name}.from: derivation cycle {' -> '.join(seen + [base])}")
            seen.append(base)
            spec = datasets[base]
    for study, spec in config["studies"].items():
        places = [(f"studies.{study}.datasets", spec["datasets"])]
        if study != "coreset":
            places += [
                (f"studies.{study}.variants.{v}.datasets", (s or {}).get(VARIANT_DATASETS) or [])
                for v, s in spec["variants"].items()
            ]
        for where, names in places:
            for dataset in names:
                if dataset not in config["datasets"]:
                    raise ConfigError(
                        f"{where}: {dataset!r} is not defined under `datasets` (defined: {sorted(config['datasets'])})"
                    )
        if study != "coreset":
            check_variant_only(study, spec)


def check_variant_only(study: str, spec: dict) -> None:
    """A variant's `only` names datasets, models or dataset/model pairs of the study, and at
    least one of its rows."""
    cells = {(d, m) for d in study_datasets(spec) for m in spec["models"]}
    keys = {key for d, m in cells for key in override_keys(d, m)}
    for variant, variant_spec in spec["variants"].items():
        only = (variant_spec or {}).get(VARIANT_ONLY)
        if not only:
            continue
        where = f"studies.{study}.variants.{variant}.only"
        for key in only:
            if key not in keys:
                raise ConfigError(f"{where}: {key!r} is no dataset, model or dataset/model of the study")
        if not any(d in variant_datasets(spec, variant) and variant_runs_on(spec, variant, d, m) for d, m in cells):
            raise ConfigError(f"{where}: {only} leaves the variant no row on its datasets")


DEFAULT_JOB_RESOURCES = {"gpu": 0, "mem_mb": 2000, "runtime": 30, "cpus_per_gpu": 1, "gpu_share": 1}


def job_resources(config: dict, study: str, dataset: str, model: str) -> dict:
    """What one training run asks a scheduler for on its first attempt.

    `studies.<study>.resources` maps `default`, a dataset, a model or `dataset/model` to
    {gpu, mem_mb, runtime (minutes), cpus_per_gpu, gpu_share}; later, more specific entries
    win. `gpu_share` > 1 lets that many runs share each GPU (see `scheduler_resources`).
    """
    table = config["studies"][study].get("resources") or {}
    merged = dict(DEFAULT_JOB_RESOURCES)
    for key in ("default", dataset, model, f"{dataset}/{model}"):
        merged.update(table.get(key) or {})
    return merged


def scheduler_resources(resources: dict) -> dict:
    """What the train rule tells Snakemake: exclusive GPUs as `gpu`, shared ones as `gres`.

    An exclusive run asks for `gpu` GPUs (sbatch --gpus; counted against `--resources gpu=N`
    on a workstation). A shared run (gpu_share > 1) asks for `gres: gpu:N` instead and one
    `gpu_slot`: Snakemake keeps an identical string resource as it is when it groups jobs,
    where it would add `gpu` up, so a SLURM group of shared runs books N GPUs for all of
    them; a workstation offers GPUs x gpu_share `gpu_slot`s (profiles/local).
    """
    shared = resources["gpu"] > 0 and resources["gpu_share"] > 1
    return {
        "gpu": 0 if shared else resources["gpu"],
        "gres": f"gpu:{resources['gpu']}" if shared else "",
        "gpu_slot": 1 if shared else 0,
    }
