"""A run's identity: its resolved config and the content of every file it reads.

The config alone does not identify a result. A dataset prepared again with another
`split_seed`, a coreset selection of another size, a retrained distillation teacher or other
pretrained weights all leave the resolved run config as it was and change what the run
computes. A checkpoint is therefore resumed only by a job whose config *and* input
checksums equal the checkpoint's, and never once its history is complete: Snakemake starts
a job for a finished run only because something it depends on changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..config import diff_keys

HASH_CHUNK_BYTES = 16 * 2**20
# Model arguments that name a local weights file (models.create_model, models/finetune.py),
# at any depth: SimCLR passes its encoder's arguments on in `encoder_args`.
MODEL_FILE_ARGS = ("weights", "pretrained")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_sha256(manifest: dict) -> str:
    """The dataset store's content: its manifest holds the sha256 of every array (checked
    when the arrays are loaded), its classes, shapes and source spec."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def model_files(model_args: dict, where: str = "model_args") -> dict[str, Path]:
    """Weights files named anywhere in a model's arguments, keyed by their dotted path."""
    files = {}
    for key, value in (model_args or {}).items():
        if isinstance(value, dict):
            files.update(model_files(value, f"{where}.{key}"))
        elif key in MODEL_FILE_ARGS and isinstance(value, str) and value:
            files[f"{where}.{key}"] = Path(value)
    return files


def run_inputs(data_dir: Path, manifest: dict, files: dict[str, Path]) -> dict[str, dict[str, str]]:
    """{role: {path, sha256}} for the dataset store and each file the run reads."""
    inputs = {"dataset": {"path": str(Path(data_dir) / "manifest.json"), "sha256": manifest_sha256(manifest)}}
    for role, path in sorted(files.items()):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{role}: {path} does not exist; the run reads it")
        inputs[role] = {"path": str(path), "sha256": file_sha256(path)}
    return inputs


def run_identity(run: dict, inputs: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (paths may move; content may not change)."""
    return {"run": run, "inputs": {role: entry["sha256"] for role, entry in inputs.items()}}


def why_not_resume(checkpoint: dict, identity: dict, epochs: int) -> str | None:
    """None when `checkpoint` continues this job; otherwise the reason to start afresh."""
    saved = checkpoint.get("identity")
    if saved is None:
        return "it records no input checksums (written by an older version)"
    if saved["run"] != identity["run"]:
        return f"it is for another config (differs at {', '.join(diff_keys(saved['run'], identity['run']))})"
    changed = changed_inputs(saved["inputs"], identity["inputs"])
    if changed:
        return f"the content of its inputs changed ({', '.join(changed)})"
    if len(checkpoint["history"]) >= epochs and checkpoint.get("progress") is None:
        return (
            f"its run already finished all {epochs} epochs; a new job for a finished run means "
            "an input or output changed"
        )
    return None


def changed_inputs(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    return [role for role in sorted(set(saved) | set(current)) if saved.get(role) != current.get(role)]
