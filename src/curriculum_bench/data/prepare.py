"""`prepare`: build one dataset's canonical store from its source."""
from __future__ import annotations

from pathlib import Path

from sklearn.model_selection import train_test_split

from .sources import SOURCES
from .store import Split, write_store


def prepare(name: str, spec: dict, out_dir: Path) -> dict:
    """spec: {source, test_fraction, split_seed} from the workflow config's `datasets.<name>`."""
    images, labels, classes = SOURCES.get(spec["source"])()
    indices = list(range(len(labels)))
    train_idx, test_idx = train_test_split(
        indices,
        test_size=spec["test_fraction"],
        stratify=labels,
        random_state=spec["split_seed"],
    )
    # Keep file order inside each split so "first N" subsets stay meaningful.
    train_idx, test_idx = sorted(train_idx), sorted(test_idx)
    splits = {
        "train": Split(images[train_idx], labels[train_idx]),
        "test": Split(images[test_idx], labels[test_idx]),
    }
    source = {"name": name, **spec, "pool_size": len(labels)}
    manifest = write_store(out_dir, splits, classes, source)
    print(f"prepared {name}: " + ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
          + f" images of shape {manifest['image_shape']} -> {out_dir}", flush=True)
    return manifest
