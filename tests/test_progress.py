"""Run-level progress (`python -m curriculum_bench progress`) on fabricated runs."""

import json
import os
import time

import pytest

from curriculum_bench.config import METRICS
from curriculum_bench.progress import TRAIN_LOG, eta_seconds, format_progress, study_progress


def runs(study, n, model="m"):
    return [{"study": study, "dataset": "d", "model": model, "variant": "v", "seed": s} for s in range(n)]


def finish(workdir, run, wall_s):
    path = workdir / METRICS.format(**run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"wall_s": wall_s}))


def test_eta_is_each_studys_remaining_runs_times_its_mean_wall_time_over_the_runs_at_once(tmp_path):
    planned = runs("a", 4) + runs("b", 3) + runs("c", 2)
    finish(tmp_path, planned[0], 100.0)
    finish(tmp_path, planned[1], 300.0)  # study a: mean 200 s, 2 left
    finish(tmp_path, planned[4], 60.0)  # study b: mean 60 s, 2 left; study c: none finished
    from curriculum_bench.progress import finished_wall_times

    studies = study_progress(planned, finished_wall_times(tmp_path, planned))
    assert [(s.study, s.planned, s.finished, s.mean_wall_s) for s in studies] == [
        ("a", 4, 2, 200.0),
        ("b", 3, 1, 60.0),
        ("c", 2, 0, None),
    ]
    overall = (100 + 300 + 60) / 3  # study c is estimated from every finished run
    assert eta_seconds(studies) == pytest.approx(2 * 200 + 2 * 60 + 2 * overall)
    assert eta_seconds(studies, parallel=2) == pytest.approx((2 * 200 + 2 * 60 + 2 * overall) / 2)
    assert eta_seconds(study_progress(planned, {})) is None


def test_report_names_running_runs_with_their_log_line_and_the_time_left(tmp_path):
    planned = runs("a", 3)
    finish(tmp_path, planned[0], 120.0)
    log = tmp_path / TRAIN_LOG.format(**planned[1])
    log.parent.mkdir(parents=True)
    log.write_text("epoch 1/5 acc 0.41\nepoch 2/5 acc 0.55 eta 0:03:00\n")
    stale = tmp_path / TRAIN_LOG.format(**planned[2])  # a log of a killed run: not running
    stale.write_text("epoch 1/5\n")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    text = format_progress(tmp_path, planned)
    assert "runs finished 1 of 3" in text and "a: 1/3, 2 min each" in text
    assert "running a/d/m/v/seed1: epoch 2/5 acc 0.55 eta 0:03:00  (log: logs/train/a/d/m/v/seed1.log)" in text
    assert "seed2:" not in text
    assert "time left ≈ 4 min (1 run(s) at once" in text
