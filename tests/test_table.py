import json
import os
import shutil

import pandas as pd
import pytest

from curriculum_bench.errors import InputFileError
from curriculum_bench.report.table import rebuild_marker, table_is_stale, write_table


def fake_metrics(tmp_path, variant, seed, final, best):
    path = tmp_path / "results/techniques/toy/m" / variant / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "study": "techniques",
                "dataset": "toy",
                "model": "m",
                "variant": variant,
                "seed": seed,
                "final_acc": final,
                "best_acc": best,
                "best_epoch": 2,
                "final_epoch": 3,
                "eval_split": "test",
                "num_train": 80,
                "num_eval": 20,
                "wall_s": 10.0 + seed,
                "train_images_per_s": 100.0,
                "peak_mem_mb": 50.0 + seed,
                "device_name": "cpu",
                "dataset_source": {"source": "toy"},
            }
        )
    )
    return path


def test_table_rows_are_mean_and_sample_std_over_seeds_in_input_order(tmp_path):
    paths = [fake_metrics(tmp_path, "zeta", s, f, b) for s, f, b in [(0, 0.80, 0.90), (1, 0.90, 0.92), (2, 0.85, 0.94)]]
    paths += [fake_metrics(tmp_path, "alpha", 0, 0.5, 0.6)]
    summary = write_table(paths, "techniques", tmp_path / "t.md", tmp_path / "t.csv")
    assert summary["variant"].tolist() == ["zeta", "alpha"]  # config order, not sorted
    zeta = summary.iloc[0]
    assert zeta.seeds == 3 and zeta.final_acc_mean == pytest.approx(0.85)
    assert zeta.final_acc_std == pytest.approx(0.05)  # sample std of 0.80, 0.90, 0.85
    assert zeta.best_acc_std == pytest.approx(0.02)
    assert zeta.wall_s_mean == pytest.approx(11.0) and zeta.peak_mem_mb_max == 52.0
    md = (tmp_path / "t.md").read_text()
    assert "| toy       | m       | zeta      | 85.00 ± 5.00" in md
    assert "92.00 ± 2.00" in md and "test (n=20)" in md and "3 (0 1 2)" in md
    assert "| 50.00 " in md  # one seed: no ± shown
    csv = (tmp_path / "t.csv").read_text().splitlines()
    assert csv[0].startswith("dataset,model,variant,seeds,seed_list,epochs,split")


def test_reported_numbers_fill_matching_rows_and_are_listed_as_reported(tmp_path):
    paths = [fake_metrics(tmp_path, "zeta", 0, 0.8, 0.9), fake_metrics(tmp_path, "alpha", 0, 0.5, 0.6)]
    reported = tmp_path / "reported.yaml"
    reported.write_text(
        "techniques:\n"
        "  - {dataset: toy, model: m, variant: zeta, acc: 91.5, source: paper Tab. 2, note: 5 runs}\n"
        "  - {dataset: other, model: m, variant: zeta, acc: 70.0, source: repo README}\n"
    )
    summary = write_table(paths, "techniques", tmp_path / "t.md", tmp_path / "t.csv", reported)
    assert summary["reported_acc"].tolist()[0] == 91.5 and pd.isna(summary["reported_acc"].tolist()[1])
    md = (tmp_path / "t.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| toy")]
    assert "91.50" in rows[0] and "—" in rows[1]
    reported_part = md.split("## Reported by the original authors (not measured here)")[1]
    assert "70.00" in reported_part and "repo README" in reported_part and "5 runs" in reported_part


def test_reported_entry_with_an_unknown_key_is_rejected_with_its_place(tmp_path):
    reported = tmp_path / "reported.yaml"
    reported.write_text("techniques:\n  - {dataset: toy, model: m, variant: z, acc: 1, source: s, acc_std: 2}\n")
    with pytest.raises(ValueError, match=r"techniques\[0\]: unknown keys \['acc_std'\]"):
        write_table(
            [fake_metrics(tmp_path, "z", 0, 0.5, 0.5)], "techniques", tmp_path / "t.md", tmp_path / "t.csv", reported
        )


def test_report_options_add_per_class_epoch_and_delta_columns(tmp_path):
    paths = []
    for variant, accs, per_class in [("baseline", [0.5, 0.7], [0.9, 0.8]), ("ws", [0.6, 0.75], [0.4, 0.9])]:
        path = fake_metrics(tmp_path, variant, 0, accs[-1], max(accs))
        m = json.loads(path.read_text())
        m["final_acc_per_class"] = per_class
        path.write_text(json.dumps(m))
        (path.parent / "history.jsonl").write_text(
            "".join(json.dumps({"epoch": e + 1, "eval_acc": a}) + "\n" for e, a in enumerate(accs))
        )
        paths.append(path)
    summary = write_table(
        paths,
        "techniques",
        tmp_path / "t.md",
        tmp_path / "t.csv",
        options={"per_class": [0], "at_epochs": [1, 5], "baseline": "baseline"},
    )
    assert summary["acc_class 0_mean"].tolist() == [0.9, 0.4]
    assert summary["acc_epoch 1_mean"].tolist() == [0.5, 0.6]
    assert summary["acc_epoch 5_mean"].isna().all()  # runs shorter than epoch 5: marked, not dropped
    assert summary["delta_baseline_pp"].tolist()[1] == pytest.approx(5.0)
    md = (tmp_path / "t.md").read_text()
    assert "class 0 acc (%)" in md and "epoch 1 acc (%)" in md and "Δ final acc vs baseline (pp, 95 % CI)" in md
    ws_row = next(line for line in md.splitlines() if "| ws " in line)
    assert "+5.00 (1 seed: no interval)" in ws_row and "40.00" in ws_row and "60.00" in ws_row


def test_delta_is_paired_by_seed_with_a_student_t_interval_and_a_marker(tmp_path):
    # baseline 0.70 0.71 0.75, curriculum 0.80 0.82 0.84: differences 10, 11, 9 pp
    paths = [
        fake_metrics(tmp_path, v, s, acc, acc)
        for v, accs in (
            ("baseline", [0.70, 0.71, 0.75]),
            ("curriculum", [0.80, 0.82, 0.84]),
            ("noise", [0.75, 0.66, 0.76]),
            ("control", [0.70, 0.71]),
        )
        for s, acc in enumerate(accs)
    ]
    summary = write_table(
        paths, "techniques", tmp_path / "t.md", tmp_path / "t.csv", options={"controls": {"curriculum": "control"}}
    )
    row = summary.set_index("variant").loc["curriculum"]
    half = 4.302653 * 1.0 / 3**0.5  # t(0.975, 2) * sd 1 pp / sqrt(3)
    assert (row.delta_baseline_pp, row.delta_baseline_low_pp, row.delta_baseline_high_pp) == pytest.approx(
        (10.0, 10.0 - half, 10.0 + half), abs=1e-4
    )
    md = (tmp_path / "t.md").read_text()
    line = next(line for line in md.splitlines() if "| curriculum " in line)
    assert f"+10.00 [{10 - half:+.2f}, {10 + half:+.2f}] *" in line
    noise = next(line for line in md.splitlines() if "| noise " in line)
    assert "*" not in noise.split("|")[5]  # differences +5, -5, +1: the interval holds zero
    # the control ran seeds 0 and 1 only: paired over those two, and said so
    assert row.delta_control_n == 2 and row.delta_control_pp == pytest.approx(10.5)
    assert "(n=2)" in line and "| control " in md and "Student-t" in md


def test_unknown_report_option_is_named(tmp_path):
    from curriculum_bench.config import ConfigError

    with pytest.raises(ConfigError, match=r"studies\.techniques\.report\.per_klass: unknown key"):
        write_table(
            [fake_metrics(tmp_path, "z", 0, 0.5, 0.5)],
            "techniques",
            tmp_path / "t.md",
            tmp_path / "t.csv",
            options={"per_klass": [0]},
        )


def expected(*variants, seeds=(0, 1)):
    """The workflow's `expected_runs` option for fake_metrics' runs."""
    return [["toy", "m", v, s] for v in variants for s in seeds]


def test_a_missing_seed_and_a_diverged_run_are_flagged_not_dropped(tmp_path):
    paths = [fake_metrics(tmp_path, "ok", s, 0.8, 0.9) for s in (0, 1, 2)]
    paths += [fake_metrics(tmp_path, "short", s, 0.7, 0.7) for s in (0, 2)]  # seed 1 never finished
    nan_run = fake_metrics(tmp_path, "nan", 0, 0.1, 0.3)
    (nan_run.parent / "history.jsonl").write_text(
        json.dumps({"epoch": 1, "eval_acc": 0.3, "train_loss": 2.0})
        + "\n"
        + json.dumps({"epoch": 2, "eval_acc": 0.1, "train_loss": float("nan")})
        + "\n"
    )
    summary = write_table(
        paths + [nan_run],
        "techniques",
        tmp_path / "t.md",
        tmp_path / "t.csv",
        options={"expected_runs": expected("ok", "short", "nan", "gone", seeds=(0, 1, 2))},
        out_html=tmp_path / "t.html",
    )
    assert summary.set_index("variant")["diverged_runs"].to_dict() == {"ok": 0, "short": 0, "nan": 1}
    md = (tmp_path / "t.md").read_text()
    assert "Fewer seeds than configured in some rows" in md and "Some runs diverged" in md
    assert "No finished run for 1 configured row(s)**, not in the table: toy/m/gone." in md
    short = next(line for line in md.splitlines() if "| short " in line)
    assert "2 of 3 seeds (missing 1)" in short and "70.00 ± 0.00" in short
    nan_row = next(line for line in md.splitlines() if "| nan " in line)
    assert "1 run(s) diverged" in nan_row and "10.00" in nan_row
    ok_row = next(line for line in md.splitlines() if "| ok " in line)
    assert ok_row.rstrip(" |").endswith("cpu")  # nothing to note
    html = (tmp_path / "t.html").read_text()
    assert html.count("<tr>") == 3 and "missing 1" in html and "No reported numbers" in html


def test_a_metrics_file_copied_into_another_seeds_folder_is_refused_naming_it(tmp_path):
    seed0 = fake_metrics(tmp_path, "baseline", 0, 0.8, 0.9)
    seed1 = seed0.parent.parent / "seed1" / "metrics.json"
    seed1.parent.mkdir()
    shutil.copy(seed0, seed1)  # today: the row reads "2 (0 0)", ± 0.00, no note
    with pytest.raises(
        InputFileError,
        match=r"seed1/metrics\.json: holds another run than its path names: "
        r"seed 0 \(its path says .*seed 1\)",
    ):
        write_table(
            [seed0, seed1],
            "techniques",
            tmp_path / "t.md",
            tmp_path / "t.csv",
            options={"expected_runs": expected("baseline")},
        )
    assert not (tmp_path / "t.md").exists()


def test_a_run_given_twice_or_of_another_study_or_outside_the_results_layout_is_refused(tmp_path):
    run = fake_metrics(tmp_path, "baseline", 0, 0.8, 0.9)
    with pytest.raises(InputFileError, match="the same run as"):
        write_table([run, run], "techniques", tmp_path / "t.md", tmp_path / "t.csv")
    with pytest.raises(InputFileError, match="a run of study 'techniques', not of 'hybrid'"):
        write_table([run], "hybrid", tmp_path / "t.md", tmp_path / "t.csv")
    loose = tmp_path / "elsewhere/metrics.json"
    loose.parent.mkdir()
    shutil.copy(run, loose)
    with pytest.raises(InputFileError, match=r"elsewhere/metrics\.json: not where a run's scores are"):
        write_table([loose], "techniques", tmp_path / "t.md", tmp_path / "t.csv")


def test_a_seed_set_other_than_the_configs_is_an_error_not_a_count_match(tmp_path):
    paths = [fake_metrics(tmp_path, "baseline", s, 0.8, 0.9) for s in (0, 2)]  # two seeds, as configured
    with pytest.raises(
        InputFileError,
        match=r"seed2/metrics\.json: seed 2 is not one of the config's seeds "
        r"\[0, 1\] for toy/m/baseline",
    ):
        write_table(
            paths, "techniques", tmp_path / "t.md", tmp_path / "t.csv", options={"expected_runs": expected("baseline")}
        )
    other = fake_metrics(tmp_path, "other", 0, 0.8, 0.9)
    with pytest.raises(InputFileError, match="toy/m/other is not a row the config asks for"):
        write_table(
            [other],
            "techniques",
            tmp_path / "t.md",
            tmp_path / "t.csv",
            options={"expected_runs": expected("baseline")},
        )


@pytest.mark.parametrize(
    "key, value, where",
    [
        ("final_acc", 97.5, "final_acc = 97.5"),
        ("best_acc", -0.1, "best_acc = -0.1"),
        ("final_acc_per_class", [0.5, 12.0], r"final_acc_per_class\[1\] = 12.0"),
        ("test_at_best_val_acc", float("inf"), "test_at_best_val_acc = inf"),
        (
            "probe",
            {"weight_decay": 5.0, "test_acc": 0.5, "val_acc_per_weight_decay": {"1e-06": 80.0}},
            r"probe\.val_acc_per_weight_decay\.1e-06 = 80.0",
        ),
        ("probe_per_epoch", {"1": 0.4, "2": 55.0}, r"probe_per_epoch\.2 = 55.0"),
        ("final_acc", "0.9", "final_acc is '0.9', not a number"),
    ],
)
def test_an_accuracy_outside_0_1_is_refused_naming_file_and_key(tmp_path, key, value, where):
    path = fake_metrics(tmp_path, "baseline", 0, 0.8, 0.9)
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, key: value}))  # today: 97.5 renders as 4912.78 ± 6840.87
    with pytest.raises(InputFileError, match=rf"baseline/seed0/metrics\.json: {where}"):
        write_table([path], "techniques", tmp_path / "t.md", tmp_path / "t.csv")


def test_an_accuracy_in_the_history_outside_0_1_is_refused_naming_file_epoch_and_key(tmp_path):
    path = fake_metrics(tmp_path, "baseline", 0, 0.8, 0.9)
    (path.parent / "history.jsonl").write_text(
        json.dumps({"epoch": 1, "eval_acc": 0.5, "self_labeling/pseudo_label_acc": None})
        + "\n"
        + json.dumps({"epoch": 2, "eval_acc": 80.0})
        + "\n"
    )
    with pytest.raises(InputFileError, match=r"seed0/history\.jsonl: epoch 2: eval_acc = 80.0 is outside \[0, 1\]"):
        write_table([path], "techniques", tmp_path / "t.md", tmp_path / "t.csv", options={"at_epochs": [2]})


def test_nan_accuracies_of_a_diverged_run_and_settings_named_like_accuracies_pass(tmp_path):
    path = fake_metrics(tmp_path, "baseline", 0, 0.8, 0.9)
    m = json.loads(path.read_text())
    path.write_text(
        json.dumps({**m, "final_acc_per_class": [0.9, float("nan")], "run": {"methods": {"x": {"min_acc": 50}}}})
    )
    summary = write_table([path], "techniques", tmp_path / "t.md", tmp_path / "t.csv")
    assert summary.final_acc_mean.tolist() == [0.8]


def test_a_table_is_stale_when_its_runs_differ_from_the_configs_or_one_was_deleted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the workflow's paths are relative to its working directory
    paths = [fake_metrics(tmp_path, v, s, 0.8, 0.9).relative_to(tmp_path) for v in ("a", "b") for s in (0, 1)]
    csv = tmp_path / "t.csv"
    write_table(paths, "techniques", tmp_path / "t.md", csv)
    assert not table_is_stale(csv, [str(p) for p in paths])
    assert table_is_stale(csv, [str(p) for p in paths[:3]])  # a seed or a variant less in the config
    assert table_is_stale(csv, [str(p) for p in paths] + ["results/techniques/toy/m/c/seed0/metrics.json"])
    assert not table_is_stale(tmp_path / "never_written.csv", [str(p) for p in paths])
    marker = tmp_path / "logs/table/techniques.rebuild"
    assert rebuild_marker(csv, [str(p) for p in paths], marker) == str(marker)
    assert marker.stat().st_mtime_ns == 0  # never newer than the table
    shutil.rmtree(paths[1].parent)  # a deleted run folder
    rebuild_marker(csv, [str(p) for p in paths], marker)
    assert marker.stat().st_mtime_ns > csv.stat().st_mtime_ns  # newer: Snakemake reruns the table
    os.utime(marker, (0, 0))
    csv.write_text("dataset,model\ntoy,m\n")  # no seed_list: not a table we can trust
    assert table_is_stale(csv, [str(p) for p in paths if p.exists()])


def test_a_fabricated_data_config_says_so_above_the_table(tmp_path):
    from curriculum_bench.report import FABRICATED_WARNING

    path = fake_metrics(tmp_path, "baseline", 0, 0.5, 0.5)
    write_table(
        [path],
        "techniques",
        tmp_path / "t.md",
        tmp_path / "t.csv",
        options={"fabricated_data": True},
        out_html=tmp_path / "t.html",
    )
    assert (tmp_path / "t.md").read_text().split("\n")[2] == FABRICATED_WARNING
    assert "FABRICATED DATA" in (tmp_path / "t.html").read_text()
    write_table([path], "techniques", tmp_path / "u.md", tmp_path / "u.csv")
    assert "FABRICATED" not in (tmp_path / "u.md").read_text()


def test_a_row_whose_seeds_ran_at_different_precisions_names_each_device(tmp_path):
    paths = [fake_metrics(tmp_path, "zeta", s, 0.8, 0.9) for s in (0, 1, 2)]
    for path, bf16 in zip(paths, (True, False, True), strict=True):
        metrics = json.loads(path.read_text())
        path.write_text(json.dumps({**metrics, "speed": {"bf16": bf16, "channels_last": bf16}}))
    summary = write_table(paths, "techniques", tmp_path / "t.md", tmp_path / "t.csv")
    assert summary.iloc[0].device == "cpu, bf16 / cpu"
