"""Worker processes racing at the first rungs with the default pruner settings: one rung grid per study, no
trial left running, no report lost. A light run of ``benchmarks/bench_pruner_race.py`` (3 rounds), whose
round it reuses so that the test and the benchmark check the same thing.

The journal-file run always happens; the PostgreSQL run reads ``SH_SCALING_TEST_POSTGRES_URL`` (``.ci/run``
starts a server and sets it) and is skipped without it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pruner_race.py"
POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
N_ROUNDS = 3


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pruner_race", _BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_rounds(bench, kind: str, where: str) -> None:
    for seed in range(N_ROUNDS):
        row = bench.run_round(kind, where, seed)
        assert row["bad_exits"] == 0, row
        assert row["trials"] == bench.N_WORKERS * bench.TRIALS_PER_WORKER, row
        assert row["decisions"] > 0, row  # the third reports were decided, so the grid was exercised
        assert row["grids"] == 1 and row["off_grid"] == 0, row
        assert row["running"] == 0 and row["failed"] == 0, row
        assert row["missing"] == 0, row


def test_race_on_a_journal_file(bench, tmp_path):
    _check_rounds(bench, "journal", str(tmp_path))


@pytest.mark.postgres
def test_race_on_postgres(bench):
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    _check_rounds(bench, "postgres", POSTGRES_URL)
