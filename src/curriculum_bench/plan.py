"""The resolved plan of a workflow config: what each row runs, checked to be what it says.

Pure Python with no torch import: the Snakefile calls the checks at parse time (common.smk),
`python -m curriculum_bench plan` prints the plan.

* `load_config` reads --configfile files as Snakemake does (later files deep-merged over
  earlier ones) and validates them against workflow/schemas/config.schema.yaml, filling its
  defaults; an unknown key is named with the closest valid one (`validate_config`).
* `check_rows` refuses a config whose rows are not what their labels say, naming study,
  variants and the setting responsible: an `overrides` or `resources` key that names no
  dataset, model or dataset/model of the study (or a variant / method it does not have); an
  override for every variant (`overrides.<key>.methods`) that changes a setting a variant
  sets itself (unless it names that variant: `overrides.<key>.variants.<variant>`); two
  variants of one study that resolve to the same run (same dataset, model and seed).
* `check_local_inputs` lists, in one message, every local file the config reads that is
  missing (no rule makes it): pretrained weights, ImageNet folders, teacher checkpoints,
  raw files of a dataset that may not download, with where to get each and its checksum
  where one is known.
* `format_plan` prints, per study, each run's resolved settings as a diff against the
  study's baseline (its `train`, no method), marking what an override set, and the counts.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import (
    RUN_DIR,
    VARIANT_SEEDS,
    ConfigError,
    check_references,
    iter_runs,
    override_conflicts,
    resolve_run_sources,
    run_layers,
    study_cells,
    study_datasets,
    to_json,
    variant_methods,
    variant_seeds,
)
from .coreset import plan as coreset_plan

# In a checkout (or an editable install); the workflow passes its own copy's path.
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "config.yaml"


# --- loading -------------------------------------------------------------------------------


def load_config(configfiles: Iterable[str | os.PathLike], schema: str | os.PathLike = SCHEMA) -> dict:
    """The config the workflow runs with for these --configfile files (none: the embedded
    default): merged as Snakemake merges them, validated with the schema's defaults filled."""
    import yaml
    from snakemake.utils import update_config

    files = [Path(f) for f in configfiles] or [DEFAULT_CONFIG]
    config: dict = {}
    for file in files:
        try:
            update_config(config, yaml.safe_load(file.read_text()) or {})
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"--configfile {file}: not a readable YAML file ({err})") from None
    validate_config(config, schema)
    check_references(config)
    return config


def validate_config(config: dict, schema: str | os.PathLike = SCHEMA) -> None:
    """Snakemake's validation against the schema (filling its defaults), its error as one line
    that starts with the offending key and value: an unknown key with the closest valid one."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, schema=str(Path(schema).resolve()))
    except WorkflowError as err:
        cause = err.__cause__ or err.__context__  # snakemake raises it while handling jsonschema's error
        if not hasattr(cause, "absolute_path"):
            raise ConfigError(str(err).strip().splitlines()[0]) from None
        raise ConfigError(schema_error_line(cause)) from None


def short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def schema_error_line(error) -> str:
    """One line for a jsonschema ValidationError: key path, value, what is wrong (config's schema)."""
    where = ".".join(map(str, error.absolute_path))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties") or {})
        unknown = [
            key
            for key in error.instance
            if key not in allowed and not any(re.search(p, key) for p in error.schema.get("patternProperties") or {})
        ]
        if unknown:
            key = unknown[0]
            path = f"{where}.{key}" if where else key
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return (
                f"{path} = {short(error.instance[key])}: unknown key; {hint}"
                f"valid keys here: {', '.join(allowed) or '(none)'} (workflow/schemas/config.schema.yaml)"
            )
    message = error.message.splitlines()[0]
    if error.validator == "not" and isinstance(error.validator_value, dict) and "description" in error.validator_value:
        # the schema's own words for what a value may not be ("not an augmentation op: ...")
        message = f"{error.instance!r} is refused: {error.validator_value['description']}"
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{where or '<config>'}: {message} (workflow/schemas/config.schema.yaml)"


# --- the runs of a study -------------------------------------------------------------------


def study_runs(config: dict, study: str) -> list[tuple[dict, dict[str, str]]]:
    """Every run of a study, resolved, with where each of its settings was set."""
    if study == coreset_plan.STUDY:
        return [coreset_run_sources(config, run) for run in coreset_plan.iter_coreset_runs(config)]
    return [resolve_run_sources(config, **run) for run in iter_runs(config) if run["study"] == study]


def coreset_run_sources(config: dict, run: dict) -> tuple[dict, dict[str, str]]:
    resolved = coreset_plan.resolve_coreset_run(config, run["dataset"], run["model"], run["variant"], run["seed"])
    stage, _ = coreset_plan.stage_of(coreset_plan.study(config), run["model"], run["variant"])
    where = f"studies.coreset.{stage}"
    sources = {f"train.{key}": f"{where}.train" for key in resolved["train"]}
    sources.update(
        {
            f"methods.{name}.{key}": "studies.coreset.selection"
            for name, args in resolved["methods"].items()
            for key in args
        }
    )
    return resolved, sources


def study_baseline(config: dict, study: str) -> tuple[str, dict]:
    """What each run of a study is shown against: the study's `train` (the coreset study's
    proxy stage), no method."""
    spec = config["studies"][study]
    if study == coreset_plan.STUDY:
        return "studies.coreset.proxy.train", dict(spec["proxy"]["train"])
    return f"studies.{study}.train", dict(spec["train"])


def study_names(config: dict, study: str) -> tuple[list[str], list[str]]:
    """A study's datasets and models (the coreset study's: every stage's model)."""
    spec = config["studies"][study]
    if study == coreset_plan.STUDY:
        stages = [spec["proxy"], spec["core"]] + ([spec["removal"]] if spec.get("removal") else [])
        models = list(dict.fromkeys(coreset_plan.stage_model(stage)[0] for stage in stages))
        return list(spec["datasets"]), models
    return study_datasets(spec), list(spec["models"])


# --- checks --------------------------------------------------------------------------------


def check_rows(config: dict) -> None:
    """Refuse a config whose rows are not what they say; every problem in one ConfigError."""
    problems = unknown_override_keys(config) + overriding_overrides(config) + duplicate_variants(config)
    if problems:
        raise ConfigError(
            f"studies: {len(problems)} row(s) would not be what they say; refused before any "
            "job runs (`python -m curriculum_bench plan` shows each run's settings):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def unknown_override_keys(config: dict) -> list[str]:
    """`overrides` / `resources` keys naming nothing of the study: they would change no run."""
    problems = []
    for study, spec in config["studies"].items():
        datasets, models = study_names(config, study)
        known = set(datasets) | set(models) | {f"{d}/{m}" for d in datasets for m in models}
        what = f"(datasets {datasets}, models {models})"
        for key in spec.get("resources") or {}:
            if key != "default" and key not in known:
                problems.append(
                    f"studies.{study}.resources.{key}: names no dataset, model or dataset/model of "
                    f"study {study} {what}, so it would change no run"
                )
        variants = spec.get("variants") or {}
        used = {name for methods in variants.values() for name in variant_methods(methods)}
        for key, override in (spec.get("overrides") or {}).items():
            where = f"studies.{study}.overrides.{key}"
            if key not in known:
                problems.append(
                    f"{where}: names no dataset, model or dataset/model of study {study} {what}, "
                    "so it would change no run"
                )
                continue
            for name in (override or {}).get("methods") or {}:
                if name not in used:
                    problems.append(
                        f"{where}.methods.{name}: no variant of study {study} uses {name} (an "
                        "override never adds a method), so it would change no run"
                    )
            for variant, methods in ((override or {}).get("variants") or {}).items():
                if variant not in variants:
                    problems.append(
                        f"{where}.variants.{variant}: study {study} has no variant {variant!r} "
                        f"(variants {list(variants)})"
                    )
                    continue
                for name in variant_methods(methods):
                    if name not in variant_methods(variants[variant]):
                        problems.append(
                            f"{where}.variants.{variant}.{name}: variant {variant} does not use "
                            f"{name} (an override never adds a method), so it would change nothing"
                        )
    return problems


def overriding_overrides(config: dict) -> list[str]:
    """Overrides for every variant that rewrite a setting a variant sets itself."""
    changes: dict[tuple, dict[str, None]] = {}  # (override, variant, set at) -> "key a -> b" (ordered set)
    places: dict[tuple, dict[str, None]] = {}  # ... -> the dataset/model pairs it happens on
    for study, spec in config["studies"].items():
        if study == coreset_plan.STUDY:
            continue
        for dataset, model, variant in study_cells(spec):
            for c in override_conflicts(config, study, dataset, model, variant):
                key = (c.where, variant, c.set_at)
                changes.setdefault(key, {})[f"{c.setting.split('.', 1)[1]} {fmt(c.old)} -> {fmt(c.new)}"] = None
                places.setdefault(key, {})[f"{dataset}/{model}"] = None
    problems = []
    for (where, variant, set_at), entries in changes.items():
        override_key = re.sub(r"\.(methods\..*|train)$", "", where.split(".overrides.", 1)[1])
        problems.append(
            f"{where}: changes what variant {variant} sets ({set_at}): {', '.join(entries)} on "
            f"{', '.join(places[(where, variant, set_at)])}; an override for every variant must leave "
            f"a variant's own settings alone: name the variant "
            f"(overrides.{override_key}.variants.{variant}) if it is meant for it"
        )
    return problems


def duplicate_variants(config: dict) -> list[str]:
    """Two variants of a study that resolve to the same run (same dataset, model and seed)."""
    problems = []
    for study in config["studies"]:
        same: dict[tuple, list[tuple[dict, dict]]] = {}
        for run, sources in study_runs(config, study):
            body = to_json({k: v for k, v in run.items() if k != "variant"})
            same.setdefault((run["dataset"], run["model"], run["seed"], body), []).append((run, sources))
        seeds: dict[tuple, list[int]] = {}  # (dataset, model, variants) -> seeds
        groups: dict[tuple, list] = {}  # ... -> one seed's runs, to explain
        for (dataset, model, seed, _), group in same.items():
            if len(group) > 1:
                key = (dataset, model, tuple(run["variant"] for run, _ in group))
                seeds.setdefault(key, []).append(seed)
                groups.setdefault(key, group)
        for (dataset, model, names), group in groups.items():
            problems.append(
                f"studies.{study}.variants: {', '.join(names)} resolve to the same run on "
                f"{dataset}/{model} (seeds {', '.join(map(str, seeds[(dataset, model, names)]))}): "
                + explain_duplicate(config, study, dataset, model, group)
            )
    return problems


def explain_duplicate(config: dict, study: str, dataset: str, model: str, group: list) -> str:
    """Which of the variants' own settings differ, and what set them equal."""
    if study == coreset_plan.STUDY:
        return "the coreset plan gives them equal settings"
    own = {
        run["variant"]: flatten_methods(run_layers(config, study, dataset, model, run["variant"])[1].methods)
        for run, _ in group
    }
    names = list(own)
    differing = sorted(
        {
            path
            for name in names
            for path in own[name]
            if any(own[other].get(path, MISSING) != own[name].get(path, MISSING) for other in names)
        }
    )
    if not differing:
        return "their own settings are equal"
    parts = []
    for path in differing:
        values = ", ".join(f"{fmt(own[name].get(path, MISSING))} in {name}" for name in names)
        resolved = flatten_methods(group[0][0]["methods"]).get(path, MISSING)
        setters = sorted({sources.get(f"methods.{path}", "") for _, sources in group} - {""})
        parts.append(
            f"{path} ({values}) becomes {fmt(resolved)} in all of them, set by {', '.join(setters) or 'nothing'}"
        )
    return "; ".join(parts)


class _Missing:
    def __repr__(self) -> str:
        return "unset"


MISSING = _Missing()


def flatten_methods(methods: dict) -> dict[str, Any]:
    return {f"{name}.{key}": value for name, args in methods.items() for key, value in (args or {}).items()}


# --- local inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalInput:
    path: str
    key: str  # the config key that names it
    where: str  # how to get it
    checksum: str | None = None  # what it should hash to, where known
    alternatives: tuple = ()  # other paths that would do instead (an archive, an unpacked file)

    def present(self, root: str | os.PathLike = ".") -> bool:
        return any(os.path.exists(os.path.join(root, p)) for p in (self.path, *self.alternatives))


# Files and folders the paper config names, by base name: where to get them, their checksum.
KNOWN_INPUTS = {
    "resnet18-f37072fd.pth": (
        "torchvision's ResNet18_Weights.IMAGENET1K_V1, https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "sha256 starts with f37072fd (torchvision's file-name convention)",
    ),
    "resnet50-0676ba61.pth": (
        "torchvision's ResNet50_Weights.IMAGENET1K_V1, https://download.pytorch.org/models/resnet50-0676ba61.pth",
        "sha256 starts with 0676ba61 (torchvision's file-name convention)",
    ),
    "imagenet100": (
        (
            "Kaggle dataset wilyzh/imagenet100 (https://www.kaggle.com/datasets/wilyzh/imagenet100): its folder "
            "(train.X1-4/, val.X/, Labels.json) or the downloaded .zip"
        ),
        None,
    ),
    "imagenet": (
        (
            "ILSVRC-2012 from https://image-net.org/download-images.php: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG "
            "(the validation images sorted into class folders), or an archive of that folder"
        ),
        None,
    ),
}
IMAGEFOLDER_HINT = (
    "an ImageNet-100 folder (Kaggle layout) or an ImageFolder train/<class>/, val/<class>/, "
    "or a .tar/.tar.gz/.zip of it (docs/datasets.md)"
)
# Raw files torchvision reads when `download: false` (data/torchvision_sources.py): any of each tuple.
RAW_FILES = {
    "mnist": [
        tuple(f"MNIST/raw/{name}{ext}" for ext in (".gz", ""))
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ],
    "cifar10": [("cifar-10-batches-py", "cifar-10-python.tar.gz")],
    "cifar100": [("cifar-100-python", "cifar-100-python.tar.gz")],
}
PRODUCED_MODEL = re.compile(
    re.escape(RUN_DIR)
    .replace(r"\{study\}", "(?P<study>[^/]+)")
    .replace(r"\{dataset\}", "(?P<dataset>[^/]+)")
    .replace(r"\{model\}", "(?P<model>[^/]+)")
    .replace(r"\{variant\}", "(?P<variant>[^/]+)")
    .replace(r"\{seed\}", r"(?P<seed>\d+)")
    + "/final_model\\.pt"
)


def produced_by_workflow(config: dict, path: str) -> bool:
    """A run's final_model.pt that a rule of this workflow makes (a teacher, the proxy)."""
    match = PRODUCED_MODEL.fullmatch(os.path.normpath(path))
    if not match or match["study"] not in config["studies"]:
        return False
    spec = config["studies"][match["study"]]
    if match["study"] == coreset_plan.STUDY:
        return (
            match["variant"] in coreset_plan.proxy_variants(spec)
            and match["dataset"] in spec["datasets"]
            and match["model"] == coreset_plan.stage_model(spec["proxy"])[0]
        )
    return (match["dataset"], match["model"], match["variant"]) in set(study_cells(spec))


def _local(path: str, key: str, default_where: str, alternatives: tuple = ()) -> LocalInput:
    where, checksum = KNOWN_INPUTS.get(os.path.basename(os.path.normpath(path)), (default_where, None))
    return LocalInput(path, key, where, checksum, alternatives)


def local_inputs(config: dict) -> list[LocalInput]:
    """Every file or folder the config reads that no rule makes, once each, in config order."""
    found: dict[str, LocalInput] = {}

    def add(path: str | None, key: str, where: str, alternatives: tuple = ()) -> None:
        if path and path != coreset_plan.PRETRAINED_FROM_PROXY and not produced_by_workflow(config, path):
            found.setdefault(os.path.normpath(path), _local(path, key, where, alternatives))

    for name, spec in config["datasets"].items():
        if spec["source"] == "imagenet100":
            add(spec["path"], f"datasets.{name}.path", IMAGEFOLDER_HINT)
        elif spec["source"] in RAW_FILES and spec.get("download") is False:
            root = spec.get("data_root") or f"resources/raw/{spec['source']}"
            for first, *others in RAW_FILES[spec["source"]]:
                add(
                    os.path.join(root, first),
                    f"datasets.{name}.data_root",
                    f"torchvision's {spec['source']} raw files (or set download: true to fetch them)",
                    tuple(os.path.join(root, other) for other in others),
                )
    weights = "a local state-dict file (torch.save); nothing is downloaded"
    for study, spec in config["studies"].items():
        if study == coreset_plan.STUDY:
            precomputed = coreset_plan.precomputed_stats(spec)
            add(precomputed, "studies.coreset.stats.from_file", "cifar_1k's preloaded_forgetting/forgetting_stats")
            for stage in ("core", "removal") if precomputed else ("proxy", "core", "removal"):
                if spec.get(stage):
                    model, args = coreset_plan.stage_model(spec[stage])
                    for arg in ("weights", "pretrained"):
                        add(args.get(arg), f"studies.coreset.{stage}.models.{model}.{arg}", weights)
            continue
        for model, args in spec["models"].items():
            args = args or {}
            for arg in ("weights", "pretrained"):
                add(args.get(arg), f"studies.{study}.models.{model}.{arg}", weights)
            for arg in ("weights", "pretrained"):
                add(
                    (args.get("encoder_args") or {}).get(arg),
                    f"studies.{study}.models.{model}.encoder_args.{arg}",
                    weights,
                )
        seen: set[tuple] = set()
        for run, sources in study_runs(config, study):
            methods = run["methods"]
            for method, arg in (
                ("distill", "teacher_checkpoint"),
                ("hint", "teacher_checkpoint"),
                ("pretrained", "checkpoint"),
            ):
                path = (methods.get(method) or {}).get(arg)
                if path and (path, method) not in seen:
                    seen.add((path, method))
                    add(path, f"{sources.get(f'methods.{method}.{arg}', 'studies.' + study)}.{method}.{arg}", weights)
    return list(found.values())


def missing_local_inputs(config: dict, root: str | os.PathLike = ".") -> list[LocalInput]:
    return [item for item in local_inputs(config) if not item.present(root)]


def check_local_inputs(config: dict, root: str | os.PathLike = ".") -> None:
    """Every missing local input in one ConfigError, before any job runs."""
    missing = missing_local_inputs(config, root)
    if missing:
        raise ConfigError(
            f"{len(missing)} local input(s) missing: the config reads them and no rule makes them "
            f"(paths relative to {os.path.abspath(root)}):\n" + "\n".join(describe_input(item) for item in missing)
        )


def describe_input(item: LocalInput) -> str:
    text = f"  - {item.path}  ({item.key})\n      get: {item.where}"
    if item.alternatives:
        text += f"\n      or: {', '.join(item.alternatives)}"
    if item.checksum:
        text += f"\n      checksum: {item.checksum}"
    return text


# --- the printed plan ----------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A setting's value, short: augmentation ops as op(key=value), JSON otherwise."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and "op" in v for v in value):
        return (
            "["
            + ", ".join(
                v["op"] + "(" + ", ".join(f"{k}={fmt(x)}" for k, x in v.items() if k != "op") + ")" for v in value
            )
            + "]"
        )
    if isinstance(value, str):
        return value
    if isinstance(value, _Missing):
        return "unset"
    return json.dumps(value, separators=(",", ":"))


def run_tokens(
    run: dict, sources: dict[str, str], baseline: dict, study: str, own: dict | None = None
) -> list[tuple[str, str]]:
    """(path, "path=value [source]") for what a run sets beyond the baseline train settings;
    `own` (method.key -> value) are the variant's own settings, shown as `a -> b` where an
    override changed them."""
    prefix = f"studies.{study}."
    own = own or {}

    def mark(source: str | None) -> str:
        if source and ".overrides." in source:
            rest = source.split(".overrides.", 1)[1]
            if ".variants." in rest:
                return f" [{rest.split('.variants.', 1)[0]} variants]"
            return f" [{rest.rsplit('.', 1)[0]}]"
        if source and study == coreset_plan.STUDY and source.startswith(prefix) and not source.endswith("selection"):
            return f" [{source[len(prefix) :]}]"
        return ""

    tokens = [(f"model.{k}", f"model.{k}={fmt(v)}") for k, v in run["model_args"].items()]
    for key in list(baseline) + [k for k in run["train"] if k not in baseline]:
        old, new = baseline.get(key, MISSING), run["train"].get(key, MISSING)
        if old != new:
            change = f"{fmt(old)} -> {fmt(new)}" if key in baseline else fmt(new)
            shown = f"train.{key}{'=' if key not in baseline else ' '}{change}{mark(sources.get(f'train.{key}'))}"
            tokens.append((f"train.{key}", shown))
    for name, args in run["methods"].items():
        if not args:
            tokens.append((name, name))
        for key, value in args.items():
            was = own.get(f"{name}.{key}", MISSING)
            shown = f" {fmt(was)} -> {fmt(value)}" if was is not MISSING and was != value else f"={fmt(value)}"
            tokens.append((f"{name}.{key}", f"{name}.{key}{shown}{mark(sources.get(f'methods.{name}.{key}'))}"))
    return tokens


def wrap(
    label: str,
    tokens: list[str],
    label_width: int = 24,
    indent: int = 4,
    width: int = 118,
    sep: str = "  ",
    gap: int = 2,
) -> list[str]:
    """`label` then the tokens, `sep` apart, wrapped under the first token."""
    head = " " * indent + label.ljust(label_width) + " " * gap
    lines, line = [], ""
    for token in tokens:
        if line and len(head) + len(line) + len(sep) + len(token) > width:
            lines.append(line + sep.rstrip())
            line = ""
        line += (sep if line else "") + token
    lines.append(line)
    return [(head if i == 0 else " " * len(head)) + text for i, text in enumerate(lines)]


def study_counts(config: dict, study: str) -> tuple[int, dict[str, int]]:
    runs = study_runs(config, study)
    per_variant: dict[str, int] = {}
    for run, _ in runs:
        per_variant[run["variant"]] = per_variant.get(run["variant"], 0) + 1
    return len(runs), per_variant


def format_study(config: dict, study: str) -> list[str]:
    spec = config["studies"][study]
    runs = study_runs(config, study)
    total, per_variant = study_counts(config, study)
    datasets, models = study_names(config, study)
    if study == coreset_plan.STUDY:
        own_seeds = (spec["core"].get("backbone_seeds") or {}).items()
        shape = f"{len(datasets)} dataset(s); proxy, core and removal stages" + "".join(
            f"; {backbone} core runs {len(seeds)} seed(s)" for backbone, seeds in own_seeds
        )
    else:
        own_seeds = {
            v: len(variant_seeds(spec, v)) for v in spec["variants"] if (spec["variants"][v] or {}).get(VARIANT_SEEDS)
        }
        shape = (
            f"{len(datasets)} dataset(s) x {len(models)} model(s) x {len(spec['variants'])} variants x "
            f"{len(spec['seeds'])} seed(s)" + "".join(f"; {v} {n} seed(s)" for v, n in own_seeds.items())
        )
    base_where, baseline = study_baseline(config, study)
    lines = [
        f"== {study}: {total} runs ({shape})",
        *wrap("runs per variant:", [f"{v} {n}" for v, n in per_variant.items()], 0, indent=2, sep=", ", gap=1),
        *wrap(f"baseline ({base_where}):", [f"{k}={fmt(v)}" for k, v in baseline.items()], 0, indent=2, gap=1),
    ]
    blocks: dict[tuple[str, str], dict[str, tuple[list, list]]] = {}
    for run, sources in runs:
        block = blocks.setdefault((run["dataset"], run["model"]), {})
        own = {} if study == coreset_plan.STUDY else flatten_methods(variant_methods(spec["variants"][run["variant"]]))
        tokens, seeds = block.setdefault(run["variant"], (run_tokens(run, sources, baseline, study, own), []))
        seeds.append(run["seed"])
    label_width = max(len("every variant:"), *(len(v) for v in per_variant))
    for (dataset, model), variants in blocks.items():
        seeds = " ".join(map(str, sorted({s for _, ss in variants.values() for s in ss})))
        lines.append(f"  -- {dataset} / {model} (seeds {seeds})")
        token_lists = [tokens for tokens, _ in variants.values()]
        common = [t for t in token_lists[0] if len(variants) > 1 and all(t in other for other in token_lists[1:])]
        if common:
            lines += wrap("every variant:", [text for _, text in common], label_width)
        for variant, (tokens, _) in variants.items():
            own = [text for token in tokens if token not in common for text in token[1:]]
            lines += wrap(variant, own or ["(nothing more)" if common else "(the baseline)"], label_width)
    return lines


def format_plan(config: dict, studies: Iterable[str] | None = None, root: str | os.PathLike = ".") -> str:
    names = list(studies or config["studies"])
    unknown = [s for s in names if s not in config["studies"]]
    if unknown:
        raise ConfigError(f"studies: no study {unknown[0]!r} in this config (have {list(config['studies'])})")
    lines = [
        "Per run: what it sets beyond its study's baseline. a -> b: changed from the baseline's train or from",
        (
            "the variant's own setting; [key]: set by overrides.<key> for every variant; [key variants]: set by "
            "overrides.<key>.variants.<variant>."
        ),
    ]
    for study in names:
        lines += [""] + format_study(config, study)
    totals = {s: study_counts(config, s)[0] for s in names}
    lines += [
        "",
        "runs per study: " + ", ".join(f"{s} {n}" for s, n in totals.items()) + f"; total {sum(totals.values())}",
    ]
    inputs = local_inputs(config)
    if inputs:
        missing = {item.path for item in missing_local_inputs(config, root)}
        lines.append("local inputs (no rule makes them):")
        for item in inputs:
            state = "MISSING" if item.path in missing else "present"
            lines.append(f"  {state:8} {item.path}  ({item.key})")
    return "\n".join(lines)


def main(configfiles: list[str], studies: list[str], check_protocol: str | None = None) -> int:
    """`python -m curriculum_bench plan`: print the plan, then refuse what check_rows refuses.
    With --check-protocol, print instead every resolved setting that differs from the source
    protocol (protocol.py) and fail on an undeclared one."""
    config = load_config(configfiles)
    if check_protocol is not None:
        from .protocol import check_protocol as check

        check_rows(config)
        if studies:
            config = {**config, "studies": {s: config["studies"][s] for s in studies}}
        report, ok = check(config, check_protocol)
        print(report)
        return 0 if ok else 1
    print(format_plan(config, studies))
    check_rows(config)
    return 0
