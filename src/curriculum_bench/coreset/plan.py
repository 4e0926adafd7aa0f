"""The coreset study's stages as files and runs: planning for workflow/rules/coreset.smk.

Pure Python with no torch import. The study section (workflow/schemas/config.schema.yaml `$defs.coreset_study`)
has one block per stage, docs/methods.md §5:

    proxy      models (one) + train + seeds, trained with the `forgetting` hook (§5.1, §5.2 proxy);
               `backbones` [finetune, frozen]: C1K's proxy with all weights training, and its
               `freeze_weights_proxy` (only the head trains), each feeding its own statistics,
               selections and core runs
    stats      never_learned treatment (`presentations` FE | `max_plus_one` C1K); `from_file`:
               precomputed statistics (C1K's continue_from_selection), no proxy runs
    selection  methods, size, tie_break, class_balanced, seed (§5.2 `create_coreset`)
    core       models (one) + train + seeds, backbones [finetune, frozen, frozen_dropout], on each
               selection (§5.2 core); `backbone_seeds`: a backbone's own seeds; `head_dropout` for
               frozen_dropout; optional `full`: the core model on the whole train set (its own
               `train` over the core's), variant full_finetune
    removal    optional: models (one) + train + seeds, removed [k ...], orders [forgetting, random] (§5.1)

Every stage trains through the engine and lands where every run lands,
results/coreset/<dataset>/<model>/<variant>/seed<s>/, so the generic study table and figures
read it. Variants: `proxy` (and `frozen_proxy`); `<method>_<backbone>` for core runs
(`reverse_frozen`) on the first listed proxy's selections and `<method>_<backbone>_by_frozen_proxy`
on a second, frozen proxy's; `full_finetune` for the core model on the whole train set;
`remove_0` (the full training set) and `remove_<order>_<k>` for the removal curve.

The first proxy listed is the study's reference: the `random` selection (which reads only the
split's size and labels, so a second proxy would give the same one), the removal sets and
`pretrained: proxy` come from it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import NamedTuple

from ..config import ConfigError, run_dir

STUDY = "coreset"
PROXY = "proxy"
# `model_args.pretrained: proxy` starts a core run from the first proxy seed's final weights.
PRETRAINED_FROM_PROXY = "proxy"

STATS_NPZ = "results/coreset/{dataset}/{stats}/forgetting_stats.npz"
STATS_CSV = "results/coreset/{dataset}/{stats}/forgetting_stats.csv"
SELECTION = "results/coreset/{dataset}/selections/{selection}.json"
PROXY_ARTIFACT = "forgetting.npz"
FINAL_MODEL = "final_model.pt"
FULL = "full_finetune"  # the core model fine-tuned on the whole train set (C1K's 93.0 % row)
FROZEN = ("frozen", "frozen_dropout")  # backbone modes that freeze the pretrained weights
DEFAULT_HEAD_DROPOUT = 0.5  # torch's nn.Dropout() default, which C1K's `dropout=True` head uses (inferred)
# Proxy backbone modes: C1K's default proxy trains all weights; `freeze_weights_proxy` trains the head only.
PROXY_BACKBONES = ("finetune", "frozen")
# Per proxy mode: its variant, its statistics folder and the suffix of its selections and core runs.
PROXY_NAMES = {
    "finetune": (PROXY, "stats", ""),
    "frozen": ("frozen_proxy", "stats_frozen_proxy", "_by_frozen_proxy"),
}


def study(config: dict) -> dict:
    return config["studies"][STUDY]


def stage_model(block: dict) -> tuple[str, dict]:
    """A stage's one model (`models: {name: args}`, as a study's models map) and its args."""
    ((name, args),) = block["models"].items()
    return name, dict(args or {})


def proxy_backbones(spec: dict) -> list[str]:
    """The proxy modes the study runs, its reference first (default: C1K's trainable proxy)."""
    return list(spec["proxy"].get("backbones") or ["finetune"])


def reference_proxy(spec: dict) -> str:
    return proxy_backbones(spec)[0]


def proxy_variant(proxy: str) -> str:
    return PROXY_NAMES[proxy][0]


def proxy_variants(spec: dict) -> list[str]:
    return [proxy_variant(p) for p in proxy_backbones(spec)]


def stats_folder(spec: dict) -> list[str]:
    """The statistics folders: one per proxy mode, or `stats` for a precomputed file."""
    if precomputed_stats(spec):
        return [PROXY_NAMES["finetune"][1]]
    return [PROXY_NAMES[p][1] for p in proxy_backbones(spec)]


def stats_proxy(spec: dict, stats: str) -> str:
    """The proxy mode whose statistics land in folder `stats`."""
    for proxy, (_, folder, _) in PROXY_NAMES.items():
        if folder == stats and (proxy in proxy_backbones(spec) or precomputed_stats(spec)):
            return proxy
    raise ConfigError(f"studies.coreset: no proxy writes statistics folder {stats!r}; have {stats_folder(spec)}")


def stats_file(dataset: str, stats: str) -> str:
    return STATS_NPZ.format(dataset=dataset, stats=stats)


def proxy_selections(spec: dict) -> list[tuple[str, str, str]]:
    """(selection name, method, proxy mode) of every coreset, the reference proxy's first.

    A second proxy adds its own `forgetting` and `reverse` selections, not a second `random`,
    which reads only the split's size and labels: one `random` selection, whatever the proxy."""
    reference = reference_proxy(spec)
    return [
        (method if method == "random" else f"{method}{PROXY_NAMES[proxy][2]}", method, proxy)
        for proxy in proxy_backbones(spec)
        for method in spec["selection"]["methods"]
        if proxy == reference or method != "random"
    ]


class CoreRun(NamedTuple):
    variant: str
    selection: str  # the selection file's name
    method: str  # forgetting | reverse | random
    proxy: str  # the proxy mode whose statistics ranked the selection
    backbone: str  # the core model's mode: finetune | frozen | frozen_dropout


def core_runs(spec: dict) -> list[CoreRun]:
    """Every core run on a coreset, in row order: the reference proxy's selections first."""
    return [
        CoreRun(f"{method}_{backbone}{selection.removeprefix(method)}", selection, method, proxy, backbone)
        for selection, method, proxy in proxy_selections(spec)
        for backbone in spec["core"]["backbones"]
    ]


def removal_variant(order: str | None, k: int) -> str:
    return "remove_0" if k == 0 else f"remove_{order}_{k}"


def removal_selection(order: str, k: int) -> str:
    return f"removal_{order}_{k}"


def core_backbone(spec: dict, variant: str) -> str:
    """The backbone mode of a core variant (the whole-train-set run fine-tunes)."""
    return "finetune" if variant == FULL else next(run.backbone for run in core_runs(spec) if run.variant == variant)


def core_seeds(spec: dict, variant: str) -> list[int]:
    """A core run's seeds: its backbone's own (`core.backbone_seeds`), else the stage's."""
    core = spec["core"]
    return (core.get("backbone_seeds") or {}).get(core_backbone(spec, variant), core["seeds"])


def stage_seeds(spec: dict, stage: str, variant: str) -> list[int]:
    return core_seeds(spec, variant) if stage == "core" else spec[stage]["seeds"]


def core_variants(spec: dict) -> list[str]:
    selected = [run.variant for run in core_runs(spec)]
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
        stages = [] if precomputed_stats(spec) else [("proxy", proxy_variants(spec))]
        stages.append(("core", core_variants(spec)))
        if spec.get("removal"):
            stages.append(("removal", removal_variants(spec)))
        for stage, variants in stages:
            model = stage_model(spec[stage])[0]
            for variant in variants:
                for seed in stage_seeds(spec, stage, variant):
                    yield dict(study=STUDY, dataset=dataset, model=model, variant=variant, seed=seed)


def stage_of(spec: dict, model: str, variant: str) -> tuple[str, dict]:
    if variant in proxy_variants(spec) and model == stage_model(spec["proxy"])[0]:
        return "proxy", spec["proxy"]
    if variant in core_variants(spec) and model == stage_model(spec["core"])[0]:
        return "core", spec["core"]
    if variant in removal_variants(spec) and model == stage_model(spec["removal"])[0]:
        return "removal", spec["removal"]
    raise ConfigError(f"studies.coreset: no stage trains model {model!r} as variant {variant!r}")


def proxy_model_file(config: dict, dataset: str) -> str:
    """The reference proxy's first seed's final weights (`pretrained: proxy`)."""
    spec = study(config)
    proxy = spec["proxy"]
    variant = proxy_variant(reference_proxy(spec))
    return f"{run_dir(STUDY, dataset, stage_model(proxy)[0], variant, proxy['seeds'][0])}/{FINAL_MODEL}"


def selection_file(dataset: str, selection: str) -> str:
    return SELECTION.format(dataset=dataset, selection=selection)


def run_selection(spec: dict, dataset: str, variant: str) -> tuple[str, str] | None:
    """(selection file, coreset_subset mode) of a core or removal run; None for remove_0 / proxy."""
    for run in core_runs(spec):
        if variant == run.variant:
            return selection_file(dataset, run.selection), "keep"
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
        if variant == proxy_variant("frozen"):  # the trainable proxy's args stay as written (its run identity)
            model_args["freeze_backbone"] = True
    else:
        chosen = run_selection(spec, dataset, variant)
        if chosen is not None:
            methods["coreset_subset"] = {"selection": chosen[0], "mode": chosen[1]}
    train = dict(block["train"])
    if stage == "core":
        backbone = core_backbone(spec, variant)
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
    names = [selection for selection, _, _ in proxy_selections(spec)]
    removal = spec.get("removal")
    if removal:
        names += [removal_selection(order, k) for k in removal["removed"] for order in removal["orders"]]
    return names


def selection_settings(config: dict, selection: str) -> dict:
    """SelectionConfig kwargs of a named selection: a core coreset or a removal set."""
    sel = study(config)["selection"]
    common = {"tie_break": sel.get("tie_break", "stable"), "seed": sel.get("seed", 0)}
    for name, method, _ in proxy_selections(study(config)):
        if selection == name:
            return {"method": method, "size": sel["size"], "class_balanced": sel.get("class_balanced", False), **common}
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


def selection_stats(config: dict, dataset: str, selection: str) -> str:
    """The statistics file a selection ranks by: its proxy's (removal sets: the reference's)."""
    spec = study(config)
    proxy = next((p for name, _, p in proxy_selections(spec) if name == selection), reference_proxy(spec))
    if precomputed_stats(spec):
        proxy = "finetune"
    return stats_file(dataset, PROXY_NAMES[proxy][1])


def proxy_artifacts(config: dict, dataset: str, stats: str = PROXY_NAMES["finetune"][1]) -> list[str]:
    """The forgetting records of the proxy runs whose statistics land in folder `stats`."""
    spec = study(config)
    if precomputed_stats(spec):
        return []
    variant = proxy_variant(stats_proxy(spec, stats))
    model = stage_model(spec["proxy"])[0]
    return [f"{run_dir(STUDY, dataset, model, variant, s)}/{PROXY_ARTIFACT}" for s in spec["proxy"]["seeds"]]


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
        for stats in stats_folder(spec):
            outputs += [stats_file(dataset, stats), STATS_CSV.format(dataset=dataset, stats=stats)]
        outputs += [selection_file(dataset, name) for name in selection_names(spec)]
    return outputs
