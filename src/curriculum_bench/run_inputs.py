"""Files a run reads besides its dataset: the DAG edges between runs (no torch import).

A variant's methods may read another run's output or a local file: `distill` and `hint` the
teacher run's `final_model.pt` (same study, dataset and seed; its own variant and possibly model),
`pretrained` its `checkpoint`. The train rule lists these as inputs, so Snakemake trains a
teacher before its students and reruns the students when the teacher changes.

Both read the *resolved* run (`config.resolve_run`: the variant's settings with every
override applied), the settings the trainer itself reads, and the teacher's path comes from
one function, `teacher_file`, which the distillation hook uses too (`curricula/distill.py`).
"""

from __future__ import annotations

from pathlib import PurePath

from .config import RUN_DIR, ConfigError, resolve_run_sources

FINAL_MODEL = RUN_DIR + "/final_model.pt"
DEFAULT_TEACHER_VARIANT = "baseline"  # DistillConfig.teacher_variant
# Methods that read a teacher run with DistillConfig's teacher_* settings: Hinton's logits,
# FitNets' hint (curricula/hint.py).
TEACHER_METHODS = ("distill", "hint")


def teacher_file(study: str, dataset: str, model: str, seed: int, distill: dict) -> str:
    """The weights a student of (study, dataset, model, seed) distils from, given its resolved
    `methods.distill` settings: `teacher_checkpoint`, else the teacher run's final_model.pt
    (teacher_model or the student's model, teacher_variant, teacher_seed or the student's seed)."""
    if distill.get("teacher_checkpoint"):
        return str(distill["teacher_checkpoint"])
    teacher_seed = distill.get("teacher_seed")
    return FINAL_MODEL.format(
        study=study,
        dataset=dataset,
        model=distill.get("teacher_model") or model,
        variant=distill.get("teacher_variant") or DEFAULT_TEACHER_VARIANT,
        seed=seed if teacher_seed is None else teacher_seed,
    )


def teacher_file_of_run_dir(run_dir: str | PurePath, distill: dict) -> str:
    """teacher_file for a student addressed by its run folder (…/{study}/{dataset}/{model}/{variant}/seed{s},
    relative or absolute): the teacher's path beside it."""
    run_dir = PurePath(run_dir)
    results = run_dir.parents[4]
    study, dataset, model = run_dir.parts[-5:-2]
    path = teacher_file(study, dataset, model, int(run_dir.name.removeprefix("seed")), distill)
    if distill.get("teacher_checkpoint"):
        return path
    return str(results / PurePath(path).relative_to("results"))


def run_inputs(config: dict, study: str, dataset: str, model: str, variant: str, seed: int) -> list[str]:
    run, sources = resolve_run_sources(config, study, dataset, model, variant, seed)
    spec = config["studies"][study]
    inputs = []
    for method in TEACHER_METHODS:
        distill = run["methods"].get(method)
        if distill is None:
            continue
        if not distill.get("teacher_checkpoint"):
            teacher_variant = distill.get("teacher_variant") or DEFAULT_TEACHER_VARIANT
            teacher_model = distill.get("teacher_model") or model

            def where(key: str, method: str = method) -> str:  # the config path that set the setting
                return f"{sources.get(f'methods.{method}.{key}', f'studies.{study}.variants.{variant}')}.{method}.{key}"

            if teacher_variant not in spec["variants"]:
                raise ConfigError(
                    f"{where('teacher_variant')}: {teacher_variant!r} is not a variant of "
                    f"study {study} (have {list(spec['variants'])})"
                )
            if teacher_variant == variant:
                raise ConfigError(f"{where('teacher_variant')}: a variant cannot be its own teacher")
            if teacher_model not in spec["models"]:
                raise ConfigError(f"{where('teacher_model')}: {teacher_model!r} is not a model of study {study}")
        teacher = teacher_file(study, dataset, model, seed, distill)
        if teacher not in inputs:
            inputs.append(teacher)
    pretrained = run["methods"].get("pretrained")
    if pretrained and pretrained.get("checkpoint"):
        inputs.append(pretrained["checkpoint"])
    return inputs
