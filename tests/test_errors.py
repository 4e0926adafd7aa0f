"""Faults a user meets, as `python -m curriculum_bench` reports them: one line that names the
file or key and says what to do; a bug (any other exception) keeps its traceback."""

import errno
import json
import shutil

import pytest
import torch

from curriculum_bench import cli
from curriculum_bench.data import store
from curriculum_bench.errors import InputFileError, MissingInputFile, read_json_file, read_json_lines
from curriculum_bench.train import checkpoint
from curriculum_bench.train.checkpoint import load_checkpoint, save_checkpoint

from .conftest import tiny_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def refused(capsys, *argv: str) -> str:
    """stderr of a command that must stop with exit status 2 and no traceback."""
    with pytest.raises(SystemExit) as stopped:
        cli.main([str(a) for a in argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip(), err
    return err


def train_args(data, tmp_path, run: dict | None = None, *extra: str) -> list[str]:
    return [
        "train",
        "--run-config",
        json.dumps(run or tiny_run(epochs=1)),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--checkpoint",
        str(tmp_path / "ckpt.pt"),
        "--device",
        "cpu",
        *extra,
    ]


@pytest.fixture
def store_copy(digits_store, tmp_path):
    """A copy of the digits store that a test may damage."""
    return shutil.copytree(digits_store, tmp_path / "store")


def finished_run(tmp_path, name="run"):
    """A run folder as training leaves it, for the report commands."""
    run = tmp_path / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"final_acc": 0.5, "run": tiny_run()}))
    (run / "history.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.5}) + "\n")
    return run


# ------------------------------------------------------------------------------- dataset store


def test_a_missing_store_array_is_named_with_what_to_do(store_copy, tmp_path, capsys):
    (store_copy / "train_images.npy").unlink()
    err = refused(capsys, *train_args(store_copy, tmp_path))
    assert f"error: {store_copy / 'train_images.npy'}: " in err
    assert f"delete the store folder {store_copy} and prepare it again" in err


def test_a_truncated_store_array_is_named_with_what_to_do(store_copy, tmp_path, capsys):
    array = store_copy / "train_images.npy"
    array.write_bytes(array.read_bytes()[: array.stat().st_size // 2])
    err = refused(capsys, *train_args(store_copy, tmp_path))
    assert f"error: {array}: cannot read array 'train_images'" in err and "truncated" in err
    assert f"delete the store folder {store_copy}" in err


def test_a_garbage_manifest_is_named_with_what_to_do(store_copy, tmp_path, capsys):
    (store_copy / "manifest.json").write_text('{"classes": ["0", "1"], "spl')  # cut short
    err = refused(capsys, *train_args(store_copy, tmp_path))
    assert f"error: {store_copy / 'manifest.json'}: unreadable dataset manifest" in err
    assert f"delete the store folder {store_copy} and prepare it again" in err
    (store_copy / "manifest.json").write_text("[]")
    assert "not a JSON object" in refused(capsys, *train_args(store_copy, tmp_path))


def test_a_missing_manifest_says_to_prepare_the_store(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = refused(capsys, *train_args(tmp_path / "empty", tmp_path))
    assert f"error: {tmp_path / 'empty' / 'manifest.json'}: no dataset manifest" in err
    assert "run `python -m curriculum_bench prepare` first" in err


def test_a_mapped_array_removed_while_training_is_named(store_copy):
    from curriculum_bench.data.loader import open_split

    split = open_split(store_copy, "train", torch.device("cpu"), placement="mmap", workers=0)
    (store_copy / "train_images.npy").unlink()
    with pytest.raises(InputFileError, match="train_images.npy: cannot read the images"):
        next(split.batches(torch.arange(10), 5))


# ------------------------------------------------------------------------- run files, reports


def test_a_garbage_metrics_file_is_named_by_figure_and_table(tmp_path, capsys):
    good, bad = finished_run(tmp_path, "good"), finished_run(tmp_path, "bad")
    (bad / "metrics.json").write_text('{"final_acc": 0.')
    err = refused(
        capsys,
        "figure",
        "--study",
        "techniques",
        "--name",
        "accuracy",
        "--out",
        tmp_path / "f.png",
        good / "metrics.json",
        bad / "metrics.json",
    )
    assert f"error: {bad / 'metrics.json'}: cannot read run metrics" in err and "delete it and rerun" in err
    err = refused(
        capsys,
        "table",
        "--study",
        "techniques",
        "--out-md",
        tmp_path / "t.md",
        "--out-csv",
        tmp_path / "t.csv",
        bad / "metrics.json",
    )
    assert f"error: {bad / 'metrics.json'}: cannot read" in err  # report/table.py reads it with read_json_file
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "t.md").exists()


def test_a_garbage_history_is_named_by_figure(tmp_path, capsys):
    run = finished_run(tmp_path)
    (run / "history.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "test_')
    err = refused(
        capsys,
        "figure",
        "--study",
        "techniques",
        "--name",
        "accuracy",
        "--out",
        tmp_path / "f.png",
        run / "metrics.json",
    )
    assert f"error: {run / 'history.jsonl'}: line 2 of the run's per-epoch history is not JSON" in err


def test_an_unknown_figure_is_refused_with_the_names_there_are(tmp_path, capsys):
    run = finished_run(tmp_path)
    err = refused(
        capsys,
        "figure",
        "--study",
        "techniques",
        "--name",
        "acuracy",
        "--out",
        tmp_path / "f.png",
        run / "metrics.json",
    )
    assert "usage:" in err and "argument --name: no figure 'acuracy'" in err and "accuracy" in err


def test_probe_names_a_garbage_or_incomplete_metrics_file(digits_store, tmp_path, capsys):
    run = finished_run(tmp_path)
    (run / "metrics.json").write_text("garbage")
    args = ["probe", "--run-dir", run, "--data", digits_store, "--out", tmp_path / "probe.json", "--device", "cpu"]
    assert f"error: {run / 'metrics.json'}: cannot read the pretraining run's metrics" in refused(capsys, *args)
    (run / "metrics.json").write_text(json.dumps({"run": tiny_run(), "final_epoch": 1}))
    assert f"error: {run / 'metrics.json'}: the pretraining run's metrics without the key 'study'" in refused(
        capsys, *args
    )


def test_json_readers_name_the_file(tmp_path):
    with pytest.raises(MissingInputFile, match="absent.json: no such file") as missing:
        read_json_file(tmp_path / "absent.json", "run metrics")
    assert isinstance(missing.value, FileNotFoundError) and missing.value.path == tmp_path / "absent.json"
    (tmp_path / "m.json").write_text('{"a": 1}')
    assert read_json_file(tmp_path / "m.json", "run metrics", keys=("a",)) == {"a": 1}
    with pytest.raises(InputFileError, match=r"m.json: run metrics without the key 'b'"):
        read_json_file(tmp_path / "m.json", "run metrics", keys=("a", "b"))
    (tmp_path / "h.jsonl").write_text('{"a": 1}\n\n[2]\n')
    with pytest.raises(InputFileError, match=r"h.jsonl: line 3 of history is not a JSON object"):
        read_json_lines(tmp_path / "h.jsonl", "history")


# ---------------------------------------------------------------------------- CLI arguments


def test_a_missing_run_config_file_is_named(digits_store, tmp_path, capsys):
    run = train_args(digits_store, tmp_path)
    run[run.index("--run-config") + 1] = f"@{tmp_path / 'absent.json'}"
    err = refused(capsys, *run)
    assert "usage:" in err and f"argument --run-config: {tmp_path / 'absent.json'}: cannot read it" in err


def test_a_run_config_that_is_not_an_object_is_refused(digits_store, tmp_path, capsys):
    run = train_args(digits_store, tmp_path)
    run[run.index("--run-config") + 1] = "[1,2]"
    assert "argument --run-config: the argument is JSON but not an object {...}: a list" in refused(capsys, *run)
    run[run.index("--run-config") + 1] = "{1"
    assert "argument --run-config: the argument is not JSON" in refused(capsys, *run)
    broken = tiny_run()
    del broken["train"]
    assert "argument --run-config: the run config has no key 'train'" in refused(
        capsys, *train_args(digits_store, tmp_path, broken)
    )
    assert not (tmp_path / "run").exists()


def test_an_unavailable_cuda_device_is_refused_before_loading_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for command in (
        train_args(tmp_path / "no-store", tmp_path, None, "--device", "cuda"),
        [
            "probe",
            "--run-dir",
            tmp_path / "no-run",
            "--data",
            tmp_path / "no-store",
            "--out",
            tmp_path / "p.json",
            "--device",
            "cuda:1",
        ],
    ):
        err = refused(capsys, *command)
        assert "usage:" in err and "argument --device: " in err
        assert "CUDA is not available on this machine; available: cpu" in err
    assert "'gpu' is not a device name" in refused(capsys, *train_args(tmp_path, tmp_path, None, "--device", "gpu"))


def test_an_unknown_option_to_prepare_is_refused_by_argparse(tmp_path, capsys):
    err = refused(
        capsys,
        "prepare",
        "--dataset",
        "d",
        "--spec",
        '{"source": "sklearn_digits"}',
        "--out",
        tmp_path / "s",
        "--test-fraction",
        "0.2",
    )
    assert "usage: python -m curriculum_bench" in err and "unrecognized arguments: --test-fraction 0.2" in err
    assert not (tmp_path / "s").exists()


def test_a_programming_error_keeps_its_traceback(monkeypatch):
    def broken(args):
        return {}["train"]

    monkeypatch.setattr(cli, "cmd_list", broken)
    with pytest.raises(KeyError, match="train"):
        cli.main(["list"])
    monkeypatch.setattr(cli, "cmd_list", lambda args: int("x"))
    with pytest.raises(ValueError, match="invalid literal"):  # a bare ValueError is a bug, not a user error
        cli.main(["list"])


# ------------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign"])
def test_an_unreadable_checkpoint_is_set_aside_and_named(tmp_path, capsys, damage):
    path = tmp_path / "seed0.pt"
    save_checkpoint(path, {"run": tiny_run(), "model": {"w": torch.zeros(1000)}})
    data = path.read_bytes()
    if damage == "foreign":
        save_checkpoint(path, {"w": torch.zeros(3)})  # a state dict, not a training checkpoint
    else:
        path.write_bytes(
            {"truncated": data[: len(data) // 2], "garbage": b"\x00not a checkpoint", "empty": b""}[damage]
        )
    assert load_checkpoint(path) is None
    assert not path.exists() and (tmp_path / "seed0.pt.corrupt").exists()
    out = capsys.readouterr().out
    assert f"checkpoint {path} is " in out and f"moved it to {tmp_path / 'seed0.pt.corrupt'}" in out


def test_a_run_with_a_truncated_checkpoint_restarts_from_scratch(digits_store, tmp_path, capsys):
    (tmp_path / "ckpt.pt").write_bytes(b"PK\x03\x04 cut short")
    cli.main(train_args(digits_store, tmp_path))
    assert json.loads((tmp_path / "run/metrics.json").read_text())["final_epoch"] == 1
    assert (tmp_path / "ckpt.pt.corrupt").read_bytes() == b"PK\x03\x04 cut short"
    assert f"checkpoint {tmp_path / 'ckpt.pt'} is unreadable" in capsys.readouterr().out


# ------------------------------------------------------------------------------ atomic writes


class FullDisk:
    """A file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.real.write(bytes(data[: self.room]))
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def full_disk_open(room: int):
    def fake_open(path, mode="r", *args, **kwargs):
        return FullDisk(open(path, mode, *args, **kwargs), room)

    return fake_open


def test_an_atomic_write_on_a_full_disk_leaves_no_tmp(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_bytes(b"old")
    monkeypatch.setattr(store, "open", full_disk_open(10), raising=False)
    with pytest.raises(OSError) as err:
        store.atomic_write_bytes(target, b"x" * 100)
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


@pytest.mark.parametrize("fails_at", ["write", "fsync"])
def test_a_checkpoint_save_on_a_full_disk_leaves_no_tmp(tmp_path, monkeypatch, fails_at):
    path = tmp_path / "seed0.pt"
    save_checkpoint(path, {"run": tiny_run(), "step": 1})
    if fails_at == "write":
        # torch's zip writer turns the failed write into RuntimeError("... unexpected pos ...")
        monkeypatch.setattr(checkpoint, "open", full_disk_open(1000), raising=False)
        expected = (OSError, RuntimeError)
    else:

        def fsync(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(checkpoint.os, "fsync", fsync)
        expected = OSError
    with pytest.raises(expected):
        save_checkpoint(path, {"run": tiny_run(), "step": 2, "model": {"w": torch.zeros(10_000)}})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0.pt"]
    assert load_checkpoint(path)["step"] == 1
