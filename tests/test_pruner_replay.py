"""The Optuna replay used by benchmarks/bench_optuna_replay.py: every curve becomes one trial, nothing is lost."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from sh_scaling.curves import generate_synthetic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_optuna_replay as replay_bench  # noqa: E402


@pytest.fixture(scope="module")
def curves():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_synthetic(16, seed=3, name="synthetic")


@pytest.mark.parametrize("spec", ["Nop", "SH", replay_bench._ours("powerlaw", "frontier")])
def test_replay_turns_each_curve_into_one_trial(curves, spec):
    observed, spent, _ = replay_bench.replay(curves, spec, seed=1)
    assert sorted(c.id for c in observed) == sorted(curves.ids)
    for obs in observed:
        full = curves.get(obs.id)
        assert np.array_equal(obs.compute, full.compute[: len(obs)])  # a prefix of the recorded curve
        assert np.array_equal(obs.loss, full.loss[: len(obs)])
    assert spent == pytest.approx(sum(c.compute[-1] for c in observed))
    if spec == "Nop":
        assert spent == pytest.approx(curves.exhaustive_compute)
    else:
        assert spent < curves.exhaustive_compute
