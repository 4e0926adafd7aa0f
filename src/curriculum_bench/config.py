"""Workflow config -> one resolved run config per (study, dataset, model, variant, seed).

Pure Python with no torch import, so the Snakefile can use it to plan jobs. The workflow
config is validated against config/schema.yaml first; this module assumes that shape.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterator

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
        for dataset in spec["datasets"]:
            for model in spec["models"]:
                for variant in spec["variants"]:
                    for seed in spec["seeds"]:
                        yield dict(study=study, dataset=dataset, model=model, variant=variant, seed=seed)


def scored_by_linear_probe(config: dict, study: str) -> bool:
    """A study whose variants pretrain with SimCLR is scored by linear evaluation, not by
    the pretraining run's own accuracy."""
    variants = config["studies"][study].get("variants") or {}  # the coreset study has stages instead
    return any("simclr" in (methods or {}) for methods in variants.values())


def run_dir(study: str, dataset: str, model: str, variant: str, seed: int | str) -> str:
    return RUN_DIR.format(study=study, dataset=dataset, model=model, variant=variant, seed=seed)


def resolve_run(config: dict, study: str, dataset: str, model: str, variant: str, seed: int) -> dict:
    """Everything that determines one run's result, as plain JSON-able data.

    The trainer stores it in its checkpoint and in metrics.json; a checkpoint whose resolved
    config differs is not resumed.
    """
    spec = config["studies"][study]
    for key, name in (("datasets", dataset), ("models", model), ("variants", variant)):
        if name not in spec[key]:
            raise ConfigError(f"studies.{study}.{key}: no entry {name!r}; have {list(spec[key])}")
    train = dict(spec["train"])
    methods = {name: dict(args or {}) for name, args in (spec["variants"][variant] or {}).items()}
    # `overrides`: per dataset, model or dataset/model (later, more specific entries win),
    # train settings, and settings of the methods a variant already uses: `methods` for every
    # variant, `variants` for one (a model's own LR, a blur kernel for its image size).
    for key in (dataset, model, f"{dataset}/{model}"):
        override = (spec.get("overrides") or {}).get(key) or {}
        train.update(override.get("train") or {})
        for source in (override.get("methods"), (override.get("variants") or {}).get(variant)):
            for name, args in (source or {}).items():
                if name in methods:
                    methods[name].update(args or {})
    return {
        "study": study,
        "dataset": dataset,
        "model": model,
        "model_args": dict(spec["models"][model] or {}),
        "variant": variant,
        "methods": methods,
        "seed": int(seed),
        "train": train,
    }


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
                raise ConfigError(f"datasets.{seen[-1]}.from: {base!r} is not defined under "
                                  f"`datasets` (defined: {sorted(datasets)})")
            if base in seen:
                raise ConfigError(f"datasets.{name}.from: derivation cycle {' -> '.join(seen + [base])}")
            seen.append(base)
            spec = datasets[base]
    for study, spec in config["studies"].items():
        for dataset in spec["datasets"]:
            if dataset not in config["datasets"]:
                raise ConfigError(f"studies.{study}.datasets: {dataset!r} is not defined under "
                                  f"`datasets` (defined: {sorted(config['datasets'])})")


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
