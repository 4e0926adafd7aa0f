"""Files a run reads besides its dataset: the DAG edges between runs (no torch import).

A variant's methods may read another run's output or a local file: `distill` the teacher
run's `final_model.pt` (same study, dataset and seed; its own variant and possibly model),
`pretrained` its `checkpoint`. The train rule lists these as inputs, so Snakemake trains a
teacher before its students and reruns the students when the teacher changes.
"""
from __future__ import annotations

from .config import RUN_DIR, ConfigError

FINAL_MODEL = RUN_DIR + "/final_model.pt"


def run_inputs(config: dict, study: str, dataset: str, model: str, variant: str, seed: int) -> list[str]:
    spec = config["studies"][study]
    methods = spec["variants"][variant] or {}
    inputs = []
    distill = methods.get("distill")
    if distill is not None:
        distill = distill or {}
        if distill.get("teacher_checkpoint"):
            inputs.append(distill["teacher_checkpoint"])
        else:
            teacher_variant = distill.get("teacher_variant", "baseline")
            teacher_model = distill.get("teacher_model") or model
            where = f"studies.{study}.variants.{variant}.distill"
            if teacher_variant not in spec["variants"]:
                raise ConfigError(f"{where}.teacher_variant: {teacher_variant!r} is not a variant of "
                                  f"study {study} (have {list(spec['variants'])})")
            if teacher_variant == variant:
                raise ConfigError(f"{where}.teacher_variant: a variant cannot be its own teacher")
            if teacher_model not in spec["models"]:
                raise ConfigError(f"{where}.teacher_model: {teacher_model!r} is not a model of study {study}")
            teacher_seed = distill.get("teacher_seed")
            inputs.append(FINAL_MODEL.format(study=study, dataset=dataset, model=teacher_model,
                                             variant=teacher_variant,
                                             seed=seed if teacher_seed is None else teacher_seed))
    pretrained = methods.get("pretrained")
    if pretrained and pretrained.get("checkpoint"):
        inputs.append(pretrained["checkpoint"])
    return inputs
