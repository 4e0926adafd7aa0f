"""A study table is rebuilt whenever the set of runs it should hold changes, through the real
`snakemake`, with no .snakemake/metadata to lean on (a fresh checkout, a DVC restore)."""

import shutil

import pandas as pd
import pytest
import yaml

from .conftest import TINY, snakemake

pytestmark = pytest.mark.workflow

TABLE = "paper_tables/techniques.csv"
RUN = "results/techniques/digits_sklearn/mlt_convnet/baseline/seed{}"


@pytest.fixture(scope="module")
def one_study(tmp_path_factory):
    """The tiny config cut to one study, one variant, two seeds of one epoch: a table in seconds."""
    config = yaml.safe_load(TINY.read_text())
    study = config["studies"]["techniques"]
    study["variants"] = {"baseline": {}}
    study["train"]["epochs"] = 1
    config = {"datasets": {"digits_sklearn": config["datasets"]["digits_sklearn"]}, "studies": {"techniques": study}}
    folder = tmp_path_factory.mktemp("table_rebuild")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = folder / "work"
    result = snakemake(workdir, "--configfile", str(path), "--cores", "2", TABLE)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config, folder


def plan(workdir, configfile) -> set[str]:
    """The rules `snakemake -n` would run for the table, with no metadata to compare against."""
    shutil.rmtree(workdir / ".snakemake/metadata", ignore_errors=True)
    result = snakemake(workdir, TABLE, "--configfile", str(configfile), "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout + result.stderr
    if "Nothing to be done" in out:
        return set()
    stats = out.split("Job stats:")[1].split("total")[0].splitlines()[3:]  # job, count, ---- header
    return {line.split()[0] for line in stats if line.strip()}


def seeds_in_table(workdir) -> str:
    return str(pd.read_csv(workdir / TABLE)["seed_list"].tolist()[0])


def test_a_seed_removed_from_the_config_rebuilds_the_table(one_study):
    workdir, config, folder = one_study
    assert plan(workdir, folder / "config.yaml") == set()
    fewer = folder / "one_seed.yaml"
    config = yaml.safe_load(yaml.safe_dump(config))
    config["studies"]["techniques"]["seeds"] = [0]
    fewer.write_text(yaml.safe_dump(config))
    assert plan(workdir, fewer) == {"study_table"}
    assert snakemake(workdir, "--configfile", str(fewer), "--cores", "2", TABLE).returncode == 0
    assert seeds_in_table(workdir) == "0"
    assert plan(workdir, fewer) == set()


def test_a_deleted_run_folder_is_retrained_and_the_table_rebuilt(one_study):
    workdir, _, folder = one_study
    configfile = folder / "config.yaml"
    shutil.rmtree(workdir / RUN.format(1))
    # Today: "Nothing to be done", and the table keeps the deleted run.
    assert plan(workdir, configfile) == {"train", "study_table"}
    result = snakemake(workdir, "--configfile", str(configfile), "--cores", "2", TABLE)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (workdir / RUN.format(1) / "metrics.json").exists()
    assert seeds_in_table(workdir) == "0 1"
    assert plan(workdir, configfile) == set()
