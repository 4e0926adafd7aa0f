"""Run-level progress of a workflow: what is running, what is left, and when it should end.

`python -m curriculum_bench progress [--configfile ...]` reads only files: the config's
planned runs (`report.claims.config_runs`), each finished run's `metrics.json` (its
measured `wall_s`), and `logs/train/…` (a job's log is written while it runs; its last line
is the engine's per-epoch line with that run's own ETA). `make run` prints it every minute
beside Snakemake's "N of M steps". No torch or pandas import.

The estimate: a study's remaining runs x the mean wall time of its finished runs (the mean
over every finished run while a study has none), divided by the number of runs going at
once (those running now, at least one).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .config import METRICS

TRAIN_LOG = "logs/train/{study}/{dataset}/{model}/{variant}/seed{seed}.log"
RUNNING_WITHIN_S = 600  # a log written to within this many seconds, without metrics.json: running


@dataclass
class StudyProgress:
    study: str
    planned: int
    finished: int
    mean_wall_s: float | None  # of this study's finished runs


def finished_wall_times(workdir: Path, runs: list[dict]) -> dict[int, float]:
    """Index in `runs` -> measured wall seconds, for each run whose metrics.json exists."""
    walls = {}
    for i, run in enumerate(runs):
        path = workdir / METRICS.format(**run)
        try:
            walls[i] = float(json.loads(path.read_text()).get("wall_s") or 0.0)
        except (OSError, ValueError):
            continue
    return walls


def study_progress(runs: list[dict], walls: dict[int, float]) -> list[StudyProgress]:
    studies: dict[str, StudyProgress] = {}
    sums: dict[str, float] = {}
    for i, run in enumerate(runs):
        row = studies.setdefault(run["study"], StudyProgress(run["study"], 0, 0, None))
        row.planned += 1
        if i in walls:
            row.finished += 1
            sums[run["study"]] = sums.get(run["study"], 0.0) + walls[i]
    for row in studies.values():
        if row.finished:
            row.mean_wall_s = sums[row.study] / row.finished
    return list(studies.values())


def eta_seconds(studies: list[StudyProgress], parallel: int = 1) -> float | None:
    """Seconds until every planned run is finished; None before any run has finished."""
    measured = [(row.mean_wall_s, row.finished) for row in studies if row.mean_wall_s is not None]
    if not measured:
        return None
    overall = sum(mean * n for mean, n in measured) / sum(n for _, n in measured)
    work = sum(
        (row.planned - row.finished) * (row.mean_wall_s if row.mean_wall_s is not None else overall) for row in studies
    )
    return work / max(1, parallel)


def running_runs(workdir: Path, runs: list[dict], walls: dict[int, float], now: float) -> list[tuple[dict, Path]]:
    out = []
    for i, run in enumerate(runs):
        if i in walls:
            continue
        log = workdir / TRAIN_LOG.format(**run)
        try:
            if now - log.stat().st_mtime <= RUNNING_WITHIN_S:
                out.append((run, log))
        except OSError:
            continue
    return out


def last_line(path: Path, limit: int = 4096) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - limit))
        lines = f.read().decode(errors="replace").replace("\r", "\n").strip().splitlines()
    return lines[-1].strip() if lines else ""


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def format_progress(workdir: Path, runs: list[dict], now: float | None = None) -> str:
    now = time.time() if now is None else now
    walls = finished_wall_times(workdir, runs)
    studies = study_progress(runs, walls)
    running = running_runs(workdir, runs, walls, now)
    done = sum(row.finished for row in studies)
    lines = [f"[progress {time.strftime('%H:%M', time.localtime(now))}] runs finished {done} of {len(runs)}"]
    for row in studies:
        each = f", {duration(row.mean_wall_s)} each" if row.mean_wall_s is not None else ""
        lines.append(f"  {row.study}: {row.finished}/{row.planned}{each}")
    for run, log in running:
        lines.append(
            f"  running {run['study']}/{run['dataset']}/{run['model']}/{run['variant']}/seed{run['seed']}: "
            f"{last_line(log)[:100]}  (log: {log.relative_to(workdir)})"
        )
    eta = eta_seconds(studies, len(running))
    if done == len(runs):
        lines.append("  every run is finished; tables and figures follow")
    elif eta is None:
        lines.append("  time left: known once a run has finished")
    else:
        lines.append(
            f"  time left ≈ {duration(eta)} ({len(running) or 1} run(s) at once; "
            f"from the finished runs' wall time). Job logs: logs/"
        )
    return "\n".join(lines)


def main(configfiles: list[str], workdir: Path) -> None:
    from .plan import load_config
    from .report.claims import config_runs

    default = workdir / "config" / "config.yaml"
    config = load_config(configfiles or ([default] if default.exists() else []))
    print(format_progress(workdir, config_runs(config)), flush=True)
