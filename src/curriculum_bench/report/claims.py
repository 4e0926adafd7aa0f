"""Each source study's claims (config/claims.yaml), decided from the finished runs.

Planning (`plan_claims`, no pandas: the Snakefile calls it) finds, per claim, the dataset ×
model configurations of the running config that train both of its rows. Deciding
(`write_claims`) pairs the two rows' runs by seed and reads the verdict off the 95 % interval
of the difference (report/stats.py): reproduced, contradicted or inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..config import ConfigError
from . import FABRICATED_WARNING

CLAIM_FIELDS = {"id", "claim", "quote", "source", "a", "b", "expect", "metric", "label_noise"}
REQUIRED = CLAIM_FIELDS - {"metric", "label_noise"}


@dataclass(frozen=True)
class Claim:
    study: str
    id: str
    claim: str
    quote: str
    source: str
    a: str  # variant whose value minus b's is the effect
    b: str
    expect: str  # "higher" | "lower": the sign of a − b the claim predicts
    metric: str = "final_acc"
    label_noise: float | None = None


def metric_parts(metric: str) -> tuple[str, int | None]:
    """ "final_acc" -> ("final_acc", None); "class 3" -> ("class", 3); "epoch 84" -> ("epoch", 84)."""
    if metric in ("final_acc", "best_acc", "selected_acc"):
        return metric, None
    kind, _, number = metric.partition(" ")
    if kind in ("class", "epoch") and number.isdigit():
        return kind, int(number)
    raise ValueError(f"metric {metric!r}: expected final_acc, best_acc, selected_acc, 'class K' or 'epoch E'")


def load_claims(path: Path) -> list[Claim]:
    """Every claim of the file, checked for its fields; an error names the file and the claim."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the claims file: {err}") from None
    claims, seen = [], set()
    for study, entries in data.items():
        for i, entry in enumerate(entries or []):
            where = f"{path}: {study}[{i}]" + (f" ({entry['id']})" if isinstance(entry, dict) and "id" in entry else "")
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: expected a mapping with keys {sorted(REQUIRED)}")
            unknown, missing = set(entry) - CLAIM_FIELDS, REQUIRED - set(entry)
            if unknown or missing:
                raise ConfigError(
                    f"{where}: " + (f"unknown keys {sorted(unknown)}" if unknown else f"missing keys {sorted(missing)}")
                )
            if entry["expect"] not in ("higher", "lower"):
                raise ConfigError(f"{where}.expect: expected 'higher' or 'lower', got {entry['expect']!r}")
            try:
                metric_parts(entry.get("metric", "final_acc"))
            except ValueError as err:
                raise ConfigError(f"{where}.metric: {err}") from None
            if entry["id"] in seen:
                raise ConfigError(f"{where}.id: {entry['id']!r} is used twice")
            seen.add(entry["id"])
            claims.append(Claim(study=study, **entry))
    return claims


def config_runs(config: dict) -> list[dict]:
    """Every training run of a validated config: {study, dataset, model, variant, seed}."""
    from ..config import iter_runs
    from ..coreset.plan import iter_coreset_runs

    return list(iter_runs(config)) + list(iter_coreset_runs(config))


def reference_runs(path: str | Path, schema: str | Path | None = None) -> list[dict]:
    """The runs of the config the claims are written against (config/paper.yaml)."""
    from ..plan import SCHEMA, load_config

    return config_runs(load_config([path], schema or SCHEMA))


def label_noise_of(config: dict, dataset: str) -> float:
    return float(((config["datasets"][dataset].get("label_noise") or {}).get("fraction")) or 0.0)


def plan_claims(
    claims: list[Claim], config: dict, runs: list[dict], reference_runs: list[dict], path: str = "config/claims.yaml"
) -> list[dict]:
    """Per claim: the configurations [dataset, model] of `runs` that train both rows.

    A claim whose variant is in neither `runs` nor `reference_runs` (config/paper.yaml's) is a
    ConfigError naming the claim; one the running config lacks is planned with no configuration.
    """
    variants: dict[str, set[str]] = {}
    for run in [*runs, *reference_runs]:
        variants.setdefault(run["study"], set()).add(run["variant"])
    trained = {(r["study"], r["dataset"], r["model"], r["variant"]) for r in runs}
    planned = []
    for claim in claims:
        for side in ("a", "b"):
            variant = getattr(claim, side)
            if variant not in variants.get(claim.study, set()):
                raise ConfigError(
                    f"{path}: claim {claim.id}.{side}: {variant!r} is no variant of study "
                    f"{claim.study!r} in this config or config/paper.yaml "
                    f"(have {sorted(variants.get(claim.study, set()))})"
                )
        configurations = []
        for study, dataset, model, variant in trained:
            if (study, variant) != (claim.study, claim.a) or (study, dataset, model, claim.b) not in trained:
                continue
            if claim.label_noise is not None and not math.isclose(label_noise_of(config, dataset), claim.label_noise):
                continue
            configurations.append([dataset, model])
        planned.append({**asdict(claim), "configurations": sorted(configurations)})
    return planned


VERDICT_MARK = {"reproduced": "✔ reproduced", "contradicted": "✘ contradicted", "inconclusive": "? inconclusive"}


def claim_value(runs, metric: str):
    """The per-run series a claim compares (fractions), from report.table.load_runs' frame."""
    kind, number = metric_parts(metric)
    if kind == "selected_acc":
        return runs["test_at_best_val_acc"].fillna(runs["final_acc"])
    if kind == "class":
        return runs[f"acc_class {number}"]
    if kind == "epoch":
        return runs[f"acc_epoch {number}"]
    return runs[kind]


def decide(planned: list[dict], runs) -> list[dict]:
    """One row per claim and configuration that ran it (and one per claim that did not run)."""
    from .stats import describe_seeds_to_decide, paired_difference, verdict
    from .table import values_per_seed

    rows = []
    for claim in planned:
        base = {
            "study": claim["study"],
            "claim": claim["id"],
            "statement": claim["claim"],
            "comparison": f"{claim['a']} − {claim['b']}",
            "metric": claim["metric"],
            "expect": claim["expect"],
            "source": claim["source"],
            "quote": claim["quote"],
        }
        if not claim["configurations"]:
            rows.append(
                {
                    **base,
                    "configuration": "—",
                    "n": 0,
                    "effect_pp": math.nan,
                    "low_pp": math.nan,
                    "high_pp": math.nan,
                    "verdict": "not run",
                    "seeds_to_decide": "—",
                }
            )
            continue
        study_runs = runs[runs["study"] == claim["study"]]
        per_seed = values_per_seed(study_runs, claim_value(study_runs, claim["metric"]))
        for dataset, model in claim["configurations"]:
            diff = paired_difference(
                per_seed.get((dataset, model, claim["a"]), {}), per_seed.get((dataset, model, claim["b"]), {})
            )
            rows.append(
                {
                    **base,
                    "configuration": f"{dataset} / {model}",
                    "n": diff.n if diff else 0,
                    "effect_pp": 100 * diff.mean if diff else math.nan,
                    "low_pp": 100 * diff.low if diff else math.nan,
                    "high_pp": 100 * diff.high if diff else math.nan,
                    "verdict": verdict(diff, claim["expect"]),
                    "seeds_to_decide": describe_seeds_to_decide(diff) if not (diff and diff.excludes_zero) else "—",
                }
            )
    return rows


INTRO = (
    "Each source study's qualitative claims (config/claims.yaml), checked on the runs of this "
    "config. Effect = a − b in percentage points, paired by seed over the seeds both rows ran, "
    "with its 95 % Student-t interval over seeds. **reproduced**: the interval excludes zero in "
    "the claimed direction; **contradicted**: it excludes zero the other way; **inconclusive**: "
    "it contains zero (`seeds to decide`: about how many seeds would exclude it if the observed "
    "effect and spread held). A verdict is about these runs (their datasets, models, epochs), "
    "not about the paper's setting."
)


def display_rows(rows: list[dict]) -> list[dict]:
    def interval(row):
        if math.isnan(row["effect_pp"]):
            return "—"
        if math.isnan(row["low_pp"]):
            return f"{row['effect_pp']:+.2f} (n = 1: no interval)"
        return f"{row['effect_pp']:+.2f} [{row['low_pp']:+.2f}, {row['high_pp']:+.2f}]"

    return [
        {
            "study": r["study"],
            "claim": r["statement"],
            "configuration": r["configuration"],
            "a − b": r["comparison"],
            "metric": r["metric"],
            "expected": r["expect"],
            "n": r["n"],
            "effect (pp) [95 % CI]": interval(r),
            "verdict": VERDICT_MARK.get(r["verdict"], r["verdict"]),
            "seeds to decide": r["seeds_to_decide"],
            "source": f"{r['source']}: “{r['quote']}”",
        }
        for r in rows
    ]


def write_claims(
    planned: list[dict],
    metrics_paths: list[Path],
    out_md: Path,
    out_csv: Path,
    out_html: Path | None = None,
    fabricated_data: bool = False,
) -> list[dict]:
    import pandas as pd

    from .table import TableOptions, load_runs

    parts = [metric_parts(c["metric"]) for c in planned]
    options = TableOptions(
        per_class=tuple(sorted({k for kind, k in parts if kind == "class"})),
        at_epochs=tuple(sorted({k for kind, k in parts if kind == "epoch"})),
    )
    runs = (
        load_runs(metrics_paths, options)
        if metrics_paths
        else pd.DataFrame(columns=["study", "dataset", "model", "variant", "seed"])
    )
    rows = decide(planned, runs)
    frame = pd.DataFrame(display_rows(rows))
    counts = pd.Series([r["verdict"] for r in rows]).value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("reproduced", "contradicted", "inconclusive", "not run"))
    warning = [FABRICATED_WARNING, ""] if fabricated_data else []
    lines = [
        "# Claims",
        "",
        *warning,
        INTRO,
        "",
        f"Verdicts: {tally}.",
        "",
        frame.to_markdown(index=False, disable_numparse=True),
        "",
    ]
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text("\n".join(lines))
    pd.DataFrame(rows).to_csv(out_csv, index=False)
    if out_html is not None:
        from html import escape

        Path(out_html).write_text(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Claims</title></head><body>"
            f"<h1>Claims</h1>{''.join(f'<p>{escape(w)}</p>' for w in warning if w)}"
            f"<p>{escape(INTRO)}</p><p>Verdicts: {escape(tally)}.</p>"
            f"{frame.to_html(index=False, border=0)}</body></html>\n"
        )
    print(f"claims: {len(planned)} claims, {len(rows)} verdicts ({tally}) -> {out_md}", flush=True)
    return rows
