import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curriculum_bench.data.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / ".test/config.yaml"


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory) -> Path:
    """sklearn's 8x8 digits in the canonical store: 1,437 train / 360 test images."""
    out = tmp_path_factory.mktemp("digits")
    prepare("digits_sklearn", {"source": "sklearn_digits", "test_fraction": 0.2, "split_seed": 0}, out)
    return out


def tiny_run(methods: dict | None = None, epochs: int = 3, seed: int = 0, **train) -> dict:
    """A resolved run config for the digits store, small enough to train in a second."""
    return {
        "study": "techniques",
        "dataset": "digits_sklearn",
        "model": "mlt_convnet",
        "model_args": {},
        "variant": "test",
        "methods": methods or {},
        "seed": seed,
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.01, "weight_decay": 0.1, "warmup_epochs": 1, **train},
    }


@pytest.fixture
def default_config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config/config.yaml").read_text()))


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The real snakemake command on this repository's workflow, run inside `workdir`."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    # Jobs run `python -m curriculum_bench`: the python of this environment, activated or not.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PATH": path})


def run_quick_benchmark(script: str, out: Path) -> tuple[dict, str]:
    """`python benchmarks/<script> --quick --json <out>`: its figures and what it printed."""
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(out.read_text()), result.stdout


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Path:
    """.test/config.yaml run to the end by the real snakemake, once per test session."""
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir, "--configfile", str(TINY), "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.fixture
def one_torch_thread():
    """Tiny models train faster on one thread than on cores shared with other jobs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
