"""Which runs a written table holds, and the marker that makes the workflow rebuild it.

Pandas-free (the Snakefile imports `rebuild_marker` while it plans): `report.table` writes
the tables and re-exports these. The CSV's dataset, model, variant and seed_list columns are
the runs the table holds; `rebuild_marker` compares them, and the run files' existence, with
what the config asks for.
"""

from __future__ import annotations

import csv
import os
import re
import time
from pathlib import Path

from ..config import RUN_DIR


def _run_path_pattern() -> re.Pattern:
    """RUN_DIR + "/<file>" as a regex with one group per field, matched at the end of a path."""
    pieces = re.split(r"\{(\w+)\}", RUN_DIR)
    body = "".join(
        re.escape(piece) if i % 2 == 0 else (r"(?P<seed>\d+)" if piece == "seed" else f"(?P<{piece}>[^/]+)")
        for i, piece in enumerate(pieces)
    )
    return re.compile(f"(?:^|/){body}/(?P<file>[^/]+)$")


RUN_PATH = _run_path_pattern()


def run_of_path(path: Path | str) -> dict | None:
    """study, dataset, model, variant, seed (int) and file name that a run file's path names; None if none."""
    match = RUN_PATH.search(Path(path).as_posix())
    if match is None:
        return None
    return {**match.groupdict(), "seed": int(match["seed"])}


def tabulated_runs(csv_path: Path) -> set[tuple[str, str, str, int]] | None:
    """The runs a written table holds, from its CSV's dataset, model, variant and seed_list; None if unreadable."""
    try:
        with open(csv_path, newline="") as f:
            return {
                (row["dataset"], row["model"], row["variant"], int(seed))
                for row in csv.DictReader(f)
                for seed in row["seed_list"].split()
            }
    except (OSError, KeyError, ValueError, AttributeError):  # AttributeError: a row shorter than the header
        return None


def table_is_stale(csv_path: Path, run_files: list[str]) -> bool:
    """A written table whose runs are not exactly `run_files` (the config's), or one of those files is gone.

    Snakemake alone misses both: a table newer than every run file that exists counts as up to date, and
    the list of its inputs is compared only through .snakemake/metadata (absent after a fresh checkout
    or a DVC restore). A table not written yet is not stale: it is built anyway.
    """
    if not Path(csv_path).exists():
        return False
    if not all(Path(f).exists() for f in run_files):
        return True
    named = [run_of_path(f) for f in run_files]
    expected = {(r["dataset"], r["model"], r["variant"], r["seed"]) for r in named if r is not None}
    return tabulated_runs(csv_path) != expected


def rebuild_marker(csv_path: Path, run_files: list[str], marker: Path) -> str:
    """The workflow's table input that forces a rebuild: `marker`, made newer than the table's CSV when the
    table is stale, else dated 1970 (so it never triggers one, whatever touched it before); returned as a str.

    Snakemake reruns a job for an input newer than its outputs, and only so (it does not remake a missing
    intermediate file for an up-to-date table), so the marker must exist and be dated now. It is always an
    input, so the list of inputs Snakemake records does not change from one invocation to the next.
    """
    marker = Path(marker)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    stamp = 0
    if table_is_stale(csv_path, run_files):
        stamp = max(time.time_ns(), Path(csv_path).stat().st_mtime_ns + 1_000_000_000)
    os.utime(marker, ns=(stamp, stamp))
    return str(marker)
