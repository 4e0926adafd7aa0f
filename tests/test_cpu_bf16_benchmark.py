"""benchmarks/cpu_bf16.py runs (its --quick path), so the CPU bf16 figure in the README can be remeasured."""

import json
import subprocess
import sys

from .conftest import REPO


def test_the_cpu_bf16_benchmark_trains_both_precisions_and_prints_their_ratio(tmp_path):
    out = tmp_path / "bf16.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/cpu_bf16.py", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["fp32_seconds_per_epoch"] > 0 and figures["bf16_seconds_per_epoch"] > 0
    assert (
        abs(figures["bf16_over_fp32_time"] * figures["fp32_seconds_per_epoch"] - figures["bf16_seconds_per_epoch"])
        < 1e-9
    )
    assert 0 <= figures["fp32_final_acc"] <= 1 and 0 <= figures["bf16_final_acc"] <= 1
    assert "bf16 / fp32 time:" in result.stdout
