"""The workflow end to end through the real `snakemake` command, on .test/config.yaml."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from .conftest import REPO, TINY, snakemake

pytestmark = pytest.mark.workflow


def test_tiny_config_writes_one_row_per_variant_from_every_seed(tiny_workflow):
    config = yaml.safe_load(TINY.read_text())["studies"]["techniques"]
    table = pd.read_csv(tiny_workflow / "paper_tables/techniques.csv")
    assert table["variant"].tolist() == list(config["variants"])
    assert table["seeds"].tolist() == [len(config["seeds"])] * len(config["variants"])
    assert set(table["split"]) == {"test"} and set(table["epochs"]) == {config["train"]["epochs"]}
    assert table["final_acc_mean"].between(0, 1).all()
    md = (tiny_workflow / "paper_tables/techniques.md").read_text()
    assert all(f"| {variant} " in md for variant in config["variants"])


def test_every_run_has_metrics_history_and_a_checkpoint_outside_results(tiny_workflow):
    config = yaml.safe_load(TINY.read_text())["studies"]["techniques"]
    for variant in config["variants"]:
        for seed in config["seeds"]:
            run = f"techniques/digits_sklearn/mlt_convnet/{variant}/seed{seed}"
            metrics = json.loads((tiny_workflow / "results" / run / "metrics.json").read_text())
            assert (metrics["variant"], metrics["seed"]) == (variant, seed)
            history = (tiny_workflow / "results" / run / "history.jsonl").read_text().splitlines()
            assert len(history) == config["train"]["epochs"]
            assert (tiny_workflow / "checkpoints" / f"{run}.pt").exists()
            assert (tiny_workflow / "logs/train" / f"{run}.log").read_text().startswith("run ")
    manifest = json.loads((tiny_workflow / "resources/datasets/digits_sklearn/manifest.json").read_text())
    assert manifest["splits"] == {"train": 1437, "test": 360}


def test_tiny_hybrid_study_logs_its_curriculum_and_draws_its_figures(tiny_workflow):
    run = tiny_workflow / "results/hybrid/digits_sklearn/mlt_convnet/hybrid/seed0"
    first = json.loads((run / "history.jsonl").read_text().splitlines()[0])
    assert first["blur/sigma"] == 1.0 and first["lerac/groups"] == ["block1", "block2", "classifier"]
    assert pd.read_csv(tiny_workflow / "paper_tables/hybrid.csv")["variant"].tolist() == ["baseline", "hybrid"]
    for name in ("accuracy", "lerac_lr", "blur_schedule"):
        assert (tiny_workflow / f"paper_tables/figures/hybrid/{name}.png").exists()


def test_the_index_regenerates_with_the_config_files_the_workflow_ran_with(tiny_workflow):
    index = (tiny_workflow / "paper_tables/README.md").read_text()
    given = os.path.relpath(TINY, tiny_workflow)
    assert f"`{given}`" in index and f"--configfile {given} paper_tables/techniques.md" in index
    assert "config/config.yaml" not in index


def test_a_finished_workflow_has_nothing_left_to_do(tiny_workflow):
    result = snakemake(tiny_workflow, "--configfile", str(TINY), "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_changed_training_setting_reruns_the_runs_and_table(tiny_workflow, tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["studies"]["techniques"]["train"]["lr"] = 0.005
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = snakemake(tiny_workflow, "--configfile", str(changed), "-n", "--quiet", "rules")
    out = result.stdout + result.stderr
    assert result.returncode == 0
    assert "train" in out and "study_table" in out and "prepare_dataset" not in out


def test_lint_and_snakefmt_are_clean():
    lint = snakemake(REPO, "--lint")
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout[-3000:]
    fmt = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stderr


def test_python_is_ruff_clean():
    """The Python side is held to what snakefmt holds the workflow to: pyproject.toml's [tool.ruff]."""
    for command in (["check", "--output-format", "concise", "."], ["format", "--check", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, f"ruff {command[0]}:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"
