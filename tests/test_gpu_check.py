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


def gpu_check(out: Path, *args: str, timeout: int = 300) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out), *args]
    job = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    report = out / "gpu_check.json"
    return job, json.loads(report.read_text()) if report.exists() else {}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    # The compile cache in the temporary folder: the default (resources/) is the workflow's.
    out = tmp_path_factory.mktemp("gpu_check")
    job, report = gpu_check(out, "--compile-cache", str(out / "compile_cache"))
    return job, report, out


def test_quick_run_exits_zero_and_writes_json_and_markdown(quick_run):
    job, report, out = quick_run
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert report["exit_code"] == 0 and report["failed"] == []
    assert report["quick"] is True
    assert {"device", "torch", "cuda"} <= set(report["machine"])
    assert set(report["sections"]) == {"correctness", "compile_cache", "engine_speed", "epoch_time", "packed_runs"}
    assert "correctness" in job.stdout and "s]" in job.stdout  # progress lines with the elapsed time
    assert "Correctness: passed" in (out / "gpu_check.md").read_text()


def test_every_paper_smoke_code_path_is_listed_with_a_status(quick_run):
    _, report, _ = quick_run
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
    _, report, _ = quick_run
    checks = {check["name"]: check for check in report["checks"]}
    for path in report["paths"]:
        assert path["switches_on"]["losses"] and path["switches_off"]["losses"], path["name"]
        assert checks[f"{path['name']}: losses"]["status"] == "pass"
        assert checks[f"{path['name']}: host sync"]["status"] == "pass", checks[f"{path['name']}: host sync"]
        cuda_graphs = checks[f"{path['name']}: cuda graphs"]
        assert cuda_graphs["status"] == "skipped" and cuda_graphs["detail"] == "needs CUDA"
    cache = checks["compile cache: a second process loads the compiled graphs"]
    assert cache["status"] == "skipped" and "needs CUDA" in cache["detail"]
    assert report["tolerances"]["first_step_rtol"] > 0


def test_every_speed_target_is_reported_but_not_judged_in_quick_mode(quick_run):
    _, report, _ = quick_run
    figures = {target["figure"]: target for target in report["targets"]}
    for name in ("resnet18_cifar engine / plain", "mlt_convnet engine / plain", "mlt_convnet data share"):
        assert figures[name]["value"] is not None and figures[name]["result"].startswith("not judged"), name
    assert [row["batch_size"] for row in report["speed"]["epoch_time"]] == [8, 16]
    assert report["speed"]["packed"]["ratio"]["value"] > 0


def test_an_injected_loss_mismatch_exits_non_zero_naming_the_check(tmp_path):
    job, report = gpu_check(
        tmp_path, "--sections", "correctness", "--paths", "mlt_convnet/baseline", "--inject-mismatch", timeout=120
    )
    assert job.returncode == 1, job.stdout[-3000:] + job.stderr[-3000:]
    assert [name for name in report["failed"] if name.endswith("mlt_convnet/baseline: losses")], report["failed"]
    assert "FAILED" in (tmp_path / "gpu_check.md").read_text()
