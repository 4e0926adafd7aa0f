"""benchmarks/cpu_speed.py runs (its --quick path), so the CPU speed figures in docs/gpu.md can be remeasured."""

from .conftest import run_quick_benchmark


def test_the_cpu_speed_benchmark_trains_each_switch_and_prints_its_ratio_to_fp32(tmp_path):
    figures, printed = run_quick_benchmark("cpu_speed.py", tmp_path / "bf16.json")
    assert figures["seeds"] == 2
    for switch in ("bf16", "channels_last", "bf16_channels_last"):
        assert figures["fp32_seconds_per_epoch"] > 0 and figures[f"{switch}_seconds_per_epoch"] > 0
        ratio = figures[f"{switch}_over_fp32_time"]
        assert abs(ratio * figures["fp32_seconds_per_epoch"] - figures[f"{switch}_seconds_per_epoch"]) < 1e-9
        assert 0 <= figures[f"{switch}_final_acc"] <= 1
        low, high = figures[f"{switch}_minus_fp32_acc_pp"][1:]
        assert low <= figures[f"{switch}_minus_fp32_acc_pp"][0] <= high
        assert f"{switch} / fp32 time:" in printed
