"""The one training engine every study uses: `train_one_epoch`, `evaluate`, `fit`.

Data lives in memory (on the GPU when there is one) as uint8 tensors; a batch is formed by
indexing with the sample indices of this epoch's order, and those indices travel with the
batch to every hook. Methods change the run only through hooks (train/hooks.py), which see
the run through one TrainState.
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..data.augment import MixConfig, mix_batch
from ..data.loader import MappedSplit, ResidentSplit, open_split
from ..data.store import atomic_write_bytes, read_manifest
from ..models import create_model
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Run, TrainConfig
from .hooks import Hook, Stream, TrainState, build_hooks, seeded_generator
from .identity import model_files, run_identity, run_inputs, why_not_resume
from .pipeline import InputPipeline, to_inputs
from .recipe import check_recipe, classification_loss, clip_gradients, hard_labels, split_weight_decay
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

# Every run is scored on its store's test split; metrics.json names it for the tables.
EVAL_SPLIT = "test"


def log(message: str) -> None:
    print(message, flush=True)


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Data:
    train: ResidentSplit | MappedSplit
    eval: ResidentSplit | MappedSplit  # the store's test split (EVAL_SPLIT)
    classes: list[str]
    manifest: dict
    in_shape: tuple[int, int, int]
    val: ResidentSplit | MappedSplit | None = None  # held out of train (derived `validation_tail`)


def load_data(store_dir: Path, device: torch.device, placement: str = "auto", workers: int = 4) -> Data:
    manifest = read_manifest(store_dir)
    train = open_split(store_dir, "train", device, placement, workers)
    test = open_split(store_dir, EVAL_SPLIT, device, placement, workers)
    val = open_split(store_dir, "val", device, placement, workers) if "val" in manifest["splits"] else None
    return Data(train, test, manifest["classes"], manifest, tuple(manifest["image_shape"]), val=val)


# --- setup: the model, its optimiser and the state hooks see -------------------------------------

# Every name train.config.OPTIMIZERS accepts (TrainConfig refuses any other).
OPTIMIZER_CLASSES = {
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamax": torch.optim.Adamax,
}


def build_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, speed: Speed = Speed(), groups: list[dict] | None = None
) -> torch.optim.Optimizer:
    """`cfg.optimizer` over a method's parameter `groups`, or over all parameters as one group;
    with `no_weight_decay_on_norm_and_bias`, each group split into its decayed part and its
    norms and biases at weight decay 0 (train/recipe.py)."""
    groups = groups or [{"params": list(model.parameters())}]
    if cfg.no_weight_decay_on_norm_and_bias:
        groups = split_weight_decay(model, groups)
    for group in groups:
        group.setdefault("lr_scale", 1.0)  # a hook's per-group multiplier of the base schedule
    optimizer_cls = OPTIMIZER_CLASSES[cfg.optimizer]
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, **optimizer_kernel_args(optimizer_cls, speed)}
    if cfg.optimizer == "sgd":
        kwargs.update(momentum=cfg.momentum, nesterov=cfg.nesterov)
    return optimizer_cls(groups, **kwargs)


def method_param_groups(state: TrainState, hooks: list[Hook]) -> list[dict] | None:
    """The one method's parameter groups (LeRaC's blocks, layer-wise LRs), or None."""
    groups, owner = None, None
    for hook in hooks:
        hook_groups = hook.param_groups(state, state.model)
        if hook_groups is not None:
            if owner is not None:
                raise ValueError(f"two methods define parameter groups: {owner} and {hook.name}")
            groups, owner = hook_groups, hook.name
    return groups


def build_state(
    run: Run,
    data: Data,
    hooks: list[Hook],
    device: torch.device,
    speed: Speed,
    out_dir: Path | None = None,
    data_dir: Path | None = None,
) -> TrainState:
    """The model (seeded), the module a step calls, the optimiser and the input pipeline, as
    `fit` trains them, in one TrainState."""
    cfg = run.train
    torch.manual_seed(run.seed)  # model initialisation and dropout
    model = create_model(run.model, data.in_shape, len(data.classes), **run.model_args).to(device)
    state = TrainState(
        model,
        None,
        device,
        data.train.labels,
        len(data.classes),
        cfg.epochs,
        seed=run.seed,
        out_dir=out_dir,
        data_dir=None if data_dir is None else Path(data_dir),
        data=data,
        train_config=cfg,
        pipeline=InputPipeline(cfg, device),
        speed=speed,
        forward=prepare_model(model, speed, eager_on_compile_error=cfg.compile == "auto"),
    )
    state.optimizer = build_optimizer(model, cfg, speed, method_param_groups(state, hooks))
    return state


# --- the epoch -----------------------------------------------------------------------------------


def mix_config(cfg: TrainConfig) -> MixConfig | None:
    """The batch mixing train.mixup_alpha / cutmix_alpha ask for, or None (off)."""
    if not cfg.mixes:
        return None
    return MixConfig(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_prob, cfg.mix_switch_prob, cfg.label_smoothing)


def epoch_order(state: TrainState, hooks: list[Hook]) -> torch.Tensor:
    """This epoch's sample indices: a method's sampler, or a shuffle of the training split."""
    generator = seeded_generator(state.seed, state.epoch, Stream.ORDER)
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
    state: TrainState, hooks: list[Hook], resume: EpochProgress | None = None, should_stop=lambda: False
) -> dict | EpochProgress:
    """Train epoch `state.epoch`; returns its statistics, or an EpochProgress if `should_stop()`
    said so after a step. `resume` continues an epoch that stopped that way."""
    cfg, model, optimizer, speed = state.train_config, state.model, state.optimizer, state.speed
    accumulate = cfg.grad_accumulation_steps  # batches per optimiser step (train/recipe.py)
    mix = mix_config(cfg)
    model.train()
    order = state.order = epoch_order(state, hooks)
    steps = state.steps_per_epoch = math.ceil(len(order) / cfg.batch_size)
    base_lr = cfg.lr * lr_factor(state.epoch, cfg)
    augment_generator = seeded_generator(state.seed, state.epoch, Stream.AUGMENT)
    # Running sums stay on the device: no host sync per step.
    loss_sum = torch.zeros((), device=state.device)
    correct = torch.zeros((), dtype=torch.long, device=state.device)
    first, seconds_before, predictions = 0, 0.0, 0
    if resume is not None:
        first, seconds_before, predictions = resume.batches_done, resume.train_seconds, resume.predictions
        loss_sum += resume.loss_sum
        correct += resume.correct
        augment_generator.set_state(resume.augment_state)
    start = time.perf_counter()
    batches = state.data.train.batches(order[first * cfg.batch_size :], cfg.batch_size)
    for i, (idx, images, y) in enumerate(batches, start=first):
        state.batch = i
        x = state.pipeline.train(images, augment_generator) if state.augment else to_inputs(images)
        for hook in hooks:
            hook.on_batch_start(state)
        for group in optimizer.param_groups:
            group["lr"] = base_lr * group["lr_scale"]
        for hook in hooks:
            x, y = hook.transform_batch(state, idx, x, y)
        if mix is not None:  # after the hooks' images (HCL mixes blurred batches too): y soft from here
            x, y, _, _ = mix_batch(x, y, state.num_classes, mix, seeded_generator(state.seed, state.step, Stream.MIX))
        begin_step(speed)
        with autocast(speed, state.device):
            logits = state.forward(model_input(state.pipeline.normalize(x), speed))
            loss = classification_loss(logits, y, cfg.label_smoothing)
            for hook in hooks:
                loss = hook.loss(state, idx, logits, y, loss)
        for hook in hooks:
            hook.after_forward(state, idx, logits.detach(), y)
        loss = loss.mean()
        if i % accumulate == 0:
            optimizer.zero_grad(set_to_none=True)
        # HCL divides by the steps in every window, the epoch's shorter last one too.
        (loss / accumulate if accumulate > 1 else loss).backward()
        stepped = (i + 1) % accumulate == 0 or i + 1 == steps
        if stepped:
            clip_gradients(model, cfg)
            optimizer.step()
            for hook in hooks:
                hook.after_step(state)
        state.step += 1
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == hard_labels(y)).sum()
        predictions += len(y)  # a hook may score several views per image
        if (i + 1) % cfg.log_every == 0 or i + 1 == steps:
            # .item() waits for the device: only on a progress line.
            seen, elapsed = min((i + 1) * cfg.batch_size, len(order)), time.perf_counter() - start
            log(
                f"epoch {state.epoch + 1}/{state.epochs} [{i + 1:>{len(str(steps))}}/{steps}] "
                f"loss {loss.item():.4f} (avg {loss_sum.item() / seen:.4f}) lr {base_lr:.3g} "
                f"{(seen - first * cfg.batch_size) / elapsed:.0f} img/s "
                f"eta {elapsed / (i + 1 - first) * (steps - i - 1):.0f}s"
            )
        if should_stop() and i + 1 < steps and stepped:  # never inside an accumulation window
            seconds = seconds_before + time.perf_counter() - start
            return EpochProgress(
                i + 1, loss_sum.item(), int(correct.item()), seconds, 0.0, augment_generator.get_state(), predictions
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


def evaluate_splits(state: TrainState) -> dict:
    """The epoch's scores on the test split (`eval_*`) and, when the store holds one, on the
    validation split that selects the reported epoch (`val_*`)."""
    data, batch_size = state.data, state.train_config.eval_batch_size
    args = (state.pipeline, len(data.classes), batch_size, state.speed, state.forward)
    record = evaluate(state.model, data.eval, *args)
    if data.val is not None:
        val = evaluate(state.model, data.val, *args)
        record.update(val_loss=val["eval_loss"], val_acc=val["eval_acc"])
    return record


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


# --- the run's record and its checkpoint ---------------------------------------------------------


@dataclass
class RunLog:
    """What the run has done so far, as its checkpoint carries it between sessions."""

    history: list[dict] = field(default_factory=list)  # one history.jsonl record per finished epoch
    # [epochs done, batches done in the next epoch] at each (re)start; metrics.json's resumed_at.
    sessions: list[list[int]] = field(default_factory=lambda: [[0, 0]])
    progress: EpochProgress | None = None  # the epoch a SIGTERM stopped, to be finished exactly


def save_training(path: Path, run: Run, identity: dict, state: TrainState, hooks: list[Hook], run_log: RunLog) -> None:
    save_checkpoint(
        path,
        {
            "run": run.resolved,
            "identity": identity,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "hooks": {h.name: h.state_dict() for h in hooks},
            "history": run_log.history,
            "step": state.step,
            "sessions": run_log.sessions,
            "progress": run_log.progress,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if state.device.type == "cuda" else None,
            },
        },
    )


def resume_training(path: Path, identity: dict, state: TrainState, hooks: list[Hook]) -> RunLog:
    """Restore model, optimiser, hooks, step and RNG from the checkpoint at `path` and return its
    log; a fresh log when there is none, or when it belongs to another identity (said why)."""
    checkpoint = load_checkpoint(path)
    if checkpoint is not None and (reason := why_not_resume(checkpoint, identity, state.epochs)):
        log(f"checkpoint {path} is not resumed: {reason}; starting afresh")
        checkpoint = None
    if checkpoint is None:
        return RunLog()
    state.model.load_state_dict(checkpoint["model"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    for hook in hooks:
        hook.load_state_dict(checkpoint["hooks"].get(hook.name, {}))
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if state.device.type == "cuda" and checkpoint["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
    state.step = checkpoint["step"]
    history, progress = checkpoint["history"], checkpoint["progress"]
    batches_done = progress.batches_done if progress else 0
    log(
        f"resuming {path} after epoch {len(history)}/{state.epochs}"
        + (f" and {batches_done} batches of the next" if progress else "")
    )
    return RunLog(history, checkpoint["sessions"] + [[len(history), batches_done]], progress)


# --- the run ---------------------------------------------------------------------------------------


def fit(
    run: Run | dict,
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

    `run` is a Run, or the run config (JSON object) it is built from. Resumes from
    `checkpoint_path` when it was written for the same run config and the same content of
    every input (train/identity.py), and was not already finished. `stop_after_epoch` ends
    the session after that many epochs without writing metrics, like a preemption (used by
    tests). `placement` keeps the data in device memory ("memory"), memory-mapped ("mmap",
    read by `loader_workers` workers) or decides by size ("auto"); it does not change results.
    `compile_cache` keeps torch.compile's kernels for the next job (train/speed.py).
    """
    run = run if isinstance(run, Run) else Run.from_dict(run)
    cfg, data_dir, out_dir, checkpoint_path = run.train, Path(data_dir), Path(out_dir), Path(checkpoint_path)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Setup: methods, data, speed switches, model and optimiser, then the hooks' own start.
    hooks = build_hooks(run.methods)
    check_recipe(cfg, run.methods)
    dev = pick_device(device)
    data = load_data(data_dir, dev, placement, loader_workers)
    speed = resolve_speed(cfg, dev, hooks)
    if speed.compile:
        use_compile_cache(compile_cache)
    state = build_state(run, data, hooks, dev, speed, out_dir, data_dir)
    for hook in hooks:
        hook.on_fit_start(state)
    inputs = read_inputs(run, state, hooks)
    identity = run_identity(run.resolved, inputs)
    run_log = resume_training(checkpoint_path, identity, state, hooks)
    log(
        f"run {run.name}: {len(data.train.labels)} train / {len(data.eval.labels)} {EVAL_SPLIT} images "
        f"({type(data.train).__name__}), {count_parameters(state.model):,} parameters, "
        f"{len(state.optimizer.param_groups)} parameter group(s), device {device_name(dev)} "
        f"({speed.describe()}), methods {list(run.methods) or 'none'}"
    )

    with TerminationFlag() as terminated:
        for epoch in range(len(run_log.history), cfg.epochs):
            epoch_start = time.perf_counter() - (run_log.progress.wall_seconds if run_log.progress else 0.0)
            state.epoch = epoch
            for hook in hooks:
                hook.on_epoch_start(state)
            stats = train_one_epoch(state, hooks, run_log.progress, should_stop=lambda: terminated.raised)
            if isinstance(stats, EpochProgress):  # SIGTERM: keep the epoch so far, exit for a retry
                stats.wall_seconds = time.perf_counter() - epoch_start
                run_log.progress = stats
                save_training(checkpoint_path, run, identity, state, hooks, run_log)
                log(
                    f"SIGTERM: checkpointed epoch {epoch + 1} after {stats.batches_done} batches "
                    f"to {checkpoint_path}; the same command resumes from there"
                )
                raise Preempted(checkpoint_path)
            run_log.progress = None
            record = end_epoch(state, hooks, stats, epoch_start)
            run_log.history.append(record)
            # Checkpoint, then the history the tables read.
            save_training(checkpoint_path, run, identity, state, hooks, run_log)
            write_jsonl(out_dir / "history.jsonl", run_log.history)
            log(
                f"epoch {epoch + 1}/{cfg.epochs} done: train loss {record['train_loss']:.4f} "
                f"acc {record['train_acc']:.4f} | {EVAL_SPLIT} loss {record['eval_loss']:.4f} "
                f"acc {record['eval_acc']:.4f} | {record['wall_s']:.1f}s"
            )
            if stop_after_epoch is not None and stop_after_epoch <= epoch + 1 < cfg.epochs:
                log(f"stopping after epoch {epoch + 1} as asked; rerun to resume")
                return None

    return finish_run(run, state, hooks, run_log, inputs)


def read_inputs(run: Run, state: TrainState, hooks: list[Hook]) -> dict[str, dict[str, str]]:
    """{role: {path, sha256}} of the dataset store and every file the model or a method reads."""
    files = model_files(run.model_args)
    for hook in hooks:
        files.update(hook.input_files(state))
    return run_inputs(state.data_dir, state.data.manifest, files)


def end_epoch(state: TrainState, hooks: list[Hook], stats: dict, epoch_start: float) -> dict:
    """The history.jsonl record of the epoch just trained: its evaluation, the hooks' end of
    epoch and their logs, each group's LR at the last step, and what the epoch cost."""
    record = {"epoch": state.epoch + 1, **stats, **evaluate_splits(state)}
    for hook in hooks:
        hook.on_epoch_end(state)
    record["lr"] = [group["lr"] for group in state.optimizer.param_groups]
    for hook in hooks:
        record.update({f"{hook.name}/{k}": v for k, v in hook.epoch_log(state).items()})
    record["images_per_s"] = record["train_images"] / record["train_time_s"]
    record["peak_mem_mb"], _ = peak_memory_mb(state.device)
    record["wall_s"] = time.perf_counter() - epoch_start
    return record


def finish_run(run: Run, state: TrainState, hooks: list[Hook], run_log: RunLog, inputs: dict) -> dict:
    """Write the run's artifacts, then metrics.json, its "finished" marker, last and atomically."""
    out_dir = state.out_dir
    write_jsonl(out_dir / "history.jsonl", run_log.history)
    for hook in hooks:
        hook.on_fit_end(state)  # per-run artifacts, written before the "finished" marker
    # Final weights: a teacher for distillation, a proxy for a coreset, a versioned artifact.
    save_checkpoint(out_dir / "final_model.pt", state.model.state_dict())
    metrics = summarize_run(run, state, run_log, inputs)
    atomic_write_bytes(out_dir / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    log(
        f"final {EVAL_SPLIT} acc {metrics['final_acc']:.4f}, best {metrics['best_acc']:.4f} "
        f"(epoch {metrics['best_epoch']}), {metrics['wall_s']:.0f}s -> {out_dir / 'metrics.json'}"
    )
    return metrics


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summarize_run(run: Run, state: TrainState, run_log: RunLog, inputs: dict) -> dict:
    """metrics.json: the scores, what they cost, and what produced them (config, inputs, versions)."""
    history, data, dev = run_log.history, state.data, state.device
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
        "study": run.study,
        "dataset": run.dataset,
        "model": run.model,
        "variant": run.variant,
        "seed": run.seed,
        "final_acc": history[-1]["eval_acc"],
        "final_epoch": history[-1]["epoch"],
        "best_acc": best["eval_acc"],
        "best_epoch": best["epoch"],
        **selected,
        "final_acc_per_class": history[-1]["eval_acc_per_class"],
        "eval_split": EVAL_SPLIT,
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
        "speed": state.speed.as_dict(),
        "num_params": count_parameters(state.model),
        "resumed_at": run_log.sessions[1:],  # [epochs done, batches done in the next epoch]
        "run": run.resolved,
        "train_config": dataclasses.asdict(run.train),
        "versions": {
            "curriculum_bench": __version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "inputs": inputs,  # path and sha256 of everything the run read
    }
