"""`prepare`: build one dataset's canonical store from its source (all or nothing)."""

from __future__ import annotations

from pathlib import Path

from .sources import SOURCES
from .store import StoreWriter


def prepare(name: str, spec: dict, out_dir: Path) -> dict:
    """spec: the config's `datasets.<name>` entry: {source, ...that source's options}."""
    options = {k: v for k, v in spec.items() if k != "source"}
    source = SOURCES.get(spec["source"])
    with StoreWriter(out_dir) as writer:
        info = source(options, writer)
        if not writer.classes:
            raise RuntimeError(f"source {spec['source']!r} did not set the class names")
        manifest = writer.commit(writer.classes, {"name": name, **spec, **info})
    print(
        f"prepared {name}: "
        + ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
        + f" images of shape {manifest['image_shape']} -> {out_dir}",
        flush=True,
    )
    return manifest
