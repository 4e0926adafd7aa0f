"""Figures: every study gets the accuracy curve; bands come from the seeds."""

import json

import pytest

from curriculum_bench.report.figures import figure_names, load_runs, new_figure, plot_seed_band, write_figure


def fake_run(tmp_path, variant, seed, accs):
    folder = tmp_path / variant / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "study": "techniques",
                "dataset": "toy",
                "model": "m",
                "variant": variant,
                "seed": seed,
                "eval_split": "test",
            }
        )
    )
    (folder / "history.jsonl").write_text(
        "".join(json.dumps({"epoch": e + 1, "eval_acc": a}) + "\n" for e, a in enumerate(accs))
    )
    return folder / "metrics.json"


def test_every_study_has_the_accuracy_figure_first():
    for study in ("techniques", "hybrid"):
        assert figure_names(study)[0] == "accuracy"


def test_seed_line_is_the_mean_over_seeds(tmp_path):
    paths = [fake_run(tmp_path, "a", 0, [0.2, 0.4]), fake_run(tmp_path, "a", 1, [0.4, 0.8])]
    _fig, (ax,) = new_figure()
    assert plot_seed_band(ax, load_runs(paths), "eval_acc", "a", 100)
    line = ax.get_lines()[0]
    assert list(line.get_ydata()) == pytest.approx([30.0, 60.0])
    assert line.get_label() == "a (2 seeds)"
    assert not plot_seed_band(ax, load_runs(paths), "no_such_key", "a")


def band_limits(ax):
    ys = ax.collections[0].get_paths()[0].vertices[:, 1]
    return ys.min(), ys.max()


def test_accuracy_band_spans_the_seeds_and_never_leaves_0_to_100(tmp_path):
    # mean ± std here would be 85 ± 26 %: a band up to 111 % that no seed reached
    paths = [fake_run(tmp_path, "a", s, [acc, acc]) for s, acc in enumerate([1.0, 1.0, 0.55])]
    _, (ax,) = new_figure()
    assert plot_seed_band(ax, load_runs(paths), "eval_acc", "a", 100)
    assert band_limits(ax) == pytest.approx((55.0, 100.0))


def test_removal_curve_band_spans_the_seeds_within_0_and_100(tmp_path):
    from curriculum_bench.report.figures_coreset import removal_curve

    paths = []
    for variant in ("remove_0", "remove_forgetting_10"):
        for seed, acc in enumerate([1.0, 1.0, 0.55]):
            path = fake_run(tmp_path, variant, seed, [acc])
            path.write_text(json.dumps({**json.loads(path.read_text()), "final_acc": acc, "num_train": 100}))
            paths.append(path)
    ax = removal_curve(load_runs(paths)).axes[0]
    assert band_limits(ax) == pytest.approx((55.0, 100.0))


def test_write_figure_writes_png_and_svg_and_rejects_unknown_names(tmp_path):
    paths = [fake_run(tmp_path, "a", 0, [0.2, 0.4]), fake_run(tmp_path, "b", 0, [0.3, 0.5])]
    out = tmp_path / "fig" / "accuracy.png"
    write_figure("techniques", "accuracy", paths, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.with_suffix(".svg").exists()
    with pytest.raises(KeyError, match="unknown figure 'nope'"):
        write_figure("techniques", "nope", paths, tmp_path / "x.png")


def test_every_declared_figure_name_has_its_function():
    """report/figure_names.py (read by the Snakefile without pandas) and the registered functions agree."""
    from curriculum_bench.report.figure_names import FIGURE_NAMES
    from curriculum_bench.report.figures import FIGURES, _load_figure_modules

    _load_figure_modules()
    assert {study: tuple(fns) for study, fns in FIGURES.items()} == FIGURE_NAMES
