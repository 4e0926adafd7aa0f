"""Hybrid figures: LeRaC learning rates at both ends of each epoch, blur schedule panels."""

import json

import pytest

from curriculum_bench.report.figures import figure_names, load_runs, write_figure
from curriculum_bench.report.figures_hybrid import lerac_lr_points


def fake_run(tmp_path, variant, methods, records):
    folder = tmp_path / variant
    folder.mkdir()
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "study": "hybrid",
                "dataset": "toy",
                "model": "m",
                "variant": variant,
                "seed": 0,
                "run": {"methods": methods},
            }
        )
    )
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder / "metrics.json"


LERAC_HISTORY = [  # base LR 0.1 then 0.05; two groups, k = 1
    {
        "epoch": 1,
        "eval_acc": 0.5,
        "lr": [0.1, 0.01],
        "lerac/groups": ["a", "classifier"],
        "lerac/lr_scale_first_step": [1.0, 0.001],
        "lerac/lr_scale_last_step": [1.0, 0.1],
    },
    {
        "epoch": 2,
        "eval_acc": 0.6,
        "lr": [0.05, 0.05],
        "lerac/groups": ["a", "classifier"],
        "lerac/lr_scale_first_step": [1.0, 1.0],
        "lerac/lr_scale_last_step": [1.0, 1.0],
    },
]


def test_lerac_points_give_the_lr_at_both_ends_of_each_epoch(tmp_path):
    (run,) = load_runs([fake_run(tmp_path, "lerac", {"lerac": {"lerac_epochs": 1}}, LERAC_HISTORY)])
    names, xs, lrs = lerac_lr_points(run)
    assert names == ["a", "classifier"] and xs == [0, 1, 1, 2]
    assert lrs == [pytest.approx([0.1, 1e-4]), [0.1, 0.01], pytest.approx([0.05, 0.05]), [0.05, 0.05]]


def test_hybrid_figures_are_registered_and_drawn(tmp_path):
    assert figure_names("hybrid")[1:] == ["lerac_lr", "blur_schedule"]
    blur = [
        {"epoch": e + 1, "eval_acc": 0.5, "blur/sigma": s, "blur/probability": p}
        for e, (s, p) in enumerate([(1.0, 1.0), (1.0, 0.5), (0.0, 0.0)])
    ]
    paths = [
        fake_run(tmp_path, "lerac", {"lerac": {"lerac_epochs": 1}}, LERAC_HISTORY),
        fake_run(tmp_path, "blur", {"blur": {}}, blur),
    ]
    for name in ("lerac_lr", "blur_schedule"):
        write_figure("hybrid", name, paths, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0
