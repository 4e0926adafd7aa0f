"""Each study's source protocol as data, and every resolved run checked against it.

`config/protocol.yaml` writes down, per study, the settings the spec (../shared/docs/methods.md)
gives for the runs behind each reported number, with the section they come from. A setting a
run resolves to something else is a *difference*; a config may keep one on purpose by declaring
it next to the study it affects:

    studies:
      hybrid:
        deviations:
          - setting: train.batch_size          # a key as `plan --check-protocol` names it
            models: [cvt13]                    # optional: datasets, models, variants (all: every run)
            reason: 2048 x 224 px does not fit one GPU; no gradient accumulation here

A declared deviation is printed in its table's caption, where the number is read. An undeclared
difference, or a declaration that no longer matches any difference, fails
`python -m curriculum_bench plan --check-protocol` (and the test suite on config/paper.yaml).

A run's settings are its resolved config flattened to dotted keys: `model`, `model_args.<k>`
(the model's defaults filled in), `train.<k>` (the engine's defaults filled in, plus the absolute
`train.min_lr` and `train.warmup_start_lr` that the sources state), `methods.<name>.<k>` (the
method's defaults filled in) and `dataset.<k>` (the dataset's own config entry, e.g.
`dataset.label_noise.seed`). A protocol value `{same_as: seed}` means the run's own seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError
from .errors import UserError

PROTOCOL = Path(__file__).resolve().parents[2] / "config" / "protocol.yaml"
SELECTOR_KEYS = ("datasets", "models", "variants", "methods")
NOT_SET = "(not set)"


@dataclass(frozen=True)
class Selector:
    """Which runs an entry applies to; an empty field matches every run."""

    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # runs that use every one of these methods

    @classmethod
    def from_dict(cls, raw: dict, where: str) -> Selector:
        unknown = set(raw) - set(SELECTOR_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; a selector has {list(SELECTOR_KEYS)}")
        return cls(**{key: tuple(raw.get(key) or ()) for key in SELECTOR_KEYS})

    def matches(self, run: dict) -> bool:
        return (
            (not self.datasets or run["dataset"] in self.datasets)
            and (not self.models or run["model"] in self.models)
            and (not self.variants or run["variant"] in self.variants)
            and all(method in run["methods"] for method in self.methods)
        )

    def describe(self) -> str:
        parts = [f"{key} {', '.join(getattr(self, key))}" for key in SELECTOR_KEYS if getattr(self, key)]
        return "; ".join(parts) or "every run"


@dataclass(frozen=True)
class ProtocolEntry:
    study: str
    section: str
    where: Selector
    settings: dict[str, Any]


@dataclass(frozen=True)
class Deviation:
    study: str
    index: int  # position in studies.<study>.deviations, for messages
    settings: tuple[str, ...]  # dotted keys, or prefixes of some (`train.augment`, `methods.blur`)
    reason: str
    where: Selector

    def covers(self, run: dict, setting: str) -> bool:
        named = any(setting == s or setting.startswith(s + ".") for s in self.settings)
        return named and self.where.matches(run)

    @property
    def setting(self) -> str:
        return ", ".join(self.settings)

    @property
    def key(self) -> str:
        return f"studies.{self.study}.deviations[{self.index}]"


@dataclass(frozen=True)
class Difference:
    study: str
    run: dict
    setting: str
    resolved: Any
    expected: Any
    section: str
    deviation: Deviation | None

    @property
    def label(self) -> str:
        return f"{self.run['dataset']}/{self.run['model']}/{self.run['variant']}"


# --- reading -------------------------------------------------------------------------------


def load_protocol(path: str | Path = PROTOCOL) -> list[ProtocolEntry]:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: not a readable protocol file ({err})") from None
    entries = []
    for study, items in raw.items():
        for i, item in enumerate(items or []):
            where = f"{path}: {study}[{i}]"
            missing = {"section", "settings"} - set(item)
            if missing:
                raise ConfigError(f"{where}: missing {sorted(missing)}")
            selector = Selector.from_dict({k: v for k, v in item.items() if k in SELECTOR_KEYS}, where)
            extra = set(item) - {"section", "settings", *SELECTOR_KEYS}
            if extra:
                raise ConfigError(f"{where}: unknown key(s) {sorted(extra)}")
            entries.append(ProtocolEntry(study, str(item["section"]), selector, dict(item["settings"])))
    return entries


def declared_deviations(config: dict) -> list[Deviation]:
    deviations = []
    for study, spec in config["studies"].items():
        for i, item in enumerate(spec.get("deviations") or []):
            where = f"studies.{study}.deviations[{i}]"
            selector = Selector.from_dict({k: v for k, v in item.items() if k in SELECTOR_KEYS}, where)
            named = item["setting"]
            settings = tuple([named] if isinstance(named, str) else named)
            deviations.append(Deviation(study, i, settings, item["reason"], selector))
    return deviations


# --- a run's settings ----------------------------------------------------------------------


def flatten(values: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts to dotted keys; lists stay whole (an augmentation list is one setting)."""
    if not isinstance(values, dict):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(flatten(value, f"{prefix}.{key}"))
    return flat


def defaults_of(config_cls) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def method_defaults(name: str) -> dict[str, Any]:
    from . import curricula  # noqa: F401  (fills METHODS)
    from .train.hooks import METHODS

    return defaults_of(METHODS.get(name).config_cls) if name in METHODS else {}


def with_op_defaults(ops: list) -> list:
    """Augmentation ops with their defaults: `{op: horizontal_flip}` is `{op: ..., p: 0.5}`."""
    from .data.augment import OPS

    return [{"op": op["op"], **defaults_of(OPS[op["op"]][0]), **op} if op.get("op") in OPS else op for op in ops]


def model_defaults(name: str) -> dict[str, Any]:
    import inspect

    from .models import MODELS

    if name not in MODELS:
        return {}
    parameters = inspect.signature(MODELS.get(name)).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.default is not inspect.Parameter.empty and p.name not in ("in_shape", "num_classes")
    }


def run_settings(config: dict, run: dict) -> dict[str, Any]:
    """A resolved run as the dotted keys the protocol names, defaults filled in."""
    from .train.config import TrainConfig

    settings: dict[str, Any] = {"model": run["model"]}
    settings.update(flatten({**model_defaults(run["model"]), **(run.get("model_args") or {})}, "model_args"))
    train = {**defaults_of(TrainConfig), **run["train"]}
    train["augment"] = with_op_defaults(train["augment"])
    # The sources state floors and warm-up starts as LRs, the engine as factors of the LR.
    train["min_lr"] = train["lr"] * train["min_lr_factor"]
    train["warmup_start_lr"] = train["lr"] * train["warmup_start_factor"]
    settings.update(flatten(train, "train"))
    for name, args in run["methods"].items():
        settings.update(flatten({**method_defaults(name), **(args or {})}, f"methods.{name}"))
    settings.update(flatten(config["datasets"].get(run["dataset"]) or {}, "dataset"))
    return settings


def lookup(settings: dict[str, Any], setting: str) -> Any:
    """A setting's value; a mapping (`train.normalize`) is gathered back from its dotted keys."""
    if setting in settings:
        return settings[setting]
    nested: dict = {}
    for key, value in settings.items():
        if key.startswith(setting + "."):
            *parents, leaf = key[len(setting) + 1 :].split(".")
            node = nested
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
    return nested or NOT_SET


def same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# --- the check -----------------------------------------------------------------------------


def expected_settings(entries: list[ProtocolEntry], study: str, run: dict) -> dict[str, tuple[Any, str]]:
    """setting -> (protocol value, section); a later entry refines an earlier one."""
    expected: dict[str, tuple[Any, str]] = {}
    for entry in entries:
        if entry.study == study and entry.where.matches(run):
            for setting, value in entry.settings.items():
                expected[setting] = (value, entry.section)
    return expected


def protocol_differences(config: dict, entries: list[ProtocolEntry]) -> list[Difference]:
    """Every setting of every run that differs from its study's protocol, declared or not."""
    from .plan import study_runs

    deviations = declared_deviations(config)
    found = []
    for study in config["studies"]:
        own = [d for d in deviations if d.study == study]
        for run, _ in study_runs(config, study):
            settings = run_settings(config, run)
            for setting, (value, section) in expected_settings(entries, study, run).items():
                if setting == "train.augment":
                    value = with_op_defaults(value)
                if value == {"same_as": "seed"}:
                    value = run["seed"]
                resolved = lookup(settings, setting)
                if resolved == NOT_SET and value is None:
                    continue
                if not same(resolved, value):
                    covering = next((d for d in own if d.covers(run, setting)), None)
                    found.append(Difference(study, run, setting, resolved, value, section, covering))
    return found


def unused_deviations(config: dict, differences: list[Difference]) -> list[Deviation]:
    used = {(d.deviation.study, d.deviation.index) for d in differences if d.deviation}
    return [d for d in declared_deviations(config) if (d.study, d.index) not in used]


def short(value: Any, width: int = 70) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def group(differences: list[Difference]) -> dict[tuple, list[Difference]]:
    groups: dict[tuple, list[Difference]] = {}
    for d in differences:
        key = (d.study, d.setting, short(d.resolved, 1000), short(d.expected, 1000), d.section)
        groups.setdefault(key, []).append(d)
    return groups


def format_differences(differences: list[Difference], unused: list[Deviation]) -> str:
    undeclared = [d for d in differences if d.deviation is None]
    declared = [d for d in differences if d.deviation is not None]
    lines = []
    if undeclared:
        lines.append(f"UNDECLARED differences from the source protocol ({len(undeclared)} run settings):")
        for (study, setting, _, _, section), members in group(undeclared).items():
            first = members[0]
            labels = sorted({d.label for d in members})
            runs = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
            lines.append(
                f"  {study}: {setting} = {short(first.resolved)}, protocol {short(first.expected)} "
                f"({section}); {len(members)} run(s): {runs}"
            )
        lines.append(
            "  Fix the setting, or declare it under studies.<study>.deviations (setting, reason, and "
            "datasets/models/variants) so its table's caption says so."
        )
    if unused:
        lines.append("Declared deviations that match no difference (stale: remove or correct them):")
        lines += [f"  {d.key}: {d.setting} for {d.where.describe()}" for d in unused]
    if declared:
        by_deviation: dict[str, list[Difference]] = {}
        for d in declared:
            by_deviation.setdefault(d.deviation.key, []).append(d)
        lines.append(f"Declared deviations ({len(by_deviation)}; shown in their tables' captions):")
        for key, members in by_deviation.items():
            dev = members[0].deviation
            lines.append(f"  {key}: {dev.setting} on {len(members)} run setting(s) — {dev.reason}")
    if not undeclared and not unused:
        lines.append("Every resolved setting the protocol names matches it or is a declared deviation.")
    return "\n".join(lines)


def check_protocol(config: dict, protocol: str | Path = PROTOCOL) -> tuple[str, bool]:
    """The report `plan --check-protocol` prints, and whether the config passes."""
    differences = protocol_differences(config, load_protocol(protocol))
    unused = unused_deviations(config, differences)
    ok = not unused and all(d.deviation is not None for d in differences)
    return format_differences(differences, unused), ok
