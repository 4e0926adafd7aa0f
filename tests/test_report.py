"""`snakemake --report` gathers every study's table and figures; the page works in a browser;
paper_tables/README.md indexes them. All on the tiny config, through the real snakemake."""

import json
import re
from pathlib import Path

import pytest
import yaml

from curriculum_bench.report.figures import figure_names

from .browser import Browser, find_or_install_chromium
from .conftest import REPO, TINY, snakemake

pytestmark = pytest.mark.workflow
ARTIFACTS = REPO / "test-artifacts"  # kept after the run (git-ignored): the report screenshot


def embedded_json(html: str, name: str):
    """The value of `var <name> = {...};` that Snakemake's report embeds for its app."""
    match = re.search(rf"var {name} = (\{{.*?\}});\n", html, flags=re.S)
    assert match, f"no `var {name}` in the report"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def report(tiny_workflow) -> Path:
    result = snakemake(tiny_workflow, "--configfile", str(TINY), "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    return tiny_workflow / "report.html"


def test_report_has_every_study_table_and_figure_with_captions(report):
    config = yaml.safe_load(TINY.read_text())
    html = report.read_text()
    categories = embedded_json(html, "categories")
    results = embedded_json(html, "results")
    assert set(categories) == {*config["studies"], "claims"}
    for study, spec in config["studies"].items():
        table = f"paper_tables/{study}.html"
        figures = {f"paper_tables/figures/{study}/{name}.png" for name in figure_names(study)}
        assert categories[study]["table"] == [table]
        assert set(categories[study]["figures"]) == figures
        caption = results[table]["caption"]
        # The caption says what was run, and that reported numbers are not measured here.
        train = spec.get("train") or spec["core"]["train"]  # the coreset study has stages
        assert f"{train['epochs']} epochs" in caption and "seeds" in caption
        assert all(variant in caption for variant in spec.get("variants", {}))
        assert all(dataset in caption for dataset in spec["datasets"])
        assert "reported" in caption and "not measured here" in caption
        for figure in figures:
            assert "seeds" in results[figure]["caption"]
    assert "reproduces five curriculum-learning studies" in html  # the workflow description


def test_report_has_the_claims_section_with_a_verdict_per_claim(report, tiny_workflow):
    html = report.read_text()
    assert embedded_json(html, "categories")["claims"] == {"Other": ["paper_tables/claims.html"]}
    assert "Student-t" in embedded_json(html, "results")["paper_tables/claims.html"]["caption"]
    claims = (tiny_workflow / "paper_tables/claims.md").read_text()
    # the tiny config trains both rows of the techniques claim over 2 seeds: a verdict with its interval
    row = next(line for line in claims.splitlines() if "weighted_sampling − baseline" in line)
    assert "| 2 " in row and re.search(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", row)
    assert re.search(r"(reproduced|contradicted|inconclusive)", row)
    assert "not run" in claims  # the hybrid claims name rows the tiny config lacks


def test_report_opens_in_a_browser_without_script_errors(report):
    chromium, why = find_or_install_chromium()
    if chromium is None:
        pytest.skip(f"no headless browser: {why}")
    config = yaml.safe_load(TINY.read_text())
    browser = Browser(chromium)
    try:
        browser.open(report.as_uri())
        assert browser.evaluate("document.getElementById('app').children.length") > 0  # the app rendered
        # Open "Results", where the categories are listed, as a reader would.
        # The innermost element titled "Results" carries the click handler.
        browser.evaluate("""[...document.querySelectorAll('nav *')]
                              .filter(e => e.textContent.trim() === 'Results').pop().click()""")
        browser.wait(1.0)
        nav = browser.evaluate("document.querySelector('nav').innerText")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / "report.png")
        assert browser.errors == []
    finally:
        browser.close()
    for study in config["studies"]:
        assert study in nav, nav


def test_paper_tables_index_lists_every_table_and_figure_with_its_command(tiny_workflow):
    config = yaml.safe_load(TINY.read_text())
    index = (tiny_workflow / "paper_tables/README.md").read_text()
    assert ".test/config.yaml" in index
    for study in config["studies"]:
        assert f"## {study}" in index
        assert f"paper_tables/{study}.md`" in index
        for name in figure_names(study):
            line = next(line for line in index.splitlines() if f"figures/{study}/{name}.png)" in line)
            assert f"paper_tables/figures/{study}/{name}.png`" in line
            assert (tiny_workflow / f"paper_tables/figures/{study}/{name}.png").exists()


def test_index_summary_names_what_each_study_ran_coreset_stages_included(tiny_workflow):
    index = (tiny_workflow / "paper_tables/README.md").read_text()
    summary = {
        study: index.split(f"## {study}\n\n", 1)[1].splitlines()[0]
        for study in yaml.safe_load(TINY.read_text())["studies"]
    }
    assert summary["techniques"] == (
        "Datasets digits_sklearn; models mlt_convnet; variants baseline, "
        "weighted_sampling, progressive_dropout, self_labeling; 8 runs: "
        "2 seeds (0 1), 2 epochs."
    )
    coreset = summary["coreset"]
    assert "models mlt_convnet, mlt_convnet_finetune;" in coreset and "10 runs:" in coreset
    assert "proxy (mlt_convnet): 1 seed (0), 3 epochs" in coreset
    assert "random_frozen (mlt_convnet_finetune): 1 seed (0), 2 epochs" in coreset
    assert "remove_random_400 (mlt_convnet): 1 seed (0), 1 epoch." in coreset
    assert "0 seeds" not in index


def test_browser_helper_reports_a_script_error(tmp_path):
    """The browser check would catch a broken page, not pass vacuously."""
    chromium, why = find_or_install_chromium()
    if chromium is None:
        pytest.skip(f"no headless browser: {why}")
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    browser = Browser(chromium)
    try:
        browser.open(page.as_uri(), settle_s=0.5)
    finally:
        browser.close()
    assert any("undefinedFunction" in e for e in browser.errors)
