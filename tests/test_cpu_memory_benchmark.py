"""benchmarks/cpu_memory.py runs (its --quick path), so the figure in its docstring can be remeasured."""

import pytest

from curriculum_bench.train.speed import keep_freed_memory

from .conftest import run_quick_benchmark


@pytest.mark.skipif(not keep_freed_memory({}), reason="malloc is not glibc's")
def test_the_memory_benchmark_trains_under_both_policies_to_the_same_history(tmp_path):
    figures, printed = run_quick_benchmark("cpu_memory.py", tmp_path / "memory.json")
    assert figures["identical_results"] is True
    ratio = figures["kept_over_default_time"]
    assert abs(ratio * figures["glibc_default_seconds"] - figures["kept_seconds"]) < 1e-9
    assert "kept / glibc default time:" in printed and "identical histories: yes" in printed
