"""The workflow deployed the catalog's way: a user's directory holding only a config and a
Snakefile that declares this repository's workflow/Snakefile as a module (what
`snakedeploy deploy-workflow` writes, with a local path for the GitHub URL), dry-run there."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

USER_SNAKEFILE = """\
configfile: "config/config.yaml"


module curriculum_bench:
    snakefile:
        "{workflow}"
    config:
        config


use rule * from curriculum_bench
"""


@pytest.mark.workflow
def test_module_deployment_in_another_directory_plans_the_tiny_configs_jobs(tmp_path):
    user = tmp_path / "my-analysis"
    (user / "config").mkdir(parents=True)
    shutil.copy(REPO / ".test/config.yaml", user / "config/config.yaml")
    (user / "Snakefile").write_text(USER_SNAKEFILE.format(workflow=REPO / "workflow" / "Snakefile"))
    # Run from the user's directory, as a user would: nothing of the clone is the working directory.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1"],
        cwd=user,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": path},
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.MULTILINE))
    assert {k: counts.get(k) for k in ("train", "coreset_proxy", "coreset_train", "study_table", "claims", "all")} == {
        "train": "14",
        "coreset_proxy": "1",
        "coreset_train": "9",
        "study_table": "5",
        "claims": "1",
        "all": "1",
    }
    # Reference data is read from the workflow's own directory, outputs land in the user's.
    assert f"--reported {REPO / 'config/reported.yaml'}" in out
    assert set(os.listdir(user)) <= {"Snakefile", "config", ".snakemake", "logs"}
