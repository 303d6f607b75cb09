"""``benchmarks/bench_cluster_load.py`` with 4 processes on PostgreSQL: its correctness checks pass (no lost
report, no double claim, ledger = compute trained, nothing RUNNING), directly and through Optuna's gRPC storage
proxy. Its timings are not checked. Needs ``SH_SCALING_TEST_POSTGRES_URL`` (``.ci/run`` starts PostgreSQL and
sets it); the gRPC route also needs ``grpcio`` and ``protobuf`` (the ``grpc`` extra)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import sh_scaling

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cluster_load.py"
POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")

PRUNER_CHECKS = ("processes exited 0", "all ran at once", "no lost report", "no trial left RUNNING")
WORKER_CHECKS = ("processes exited 0", "all ran at once", "no double claim", "ledger = compute trained <= budget",
                 "no trial left RUNNING")


def _run(tmp_path: Path, routes: list[str]) -> str:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--processes", "4", "--trials", "1", "--points", "6", "--seconds", "0.05",
         "--strategy", "SH", "--routes", *routes, "--deadline", "60", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.postgres
def test_cluster_load_with_four_processes_passes_its_checks(tmp_path):
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    # Both routes in one run; the gRPC route needs grpcio (the grpc extra, which the test extra includes).
    routes = ["direct"] + (["grpc"] if importlib.util.find_spec("grpc") is not None else [])
    stdout = _run(tmp_path, routes)
    for route in routes:
        for check in PRUNER_CHECKS:
            assert f"| pruner | {route} | {check} | ok |" in stdout, stdout
        for check in WORKER_CHECKS:
            assert f"| workers | {route} | {check} | ok |" in stdout, stdout
    assert "| FAIL |" not in stdout, stdout
    assert (tmp_path / "cluster_load" / "summary.csv").exists()
    assert (tmp_path / "cluster_load" / "latency.png").exists()


def _bench():
    spec = importlib.util.spec_from_file_location("bench_cluster_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _logged_study():
    """A study with one trial of three reports, and the log of them a process would keep."""
    study = optuna.create_study()
    trial = study.ask()
    log = []
    for compute, loss in ((1e15, 3.0), (2e15, 2.8), (4e15, 2.7)):
        step = sh_scaling.report(trial, loss, compute=compute)
        log.append([trial.number, step, compute, loss])
    study.tell(trial, 2.7)
    return study, log


def test_lost_reports_sees_a_report_missing_changed_or_unlogged():
    bench = _bench()
    study, log = _logged_study()
    trials = {t.number: t for t in study.get_trials()}
    assert bench.lost_reports(log, trials) == (3, 0, 0, 0)
    assert bench.lost_reports(log + [[0, 7, 8e15, 2.6]], trials) == (4, 1, 0, 0)  # logged, never stored
    assert bench.lost_reports(log[:2] + [[0, 2, 4e15, 2.65]], trials) == (3, 0, 1, 0)  # stored with another loss
    assert bench.lost_reports(log[:2], trials) == (2, 0, 0, 1)  # stored, nobody logged it
    assert bench.lost_reports(log, {}) == (3, 3, 0, 0)  # the trial is gone


def test_trained_twice_names_a_segment_two_workers_trained():
    bench = _bench()
    assert bench.trained_twice([(0, 0.0, 1.0), (1, 0.0, 1.0), (0, 1.0, 2.0)]) == []
    assert bench.trained_twice([(0, 0.0, 1.0), (1, 0.0, 1.0), (0, 0.0, 1.0)]) == [(0, 1.0)]
