"""DVC versioning (curriculum_bench.versioning), offline.

The fast tests check the config bookkeeping on hand-made files. The `workflow` tests run the
tiny config in a copy of this repository, record and push to a local remote, clone, restore,
and check that nothing retrains and that corruption is caught."""

import copy
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from curriculum_bench.config import METRICS, iter_runs
from curriculum_bench.versioning import (
    TRACKED,
    VersioningError,
    config_mismatches,
    record,
    workflow_config,
    write_dvc_yaml,
)

from .conftest import REPO, tiny_run

TINY = ".test/config.yaml"


def run(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    # Jobs and the package import from `cwd`'s src/, with this environment's python first on PATH.
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": str(cwd / "src"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert result.returncode == 0, f"{cmd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "curriculum_bench", *args, check=check)


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "snakemake", "--cores", "2", *args)


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def recorded_artifacts(tmp_path):
    """A repository holding one prepared store and one run of a one-run config, as the workflow writes them."""
    run_config = tiny_run(epochs=2)
    config = {
        "datasets": {"digits_sklearn": {"source": "sklearn_digits", "test_fraction": 0.2, "split_seed": 0}},
        "studies": {
            "techniques": {
                "datasets": ["digits_sklearn"],
                "models": {"mlt_convnet": {}},
                "seeds": [0],
                "train": run_config["train"],
                "variants": {"test": {}},
            }
        },
    }
    write_json(
        tmp_path / "resources/datasets/digits_sklearn/manifest.json",
        {"source": {"name": "digits_sklearn", **config["datasets"]["digits_sklearn"], "pool_size": 1797}},
    )
    write_json(tmp_path / METRICS.format(**run_config), {"final_acc": 0.5, "run": run_config})
    return tmp_path, config


def test_workflow_config_merges_the_configfiles_or_reads_the_default_alone(tmp_path):
    """As the Snakefile: its default config only without --configfile, never merged under one."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text("train: {lr: 0.1, epochs: 10}\nseeds: [0, 1, 2]\n")
    (tmp_path / "tiny.yaml").write_text("train: {epochs: 2}\nseeds: [0]\n")
    (tmp_path / "lr.yaml").write_text("train: {lr: 0.5}\n")
    merged = workflow_config(tmp_path, [tmp_path / "tiny.yaml", tmp_path / "lr.yaml"])
    assert merged == {"train": {"lr": 0.5, "epochs": 2}, "seeds": [0]}
    assert workflow_config(tmp_path, []) == {"train": {"lr": 0.1, "epochs": 10}, "seeds": [0, 1, 2]}


def test_matching_artifacts_have_no_mismatch_and_unrun_ones_are_listed_missing(recorded_artifacts):
    repo, config = recorded_artifacts
    config["studies"]["techniques"]["seeds"] = [0, 1]
    mismatched, missing = config_mismatches(repo, config)
    assert mismatched == []
    assert missing == ["results/techniques/digits_sklearn/mlt_convnet/test/seed1/metrics.json"]


def test_a_changed_setting_is_named_in_the_mismatch(recorded_artifacts):
    repo, config = recorded_artifacts
    config["studies"]["techniques"]["train"]["lr"] = 0.5
    config["datasets"]["digits_sklearn"]["split_seed"] = 1
    mismatched, _ = config_mismatches(repo, config)
    assert mismatched == [
        "resources/datasets/digits_sklearn/manifest.json: split_seed differ",
        "results/techniques/digits_sklearn/mlt_convnet/test/seed0/metrics.json: train.lr differ",
    ]


def test_record_refuses_artifacts_of_another_config_before_touching_dvc(recorded_artifacts):
    repo, config = recorded_artifacts
    config["studies"]["techniques"]["train"]["lr"] = 0.5
    (repo / "other.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(VersioningError, match="train.lr differ"):
        record(repo, [repo / "other.yaml"])
    assert not (repo / "results.dvc").exists() and not (repo / "recorded_config.yaml").exists()


def test_dvc_yaml_lists_each_metrics_file_and_table_and_keeps_other_keys(recorded_artifacts):
    repo, _ = recorded_artifacts
    (repo / "paper_tables").mkdir()
    (repo / "paper_tables/techniques.csv").write_text("variant,final_acc_mean\ntest,0.5\n")
    (repo / "dvc.yaml").write_text("params: [params.yaml]\nmetrics: [stale.json]\n")
    write_dvc_yaml(repo)
    assert yaml.safe_load((repo / "dvc.yaml").read_text()) == {
        "params": ["params.yaml"],
        "metrics": ["results/techniques/digits_sklearn/mlt_convnet/test/seed0/metrics.json"],
        "plots": [
            {"paper_tables/techniques.csv": {"x": "final_acc_mean", "y": "variant", "template": "bar_horizontal"}}
        ],
    }


def git_repo_copy(dst: Path) -> None:
    """This repository's tracked and unignored files as a fresh one-commit git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dst / name)
    for cmd in (
        ["init", "-q"],
        ["config", "user.email", "t@example.org"],
        ["config", "user.name", "t"],
        ["add", "-A"],
        ["commit", "-qm", "code"],
    ):
        run(dst, "git", *cmd)


def artifact_files(repo: Path) -> dict[str, Path]:
    return {
        p.relative_to(repo).as_posix(): p
        for name in TRACKED
        for p in (repo / name).rglob("*")
        if p.is_file() and not p.name.endswith(".tmp") and "resources/raw" not in p.as_posix()
    }


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """origin: ran the tiny config, recorded and pushed; clone: cloned, pulled and restored."""
    base = tmp_path_factory.mktemp("dvc")
    origin, remote, clone = base / "origin", base / "remote", base / "clone"
    origin.mkdir()
    git_repo_copy(origin)
    # One study is enough to exercise versioning, and keeps this module's workflow short.
    tiny = yaml.safe_load((origin / TINY).read_text())
    tiny["studies"] = {"techniques": tiny["studies"]["techniques"]}
    tiny["datasets"] = {name: tiny["datasets"][name] for name in tiny["studies"]["techniques"]["datasets"]}
    (origin / TINY).write_text(yaml.safe_dump(tiny))
    run(origin, "git", "commit", "-qam", "tiny config: the techniques study only")
    snakemake(origin, "--configfile", TINY)
    cli(origin, "dvc-record", "--configfile", TINY, "--remote", str(remote), "--message", "results")
    recorded = run(origin, "git", "rev-parse", "HEAD").stdout.strip()
    run(base, "git", "clone", "-q", str(origin), str(clone))
    cli(clone, "dvc-restore")
    config = workflow_config(origin, [origin / TINY])
    return SimpleNamespace(origin=origin, remote=remote, clone=clone, recorded=recorded, config=config)


@pytest.mark.workflow
def test_pulled_artifacts_are_byte_identical(shared):
    pulled, produced = artifact_files(shared.clone), artifact_files(shared.origin)
    assert sorted(pulled) == sorted(produced)
    assert any(name.endswith("final_model.pt") for name in produced)
    mismatched = [name for name in produced if not filecmp.cmp(produced[name], pulled[name], shallow=False)]
    assert mismatched == []


@pytest.mark.workflow
def test_checkpoints_are_never_versioned(shared):
    checkpoints = list((shared.origin / "checkpoints").rglob("*.pt"))
    assert checkpoints, "the tiny run should leave resumption checkpoints behind"
    stored = {p.parent.name + p.name for p in (shared.remote / "files/md5").rglob("*")}
    assert all(hashlib.md5(p.read_bytes()).hexdigest() not in stored for p in checkpoints)
    assert not (shared.clone / "checkpoints").exists()


@pytest.mark.workflow
def test_restored_clone_plans_no_job(shared):
    result = snakemake(shared.clone, "--configfile", TINY, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]


@pytest.mark.workflow
def test_rerecording_in_the_clone_changes_nothing(shared):
    cli(shared.clone, "dvc-record", "--configfile", TINY, "--no-push")
    assert run(shared.clone, "git", "rev-parse", "HEAD").stdout.strip() == shared.recorded
    assert run(shared.clone, "git", "status", "--porcelain").stdout == ""


@pytest.mark.workflow
def test_metrics_of_every_run_are_registered_and_diff_to_the_recording_is_empty(shared):
    shown = json.loads(dvc(shared.clone, "metrics", "show", "--json").stdout)
    files = shown[""]["data"]  # "" is the workspace
    runs = {METRICS.format(**run) for run in iter_runs(shared.config)}
    assert runs <= set(files) and all("final_acc" in files[name]["data"] for name in runs)
    diff = json.loads(dvc(shared.clone, "metrics", "diff", shared.recorded, "--json").stdout or "{}")
    assert diff == {}
    # The same command does see the metrics appear between the code commit and the recording.
    appeared = json.loads(dvc(shared.clone, "metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert set(appeared) == set(files)


@pytest.mark.workflow
def test_a_changed_config_in_the_clone_plans_the_affected_reruns(shared, tmp_path):
    tiny = yaml.safe_load((shared.clone / TINY).read_text())
    study = next(iter(tiny["studies"]))
    changed = copy.deepcopy(tiny)
    changed["studies"][study]["train"]["lr"] = 0.5 * tiny["studies"][study]["train"]["lr"]
    changed_file = tmp_path / "changed.yaml"
    changed_file.write_text(yaml.safe_dump(changed))
    out = snakemake(shared.clone, "--configfile", str(changed_file), "-n", "--quiet", "rules").stdout
    assert "train" in out and "study_table" in out and "prepare_dataset" not in out
    # A changed dataset spec reaches the prepare job, which has no input files: only the
    # metadata that dvc-restore wrote lets Snakemake notice it.
    dataset = next(name for name, spec in tiny["datasets"].items() if "split_seed" in spec)
    changed = copy.deepcopy(tiny)
    changed["datasets"][dataset]["split_seed"] += 1
    changed_file.write_text(yaml.safe_dump(changed))
    out = snakemake(shared.clone, "--configfile", str(changed_file), "-n", "--quiet", "rules").stdout
    assert "prepare_dataset" in out and "train" in out


def stored_object(root: Path, content: bytes) -> Path:
    """Where a DVC cache or remote keeps a file with this content."""
    digest = hashlib.md5(content).hexdigest()
    return root / "files/md5" / digest[:2] / digest[2:]


def table_path(shared) -> str:
    return f"paper_tables/{next(iter(shared.config['studies']))}.csv"


@pytest.mark.workflow
def test_a_corrupted_remote_file_stops_restore_naming_the_file(shared, tmp_path):
    stored = stored_object(shared.remote, (shared.origin / table_path(shared)).read_bytes())
    original = stored.read_bytes()
    stored.chmod(0o644)
    try:
        stored.write_bytes(original + b"garbage\n")
        clone = tmp_path / "clone"
        run(tmp_path, "git", "clone", "-q", str(shared.origin), str(clone))
        result = cli(clone, "dvc-restore", check=False)
    finally:
        stored.write_bytes(original)
    assert result.returncode == 1
    assert "do not match their recorded hash" in result.stderr and table_path(shared) in result.stderr


@pytest.mark.workflow
def test_a_corrupted_cache_file_is_reported_by_status_and_repaired_by_pull(shared):
    cached = stored_object(shared.clone / ".dvc/cache", (shared.origin / table_path(shared)).read_bytes())
    cached.chmod(0o644)
    cached.write_bytes(b"garbage\n")
    status = json.loads(dvc(shared.clone, "status", "--json").stdout)
    assert status == {"paper_tables.dvc": [{"changed outs": {"paper_tables": "not in cache"}}]}
    refused = cli(shared.clone, "dvc-restore", "--no-pull", check=False)
    assert refused.returncode == 1 and "does not hold the recorded artifacts" in refused.stderr
    cli(shared.clone, "dvc-restore")
    assert cached.read_bytes() == (shared.origin / table_path(shared)).read_bytes()
