"""sh_scaling.benchmarking: the shared pieces of the benchmark scripts."""

from __future__ import annotations

import pytest

from sh_scaling.benchmarking import BENCHMARK_CURVES, benchmark_curves, data_path
from sh_scaling.curves import CurveSet


def test_benchmark_curve_sets_by_name():
    ladder = benchmark_curves("ladder", seed=3)
    assert isinstance(ladder, CurveSet) and len(ladder) == 18
    assert benchmark_curves("ladder", seed=3).ids == ladder.ids  # seeded
    synthetic = benchmark_curves("synthetic", seed=1)
    assert len(synthetic) == 100
    if data_path("multipowerlaw") is not None:
        schedule = benchmark_curves("schedule")
        assert len(schedule) == 27 and all("schedule" in c.meta for c in schedule)
    assert len(benchmark_curves("cpu-ladder")) == 30  # shipped with the package
    assert set(BENCHMARK_CURVES) == {"schedule", "ladder", "routing", "synthetic", "cpu-ladder"}
    with pytest.raises(ValueError, match="unknown curve set 'nope'"):
        benchmark_curves("nope")


def test_local_curve_sets_skip_routing_without_a_local_copy(monkeypatch, capsys):
    import sh_scaling.benchmarking as bm

    monkeypatch.setattr(bm, "data_path", lambda name: None)
    assert bm.local_curve_sets(["schedule", "routing"]) == ["schedule"]
    assert "routing curves not found" in capsys.readouterr().err
    monkeypatch.setattr(bm, "data_path", lambda name: "/somewhere")
    assert bm.local_curve_sets(["routing", "ladder"]) == ["routing", "ladder"]


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("jobs", [1, 2])
def test_parallel_map_reports_progress_in_a_log_at_each_tenth(capsys, jobs):
    from sh_scaling.benchmarking import parallel_map

    assert parallel_map(_square, list(range(20)), jobs=jobs, label="studies") == [x * x for x in range(20)]
    lines = capsys.readouterr().err.strip().splitlines()  # pytest's stderr is not a terminal: lines, no bar
    assert [line.split(" done")[0] for line in lines] == [f"studies: {n} of 20" for n in range(2, 21, 2)]
    parallel_map(_square, list(range(3)), jobs=jobs, progress=False)
    assert capsys.readouterr().err == ""
