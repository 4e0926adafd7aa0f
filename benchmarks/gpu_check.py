"""One GPU check: proves the GPU path of every paper code path and measures its speed, in one
command, within about 8 minutes on one H100/H200-class GPU (issue #25).

    python benchmarks/gpu_check.py --out gpu_check/                     # on the GPU
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gc    # CPU smoke run, about 1 min

Correctness (exit code 1 when any of these fails):
    paths         the paper smoke set (curriculum_bench.smoke on config/paper.yaml, nothing
                  hand-copied) cut to the fewest runs that reach each model at each input size
                  it meets in the paper, each method and a run with no method; each trains on
                  learnable synthetic images of its dataset's shape, once with its speed switches
                  as the paper sets them (`auto`: all on on a GPU) and once with all of them off
    losses        the two runs' first-step loss and last-epoch mean loss agree within the bf16
                  tolerances below
    eval loss     the switched-on run's eval path (compiled, bf16) gives its weights the eval loss
                  the plain fp32 eager model gives them
    host sync     no step of the last epoch waits for the device: torch.cuda.set_sync_debug_mode
                  on a GPU; on the CPU the dispatch-mode audit of tests/test_speed.py
    cuda graphs   the compiled paths replay CUDA graphs in the last epoch, with no step skipped
    compile cache a second process with the same compile cache compiles the cheapest compiled
                  path again and finds every graph in the cache

Speed (reported with pass/miss against the issue's targets; a miss does not fail the command, a
benchmark that crashes does):
    engine_speed.py at each study's batch (engine vs the plain DataLoader + PIL loop, the data
    share, the model-only ceiling), ResNet-18 per-epoch time on CIFAR-shaped data at batch 128 and
    512, and packed_runs.py (4 packed runs vs 1), each a ratio measured in this process.

Writes OUT/gpu_check.json and OUT/gpu_check.md. Each section has a time budget (BUDGET_S); once it
is spent a section starts nothing new and lists what it left as skipped (--ignore-budget runs all).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import engine_speed
import numpy as np
import packed_runs
import torch
import yaml
from common import (
    CASES,
    QUICK,
    SPEED_OFF,
    device_name,
    engine_run,
    load_resident,
    quiet,
    synthetic_split,
    write_synthetic_store,
)
from torch.utils._python_dispatch import TorchDispatchMode

from curriculum_bench import smoke
from curriculum_bench.config import resolve_run, run_dir
from curriculum_bench.coreset import plan as coreset_plan
from curriculum_bench.data.store import Split, write_store
from curriculum_bench.models import create_model
from curriculum_bench.train.config import Run
from curriculum_bench.train.engine import build_state, evaluate, load_data, train_one_epoch
from curriculum_bench.train.hooks import Hook, TrainState, build_hooks
from curriculum_bench.train.speed import HOST_SYNC_OPS, Speed, resolve_speed, use_compile_cache

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config/paper.yaml"
EXIT_OK, EXIT_CORRECTNESS_FAILED = 0, 1  # argparse exits 2 on a bad command line

# --- tolerances: switches on vs all off -----------------------------------------------------------
# bf16 keeps 8 significant bits (0.4 % per rounding); through a deep network the first loss moves
# by about 1 %, and dropout draws differ between eager and compiled code (inductor has its own
# RNG), a few % of one batch's loss at most. A wrong layout or a stale graph output moves it more.
FIRST_STEP_RTOL = 0.05  # also the eval loss of the same weights through either eval path
SAME_WEIGHTS_ATOL = 0.01  # nats: a near-perfect model's loss (1e-4) has no meaningful relative error
# After a few dozen steps the rounding differences have grown (training amplifies them), but both
# runs learn the same class templates: a step that does not update the weights, or updates the
# wrong ones, stays near ln(classes) while the other falls, far outside this.
TRAINED_RTOL, TRAINED_ATOL = 0.2, 0.1  # on the last epoch's mean loss (atol in nats)

# --- sizes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much each section does: the GPU sizes fit the 8 minutes, --quick fits a CPU minute."""

    epochs: int  # per path and mode; the first compiles and captures, the last is audited
    steps: int  # full batches per epoch (hooks that subsample train fewer)
    max_batch: int  # a path trains at its paper batch, at most this
    max_image: int | None  # None: every path at its paper input size; else larger images shrink to it
    engine_images: dict  # engine_speed.py case -> synthetic images (its timed epoch and warm-up epoch)
    engine_batch: dict  # engine_speed.py case -> batch, where not the study's
    ceiling_steps: tuple[int, int]  # (timed, warm-up) model-only steps
    epoch_batches: tuple[int, int]  # ResNet-18 per-epoch time at these batches
    epoch_images: int  # synthetic images per ResNet-18 epoch (the time is scaled to CIFAR's 50,000)
    packed_images: int  # per packed run
    packed: tuple[int, int]  # (runs packed together, vs this many)
    workers: int  # DataLoader workers of the plain loop
    shrink_shapes: dict = field(default_factory=dict)  # engine_speed.py case -> image shape


GPU_SIZES = Sizes(
    epochs=2,
    steps=16,  # 2 x 16 = 32 steps: "a few dozen"
    max_batch=64,  # BatchNorm and bf16 kernels at a real batch; CUDA graphs apply up to 256
    max_image=None,
    # A timed epoch of 200 ResNet-18 / 600 ConvNet / 30 ConvNeXt steps: seconds each, enough
    # for a stable rate; the studies' full epochs would take the whole budget.
    engine_images={"resnet18_cifar": 25_600, "mlt_convnet": 19_200, "convnext_tiny": 3_840},
    engine_batch={},
    ceiling_steps=(50, 10),
    epoch_batches=(128, 512),
    epoch_images=25_600,
    packed_images=19_200,  # 600 steps of 32 per run
    packed=(4, 1),
    workers=min(8, os.cpu_count() or 1),
)
# The same code paths on a 2-core CPU in about a minute; measures nothing.
QUICK_SIZES = Sizes(
    epochs=1,
    steps=2,  # the sync audit sees one step between two; half the set (a coreset) is 1 step: skipped
    max_batch=smoke.SMOKE_BATCH,
    max_image=32,  # ConvNeXt and CvT at 224 px take seconds per CPU step
    # One batch per epoch, at engine_speed.py --quick's batches and shapes.
    engine_images={name: quick["batch_size"] for name, quick in QUICK.items()},
    engine_batch={name: quick["batch_size"] for name, quick in QUICK.items()},
    ceiling_steps=(1, 1),
    epoch_batches=(8, 16),
    epoch_images=16,
    packed_images=64,
    packed=(2, 1),  # each run is a process importing torch: 4 of them take most of a CPU minute
    workers=1,
    shrink_shapes={name: quick["shape"] for name, quick in QUICK.items() if "shape" in quick},
)
CIFAR_TRAIN_IMAGES = 50_000  # a per-epoch time is for this many images

# Seconds per section on the GPU (7 min 15 s in all, the rest for start-up and the item a section
# is in when its budget runs out). Estimates: nothing here has run on a GPU yet. A section starts
# no new item once its budget (plus what earlier sections left unused) is spent.
BUDGET_S = {"correctness": 225, "compile_cache": 30, "engine_speed": 110, "epoch_time": 25, "packed_runs": 45}
QUICK_BUDGET_S = dict.fromkeys(BUDGET_S, 300)  # never binding: --quick must run every path

# The targets, on an H100: (figure, at least / at most, bound).
TARGETS = [
    ("resnet18_cifar engine / plain", ">=", 2.5),
    ("mlt_convnet engine / plain", ">=", 4.0),
    ("resnet18_cifar data share", "<=", 0.10),
    ("mlt_convnet data share", "<=", 0.10),
    ("convnext_tiny data share", "<=", 0.10),
    ("4 packed runs / 1", ">=", 3.0),
]

# --- progress and results -------------------------------------------------------------------------

START = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f}s] {message}", flush=True)


@dataclass
class Check:
    name: str
    status: str  # pass | fail | skipped
    detail: str = ""


def skipped(name: str, why: str) -> Check:
    return Check(name, "skipped", why)


def verdict(name: str, ok: bool, detail: str) -> Check:
    return Check(name, "pass" if ok else "fail", detail)


class Budget:
    """A section's time budget: `spent()` once its seconds are used (never with --ignore-budget)."""

    def __init__(self, name: str, seconds: float, enforce: bool):
        self.name, self.seconds, self.enforce = name, seconds, enforce
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self) -> bool:
        return self.enforce and self.elapsed() > self.seconds

    def why(self) -> str:
        return f"the {self.name} budget of {self.seconds:.0f}s was spent (--ignore-budget runs it)"


# --- the paths: the paper smoke set cut to one run per model, input size and method --------------


@dataclass
class CheckPath:
    name: str  # study/dataset/model/variant
    run: dict  # the paper's resolved run, cut to the check's sizes
    shape: tuple[int, int, int]  # stored images (C, H, W) as trained here
    paper_shape: tuple[int, int, int]
    classes: int
    val: bool  # the dataset holds a validation tail out of train
    covers: list[str]  # the paper features this path was chosen to reach
    weights: list = field(default_factory=list)  # smoke.Weights files its model args read


def feature_name(feature: tuple) -> str:
    if feature[0] == "model":
        return f"model {feature[1]} at {'x'.join(map(str, feature[2]))}"
    if feature[0] == "methods":
        return "no method"
    return f"method {feature[1]}"


def path_features(run: dict, datasets: dict) -> set[tuple]:
    """What a GPU can get wrong differently: the model at its input shape, each method, no method."""
    primary, _ = smoke.run_features(run, datasets)
    return {f for f in primary if f[0] in ("model", "method") or f == ("methods", ())}


def paper_features(plan: smoke.SmokePlan) -> list[str]:
    datasets = plan.runs_config["datasets"]
    features = set().union(*(path_features(r, datasets) for runs in plan.selected.values() for r in runs))
    return sorted(feature_name(f) for f in features)


def select_runs(plan: smoke.SmokePlan) -> list[tuple[dict, list[str]]]:
    """The fewest smoke runs (greedy) reaching every path feature, cheapest first to run."""
    datasets = plan.runs_config["datasets"]
    candidates = [run for runs in plan.selected.values() for run in runs]
    features = [path_features(run, datasets) for run in candidates]
    uncovered = set().union(*features)
    chosen = []
    while uncovered:
        best = max(
            range(len(candidates)),
            key=lambda i: (len(features[i] & uncovered), -smoke.run_cost(candidates[i], datasets), -i),
        )
        chosen.append((candidates[best], sorted(feature_name(f) for f in features[best] & uncovered)))
        uncovered -= features[best]
    return sorted(chosen, key=lambda pair: smoke.run_cost(pair[0], datasets))


def paper_run(paper: dict, smoke_run: dict) -> dict:
    """The same run resolved from config/paper.yaml itself: real batch, epochs and counts."""
    key = (smoke_run["dataset"], smoke_run["model"], smoke_run["variant"], smoke_run["seed"])
    if smoke_run["study"] == coreset_plan.STUDY:
        return coreset_plan.resolve_coreset_run(paper, *key)
    return resolve_run(paper, smoke_run["study"], *key)


def dataset_classes(datasets: dict, name: str) -> int:
    info = smoke.dataset_info(datasets, name)
    if info.root_source in smoke.CLASSES:
        return smoke.CLASSES[info.root_source]
    # An image-folder dataset's classes are its folders; smoke.py tells ImageNet-100 (Kaggle's
    # layout) from a full ImageNet the same way.
    layout = {raw.dataset: raw.layout for raw in smoke.smoke_datasets(datasets)[1]}
    root = name
    while datasets[root]["source"] == "derived":
        root = datasets[root]["from"]
    return 100 if layout.get(root) == "kaggle" else 1000


def shrink_run(run: dict, size: int) -> None:
    """--quick: images, crops and a model's internal resize larger than `size` at `size`."""
    for op in run["train"].get("augment") or []:
        if op.get("size", 0) > size:
            op["size"] = size
    if (run["model_args"].get("input_size") or 0) > size:
        run["model_args"]["input_size"] = size


def check_path(paper: dict, smoke_run: dict, covers: list[str], sizes: Sizes) -> CheckPath:
    datasets = paper["datasets"]
    run = copy.deepcopy(paper_run(paper, smoke_run))
    info = smoke.dataset_info(datasets, run["dataset"])
    shape = info.shape
    if sizes.max_image and shape[1] > sizes.max_image:
        shape = (shape[0], sizes.max_image, sizes.max_image)
    if sizes.max_image:
        shrink_run(run, sizes.max_image)
    batch = min(run["train"]["batch_size"], sizes.max_batch)
    # Progress lines read the loss from the device, a sync by design: none inside the check.
    run["train"].update(batch_size=batch, log_every=10**9)
    if info.real_train:  # draws per epoch (weighted sampling) scaled like the dataset
        smoke.scale_method_counts(run["methods"], batch * sizes.steps / info.real_train)
    weights: dict = {}
    smoke.relocate_weights({run["model"]: run["model_args"]}, "model_args", weights)
    name = "/".join(run[k] for k in ("study", "dataset", "model", "variant"))
    val = any(step == "subset:validation_tail" for step in info.derivation)
    classes = dataset_classes(datasets, run["dataset"])
    return CheckPath(name, run, shape, info.shape, classes, val, covers, list(weights.values()))


def check_paths(sizes: Sizes) -> tuple[list[CheckPath], list[str]]:
    """(the paths to train, every feature of the paper smoke set)."""
    paper = yaml.safe_load(PAPER.read_text())
    plan = smoke.smoke_plan(paper)
    paths = [check_path(paper, run, covers, sizes) for run, covers in select_runs(plan)]
    return paths, paper_features(plan)


# --- synthetic data that can be learnt ------------------------------------------------------------

TEMPLATE_CELLS = 4  # each class is a 4 x 4 grid of colours: coarse enough to survive crops and blur


def class_templates(shape: tuple[int, int, int], classes: int, rng: np.random.Generator) -> np.ndarray:
    """(classes, C, H, W) uint8: each class a coarse grid of random colours at full size."""
    channels, height, width = shape
    cells = rng.integers(0, 256, (classes, channels, TEMPLATE_CELLS, TEMPLATE_CELLS), dtype=np.uint8)
    rows = np.arange(height) * TEMPLATE_CELLS // height
    cols = np.arange(width) * TEMPLATE_CELLS // width
    return cells[:, :, rows][:, :, :, cols]


def class_images(n: int, templates: np.ndarray, rng: np.random.Generator) -> Split:
    """Each image its class's template under 30 % noise: random pixels would leave the loss at
    ln(classes) whatever the step does, so a step that does not learn would pass."""
    labels = rng.integers(0, len(templates), n)
    images = np.empty((n, *templates.shape[1:]), dtype=np.uint8)
    for start in range(0, n, 256):  # in chunks: 224 px images in float would take GBs
        clean = templates[labels[start : start + 256]].astype(np.float32)
        noise = rng.integers(0, 256, clean.shape).astype(np.float32)
        images[start : start + 256] = (0.7 * clean + 0.3 * noise).astype(np.uint8)
    return Split(images, labels.astype(np.int64))


def write_path_store(path: CheckPath, directory: Path, steps: int) -> Path:
    """`steps` full batches to train on, one batch to evaluate (and one of validation), all of
    the same class templates."""
    batch = path.run["train"]["batch_size"]
    rng = np.random.default_rng(0)
    templates = class_templates(path.shape, path.classes, rng)
    splits = {"train": class_images(batch * steps, templates, rng), "test": class_images(batch, templates, rng)}
    if path.val:
        splits["val"] = class_images(batch, templates, rng)
    write_store(directory, splits, [str(c) for c in range(path.classes)], {"name": "gpu_check synthetic"})
    return directory


def write_weights(weights: smoke.Weights) -> None:
    """A model file a path's model args read (an ImageNet checkpoint: 1000 classes, a linear head),
    randomly initialised, as tests/fabricate.py writes it for the paper smoke run."""
    path = Path(weights.path)
    if path.exists():
        return
    args = dict(weights.model_args)
    if weights.key == "pretrained":
        args = {k: v for k, v in args.items() if k not in ("freeze_backbone", "dropout")}
        args["head"] = "linear"
    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(create_model(weights.model, (3, 224, 224), 1000, **args).state_dict(), path)


def selection(n: int, batch: int) -> dict:
    """A coreset selection: the first half of the batches, rounded up. Whole batches, as BatchNorm
    cannot train on a batch of one."""
    kept = math.ceil(n // batch / 2) * batch
    return {"indices": list(range(kept)), "num_train": n}


def write_hook_inputs(hooks: list[Hook], state: TrainState) -> None:
    """Files a method reads from other runs (a teacher, a transfer checkpoint, a coreset
    selection), written where it looks for them: what the workflow's upstream jobs would write."""
    for hook in hooks:
        for role, path in hook.input_files(state).items():
            path = Path(path)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if role.endswith("selection"):
                path.write_text(json.dumps(selection(len(state.train_labels), state.train_config.batch_size)))
            else:  # a state dict of the run's own model (teacher and checkpoint of the same architecture)
                torch.save({k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}, path)


# --- audits ---------------------------------------------------------------------------------------


# On the CPU every tensor is a host tensor, so the audit cannot tell a read of the device from a
# read of parameters that a GPU run also draws on the CPU: data/augment.py draws crops, flips and
# blur choices from a CPU generator and picks from them there, by design (its docstring), and
# data/policies.py draws RandAugment / AutoAugment ops and magnitudes per sample the same way.
HOST_SIDE_MODULES = ("curriculum_bench/data/augment.py", "curriculum_bench/data/policies.py")


def caller() -> str:
    """file:line of the innermost curriculum_bench frame calling the current op."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename.replace(os.sep, "/")
        if "curriculum_bench/" in path:
            return f"{path[path.rindex('curriculum_bench/') :]}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class DispatchSyncAudit(TorchDispatchMode):
    """CPU: every op in HOST_SYNC_OPS, and indexing with a boolean mask (which is one), with where
    it was called; those called from HOST_SIDE_MODULES go to `host_side`, not `calls`."""

    kind = "dispatch-mode audit of host-sync ops (tests/test_speed.py)"

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []
        self.host_side: list[str] = []

    @property
    def count(self) -> int:
        return len(self.calls)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in ("index", "index_put", "index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or [])
        ):
            name = f"{name} with a boolean mask"
        elif name not in HOST_SYNC_OPS:
            return func(*args, **(kwargs or {}))
        where = caller()
        host_side = any(where.startswith(module) for module in HOST_SIDE_MODULES)
        (self.host_side if host_side else self.calls).append(f"{name} at {where}")
        return func(*args, **(kwargs or {}))


class CudaSyncAudit:
    """CUDA: torch.cuda.set_sync_debug_mode("warn") warns at every synchronising CUDA call, and
    sees compiled code and graph replays, which a dispatch mode does not."""

    kind = "torch.cuda.set_sync_debug_mode('warn')"

    def __enter__(self):
        self._warnings = warnings.catch_warnings(record=True)
        self.records = self._warnings.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        self._warnings.__exit__(*exc)

    @property
    def calls(self) -> list[str]:
        return [str(w.message).splitlines()[0] for w in self.records if "synchroniz" in str(w.message)]

    @property
    def count(self) -> int:
        return len(self.calls)


class GraphReplays:
    """Counts torch.cuda.CUDAGraph.replay calls (compile's reduce-overhead mode replays these)."""

    def __enter__(self):
        self.count = 0
        self._original = original = torch.cuda.CUDAGraph.replay

        def replay(graph, *args, **kwargs):
            self.count += 1
            return original(graph, *args, **kwargs)

        torch.cuda.CUDAGraph.replay = replay
        return self

    def __exit__(self, *exc):
        torch.cuda.CUDAGraph.replay = self._original


class StepProbe(Hook):
    """Not a method: the check's own last hook. Marks each step's start for the sync audit and
    keeps each step's mean loss on the device (no sync). `loss_scale` != 1 (--inject-mismatch)
    changes what the step computes, as a broken switch would."""

    name = "gpu_check_probe"

    def __init__(self, loss_scale: float = 1.0):
        self.loss_scale = loss_scale
        self.audit = None  # the epoch's sync audit, when it is audited
        self.marks: list[int] = []
        self.losses: list[torch.Tensor] = []

    def on_batch_start(self, state: TrainState) -> None:
        if self.audit is not None:
            self.marks.append(self.audit.count)

    def loss(self, state, idx, logits, y, loss):
        loss = loss * self.loss_scale if self.loss_scale != 1 else loss
        self.losses.append(loss.detach().float().mean())
        return loss


# --- training one path in one mode ----------------------------------------------------------------


@dataclass
class ModeResult:
    switches: str  # Speed.describe()
    speed: dict
    losses: list[float]  # per step, all epochs
    last_epoch_losses: list[float]
    eval_loss: float  # this mode's eval path
    eval_loss_eager: float  # the same weights, fp32 eager
    epoch_seconds: list[float]
    syncs_per_step: list[int]  # last epoch, each step but the last (it ends with the epoch's own reads)
    sync_calls: list[str]
    sync_kind: str
    host_side_calls: list[str]  # CPU audit: reads of CPU-drawn parameters, not counted (HOST_SIDE_MODULES)
    replays: int | None  # CUDA graph replays in the last epoch (None: not counted)
    last_epoch_steps: int
    cudagraph_skips: int
    graphs_compiled: int


def check_run(path: CheckPath, fast: bool, device: torch.device) -> Run:
    """The path's run with every speed switch off, or as the paper sets them (`fast`)."""
    train = dict(path.run["train"])
    if not fast:
        train.update(SPEED_OFF)
    elif device.type == "cpu":
        # Fused as on a GPU: the per-tensor optimiser counts its steps in CPU scalars, whose
        # .item() the dispatch audit would flag although they never wait for a device.
        # Channels-last as on a GPU, fp32 whatever the CPU: the same check on every CPU (bf16
        # on the CPU is benchmarks/cpu_speed.py's; at --quick's batch of 2 a deep ResNet's
        # BatchNorm turns bf16 rounding into first-step losses 6-9 % apart).
        train.update(fused_optimizer=True, channels_last=True, precision="fp32")
    return Run.from_dict({**path.run, "train": train})


def dynamo_counter(group: str, key: str) -> int:
    from torch._dynamo.utils import counters

    return int(counters[group][key])


@dataclass
class PathRun:
    """One path in one mode, set up in `fit`'s order (train/engine.py), ready to train epochs."""

    hooks: list[Hook]  # the methods' hooks, then the probe
    probe: StepProbe
    state: TrainState  # state.epochs: the paper's length, as schedules are functions of it


def start_path(path: CheckPath, fast: bool, store: Path, device: torch.device, loss_scale: float) -> PathRun:
    run = check_run(path, fast, device)
    data = load_data(store, device, placement="memory")
    probe = StepProbe(loss_scale)
    hooks = build_hooks(copy.deepcopy(run.methods)) + [probe]
    out_dir = Path(run_dir(run.study, run.dataset, run.model, run.variant, run.seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    state = build_state(run, data, hooks, device, resolve_speed(run.train, device, hooks), out_dir, store)
    write_hook_inputs(hooks, state)
    for hook in hooks:
        hook.on_fit_start(state)
    return PathRun(hooks, probe, state)


def train_epoch(run: PathRun, epoch: int, audit=None, replays=None) -> float:
    """One epoch as `fit` trains it (no evaluation); `audit` marks each step's start."""
    state = run.state
    state.epoch = epoch
    for hook in run.hooks:
        hook.on_epoch_start(state)
    run.probe.audit = audit
    start = time.perf_counter()
    with audit or contextlib.nullcontext(), replays or contextlib.nullcontext(), quiet():
        train_one_epoch(state, run.hooks)
    seconds = time.perf_counter() - start  # train_one_epoch's statistics waited for the device
    run.probe.audit = None
    for hook in run.hooks:
        hook.on_epoch_end(state)
        hook.epoch_log(state)
    return seconds


def train_path(
    path: CheckPath, fast: bool, store: Path, device: torch.device, sizes: Sizes, loss_scale: float = 1.0
) -> ModeResult:
    """Train `path` for sizes.epochs; with `fast`, audit the last epoch's steps."""
    skips_before = dynamo_counter("inductor", "cudagraph_skips")
    graphs_before = dynamo_counter("stats", "unique_graphs")
    run = start_path(path, fast, store, device, loss_scale)
    audit = replays = None
    if fast:
        audit = CudaSyncAudit() if device.type == "cuda" else DispatchSyncAudit()
        replays = GraphReplays() if run.state.speed.cuda_graphs else None
    seconds = [train_epoch(run, epoch) for epoch in range(sizes.epochs - 1)]
    steps_before = len(run.probe.losses)
    seconds.append(train_epoch(run, sizes.epochs - 1, audit, replays))
    state = run.state
    model, eval_args = state.model, (state.data.eval, state.pipeline, len(state.data.classes))
    evaluated = evaluate(model, *eval_args, state.train_config.eval_batch_size, state.speed, state.forward)
    # The same weights through the plain fp32 eager model: the eval path's own error, apart from
    # how far training drifted (an eval of a few dozen steps' BatchNorm statistics is volatile).
    eager = evaluate(model, *eval_args, state.train_config.eval_batch_size, Speed(), model)
    for hook in run.hooks:
        hook.on_fit_end(state)
    losses = torch.stack(run.probe.losses).cpu().tolist()
    marks = run.probe.marks
    return ModeResult(
        switches=state.speed.describe(),
        speed=state.speed.as_dict(),
        losses=losses,
        last_epoch_losses=losses[steps_before:],
        eval_loss=evaluated["eval_loss"],
        eval_loss_eager=eager["eval_loss"],
        epoch_seconds=seconds,
        syncs_per_step=[b - a for a, b in zip(marks[:-1], marks[1:], strict=True)],
        sync_calls=sorted(set(audit.calls)) if audit is not None else [],
        sync_kind=audit.kind if audit is not None else "",
        host_side_calls=sorted(set(getattr(audit, "host_side", []))),
        replays=None if replays is None else replays.count,
        last_epoch_steps=len(losses) - steps_before,
        cudagraph_skips=dynamo_counter("inductor", "cudagraph_skips") - skips_before,
        graphs_compiled=dynamo_counter("stats", "unique_graphs") - graphs_before,
    )


# --- comparing the two modes ----------------------------------------------------------------------


def close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= atol + rtol * abs(b)


def compare(name: str, fast: ModeResult, off: ModeResult, device: torch.device) -> list[Check]:
    checks = []
    first_fast, first_off = fast.losses[0], off.losses[0]
    mean_fast = sum(fast.last_epoch_losses) / len(fast.last_epoch_losses)
    mean_off = sum(off.last_epoch_losses) / len(off.last_epoch_losses)
    ok = (
        close(first_fast, first_off, FIRST_STEP_RTOL)
        and close(mean_fast, mean_off, TRAINED_RTOL, TRAINED_ATOL)
        and all(math.isfinite(x) for x in fast.losses + off.losses)
    )
    checks.append(
        verdict(
            f"{name}: losses",
            ok,
            f"first step {first_fast:.4f} vs {first_off:.4f} (rtol {FIRST_STEP_RTOL}); last epoch mean "
            f"{mean_fast:.4f} vs {mean_off:.4f} (rtol {TRAINED_RTOL} + atol {TRAINED_ATOL})",
        )
    )
    checks.append(
        verdict(
            f"{name}: eval loss",
            close(fast.eval_loss, fast.eval_loss_eager, FIRST_STEP_RTOL, SAME_WEIGHTS_ATOL),
            f"switched-on eval {fast.eval_loss:.4f} vs the same weights in fp32 eager {fast.eval_loss_eager:.4f} "
            f"(rtol {FIRST_STEP_RTOL} + atol {SAME_WEIGHTS_ATOL})",
        )
    )
    steps = len(fast.syncs_per_step)
    if steps == 0:
        checks.append(skipped(f"{name}: host sync", "the last epoch has a single step: no step between two others"))
    else:
        syncing = [i for i, n in enumerate(fast.syncs_per_step) if n]
        checks.append(
            verdict(
                f"{name}: host sync",
                not syncing,
                f"{steps} step{'s' if steps > 1 else ''} of the last epoch audited by {fast.sync_kind}"
                + (f"; steps {syncing} synced: {', '.join(fast.sync_calls)}" if syncing else ": none synced"),
            )
        )
    if device.type != "cuda":
        checks.append(skipped(f"{name}: cuda graphs", "needs CUDA"))
    elif not fast.speed["cuda_graphs"]:
        checks.append(skipped(f"{name}: cuda graphs", f"off for this path ({fast.switches})"))
    else:
        ok = fast.cudagraph_skips == 0 and (fast.replays or 0) >= fast.last_epoch_steps
        checks.append(
            verdict(
                f"{name}: cuda graphs",
                ok,
                f"{fast.replays} replays in {fast.last_epoch_steps} steps of the last epoch; "
                f"inductor skipped graphs {fast.cudagraph_skips} times",
            )
        )
    return checks


# --- section 1: correctness -----------------------------------------------------------------------


@contextlib.contextmanager
def working_directory(directory: Path):
    """Methods read other runs' files by paths relative to the workflow's folder (results/...)."""
    previous = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(previous)


CUDNN_BENCHMARK = torch.backends.cudnn.benchmark  # prepare_model turns it on with channels_last


def release(device: torch.device) -> None:
    """Between runs: dynamo compiles a class's forward for at most 8 model objects, then runs the
    rest eagerly; a reset starts each run afresh (compiled kernels stay in the on-disk cache).
    cuDNN's autotuning, a global that channels_last switched on, goes back to its default, so
    the run with every switch off is that."""
    torch._dynamo.reset()
    torch.backends.cudnn.benchmark = CUDNN_BENCHMARK
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_path(path: CheckPath, device: torch.device, sizes: Sizes, workdir: Path, inject: bool) -> dict:
    store = write_path_store(path, workdir / "stores" / path.name.replace("/", "__"), sizes.steps)
    for weights in path.weights:
        write_weights(weights)
    fast = train_path(path, True, store, device, sizes, loss_scale=2.0 if inject else 1.0)
    release(device)
    off = train_path(path, False, store, device, sizes)
    release(device)
    return {"fast": fast, "off": off, "checks": compare(path.name, fast, off, device)}


def path_record(path: CheckPath, status: str, result: dict | None) -> dict:
    record = {
        "name": path.name,
        "status": status,
        "covers": path.covers,
        "paper_input_shape": list(path.paper_shape),
        "input_shape": list(path.shape),
        "batch_size": path.run["train"]["batch_size"],
        "methods": sorted(path.run["methods"]),
    }
    if result:
        record["switches_on"] = dataclasses.asdict(result["fast"])
        record["switches_off"] = dataclasses.asdict(result["off"])
    return record


def correctness(paths: list[CheckPath], device: torch.device, sizes: Sizes, budget: Budget, inject: bool):
    """(path records, checks)."""
    records, checks = [], []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp, working_directory(Path(tmp)):
        for i, path in enumerate(paths, start=1):
            if budget.spent():
                checks.append(skipped(f"{path.name}: runs", budget.why()))
                records.append(path_record(path, "skipped", None))
                continue
            progress(
                f"correctness {i}/{len(paths)} {path.name} at {'x'.join(map(str, path.shape))}, batch "
                f"{path.run['train']['batch_size']}: switches on, then off"
            )
            try:
                result = run_path(path, device, sizes, Path(tmp), inject)
            except Exception as err:  # one path's failure is reported; the others still run
                traceback.print_exc()
                release(device)
                checks.append(Check(f"{path.name}: runs", "fail", f"{type(err).__name__}: {err}"))
                records.append(path_record(path, "fail", None))
                continue
            ran = Check(f"{path.name}: runs", "pass", f"switches on: {result['fast'].switches}")
            path_checks = [ran, *result["checks"]]
            checks += path_checks
            status = "fail" if any(c.status == "fail" for c in path_checks) else "pass"
            records.append(path_record(path, status, result))
            failed = [c.name.split(": ")[-1] for c in path_checks if c.status == "fail"]
            progress(f"  {status}" + (f": {', '.join(failed)}" if failed else "") + f" ({result['fast'].switches})")
    return records, checks


def coverage(records: list[dict], features: list[str]) -> list[dict]:
    """Each paper feature, the path that reaches it and that path's status."""
    by_feature = {f: r for r in records for f in r["covers"]}
    return [
        {"feature": f, "path": by_feature[f]["name"], "status": by_feature[f]["status"]}
        if f in by_feature
        else {"feature": f, "path": None, "status": "fail"}
        for f in features
    ]


# --- section 1b: the compile cache in a second process --------------------------------------------


def cache_probe(path: CheckPath, device: torch.device, sizes: Sizes) -> dict:
    """In the child: train `path` with its switches on, as the parent did, and count cache use."""
    with tempfile.TemporaryDirectory(prefix="gpu_check_cache_") as tmp, working_directory(Path(tmp)):
        store = write_path_store(path, Path(tmp) / "store", sizes.steps)
        for weights in path.weights:
            write_weights(weights)
        start = time.perf_counter()
        result = train_path(path, True, store, device, sizes)
    return {
        "seconds": time.perf_counter() - start,
        "first_epoch_seconds": result.epoch_seconds[0],
        "fxgraph_hits": dynamo_counter("inductor", "fxgraph_cache_hit"),
        "fxgraph_misses": dynamo_counter("inductor", "fxgraph_cache_miss"),
        "autograd_hits": dynamo_counter("aot_autograd", "autograd_cache_hit"),
        "autograd_misses": dynamo_counter("aot_autograd", "autograd_cache_miss"),
    }


def compile_cache_check(records: list[dict], device: torch.device, args, budget: Budget) -> tuple[Check, dict]:
    name = "compile cache: a second process loads the compiled graphs"
    if device.type != "cuda":
        return skipped(name, "needs CUDA (auto compiles nothing on the CPU)"), {}
    compiled = [r for r in records if r.get("switches_on", {}).get("speed", {}).get("compile")]
    if not compiled:
        return skipped(name, "no path compiled"), {}
    if budget.spent():
        return skipped(name, budget.why()), {}
    first = compiled[0]
    progress(f"compile cache: {first['name']} again in a second process")
    command = [sys.executable, __file__, "--cache-probe", first["name"], "--device", str(device), "--out", args.out]
    command += ["--compile-cache", str(args.compile_cache)] + (["--quick"] if args.quick else [])
    child = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in child.stdout.splitlines() if line.startswith("CACHE_PROBE ")]
    if child.returncode != 0 or not lines:
        return Check(name, "fail", f"the child exited {child.returncode}: {child.stderr[-1500:]}"), {}
    probe = json.loads(lines[-1].removeprefix("CACHE_PROBE "))
    probe["parent_first_epoch_seconds"] = first["switches_on"]["epoch_seconds"][0]
    misses = probe["fxgraph_misses"] + probe["autograd_misses"]
    hits = probe["fxgraph_hits"] + probe["autograd_hits"]
    detail = (
        f"{first['name']}: {hits} cache hits, {misses} misses; first epoch "
        f"{probe['first_epoch_seconds']:.1f}s vs {probe['parent_first_epoch_seconds']:.1f}s in this process"
    )
    return verdict(name, misses == 0 and hits > 0, detail), probe


# --- section 2: speed -----------------------------------------------------------------------------


def engine_cases(sizes: Sizes) -> list:
    cases = []
    for name, case in CASES.items():
        changes = {"images": sizes.engine_images[name]}
        if name in sizes.engine_batch:
            changes["batch_size"] = sizes.engine_batch[name]
        if name in sizes.shrink_shapes:
            changes["shape"] = sizes.shrink_shapes[name]
        cases.append(dataclasses.replace(case, **changes))
    return cases


def measured(name: str, checks: list[Check], device: torch.device, action, *args):
    """action(*args), or None with a failed check: a speed item that crashes is a GPU path
    that does not run (a missed target is not a failure; this is). packed_runs exits on a failed run."""
    try:
        return action(*args)
    except (Exception, SystemExit) as err:
        traceback.print_exc()
        checks.append(Check(f"{name}: runs", "fail", f"{type(err).__name__}: {err}"))
        return None
    finally:
        release(device)


def engine_section(device: torch.device, sizes: Sizes, budget: Budget, tmp: Path) -> tuple[list[dict], list[Check]]:
    rows, checks = [], []
    steps, warmup = sizes.ceiling_steps
    for case in engine_cases(sizes):
        name = f"engine_speed {case.model}"
        if budget.spent():
            checks.append(skipped(name, budget.why()))
            continue
        progress(f"{name}: batch {case.batch_size}, {case.images:,} images")
        row = measured(name, checks, device, engine_speed.measure, case, sizes.workers, steps, warmup, device, tmp)
        if row is None:
            continue
        rows.append(row)
        r = rows[-1]
        progress(
            f"  engine / plain {r['engine_vs_plain']:.2f}x, data share {100 * r['data_share']:.1f}%, "
            f"engine / ceiling {r['engine_vs_ceiling']:.2f}"
        )
    return rows, checks


def epoch_rate(case, device: torch.device, tmp: Path) -> dict:
    split = synthetic_split(case.images, case.shape, case.num_classes)
    data = load_resident(write_synthetic_store(tmp / f"epoch_{case.batch_size}", split, case.num_classes), device)
    state = engine_run(case, data, device, fast=True)
    images_per_s = engine_speed.engine_images_per_s(state)
    return {"batch_size": case.batch_size, "images_per_s": images_per_s, "switches": state.speed.describe()}


def epoch_time_section(
    device: torch.device, sizes: Sizes, budget: Budget, tmp: Path, engine_rows: list[dict]
) -> tuple[list[dict], list[Check]]:
    """ResNet-18 (CIFAR stem) per-epoch seconds for CIFAR-10's 50,000 images, from the timed epoch."""
    base = dataclasses.replace(CASES["resnet18_cifar"], images=sizes.epoch_images)
    rows, checks = [], []
    for batch in sizes.epoch_batches:
        known = [r for r in engine_rows if r["case"] == "resnet18_cifar" and r["batch_size"] == batch]
        if known:  # engine_speed.py timed this very epoch already
            rows.append({"batch_size": batch, "images_per_s": known[0]["engine_images_per_s"], "from": "engine_speed"})
        elif budget.spent():
            checks.append(skipped(f"resnet18 epoch at batch {batch}", budget.why()))
            continue
        else:
            progress(f"epoch time: ResNet-18 at batch {batch}, {base.images:,} images")
            case = dataclasses.replace(base, batch_size=batch)
            row = measured(f"resnet18 epoch at batch {batch}", checks, device, epoch_rate, case, device, tmp)
            if row is None:
                continue
            rows.append(row)
        rows[-1]["epoch_seconds"] = CIFAR_TRAIN_IMAGES / rows[-1]["images_per_s"]
        progress(f"  batch {batch}: {rows[-1]['epoch_seconds']:.1f}s per 50,000-image epoch")
    return rows, checks


def packed_section(
    device: torch.device, sizes: Sizes, budget: Budget, tmp: Path, compile_cache: str
) -> tuple[dict, list[Check]]:
    case = dataclasses.replace(CASES["mlt_convnet"], images=sizes.packed_images)
    store = write_synthetic_store(
        tmp / "packed", synthetic_split(case.images, case.shape, case.num_classes), case.num_classes
    )
    many, alone = sizes.packed
    summaries = {}
    for n in (alone, many):
        if budget.spent():
            return {"runs": summaries}, [skipped(f"packed runs x{n}", budget.why())]
        progress(f"packed_runs: {n} run(s) of the MNIST ConvNet at batch 32, {case.images:,} images each")
        threads = max(1, (os.cpu_count() or 1) // n)  # runs share the CPU, as packed_runs.py
        checks, args = [], (n, case, store, device, threads, compile_cache)
        runs = measured(f"packed runs x{n}", checks, device, packed_runs.packed, *args)
        if runs is None:
            return {"runs": summaries}, checks
        summaries[n] = packed_runs.summarize(runs)
        progress(f"  aggregate {summaries[n]['aggregate_images_per_s']:,.0f} img/s")
    ratio = summaries[many]["aggregate_images_per_s"] / summaries[alone]["aggregate_images_per_s"]
    return {"runs": summaries, "ratio": {"packed": many, "vs": alone, "value": ratio}}, []


def speed_figures(engine_rows: list[dict], packed: dict) -> dict:
    figures = {}
    for r in engine_rows:
        figures[f"{r['case']} engine / plain"] = r["engine_vs_plain"]
        figures[f"{r['case']} data share"] = r["data_share"]
        figures[f"{r['case']} engine / ceiling"] = r["engine_vs_ceiling"]
    if "ratio" in packed:
        figures[f"{packed['ratio']['packed']} packed runs / {packed['ratio']['vs']}"] = packed["ratio"]["value"]
    return figures


def judge(figures: dict, quick: bool) -> list[dict]:
    rows = []
    for name, sense, bound in TARGETS:
        value = figures.get(name)
        if value is None:
            result = "not measured"
        elif quick:
            result = "not judged (--quick measures nothing)"
        else:
            result = "pass" if (value >= bound if sense == ">=" else value <= bound) else "miss"
        rows.append({"figure": name, "value": value, "target": f"{sense} {bound}", "result": result})
    return rows


# --- report ---------------------------------------------------------------------------------------


def machine(device: torch.device) -> dict:
    info = {
        "device": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "host": platform.node(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    info["commit"] = commit.stdout.strip() or None
    return info


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# GPU check",
        "",
        f"{m['device']}; torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}; commit {m['commit']}",
        "",
        f"**Correctness: {report['correctness_verdict']}** (exit code {report['exit_code']}). "
        f"{'--quick: a smoke run of the code paths at tiny sizes, not a measurement. ' if report['quick'] else ''}"
        f"Total {report['seconds']:.0f}s.",
        "",
        "| section | seconds | budget |",
        "| --- | --: | --: |",
    ]
    lines += [f"| {n} | {s['seconds']:.0f} | {s['budget_s']:.0f} |" for n, s in report["sections"].items()]
    lines += ["", "## Correctness checks", "", "| check | status | detail |", "| --- | --- | --- |"]
    lines += [f"| {c['name']} | {c['status']} | {c['detail'].replace('|', '/')} |" for c in report["checks"]]
    lines += [
        "",
        "## Paper features and the path reaching each",
        "",
        "| feature | path | status |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {c['feature']} | {c['path']} | {c['status']} |" for c in report["coverage"]]
    lines += [
        "",
        "## Speed against the targets",
        "",
        "| figure | value | target | result |",
        "| --- | --: | --- | --- |",
    ]
    lines += [f"| {t['figure']} | {fmt(t['value'])} | {t['target']} | {t['result']} |" for t in report["targets"]]
    lines += [
        "",
        "| engine_speed case | batch | plain img/s | engine img/s | engine / plain | data share | ceiling img/s |",
    ]
    lines += ["| --- | --: | --: | --: | --: | --: | --: |"]
    for r in report["speed"]["engine"]:
        lines.append(
            f"| {r['case']} | {r['batch_size']} | {r['plain_images_per_s']:,.0f} | {r['engine_images_per_s']:,.0f} "
            f"| {r['engine_vs_plain']:.2f}x | {100 * r['data_share']:.1f}% | {r['ceiling_images_per_s']:,.0f} |"
        )
    lines += ["", "| ResNet-18 CIFAR batch | img/s | seconds per 50,000-image epoch |", "| --: | --: | --: |"]
    lines += [
        f"| {r['batch_size']} | {r['images_per_s']:,.0f} | {r['epoch_seconds']:.1f} |"
        for r in report["speed"]["epoch_time"]
    ]
    packed = report["speed"]["packed"]
    if "ratio" in packed:
        ratio = packed["ratio"]
        lines += ["", f"{ratio['packed']} packed runs vs {ratio['vs']}: {ratio['value']:.2f}x aggregate images/s."]
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a CPU smoke run of every path, about a minute"
    )
    parser.add_argument(
        "--compile-cache",
        type=Path,
        default=REPO / "resources/torch_compile_cache",
        help="torch.compile's kernels (default: the workflow's, so runs and this check share them)",
    )
    parser.add_argument("--sections", nargs="+", choices=["correctness", "speed"], default=["correctness", "speed"])
    parser.add_argument("--paths", nargs="+", default=None, help="only the paths whose name contains one of these")
    parser.add_argument("--ignore-budget", action="store_true", help="run every item whatever the section budgets")
    parser.add_argument(
        "--inject-mismatch",
        action="store_true",
        help="for tests: the switched-on run doubles its loss, so the losses check must fail",
    )
    parser.add_argument("--cache-probe", default=None, help=argparse.SUPPRESS)  # the compile-cache child
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    sizes = QUICK_SIZES if args.quick else GPU_SIZES
    args.compile_cache = args.compile_cache.resolve()  # the correctness section changes directory
    use_compile_cache(args.compile_cache)
    if args.quick:
        # A small CPU: OpenMP threads waiting at a barrier for a core that another process (a
        # DataLoader worker, someone else's job) holds make every op ~10-20x slower; one thread
        # keeps the smoke run short (engine_speed.py --quick does the same).
        torch.set_num_threads(1)
    if args.cache_probe:
        path = next(p for p in check_paths(sizes)[0] if p.name == args.cache_probe)
        print("CACHE_PROBE " + json.dumps(cache_probe(path, device, sizes)), flush=True)
        return EXIT_OK
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = QUICK_BUDGET_S if args.quick else BUDGET_S
    info = machine(device)
    progress(
        f"{info['device']}, torch {info['torch']}, CUDA {info['cuda']}; sizes {'--quick' if args.quick else 'GPU'}"
    )
    report = {"machine": info, "quick": args.quick, "sizes": dataclasses.asdict(sizes), "budgets_s": budgets}
    report["tolerances"] = {
        "first_step_rtol": FIRST_STEP_RTOL,
        "same_weights_atol": SAME_WEIGHTS_ATOL,
        "trained_rtol": TRAINED_RTOL,
        "trained_atol": TRAINED_ATOL,
    }
    sections, checks, records, features = {}, [], [], []

    unused = [0.0]  # seconds earlier sections left of their budgets

    def section(name: str) -> Budget:
        # Its own budget and what earlier sections left: a warm compile cache's savings go to
        # the next section, while an overrun never takes a later section's own time.
        budget = Budget(name, budgets[name] + unused[0], not args.ignore_budget)
        sections[name] = {"budget_s": budget.seconds, "seconds": 0.0}
        return budget

    def close_section(name: str, budget: Budget) -> None:
        sections[name]["seconds"] = budget.elapsed()
        unused[0] = max(0.0, budget.seconds - budget.elapsed())
        progress(f"{name}: {budget.elapsed():.0f}s of its {budget.seconds:.0f}s budget")

    if "correctness" in args.sections:
        budget = section("correctness")
        paths, features = check_paths(sizes)
        if args.paths:
            paths = [p for p in paths if any(part in p.name for part in args.paths)]
            features = [f for f in features if any(f in p.covers for p in paths)]
        progress(f"correctness: {len(paths)} paths reach the paper smoke set's {len(features)} features")
        records, path_checks = correctness(paths, device, sizes, budget, args.inject_mismatch)
        checks += path_checks
        close_section("correctness", budget)
        budget = section("compile_cache")
        check, probe = compile_cache_check(records, device, args, budget)
        checks.append(check)
        report["compile_cache"] = {"dir": str(args.compile_cache), **probe}
        close_section("compile_cache", budget)
    else:
        checks.append(skipped("correctness", "not asked for (--sections)"))

    engine_rows, epoch_rows, packed = [], [], {}
    if "speed" in args.sections:
        with tempfile.TemporaryDirectory(prefix="gpu_check_speed_") as tmp:
            budget = section("engine_speed")
            engine_rows, skips = engine_section(device, sizes, budget, Path(tmp))
            checks += skips
            close_section("engine_speed", budget)
            budget = section("epoch_time")
            epoch_rows, skips = epoch_time_section(device, sizes, budget, Path(tmp), engine_rows)
            checks += skips
            close_section("epoch_time", budget)
            budget = section("packed_runs")
            packed, skips = packed_section(device, sizes, budget, Path(tmp), str(args.compile_cache))
            checks += skips
            close_section("packed_runs", budget)

    failed = [c.name for c in checks if c.status == "fail"]
    report["coverage"] = coverage(records, features)
    failed += [f"feature {c['feature']}" for c in report["coverage"] if c["path"] is None]
    exit_code = EXIT_CORRECTNESS_FAILED if failed else EXIT_OK
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "fail", "skipped")}
    report.update(
        correctness_verdict=("FAILED" if failed else "passed")
        + f" ({counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped)",
        exit_code=exit_code,
        failed=failed,
        checks=[dataclasses.asdict(c) for c in checks],
        paths=records,
        sections=sections,
        speed={"engine": engine_rows, "epoch_time": epoch_rows, "packed": packed},
        figures=speed_figures(engine_rows, packed),
        seconds=time.perf_counter() - START,
    )
    report["targets"] = judge(report["figures"], args.quick)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    for target in report["targets"]:
        progress(f"target {target['figure']} {target['target']}: {fmt(target['value'])} -> {target['result']}")
    progress(f"correctness {report['correctness_verdict']}" + (f": {', '.join(failed)}" if failed else ""))
    progress(f"-> {out / 'gpu_check.json'}, {out / 'gpu_check.md'}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
