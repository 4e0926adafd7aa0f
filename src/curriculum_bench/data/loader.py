"""Training splits as the engine reads them: resident in (GPU) memory, or memory-mapped.

A resident split is two tensors on the device; a batch is one indexing operation. A split
too large for that (ImageNet-100 at 224 px on a small machine) stays a memory map on disk
and is read by DataLoader workers, batch by batch, in exactly the order the engine asks
for, so both paths give the same batch contents for the same seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import InputFileError
from .store import load_split, rebuild_hint

PLACEMENTS = ("auto", "memory", "mmap")


class ResidentSplit:
    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device):
        # np.array copies a memory map into (writable) RAM once; torch wants writable memory.
        self.images = torch.from_numpy(np.array(images)).to(device)
        self.labels = torch.from_numpy(labels).to(device)

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield idx, self.images[idx], self.labels[idx]


def open_mapped(path: Path) -> np.ndarray:
    """The images memory map, which load_split checked when the run started; now read again by a worker."""
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as err:
        raise InputFileError(
            path,
            f"cannot read the images ({err}): the file was removed, truncated or replaced while training",
            rebuild_hint(Path(path).parent),
        ) from None


class _MappedBatches(torch.utils.data.Dataset):
    """Item i is the i-th batch of a fixed order, gathered from the memory map."""

    def __init__(self, path: Path, order: np.ndarray, batch_size: int):
        self.path, self.order, self.batch_size = path, order, batch_size
        self.images = None  # opened lazily in each worker

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.images is None:
            self.images = open_mapped(self.path)
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        # Reading rows in sorted order is kinder to the disk; put them back in batch order.
        rows = np.argsort(idx, kind="stable")
        gathered = np.empty((len(idx),) + self.images.shape[1:], dtype=np.uint8)
        gathered[rows] = self.images[idx[rows]]
        return torch.from_numpy(idx), torch.from_numpy(gathered)


class MappedSplit:
    def __init__(self, images_path: Path, labels: np.ndarray, device: torch.device, workers: int):
        self.images_path = images_path
        self.labels = torch.from_numpy(labels).to(device)
        self.device, self.workers = device, workers

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        open_mapped(self.images_path)  # a file gone or cut short is named here, not in a worker's traceback
        dataset = _MappedBatches(self.images_path, order.cpu().numpy(), batch_size)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            shuffle=False,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
        )
        for idx, images in loader:
            idx = idx.to(self.device, non_blocking=True)
            yield idx, images.to(self.device, non_blocking=True), self.labels[idx]


def memory_budget(device: torch.device) -> int:
    """Bytes a resident split may take: half of what is free on the device."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def open_split(
    store_dir: Path, split: str, device: torch.device, placement: str = "auto", workers: int = 4
) -> ResidentSplit | MappedSplit:
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    mapped = load_split(store_dir, split, mmap=True)
    if placement == "memory" or (placement == "auto" and mapped.images.nbytes <= memory_budget(device)):
        return ResidentSplit(mapped.images, mapped.labels, device)
    return MappedSplit(Path(mapped.images.filename), mapped.labels, device, workers)
