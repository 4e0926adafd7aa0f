"""Coreset study (docs/methods.md §5.2): selection order and ties, class balance, indices into the
original dataset, training on a coreset (frozen backbone untouched), planning and the DAG."""

import copy
import json

import numpy as np
import pytest
import torch
import yaml

from curriculum_bench.config import ConfigError, iter_runs
from curriculum_bench.coreset import plan
from curriculum_bench.coreset.select import SelectionConfig, class_quotas, ranking, select, write_selection
from curriculum_bench.curricula.coreset_subset import kept_indices
from curriculum_bench.data.derive import derive
from curriculum_bench.data.store import load_array
from curriculum_bench.models import create_model
from curriculum_bench.plan import local_inputs
from curriculum_bench.train.checkpoint import save_checkpoint
from curriculum_bench.train.engine import fit

from .conftest import REPO, snakemake, tiny_run

SCORES = np.array([1, 3, 0, 3, 0, 2])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def order(method: str, tie_break: str = "stable", seed: int = 0) -> list[int]:
    return ranking(SCORES, SelectionConfig(method=method, tie_break=tie_break, size=6, seed=seed)).tolist()


def test_forgetting_takes_most_forgotten_first_with_lower_index_first_among_ties():
    assert order("forgetting") == [1, 3, 5, 0, 2, 4]


def test_reverse_takes_least_forgotten_first_with_lower_index_first_among_ties():
    # C1K's stable sort: among the unforgettable examples, the lowest indices come first.
    assert order("reverse") == [2, 4, 0, 5, 1, 3]


def test_seeded_tie_break_reorders_only_tied_examples_reproducibly():
    # Seed 0's tie keys are RandomState(0).permutation(6) = [5 2 1 3 0 4]: among the 3s,
    # index 1 (key 2) precedes index 3 (key 3); among the 0s, index 4 (key 0) precedes 2 (key 1).
    assert order("forgetting", "random", seed=0) == [1, 3, 5, 0, 4, 2]
    # Seed 1's keys [2 1 4 0 3 5] put index 3 before 1 and 4 before 2.
    assert order("forgetting", "random", seed=1) == [3, 1, 5, 0, 4, 2]
    assert order("reverse", "random", seed=1) == [4, 2, 0, 5, 3, 1]
    assert order("forgetting", "random", seed=1) == order("forgetting", "random", seed=1)


def test_random_selection_is_the_seeded_permutation():
    assert order("random", seed=0) == [5, 2, 1, 3, 0, 4]


def test_class_balanced_selection_fills_each_class_quota_in_ranking_order():
    labels = np.array([0, 0, 0, 1, 1, 1])
    cfg = SelectionConfig(method="forgetting", size=3, class_balanced=True)
    # Ranking [1 3 5 0 2 4]; class 0 quota 2 (the remainder goes to class 0), class 1 quota 1.
    assert class_quotas(3, 2).tolist() == [2, 1]
    assert select(SCORES, labels, cfg).tolist() == [1, 3, 0]
    unbalanced = SelectionConfig(method="forgetting", size=3)
    assert select(SCORES, labels, unbalanced).tolist() == [1, 3, 5]


def test_class_balanced_selection_refuses_a_class_below_its_quota():
    with pytest.raises(ValueError, match="class 1 has 1 examples, its quota is 2"):
        select(SCORES, np.array([0, 0, 0, 0, 0, 1]), SelectionConfig(size=4, class_balanced=True))


def test_selection_config_rejects_an_unknown_method_by_name():
    with pytest.raises(ValueError, match="method must be one of"):
        SelectionConfig(method="hardest")


def test_drop_mode_trains_on_the_complement_in_index_order():
    assert kept_indices(torch.tensor([4, 1]), 6, "drop").tolist() == [0, 2, 3, 5]
    assert kept_indices(torch.tensor([4, 1]), 6, "keep").tolist() == [4, 1]


def fake_stats(path, labels: np.ndarray) -> None:
    """A stats artifact whose scores are known: example i was forgotten (i * 7) % 5 times."""
    n = len(labels)
    np.savez(
        path, index=np.arange(n), label=labels, score=(np.arange(n) * 7) % 5, never_learned=np.array("max_plus_one")
    )


def test_coreset_indices_refer_to_the_original_train_split(digits_store, tmp_path):
    derived = tmp_path / "digits_val"
    derive(
        "digits_val",
        {"source": "derived", "from": "digits", "subset": {"kind": "validation_tail", "n": 200}},
        digits_store,
        derived,
    )
    labels = load_array(derived, "train_labels")
    fake_stats(tmp_path / "stats.npz", labels)
    record = write_selection(
        tmp_path / "stats.npz", SelectionConfig(method="forgetting", size=50), tmp_path / "sel.json"
    )
    idx = np.array(record["indices"])
    assert record["num_train"] == 1237 and len(idx) == 50
    # Same image and label at the same index in the store the proxy trained on and in the original.
    np.testing.assert_array_equal(
        load_array(derived, "train_images")[idx], load_array(digits_store, "train_images")[idx]
    )
    np.testing.assert_array_equal(labels[idx], load_array(digits_store, "train_labels")[idx])
    assert set(((idx * 7) % 5).tolist()) == {4}  # the 50 most forgotten have the top score


def test_frozen_core_training_changes_only_the_head(digits_store, tmp_path):
    labels = load_array(digits_store, "train_labels")
    fake_stats(tmp_path / "stats.npz", labels)
    write_selection(tmp_path / "stats.npz", SelectionConfig(method="reverse", size=64), tmp_path / "sel.json")
    pretrained = create_model("mlt_convnet", (1, 8, 8), 10)
    save_checkpoint(tmp_path / "proxy.pt", pretrained.state_dict())
    run = tiny_run(
        {"coreset_subset": {"selection": str(tmp_path / "sel.json")}},
        epochs=2,
        optimizer="adam",
        lr=0.01,
        weight_decay=0.0,
    )
    run.update(
        model="mlt_convnet_finetune",
        model_args={"pretrained": str(tmp_path / "proxy.pt"), "head": "mlp", "freeze_backbone": True},
    )
    metrics = fit(run, digits_store, tmp_path / "core", tmp_path / "core.pt", device="cpu")
    assert metrics["num_train"] == 1437
    history = [json.loads(line) for line in (tmp_path / "core/history.jsonl").read_text().splitlines()]
    assert [h["train_images"] for h in history] == [64, 64]  # only the coreset is presented
    trained = torch.load(tmp_path / "core/final_model.pt", weights_only=True)
    backbone = {
        k: v for k, v in pretrained.state_dict().items() if k.endswith(("weight", "bias")) and not k.startswith("fc.")
    }
    assert backbone and all(torch.equal(trained[k], v) for k, v in backbone.items())
    assert [k for k in trained if k.startswith("fc.")] == [
        "fc.0.weight",
        "fc.0.bias",
        "fc.2.weight",
        "fc.2.bias",
        "fc.4.weight",
        "fc.4.bias",
    ]
    torch.manual_seed(run["seed"])  # the engine builds the model under the run's seed
    initial = create_model(run["model"], (1, 8, 8), 10, **run["model_args"]).state_dict()
    assert all(torch.equal(initial[k], v) for k, v in backbone.items())
    assert not torch.equal(trained["fc.4.weight"], initial["fc.4.weight"])  # the head did train


def test_pretrained_file_that_does_not_fit_is_named(tmp_path):
    save_checkpoint(tmp_path / "other.pt", {"conv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="other.pt does not fit this model"):
        create_model("mlt_convnet_finetune", (1, 8, 8), 10, pretrained=str(tmp_path / "other.pt"))


TEST_CONFIG = yaml.safe_load((REPO / ".test/config.yaml").read_text())


def test_generic_planning_skips_the_coreset_study_which_plans_its_own_stages():
    assert "coreset" not in {r["study"] for r in iter_runs(TEST_CONFIG)}
    variants = [(r["model"], r["variant"]) for r in plan.iter_coreset_runs(TEST_CONFIG)]
    assert variants[0] == ("mlt_convnet", "proxy")
    assert ("mlt_convnet_finetune", "reverse_frozen") in variants
    assert variants[-3:] == [
        ("mlt_convnet", "remove_0"),
        ("mlt_convnet", "remove_forgetting_400"),
        ("mlt_convnet", "remove_random_400"),
    ]


def test_core_run_trains_on_its_selection_from_the_proxy_weights():
    run = plan.resolve_coreset_run(TEST_CONFIG, "digits_val", "mlt_convnet_finetune", "reverse_frozen", 0)
    assert run["methods"] == {
        "coreset_subset": {"selection": "results/coreset/digits_val/selections/reverse.json", "mode": "keep"}
    }
    assert run["model_args"] == {
        "pretrained": "results/coreset/digits_val/mlt_convnet/proxy/seed0/final_model.pt",
        "head": "mlp",
        "freeze_backbone": True,
    }
    removal = plan.resolve_coreset_run(TEST_CONFIG, "digits_val", "mlt_convnet", "remove_forgetting_400", 0)
    assert removal["methods"]["coreset_subset"]["mode"] == "drop"
    assert plan.selection_settings(TEST_CONFIG, "removal_forgetting_400")["method"] == "reverse"


@pytest.mark.workflow
def test_dag_runs_proxy_then_stats_then_select_then_core(tmp_path):
    result = snakemake(tmp_path, "--configfile", str(REPO / ".test/config.yaml"), "--rulegraph")
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = dict(line.strip().split('[label = "')[0:2] for line in result.stdout.splitlines() if "[label" in line)
    names = {k.strip("\t "): v.split('"')[0] for k, v in nodes.items()}
    edges = {tuple(names[n] for n in line.strip().split(" -> ")) for line in result.stdout.splitlines() if "->" in line}
    assert {
        ("coreset_proxy", "coreset_stats"),
        ("coreset_stats", "coreset_select"),
        ("coreset_select", "coreset_train"),
        ("coreset_proxy", "coreset_train"),
    } <= edges


@pytest.mark.workflow
def test_unknown_selection_method_stops_the_workflow_naming_the_key(tmp_path):
    config = yaml.safe_load((REPO / ".test/config.yaml").read_text())
    config["studies"]["coreset"]["selection"]["methods"] = ["hardest"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(bad), "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "studies.coreset.selection.methods.0: 'hardest' is not one of" in output, output[-2000:]
    assert not (tmp_path / "results").exists()


def test_core_run_refuses_a_selection_scored_on_another_train_split(digits_store, tmp_path):
    labels = load_array(digits_store, "train_labels")
    fake_stats(tmp_path / "stats.npz", np.roll(labels, 1))  # same size, other labels
    write_selection(tmp_path / "stats.npz", SelectionConfig(size=10), tmp_path / "sel.json")
    run = tiny_run({"coreset_subset": {"selection": str(tmp_path / "sel.json")}}, epochs=1)
    with pytest.raises(ValueError, match="scored on a train split with other labels"):
        fit(run, digits_store, tmp_path / "core", tmp_path / "core.pt", device="cpu")


# --- cifar_1k's other rows: frozen + dropout head, the whole train set, precomputed statistics ---


def with_core(**core) -> dict:
    config = copy.deepcopy(TEST_CONFIG)
    config["studies"]["coreset"]["core"].update(core)
    return config


def test_frozen_dropout_and_the_whole_train_set_run_beside_the_coreset_rows():
    config = with_core(backbones=["frozen", "frozen_dropout"], head_dropout=0.3, full={"train": {"epochs": 7}})
    variants = [r["variant"] for r in plan.iter_coreset_runs(config) if r["model"] == "mlt_convnet_finetune"]
    assert "reverse_frozen_dropout" in variants and variants.count("full_finetune") == 1
    dropout = plan.resolve_coreset_run(config, "digits_val", "mlt_convnet_finetune", "reverse_frozen_dropout", 0)
    assert (dropout["model_args"]["freeze_backbone"], dropout["model_args"]["dropout"]) == (True, 0.3)
    frozen = plan.resolve_coreset_run(config, "digits_val", "mlt_convnet_finetune", "reverse_frozen", 0)
    assert "dropout" not in frozen["model_args"]
    full = plan.resolve_coreset_run(config, "digits_val", "mlt_convnet_finetune", "full_finetune", 0)
    assert "coreset_subset" not in full["methods"]  # every training image
    assert full["model_args"]["freeze_backbone"] is False
    assert full["train"] == {**frozen["train"], "epochs": 7}


def test_a_backbones_own_seeds_replace_the_core_stages_for_its_rows_only():
    from curriculum_bench.config_checks import check_config_values
    from curriculum_bench.plan import format_plan, validate_config

    config = with_core(seeds=[0, 1, 2, 3], backbone_seeds={"frozen": [0, 1]})
    seeds: dict[str, list[int]] = {}
    for run in plan.iter_coreset_runs(config):
        seeds.setdefault(run["variant"], []).append(run["seed"])
    assert seeds["reverse_frozen"] == seeds["random_frozen"] == [0, 1]
    assert seeds["reverse_finetune"] == seeds["forgetting_finetune"] == [0, 1, 2, 3]
    assert seeds["proxy"] == TEST_CONFIG["studies"]["coreset"]["proxy"]["seeds"]  # other stages keep theirs
    assert "frozen core runs 2 seed(s)" in format_plan(config)
    config = with_core(backbone_seeds={"frozen_dropout": [0]})
    with pytest.raises(
        ConfigError, match=r"^studies\.coreset\.core\.backbone_seeds\.frozen_dropout: .*no frozen_dropout"
    ):
        check_config_values(config)
    config = with_core(backbone_seeds={"frozen": [1, 1]})
    with pytest.raises(ConfigError, match=r"^studies\.coreset\.core\.backbone_seeds\.frozen: .*non-unique"):
        validate_config(config)


def c1k_stats_file(path, events: list[int], correct: list[int]) -> None:
    """cifar_1k's preloaded_forgetting/forgetting_stats: a torch.save dict of two tensors."""
    torch.save({"forgetting_events": torch.tensor(events), "nr_correct": torch.tensor(correct)}, path)


def test_precomputed_statistics_rank_as_cifar_1k_does(tmp_path):
    from curriculum_bench.coreset.forgetting_stats import precomputed_table

    c1k_stats_file(tmp_path / "forgetting_stats", [0, 3, 1, 0, 0], [5, 2, 4, 0, 6])
    table = precomputed_table(tmp_path / "forgetting_stats", np.array([0, 1, 0, 1, 2]), "max_plus_one")
    # never learned (nr_correct 0) ranks above every learned example: max(events) + 1 = 4
    assert table["score"].tolist() == [0, 3, 1, 4, 0]
    assert table["label"].tolist() == [0, 1, 0, 1, 2]
    with pytest.raises(ValueError, match="only max_plus_one"):
        precomputed_table(tmp_path / "forgetting_stats", np.zeros(5, dtype=int), "presentations")


def test_a_precomputed_file_of_another_split_or_format_is_refused_naming_it(tmp_path):
    from curriculum_bench.coreset.forgetting_stats import precomputed_table
    from curriculum_bench.errors import InputFileError

    c1k_stats_file(tmp_path / "short", [0, 1], [1, 1])
    with pytest.raises(InputFileError, match=r"short: 2 examples, but the dataset's train split has 3"):
        precomputed_table(tmp_path / "short", np.zeros(3, dtype=int), "max_plus_one")
    torch.save({"events": torch.zeros(3)}, tmp_path / "other")
    with pytest.raises(InputFileError, match=r"other: expected a dict with \['forgetting_events', 'nr_correct'\]"):
        precomputed_table(tmp_path / "other", np.zeros(3, dtype=int), "max_plus_one")


def test_precomputed_statistics_replace_the_proxy_stage(tmp_path):
    config = copy.deepcopy(TEST_CONFIG)
    config["studies"]["coreset"]["stats"] = {"never_learned": "max_plus_one", "from_file": "stats/forgetting_stats"}
    config["studies"]["coreset"]["core"]["models"]["mlt_convnet_finetune"]["pretrained"] = None
    assert "proxy" not in {r["variant"] for r in plan.iter_coreset_runs(config)}
    assert plan.proxy_artifacts(config, "digits_val") == []
    missing = [item.key for item in local_inputs(config)]
    assert "studies.coreset.stats.from_file" in missing
    config["studies"]["coreset"]["core"]["models"]["mlt_convnet_finetune"]["pretrained"] = "proxy"
    with pytest.raises(ConfigError, match=r"pretrained: `proxy` names the proxy's weights, but .*from_file runs no"):
        plan.resolve_coreset_run(config, "digits_val", "mlt_convnet_finetune", "reverse_frozen", 0)


@pytest.mark.workflow
def test_precomputed_statistics_run_through_the_workflow_without_a_proxy(tmp_path):
    """The stats job reads the file and the store's labels, where a proxy run would have been."""
    config = copy.deepcopy(TEST_CONFIG)
    spec = config["studies"]["coreset"]
    spec["stats"] = {"never_learned": "max_plus_one", "from_file": "c1k_forgetting_stats"}
    spec["core"]["models"]["mlt_convnet_finetune"]["pretrained"] = None
    config["studies"] = {"coreset": spec}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "-n")
    assert dry.returncode != 0
    assert "c1k_forgetting_stats  (studies.coreset.stats.from_file)" in dry.stdout + dry.stderr
    stats_target = "results/coreset/digits_val/stats/forgetting_stats.npz"

    c1k_stats_file(tmp_path / "c1k_forgetting_stats", [0, 1], [1, 1])  # another split's file
    failed = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", stats_target)
    n = json.loads((tmp_path / "resources/datasets/digits_val/manifest.json").read_text())["splits"]["train"]
    assert failed.returncode != 0
    assert (
        f"2 examples, but the dataset's train split has {n}"
        in (tmp_path / "logs/coreset/stats/digits_val.log").read_text()
    )

    c1k_stats_file(tmp_path / "c1k_forgetting_stats", [1] * n, [0] + [1] * (n - 1))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", stats_target)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = np.load(tmp_path / stats_target)
    assert int(stats["num_runs"]) == 0 and stats["score"].tolist() == [3] + [1] * (n - 1)  # 1 + (max 1 + 1)
    assert not (tmp_path / "results/coreset/digits_val/mlt_convnet/proxy").exists()


# --- cifar_1k's freeze_weights_proxy beside the trainable proxy ---


def with_frozen_proxy() -> dict:
    """The tiny study with a second proxy whose backbone is frozen (a model that can freeze it)."""
    config = copy.deepcopy(TEST_CONFIG)
    proxy = config["studies"]["coreset"]["proxy"]
    proxy["models"] = {"mlt_convnet_finetune": {"head": "mlp"}}
    proxy["backbones"] = ["finetune", "frozen"]
    return config


def test_a_frozen_proxy_feeds_its_own_statistics_selections_and_core_runs():
    config = with_frozen_proxy()
    runs = [(r["model"], r["variant"]) for r in plan.iter_coreset_runs(config)]
    assert runs[:2] == [("mlt_convnet_finetune", "proxy"), ("mlt_convnet_finetune", "frozen_proxy")]
    frozen = plan.resolve_coreset_run(config, "digits_val", "mlt_convnet_finetune", "frozen_proxy", 0)
    trainable = plan.resolve_coreset_run(config, "digits_val", "mlt_convnet_finetune", "proxy", 0)
    assert frozen["methods"] == {"forgetting": {}} and frozen["model_args"] == {"head": "mlp", "freeze_backbone": True}
    assert trainable["model_args"] == {"head": "mlp"}  # as written: its run identity is unchanged
    assert frozen["train"] == trainable["train"]

    spec = config["studies"]["coreset"]
    # forgetting and reverse get a second selection each; random reads only the split, so it stays one
    assert plan.selection_names(spec)[:5] == [
        "forgetting",
        "reverse",
        "random",
        "forgetting_by_frozen_proxy",
        "reverse_by_frozen_proxy",
    ]
    assert plan.selection_settings(config, "reverse_by_frozen_proxy")["method"] == "reverse"
    assert plan.selection_stats(config, "digits_val", "reverse_by_frozen_proxy") == (
        "results/coreset/digits_val/stats_frozen_proxy/forgetting_stats.npz"
    )
    assert (
        plan.selection_stats(config, "digits_val", "random") == "results/coreset/digits_val/stats/forgetting_stats.npz"
    )
    assert plan.selection_stats(config, "digits_val", "removal_forgetting_400").endswith("/stats/forgetting_stats.npz")
    assert plan.proxy_artifacts(config, "digits_val", "stats_frozen_proxy") == [
        "results/coreset/digits_val/mlt_convnet_finetune/frozen_proxy/seed0/forgetting.npz"
    ]

    core = plan.resolve_coreset_run(config, "digits_val", "mlt_convnet_finetune", "reverse_frozen_by_frozen_proxy", 0)
    assert core["methods"]["coreset_subset"]["selection"].endswith("/selections/reverse_by_frozen_proxy.json")
    assert core["model_args"]["freeze_backbone"] is True
    # `pretrained: proxy` is the reference (first listed) proxy's weights for every core run
    assert (
        core["model_args"]["pretrained"] == "results/coreset/digits_val/mlt_convnet_finetune/proxy/seed0/final_model.pt"
    )
    core_variants = plan.core_variants(spec)
    assert "random_finetune_by_frozen_proxy" not in core_variants
    assert {"forgetting_finetune_by_frozen_proxy", "reverse_frozen_by_frozen_proxy"} <= set(core_variants)
    assert plan.final_outputs(config)[2:4] == [
        "results/coreset/digits_val/stats_frozen_proxy/forgetting_stats.npz",
        "results/coreset/digits_val/stats_frozen_proxy/forgetting_stats.csv",
    ]


def test_a_frozen_proxy_alone_is_the_reference():
    config = with_frozen_proxy()
    config["studies"]["coreset"]["proxy"]["backbones"] = ["frozen"]
    spec = config["studies"]["coreset"]
    assert plan.proxy_variants(spec) == ["frozen_proxy"]
    assert plan.selection_names(spec)[:3] == ["forgetting_by_frozen_proxy", "reverse_by_frozen_proxy", "random"]
    assert plan.selection_stats(config, "digits_val", "random").endswith("/stats_frozen_proxy/forgetting_stats.npz")
    assert plan.proxy_model_file(config, "digits_val").endswith("/frozen_proxy/seed0/final_model.pt")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda spec: spec["proxy"]["models"]["mlt_convnet_finetune"].update(freeze_backbone=True),
            "studies.coreset.proxy.models.mlt_convnet_finetune.freeze_backbone: set per run by "
            "studies.coreset.proxy.backbones ['finetune', 'frozen']",
        ),
        (
            lambda spec: spec["proxy"].update(models={"mlt_convnet": {}}),
            "studies.coreset.proxy.models.mlt_convnet: model mlt_convnet takes no freeze_backbone, which the proxy "
            "stage sets",
        ),
        (
            lambda spec: spec.update(stats={"never_learned": "max_plus_one", "from_file": "stats.pt"}),
            "studies.coreset.proxy.backbones: ['finetune', 'frozen'] asks for proxy runs, but "
            "studies.coreset.stats.from_file replaces them",
        ),
        (
            lambda spec: spec["core"]["models"]["mlt_convnet_finetune"].update(freeze_backbone=False),
            "studies.coreset.core.models.mlt_convnet_finetune.freeze_backbone: set per run by "
            "studies.coreset.core.backbones",
        ),
    ],
    ids=["proxy-freeze-arg", "proxy-cannot-freeze", "precomputed", "core-freeze-arg"],
)
def test_a_proxy_setting_that_cannot_mean_what_it_says_is_refused(change, message):
    from curriculum_bench.config import check_references
    from curriculum_bench.config_checks import check_config_values

    config = with_frozen_proxy()
    change(config["studies"]["coreset"])
    check_references(config)
    with pytest.raises(ConfigError) as err:
        check_config_values(config)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.workflow
def test_a_frozen_proxy_runs_through_the_workflow_to_its_own_selection(tmp_path):
    """frozen_proxy -> stats_frozen_proxy/ -> reverse_by_frozen_proxy.json, ranked by its own statistics."""
    config = with_frozen_proxy()
    config["studies"] = {"coreset": config["studies"]["coreset"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    selection = "results/coreset/digits_val/selections/reverse_by_frozen_proxy.json"
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", selection)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "results/coreset/digits_val/mlt_convnet_finetune/proxy").exists()  # not needed
    record = json.loads(
        (tmp_path / "results/coreset/digits_val/mlt_convnet_finetune/frozen_proxy/seed0/metrics.json").read_text()
    )
    assert record["num_train"] > 0
    stats = np.load(tmp_path / "results/coreset/digits_val/stats_frozen_proxy/forgetting_stats.npz")
    chosen = json.loads((tmp_path / selection).read_text())
    expected = select(stats["score"], stats["label"], SelectionConfig(method="reverse", size=100))
    assert chosen["indices"] == expected.tolist() and chosen["method"] == "reverse"
