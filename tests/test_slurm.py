"""The workflow on a real (one-node, localhost) SLURM cluster, through sbatch.

Needs root (the cluster's daemons, apt-get for the Debian slurm packages); skipped with the
reason otherwise. CI runs as root, so these tests run there.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import REPO, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]
KIT = Path(__file__).parent / "slurm_kit"
TINY = REPO / ".test/config.yaml"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (it starts munged/slurmctld/slurmd and may apt-get)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("no slurm packages and no apt-get to install them")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", KIT / "start-slurm.sh", state], capture_output=True, text=True, timeout=900)
    if started.returncode in (2, 3):
        pytest.skip("SLURM test cluster unavailable: " + (started.stderr.strip().splitlines() or ["?"])[-1])
    if started.returncode != 0:
        subprocess.run(["bash", KIT / "stop-slurm.sh", state], timeout=120)
        pytest.fail(f"start-slurm.sh failed:\n{started.stderr}")
    env = {**os.environ, "SLURM_KIT_DIR": str(state), "SLURM_CONF": str(state / "etc/slurm.conf")}
    yield {"dir": state, "env": env}
    subprocess.run(["bash", KIT / "stop-slurm.sh", state], timeout=120)


def test_profile(tmp_path: Path) -> Path:
    """profiles/slurm with the test cluster's partition and no accounting database."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = "debug"
    profile["default-resources"]["mem_mb"] = 500
    profile.update(
        {"slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 5, "latency-wait": 5, "jobs": 2}
    )
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


test_profile.__test__ = False  # a helper, not a test


def techniques_only(tmp_path: Path, **resources) -> Path:
    """The tiny config's techniques study alone, baseline and weighted sampling: 4 runs
    (other studies and variants come and go in the tiny config)."""
    config = yaml.safe_load(TINY.read_text())
    study = config["studies"]["techniques"]
    study["variants"] = {v: study["variants"][v] for v in ("baseline", "weighted_sampling")}
    study["resources"]["default"].update(resources)
    config["studies"] = {"techniques": study}
    config["datasets"] = {name: config["datasets"][name] for name in study["datasets"]}
    path = tmp_path / "techniques.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def jobs_of(cluster: dict, workdir: Path) -> list[str]:
    lines = (cluster["dir"] / "log/jobcomp.txt").read_text().splitlines()
    return [line for line in lines if f"WorkDir={os.path.realpath(workdir)} " in line]


def run_with_profile(cluster, workdir, profile, *args, timeout=600):
    env = {**cluster["env"], "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    cmd = [
        "timeout",
        "-k",
        "30",
        str(timeout),
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--profile",
        str(profile),
        *args,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout + 60)


def test_tiny_config_runs_through_sbatch_and_matches_a_local_run(slurm_cluster, tmp_path):
    workdir, local = tmp_path / "slurm", tmp_path / "local"
    config = techniques_only(tmp_path)
    result = run_with_profile(slurm_cluster, workdir, test_profile(tmp_path), "--configfile", str(config))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    jobs = jobs_of(slurm_cluster, workdir)
    # prepare + 2 variants x 2 seeds went through sbatch; the table and `all` are local rules
    assert len(jobs) == 5 and all("JobState=COMPLETED" in line for line in jobs), jobs
    assert list((workdir / "logs/slurm").rglob("*.log")), "SLURM logs are kept under logs/slurm"
    tres = subprocess.run(
        ["squeue", "--states=all", "-h", "-O", "JobID,tres-per-job"],
        env=slurm_cluster["env"],
        capture_output=True,
        text=True,
    ).stdout
    assert tres.count("gpu:1") >= 4, tres  # each training run asked for a GPU

    assert_same_table(workdir, local, config)


def assert_same_table(workdir: Path, local: Path, config: Path) -> None:
    local_run = snakemake(local, "--configfile", str(config), "--cores", "2")
    assert local_run.returncode == 0, local_run.stderr[-3000:]
    columns = ["variant", "seeds", "final_acc_mean", "final_acc_std", "best_acc_mean", "best_acc_std"]
    on_slurm = pd.read_csv(workdir / "paper_tables/techniques.csv")[columns]
    on_laptop = pd.read_csv(local / "paper_tables/techniques.csv")[columns]
    pd.testing.assert_frame_equal(on_slurm, on_laptop)


def test_grouped_runs_share_one_gpu_in_fewer_sbatch_jobs(slurm_cluster, tmp_path):
    """4 training runs, gpu_share 2, groups of 2: two sbatch jobs each booking one GPU."""
    workdir, local = tmp_path / "slurm", tmp_path / "local"
    config = techniques_only(tmp_path, gpu=1, gpu_share=2)
    profile = test_profile(tmp_path)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings.update({"groups": ["train=train_batch"], "group-components": ["train_batch=2"]})
    (profile / "config.yaml").write_text(yaml.safe_dump(settings))
    result = run_with_profile(slurm_cluster, workdir, profile, "--configfile", str(config))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    jobs = jobs_of(slurm_cluster, workdir)
    # prepare alone + 4 runs in 2 group jobs, instead of 5 submissions
    assert len(jobs) == 3 and all("JobState=COMPLETED" in line for line in jobs), jobs
    job_ids = [line.split()[0].removeprefix("JobId=") for line in jobs]
    shown = {
        jid: subprocess.run(
            ["scontrol", "show", "job", jid], env=slurm_cluster["env"], capture_output=True, text=True
        ).stdout
        for jid in job_ids
    }
    grouped = [jid for jid, text in shown.items() if "gres:gpu:1" in text]
    assert len(grouped) == 2, shown  # each batch booked one GPU for both of its runs
    logs = [
        (workdir / f"logs/train/techniques/digits_sklearn/mlt_convnet/{v}/seed{s}.log").read_text()
        for v in ("baseline", "weighted_sampling")
        for s in (0, 1)
    ]
    assert all(log.startswith("run ") for log in logs)
    assert_same_table(workdir, local, config)


def test_a_training_job_killed_mid_run_resumes_on_retry(slurm_cluster, tmp_path):
    config = yaml.safe_load(techniques_only(tmp_path).read_text())
    study = config["studies"]["techniques"]
    study.update(seeds=[0], variants={"baseline": {}})
    study["train"].update(epochs=15, batch_size=8)
    config_path = tmp_path / "long.yaml"
    config_path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "slurm"
    env = {**slurm_cluster["env"], "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    cmd = [
        "timeout",
        "-k",
        "30",
        "600",
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--profile",
        str(test_profile(tmp_path)),
        "--configfile",
        str(config_path),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history = workdir / "results/techniques/digits_sklearn/mlt_convnet/baseline/seed0/history.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 2):
        time.sleep(0.2)
    # What SLURM does on preemption or at a time limit: SIGTERM to the job's processes.
    subprocess.run(
        ["scancel", "--signal=TERM", "--full", "--state=RUNNING", "--partition=debug"],
        env=slurm_cluster["env"],
        check=True,
    )
    output, _ = proc.communicate(timeout=700)
    assert proc.returncode == 0, output[-4000:]
    jobs = list(jobs_of(slurm_cluster, workdir))
    assert sum("JobState=FAILED" in line for line in jobs) == 1, jobs  # the killed attempt
    metrics = json.loads(history.with_name("metrics.json").read_text())
    assert len(metrics["resumed_at"]) == 1 and metrics["resumed_at"][0][0] >= 1, metrics["resumed_at"]

    local = tmp_path / "local"
    assert snakemake(local, "--configfile", str(config_path), "--cores", "1").returncode == 0
    uninterrupted = json.loads((local / history.relative_to(workdir)).with_name("metrics.json").read_text())
    assert (metrics["final_acc"], metrics["best_acc"]) == (uninterrupted["final_acc"], uninterrupted["best_acc"])
