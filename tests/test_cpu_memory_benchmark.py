"""benchmarks/cpu_memory.py runs (its --quick path), so the figure in its docstring can be remeasured."""

import json
import subprocess
import sys

import pytest

from curriculum_bench.train.speed import keep_freed_memory

from .conftest import REPO


@pytest.mark.skipif(not keep_freed_memory({}), reason="malloc is not glibc's")
def test_the_memory_benchmark_trains_under_both_policies_to_the_same_history(tmp_path):
    out = tmp_path / "memory.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/cpu_memory.py", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["identical_results"] is True
    ratio = figures["kept_over_default_time"]
    assert abs(ratio * figures["glibc_default_seconds"] - figures["kept_seconds"]) < 1e-9
    assert "kept / glibc default time:" in result.stdout and "identical histories: yes" in result.stdout
