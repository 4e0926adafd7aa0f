"""Engine data pipeline vs a plain DataLoader + PIL loop: one ResNet-18 epoch, same batch size.

Prints images/s of both, their ratio, and the share of the engine's step time spent on data
handling (batch gather + on-device augmentation). Synthetic CIFAR-shaped pixels; both loops
train the same model with the same optimiser, crop(32, pad 4) + flip + normalisation.

    python benchmarks/pipeline_vs_dataloader.py --images 50000 --batch-size 128 --workers 8
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from curriculum_bench.data.store import Split, write_store
from curriculum_bench.models import create_model
from curriculum_bench.train.config import TrainConfig
from curriculum_bench.train.engine import InputPipeline, build_optimizer, epoch_generator, load_data, train_one_epoch
from curriculum_bench.train.hooks import TrainState

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
AUGMENT = [{"op": "random_crop", "size": 32, "padding": 4}, {"op": "horizontal_flip", "p": 0.5}]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PILDataset(torch.utils.data.Dataset):
    """What the original repositories do: a PIL image per sample through torchvision transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images.transpose(0, 2, 3, 1), labels
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def plain_epoch(images, labels, batch_size, workers, device) -> float:
    torch.manual_seed(0)
    model = create_model("resnet18_cifar", (3, 32, 32), 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = torch.utils.data.DataLoader(PILDataset(images, labels), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=False)
    model.train()
    synchronize(device)
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return len(labels) / (time.perf_counter() - start)


def engine_epoch(store: Path, batch_size: int, device: torch.device) -> tuple[float, float]:
    """(images/s of a training epoch, seconds of data handling alone for the same epoch)."""
    cfg = TrainConfig(epochs=1, batch_size=batch_size, optimizer="sgd", lr=0.1, weight_decay=5e-4,
                      schedule="constant", log_every=10**9, augment=AUGMENT,
                      normalize={"mean": list(MEAN), "std": list(STD)})
    data = load_data(store, device, placement="memory")
    pipeline = InputPipeline(cfg, device)
    torch.manual_seed(0)
    model = create_model("resnet18_cifar", data.in_shape, len(data.classes)).to(device)
    optimizer = build_optimizer(model, cfg, [])
    state = TrainState(model, optimizer, device, data.train.labels, len(data.classes), epochs=1)
    synchronize(device)
    start = time.perf_counter()
    stats = train_one_epoch(state, data, pipeline, [], cfg, cfg.lr, seed=0)
    synchronize(device)
    train_seconds = time.perf_counter() - start

    order = torch.randperm(len(data.train.labels), generator=epoch_generator(0, 0)).to(device)
    generator = epoch_generator(0, 0, 1)
    synchronize(device)
    start = time.perf_counter()
    for _, images, _ in data.train.batches(order, batch_size):
        pipeline.normalize(pipeline.train(images, generator))
    synchronize(device)
    return stats["train_images"] / train_seconds, time.perf_counter() - start, train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the plain loop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, args.images).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "synthetic_cifar"
        write_store(store, {"train": Split(images, labels), "test": Split(images[:1000], labels[:1000])},
                    [str(c) for c in range(10)], {"name": "synthetic"})
        engine_epoch(store, args.batch_size, device)  # warm-up: cuDNN autotuning, allocator
        engine_ips, data_seconds, engine_seconds = engine_epoch(store, args.batch_size, device)
    plain_epoch(images[: args.batch_size * 20], labels[: args.batch_size * 20], args.batch_size, args.workers, device)
    plain_ips = plain_epoch(images, labels, args.batch_size, args.workers, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, ResNet-18 (CIFAR stem), {args.images} images 3x32x32, batch {args.batch_size}, fp32")
    print(f"plain DataLoader + PIL ({args.workers} workers): {plain_ips:8.0f} images/s")
    print(f"engine (resident uint8, on-device augment):   {engine_ips:8.0f} images/s")
    print(f"ratio engine / plain: {engine_ips / plain_ips:.2f}x")
    print(f"engine data handling: {data_seconds:.2f}s of a {engine_seconds:.2f}s epoch "
          f"({100 * data_seconds / engine_seconds:.1f}% of step time)")


if __name__ == "__main__":
    main()
