"""The paper smoke run: every distinct code path of config/paper.yaml through the real snakemake.

curriculum_bench.smoke derives the runs from config/paper.yaml itself; tests/fabricate.py writes
the raw files (MNIST IDX, CIFAR pickles, ImageNet-100 folders) and the ImageNet weights they
read. Two snakemake calls in one temporary working directory: the selected runs (every model at
its real input size, every dataset's preparation, every method) with the runs config, then
`all` with the tables config, which reuses them and adds the coreset stages, linear probes,
tables, figures and the index. Run it alone: python -m pytest tests/test_paper_smoke.py
"""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from curriculum_bench import smoke
from curriculum_bench.config import METRICS
from curriculum_bench.data.torchvision_sources import MD5_OVERRIDES_ENV
from curriculum_bench.report import FABRICATED_WARNING
from curriculum_bench.report.figure_names import figure_names

from .conftest import REPO
from .fabricate import MD5_FILE, materialise

pytestmark = pytest.mark.workflow
PAPER = REPO / "config/paper.yaml"


def paper_plan() -> smoke.SmokePlan:
    return smoke.smoke_plan(yaml.safe_load(PAPER.read_text()))


def snakemake(
    workdir: Path, md5_file: Path, configfile: str, *args: str, timeout: int = 1200
) -> subprocess.CompletedProcess:
    """The real snakemake on this repository's workflow in `workdir`, fabricated md5s known to
    the prepare jobs; every failed job is reported (--keep-going) with its log."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / configfile),
        "--cores",
        "2",
        "--keep-going",
        *args,
    ]
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, MD5_OVERRIDES_ENV: str(md5_file)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def failure(result: subprocess.CompletedProcess) -> str:
    """What snakemake says about failed jobs (each `Error in rule` block and its log)."""
    out = result.stdout + result.stderr
    start = out.find("Error in rule")
    return out[start - 200 :] if start >= 0 else out[-6000:]


@pytest.fixture(scope="session")
def paper_smoke(tmp_path_factory):
    """The smoke run, once per session; weights and checkpoints (GBs) are removed afterwards."""
    workdir = tmp_path_factory.mktemp("paper_smoke")
    plan = paper_plan()
    print(plan.summary())
    md5_file = materialise(plan, workdir)
    runs = snakemake(workdir, md5_file, smoke.RUNS_CONFIG, *plan.targets)
    assert runs.returncode == 0, failure(runs)
    tables = snakemake(workdir, md5_file, smoke.TABLES_CONFIG)
    assert tables.returncode == 0, failure(tables)
    yield workdir, plan
    for folder in ("checkpoints", "results", smoke.FABRICATED):
        for pt in (workdir / folder).rglob("*.pt*"):
            pt.unlink()


def test_every_selected_run_and_dataset_is_made_from_fabricated_files(paper_smoke):
    workdir, plan = paper_smoke
    for runs in plan.selected.values():
        for run in runs:
            metrics = json.loads((workdir / METRICS.format(**run)).read_text())
            assert metrics["run"] == run and metrics["final_epoch"] == run["train"]["epochs"]
            assert metrics["num_train"] <= 60 and metrics["device"] == "cpu"
    for raw in plan.raw:
        manifest = json.loads((workdir / f"resources/datasets/{raw.dataset}/manifest.json").read_text())
        source = manifest["source"]
        assert manifest["splits"]["train"] == raw.train
        if raw.source == "imagenet100":
            assert source["path"] == raw.path and source["layout"] == raw.layout
        else:  # torchvision's files, each checked against the md5 it was fabricated with
            assert source["root"] == raw.path and source["downloaded"] is False
            assert {entry["checked"] for entry in source["files"].values()} == {"md5 override"}
    assert (workdir / smoke.MARKER).read_text().startswith("# FABRICATED DATA")


def test_each_model_runs_at_its_paper_input_size(paper_smoke):
    """ResNet-18 (CIFAR stem at 32 and 224 px, ImageNet form at 224), ResNet-50 (coreset core,
    SimCLR encoder), WRN-28-10, CvT-13 and ConvNeXt-Tiny (224 px, CIFAR resized inside)."""
    workdir, _ = paper_smoke
    seen = set()
    for metrics_file in (workdir / "results").rglob("metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        manifest = json.loads((workdir / f"resources/datasets/{metrics['dataset']}/manifest.json").read_text())
        seen.add((metrics["model"], manifest["image_shape"][-1]))
    paper = yaml.safe_load(PAPER.read_text())
    for study, spec in paper["studies"].items():
        stages = [spec[s] for s in ("proxy", "core", "removal") if s in spec] or [spec]
        models = {m for stage in stages for m in stage["models"]}
        assert models <= {model for model, _ in seen}, study
    assert {
        ("resnet18_cifar", 32),
        ("resnet18_cifar", 224),
        ("resnet18", 224),
        ("cvt13", 224),
        ("convnext_tiny", 32),
        ("convnext_tiny", 224),
        ("wrn28_10", 32),
        ("resnet50", 32),
        ("simclr", 32),
    } <= seen


def test_tables_figures_and_index_say_the_data_are_fabricated(paper_smoke):
    workdir, plan = paper_smoke
    index = (workdir / "paper_tables/README.md").read_text()
    assert smoke.TABLES_CONFIG in index and "FABRICATED" in smoke.TABLES_CONFIG
    assert (workdir / "paper_tables" / smoke.MARKER).read_text().startswith("# FABRICATED DATA")
    assert FABRICATED_WARNING in index and FABRICATED_WARNING in (workdir / "paper_tables/claims.md").read_text()
    for study in plan.tables_config["studies"]:
        assert (workdir / f"paper_tables/{study}.md").read_text().split("\n")[2] == FABRICATED_WARNING, study
        assert len(pd.read_csv(workdir / f"paper_tables/{study}.csv")) > 0, study
        assert all((workdir / f"paper_tables/figures/{study}/{name}.png").exists() for name in figure_names(study))
    assert not (REPO / "paper_tables" / smoke.MARKER).exists()


def test_the_smoke_set_follows_the_paper_config():
    """Derived, not copied: a new model runs at each input size it meets, a new method runs; a
    variant that only changes a number is not run twice."""
    paper = yaml.safe_load(PAPER.read_text())
    hybrid = paper["studies"]["hybrid"]
    hybrid["models"]["resnet18"] = {}
    hybrid["variants"]["dropout"] = {"progressive_dropout": {"schedule": "linear_epoch", "end": 0.3}}
    hybrid["variants"]["blur_sigma2"] = {"blur": {**hybrid["variants"]["blur"]["blur"], "sigma": 2.0}}
    plan = smoke.smoke_plan(paper)
    ran = {(r["dataset"], r["model"], r["variant"]) for r in plan.selected["hybrid"]}
    assert {(d, "resnet18") for d in hybrid["datasets"]} <= {(d, m) for d, m, _ in ran}
    assert "dropout" in {v for _, _, v in ran} and "blur_sigma2" in plan.not_run["hybrid"]
    for study, spec in plan.runs_config["studies"].items():
        stages = [spec[s] for s in ("proxy", "core", "removal") if s in spec] or [spec]
        assert all(
            len(stage["seeds"]) == 1 and stage["train"]["batch_size"] <= smoke.SMOKE_BATCH for stage in stages
        ), study


def test_prepare_jobs_read_fabricated_md5s_from_the_environment(tmp_path, monkeypatch):
    """The workflow's prepare jobs are other processes: they learn the fabricated files' md5s
    from $CURRICULUM_BENCH_MD5_OVERRIDES, and the store records them as overrides."""
    from curriculum_bench.data.prepare import prepare

    from .fabricate import random_mnist, write_mnist

    md5_file = tmp_path / "md5.json"
    md5_file.write_text(json.dumps({"mnist": write_mnist(tmp_path / "raw", random_mnist(4, 2))}))
    spec = {"source": "mnist", "data_root": str(tmp_path / "raw"), "download": False}
    with pytest.raises(ValueError, match="md5 .* does not match"):
        prepare("mnist", spec, tmp_path / "refused")
    monkeypatch.setenv(MD5_OVERRIDES_ENV, str(md5_file))
    manifest = prepare("mnist", spec, tmp_path / "store")
    assert {e["checked"] for e in manifest["source"]["files"].values()} == {"md5 override"}


def test_a_wrong_input_size_fails_the_smoke_run_naming_the_job(paper_smoke, tmp_path):
    """ConvNeXt resizing its input to 8 px (its stages downsample 32x) breaks its run: the
    smoke run (here only that run, on the store the smoke run prepared) fails naming the job."""
    workdir, plan = paper_smoke
    config = copy.deepcopy(plan.runs_config)
    config["studies"]["hybrid"]["models"]["convnext_tiny"]["input_size"] = 8
    run = next(r for r in plan.selected["hybrid"] if r["model"] == "convnext_tiny")
    store = f"resources/datasets/{run['dataset']}"
    shutil.copytree(workdir / store, tmp_path / store)
    (tmp_path / smoke.FABRICATED).symlink_to(workdir / smoke.FABRICATED)  # the inputs the plan checks
    (tmp_path / smoke.RUNS_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    md5_file = workdir / smoke.FABRICATED / MD5_FILE
    result = snakemake(tmp_path, md5_file, smoke.RUNS_CONFIG, METRICS.format(**run))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule train" in out and "model=convnext_tiny" in out, out[-3000:]
    assert "Kernel size can't be greater than actual input size" in out  # the job's log, shown


def test_the_smoke_configs_keep_every_row_distinct():
    """Smaller batches and epochs must not make two rows one run (a batch-size sweep stays a sweep)."""
    from curriculum_bench.plan import check_rows, load_config

    plan = smoke.smoke_plan(load_config([PAPER]))
    check_rows(plan.runs_config)
    check_rows(plan.tables_config)
    contrastive = plan.runs_config["studies"]["contrastive"]
    batches = [contrastive["train"]["batch_size"]] + [
        contrastive["variants"][v]["train"]["batch_size"] for v in ("ntxent_bs512", "ntxent_bs1024")
    ]
    assert batches == sorted(set(batches)) and max(batches) <= 8
