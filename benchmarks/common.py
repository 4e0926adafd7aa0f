"""Shared pieces of the benchmark scripts: the studies' training setups ("cases"), synthetic
dataset stores, the plain DataLoader + PIL loop of the original repositories, and the engine
set up the way `fit` sets it up.

Clocks are read only after `synchronize`: CUDA kernels run asynchronously, so without it a
timer measures how fast Python queues work, not how fast the GPU does it.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from curriculum_bench.data.store import Split, write_store
from curriculum_bench.models import create_model
from curriculum_bench.train.config import Run, TrainConfig
from curriculum_bench.train.engine import Data, build_state, device_name, load_data, train_one_epoch
from curriculum_bench.train.hooks import Stream, TrainState, seeded_generator
from curriculum_bench.train.pipeline import InputPipeline
from curriculum_bench.train.speed import Speed, model_input, resolve_speed

CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
RESIZED_CROP_SCALE = (0.08, 1.0)  # torchvision RandomResizedCrop default, the ImageNet recipe
CROP_PADDING = 4  # CIFAR recipe: RandomCrop(32, padding=4)
TEST_IMAGES = 1000  # a store needs a test split; nothing here evaluates on it

# Every speed switch off: fp32, eager, the optimiser's default kernels. What the engine's data
# pipeline alone buys over the plain loop.
SPEED_OFF = {
    "precision": "fp32",
    "channels_last": False,
    "fused_optimizer": False,
    "compile": False,
    "cuda_graphs": False,
}


@dataclass(frozen=True)
class Case:
    """One study's training setup at its own batch size, trained on synthetic pixels."""

    model: str  # registry name (curriculum_bench/models), also the case's name
    shape: tuple[int, int, int]  # stored image (C, H, W)
    num_classes: int
    batch_size: int
    images: int  # synthetic training images per case on a GPU
    optimizer: dict  # TrainConfig fields: optimizer, lr, weight_decay, momentum
    crop: str | None = None  # "pad": CIFAR crop + flip | "resized": ImageNet crop + flip | None
    mean_std: tuple | None = None  # per-channel normalisation; None: pixels / 255, as MLT feeds them

    def augment(self) -> list[dict]:
        """The engine's on-device augmentation (data/augment.py ops)."""
        size = self.shape[-1]
        if self.crop == "pad":
            return [{"op": "random_crop", "size": size, "padding": CROP_PADDING}, {"op": "horizontal_flip"}]
        if self.crop == "resized":
            return [
                {"op": "random_resized_crop", "size": size, "scale": list(RESIZED_CROP_SCALE)},
                {"op": "horizontal_flip"},
            ]
        return []

    def transform(self) -> transforms.Compose:
        """The same augmentation as torchvision (v1) transforms on a PIL image."""
        size = self.shape[-1]
        ops = []
        if self.crop == "pad":
            ops = [transforms.RandomCrop(size, padding=CROP_PADDING), transforms.RandomHorizontalFlip()]
        elif self.crop == "resized":
            ops = [transforms.RandomResizedCrop(size, scale=RESIZED_CROP_SCALE), transforms.RandomHorizontalFlip()]
        ops.append(transforms.ToTensor())
        if self.mean_std is not None:
            ops.append(transforms.Normalize(*self.mean_std))
        return transforms.Compose(ops)

    def train_settings(self, fast: bool) -> dict:
        """The `train:` section; fast: every speed switch on auto (on for CUDA, off on the CPU), else all off."""
        normalize = None if self.mean_std is None else {"mean": list(self.mean_std[0]), "std": list(self.mean_std[1])}
        # log_every: no progress line but the epoch's last (the engine always prints that one).
        return dict(
            epochs=1,
            batch_size=self.batch_size,
            schedule="constant",
            log_every=10**9,
            augment=self.augment(),
            normalize=normalize,
            **self.optimizer,
            **({} if fast else SPEED_OFF),
        )

    def train_config(self, fast: bool) -> TrainConfig:
        return TrainConfig(**self.train_settings(fast))

    def run(self, fast: bool, seed: int = 0) -> Run:
        """The case as a run with no method, as `fit` would receive it."""
        return Run.from_dict(
            {
                "study": "benchmark",
                "dataset": "synthetic",
                "model": self.model,
                "model_args": {},
                "variant": "engine",
                "methods": {},
                "seed": seed,
                "train": self.train_settings(fast),
            }
        )

    def create_model(self) -> torch.nn.Module:
        return create_model(self.model, self.shape, self.num_classes)


CASES = {
    # LeRaC / forgetting events / hybrid: ResNet-18 (CIFAR stem) on CIFAR-10.
    "resnet18_cifar": Case(
        "resnet18_cifar",
        (3, 32, 32),
        10,
        batch_size=128,
        images=50_000,
        optimizer={"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
        crop="pad",
        mean_std=CIFAR_MEAN_STD,
    ),
    # MNIST training-technique catalogue: the small residual ConvNet, no augmentation.
    "mlt_convnet": Case(
        "mlt_convnet",
        (1, 28, 28),
        10,
        batch_size=32,
        images=60_000,
        optimizer={"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1},
    ),
    # Hybrid study: ConvNeXt-Tiny at 224 px on ImageNet-100.
    "convnext_tiny": Case(
        "convnext_tiny",
        (3, 224, 224),
        100,
        batch_size=128,
        images=10_000,
        optimizer={"optimizer": "adamw", "lr": 4e-3, "weight_decay": 0.05},
        crop="resized",
        mean_std=IMAGENET_MEAN_STD,
    ),
}

# --quick: a CPU smoke run of the same code paths in a minute or two, not a measurement. A
# 2-core CPU takes ~1 s per ResNet-18 step at batch 16 and ~5 s per ConvNeXt step at 224 px
# and batch 2, so batches shrink and ConvNeXt runs at 32 px (its smallest stage is then 1x1).
QUICK = {
    "resnet18_cifar": {"images": 16, "batch_size": 8},
    "mlt_convnet": {"images": 128, "batch_size": 32},
    "convnext_tiny": {"images": 16, "batch_size": 4, "shape": (3, 32, 32)},
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_machine(device: torch.device) -> str:
    return f"device {device_name(device)}, torch {torch.__version__}"


@contextlib.contextmanager
def quiet():
    """Hide the engine's progress line (printed at each epoch's last step whatever log_every says)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# --- synthetic data ----------------------------------------------------------------------


def synthetic_split(n: int, shape: tuple[int, int, int], num_classes: int, seed: int = 0) -> Split:
    """Uniform random uint8 pixels and labels: speed does not depend on what the pixels show."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    return Split(images, rng.integers(0, num_classes, n).astype(np.int64))


def write_synthetic_store(directory: Path, split: Split, num_classes: int) -> Path:
    test = Split(split.images[:TEST_IMAGES], split.labels[:TEST_IMAGES])
    write_store(directory, {"train": split, "test": test}, [str(c) for c in range(num_classes)], {"name": "synthetic"})
    return directory


# --- the plain loop: a PIL image per sample through torchvision transforms ---------------


class PILDataset(torch.utils.data.Dataset):
    """What the original repositories do (torchvision's CIFAR10 / MNIST datasets): hold the
    images as a contiguous HWC uint8 array, make a PIL image per sample, transform it. They
    decode nothing, so this is the plain loop at its fastest (ImageFolder would decode JPEGs)."""

    def __init__(self, split: Split, transform):
        images = split.images.transpose(0, 2, 3, 1)
        # One channel: an (H, W) array, which PIL reads as a grayscale ("L") image.
        self.images = np.ascontiguousarray(images[..., 0] if images.shape[-1] == 1 else images)
        self.labels, self.transform = split.labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def plain_loader(
    dataset: torch.utils.data.Dataset, batch_size: int, workers: int, device: torch.device
) -> torch.utils.data.DataLoader:
    # persistent_workers=False, as torchvision's references: each epoch starts its workers.
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def plain_train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader, device: torch.device) -> None:
    """One pass of the plain fp32 eager loop over `loader`."""
    model.train()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


# --- the engine --------------------------------------------------------------------------


def engine_run(case: Case, data: Data, device: torch.device, fast: bool, seed: int = 0) -> TrainState:
    """The model, optimiser and speed switches in `fit`'s order (train/engine.py), no hooks:
    the state `train_epoch` trains."""
    run = case.run(fast, seed)
    return build_state(run, data, [], device, resolve_speed(run.train, device))


def train_epoch(state: TrainState, epoch: int) -> dict:
    """One epoch of `train_one_epoch`, without its progress line."""
    state.epoch = epoch
    with quiet():
        return train_one_epoch(state, [])


def data_seconds(
    data: Data,
    pipeline: InputPipeline,
    batch_size: int,
    device: torch.device,
    speed: Speed,
    seed: int = 0,
    epoch: int = 0,
) -> float:
    """Seconds of the engine's data handling alone for one epoch: batch gather, augmentation,
    normalisation and the input layout, with the same order and random streams as the epoch."""
    order = torch.randperm(len(data.train.labels), generator=seeded_generator(seed, epoch, Stream.ORDER)).to(device)
    generator = seeded_generator(seed, epoch, Stream.AUGMENT)
    synchronize(device)
    start = time.perf_counter()
    for _, images, _ in data.train.batches(order, batch_size):
        model_input(pipeline.normalize(pipeline.train(images, generator)), speed)
    synchronize(device)
    return time.perf_counter() - start


def load_resident(store: Path, device: torch.device) -> Data:
    """The store in device memory (no memory map), as every benchmarked dataset fits there."""
    return load_data(store, device, placement="memory")
