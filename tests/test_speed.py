"""The engine's speed switches (train/speed.py): what `auto` turns on where, that each switch
trains the same model up to bf16 rounding, that compiled kernels are reused by the next job,
and that a training step never waits for the device (no host sync per step).

CI has no GPU: CUDA-only behaviour is checked through the resolution logic; bf16 autocast,
channels_last, fused optimisers and torch.compile all run on the CPU too and are checked there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from curriculum_bench.config import ConfigError, config_from_dict
from curriculum_bench.models import create_model
from curriculum_bench.train import speed as speed_module
from curriculum_bench.train.config import Run, TrainConfig
from curriculum_bench.train.engine import build_optimizer, build_state, fit, load_data, train_one_epoch
from curriculum_bench.train.hooks import Hook, build_hooks
from curriculum_bench.train.speed import (
    CUDA_GRAPH_MAX_BATCH,
    HOST_SYNC_OPS,
    Speed,
    cpu_bf16_flags,
    keep_freed_memory,
    prepare_model,
    resolve_speed,
)

from .conftest import tiny_run

REPO = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


# --- what auto means -----------------------------------------------------------------------------


def test_auto_leaves_every_switch_off_on_a_cpu_without_bf16_in_hardware(monkeypatch):
    monkeypatch.setattr(speed_module, "cpu_native_bf16", lambda: False)
    assert resolve_speed(TrainConfig(), CPU) == Speed()


def test_auto_trains_bf16_channels_last_on_a_cpu_with_bf16_in_hardware(monkeypatch):
    monkeypatch.setattr(speed_module, "cpu_native_bf16", lambda: True)
    assert resolve_speed(TrainConfig(), CPU) == Speed(bf16=True, channels_last=True)
    plain = TrainConfig(precision="fp32", channels_last=False)
    assert resolve_speed(plain, CPU) == Speed()


def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n\n")
    assert cpu_bf16_flags(cpuinfo) == ("avx512_bf16", "amx_bf16")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    assert cpu_bf16_flags(cpuinfo) == ()
    assert cpu_bf16_flags(tmp_path / "absent") == ()


def test_auto_turns_every_switch_on_on_a_cuda_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_speed(TrainConfig(batch_size=32), CUDA) == Speed(True, True, True, True, True)


def test_auto_precision_stays_fp32_on_a_gpu_that_only_emulates_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert not resolve_speed(TrainConfig(), CUDA).bf16


def test_auto_cuda_graphs_only_for_launch_bound_batch_sizes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_speed(TrainConfig(batch_size=CUDA_GRAPH_MAX_BATCH), CUDA).cuda_graphs
    large = resolve_speed(TrainConfig(batch_size=CUDA_GRAPH_MAX_BATCH + 1), CUDA)
    assert large.compile and not large.cuda_graphs


def test_explicit_values_override_auto_on_either_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    off = TrainConfig(precision="fp32", channels_last=False, fused_optimizer=False, compile=False)
    assert resolve_speed(off, CUDA) == Speed()
    on = TrainConfig(precision="bf16", channels_last=True, fused_optimizer=True, compile=True)
    assert resolve_speed(on, CPU) == Speed(True, True, True, True, False)


class ChangesTheModel(Hook):
    name = "progressive_dropout"
    compilable = False


def test_a_method_that_changes_the_model_keeps_auto_compile_off(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    speed = resolve_speed(TrainConfig(), CUDA, [ChangesTheModel()])
    assert not speed.compile and not speed.cuda_graphs and speed.bf16 and speed.channels_last


def test_compile_true_with_a_method_that_changes_the_model_is_rejected_naming_both():
    with pytest.raises(ConfigError, match=r"^train\.compile: methods\.progressive_dropout changes the model"):
        resolve_speed(TrainConfig(compile=True), CPU, [ChangesTheModel()])


def test_methods_that_change_the_model_say_so():
    hooks = build_hooks(
        {"progressive_dropout": {}, "simclr": {}, "forgetting": {}, "data_parameters": {"learn_class": True}}
    )
    assert {h.name: h.compilable for h in hooks} == {
        "progressive_dropout": False,
        "simclr": False,
        "forgetting": True,
        "data_parameters": True,
    }


def test_cuda_graphs_without_cuda_or_without_compile_are_rejected():
    with pytest.raises(ConfigError, match=r"^train\.cuda_graphs: CUDA graphs need a CUDA device"):
        resolve_speed(TrainConfig(compile=True, cuda_graphs=True), CPU)
    with pytest.raises(ConfigError, match=r"^train\.cuda_graphs: the graphs are captured by torch\.compile"):
        resolve_speed(TrainConfig(compile=False, cuda_graphs=True), CUDA)


@pytest.mark.parametrize("key, value", [("precision", "fp16"), ("compile", "yes"), ("cuda_graphs", 1.5)])
def test_a_bad_speed_value_is_rejected_with_its_key_named(key, value):
    with pytest.raises(ConfigError, match=rf"^train: {key} must be"):
        config_from_dict(TrainConfig, {key: value}, where="train")


def test_fused_optimizer_uses_the_fused_kernel_or_the_foreach_path():
    model = torch.nn.Linear(3, 2)
    for optimizer, expected in [("adamw", {"fused": True}), ("sgd", {"fused": True}), ("adamax", {"foreach": True})]:
        built = build_optimizer(model, TrainConfig(optimizer=optimizer), Speed(fused_optimizer=True))
        assert {k: built.defaults[k] for k in expected} == expected, optimizer


# --- the switches train the same model ------------------------------------------------------------


def test_bf16_channels_last_and_fused_train_the_same_model_on_the_cpu(digits_store, tmp_path):
    runs = {
        "fp32": {"precision": "fp32", "channels_last": False},  # explicit: auto is bf16 on a CPU that has it
        "bf16": {"precision": "bf16", "channels_last": False},
        "layout": {"channels_last": True, "fused_optimizer": True, "precision": "fp32"},
    }
    metrics = {
        name: fit(tiny_run(epochs=2, **train), digits_store, tmp_path / name, tmp_path / f"{name}.pt", device="cpu")
        for name, train in runs.items()
    }
    assert metrics["fp32"]["speed"] == Speed().as_dict()
    assert metrics["bf16"]["speed"] == Speed(bf16=True).as_dict()
    assert metrics["layout"]["speed"] == Speed(channels_last=True, fused_optimizer=True).as_dict()
    reference = history(tmp_path / "fp32")
    for name, tolerance in [("layout", 1e-5), ("bf16", 2e-3)]:
        first = history(tmp_path / name)[0]
        assert first["train_loss"] == pytest.approx(reference[0]["train_loss"], abs=tolerance), name
        assert first["eval_loss"] == pytest.approx(reference[0]["eval_loss"], abs=tolerance), name
    # Same kernels up to summation order: the whole run agrees. (bf16 rounding, amplified by
    # two epochs at lr 0.01 on 1,437 digits, moves the final accuracy by a few points.)
    assert metrics["layout"]["final_acc"] == pytest.approx(metrics["fp32"]["final_acc"], abs=0.01)
    # The saved weights load into a plain model, whatever layout trained them.
    weights = torch.load(tmp_path / "layout/final_model.pt", weights_only=True)
    create_model("mlt_convnet", (1, 8, 8), 10).load_state_dict(weights)


@pytest.mark.skipif(
    not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
    reason="torch.compile on the CPU builds its kernels with a C++ compiler; none found",
)
def test_compiled_run_matches_eager_and_the_next_job_reuses_its_kernels(digits_store, tmp_path):
    cache = tmp_path / "compile_cache"
    # Batch 479 divides the 1,437 training digits: one training and one evaluation graph.
    run = tiny_run(epochs=1, batch_size=479, eval_batch_size=360)
    eager = fit(run, digits_store, tmp_path / "eager", tmp_path / "eager.pt", device="cpu")
    compiled_run = tiny_run(epochs=1, batch_size=479, eval_batch_size=360, compile=True)
    compiled = fit(
        compiled_run, digits_store, tmp_path / "compiled", tmp_path / "compiled.pt", device="cpu", compile_cache=cache
    )
    assert compiled["speed"]["compile"] and not eager["speed"]["compile"]
    first_eager, first_compiled = history(tmp_path / "eager")[0], history(tmp_path / "compiled")[0]
    for key in ("train_loss", "eval_loss", "eval_acc"):
        assert first_compiled[key] == pytest.approx(first_eager[key], abs=1e-4), key
    weights = torch.load(tmp_path / "compiled/final_model.pt", weights_only=True)
    assert set(weights) == set(torch.load(tmp_path / "eager/final_model.pt", weights_only=True))

    compiled_graphs = sorted(p.relative_to(cache) for p in (cache / "fxgraph").rglob("*") if p.is_file())
    assert compiled_graphs, f"nothing compiled into {cache}"
    # A later job (a new process, as a Snakemake or SLURM job is) loads those kernels: it adds
    # no compiled graph of its own, and trains the same numbers.
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CURRICULUM_BENCH_COMPILE_CACHE": str(cache)}
    job = subprocess.run(
        [
            sys.executable,
            "-m",
            "curriculum_bench",
            "train",
            "--run-config",
            json.dumps(compiled_run),
            "--data",
            str(digits_store),
            "--out",
            str(tmp_path / "next_job"),
            "--checkpoint",
            str(tmp_path / "next_job.pt"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    assert sorted(p.relative_to(cache) for p in (cache / "fxgraph").rglob("*") if p.is_file()) == compiled_graphs
    assert history(tmp_path / "next_job")[0]["train_loss"] == first_compiled["train_loss"]


# --- no host sync per step ------------------------------------------------------------------------


class HostSyncAudit(TorchDispatchMode):
    """Records every op in HOST_SYNC_OPS, and indexing with a boolean mask (which is one)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in HOST_SYNC_OPS:
            self.calls.append(name)
        elif name in ("index", "index_put", "index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or [])
        ):
            self.calls.append(f"{name} with a boolean mask")
        return func(*args, **(kwargs or {}))


def audited_epoch(store: Path, batch_size: int, methods: dict) -> list[str]:
    """Host syncs of one training epoch, hooks and all (progress lines off)."""
    run = Run.from_dict(tiny_run(methods, epochs=1, batch_size=batch_size, log_every=10**6))
    data = load_data(store, CPU)
    hooks = build_hooks(run.methods)
    # Fused, as on a GPU by default: the per-tensor path counts its steps in CPU scalars,
    # whose .item() reads host memory even on a GPU and would only blur this audit.
    state = build_state(run, data, hooks, CPU, Speed(fused_optimizer=True))
    for hook in hooks:
        hook.on_fit_start(state)
        hook.on_epoch_start(state)
    with HostSyncAudit() as audit:
        train_one_epoch(state, hooks)
    return audit.calls


def test_a_training_step_never_waits_for_the_device(digits_store):
    # Per-sample statistics of every kind: forgetting events (with loss and margin), class and
    # instance data parameters (SparseSGD, clamp), LeRaC's per-block learning rates.
    methods = {
        "forgetting": {"record_loss_and_margin": True},
        "data_parameters": {"learn_class": True, "learn_inst": True},
        "lerac": {"lerac_epochs": 1},
    }
    few_steps = audited_epoch(digits_store, 479, methods)  # 3 steps
    many_steps = audited_epoch(digits_store, 16, methods)  # 90 steps
    assert many_steps == few_steps, f"host syncs that grow with the steps: {many_steps}"
    # The epoch's own: its last progress line and statistics (4), the recorder's room (2).
    assert len(few_steps) <= 6, few_steps


# --- auto compilation never stops a run -----------------------------------------------------------


@pytest.fixture
def failing_inductor(monkeypatch):
    """torch.compile's backend failing, as it may on a model or a torch version it cannot handle."""
    import torch._dynamo
    import torch._inductor.compile_fx

    def fail(*args, **kwargs):
        raise RuntimeError("inductor cannot compile this")

    monkeypatch.setattr(torch._inductor.compile_fx, "compile_fx", fail)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch._dynamo.config.suppress_errors = False


def test_a_model_auto_compilation_fails_on_runs_eagerly(failing_inductor):
    torch.manual_seed(0)
    model = create_model("mlt_convnet", (1, 8, 8), 10).eval()
    x = torch.rand(4, 1, 8, 8)
    forward = prepare_model(model, Speed(compile=True), eager_on_compile_error=True)
    torch.testing.assert_close(forward(x), model(x))


def test_compile_true_stops_where_compilation_fails(failing_inductor):
    model = create_model("mlt_convnet", (1, 8, 8), 10).eval()
    forward = prepare_model(model, Speed(compile=True), eager_on_compile_error=False)
    with pytest.raises(Exception, match="inductor cannot compile this"):
        forward(torch.rand(4, 1, 8, 8))


# --- keep_freed_memory ---------------------------------------------------------------------------

# A step's worth of large activations, allocated, written and freed eight times, on one thread as
# a job runs; prints the page faults each time took (first writes to pages the kernel mapped in).
FAULTS_PER_STEP = """
import resource, sys, torch
from curriculum_bench.train.speed import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    activations = [torch.ones(5_000_000) for _ in range(6)] + [torch.ones(20_000_000)]
    del activations
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


@pytest.mark.skipif(not keep_freed_memory({}), reason="malloc is not glibc's")
def test_kept_memory_serves_the_next_step_without_mapping_pages_in_again():
    def faults(policy: str) -> list[int]:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
        result = subprocess.run(
            [sys.executable, "-c", FAULTS_PER_STEP, policy], env=env, capture_output=True, text=True, check=True
        )
        return [int(n) for n in result.stdout.split()]

    default, kept = faults("default"), faults("kept")
    # glibc's default hands freed blocks back and faults tens of MB in again at every step;
    # kept, the first steps' memory serves the later ones.
    assert min(default[4:]) > 10_000
    assert sum(kept[4:]) < 0.1 * sum(default[4:])


def test_keep_freed_memory_does_nothing_where_malloc_is_not_glibcs(monkeypatch):
    monkeypatch.setattr(speed_module.platform, "libc_ver", lambda: ("", ""))
    assert keep_freed_memory() is False
