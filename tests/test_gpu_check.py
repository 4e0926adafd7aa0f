"""benchmarks/gpu_check.py, the one-command GPU check, run as a GPU-less machine can: `--device cpu
--quick` in a subprocess, the same code paths at tiny sizes. Its JSON must list every code path of
the paper smoke set with a status, compare the two runs' losses, report every speed target, and
exit 0; a deliberately broken switch (--inject-mismatch) must exit non-zero naming the failed check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curriculum_bench import smoke

from .conftest import REPO

SCRIPT = REPO / "benchmarks/gpu_check.py"


def start(out: Path, *args: str) -> subprocess.Popen:
    """The script in the background, its output in OUT/output.txt (a pipe nobody reads could fill)."""
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out), *args]
    with open(out / "output.txt", "w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)


def finish(job: subprocess.Popen, out: Path, timeout: int = 300) -> tuple[int, str, dict]:
    job.wait(timeout=timeout)
    report = out / "gpu_check.json"
    return job.returncode, (out / "output.txt").read_text(), json.loads(report.read_text()) if report.exists() else {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The quick run and, beside it on the other core (each runs on one thread), a run of one
    path with --inject-mismatch."""
    quick, injected = tmp_path_factory.mktemp("quick"), tmp_path_factory.mktemp("injected")
    # The compile cache in the temporary folder: the default (resources/) is the workflow's.
    quick_job = start(quick, "--compile-cache", str(quick / "compile_cache"))
    injected_job = start(
        injected,
        *("--compile-cache", str(injected / "compile_cache"), "--sections", "correctness"),
        *("--paths", "mlt_convnet/weighted_sampling", "--inject-mismatch"),  # a path of the smoke set
    )
    return {"quick": (*finish(quick_job, quick), quick), "injected": (*finish(injected_job, injected), injected)}


@pytest.fixture(scope="module")
def quick_run(runs):
    return runs["quick"]


def test_quick_run_exits_zero_and_writes_json_and_markdown(quick_run):
    returncode, output, report, out = quick_run
    assert returncode == 0, output[-6000:]
    assert report["exit_code"] == 0 and report["failed"] == []
    assert report["quick"] is True
    assert {"device", "torch", "cuda"} <= set(report["machine"])
    assert set(report["sections"]) == {"correctness", "compile_cache", "engine_speed", "epoch_time", "packed_runs"}
    assert "] correctness 1/" in output  # progress lines with the elapsed time
    assert "Correctness: passed" in (out / "gpu_check.md").read_text()


def test_every_paper_smoke_code_path_is_listed_with_a_status(quick_run):
    _, _, report, _ = quick_run
    plan = smoke.smoke_plan(yaml.safe_load((REPO / "config/paper.yaml").read_text()))
    datasets = plan.runs_config["datasets"]
    wanted = set()
    for runs in plan.selected.values():
        for run in runs:
            shape = smoke.dataset_info(datasets, run["dataset"]).shape
            wanted.add(f"model {run['model']} at {'x'.join(map(str, shape))}")
            wanted.update(f"method {method}" for method in run["methods"])
            if not run["methods"]:
                wanted.add("no method")
    listed = {row["feature"]: row for row in report["coverage"]}
    assert wanted <= set(listed), sorted(wanted - set(listed))
    assert all(row["status"] == "pass" and row["path"] for row in listed.values()), listed
    assert all(path["status"] == "pass" for path in report["paths"])


def test_each_path_compares_the_switched_on_and_off_losses(quick_run):
    _, _, report, _ = quick_run
    checks = {check["name"]: check for check in report["checks"]}
    for path in report["paths"]:
        assert path["switches_on"]["losses"] and path["switches_off"]["losses"], path["name"]
        assert checks[f"{path['name']}: losses"]["status"] == "pass"
        host_sync = checks[f"{path['name']}: host sync"]
        # --quick trains 2 steps, so a method training on half the set takes one: nothing to audit.
        assert host_sync["status"] == "pass" or "single step" in host_sync["detail"], host_sync
        cuda_graphs = checks[f"{path['name']}: cuda graphs"]
        assert cuda_graphs["status"] == "skipped" and cuda_graphs["detail"] == "needs CUDA"
    assert sum(check["status"] == "pass" for name, check in checks.items() if name.endswith("host sync")) >= 10
    cache = checks["compile cache: a second process loads the compiled graphs"]
    assert cache["status"] == "skipped" and "needs CUDA" in cache["detail"]
    assert report["tolerances"]["first_step_rtol"] > 0


def test_every_speed_target_is_reported_but_not_judged_in_quick_mode(quick_run):
    _, _, report, _ = quick_run
    figures = {target["figure"]: target for target in report["targets"]}
    for name in ("resnet18_cifar engine / plain", "mlt_convnet engine / plain", "mlt_convnet data share"):
        assert figures[name]["value"] is not None and figures[name]["result"].startswith("not judged"), name
    assert [row["batch_size"] for row in report["speed"]["epoch_time"]] == [8, 16]
    assert report["speed"]["packed"]["ratio"]["value"] > 0


def test_an_injected_loss_mismatch_exits_non_zero_naming_the_check(runs):
    returncode, output, report, out = runs["injected"]
    assert returncode == 1, output[-6000:]
    assert [name for name in report["failed"] if name.endswith("mlt_convnet/weighted_sampling: losses")], report[
        "failed"
    ]
    assert "FAILED" in (out / "gpu_check.md").read_text()
