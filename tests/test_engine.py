import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import torch

from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import METHODS, Hook

from .conftest import REPO, tiny_run

TIMING_KEYS = {"train_time_s", "images_per_s", "wall_s", "peak_mem_mb"}


def results_only(history_path):
    """History records without the timing fields, which legitimately differ between runs."""
    records = [json.loads(line) for line in history_path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_same_seed_gives_the_same_numbers_on_cpu(digits_store, tmp_path):
    a = fit(tiny_run(epochs=2), digits_store, tmp_path / "a", tmp_path / "a.pt", device="cpu")
    b = fit(tiny_run(epochs=2), digits_store, tmp_path / "b", tmp_path / "b.pt", device="cpu")
    assert results_only(tmp_path / "a/history.jsonl") == results_only(tmp_path / "b/history.jsonl")
    assert (a["final_acc"], a["best_acc"]) == (b["final_acc"], b["best_acc"])
    fit(tiny_run(epochs=2, seed=1), digits_store, tmp_path / "c", tmp_path / "c.pt", device="cpu")
    assert results_only(tmp_path / "c/history.jsonl") != results_only(tmp_path / "a/history.jsonl")


def test_metrics_name_the_split_and_cost(digits_store, tmp_path):
    m = fit(tiny_run(epochs=2), digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu")
    saved = json.loads((tmp_path / "run/metrics.json").read_text())
    assert saved["final_acc"] == m["final_acc"]
    assert saved["eval_split"] == "test" and saved["num_eval"] == 360 and saved["num_train"] == 1437
    assert 0 < saved["final_acc"] <= 1 and 1 <= saved["best_epoch"] <= 2
    assert saved["wall_s"] > 0 and saved["train_images_per_s"] > 0 and saved["peak_mem_mb"] > 0
    assert saved["run"] == tiny_run(epochs=2) and saved["versions"]["torch"] == torch.__version__
    assert saved["resumed_at"] == []
    weights = torch.load(tmp_path / "run/final_model.pt")
    assert set(weights) == set(torch.load(tmp_path / "ckpt.pt", weights_only=False)["model"])


def test_resume_after_stop_matches_uninterrupted_run_on_cpu(digits_store, tmp_path):
    run = tiny_run({"weighted_sampling": {}}, epochs=4)
    full = fit(run, digits_store, tmp_path / "full", tmp_path / "full.pt", device="cpu")
    assert fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu", stop_after_epoch=2) is None
    assert not (tmp_path / "cut/metrics.json").exists()
    resumed = fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu")
    assert resumed["resumed_at"] == [[2, 0]]
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    assert (resumed["final_acc"], resumed["best_acc"]) == (full["final_acc"], full["best_acc"])


def test_resume_after_sigkill_matches_uninterrupted_run_on_cpu(digits_store, tmp_path):
    """A real kill at an arbitrary moment (possibly mid-checkpoint), then the same command again."""
    run = tiny_run(epochs=12, batch_size=32)
    cmd = [
        sys.executable,
        "-m",
        "curriculum_bench",
        "train",
        "--run-config",
        json.dumps(run),
        "--data",
        str(digits_store),
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run(
        cmd + ["--out", str(tmp_path / "full"), "--checkpoint", str(tmp_path / "full.pt")],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )

    killed = cmd + ["--out", str(tmp_path / "cut"), "--checkpoint", str(tmp_path / "cut.pt")]
    proc = subprocess.Popen(killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = tmp_path / "cut/history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut/metrics.json").exists(), "the run finished before it could be killed"

    subprocess.run(killed, check=True, env=env, capture_output=True, timeout=300)
    cut = json.loads((tmp_path / "cut/metrics.json").read_text())
    full = json.loads((tmp_path / "full/metrics.json").read_text())
    assert len(cut["resumed_at"]) == 1 and 3 <= cut["resumed_at"][0][0] < 12
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    assert (cut["final_acc"], cut["best_acc"], cut["best_epoch"]) == (
        full["final_acc"],
        full["best_acc"],
        full["best_epoch"],
    )


def test_changed_config_starts_afresh(digits_store, tmp_path, capsys):
    fit(tiny_run(epochs=3), digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu", stop_after_epoch=1)
    m = fit(tiny_run(epochs=3, lr=0.005), digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu")
    assert m["resumed_at"] == []
    assert "differs at train.lr" in capsys.readouterr().out
    assert m["run"]["train"]["lr"] == 0.005


def test_the_run_config_becomes_one_typed_run_that_keeps_its_json():
    from curriculum_bench.config import ConfigError
    from curriculum_bench.train.config import Run, TrainConfig

    written = tiny_run({"blur": {"sigma": 0.5}}, epochs=2)
    run = Run.from_dict(written)
    assert run.train == TrainConfig(**written["train"]) and run.methods == {"blur": {"sigma": 0.5}}
    assert run.name == "techniques/digits_sklearn/mlt_convnet/test/seed0"
    assert run.resolved is written  # what the run's identity, checkpoint and metrics.json record
    for key, value, message in [
        ("seed", "0", "seed must be an int >= 0"),
        ("model_args", [], "model_args must be a mapping"),
        ("train", {"epochs": 0}, "train: epochs must be > 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Run.from_dict({**written, key: value})


class Recorder(Hook):
    """Records what the engine shows a hook, to check the interface's promises."""

    def __init__(self, cfg):
        self.calls, self.batches = [], []

    def on_fit_start(self, state):
        self.labels = state.train_labels.clone()
        self.calls.append("fit_start")

    def on_epoch_start(self, state):
        self.calls.append(f"epoch_start{state.epoch}")

    def transform_batch(self, state, idx, x, y):
        assert state.steps_per_epoch == -(-len(self.labels) // 64)  # tiny_run's batch size
        self.batches.append((idx.clone(), y.clone()))
        return x, y

    def loss(self, state, idx, logits, y, loss):
        assert loss.shape == y.shape  # per-sample, reduced by the engine
        return loss

    def after_step(self, state):
        self.steps_after = getattr(self, "steps_after", 0) + 1
        assert state.step == self.steps_after - 1  # called before the engine counts the step

    def on_epoch_end(self, state):
        self.calls.append(f"epoch_end{state.epoch}")

    def on_fit_end(self, state):
        self.calls.append("fit_end")
        # Artifacts are written before the run's "finished" marker.
        assert not (state.out_dir / "metrics.json").exists()
        (state.out_dir / "artifact.txt").write_text("x")

    def epoch_log(self, state):
        return {"batches": len(self.batches)}


@dataclass(frozen=True)
class RecorderConfig:
    pass


@pytest.fixture
def recorder_method(monkeypatch):
    """Registers Recorder for one test only, so the registry stays as the package made it."""
    monkeypatch.setattr(Recorder, "name", "recorder", raising=False)
    monkeypatch.setattr(Recorder, "config_cls", RecorderConfig, raising=False)
    monkeypatch.setitem(METHODS._entries, "recorder", Recorder)


def test_hooks_see_each_sample_index_with_its_label_once_per_epoch(digits_store, tmp_path, recorder_method):
    from curriculum_bench.train import engine

    seen = {}
    original = engine.build_hooks

    def capture(methods):
        hooks = original(methods)
        seen["hook"] = hooks[0]
        return hooks

    engine.build_hooks = capture
    try:
        fit(tiny_run({"recorder": {}}, epochs=2), digits_store, tmp_path / "run", tmp_path / "c.pt")
    finally:
        engine.build_hooks = original
    hook = seen["hook"]
    assert hook.calls == ["fit_start", "epoch_start0", "epoch_end0", "epoch_start1", "epoch_end1", "fit_end"]
    assert hook.steps_after == len(hook.batches)
    assert (tmp_path / "run/artifact.txt").exists()
    first_epoch = torch.cat([idx for idx, _ in hook.batches[: len(hook.batches) // 2]])
    assert sorted(first_epoch.tolist()) == list(range(len(hook.labels)))  # a permutation
    for idx, y in hook.batches:
        assert torch.equal(hook.labels[idx], y)
    history = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert history[-1]["recorder/batches"] == len(hook.batches)


def test_two_methods_choosing_the_sample_order_is_an_error(digits_store, tmp_path):
    class Shuffler(Hook):
        name = "shuffler"

        def sample_order(self, state, generator):
            return torch.arange(len(state.train_labels))

    from curriculum_bench.train import engine

    original = engine.build_hooks
    engine.build_hooks = lambda methods: original(methods) + [Shuffler()]
    try:
        with pytest.raises(ValueError, match="more than one method chooses the sample order"):
            fit(tiny_run({"weighted_sampling": {}}, epochs=1), digits_store, tmp_path / "r", tmp_path / "c.pt")
    finally:
        engine.build_hooks = original


def test_memory_mapped_data_gives_the_same_run_as_resident_data(digits_store, tmp_path):
    """The fallback for splits too large for memory reads the same batches in the same order."""
    run = tiny_run({"weighted_sampling": {}}, epochs=2)
    fit(run, digits_store, tmp_path / "memory", tmp_path / "m.pt", device="cpu", placement="memory")
    fit(run, digits_store, tmp_path / "mmap", tmp_path / "p.pt", device="cpu", placement="mmap", loader_workers=2)
    assert results_only(tmp_path / "mmap/history.jsonl") == results_only(tmp_path / "memory/history.jsonl")


def test_sigterm_checkpoints_mid_epoch_and_the_rerun_matches_an_uninterrupted_run(digits_store, tmp_path):
    """SLURM preemption / time limit: SIGTERM, a grace period, then the job is retried."""
    from curriculum_bench.train.checkpoint import load_checkpoint

    run = tiny_run(epochs=6, batch_size=8)
    cmd = [
        sys.executable,
        "-m",
        "curriculum_bench",
        "train",
        "--run-config",
        json.dumps(run),
        "--data",
        str(digits_store),
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    full_cmd = cmd + ["--out", str(tmp_path / "full"), "--checkpoint", str(tmp_path / "full.pt")]
    subprocess.run(full_cmd, check=True, env=env, capture_output=True, timeout=300)

    cut_cmd = cmd + ["--out", str(tmp_path / "cut"), "--checkpoint", str(tmp_path / "cut.pt")]
    proc = subprocess.Popen(cut_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history = tmp_path / "cut/history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not history.exists():
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output[-2000:]
    assert "SIGTERM: checkpointed epoch" in output
    progress = load_checkpoint(tmp_path / "cut.pt")["progress"]
    assert progress is not None and progress.batches_done > 0
    assert not (tmp_path / "cut/metrics.json").exists()

    subprocess.run(cut_cmd, check=True, env=env, capture_output=True, timeout=300)
    cut = json.loads((tmp_path / "cut/metrics.json").read_text())
    full = json.loads((tmp_path / "full/metrics.json").read_text())
    assert cut["resumed_at"][0][1] == progress.batches_done > 0
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    assert (cut["final_acc"], cut["best_acc"]) == (full["final_acc"], full["best_acc"])


AUGMENT = [{"op": "random_crop", "size": 8, "padding": 1}, {"op": "horizontal_flip", "p": 0.5}]


def test_augmented_run_resumes_exactly_and_differs_from_unaugmented(digits_store, tmp_path):
    run = tiny_run(epochs=3, augment=AUGMENT, normalize={"mean": [0.5], "std": [0.25]})
    fit(run, digits_store, tmp_path / "full", tmp_path / "full.pt", device="cpu")
    fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu", stop_after_epoch=1)
    fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu")
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    fit(tiny_run(epochs=3), digits_store, tmp_path / "plain", tmp_path / "plain.pt", device="cpu")
    assert results_only(tmp_path / "plain/history.jsonl") != results_only(tmp_path / "full/history.jsonl")


def test_bad_augmentation_is_named_before_training(digits_store, tmp_path):
    from curriculum_bench.config import ConfigError

    with pytest.raises(ConfigError, match=r"train\.augment: \[0\]\(random_crop\)\.pad: unknown key"):
        fit(tiny_run(augment=[{"op": "random_crop", "pad": 4}]), digits_store, tmp_path / "r", tmp_path / "c.pt")


def test_a_val_split_is_evaluated_each_epoch_and_selects_the_reported_test_epoch(digits_store, tmp_path):
    from curriculum_bench.data.derive import derive

    store = tmp_path / "digits_val"
    derive(
        "digits_val",
        {"source": "derived", "from": "digits_sklearn", "subset": {"kind": "validation_tail", "n": 200}},
        digits_store,
        store,
    )
    m = fit(tiny_run(epochs=3), store, tmp_path / "run", tmp_path / "c.pt", device="cpu")
    history = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert all("val_acc" in r for r in history) and m["num_val"] == 200 and m["num_train"] == 1237
    chosen = max(history, key=lambda r: r["val_acc"])
    assert m["best_val_epoch"] == chosen["epoch"]
    assert m["test_at_best_val_acc"] == chosen["eval_acc"] and m["eval_split"] == "test"
