"""Linear evaluation of a pretrained encoder: the contrastive study's score (docs/methods.md §3.3).

ETH (src/models/classification.py): the encoder is frozen (eval mode) and embeds the
un-augmented train and test images once (here at the precision and layout the run trained and
evaluated at, its recorded `speed`: bf16 where the run was); a linear classifier is trained on
the train embeddings with Adam (lr 1e-3, 60 epochs) for each weight decay of logspace(-6, -1, 5),
each scored on a stratified 90/10 split of the train set; the best weight decay is then
retrained on all train embeddings, and its test accuracy is the model's score.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import config_from_dict
from ..data.store import atomic_write_bytes
from ..models import create_model
from ..train.config import Run
from ..train.engine import load_data, pick_device
from ..train.pipeline import InputPipeline, to_inputs
from ..train.speed import Speed, prepare_model, run_model


@dataclass(frozen=True)
class ProbeConfig:
    weight_decays: tuple[float, ...] = tuple(np.logspace(-6, -1, 5).tolist())  # ETH: torch.logspace(-6, -1, 5)
    epochs: int = 60  # ETH linear classifier epochs
    lr: float = 1e-3  # ETH: Adam 1e-3
    batch_size: int = 256
    val_fraction: float = 0.1  # ETH: stratified 90/10 split to choose the weight decay
    seed: int = 0


@torch.inference_mode()
def embed(
    model, split, pipeline: InputPipeline, speed: Speed = Speed(), batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    order = torch.arange(len(split.labels), device=split.labels.device)
    feats = [
        run_model(model.features, pipeline.normalize(to_inputs(images)), speed).float()
        for _, images, _ in split.batches(order, batch_size)
    ]
    return torch.cat(feats), split.labels.clone()


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, val indices): val_fraction of every class, drawn with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(labels.cpu()):
        members = torch.nonzero(labels.cpu() == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = max(1, round(len(members) * val_fraction))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def train_linear(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, cfg: ProbeConfig
) -> torch.nn.Linear:
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    classifier = torch.nn.Linear(x.shape[1], num_classes).to(x.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=cfg.lr, weight_decay=weight_decay)
    for _ in range(cfg.epochs):
        for batch in torch.randperm(len(y), generator=generator).to(x.device).split(cfg.batch_size):
            loss = F.cross_entropy(classifier(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return classifier


@torch.inference_mode()
def accuracy(classifier: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    return (classifier(x).argmax(1) == y).float().mean().item()


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int, cfg: ProbeConfig) -> dict:
    """ETH's protocol on fixed embeddings; returns the chosen weight decay and accuracies."""
    fit_idx, val_idx = stratified_split(train_y, cfg.val_fraction, cfg.seed)
    fit_idx, val_idx = fit_idx.to(train_x.device), val_idx.to(train_x.device)
    val_acc = {}
    for wd in cfg.weight_decays:
        classifier = train_linear(train_x[fit_idx], train_y[fit_idx], num_classes, wd, cfg)
        val_acc[wd] = accuracy(classifier, train_x[val_idx], train_y[val_idx])
    best_wd = max(cfg.weight_decays, key=lambda wd: val_acc[wd])  # the smallest wd among ties
    final = train_linear(train_x, train_y, num_classes, best_wd, cfg)
    return {
        "weight_decay": best_wd,
        "val_acc_per_weight_decay": {str(k): v for k, v in val_acc.items()},
        "test_acc": accuracy(final, test_x, test_y),
        "train_acc": accuracy(final, train_x, train_y),
    }


def probe_run(run_dir: Path, data_dir: Path, out: Path, probe: dict | None = None, device: str | None = None) -> dict:
    """Score a finished pretraining run; writes a metrics file the study table reads."""
    start = time.perf_counter()
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    run = Run.from_dict(metrics["run"])
    cfg = config_from_dict(ProbeConfig, probe, where="probe")
    dev = pick_device(device)
    data = load_data(data_dir, dev, "memory")
    model = create_model(run.model, data.in_shape, len(data.classes), **run.model_args).to(dev)
    model.load_state_dict(torch.load(run_dir / "final_model.pt", map_location=dev))
    if not hasattr(model, "features"):
        raise ValueError(f"{run.model}: linear evaluation needs a model with .features() (the `simclr` model)")
    pipeline = InputPipeline(run.train, dev)
    trained_at = metrics["speed"]
    speed = Speed(bf16=trained_at["bf16"], channels_last=trained_at["channels_last"])
    prepare_model(model, speed)  # the layout only: no compile for one pass over the data

    def score() -> dict:
        train_x, train_y = embed(model, data.train, pipeline, speed)
        test_x, test_y = embed(model, data.eval, pipeline, speed)
        return linear_probe(train_x, train_y, test_x, test_y, len(data.classes), cfg)

    result = score()
    per_epoch = {metrics["final_epoch"]: result["test_acc"]}
    # Intermediate snapshots (simclr's probe_epochs), scored the same way: ETH every 100 epochs.
    for snapshot in sorted((run_dir / "snapshots").glob("epoch*.pt"), key=lambda p: int(p.stem[5:])):
        model.load_state_dict(torch.load(snapshot, map_location=dev))
        per_epoch[int(snapshot.stem[5:])] = score()["test_acc"]
        print(f"linear probe of {snapshot}: test acc {per_epoch[int(snapshot.stem[5:])]:.4f}", flush=True)
    probe_seconds = time.perf_counter() - start
    summary = {
        **{
            k: metrics[k]
            for k in (
                "study",
                "dataset",
                "model",
                "variant",
                "seed",
                "num_train",
                "num_eval",
                "train_images_per_s",
                "peak_mem_mb",
                "device_name",
                "speed",
                "dataset_source",
                "final_epoch",
            )
        },
        # The score is the linear probe's test accuracy; a probe has no "best epoch".
        "final_acc": result["test_acc"],
        "best_acc": result["test_acc"],
        "best_epoch": metrics["final_epoch"],
        "eval_split": f"{metrics['eval_split']}, linear probe",
        "online_probe_final_acc": metrics["final_acc"],
        "wall_s": metrics["wall_s"] + probe_seconds,
        "probe_wall_s": probe_seconds,
        "probe": result,
        "probe_per_epoch": {str(e): per_epoch[e] for e in sorted(per_epoch)},
        "probe_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "run": run.resolved,
    }
    atomic_write_bytes(Path(out), (json.dumps(summary, indent=2) + "\n").encode())
    print(
        f"linear probe of {run_dir}: weight decay {result['weight_decay']:.0e}, "
        f"test acc {result['test_acc']:.4f} ({probe_seconds:.0f}s) -> {out}",
        flush=True,
    )
    return summary
