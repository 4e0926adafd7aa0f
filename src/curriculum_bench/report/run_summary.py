"""What each study actually runs, summarised from the resolved plan for the index.

Built from the same run list the workflow schedules (no pandas or torch: the Snakefile calls
it when it plans), so the index's summary line cannot disagree with the runs behind a table.
The coreset study's stages (proxy, core, removal) train different models, variants, seeds
and epochs; runs are grouped by what they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def unique(values: Iterable) -> list:
    return list(dict.fromkeys(values))


def summarize_runs(runs: Iterable[dict], epochs_of: Callable[[dict], int]) -> dict[str, dict]:
    """study -> {datasets, models, variants, runs, rows, groups}; rows are the table's
    [dataset, model, variant]; a group is the variants that share their models, seeds and
    epochs: {variants, models, seeds, epochs}."""
    studies: dict[str, dict] = {}
    for run in runs:
        study = studies.setdefault(
            run["study"],
            {
                "datasets": [],
                "models": [],
                "variants": [],
                "runs": 0,
                "rows": [],
                "_seeds": {},
                "_epochs": {},
                "_models": {},
            },
        )
        study["runs"] += 1
        row = [run["dataset"], run["model"], run["variant"]]
        if row not in study["rows"]:
            study["rows"].append(row)
        for key in ("dataset", "model", "variant"):
            if run[key] not in study[key + "s"]:
                study[key + "s"].append(run[key])
        study["_seeds"].setdefault(run["variant"], []).append(run["seed"])
        study["_epochs"].setdefault(run["variant"], []).append(epochs_of(run))
        study["_models"].setdefault(run["variant"], []).append(run["model"])
    for study in studies.values():
        seeds, epochs, models = study.pop("_seeds"), study.pop("_epochs"), study.pop("_models")
        groups: dict[tuple, list[str]] = {}
        for variant in study["variants"]:
            key = (tuple(unique(models[variant])), tuple(unique(seeds[variant])), tuple(unique(epochs[variant])))
            groups.setdefault(key, []).append(variant)
        study["groups"] = [
            {"variants": variants, "models": list(m), "seeds": list(s), "epochs": list(e)}
            for (m, s, e), variants in groups.items()
        ]
    return studies


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def describe_group(group: dict, only: bool) -> str:
    seeds, epochs = group["seeds"], group["epochs"]
    text = f"{plural(len(seeds), 'seed')} ({' '.join(map(str, seeds))})"
    if epochs:
        text += f", {'/'.join(map(str, epochs))} epoch{'s' * (epochs != [1])}"
    if only:
        return text
    return f"{', '.join(group['variants'])} ({', '.join(group['models'])}): {text}"


def summary_line(summary: dict) -> str:
    """One sentence: datasets, models, variants, runs, and seeds/epochs per group of variants."""
    groups = summary["groups"]
    per_group = "; ".join(describe_group(g, len(groups) == 1) for g in groups)
    return (
        f"Datasets {', '.join(summary['datasets'])}; models {', '.join(summary['models'])}; "
        f"variants {', '.join(summary['variants'])}; {plural(summary['runs'], 'run')}: {per_group}."
    )
