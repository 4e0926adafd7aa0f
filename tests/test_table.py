import json

import pandas as pd
import pytest

from curriculum_bench.report.table import write_table


def fake_metrics(tmp_path, variant, seed, final, best):
    path = tmp_path / variant / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "study": "techniques", "dataset": "toy", "model": "m", "variant": variant, "seed": seed,
        "final_acc": final, "best_acc": best, "best_epoch": 2, "final_epoch": 3,
        "eval_split": "test", "num_train": 80, "num_eval": 20, "wall_s": 10.0 + seed,
        "train_images_per_s": 100.0, "peak_mem_mb": 50.0 + seed, "device_name": "cpu",
        "dataset_source": {"source": "toy"}}))
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
        "  - {dataset: other, model: m, variant: zeta, acc: 70.0, source: repo README}\n")
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
        write_table([fake_metrics(tmp_path, "z", 0, 0.5, 0.5)], "techniques", tmp_path / "t.md",
                    tmp_path / "t.csv", reported)


def test_report_options_add_per_class_epoch_and_delta_columns(tmp_path):
    paths = []
    for variant, accs, per_class in [("baseline", [0.5, 0.7], [0.9, 0.8]), ("ws", [0.6, 0.75], [0.4, 0.9])]:
        path = fake_metrics(tmp_path, variant, 0, accs[-1], max(accs))
        m = json.loads(path.read_text())
        m["final_acc_per_class"] = per_class
        path.write_text(json.dumps(m))
        (path.parent / "history.jsonl").write_text(
            "".join(json.dumps({"epoch": e + 1, "eval_acc": a}) + "\n" for e, a in enumerate(accs)))
        paths.append(path)
    summary = write_table(paths, "techniques", tmp_path / "t.md", tmp_path / "t.csv",
                          options={"per_class": [0], "at_epochs": [1, 5], "baseline": "baseline"})
    assert summary["acc_class 0_mean"].tolist() == [0.9, 0.4]
    assert summary["acc_epoch 1_mean"].tolist() == [0.5, 0.6]
    assert summary["acc_epoch 5_mean"].isna().all()  # runs shorter than epoch 5: marked, not dropped
    assert summary["delta_to_baseline_pp"].tolist()[1] == pytest.approx(5.0)
    md = (tmp_path / "t.md").read_text()
    assert "class 0 acc (%)" in md and "epoch 1 acc (%)" in md and "Δ final vs baseline (pp)" in md
    ws_row = next(line for line in md.splitlines() if "| ws " in line)
    assert "+5.00" in ws_row and "40.00" in ws_row and "60.00" in ws_row


def test_unknown_report_option_is_named(tmp_path):
    from curriculum_bench.config import ConfigError

    with pytest.raises(ConfigError, match=r"studies\.techniques\.report\.per_klass: unknown key"):
        write_table([fake_metrics(tmp_path, "z", 0, 0.5, 0.5)], "techniques", tmp_path / "t.md",
                    tmp_path / "t.csv", options={"per_klass": [0]})


def test_a_missing_seed_and_a_diverged_run_are_flagged_not_dropped(tmp_path):
    paths = [fake_metrics(tmp_path, "ok", s, 0.8, 0.9) for s in (0, 1, 2)]
    paths += [fake_metrics(tmp_path, "short", s, 0.7, 0.7) for s in (0, 2)]      # seed 1 never finished
    nan_run = fake_metrics(tmp_path, "nan", 0, 0.1, 0.3)
    (nan_run.parent / "history.jsonl").write_text(
        json.dumps({"epoch": 1, "eval_acc": 0.3, "train_loss": 2.0}) + "\n"
        + json.dumps({"epoch": 2, "eval_acc": 0.1, "train_loss": float("nan")}) + "\n")
    summary = write_table(paths + [nan_run], "techniques", tmp_path / "t.md", tmp_path / "t.csv",
                          options={"expected_seeds": [0, 1, 2]}, out_html=tmp_path / "t.html")
    assert summary.set_index("variant")["diverged_runs"].to_dict() == {"ok": 0, "short": 0, "nan": 1}
    md = (tmp_path / "t.md").read_text()
    assert "Fewer seeds than configured (3)" in md and "Some runs diverged" in md
    short = next(line for line in md.splitlines() if "| short " in line)
    assert "2 of 3 seeds (missing 1)" in short and "70.00 ± 0.00" in short
    nan_row = next(line for line in md.splitlines() if "| nan " in line)
    assert "1 run(s) diverged" in nan_row and "10.00" in nan_row
    ok_row = next(line for line in md.splitlines() if "| ok " in line)
    assert ok_row.rstrip(" |").endswith("cpu")  # nothing to note
    html = (tmp_path / "t.html").read_text()
    assert html.count("<tr>") == 3 and "missing 1" in html and "No reported numbers" in html
