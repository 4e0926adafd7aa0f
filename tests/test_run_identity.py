"""A checkpoint is resumed only by a job that reads the same content (issue: stale numbers).

Each case changes what a run reads while its resolved config stays the same, the way
Snakemake reruns a job after its inputs changed: the job must give the numbers of a fresh
run on the new inputs, never the old checkpoint's.
"""

import json
from pathlib import Path

import pytest
import torch

from curriculum_bench.data.prepare import prepare
from curriculum_bench.models import create_model
from curriculum_bench.train.engine import fit
from curriculum_bench.train.identity import model_files, why_not_resume

from .conftest import tiny_run
from .test_engine import results_only

DIGITS = {"source": "sklearn_digits", "test_fraction": 0.2}


def train_twice_across_a_change(run, store, tmp_path, change, stop_after_epoch=1):
    """Train part of `run`, apply `change`, run the same job again; also a fresh run after it."""
    fit(run, store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu", stop_after_epoch=stop_after_epoch)
    change()
    again = fit(run, store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu")
    fresh = fit(run, store, tmp_path / "fresh", tmp_path / "fresh.pt", device="cpu")
    return again, fresh


def assert_same_numbers(again, fresh, tmp_path):
    assert again["resumed_at"] == []
    assert (again["final_acc"], again["best_acc"]) == (fresh["final_acc"], fresh["best_acc"])
    assert results_only(tmp_path / "run/history.jsonl") == results_only(tmp_path / "fresh/history.jsonl")


@pytest.mark.parametrize("stop_after_epoch", [1, None], ids=["mid-run", "finished"])
def test_a_dataset_prepared_again_with_another_split_seed_is_not_resumed(tmp_path, capsys, stop_after_epoch):
    store = tmp_path / "store"
    prepare("digits_sklearn", {**DIGITS, "split_seed": 0}, store)
    run = tiny_run(epochs=2)
    old = fit(run, store, tmp_path / "old", tmp_path / "old.pt", device="cpu")

    again, fresh = train_twice_across_a_change(
        run, store, tmp_path, lambda: prepare("digits_sklearn", {**DIGITS, "split_seed": 1}, store), stop_after_epoch
    )
    assert_same_numbers(again, fresh, tmp_path)
    assert "the content of its inputs changed (dataset)" in capsys.readouterr().out
    assert again["inputs"]["dataset"]["sha256"] != old["inputs"]["dataset"]["sha256"]


def test_a_finished_checkpoint_is_not_a_resume_point_for_a_new_job(digits_store, tmp_path, capsys):
    run = tiny_run(epochs=2)
    first = fit(run, digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu")
    (tmp_path / "run/metrics.json").unlink()  # what Snakemake does before it reruns the job
    again = fit(run, digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu")
    assert again["resumed_at"] == [] and again["final_acc"] == first["final_acc"]
    assert "already finished all 2 epochs" in capsys.readouterr().out


def write_selection(path, indices, num_train):
    path.write_text(json.dumps({"indices": indices, "num_train": num_train}))


def test_a_new_coreset_selection_is_not_resumed(digits_store, tmp_path, capsys):
    selection = tmp_path / "selection.json"
    write_selection(selection, list(range(0, 1437, 3)), 1437)
    run = tiny_run({"coreset_subset": {"selection": str(selection)}}, epochs=2)
    again, fresh = train_twice_across_a_change(
        run, digits_store, tmp_path, lambda: write_selection(selection, list(range(0, 1437, 7)), 1437)
    )
    assert_same_numbers(again, fresh, tmp_path)
    assert again["inputs"]["methods.coreset_subset.selection"]["path"] == str(selection)
    assert "inputs changed (methods.coreset_subset.selection)" in capsys.readouterr().out


def save_convnet_weights(path, seed):
    torch.manual_seed(seed)
    torch.save(create_model("mlt_convnet", (1, 8, 8), 10).state_dict(), path)


def test_retrained_teacher_restarts_the_student(digits_store, tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    save_convnet_weights(teacher, 0)
    run = tiny_run({"distill": {"teacher_checkpoint": str(teacher)}}, epochs=2)
    again, fresh = train_twice_across_a_change(run, digits_store, tmp_path, lambda: save_convnet_weights(teacher, 1))
    assert_same_numbers(again, fresh, tmp_path)
    assert "inputs changed (methods.distill.teacher)" in capsys.readouterr().out


def test_changed_pretrained_weights_restart_the_run(digits_store, tmp_path, capsys):
    weights = tmp_path / "weights.pt"
    save_convnet_weights(weights, 0)
    run = {**tiny_run(epochs=2), "model_args": {"weights": str(weights)}}
    again, fresh = train_twice_across_a_change(run, digits_store, tmp_path, lambda: save_convnet_weights(weights, 1))
    assert_same_numbers(again, fresh, tmp_path)
    assert "inputs changed (model_args.weights)" in capsys.readouterr().out


def test_unchanged_inputs_still_resume(digits_store, tmp_path):
    selection = tmp_path / "selection.json"
    write_selection(selection, list(range(0, 1437, 3)), 1437)
    run = tiny_run({"coreset_subset": {"selection": str(selection)}}, epochs=2)
    fit(run, digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu", stop_after_epoch=1)
    selection.write_text(selection.read_text())  # touched, same content
    assert fit(run, digits_store, tmp_path / "run", tmp_path / "ckpt.pt", device="cpu")["resumed_at"] == [[1, 0]]


def test_model_files_are_found_at_any_depth():
    args = {"encoder": "resnet50", "encoder_args": {"pretrained": "w.pth", "head": "mlp"}, "weights": ""}
    assert model_files(args) == {"model_args.encoder_args.pretrained": Path("w.pth")}


def test_a_checkpoint_without_input_checksums_is_not_resumed():
    checkpoint = {"run": {"a": 1}, "history": [], "progress": None}
    assert "records no input checksums" in why_not_resume(checkpoint, {"run": {"a": 1}, "inputs": {}}, 3)
