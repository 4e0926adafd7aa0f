"""Protocol fidelity: every paper run checked setting by setting against config/protocol.yaml."""

import copy
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from curriculum_bench.config import ConfigError, resolve_run, study_cells
from curriculum_bench.plan import check_rows, load_config, validate_config
from curriculum_bench.protocol import PROTOCOL, check_protocol, load_protocol, protocol_differences
from curriculum_bench.report.table import TableOptions, deviation_lines

from .conftest import REPO, TINY

PAPER = REPO / "config/paper.yaml"


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config([PAPER])


def undeclared(config: dict) -> dict[tuple[str, str, str], list]:
    """(study, setting, run label) -> [resolved, protocol, section] of every undeclared difference."""
    return {
        (d.study, d.setting, d.label): [d.resolved, d.expected, d.section]
        for d in protocol_differences(config, load_protocol())
        if d.deviation is None
    }


def test_the_paper_config_follows_its_protocol_or_declares_why_not(paper):
    report, ok = check_protocol(paper)
    assert ok, report
    assert "Declared deviations" in report and "UNDECLARED" not in report


def test_the_check_finds_the_drift_it_was_written_for(paper):
    """The paper config as it was before the protocol issue: each row of the issue's table is found."""
    old = copy.deepcopy(paper)
    for spec in old["studies"].values():
        spec.pop("deviations", None)
    techniques = old["studies"]["techniques"]["variants"]
    del techniques["curriculum_labeling"]["train"]
    techniques["curriculum_labeling"]["curriculum_labeling"]["epochs_per_round"] = 1
    del techniques["progressive_dropout_script"]["train"]
    contrastive = old["studies"]["contrastive"]
    contrastive["variants"]["sigma1000"]["simclr"].update(b_l=-1.0, b_u=1.0)
    del contrastive["overrides"]["cifar100"]
    hybrid = old["studies"]["hybrid"]["overrides"]
    hybrid["imagenet100/convnext_tiny"]["train"]["batch_size"] = 256
    hybrid["imagenet100/cvt13"]["train"]["grad_accumulation_steps"] = 4  # 1,024 where HCL reaches 2,048
    del old["studies"]["coreset"]["core"]["models"]["resnet50"]["input_size"]
    found = undeclared(old)

    clab = found[
        (
            "techniques",
            "methods.curriculum_labeling.epochs_per_round",
            "mnist_first12500_val/mlt_convnet/curriculum_labeling",
        )
    ]
    assert clab[:2] == [1, 10] and clab[2].startswith("§2.4 Curriculum Labeling")
    assert found[("techniques", "train.epochs", "mnist_first10pct/mlt_convnet/progressive_dropout_script")][:2] == [
        10,
        3,
    ]
    b_l = found[("contrastive", "methods.simclr.b_l", "cifar10/simclr/sigma1000")]
    assert b_l[:2] == [-1.0, -0.9] and "exp 37" in b_l[2]
    normalize = found[("contrastive", "train.normalize", "cifar100/simclr/const_06")]
    assert normalize[0]["std"] == [0.247, 0.2435, 0.2616] and normalize[1]["std"] == [0.2673, 0.2564, 0.2762]
    assert found[("hybrid", "train.batch_size", "imagenet100/convnext_tiny/baseline")][:2] == [256, 128]
    assert found[("hybrid", "train.grad_accumulation_steps", "imagenet100/cvt13/baseline")][:2] == [4, 8]
    noise = found[("data_parameters", "dataset.label_noise.seed", "cifar100_noisy40/wrn28_10/instance")]
    assert noise[0] == 0 and noise[1] in (1, 2, 3)  # DP: the run's own seed
    assert ("hybrid", "model", "imagenet100/resnet18_cifar/baseline") in found
    assert ("coreset", "model_args.input_size", "cifar10_val_tail/resnet50/reverse_frozen") in found


def test_a_changed_setting_is_reported_with_study_run_and_section(tmp_path):
    config = yaml.safe_load(PAPER.read_text())
    config["studies"]["data_parameters"]["train"]["lr"] = 0.05
    changed = tmp_path / "paper_changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "curriculum_bench", "plan", "--check-protocol", "--configfile"]
    result = subprocess.run([*command, str(changed)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if "train.lr" in line)
    assert line.strip().startswith("data_parameters: train.lr = 0.05, protocol 0.1 (§4.2 DP main_cifar.py")
    assert "48 run(s): cifar100/wrn28_10/baseline" in line
    passing = subprocess.run([*command, str(PAPER)], cwd=REPO, capture_output=True, text=True)
    assert passing.returncode == 0, passing.stdout + passing.stderr


def test_a_deviation_that_matches_no_difference_is_refused_as_stale(paper):
    config = copy.deepcopy(paper)
    config["studies"]["contrastive"]["deviations"] = [
        {"setting": "train.lr", "models": ["simclr"], "reason": "kept from an older config, now untrue"}
    ]
    report, ok = check_protocol(config)
    assert not ok
    assert "studies.contrastive.deviations[0]: train.lr for models simclr" in report


def test_a_declared_deviation_covers_only_the_rows_it_names(paper):
    config = copy.deepcopy(paper)
    deviation = config["studies"]["hybrid"]["deviations"][3]  # ConvNeXt's crop on CIFAR-10
    assert deviation["setting"] == "train.augment" and deviation["datasets"] == ["cifar10"]
    config["studies"]["hybrid"]["overrides"]["imagenet100/convnext_tiny"]["train"]["augment"] = [
        {"op": "horizontal_flip", "p": 0.5}
    ]
    found = undeclared(config)
    spec = config["studies"]["hybrid"]
    rows = [v for d, m, v in study_cells(spec) if (d, m) == ("imagenet100", "convnext_tiny")]
    assert set(found) == {("hybrid", "train.augment", f"imagenet100/convnext_tiny/{v}") for v in rows}
    assert "plain" not in rows and "cbs" not in rows  # variants with `only` elsewhere have no row here


def test_deviations_are_validated_by_the_schema_naming_the_key(paper):
    config = yaml.safe_load(PAPER.read_text())
    config["studies"]["hybrid"]["deviations"][0]["setting"] = "optimizer.lr"
    with pytest.raises(ConfigError, match=r"studies\.hybrid\.deviations\.0\.setting"):
        validate_config(config)


def test_the_table_caption_states_each_deviation_touching_its_rows():
    summary = pd.DataFrame(
        {"dataset": ["cifar10", "cifar10"], "model": ["cvt13", "cvt13"], "variant": ["baseline", "blur"]}
    )
    options = TableOptions(
        deviations=(
            {"setting": ["train.batch_size", "train.lr"], "models": ["cvt13"], "reason": "batch 512 fits one GPU"},
            {"setting": "methods.blur", "variants": ["blur"], "reason": "the src/ loader's blur"},
            {"setting": "model", "datasets": ["imagenet100"], "reason": "not a row of this table"},
        )
    )

    (text,) = deviation_lines(summary, options)
    assert text.startswith("**Deviations from the source protocol**")
    assert "- `train.batch_size`, `train.lr` on every row: batch 512 fits one GPU" in text
    assert "- `methods.blur` on cifar10/cvt13/blur: the src/ loader's blur" in text
    assert "not a row of this table" not in text


# --- a variant's own train settings (what several protocol rows needed) -----------------------


def test_a_variant_sets_its_own_train_settings_over_the_studys(paper):
    clab = resolve_run(paper, "techniques", "mnist_first12500_val", "mlt_convnet", "curriculum_labeling", 0)
    base = resolve_run(paper, "techniques", "mnist_first12500_val", "mlt_convnet", "baseline", 0)
    assert clab["train"] == {**base["train"], "epochs": 60}  # 6 rounds x the full 10-epoch schedule
    assert "train" not in clab["methods"]
    cvt = resolve_run(paper, "hybrid", "cifar10", "cvt13", "lerac", 0)["train"]
    assert cvt["warmup_epochs"] == 0 and cvt["batch_size"] == 512  # LeRaC replaces the warm-up


def test_an_override_for_every_variant_may_not_change_a_variants_own_train_setting():
    tiny = copy.deepcopy(load_config([TINY]))
    study = tiny["studies"]["hybrid"]
    study["variants"]["hybrid"]["train"] = {"epochs": 3}
    study["overrides"] = {"digits_sklearn": {"train": {"epochs": 2}}}
    with pytest.raises(ConfigError) as err:
        check_rows(tiny)
    assert (
        "studies.hybrid.overrides.digits_sklearn.train: changes what variant hybrid sets "
        "(studies.hybrid.variants.hybrid.train): epochs 3 -> 2"
    ) in str(err.value)
    assert "name the variant (overrides.digits_sklearn.variants.hybrid)" in str(err.value)


def test_a_mistyped_train_key_in_a_variant_is_refused_by_name():
    config = yaml.safe_load(TINY.read_text())
    config["studies"]["hybrid"]["variants"]["hybrid"]["train"] = {"epoch": 3}
    with pytest.raises(ConfigError, match=r"studies\.hybrid\.variants\.hybrid\.train.*epoch.*epochs"):
        validate_config(config)


def test_protocol_entries_name_only_known_selector_keys(tmp_path):
    bad = tmp_path / "protocol.yaml"
    bad.write_text(yaml.safe_dump({"hybrid": [{"section": "§1", "model": ["x"], "settings": {"train.lr": 1}}]}))
    with pytest.raises(ConfigError, match=r"hybrid\[0\]: unknown key\(s\) \['model'\]"):
        load_protocol(bad)
    assert load_protocol(PROTOCOL)  # the shipped file reads


def test_the_self_labelling_control_draws_what_self_labelling_draws_on_every_dataset(paper):
    train_size = {"mnist_first10pct": 6000, "mnist_first12500_val": 12000}  # docs/methods.md §2.1 / §2.4
    for dataset, n in train_size.items():
        control = resolve_run(paper, "techniques", dataset, "mlt_convnet", "labelled_only", 0)
        curriculum = resolve_run(paper, "techniques", dataset, "mlt_convnet", "self_labeling", 0)
        labelling = curriculum["methods"]["self_labeling"]
        draws = labelling.get("num_samples") or round(n * (labelling["labelled_fraction"] + labelling["pool_fraction"]))
        assert control["methods"]["self_labeling"]["num_samples"] == draws == n, dataset
        assert control["train"]["epochs"] == curriculum["train"]["epochs"] == 5


# --- coverage: every reported number has a row run under its protocol ----------------------


def test_every_reported_number_has_a_row_in_the_paper_config(paper):
    from curriculum_bench.plan import study_runs

    reported = yaml.safe_load((REPO / "config/reported.yaml").read_text())
    for study, entries in reported.items():
        rows = {(run["dataset"], run["model"], run["variant"]) for run, _ in study_runs(paper, study)}
        missing = [
            e for e in entries or [] if not e.get("not_run") and (e["dataset"], e["model"], e["variant"]) not in rows
        ]
        assert not missing, (study, missing)
        # each is quoted with its source; one without a row under its protocol says why
        assert all(e["source"] and (e.get("not_run") is None or len(e["not_run"]) > 10) for e in entries or []), study


def test_the_index_shows_which_reported_numbers_have_a_row():
    from curriculum_bench.report.index import index_markdown

    studies = {
        "hybrid": {
            "datasets": ["cifar10"],
            "models": ["m"],
            "variants": ["baseline"],
            "runs": 1,
            "rows": [["cifar10", "m", "baseline"]],
            "groups": [{"variants": ["baseline"], "models": ["m"], "seeds": [0], "epochs": [1]}],
        }
    }
    reported = {
        "hybrid": [
            {"dataset": "cifar10", "model": "m", "variant": "baseline", "acc": 93.95, "source": "HCL"},
            {"dataset": "cifar10", "model": "m", "variant": "lerac", "acc": 87.46, "source": "HCL"},
        ],
        "coreset": [{"dataset": "c", "model": "r", "variant": "proxy", "acc": 92.1, "source": "C1K"}],
    }
    text = index_markdown(studies, ["config/paper.yaml"], reported=reported)
    assert "| hybrid | 2 | 1 | cifar10/m/lerac (87.46) |" in text
    reported["hybrid"][0]["not_run"] = "another protocol"  # a row of that name, but not its protocol
    text = index_markdown(studies, ["config/paper.yaml"], reported=reported)
    assert "| hybrid | 2 | 0 | cifar10/m/baseline (93.95): not run under its protocol, another protocol; " in text
    assert "| coreset | 1 | 0 | c/r/proxy (92.1) |" in text


# --- transfer learning: a source pretrained on other images and classes, fine-tuned here -----


def test_transfer_pretrains_on_a_disjoint_source_and_fine_tunes_with_a_from_scratch_control(paper):
    from curriculum_bench.config import iter_runs
    from curriculum_bench.plan import local_inputs
    from curriculum_bench.run_inputs import run_inputs

    runs = [r for r in iter_runs(paper) if r["study"] == "techniques"]
    source_runs = {r["dataset"] for r in runs if r["variant"] == "transfer_source"}
    assert source_runs == {"mnist_source_5to9"}  # the source variant alone runs there
    assert {r["variant"] for r in runs if r["dataset"] == "mnist_source_5to9"} == {"transfer_source"}
    source = paper["datasets"]["mnist_source_5to9"]
    assert source["subset"] == {"kind": "classes", "classes": [5, 6, 7, 8, 9]}
    assert paper["datasets"][source["from"]]["subset"] == {"kind": "skip_first", "n": 12500}  # no target image
    transfer = resolve_run(paper, "techniques", "mnist_first10pct", "mlt_convnet", "transfer", 1)
    checkpoint = "results/techniques/mnist_source_5to9/mlt_convnet/transfer_source/seed0/final_model.pt"
    assert transfer["methods"]["pretrained"] == {"checkpoint": checkpoint, "exclude": ["fc."]}  # fresh classifier
    assert checkpoint in run_inputs(paper, "techniques", "mnist_first10pct", "mlt_convnet", "transfer", 1)
    assert checkpoint not in {item.path for item in local_inputs(paper)}  # a run of this workflow
    baseline = resolve_run(paper, "techniques", "mnist_first10pct", "mlt_convnet", "baseline", 1)
    assert transfer["train"] == baseline["train"] and paper["studies"]["techniques"]["report"]["baseline"] == "baseline"


def test_a_variant_dataset_must_be_defined_and_the_variant_runs_nowhere_else(paper):
    config = copy.deepcopy(paper)
    config["studies"]["techniques"]["variants"]["transfer_source"]["datasets"] = ["mnist_5to9"]
    with pytest.raises(
        ConfigError, match=r"studies\.techniques\.variants\.transfer_source\.datasets: 'mnist_5to9' is not defined"
    ):
        from curriculum_bench.config import check_references

        check_references(config)
    with pytest.raises(
        ConfigError, match=r"variant 'transfer_source' runs on \['mnist_source_5to9'\], not 'mnist_first10pct'"
    ):
        resolve_run(paper, "techniques", "mnist_first10pct", "mlt_convnet", "transfer_source", 0)


def test_a_number_from_another_protocol_never_fills_a_row_and_the_caption_says_why():
    from curriculum_bench.report.table import not_run_lines, reported_for

    summary = pd.DataFrame({"dataset": ["cifar10"], "model": ["cvt13"], "variant": ["baseline"]})
    hcl = {"dataset": "cifar10", "model": "cvt13", "variant": "baseline", "acc": 84.17, "source": "HCL"}
    lerac = {**hcl, "acc": 71.84, "source": "LeRaC Tab. 2", "not_run": "LeRaC's protocol, not HCL's recipe"}
    assert reported_for(summary, [hcl, lerac]) == ["84.17"]  # not the later, other-protocol number
    assert reported_for(summary, [lerac]) == ["—"]
    (line,) = not_run_lines([hcl, lerac])
    assert "cifar10/cvt13/baseline 71.84 (LeRaC Tab. 2): LeRaC's protocol, not HCL's recipe" in line
