"""The schema's block of every method (workflow/schemas/config.schema.yaml `$defs.methods`)
says what the method's config dataclass accepts: the same fields, defaults the schema takes,
and, value by value, the same ranges and enums.

A method is its module's dataclass plus one block in `$defs.methods` (`$defs.variant` merges
the whole mapping in): these tests name the method and the setting where the two disagree.
Acceptance is probed, not read: each setting gets values at and just past every bound the
schema states, a spread of ordinary values (which finds a dataclass check the schema lacks),
every enum value plus the strings the method's module lists beside its default, and null
where the schema allows it. The schema side validates the value against the field's own
block; the dataclass side builds the config with that one value changed.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import jsonschema
import pytest
import yaml

from curriculum_bench import contrastive, curricula  # noqa: F401  (fill METHODS)
from curriculum_bench.config import VARIANT_KEYS, config_from_dict
from curriculum_bench.data.augment import OPS, REMOVED_OPS
from curriculum_bench.train.hooks import METHODS

from .conftest import REPO

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
DEFS = SCHEMA["$defs"]
NAMES = METHODS.names()

# Settings a method needs before any other can be probed (the schema requires them too).
REQUIRED = {
    "data_parameters": {"learn_class": True},
    "pretrained": {"checkpoint": "weights.pt"},
    "coreset_subset": {"selection": "selection.json"},
}
# Rules between two settings, which a setting's own schema block cannot state: while one is
# probed the other is set where the rule leaves the probed one free. Each rule is tested on
# its own in test_each_slack_is_a_rule_of_the_dataclass.
SLACK = {
    ("self_labeling", "start_epoch"): {"end_epoch": 10**6},
    ("progressive_dropout", "start"): {"end": 1.0},
    ("simclr", "b_l"): {"b_u": math.inf},
    ("simclr", "b_u"): {"b_l": -math.inf},
}
# Disagreements where the dataclass is the one to change (not the schema): setting -> why.
# The test fails once the disagreement is gone, so that its entry goes too.
KNOWN: dict[tuple[str, str], str] = {}  # (method, field) -> why schema and dataclass may disagree
# Ordinary values every numeric setting is tried with, besides its schema's bounds.
NUMBERS = (-1000, -1, -0.5, 0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 8, 99.5, 100, 101, 1000)
FLOAT_STEP = 1e-6  # "just past" a bound of a number


def config_cls(name: str):
    return METHODS.get(name).config_cls


def field_schema(name: str, field: str) -> dict:
    return DEFS["methods"][name]["properties"][field]


def dataclass_field(name: str, field: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(config_cls(name)) if f.name == field)


def schema_accepts(block: dict, value) -> bool:
    """`value` valid against one field's block, its $refs resolved in the whole schema."""
    schema = {"$schema": SCHEMA["$schema"], "$defs": DEFS, **block}
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def dataclass_accepts(name: str, field: str, value, slack: bool = True) -> bool:
    settings = {**REQUIRED.get(name, {}), **(SLACK.get((name, field), {}) if slack else {}), field: value}
    try:
        config_from_dict(config_cls(name), settings, where=f"methods.{name}")
    except ValueError:  # ConfigError, which config_from_dict raises, is a ValueError
        return False
    return True


def types_of(block: dict) -> set[str]:
    kind = block.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def number_probes(block: dict, integer: bool) -> list:
    step = 1 if integer else FLOAT_STEP
    values = {v for v in NUMBERS if not integer or v == int(v)}
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in block:
            values |= {block[key] - step, block[key], block[key] + step}
    return sorted(int(v) if integer else v for v in values)


def enum_probes(name: str, block: dict, default) -> list:
    """The schema's values, a value nobody takes, and every string that a constant of the
    method's module lists beside the default (what the dataclass may take that the schema lacks)."""
    values = [*block["enum"], "no_such_value"]
    if isinstance(default, str):
        module = sys.modules[config_cls(name).__module__]
        for constant in vars(module).values():
            if not isinstance(constant, (tuple, list, frozenset, set, dict)):
                continue
            if all(isinstance(v, str) for v in constant) and default in constant:
                values += [v for v in constant if v not in values]
    if all(isinstance(v, int) for v in block["enum"]):
        values += [v for v in (-1, 0, 3, 8) if v not in values]
    return values


def op_list_probes() -> list:
    return [[], *([{"op": op}] for op in [*OPS, *REMOVED_OPS, "no_such_op"])]


def probes(name: str, field: dataclasses.Field, block: dict) -> list:
    """Values to try for one setting, from its schema block and its default."""
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if "$ref" in block.get("items", {}):
        return op_list_probes()  # ops: the schema checks their names, data/augment.py the rest
    values = []
    kinds = types_of(block)
    if "enum" in block:
        values += enum_probes(name, block, default)
    if kinds & {"number", "integer"}:
        values += number_probes(block, integer="number" not in kinds)
    if "string" in kinds and "enum" not in block:
        values += ["", "x"]
    if "array" in kinds and block.get("items", {}).get("type") in ("number", "integer"):
        items = block["items"]
        values += [[], *([v] for v in number_probes(items, integer=items["type"] == "integer"))]
    if "object" in kinds and "properties" in block:  # a mapping of numbers (progressive_dropout.retain)
        for key, sub in block["properties"].items():
            values += [{key: v} for v in number_probes(sub, integer=sub.get("type") == "integer")]
        values.append({"no_such_key": 0.5})
    if "null" in kinds:
        values.append(None)
    return values


def disagreements(name: str) -> dict[str, list[str]]:
    """setting -> the values that the schema and the dataclass judge differently."""
    found = {}
    for field in dataclasses.fields(config_cls(name)):
        block = field_schema(name, field.name)
        for value in probes(name, field, block):
            schema, code = schema_accepts(block, value), dataclass_accepts(name, field.name, value)
            if schema != code:
                says = "schema accepts, dataclass refuses" if schema else "dataclass accepts, schema refuses"
                found.setdefault(field.name, []).append(f"{name}.{field.name} = {value!r}: {says}")
    return found


def test_the_schema_blocks_are_exactly_the_registered_methods():
    assert sorted(DEFS["methods"]) == NAMES
    # A variant's keys are its methods (the merged $defs.methods) plus its own train and datasets.
    assert sorted(set(DEFS["variant"]["properties"]) - set(VARIANT_KEYS)) == NAMES
    for name in NAMES:
        assert DEFS["variant"]["properties"][name] == DEFS["methods"][name], name


@pytest.mark.parametrize("name", NAMES)
def test_schema_block_has_the_dataclass_fields(name):
    fields = {f.name for f in dataclasses.fields(config_cls(name))}
    assert set(DEFS["methods"][name]["properties"]) == fields
    assert DEFS["methods"][name].get("additionalProperties") is False


@pytest.mark.parametrize("name", NAMES)
def test_schema_takes_the_dataclass_defaults(name):
    for field in dataclasses.fields(config_cls(name)):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        default = yaml.safe_load(yaml.safe_dump(_plain(default)))  # as a config file would give it
        if field.name in REQUIRED.get(name, {}):
            continue  # no usable default: the config must give one
        assert schema_accepts(field_schema(name, field.name), default), f"{name}.{field.name} = {default!r}"


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", NAMES)
def test_schema_and_dataclass_accept_the_same_values(name):
    found = disagreements(name)
    unknown = [line for field, lines in found.items() if (name, field) not in KNOWN for line in lines]
    assert unknown == [], "fix the schema block (or the dataclass, if it is the one wrong):\n" + "\n".join(unknown)
    for (method, field), why in KNOWN.items():
        if method == name:
            assert field in found, f"{name}.{field} now agrees with the schema: remove it from KNOWN ({why})"


@pytest.mark.parametrize("name, field", sorted(SLACK))
def test_each_slack_is_a_rule_of_the_dataclass(name, field):
    # Without the other setting moved out of the way, the dataclass refuses a value of this one
    # that the schema takes: a rule between the two settings, checked when the job starts.
    block = field_schema(name, field)
    refused = [
        value
        for value in probes(name, dataclass_field(name, field), block)
        if schema_accepts(block, value) and not dataclass_accepts(name, field, value, slack=False)
    ]
    assert refused, f"{name}.{field}: no rule needs {SLACK[(name, field)]}; remove it from SLACK"
