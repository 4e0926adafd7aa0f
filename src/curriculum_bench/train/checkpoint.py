"""Atomic checkpoints: a kill at any moment leaves either the old file or the new one.

A checkpoint that cannot be read all the same (a disk that filled up, a copy cut short) is
set aside as `<name>.corrupt` and the run starts afresh, rather than failing every retry.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save_checkpoint(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a kill signal turned exception: leave no half-written .tmp
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint's payload; None when there is none, or when it is unreadable (then set aside)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        # Our own file, written by save_checkpoint: it holds RNG states and plain dicts.
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except OSError:
        raise  # the disk or its permissions, not the file's content: retrying may well work
    except Exception as err:  # noqa: BLE001  (truncated or garbage: RuntimeError, UnpicklingError, EOFError ...)
        problem = f"unreadable ({type(err).__name__}: {err})"
    else:
        if isinstance(payload, dict) and "run" in payload:
            return payload
        problem = "not a checkpoint of this package (no `run` entry)"
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    print(f"checkpoint {path} is {problem}; moved it to {aside} and starting the run afresh", flush=True)
    return None
