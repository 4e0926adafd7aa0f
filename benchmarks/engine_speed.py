"""Images/s of the training engine vs the plain DataLoader loop at each study's own batch size,
and the model-only ceiling, in one process on one device.

Each case trains its study's model on synthetic pixels of the study's shape (benchmarks/common.py):
ResNet-18 (CIFAR stem) at batch 128 with crop + flip + normalisation, the MNIST ConvNet at batch 32
with none, ConvNeXt-Tiny at 224 px and batch 128 with random-resized-crop + flip + normalisation.
Every loop of a case uses the same batch size:

    plain        torch DataLoader over a PIL image per sample + torchvision transforms, fp32 eager
    engine fp32  train_one_epoch with every speed switch off: what the data pipeline alone buys
    engine       train_one_epoch with the switches on auto (all on on CUDA; listed per case)
    data share   the engine's batch gather + augmentation + normalisation alone, for the same
                 epoch, as a share of the engine's epoch time
    ceiling      one pre-loaded batch on the device, no augmentation, the engine's switches:
                 forward, loss, backward, optimiser step

Warm-ups are not timed: a whole epoch before each engine epoch (it compiles every batch shape,
the last partial batch's too), PLAIN_WARMUP_BATCHES for the plain loop, --warmup-steps for the
ceiling. Targets on an H100, reported, not tested: engine >= 2.5x plain for ResNet-18, >= 4x for
the MNIST ConvNet, data share <= 10% at every size.

    python benchmarks/engine_speed.py --compile-cache /tmp/engine_speed_compile --json engine_speed.json
    python benchmarks/engine_speed.py --quick   # CPU smoke run: tiny sizes, not a measurement
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    CASES,
    QUICK,
    Case,
    PILDataset,
    data_seconds,
    describe_machine,
    device_name,
    engine_run,
    load_resident,
    plain_loader,
    plain_train,
    synchronize,
    synthetic_split,
    train_epoch,
    write_synthetic_store,
)

from curriculum_bench.data.store import Split
from curriculum_bench.train.engine import build_optimizer
from curriculum_bench.train.hooks import TrainState
from curriculum_bench.train.pipeline import to_inputs
from curriculum_bench.train.speed import autocast, begin_step, model_input, use_compile_cache

PLAIN_WARMUP_BATCHES = 20  # allocator and cuDNN heuristics; an eager loop has nothing to compile
WARMUP_EPOCH, TIMED_EPOCH = 0, 1


def plain_images_per_s(case: Case, split: Split, workers: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = case.create_model().to(device)
    # The engine's optimiser with its speed switches off is torch's own, default kernels included.
    optimizer = build_optimizer(model, case.train_config(fast=False))
    dataset = PILDataset(split, case.transform())
    warmup = torch.utils.data.Subset(dataset, range(min(len(dataset), PLAIN_WARMUP_BATCHES * case.batch_size)))
    plain_train(model, optimizer, plain_loader(warmup, case.batch_size, workers, device), device)
    synchronize(device)
    start = time.perf_counter()
    plain_train(model, optimizer, plain_loader(dataset, case.batch_size, workers, device), device)
    synchronize(device)
    return len(dataset) / (time.perf_counter() - start)


def engine_images_per_s(state: TrainState) -> float:
    train_epoch(state, WARMUP_EPOCH)
    synchronize(state.device)
    start = time.perf_counter()
    stats = train_epoch(state, TIMED_EPOCH)
    synchronize(state.device)
    return stats["train_images"] / (time.perf_counter() - start)


def ceiling_images_per_s(state: TrainState, steps: int, warmup_steps: int) -> float:
    """The engine's model, optimiser and switches stepping on one batch already on the device."""
    model, optimizer, device, speed = state.model, state.optimizer, state.device, state.speed
    batch_size = state.train_config.batch_size
    x = model_input(state.pipeline.normalize(to_inputs(state.data.train.images[:batch_size])), speed)
    y = state.data.train.labels[:batch_size]
    model.train()
    for step in range(warmup_steps + steps):
        if step == warmup_steps:
            synchronize(device)
            start = time.perf_counter()
        begin_step(speed)
        with autocast(speed, device):
            loss = F.cross_entropy(state.forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def measure(case: Case, workers: int, steps: int, warmup_steps: int, device: torch.device, tmp: Path) -> dict:
    split = synthetic_split(case.images, case.shape, case.num_classes)
    data = load_resident(write_synthetic_store(tmp / case.model, split, case.num_classes), device)
    plain = plain_images_per_s(case, split, workers, device)
    engine_fp32 = engine_images_per_s(engine_run(case, data, device, fast=False))
    state = engine_run(case, data, device, fast=True)
    engine = engine_images_per_s(state)
    data_s = data_seconds(data, state.pipeline, case.batch_size, device, state.speed, epoch=TIMED_EPOCH)
    ceiling = ceiling_images_per_s(state, steps, warmup_steps)
    return {
        "case": case.model,
        "batch_size": case.batch_size,
        "images": case.images,
        "image_shape": list(case.shape),
        "plain_images_per_s": plain,
        "engine_fp32_images_per_s": engine_fp32,
        "engine_images_per_s": engine,
        "speed": state.speed.as_dict(),
        "switches": state.speed.describe(),
        "engine_vs_plain": engine / plain,
        "data_seconds": data_s,
        "engine_epoch_seconds": case.images / engine,
        "data_share": data_s / (case.images / engine),
        "ceiling_images_per_s": ceiling,
        "engine_vs_ceiling": engine / ceiling,
    }


def print_table(rows: list[dict]) -> None:
    print(
        "| case | batch | plain img/s | engine fp32 img/s | engine img/s | engine switches | engine/plain "
        "| data share | ceiling img/s | engine/ceiling |"
    )
    print("|---|--:|--:|--:|--:|---|--:|--:|--:|--:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['batch_size']} | {r['plain_images_per_s']:,.0f} "
            f"| {r['engine_fp32_images_per_s']:,.0f} | {r['engine_images_per_s']:,.0f} | {r['switches']} "
            f"| {r['engine_vs_plain']:.2f}x | {100 * r['data_share']:.1f}% "
            f"| {r['ceiling_images_per_s']:,.0f} | {r['engine_vs_ceiling']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="synthetic training images per case (default: 50,000 / 60,000 / 10,000)",
    )
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count()), help="DataLoader workers of the plain loop"
    )
    parser.add_argument("--steps", type=int, default=None, help="timed ceiling steps (default 100; --quick 3)")
    parser.add_argument(
        "--warmup-steps", type=int, default=None, help="untimed ceiling steps first (default 20; --quick 1)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and smaller batches: a CPU smoke run of every path, not a measurement",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads of this process (default torch's; --quick 1)"
    )
    parser.add_argument("--compile-cache", default=None, help="keep torch.compile's kernels here between runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps = args.steps or (3 if args.quick else 100)
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else (1 if args.quick else 20)
    use_compile_cache(args.compile_cache)
    # --quick on a small CPU: OpenMP threads that wait at a barrier for a core a DataLoader
    # worker holds make every op ~10x slower; one thread keeps the smoke run short.
    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)

    cases = [dataclasses.replace(CASES[name], **(QUICK[name] if args.quick else {})) for name in args.cases]
    if args.images is not None:
        cases = [dataclasses.replace(case, images=args.images) for case in cases]
    print(describe_machine(device))
    print(
        "images per case: "
        + ", ".join(f"{c.model} {c.images:,} x {'x'.join(map(str, c.shape))}" for c in cases)
        + f"; plain loop: {args.workers} DataLoader workers; ceiling: {steps} steps after {warmup_steps}"
    )
    if args.quick:
        print("--quick: smaller batches and sizes than the studies'; checks the paths, measures nothing")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            start = time.perf_counter()
            rows.append(measure(case, args.workers, steps, warmup_steps, device, Path(tmp)))
            print(f"{case.model}: measured in {time.perf_counter() - start:.0f}s", flush=True)
    print_table(rows)
    if args.json is not None:
        header = {
            "device": device_name(device),
            "torch": torch.__version__,
            "quick": args.quick,
            "workers": args.workers,
            "ceiling_steps": steps,
            "ceiling_warmup_steps": warmup_steps,
        }
        args.json.write_text(json.dumps({**header, "cases": rows}, indent=2) + "\n")
        print(f"-> {args.json}")


if __name__ == "__main__":
    main()
