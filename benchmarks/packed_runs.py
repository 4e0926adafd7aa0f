"""Aggregate images/s of N small training runs packed on one GPU vs one run alone.

A run of the MNIST ConvNet at batch 32 is launch-bound: the GPU idles between its small kernels
while Python prepares the next ones, and the studies train hundreds of such runs, so several
side by side can use the time one leaves idle. Each run is its own process (multiprocessing
spawn) training the MLT ConvNet at batch 32 on an MNIST-size synthetic store through
`train_one_epoch` with the speed switches on auto. Each trains an untimed warm-up epoch
(compilation, CUDA-graph capture, allocator), waits at a barrier so that the timed epochs
overlap, then times one epoch on the wall clock, which all processes share:

    aggregate images/s = all runs' images / (latest end - earliest start)

Without CUDA MPS the processes' kernels take turns on the GPU rather than run side by side; the
gain then comes from filling the gaps each run leaves. Target on an H100, reported, not
tested: 4 packed runs >= 3x the aggregate images/s of one.

    python benchmarks/packed_runs.py --runs 1 4 --compile-cache /tmp/packed_runs_compile
    python benchmarks/packed_runs.py --quick   # CPU smoke run: 320 images per run, not a measurement
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import torch
from common import (
    CASES,
    Case,
    describe_machine,
    device_name,
    engine_run,
    load_resident,
    synchronize,
    synthetic_split,
    train_epoch,
    write_synthetic_store,
)

from curriculum_bench.train.speed import resolve_speed, use_compile_cache

WARMUP_EPOCH, TIMED_EPOCH = 0, 1
QUICK_IMAGES = 320  # 10 steps of 32 per epoch


def train_run(
    rank: int, case: Case, store: Path, device: str, threads: int, compile_cache: str | None, barrier, results
) -> None:
    """One run in its own process: warm-up epoch, barrier, timed epoch -> `results`."""
    torch.set_num_threads(threads)
    try:
        device = torch.device(device)
        use_compile_cache(compile_cache)
        data = load_resident(store, device)
        state = engine_run(case, data, device, fast=True, seed=rank)  # runs of different seeds, as a study's
        train_epoch(state, WARMUP_EPOCH)
        synchronize(device)
        barrier.wait()
        start = time.time()  # wall clock, not perf_counter: comparable across processes
        stats = train_epoch(state, TIMED_EPOCH)
        synchronize(device)
        results.put({"rank": rank, "images": stats["train_images"], "start": start, "end": time.time()})
    except BaseException:
        barrier.abort()  # else the other runs wait at the barrier for ever
        raise


def packed(
    n: int, case: Case, store: Path, device: torch.device, threads: int, compile_cache: str | None
) -> list[dict]:
    ctx = mp.get_context("spawn")  # a fresh CUDA context per run; fork cannot carry one
    barrier, results = ctx.Barrier(n), ctx.Queue()
    processes = [
        ctx.Process(target=train_run, args=(rank, case, store, str(device), threads, compile_cache, barrier, results))
        for rank in range(n)
    ]
    for process in processes:
        process.start()
    # Each result is a few bytes, well inside the queue's pipe: joining first cannot deadlock.
    for process in processes:
        process.join()
    failed = [process.exitcode for process in processes if process.exitcode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} of {n} runs failed (exit codes {failed}); their tracebacks are above")
    return sorted((results.get(timeout=10) for _ in range(n)), key=lambda r: r["rank"])


def summarize(runs: list[dict]) -> dict:
    first_start, last_end = min(r["start"] for r in runs), max(r["end"] for r in runs)
    per_run = [r["images"] / (r["end"] - r["start"]) for r in runs]
    # The share of the window in which every timed epoch was running: near 1 when they overlap.
    overlap = max(0.0, min(r["end"] for r in runs) - max(r["start"] for r in runs)) / (last_end - first_start)
    return {
        "runs": len(runs),
        "aggregate_images_per_s": sum(r["images"] for r in runs) / (last_end - first_start),
        "per_run_images_per_s": per_run,
        "overlap": overlap,
        "timings": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 4], help="numbers of runs packed together")
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help=f"synthetic training images per run (default 60,000; --quick {QUICK_IMAGES})",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads of each run (default: CPU cores / runs)"
    )
    parser.add_argument("--quick", action="store_true", help="a CPU smoke run of every path, not a measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile-cache", default=None, help="keep torch.compile's kernels here between runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    images = args.images or (QUICK_IMAGES if args.quick else CASES["mlt_convnet"].images)
    case = dataclasses.replace(CASES["mlt_convnet"], images=images)
    speed = resolve_speed(case.train_config(fast=True), device)  # what each run resolves too
    print(
        f"{describe_machine(device)}; MLT ConvNet, batch {case.batch_size}, {images:,} images "
        f"{'x'.join(map(str, case.shape))} per run, {speed.describe()}"
    )

    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        store = write_synthetic_store(
            Path(tmp) / "mnist_size", synthetic_split(images, case.shape, case.num_classes), case.num_classes
        )
        for n in args.runs:
            # Runs share the CPU: oversubscribed OpenMP threads would stall one another.
            threads = args.threads or max(1, os.cpu_count() // n)
            summary = summarize(packed(n, case, store, device, threads, args.compile_cache))
            summaries.append(summary)
            per_run = summary["per_run_images_per_s"]
            print(
                f"{n} run{'s' if n > 1 else ''}: aggregate {summary['aggregate_images_per_s']:,.0f} img/s, "
                f"per run {sum(per_run) / n:,.0f} img/s (min {min(per_run):,.0f}, max {max(per_run):,.0f}), "
                f"{threads} CPU thread(s) each, all timed epochs running for {summary['overlap']:.0%} "
                f"of the window",
                flush=True,
            )
    alone = next((s for s in summaries if s["runs"] == 1), None)
    for summary in summaries:
        if alone is not None and summary is not alone:
            ratio = summary["aggregate_images_per_s"] / alone["aggregate_images_per_s"]
            print(f"{summary['runs']} runs vs 1: {ratio:.2f}x aggregate images/s")
    if args.json is not None:
        header = {
            "device": device_name(device),
            "torch": torch.__version__,
            "quick": args.quick,
            "batch_size": case.batch_size,
            "images_per_run": images,
            "speed": speed.as_dict(),
        }
        args.json.write_text(json.dumps({**header, "packed": summaries}, indent=2) + "\n")
        print(f"-> {args.json}")


if __name__ == "__main__":
    main()
