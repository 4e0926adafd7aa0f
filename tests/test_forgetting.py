"""Forgetting events (docs/methods.md §5.1, §8): counts from scripted correctness, both never-learned
treatments, summing over proxy runs, and the recording hook at its moments and on resume."""

import numpy as np
import pytest
import torch

from curriculum_bench.coreset.forgetting_stats import (
    first_learned_presentation,
    forgetting_events,
    forgetting_table,
    run_scores,
)
from curriculum_bench.curricula.forgetting import ForgettingConfig, ForgettingRecorder, presentation_margin
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import TrainState

from .conftest import tiny_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Rows are presentations, columns examples; -1 = not presented at that row.
SCRIPT = np.array(
    [
        # ex0 ex1 ex2 ex3 ex4 ex5
        [0, 1, 0, 1, 0, 1],
        [1, 1, 0, 0, 0, -1],
        [0, 1, 0, 0, 0, 0],
        [1, 1, 0, 1, 0, 1],
        [0, 1, 0, 1, 1, -1],
    ],
    dtype=np.int8,
)
# ex0: 0 1 0 1 0 -> two 1->0 transitions; ex1: always right; ex2: never learned;
# ex3: one forgetting, then relearned; ex4: right only at its last presentation
# (unforgettable, §8); ex5: 1 _ 0 1 _ -> consecutive presentations 1->0 is one event.
EVENTS = [2, 0, 0, 1, 0, 1]


def test_forgetting_events_count_one_to_zero_between_consecutive_presentations():
    assert forgetting_events(SCRIPT).tolist() == EVENTS


def test_a_wrong_first_presentation_is_not_a_forgetting_event():
    assert forgetting_events(np.array([[0], [0], [1]], dtype=np.int8)).tolist() == [0]


def test_first_learned_presentation_is_the_first_correct_one_or_minus_one():
    assert first_learned_presentation(SCRIPT).tolist() == [1, 0, -1, 0, 4, 0]


def test_never_learned_counts_its_presentations_in_fe_mode():
    # ex2 was presented 5 times and never right: FE ranks it at npresentations = 5.
    assert run_scores(SCRIPT, "presentations").tolist() == [2, 0, 5, 1, 0, 1]


def test_never_learned_counts_max_plus_one_in_cifar_1k_mode():
    # C1K: events + (max(events) + 1) * [never correct] = 0 + (2 + 1).
    assert run_scores(SCRIPT, "max_plus_one").tolist() == [2, 0, 3, 1, 0, 1]


def test_unknown_never_learned_treatment_is_rejected_by_name():
    with pytest.raises(ValueError, match="never_learned must be one of"):
        run_scores(SCRIPT, "zero")


def test_scores_and_events_are_summed_over_proxy_runs():
    labels = np.arange(6) % 2
    epochs = np.tile(np.arange(5, dtype=np.int16)[:, None], (1, 6))
    second = np.ones_like(SCRIPT)
    second[1, 0] = 0  # ex0 forgotten once more; ex2 learned in this run
    runs = [
        {"correct": SCRIPT, "epoch": epochs, "labels": labels},
        {"correct": second, "epoch": epochs, "labels": labels},
    ]
    table = forgetting_table(runs, "presentations")
    assert table["events"].tolist() == [3, 0, 0, 1, 0, 1]
    assert table["score"].tolist() == [3, 0, 5, 1, 0, 1]
    assert table["never_learned_runs"].tolist() == [0, 0, 1, 0, 0, 0]
    # 1-based epochs, earliest over runs: ex2 is learned in run 2's first epoch.
    assert table["first_learned_epoch"].tolist() == [1, 1, 1, 1, 1, 1]
    assert table["presentations"].tolist() == [10, 10, 10, 10, 10, 8]


def test_runs_on_different_train_splits_are_not_summed():
    run = {"correct": SCRIPT, "epoch": SCRIPT.astype(np.int16), "labels": np.zeros(6, dtype=np.int64)}
    with pytest.raises(ValueError, match="different train splits"):
        forgetting_table([run, {**run, "labels": np.ones(6, dtype=np.int64)}], "presentations")


def test_margin_is_true_logit_minus_largest_other():
    logits = torch.tensor([[2.0, 5.0, 1.0], [0.5, -1.0, 3.0]])
    assert presentation_margin(logits, torch.tensor([1, 0])).tolist() == [3.0, -2.5]


def recorder(num_examples: int, epochs: int) -> ForgettingRecorder:
    hook = ForgettingRecorder(ForgettingConfig())
    labels = torch.zeros(num_examples, dtype=torch.long)
    hook.on_fit_start(TrainState(torch.nn.Linear(1, 1), None, torch.device("cpu"), labels, 2, epochs))
    return hook


def test_recorder_writes_each_presentation_in_the_next_row_of_its_example():
    hook = recorder(3, epochs=2)
    right, wrong = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    # The engine shows the epoch's order before its first batch; the recorder makes room
    # for the rows it needs then, not with a host sync at every step.
    state = TrainState(
        torch.nn.Linear(1, 1),
        None,
        torch.device("cpu"),
        torch.zeros(3, dtype=torch.long),
        2,
        2,
        order=torch.tensor([2, 0, 2, 2]),
    )
    hook.on_epoch_start(state)
    hook.on_batch_start(state)
    # Sampling with replacement: example 2 twice in one batch is two presentations.
    hook.after_forward(state, torch.tensor([2, 0, 2]), torch.cat([right, wrong, wrong]), torch.tensor([1, 1, 1]))
    hook.after_forward(state, torch.tensor([2]), right, torch.tensor([1]))
    correct = hook.tables["correct"][:3]  # grown past the 2 rows of a one-presentation-per-epoch run
    assert correct[:, 2].tolist() == [1, 0, 1]
    assert correct[:, 0].tolist() == [0, -1, -1] and correct[:, 1].tolist() == [-1, -1, -1]
    assert hook.presentations.tolist() == [1, 0, 3]


def test_resumed_proxy_records_the_same_presentations_as_an_uninterrupted_one(digits_store, tmp_path):
    run = tiny_run({"forgetting": {}}, epochs=3)
    fit(run, digits_store, tmp_path / "once", tmp_path / "once.pt", device="cpu")
    assert fit(run, digits_store, tmp_path / "twice", tmp_path / "twice.pt", device="cpu", stop_after_epoch=1) is None
    fit(run, digits_store, tmp_path / "twice", tmp_path / "twice.pt", device="cpu")
    once, twice = np.load(tmp_path / "once/forgetting.npz"), np.load(tmp_path / "twice/forgetting.npz")
    assert once["correct"].shape == (3, 1437)
    assert (once["correct"] >= 0).all()  # a shuffle presents every example once per epoch
    assert once["epoch"][:, 0].tolist() == [0, 1, 2]
    for key in ("correct", "epoch", "loss", "margin", "presentations", "labels"):
        np.testing.assert_array_equal(once[key], twice[key], err_msg=key)
