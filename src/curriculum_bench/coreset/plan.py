"""The coreset study's stages as files and runs: planning for workflow/rules/coreset.smk.

Pure Python with no torch import. The study section (workflow/schemas/config.schema.yaml `$defs.coreset_study`)
has one block per stage, spec/methods.md §5:

    proxy      models (one) + train + seeds, trained with the `forgetting` hook (§5.1, §5.2 proxy)
    stats      never_learned treatment (`presentations` FE | `max_plus_one` C1K); `from_file`:
               precomputed statistics (C1K's continue_from_selection), no proxy runs
    selection  methods, size, tie_break, class_balanced, seed (§5.2 `create_coreset`)
    core       models (one) + train + seeds, backbones [finetune, frozen, frozen_dropout], on each
               selection (§5.2 core); `head_dropout` for frozen_dropout; optional `full`: the core
               model on the whole train set (its own `train` over the core's), variant full_finetune
    removal    optional: models (one) + train + seeds, removed [k ...], orders [forgetting, random] (§5.1)

Every stage trains through the engine and lands where every run lands,
results/coreset/<dataset>/<model>/<variant>/seed<s>/, so the generic study table and figures
read it. Variants: `proxy`; `<method>_<backbone>` for core runs (`reverse_frozen`) and
`full_finetune` for the core model on the whole train set; `remove_0` (the full training set)
and `remove_<order>_<k>` for the removal curve.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from ..config import ConfigError, run_dir

STUDY = "coreset"
PROXY = "proxy"
# `model_args.pretrained: proxy` starts a core run from the first proxy seed's final weights.
PRETRAINED_FROM_PROXY = "proxy"

STATS_NPZ = "results/coreset/{dataset}/stats/forgetting_stats.npz"
STATS_CSV = "results/coreset/{dataset}/stats/forgetting_stats.csv"
SELECTION = "results/coreset/{dataset}/selections/{selection}.json"
PROXY_ARTIFACT = "forgetting.npz"
FINAL_MODEL = "final_model.pt"
FULL = "full_finetune"  # the core model fine-tuned on the whole train set (C1K's 93.0 % row)
FROZEN = ("frozen", "frozen_dropout")  # backbone modes that freeze the pretrained weights
DEFAULT_HEAD_DROPOUT = 0.5  # torch's nn.Dropout() default, which C1K's `dropout=True` head uses (inferred)


def study(config: dict) -> dict:
    return config["studies"][STUDY]


def stage_model(block: dict) -> tuple[str, dict]:
    """A stage's one model (`models: {name: args}`, as a study's models map) and its args."""
    ((name, args),) = block["models"].items()
    return name, dict(args or {})


def core_variant(method: str, backbone: str) -> str:
    return f"{method}_{backbone}"


def removal_variant(order: str | None, k: int) -> str:
    return "remove_0" if k == 0 else f"remove_{order}_{k}"


def removal_selection(order: str, k: int) -> str:
    return f"removal_{order}_{k}"


def core_variants(spec: dict) -> list[str]:
    selected = [core_variant(m, b) for m in spec["selection"]["methods"] for b in spec["core"]["backbones"]]
    return selected + ([FULL] if spec["core"].get("full") else [])


def precomputed_stats(spec: dict) -> str | None:
    """A statistics file given instead of proxy runs (C1K's `continue_from_selection`)."""
    return (spec.get("stats") or {}).get("from_file")


def removal_variants(spec: dict) -> list[str]:
    removal = spec.get("removal")
    if not removal:
        return []
    return [removal_variant(None, 0)] + [
        removal_variant(order, k) for k in removal["removed"] for order in removal["orders"]
    ]


def iter_coreset_runs(config: dict) -> Iterator[dict]:
    """Every training run of the study (proxy, core, removal), in table row order."""
    if STUDY not in config["studies"]:
        return
    spec = study(config)
    for dataset in spec["datasets"]:
        stages = [] if precomputed_stats(spec) else [(spec["proxy"], [PROXY])]
        stages.append((spec["core"], core_variants(spec)))
        if spec.get("removal"):
            stages.append((spec["removal"], removal_variants(spec)))
        for stage, variants in stages:
            for variant in variants:
                for seed in stage["seeds"]:
                    yield dict(study=STUDY, dataset=dataset, model=stage_model(stage)[0], variant=variant, seed=seed)


def stage_of(spec: dict, model: str, variant: str) -> tuple[str, dict]:
    if variant == PROXY and model == stage_model(spec["proxy"])[0]:
        return "proxy", spec["proxy"]
    if variant in core_variants(spec) and model == stage_model(spec["core"])[0]:
        return "core", spec["core"]
    if variant in removal_variants(spec) and model == stage_model(spec["removal"])[0]:
        return "removal", spec["removal"]
    raise ConfigError(f"studies.coreset: no stage trains model {model!r} as variant {variant!r}")


def proxy_model_file(config: dict, dataset: str) -> str:
    proxy = study(config)["proxy"]
    return f"{run_dir(STUDY, dataset, stage_model(proxy)[0], PROXY, proxy['seeds'][0])}/{FINAL_MODEL}"


def selection_file(dataset: str, selection: str) -> str:
    return SELECTION.format(dataset=dataset, selection=selection)


def run_selection(spec: dict, dataset: str, variant: str) -> tuple[str, str] | None:
    """(selection file, coreset_subset mode) of a core or removal run; None for remove_0 / proxy."""
    for method in spec["selection"]["methods"]:
        for backbone in spec["core"]["backbones"]:
            if variant == core_variant(method, backbone):
                return selection_file(dataset, method), "keep"
    for k in (spec.get("removal") or {}).get("removed", []):
        for order in spec["removal"]["orders"]:
            if variant == removal_variant(order, k):
                return selection_file(dataset, removal_selection(order, k)), "drop"
    return None


def resolve_coreset_run(config: dict, dataset: str, model: str, variant: str, seed: int) -> dict:
    """The resolved run config (config.resolve_run's shape) of one coreset-study run."""
    spec = study(config)
    if dataset not in spec["datasets"]:
        raise ConfigError(f"studies.coreset.datasets: no entry {dataset!r}; have {spec['datasets']}")
    stage, block = stage_of(spec, model, variant)
    model_args = copy.deepcopy(stage_model(block)[1])
    methods: dict = {}
    if stage == "proxy":
        methods["forgetting"] = {}
    else:
        chosen = run_selection(spec, dataset, variant)
        if chosen is not None:
            methods["coreset_subset"] = {"selection": chosen[0], "mode": chosen[1]}
    train = dict(block["train"])
    if stage == "core":
        backbone = "finetune" if variant == FULL else variant.split("_", 1)[1]
        model_args["freeze_backbone"] = backbone in FROZEN
        if backbone == "frozen_dropout":
            model_args["dropout"] = block.get("head_dropout", DEFAULT_HEAD_DROPOUT)
        if variant == FULL:
            train.update(block["full"].get("train") or {})
    if model_args.get("pretrained") == PRETRAINED_FROM_PROXY:
        if stage == "proxy":
            raise ConfigError("studies.coreset.proxy.models: `pretrained: proxy` would start the proxy from itself")
        if precomputed_stats(spec):
            raise ConfigError(
                f"studies.coreset.{stage}.models.{model}.pretrained: `proxy` names the proxy's weights, but "
                "studies.coreset.stats.from_file runs no proxy; name a weights file"
            )
        model_args["pretrained"] = proxy_model_file(config, dataset)
    return {
        "study": STUDY,
        "dataset": dataset,
        "model": model,
        "model_args": model_args,
        "variant": variant,
        "methods": methods,
        "seed": int(seed),
        "train": train,
    }


def selection_names(spec: dict) -> list[str]:
    names = list(spec["selection"]["methods"])
    removal = spec.get("removal")
    if removal:
        names += [removal_selection(order, k) for k in removal["removed"] for order in removal["orders"]]
    return names


def selection_settings(config: dict, selection: str) -> dict:
    """SelectionConfig kwargs of a named selection: a core coreset or a removal set."""
    sel = study(config)["selection"]
    common = {"tie_break": sel.get("tie_break", "stable"), "seed": sel.get("seed", 0)}
    if selection in sel["methods"]:
        return {"method": selection, "size": sel["size"], "class_balanced": sel.get("class_balanced", False), **common}
    for k in (study(config).get("removal") or {}).get("removed", []):
        for order in study(config)["removal"]["orders"]:
            if selection == removal_selection(order, k):
                # FE removes the least forgettable first: the `reverse` ranking, never class-balanced.
                return {
                    "method": "reverse" if order == "forgetting" else "random",
                    "size": k,
                    "class_balanced": False,
                    **common,
                }
    raise ConfigError(f"studies.coreset: no selection named {selection!r}; have {selection_names(study(config))}")


def proxy_artifacts(config: dict, dataset: str) -> list[str]:
    if precomputed_stats(study(config)):
        return []
    proxy = study(config)["proxy"]
    return [f"{run_dir(STUDY, dataset, stage_model(proxy)[0], PROXY, s)}/{PROXY_ARTIFACT}" for s in proxy["seeds"]]


def never_learned(config: dict) -> str:
    return (study(config).get("stats") or {}).get("never_learned", "max_plus_one")


def run_inputs(config: dict, dataset: str, model: str, variant: str, seed: int) -> list[str]:
    """Files a core or removal run needs besides its dataset store: selection, pretrained weights."""
    run = resolve_coreset_run(config, dataset, model, variant, seed)
    inputs = []
    if "coreset_subset" in run["methods"]:
        inputs.append(run["methods"]["coreset_subset"]["selection"])
    if run["model_args"].get("pretrained"):
        inputs.append(run["model_args"]["pretrained"])
    return inputs


def final_outputs(config: dict) -> list[str]:
    """The stage artifacts `rule all` asks for beyond the runs, table and figures."""
    if STUDY not in config["studies"]:
        return []
    spec = study(config)
    outputs = []
    for dataset in spec["datasets"]:
        outputs += [STATS_NPZ.format(dataset=dataset), STATS_CSV.format(dataset=dataset)]
        outputs += [selection_file(dataset, name) for name in selection_names(spec)]
    return outputs
