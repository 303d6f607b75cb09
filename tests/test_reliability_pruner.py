"""Reliability of SurrogateHalvingPruner and report(): one test per defect reported against the pruner as it
stood at commit 1ff1480 (each fails there and passes now).

Tests that need PostgreSQL read ``SH_SCALING_TEST_POSTGRES_URL`` (``.ci/run`` starts a server and sets it) and
are skipped without it.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings

import numpy as np
import optuna
import pytest

from sh_scaling.keys import DECISION_KEY, NO_DECISION_WARNING_KEY, RUNG_PREFIX
from sh_scaling.pruning import SurrogateHalvingPruner, report
from _surrogates import LogLinear

optuna.logging.set_verbosity(optuna.logging.ERROR)

POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
# Every attribute report() writes for compute starts with this, whatever the layout (one key per step before,
# two list keys now).
_COMPUTE_ATTR_PREFIX = "sh_scaling:compute"
#: One PF-day in FLOPs.
_PF_DAY = 1e15 * 86400


def _rung_records(frozen: optuna.trial.FrozenTrial) -> dict[int, dict]:
    return {int(k[len(RUNG_PREFIX):]): v for k, v in frozen.system_attrs.items() if k.startswith(RUNG_PREFIX)}


def _compute_attrs(frozen: optuna.trial.FrozenTrial) -> dict:
    return {k: v for k, v in frozen.system_attrs.items() if k.startswith(_COMPUTE_ATTR_PREFIX)}


def _law(size: float, compute: np.ndarray) -> np.ndarray:
    """The curve of the original report: ``2.5 + 4 (c / size)^-0.4``."""
    return 2.5 + 4.0 * (compute / size) ** -0.4


# ------------------------------------------------------------------------------------------- 1. rung grid
# The original report: two workers, trials of sizes 1 and 2 reporting at size * geomspace(1, 100, 15)[:3]. Both
# read the study's attributes as empty before either wrote the grid's anchor (the third report's compute):
# 3.86 was stored, worker 1 used 1.93, worker 2 used 3.86, so the two trials were decided on different grids.
_ORDERS = {
    "small-first": [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)],
    "large-first": [(2, 0), (2, 1), (2, 2), (1, 0), (1, 1), (1, 2)],
    "interleaved": [(1, 0), (2, 0), (1, 1), (2, 1), (2, 2), (1, 2)],
}


@pytest.mark.parametrize("order", sorted(_ORDERS))
def test_rung_grid_is_the_same_for_every_worker_and_arrival_order(order, monkeypatch):
    rung_factor = 1.5
    storage = optuna.storages.InMemoryStorage()
    name = "grid"
    optuna.create_study(study_name=name, storage=storage)
    study_attrs = storage.get_study_system_attrs
    # The race, made deterministic: every read of the study's attributes comes before any write.
    monkeypatch.setattr(storage, "get_study_system_attrs", lambda study_id: {})
    workers = [
        optuna.load_study(
            study_name=name,
            storage=storage,
            pruner=SurrogateHalvingPruner(LogLinear(), max_compute=lambda p: 20.0 * p["size"], rung_factor=rung_factor),
        )
        for _ in range(2)
    ]
    trials = {}
    for worker, size in zip(workers, (1, 2)):
        trials[size] = worker.ask()
        trials[size].suggest_float("size", size, size)
    compute = {size: size * np.geomspace(1.0, 100.0, 15)[:3] for size in trials}
    for size, step in _ORDERS[order]:
        report(trials[size], float(_law(size, compute[size][step])), compute=float(compute[size][step]))
        assert not trials[size].should_prune()

    records = {size: _rung_records(storage.get_trial(t._trial_id)) for size, t in trials.items()}
    assert records[1] and records[2], "both trials must be decided at their third report"
    for size, recs in records.items():
        for k, rec in recs.items():
            # One grid, rung_factor**k, whoever arrives first and whichever worker decides.
            assert rec["compute"] == pytest.approx(rung_factor**k, rel=1e-9), (size, k, rec["compute"])
    assert study_attrs(workers[0]._study_id) == {}  # the grid needs no shared state


# -------------------------------------------------------------------------------- 4. decisions never made
def _sweep_30(pruner: SurrogateHalvingPruner, plain_report: bool) -> tuple[optuna.Study, list[str]]:
    """30 trials of sizes 1..5, compute in FLOPs (size * 1e18 ... size * 1e20); the pruner's warnings."""
    study = optuna.create_study(pruner=pruner)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(30):
            trial = study.ask()
            size = trial.suggest_float("size", 1 + i % 5, 1 + i % 5)
            flops = size * 1e18 * np.geomspace(1.0, 100.0, 15)
            loss = _law(size * 1e18, flops) * (1 + 0.01 * i)
            state = optuna.trial.TrialState.COMPLETE
            for step, (c, value) in enumerate(zip(flops, loss)):
                if plain_report:
                    trial.report(float(value), step)
                else:
                    report(trial, float(value), compute=float(c))
                if trial.should_prune():
                    state = optuna.trial.TrialState.PRUNED
                    break
            study.tell(trial, float(loss[-1]) if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    ours = [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "SurrogateHalving" in str(w.message)]
    return study, ours


# Each case: pruner settings, plain trial.report (compute from compute_fn), and numbers the record must name.
_NO_DECISION = {
    # FLOPs reported, max_compute given in PF-days: every report lies at or past max_compute.
    "max_compute-in-pf-days": (dict(max_compute=lambda p: p["size"] * 1e20 / _PF_DAY), False, ["1e+18", "1.157"]),
    # max_compute 1000x the FLOPs a trial reaches: the decision window starts 50x past the last report.
    "max_compute-1000x": (dict(max_compute=lambda p: p["size"] * 1e23), False, ["1e+18", "1e+20", "5e+21", "1e+23"]),
    "compute_fn-constant": (
        dict(max_compute=lambda p: p["size"] * 1e20, compute_fn=lambda p, s: 1e18), True, ["1e+18"]),
    "compute_fn-decreasing": (
        dict(max_compute=lambda p: p["size"] * 1e20, compute_fn=lambda p, s: p["size"] * 1e19 / (s + 1)), True, ["5e+18"]),
}
@pytest.mark.parametrize(
    "case",
    [
        "max_compute-in-pf-days",
        "max_compute-1000x",
        "compute_fn-constant",
        "compute_fn-decreasing",
    ],
)
def test_sweep_the_pruner_cannot_decide_warns_once_and_records_why(case):
    settings, plain, numbers = _NO_DECISION[case]
    study, ours = _sweep_30(SurrogateHalvingPruner(LogLinear(), **settings), plain)
    assert len(ours) == 1, ours
    record = study._storage.get_study_system_attrs(study._study_id).get(NO_DECISION_WARNING_KEY)
    assert record is not None and record in ours[0]
    for number in numbers:
        assert number in record, (number, record)
    assert all(not _rung_records(t) for t in study.trials)  # indeed nothing was decided


# ------------------------------------------------------------------------------------ 5. keyword-only args
def test_report_with_step_passed_positionally_is_a_type_error():
    study = optuna.create_study(pruner=SurrogateHalvingPruner(LogLinear(), max_compute=1e20))
    trial = study.ask()
    # Written by analogy with trial.report(loss, step): the step must not be taken for compute.
    with pytest.raises(TypeError):
        report(trial, 3.0, 7)
    with pytest.raises(TypeError):
        report(trial, 3.0, 1e18, 7)
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.intermediate_values == {} and _compute_attrs(frozen) == {}


# ------------------------------------------------------------------------------- 6. cost of many reports
def _dataframe_columns(n_reports: int) -> list[str]:
    study = optuna.create_study(pruner=SurrogateHalvingPruner(LogLinear(), max_compute=10.0 * n_reports))
    trial = study.ask()
    for i in range(n_reports):
        report(trial, 2.0 + 1.0 / (i + 1), compute=float(i + 1))
    study.tell(trial, 2.0)
    return list(study.trials_dataframe().columns)


def test_dataframe_columns_do_not_grow_with_the_number_of_reports():
    few, many = _dataframe_columns(10), _dataframe_columns(500)
    assert len(few) == len(many), sorted(set(many) - set(few))[:5]


# ---------------------------------------------------------------------------------- 7. user functions
def test_max_compute_reading_a_missing_param_fails_the_trial_naming_it():
    pruner = SurrogateHalvingPruner(LogLinear(), max_compute=lambda p: 6 * p["n_params"] * p["tokens"])
    study = optuna.create_study(pruner=pruner)

    def objective(trial):
        trial.suggest_float("n_params", 1e6, 1e6)
        report(trial, 3.0, compute=1.0)
        trial.should_prune()
        return 3.0

    with pytest.raises(ValueError, match="tokens"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


def test_max_compute_that_raises_is_a_value_error_from_should_prune():
    study = optuna.create_study(pruner=SurrogateHalvingPruner(LogLinear(), max_compute=lambda p: 1 / p["size"]))
    trial = study.ask()
    trial.suggest_float("size", 0.0, 0.0)
    report(trial, 3.0, compute=1.0)
    with pytest.raises(ValueError, match="max_compute.*ZeroDivisionError"):
        trial.should_prune()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(max_compute=lambda: 1e20), "max_compute"),
        (dict(max_compute=lambda p, tokens: 1e20), "max_compute"),
        (dict(max_compute=1e20, compute_fn=lambda p: 1e18), "compute_fn"),
        (dict(max_compute=1e20, compute_fn=lambda step: 1e18), "compute_fn"),
    ],
)
def test_functions_that_cannot_take_their_arguments_fail_at_construction(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SurrogateHalvingPruner(LogLinear(), **kwargs)


# ------------------------------------------------------------------------------------ 12. rejected reports
_REJECTED = {"loss-abc": ("abc", {}), "loss-None": (None, {}), "step-2**31": (2.5, {"step": 2**31})}


def _check_rejected_report_leaves_nothing(study: optuna.Study, bad: str) -> None:
    trial = study.ask()
    report(trial, 3.0, compute=1.0)
    before = study._storage.get_trial(trial._trial_id)
    loss, kwargs = _REJECTED[bad]
    with pytest.raises(Exception) as raised:
        report(trial, loss, compute=2.0, **kwargs)
    after = study._storage.get_trial(trial._trial_id)
    assert _compute_attrs(after) == _compute_attrs(before)  # no compute written for the rejected report
    assert after.intermediate_values == before.intermediate_values == {0: 3.0}
    assert raised.type is ValueError  # the documented error, not the storage's or trial.report's
    # The trial goes on as if the bad report had never been made.
    report(trial, 2.9, compute=2.0)
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {0: 3.0, 1: 2.9}


@pytest.mark.parametrize("bad", sorted(_REJECTED))
def test_rejected_report_leaves_no_compute_behind(bad):
    study = optuna.create_study(pruner=SurrogateHalvingPruner(LogLinear(), max_compute=100.0))
    _check_rejected_report_leaves_nothing(study, bad)


@pytest.fixture
def postgres_url():
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    return POSTGRES_URL


@pytest.mark.postgres
@pytest.mark.parametrize("bad", sorted(_REJECTED))
def test_rejected_report_leaves_no_compute_behind_on_postgres(bad, postgres_url):
    storage = optuna.storages.RDBStorage(postgres_url)
    name = f"sh-rejected-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage,
                                  pruner=SurrogateHalvingPruner(LogLinear(), max_compute=100.0))
        _check_rejected_report_leaves_nothing(study, bad)
    finally:
        optuna.delete_study(study_name=name, storage=storage)


# --------------------------------------------------------------------------------- 13. decision text
def test_trial_kept_by_the_frontier_rule_is_told_so():
    # Three trials of one size (same max_compute, so they compete for the same compute): two steep curves
    # first (promoted as startup), then a flat one that is lower early on. At the early rungs it ranks
    # behind the steep one that will end lowest, yet its path lies below the others' frontier, so the frontier
    # rule keeps it: its decision text must say that, not only a rank that is outside the quota.
    study = optuna.create_study(pruner=SurrogateHalvingPruner(LogLinear(std=0.03), max_compute=100.0,
                                                              reduction_factor=4))
    compute = np.geomspace(1.0, 100.0, 15)
    texts = []
    for a, b in [(4.0, 0.5), (5.0, 0.2), (1.0, 0.05)]:
        trial = study.ask()
        pruned = False
        for c in compute:
            report(trial, float(a * c**-b), compute=float(c))
            pruned = trial.should_prune()
            texts.append(study._storage.get_trial(trial._trial_id).user_attrs.get(DECISION_KEY))
            if pruned:
                break
        study.tell(trial, None if pruned else float(a * compute[-1] ** -b),
                   state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE)
    ranked_out = []
    for text in filter(None, texts):
        m = re.search(r"ranked (\d+) of (\d+).*top (\d+) go on", text)
        if text.startswith("promoted") and m and int(m[1]) > int(m[3]):
            ranked_out.append(text)
    assert ranked_out, "the flat trial must be kept at least once although ranked out"
    for text in ranked_out:
        assert "kept by the frontier rule" in text, text
