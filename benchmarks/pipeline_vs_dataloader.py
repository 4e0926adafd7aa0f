"""Engine data pipeline vs a plain DataLoader + PIL loop: one ResNet-18 epoch, same batch size.

Prints images/s of both, their ratio, and the share of the engine's step time spent on data
handling (batch gather + on-device augmentation). Synthetic CIFAR-shaped pixels; both loops
train the same model with the same optimiser, crop(32, pad 4) + flip + normalisation.

    python benchmarks/pipeline_vs_dataloader.py --images 50000 --batch-size 128 --workers 8
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from common import (
    CASES,
    PILDataset,
    data_seconds,
    engine_run,
    load_resident,
    plain_loader,
    plain_train,
    synchronize,
    synthetic_split,
    write_synthetic_store,
)

from curriculum_bench.data.store import Split
from curriculum_bench.models import create_model
from curriculum_bench.train.engine import train_one_epoch

CASE = CASES["resnet18_cifar"]  # crop(32, pad 4) + flip + CIFAR normalisation, SGD 0.1


def plain_epoch(split: Split, batch_size, workers, device) -> float:
    torch.manual_seed(0)
    model = create_model("resnet18_cifar", (3, 32, 32), 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = plain_loader(PILDataset(split, CASE.transform()), batch_size, workers, device)
    synchronize(device)
    start = time.perf_counter()
    plain_train(model, optimizer, loader, device)
    synchronize(device)
    return len(split.labels) / (time.perf_counter() - start)


def engine_epoch(store: Path, batch_size: int, device: torch.device) -> tuple[float, float, float]:
    """(images/s of a training epoch, seconds of data handling alone for the same epoch,
    seconds of the training epoch), every speed switch off (fp32 eager)."""
    data = load_resident(store, device)
    state = engine_run(dataclasses.replace(CASE, batch_size=batch_size), data, device, fast=False)
    synchronize(device)
    start = time.perf_counter()
    stats = train_one_epoch(state, [])
    synchronize(device)
    train_seconds = time.perf_counter() - start
    data_s = data_seconds(data, state.pipeline, batch_size, device, state.speed)
    return stats["train_images"] / train_seconds, data_s, train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the plain loop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    split = synthetic_split(args.images, CASE.shape, CASE.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_synthetic_store(Path(tmp) / "synthetic_cifar", split, CASE.num_classes)
        engine_epoch(store, args.batch_size, device)  # warm-up: cuDNN autotuning, allocator
        engine_ips, data_s, engine_seconds = engine_epoch(store, args.batch_size, device)
    warmup = args.batch_size * 20
    plain_epoch(Split(split.images[:warmup], split.labels[:warmup]), args.batch_size, args.workers, device)
    plain_ips = plain_epoch(split, args.batch_size, args.workers, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, ResNet-18 (CIFAR stem), {args.images} images 3x32x32, batch {args.batch_size}, fp32")
    print(f"plain DataLoader + PIL ({args.workers} workers): {plain_ips:8.0f} images/s")
    print(f"engine (resident uint8, on-device augment):   {engine_ips:8.0f} images/s")
    print(f"ratio engine / plain: {engine_ips / plain_ips:.2f}x")
    print(
        f"engine data handling: {data_s:.2f}s of a {engine_seconds:.2f}s epoch "
        f"({100 * data_s / engine_seconds:.1f}% of step time)"
    )


if __name__ == "__main__":
    main()
