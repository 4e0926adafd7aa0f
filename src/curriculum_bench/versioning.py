"""Version the workflow's artifacts with DVC, next to the git commit that produced them.

What is versioned, one `.dvc` file each at the repository root:
    resources.dvc      prepared dataset stores, resources/datasets/<name>/ (raw downloads
                       under resources/raw/ are .dvcignored: the prepare rule fetches them)
    results.dvc        every study's runs: metrics.json, history.jsonl, final_model.pt and
                       per-run artifacts (coresets, per-sample statistics, ...)
    paper_tables.dvc   study tables (.md, .csv) and figures
and, in git beside them:
    dvc.yaml              `metrics:` every run's metrics.json (`dvc metrics show/diff`),
                          `plots:` each study table's accuracy per variant (`dvc plots show`)
    recorded_config.yaml  the workflow config that produced the recorded artifacts
Never versioned: checkpoints/ (resumption state only), logs/, .snakemake/.

Why one `.dvc` file per top-level folder rather than per study or per run: results/,
resources/ and paper_tables/ stay git-ignored, and DVC does not look for `.dvc` files in a
folder that git ignores anything under (scmrepo then treats the folder itself as ignored), so
the `.dvc` files must sit at the root. This costs nothing that matters: `dvc pull results/<study>`
and `dvc checkout <path>` still act on any sub-folder or file, and `dvc status` rehashes only
files whose size or mtime changed since DVC last saw them.

Reproducing on another clone without retraining (`restore`): DVC restores files with fresh
timestamps in arbitrary order and a fresh clone has no .snakemake/ metadata, so Snakemake
would see outputs older than their inputs and, lacking metadata, could not notice a changed
config. `restore` checks that the pulled files are exactly the recorded versions (`dvc status`)
and were produced by the recorded config, then runs `snakemake --touch --forceall` with the
recorded config: Snakemake touches every output in DAG order and writes the metadata (params,
input list, code) of the config that really produced them. Afterwards `snakemake -n` with the
same config plans nothing, and with a changed config plans exactly what the change affects
(Snakemake's params/input triggers compare against the recorded config).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from .config import METRICS, diff_keys, iter_runs, resolve_run

TRACKED = ("resources", "results", "paper_tables")
RECORDED_CONFIG = "recorded_config.yaml"
CONFIGFILES_LINE = "# configfiles: "  # the recorded run's --configfile arguments, relative to the repo
DEFAULT_CONFIG = "config/config.yaml"  # the Snakefile's `configfile:`
DVC_YAML = "dvc.yaml"
# A local folder: recording works offline. Any DVC remote (s3://, ssh://, ...) replaces it
# with one line: `dvc remote add -d storage URL` (or `dvc-record --remote URL`).
DEFAULT_REMOTE = "~/.cache/curriculum-bench/dvc-remote"
REMOTE_NAME = "storage"
# The study tables' column to plot per variant (report/table.py writes it).
PLOT_X, PLOT_Y = "final_acc_mean", "variant"


class VersioningError(RuntimeError):
    """A DVC/git/Snakemake step failed, or the artifacts do not match the config."""


def quiet_env() -> dict:
    # DVC would otherwise try to send usage analytics and look for updates over the network.
    return {**os.environ, "DVC_NO_ANALYTICS": "1"}


def call(repo: Path, cmd: list[str], what: str) -> str:
    result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=quiet_env())
    if result.returncode != 0:
        raise VersioningError(f"{what} failed ({' '.join(cmd[:4])} ...):\n{(result.stderr or result.stdout).strip()}")
    return result.stdout


def dvc(repo: Path, *args: str) -> str:
    return call(repo, [sys.executable, "-m", "dvc", *args], f"dvc {args[0]}")


def git(repo: Path, *args: str) -> str:
    return call(repo, ["git", *args], f"git {args[0]}")


def workflow_config(repo: Path, configfiles: list[Path]) -> dict:
    """The config the Snakefile runs with in `repo`: the --configfiles merged recursively in
    order (snakemake.utils.update_config), or config/config.yaml when none is given (the
    Snakefile reads its default only then)."""
    from snakemake.utils import update_config

    config: dict = {}
    paths = [Path(p) for p in configfiles] or [repo / DEFAULT_CONFIG]
    for path in paths:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def config_mismatches(repo: Path, config: dict) -> tuple[list[str], list[str]]:
    """(outputs produced by another config, outputs not there) for the runs and datasets of `config`.

    Each prepared store's manifest and each run's metrics.json records what produced it: the
    dataset spec and the resolved run config.
    """
    mismatched, missing = [], []
    for name, spec in config.get("datasets", {}).items():
        manifest = repo / "resources/datasets" / name / "manifest.json"
        if not manifest.exists():
            missing.append(str(manifest.relative_to(repo)))
            continue
        recorded = json.loads(manifest.read_text())["source"]
        changed = [key for key, value in spec.items() if recorded.get(key) != value]
        if changed:
            mismatched.append(f"{manifest.relative_to(repo)}: {', '.join(changed)} differ")
    for run in iter_runs(config):
        metrics = repo / METRICS.format(**run)
        if not metrics.exists():
            missing.append(str(metrics.relative_to(repo)))
            continue
        recorded = json.loads(metrics.read_text()).get("run")
        changed = diff_keys(recorded, json.loads(json.dumps(resolve_run(config, **run))))
        if changed:
            mismatched.append(f"{metrics.relative_to(repo)}: {', '.join(changed)} differ")
    return mismatched, missing


def write_dvc_yaml(repo: Path) -> dict:
    """Register every run's metrics.json and each study table in dvc.yaml; other keys are kept.

    DVC's top-level `metrics:` takes files, not folders or globs (a folder would make it parse
    history.jsonl and final_model.pt as metrics), so the list is regenerated at each record.
    """
    path = repo / DVC_YAML
    spec = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    spec["metrics"] = sorted(p.relative_to(repo).as_posix() for p in (repo / "results").rglob("metrics.json"))
    spec["plots"] = [
        {table.relative_to(repo).as_posix(): {"x": PLOT_X, "y": PLOT_Y, "template": "bar_horizontal"}}
        for table in sorted((repo / "paper_tables").glob("*.csv"))
    ]
    if not spec["plots"]:
        del spec["plots"]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec


def default_remote(repo: Path) -> str | None:
    # `dvc remote default` exits non-zero when none is set.
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "default"], cwd=repo, capture_output=True, text=True, env=quiet_env()
    )
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def ensure_remote(repo: Path, url: str | None) -> str:
    """Make `url` (or, when no default remote exists yet, DEFAULT_REMOTE) the default remote."""
    if url is None and (name := default_remote(repo)):
        return name
    if url is None:
        url = os.path.expanduser(DEFAULT_REMOTE)
    if "://" not in url:
        url = str(Path(url).expanduser().resolve())
        Path(url).mkdir(parents=True, exist_ok=True)
    dvc(repo, "remote", "add", "--default", "--force", REMOTE_NAME, url)
    # DVC trusts a remote's files by default: a corrupted one would be checked out silently
    # and then hashed as if it were right. With `verify` it rehashes each download and refuses.
    dvc(repo, "remote", "modify", REMOTE_NAME, "verify", "true")
    return REMOTE_NAME


def record(
    repo: Path, configfiles: list[Path], remote: str | None = None, push: bool = True, commit_message: str | None = None
) -> list[str]:
    """dvc add the artifacts, register metrics/plots, save the config, commit, push.

    Returns the paths committed to git. Refuses when an artifact was produced by a config other
    than the one given, since restoring would then stamp it as up to date with the wrong config.
    """
    repo = Path(repo).resolve()
    config = workflow_config(repo, configfiles)
    mismatched, missing = config_mismatches(repo, config)
    if mismatched:
        raise VersioningError(
            "these artifacts were produced by another config than "
            f"{[DEFAULT_CONFIG, *map(str, configfiles)]}; pass the --configfile you ran snakemake "
            "with:\n  " + "\n  ".join(mismatched)
        )
    for path in missing:
        print(f"not recorded (not produced yet): {path}", file=sys.stderr)
    tracked = [name for name in TRACKED if (repo / name).exists()]
    if not tracked:
        raise VersioningError(f"nothing to record: none of {TRACKED} exists in {repo}")
    given = [os.path.relpath(Path(p).resolve(), repo) for p in configfiles]
    (repo / RECORDED_CONFIG).write_text(
        "# The workflow config that produced the DVC-recorded artifacts (python -m curriculum_bench"
        " dvc-record).\n# `dvc-restore` stamps the pulled artifacts as produced by it.\n"
        f"{CONFIGFILES_LINE}{json.dumps(given)}\n" + yaml.safe_dump(config, sort_keys=False)
    )
    write_dvc_yaml(repo)
    dvc(repo, "add", "--quiet", *tracked)
    remote_name = ensure_remote(repo, remote)
    paths = [f"{name}.dvc" for name in tracked] + [DVC_YAML, RECORDED_CONFIG, ".dvc/config", ".dvcignore"]
    git(repo, "add", "--", *paths)
    if commit_message is not None and git(repo, "diff", "--cached", "--name-only", "--", *paths).strip():
        git(repo, "commit", "--quiet", "-m", commit_message, "--", *paths)
    if push:
        dvc(repo, "push", "--quiet", "--remote", remote_name)
    return paths


def pull_verified(repo: Path) -> None:
    """dvc pull; on failure, name the files whose content did not match their recorded hash."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "pull", "--verbose"], cwd=repo, capture_output=True, text=True, env=quiet_env()
    )
    if result.returncode == 0:
        return
    log = result.stdout + result.stderr
    # DVC logs these at debug level: the object whose hash failed, then the workspace file it
    # could not create from it.
    workspace_file = {cache: file for file, cache in re.findall(r"failed to create '([^']+)' from '([^']+)'", log)}
    corrupted = sorted(
        {
            os.path.relpath(workspace_file.get(cache, cache), repo)
            for cache in re.findall(r"corrupted cache file '([^']+)'", log)
        }
    )
    errors = [line.split("ERROR: ", 1)[1] for line in log.splitlines() if "ERROR: " in line]
    raise VersioningError(
        "dvc pull failed"
        + (
            ": these downloaded files do not match their recorded hash (corrupted in the remote "
            "or in transfer; DVC removed them):\n  " + "\n  ".join(corrupted)
            if corrupted
            else ""
        )
        + "\n"
        + "\n".join(errors)
    )


def restore(repo: Path, pull: bool = True, cores: int = 1) -> None:
    """dvc pull, check the files are the recorded versions, then stamp them up to date for Snakemake."""
    repo = Path(repo).resolve()
    if not (repo / RECORDED_CONFIG).exists():
        raise VersioningError(f"{repo / RECORDED_CONFIG}: not found; this commit has no recorded artifacts")
    if pull:
        pull_verified(repo)
    status = json.loads(dvc(repo, "status", "--json") or "{}")
    if status:
        raise VersioningError(
            "the workspace does not hold the recorded artifacts (corrupted or missing cache or "
            "workspace files; `dvc pull --force` or `dvc checkout --force` restores them):\n"
            + json.dumps(status, indent=2)
        )
    config = yaml.safe_load((repo / RECORDED_CONFIG).read_text())
    mismatched, _ = config_mismatches(repo, config)
    if mismatched:
        raise VersioningError(
            f"{RECORDED_CONFIG} does not describe the pulled artifacts:\n  " + "\n  ".join(mismatched)
        )
    call(
        repo,
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(repo / "Snakefile"),
            "--directory",
            str(repo),
            *configfile_args(repo, config),
            "--cores",
            str(cores),
            "--touch",
            "--forceall",
            "--quiet",
        ],
        "snakemake --touch",
    )


def configfile_args(repo: Path, config: dict) -> list[str]:
    """The --configfile arguments of the recorded run when this clone still has those files
    with the same content, so the stamped metadata (rule params name the config files) is what
    the user's own `snakemake --configfile ...` compares with; else the recorded config."""
    header = (repo / RECORDED_CONFIG).read_text().splitlines()
    given = next(
        (json.loads(line[len(CONFIGFILES_LINE) :]) for line in header if line.startswith(CONFIGFILES_LINE)), None
    )
    if (
        given is not None
        and all((repo / f).exists() for f in given)
        and workflow_config(repo, [repo / f for f in given]) == config
    ):
        return [arg for f in given for arg in ("--configfile", f)]
    return ["--configfile", RECORDED_CONFIG]
