"""How fast the engine takes a step, without changing what it computes beyond bf16 rounding.

Five switches in a study's `train:` section, each `auto` by default, which turns it on where
the run is on a CUDA GPU. On the CPU, `auto` turns on bf16 autocast and channels-last where the
CPU has bf16 in hardware (AVX512-BF16 or AMX): oneDNN's NHWC bf16 convolutions train the
embedded default's ConvNet 2.4x faster there, to the same accuracy (benchmarks/cpu_speed.py,
docs/gpu.md); elsewhere on the CPU everything stays off (emulated bf16 is several times slower).
`precision: fp32` and `channels_last: false` give the plain fp32 numbers on any CPU.

    precision        bf16 autocast of forward and loss (fp32 master weights and optimiser)
    channels_last    NHWC weights and inputs: the layout cuDNN's fast convolutions use; on
                     a GPU cuDNN also times its algorithms once per shape and keeps the fastest
    fused_optimizer  the optimiser's whole update as one kernel instead of one per tensor
    compile          torch.compile of the model; the compiled code is cached on disk
    cuda_graphs      each step replayed as one CUDA graph (torch.compile's reduce-overhead
                     mode): a batch of 32 MNIST digits is launch-bound, not compute-bound

A method whose hooks change the model's Python attributes while it trains (dropout rates,
attributes written by forward) sets `compilable = False`: every change would recompile.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import ConfigError

AUTO = "auto"
# Above this a step has enough work per kernel that launching is no longer the bottleneck,
# and a graph per shape only costs memory.
CUDA_GRAPH_MAX_BATCH = 256
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of bf16 in hardware
CPUINFO = Path("/proc/cpuinfo")
# glibc's malloc.h: mallopt parameters, and what keep_freed_memory sets them to
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
KEPT_MEMORY = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 2**30}


@dataclass(frozen=True)
class Speed:
    """The resolved switches of one run (recorded in metrics.json as `speed`)."""

    bf16: bool = False
    channels_last: bool = False
    fused_optimizer: bool = False
    compile: bool = False
    cuda_graphs: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        on = [name for name, value in asdict(self).items() if value]
        return ", ".join(on) if on else "fp32 eager"


def _switch(cfg, key: str, auto: bool) -> bool:
    value = getattr(cfg, key)  # auto, True or False: TrainConfig rejects anything else
    return auto if value == AUTO else value


def native_bf16() -> bool:
    """bf16 in hardware (Ampere and later); older GPUs emulate it, slower than fp32."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> tuple[str, ...]:
    """The CPU's bf16 instruction sets (empty where it has none, or where there is no cpuinfo)."""
    try:
        flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ()
    return tuple(flag for flag in CPU_BF16_FLAGS if flag in flags.split())


@functools.cache
def cpu_native_bf16() -> bool:
    return bool(cpu_bf16_flags())


def resolve_speed(cfg, device: torch.device, hooks=()) -> Speed:
    """Turn the config's auto/true/false into what this run on `device` will do."""
    cuda = device.type == "cuda"
    bf16_cpu = device.type == "cpu" and cpu_native_bf16()
    bf16 = cfg.precision == "bf16" or (cfg.precision == AUTO and ((cuda and native_bf16()) or bf16_cpu))
    changes_model = [hook.name for hook in hooks if not getattr(hook, "compilable", True)]
    compile_model = _switch(cfg, "compile", cuda and not changes_model)
    if compile_model and changes_model:
        raise ConfigError(
            f"train.compile: methods.{changes_model[0]} changes the model while it trains, "
            f"which would recompile it at every change; set train.compile to auto or false"
        )
    cuda_graphs = _switch(cfg, "cuda_graphs", cuda and compile_model and cfg.batch_size <= CUDA_GRAPH_MAX_BATCH)
    if cuda_graphs and not cuda:
        raise ConfigError(f"train.cuda_graphs: CUDA graphs need a CUDA device; this run is on {device.type}")
    if cuda_graphs and not compile_model:
        raise ConfigError(
            "train.cuda_graphs: the graphs are captured by torch.compile "
            "(mode reduce-overhead); set train.compile to true or auto"
        )
    return Speed(
        bf16=bf16,
        channels_last=_switch(cfg, "channels_last", cuda or bf16_cpu),
        fused_optimizer=_switch(cfg, "fused_optimizer", cuda),
        compile=compile_model,
        cuda_graphs=cuda_graphs,
    )


def keep_freed_memory(settings: dict[int, int] = KEPT_MEMORY) -> bool:
    """Let glibc's malloc keep what a step frees for the next step instead of returning it to
    the kernel. By default it unmaps the step's large activations and maps them again in the
    next step, whose first write to each page then faults: a tenth of a SimCLR job's time on
    the CPU (benchmarks/cpu_memory.py). Results are the same; the process holds its peak memory
    until it ends. False where malloc is not glibc's."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings.items())


def use_compile_cache(directory: Path | str | None) -> None:
    """Keep torch.compile's kernels in `directory`, so the next job with the same model and
    shapes loads them instead of compiling again (inductor's default is a per-node /tmp,
    gone with a cluster job). Set, not defaulted: importing torchvision already fills
    TORCHINDUCTOR_CACHE_DIR with that default, and inductor reads it at each compile."""
    if directory is None:
        return
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(directory)
    os.environ["TRITON_CACHE_DIR"] = str(directory / "triton")


def prepare_model(model: nn.Module, speed: Speed, eager_on_compile_error: bool = False) -> nn.Module:
    """Lay out `model` for speed; returns the module the engine calls (compiled or `model`).

    `model` itself stays the plain module: its state_dict has the usual keys, and hooks that
    predict with it or reload its weights see no wrapper. `eager_on_compile_error` (compile
    chosen by `auto`): code torch.compile cannot compile runs eagerly, with dynamo's warning
    in the log, instead of stopping the run."""
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
        if any(p.is_cuda for p in model.parameters()):
            torch.backends.cudnn.benchmark = True  # static shapes: one timing per shape pays
    if not speed.compile:
        return model
    from torch import _dynamo  # loaded by torch.compile anyway; not at import time

    _dynamo.config.suppress_errors = eager_on_compile_error
    # Static shapes: a full batch, the epoch's last partial batch and the evaluation batch
    # each get their own graph, instead of one slower dynamic-shape graph for all.
    return torch.compile(model, mode="reduce-overhead" if speed.cuda_graphs else None, dynamic=False)


def model_input(x: torch.Tensor, speed: Speed) -> torch.Tensor:
    if speed.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def autocast(speed: Speed, device: torch.device):
    if not speed.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def run_model(model: nn.Module, x: torch.Tensor, speed: Speed) -> torch.Tensor:
    """model(x) at the run's precision and layout: evaluation, and hooks that predict (a
    distillation teacher, self-labelling's pool) without gradients."""
    with autocast(speed, x.device):
        return model(model_input(x, speed))


def begin_step(speed: Speed) -> None:
    """A new training step: the previous step's graph outputs may be overwritten now."""
    if speed.cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()


def optimizer_kernel_args(optimizer_cls, speed: Speed) -> dict:
    """fused=True where the optimiser has a fused kernel, else the multi-tensor (foreach) path."""
    if not speed.fused_optimizer:
        return {}
    parameters = inspect.signature(optimizer_cls).parameters
    return {"fused": True} if "fused" in parameters else {"foreach": True}


# Ops whose result size or value the host must read, which on a GPU stalls the step until the
# device catches up (torch.cuda.set_sync_debug_mode flags them there). The CPU audits of a
# training step (tests/test_speed.py, benchmarks/gpu_check.py) look for these by name.
HOST_SYNC_OPS = frozenset(
    {
        "_local_scalar_dense",
        "nonzero",
        "masked_select",
        "unique",
        "_unique",
        "_unique2",
        "unique_consecutive",
        "unique_dim",
        "bincount",
        "repeat_interleave",
        "equal",
        "is_nonzero",
    }
)
