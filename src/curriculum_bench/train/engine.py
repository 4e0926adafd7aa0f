"""The one training engine every study uses: `train_one_epoch`, `evaluate`, `fit`.

Data lives in memory (on the GPU when there is one) as uint8 tensors; a batch is formed by
indexing with the sample indices of this epoch's order, and those indices travel with the
batch to every hook. Methods change the run only through hooks (train/hooks.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..config import ConfigError, config_from_dict
from ..data.loader import MappedSplit, ResidentSplit, open_split
from ..data.store import atomic_write_bytes, read_manifest
from ..models import create_model
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .hooks import Hook, Stream, TrainState, build_hooks, seeded_generator
from .identity import model_files, run_identity, run_inputs, why_not_resume
from .schedule import lr_factor
from .speed import (
    Speed,
    autocast,
    begin_step,
    model_input,
    optimizer_kernel_args,
    prepare_model,
    resolve_speed,
    run_model,
    use_compile_cache,
)


def log(message: str) -> None:
    print(message, flush=True)


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Data:
    train: ResidentSplit | MappedSplit
    eval: ResidentSplit | MappedSplit
    classes: list[str]
    manifest: dict
    in_shape: tuple[int, int, int]
    eval_split: str = "test"
    val: ResidentSplit | MappedSplit | None = None  # held out of train (derived `validation_tail`)


def load_data(store_dir: Path, device: torch.device, placement: str = "auto", workers: int = 4) -> Data:
    manifest = read_manifest(store_dir)
    train = open_split(store_dir, "train", device, placement, workers)
    test = open_split(store_dir, "test", device, placement, workers)
    val = open_split(store_dir, "val", device, placement, workers) if "val" in manifest["splits"] else None
    return Data(train, test, manifest["classes"], manifest, tuple(manifest["image_shape"]), val=val)


def to_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1]; MLT feeds pixels / 255 with no mean/std normalisation."""
    return images.float().div_(255)


class InputPipeline:
    """Training-time augmentation and the normalisation shared with evaluation."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.augment = None
        if cfg.augment:
            from ..data.augment import Augment

            try:
                self.augment = Augment.from_config(cfg.augment)
            except ValueError as err:
                raise ConfigError(f"train.augment: {err}") from None
        self.mean = self.std = None
        if cfg.normalize is not None:
            self.mean = torch.tensor(cfg.normalize["mean"], device=device).view(1, -1, 1, 1)
            self.std = torch.tensor(cfg.normalize["std"], device=device).view(1, -1, 1, 1)

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = to_inputs(images)
        return self.augment(x, generator) if self.augment is not None else x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mean is None else (x - self.mean) / self.std


def build_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, hooks: list[Hook], speed: Speed = Speed()
) -> torch.optim.Optimizer:
    groups = None
    for hook in hooks:
        hook_groups = hook.param_groups(model)
        if hook_groups is not None:
            if groups is not None:
                raise ValueError(f"two methods define parameter groups; {hook.name} is the second")
            groups = hook_groups
    groups = groups or [{"params": list(model.parameters())}]
    for group in groups:
        group.setdefault("lr_scale", 1.0)  # a hook's per-group multiplier of the base schedule
    optimizers = {
        "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamax": torch.optim.Adamax,
    }
    if cfg.optimizer not in optimizers:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
    optimizer_cls = optimizers[cfg.optimizer]
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, **optimizer_kernel_args(optimizer_cls, speed)}
    if cfg.optimizer == "sgd":
        kwargs.update(momentum=cfg.momentum, nesterov=cfg.nesterov)
    return optimizer_cls(groups, **kwargs)


def build_model(
    name: str,
    model_args: dict,
    data: Data,
    cfg: TrainConfig,
    hooks: list[Hook],
    seed: int,
    device: torch.device,
    speed: Speed,
) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
    """(model, the module a step calls, optimiser), seeded and laid out as `fit` trains them."""
    torch.manual_seed(seed)  # model initialisation and dropout
    model = create_model(name, data.in_shape, len(data.classes), **model_args).to(device)
    forward = prepare_model(model, speed, eager_on_compile_error=cfg.compile == "auto")
    return model, forward, build_optimizer(model, cfg, hooks, speed)


def epoch_order(state: TrainState, hooks: list[Hook], generator: torch.Generator) -> torch.Tensor:
    orders = [(h.name, o) for h in hooks if (o := h.sample_order(state, generator)) is not None]
    if len(orders) > 1:
        raise ValueError(f"more than one method chooses the sample order: {[n for n, _ in orders]}")
    if orders:
        return orders[0][1].to(state.device)
    return torch.randperm(len(state.train_labels), generator=generator).to(state.device)


@dataclass
class EpochProgress:
    """Where an interrupted epoch stopped: enough to finish it exactly as if never stopped."""

    batches_done: int
    loss_sum: float
    correct: int
    train_seconds: float
    wall_seconds: float
    augment_state: torch.Tensor
    predictions: int = 0  # training predictions scored so far (2 per image with two views)


class Preempted(Exception):
    """Raised after a SIGTERM once the run's mid-epoch state is checkpointed."""


class TerminationFlag:
    """Turns SIGTERM (SLURM preemption or time limit, `kill`) into a flag the loop polls."""

    def __init__(self):
        self.raised = False
        self.previous = None

    def __enter__(self) -> TerminationFlag:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def train_one_epoch(
    state: TrainState,
    data: Data,
    pipeline: InputPipeline,
    hooks: list[Hook],
    cfg: TrainConfig,
    base_lr: float,
    seed: int,
    progress: EpochProgress | None = None,
    should_stop=lambda: False,
    speed: Speed = Speed(),
    forward=None,
) -> dict | EpochProgress:
    """Train one epoch; returns its statistics, or an EpochProgress if `should_stop()` said so
    after a step. `progress` continues an epoch that stopped that way. `forward` is the module
    a step calls (`state.model` compiled by train/speed.py, or `state.model` itself)."""
    model, optimizer = state.model, state.optimizer
    forward = model if forward is None else forward
    model.train()
    order = state.order = epoch_order(state, hooks, seeded_generator(seed, state.epoch, Stream.ORDER))
    steps = state.steps_per_epoch = math.ceil(len(order) / cfg.batch_size)
    loss_sum = torch.zeros((), device=state.device)
    correct = torch.zeros((), dtype=torch.long, device=state.device)
    augment_generator = seeded_generator(seed, state.epoch, Stream.AUGMENT)
    first, seconds_before, predictions = 0, 0.0, 0
    if progress is not None:
        first, seconds_before = progress.batches_done, progress.train_seconds
        predictions = progress.predictions
        loss_sum += progress.loss_sum
        correct += progress.correct
        augment_generator.set_state(progress.augment_state)
    start = time.perf_counter()
    batches = data.train.batches(order[first * cfg.batch_size :], cfg.batch_size)
    for i, (idx, images, y) in enumerate(batches, start=first):
        x = pipeline.train(images, augment_generator) if state.augment else to_inputs(images)
        state.batch = i
        for hook in hooks:
            hook.on_batch_start(state)
        for group in optimizer.param_groups:
            group["lr"] = base_lr * group["lr_scale"]
        for hook in hooks:
            x, y = hook.transform_batch(x, y, idx, state)
        begin_step(speed)
        with autocast(speed, state.device):
            logits = forward(model_input(pipeline.normalize(x), speed))
            loss = F.cross_entropy(logits, y, reduction="none")
            for hook in hooks:
                loss = hook.loss(logits, y, idx, loss)
        for hook in hooks:
            hook.after_forward(idx, logits.detach(), y)
        loss = loss.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for hook in hooks:
            hook.after_step(state)
        state.step += 1
        # Accumulated on the device: no host sync per step.
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
        predictions += len(y)  # a hook may score several views per image
        if (i + 1) % cfg.log_every == 0 or i + 1 == steps:
            seen = min((i + 1) * cfg.batch_size, len(order))
            elapsed = time.perf_counter() - start
            eta = elapsed / (i + 1 - first) * (steps - i - 1)
            log(
                f"epoch {state.epoch + 1}/{state.epochs} [{i + 1:>{len(str(steps))}}/{steps}] "
                f"loss {loss.item():.4f} (avg {loss_sum.item() / seen:.4f}) lr {base_lr:.3g} "
                f"{(seen - first * cfg.batch_size) / elapsed:.0f} img/s eta {eta:.0f}s"
            )
        if should_stop() and i + 1 < steps:
            return EpochProgress(
                i + 1,
                loss_sum.item(),
                int(correct.item()),
                seconds_before + time.perf_counter() - start,
                0.0,
                augment_generator.get_state(),
                predictions,
            )
    stats = {
        "train_loss": loss_sum.item() / len(order),
        "train_acc": correct.item() / predictions,
        "train_images": len(order),
    }
    # Read after .item(), which waits for the device: the clock then covers the queued work.
    return {**stats, "train_time_s": seconds_before + time.perf_counter() - start}


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    split: ResidentSplit | MappedSplit,
    pipeline: InputPipeline,
    num_classes: int,
    batch_size: int,
    speed: Speed = Speed(),
    forward=None,
) -> dict:
    model.eval()
    forward = model if forward is None else forward
    labels = split.labels
    loss_sum = torch.zeros((), device=labels.device, dtype=torch.float64)
    hits = torch.zeros(num_classes, device=labels.device, dtype=torch.long)
    for _, images, y in split.batches(torch.arange(len(labels), device=labels.device), batch_size):
        logits = run_model(forward, pipeline.normalize(to_inputs(images)), speed)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        hits += torch.bincount(y[logits.argmax(1) == y], minlength=num_classes)
    counts = torch.bincount(labels, minlength=num_classes)
    # A class the split does not hold (a transfer source of other classes) has no accuracy:
    # NaN, which the table shows as "—", not a 0 % that was never measured.
    per_class = torch.where(
        counts > 0, hits / counts.clamp(min=1), torch.full_like(hits, float("nan"), dtype=torch.float)
    )
    return {
        "eval_loss": loss_sum.item() / len(labels),
        "eval_acc": hits.sum().item() / len(labels),
        "eval_acc_per_class": per_class.tolist(),
    }


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())


def fit(
    run: dict,
    data_dir: Path,
    out_dir: Path,
    checkpoint_path: Path,
    device: str | None = None,
    stop_after_epoch: int | None = None,
    placement: str = "auto",
    loader_workers: int = 4,
    compile_cache: Path | str | None = None,
) -> dict | None:
    """Train one run; write `history.jsonl` each epoch and `metrics.json` last.

    Resumes from `checkpoint_path` when it was written for the same resolved run config and
    the same content of every input (train/identity.py), and was not already finished.
    `stop_after_epoch` ends the session after that many epochs without writing metrics,
    like a preemption (used by tests). `placement` keeps the data in device memory
    ("memory"), memory-mapped ("mmap", read by `loader_workers` workers) or decides by
    size ("auto"); it does not change results. `compile_cache` keeps torch.compile's kernels
    for the next job (train/speed.py).
    """
    cfg: TrainConfig = config_from_dict(TrainConfig, run["train"], where="train")
    out_dir, checkpoint_path = Path(out_dir), Path(checkpoint_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    data = load_data(data_dir, dev, placement, loader_workers)
    pipeline = InputPipeline(cfg, dev)
    hooks = build_hooks(run["methods"])
    speed = resolve_speed(cfg, dev, hooks)
    if speed.compile:
        use_compile_cache(compile_cache)
    model, forward, optimizer = build_model(run["model"], run["model_args"], data, cfg, hooks, run["seed"], dev, speed)
    state = TrainState(
        model,
        optimizer,
        dev,
        data.train.labels,
        len(data.classes),
        cfg.epochs,
        seed=run["seed"],
        out_dir=out_dir,
        data_dir=Path(data_dir),
        data=data,
    )
    # Hooks that predict (self-labelling, a distillation teacher) normalise as `evaluate`
    # does, at the run's precision and layout (speed); a method with its own LR schedule
    # divides out the study's (train/schedule.py).
    state.extras.update(pipeline=pipeline, train_config=cfg, speed=speed)
    for hook in hooks:
        hook.on_fit_start(state)
    files = model_files(run["model_args"])
    for hook in hooks:
        files.update(hook.input_files(state))
    inputs = run_inputs(data_dir, data.manifest, files)
    identity = run_identity(run, inputs)

    history: list[dict] = []
    progress: EpochProgress | None = None
    sessions = [[0, 0]]  # [epochs done, batches done in the next epoch] at each (re)start
    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint is not None and (reason := why_not_resume(checkpoint, identity, cfg.epochs)):
        log(f"checkpoint {checkpoint_path} is not resumed: {reason}; starting afresh")
        checkpoint = None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        for hook in hooks:
            hook.load_state_dict(checkpoint["hooks"].get(hook.name, {}))
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if dev.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        history, state.step, progress = checkpoint["history"], checkpoint["step"], checkpoint["progress"]
        sessions = checkpoint["sessions"] + [[len(history), progress.batches_done if progress else 0]]
        log(
            f"resuming {checkpoint_path} after epoch {len(history)}/{cfg.epochs}"
            + (f" and {progress.batches_done} batches of the next" if progress else "")
        )

    def save(progress: EpochProgress | None) -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "run": run,
                "identity": identity,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "hooks": {h.name: h.state_dict() for h in hooks},
                "history": history,
                "step": state.step,
                "sessions": sessions,
                "progress": progress,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if dev.type == "cuda" else None,
                },
            },
        )

    num_params = sum(p.numel() for p in model.parameters())
    log(
        f"run {run['study']}/{run['dataset']}/{run['model']}/{run['variant']}/seed{run['seed']}: "
        f"{len(data.train.labels)} train / {len(data.eval.labels)} {data.eval_split} images "
        f"({type(data.train).__name__}), "
        f"{num_params:,} parameters, {len(optimizer.param_groups)} parameter group(s), "
        f"device {device_name(dev)} ({speed.describe()}), methods {list(run['methods']) or 'none'}"
    )

    with TerminationFlag() as terminated:
        for epoch in range(len(history), cfg.epochs):
            epoch_start = time.perf_counter() - (progress.wall_seconds if progress else 0.0)
            state.epoch = epoch
            base_lr = cfg.lr * lr_factor(epoch, cfg)
            for hook in hooks:
                hook.on_epoch_start(state)
            stats = train_one_epoch(
                state,
                data,
                pipeline,
                hooks,
                cfg,
                base_lr,
                run["seed"],
                progress,
                should_stop=lambda: terminated.raised,
                speed=speed,
                forward=forward,
            )
            if isinstance(stats, EpochProgress):
                stats.wall_seconds = time.perf_counter() - epoch_start
                save(stats)
                log(
                    f"SIGTERM: checkpointed epoch {epoch + 1} after {stats.batches_done} batches "
                    f"to {checkpoint_path}; the same command resumes from there"
                )
                raise Preempted(checkpoint_path)
            progress = None
            record = {"epoch": epoch + 1, **stats}
            record.update(evaluate(model, data.eval, pipeline, len(data.classes), cfg.eval_batch_size, speed, forward))
            if data.val is not None:
                val = evaluate(model, data.val, pipeline, len(data.classes), cfg.eval_batch_size, speed, forward)
                record.update({"val_loss": val["eval_loss"], "val_acc": val["eval_acc"]})
            for hook in hooks:
                hook.on_epoch_end(state)
            record["lr"] = [group["lr"] for group in optimizer.param_groups]
            for hook in hooks:
                record.update({f"{hook.name}/{k}": v for k, v in hook.epoch_log().items()})
            record["images_per_s"] = record["train_images"] / record["train_time_s"]
            record["peak_mem_mb"], _ = peak_memory_mb(dev)
            record["wall_s"] = time.perf_counter() - epoch_start
            history.append(record)
            save(None)
            write_jsonl(out_dir / "history.jsonl", history)
            log(
                f"epoch {epoch + 1}/{cfg.epochs} done: train loss {record['train_loss']:.4f} "
                f"acc {record['train_acc']:.4f} | {data.eval_split} loss {record['eval_loss']:.4f} "
                f"acc {record['eval_acc']:.4f} | {record['wall_s']:.1f}s"
            )
            if stop_after_epoch is not None and stop_after_epoch <= epoch + 1 < cfg.epochs:
                log(f"stopping after epoch {epoch + 1} as asked; rerun to resume")
                return None

    write_jsonl(out_dir / "history.jsonl", history)
    for hook in hooks:
        hook.on_fit_end(state)  # per-run artifacts, written before the "finished" marker
    # Final weights: a teacher for distillation, a proxy for a coreset, a versioned artifact.
    save_checkpoint(out_dir / "final_model.pt", model.state_dict())
    metrics = summarize_run(run, cfg, history, data, dev, num_params, sessions, speed)
    metrics["inputs"] = inputs  # path and sha256 of everything the run read
    # metrics.json is the run's "finished" marker: written last, atomically.
    atomic_write_bytes(out_dir / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    log(
        f"final {data.eval_split} acc {metrics['final_acc']:.4f}, best {metrics['best_acc']:.4f} "
        f"(epoch {metrics['best_epoch']}), {metrics['wall_s']:.0f}s -> {out_dir / 'metrics.json'}"
    )
    return metrics


def summarize_run(
    run: dict,
    cfg: TrainConfig,
    history: list[dict],
    data: Data,
    dev: torch.device,
    num_params: int,
    sessions: list[int],
    speed: Speed = Speed(),
) -> dict:
    best = max(history, key=lambda r: r["eval_acc"])  # first epoch among ties
    selected = {}
    if data.val is not None:
        # Model selection on held-out training data, reported on test (cifar_1k, CLab).
        best_val = max(history, key=lambda r: r["val_acc"])
        selected = {
            "best_val_acc": best_val["val_acc"],
            "best_val_epoch": best_val["epoch"],
            "test_at_best_val_acc": best_val["eval_acc"],
            "num_val": len(data.val.labels),
        }
    train_images = sum(r["train_images"] for r in history)
    train_time = sum(r["train_time_s"] for r in history)
    _, memory_kind = peak_memory_mb(dev)
    return {
        **{k: run[k] for k in ("study", "dataset", "model", "variant", "seed")},
        "final_acc": history[-1]["eval_acc"],
        "final_epoch": history[-1]["epoch"],
        "best_acc": best["eval_acc"],
        "best_epoch": best["epoch"],
        **selected,
        "final_acc_per_class": history[-1]["eval_acc_per_class"],
        "eval_split": data.eval_split,
        "train_split": "train",
        "num_train": len(data.train.labels),
        "num_eval": len(data.eval.labels),
        "dataset_source": data.manifest["source"],
        "wall_s": sum(r["wall_s"] for r in history),
        "train_images_per_s": train_images / train_time,
        "peak_mem_mb": max(r["peak_mem_mb"] for r in history),
        "peak_mem_kind": memory_kind,
        "device": dev.type,
        "device_name": device_name(dev),
        "speed": speed.as_dict(),
        "num_params": num_params,
        "resumed_at": sessions[1:],  # [epochs done, batches done in the next epoch]
        "run": run,
        "train_config": dataclasses.asdict(cfg),
        "versions": {
            "curriculum_bench": __version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
