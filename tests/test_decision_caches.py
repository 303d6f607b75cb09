"""What a decision keeps between calls gives what it would compute afresh from its own inputs.

Each cache here is checked against the plain computation on inputs that change between calls (more trials
finished, another point of the fit), so that a cache that answered with an earlier call's values would fail.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from scipy.optimize import least_squares

from sh_scaling.keys import rung_records
from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.pruning._competitors import FinishedCompetitors, competitors_at
from sh_scaling.pruning._outcomes import FinishedOutcomes, Outcome, SettledMisses, stage_errors
from sh_scaling.schedules import LUO_2025, Cosine
from sh_scaling.surrogates import _numerics
from sh_scaling.surrogates._multipower import (
    PRIOR_KEYS,
    _history,
    _Objective,
    _Run,
    default_priors,
    priors_from_fits,
)
from sh_scaling.surrogates._numerics import least_squares_trf

from _surrogates import LogLinear

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- SciPy's trust-region loop without least_squares' front end ---------------------------------------------

def _problem():
    """An exponential decay with an asymptote, fitted in three bounded parameters (its Jacobian analytic)."""
    t = np.linspace(0.0, 4.0, 25)
    y = 0.3 + 2.0 * np.exp(-1.3 * t) + 0.01 * np.sin(7 * t)

    def fun(p):
        return p[0] + p[1] * np.exp(-p[2] * t) - y

    def jac(p):
        e = np.exp(-p[2] * t)
        return np.column_stack([np.ones_like(t), e, -p[1] * t * e])

    return fun, jac, np.array([0.0, 1.0, 0.5]), (np.array([-1.0, 0.0, 0.01]), np.array([1.0, 10.0, 5.0]))


@pytest.mark.parametrize("loss", ["linear", "soft_l1"])
@pytest.mark.parametrize("x_scale", [None, "jac"])
@pytest.mark.parametrize("direct", [True, False])
def test_least_squares_trf_gives_least_squares_bits(loss, x_scale, direct, monkeypatch):
    if not direct:
        monkeypatch.setattr(_numerics, "_DIRECT", [None])  # SciPy's internals not as expected: the public call
    fun, jac, x0, bounds = _problem()
    options = {} if x_scale is None else {"x_scale": x_scale}
    want = least_squares(fun, x0, jac=jac, bounds=bounds, method="trf", loss=loss, f_scale=0.05, max_nfev=40,
                         **options)
    got = least_squares_trf(fun, x0, jac, bounds, loss=loss, f_scale=0.05, max_nfev=40, x_scale=x_scale)
    for name in ("x", "fun", "jac", "grad"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    for name in ("cost", "optimality", "nfev", "njev", "status", "success", "message"):
        assert getattr(got, name) == getattr(want, name), name


def test_a_scipy_whose_helpers_take_other_arguments_gets_the_public_call(monkeypatch):
    """SciPy 1.10's ``check_x_scale`` takes two arguments (1.17's three): names and the loop's signature alone do
    not tell, so the direct path is tried on a small fit against ``least_squares`` before it is used."""
    import importlib

    lsq = importlib.import_module("scipy.optimize._lsq.least_squares")
    original = lsq.check_x_scale
    monkeypatch.setattr(lsq, "check_x_scale", lambda x_scale, x0: original(x_scale, x0, "trf"))
    monkeypatch.setattr(_numerics, "_DIRECT", [])
    assert _numerics._direct_trf() is None
    monkeypatch.setattr(lsq, "check_x_scale", original)  # the public call below needs SciPy's own
    fun, jac, x0, bounds = _problem()
    want = least_squares(fun, x0, jac=jac, bounds=bounds, method="trf", max_nfev=40)
    assert np.array_equal(least_squares_trf(fun, x0, jac, bounds, max_nfev=40).x, want.x)


def test_least_squares_trf_refuses_what_least_squares_refuses():
    fun, jac, x0, bounds = _problem()
    with pytest.raises(ValueError, match="Residuals are not finite in the initial point"):
        least_squares_trf(lambda p: fun(p) * np.nan, x0, jac, bounds)
    with pytest.raises(ValueError, match="outside of provided bounds"):
        least_squares_trf(fun, np.array([0.0, 1.0, 9.0]), jac, bounds)


# --- the multi-power fit's prior rows and default priors ----------------------------------------------------

def _prior_rows_afresh(objective, theta):
    """The prior rows computed row by row (as the objective did before it kept them)."""
    values = np.empty(len(objective.prior_keys))
    jac = np.zeros((len(objective.prior_keys), len(objective.names)))
    for row, key in enumerate(objective.prior_keys):
        if key == "log_gain":
            i_l0, i_a, i_b = (objective.names.index(n) for n in ("L0", "log_A", "log_B"))
            a = math.exp(theta[i_a])
            total = theta[i_l0] + a
            values[row] = theta[i_b] - math.log(total)
            jac[row, i_b], jac[row, i_l0], jac[row, i_a] = 1.0, -1.0 / total, -a / total
        else:
            i = objective.names.index(key)
            values[row] = theta[i]
            jac[row, i] = 1.0
    return (values - objective.prior_mean) / objective.prior_std, jac / objective.prior_std[:, None]


@pytest.mark.parametrize("priors", [default_priors(), {k: v for k, v in default_priors().items() if k != "log_gain"}])
def test_prior_rows_are_those_of_the_point_asked(priors):
    f = np.linspace(0.05, 0.4, 12)
    history = _history(Cosine(peak_lr=3e-4, warmup=0.05, final_ratio=0.1), f, run_length=1.0, lr_scale=3e-4,
                        n_cells=64)
    objective = _Objective([_Run(history, np.linspace(0.3, 0.0, 12))], "multipower", priors, 3.0)
    rng = np.random.default_rng(0)
    thetas = [np.array([0.2, 0.1, 0.5, -3.0, 1.0, 0.6, 0.6]) + 0.1 * rng.standard_normal(7) for _ in range(3)]
    for theta in [thetas[0], thetas[1], thetas[1].copy(), thetas[0], thetas[2]]:
        values, jac = objective.prior_rows(theta)
        want_values, want_jac = _prior_rows_afresh(objective, theta)
        assert np.array_equal(values, want_values) and np.array_equal(jac, want_jac)
        # The residuals and the Jacobian end with the same rows.
        assert np.array_equal(objective.residuals(theta)[-len(values):], np.clip(want_values, -1e8, 1e8))
        assert np.array_equal(objective.jacobian(theta)[-len(values):], want_jac)


def test_default_priors_are_the_papers_and_a_copy():
    for law in ("multipower", "tissue"):
        first = default_priors(law)
        assert first == priors_from_fits(LUO_2025.values(), law)
        assert list(first) == list(PRIOR_KEYS[law])
        first.clear()  # the caller's copy: the next caller still gets every prior
        assert default_priors(law) == priors_from_fits(LUO_2025.values(), law)
    with pytest.raises(ValueError, match="law="):
        default_priors("nope")


# --- the finished trials' outcomes and the settled proven misses --------------------------------------------

def _outcome(i):
    kinds = ("own", "multipower")
    return Outcome([], [(0.01 * i - 0.03 * j, 0.1 * (j + 1), kinds[(i + j) % 2]) for j in range(i % 3 + 1)], None)


def test_finished_outcomes_extend_to_the_outcomes_of_the_trials_given():
    trials = [SimpleNamespace(_trial_id=i) for i in range(9)]
    outcomes = {t._trial_id: _outcome(t._trial_id) for t in trials}
    reads = []

    def read(t):
        reads.append(t._trial_id)
        return outcomes[t._trial_id]

    computed = []
    log = FinishedOutcomes()
    for ids in ([0, 1, 2], [0, 1, 2], [0, 1, 2, 3, 5], [0, 1, 2, 3, 5, 8], [0, 1, 2, 3, 4, 5, 8], [7]):
        given = [trials[i] for i in ids]
        log = log.extended(given, read)
        assert log.outcomes == tuple(outcomes[i] for i in ids)
        for kind in ("own", "multipower"):
            got, want = log.stage_errors(kind), stage_errors([outcomes[i] for i in ids], kind)
            assert all(np.array_equal(g, w) for g, w in zip(got, want))
        # A value derived from the outcomes is computed once for them, again for other outcomes.
        value = log.derived("n", lambda ids=ids: computed.append(tuple(ids)) or len(ids))
        assert value == len(ids) and computed[-1] == tuple(ids)
    assert computed == [(0, 1, 2), (0, 1, 2, 3, 5), (0, 1, 2, 3, 5, 8), (0, 1, 2, 3, 4, 5, 8), (7,)]
    # Only new trials are read when they come after the ones held; all of them when one comes in between.
    assert reads == [0, 1, 2, 3, 5, 8, 0, 1, 2, 3, 4, 5, 8, 7]


def test_settled_misses_are_those_of_the_trials_added():
    parts = {i: (np.array([-0.01 * i, -0.5 - 0.01 * i]), np.array([0.1, 0.2 * i])) for i in range(1, 5)}

    def joined(ids):
        if not ids:
            return []
        return sorted(zip(np.concatenate([parts[i][0] for i in ids]), np.concatenate([parts[i][1] for i in ids])))

    settled = SettledMisses()
    assert all(a.size == 0 for a in settled.misses())
    for n in range(1, 5):
        settled.add(n, parts[n])
        settled.add(n, (np.array([9.0]), np.array([9.0])))  # a trial is added once
        assert sorted(zip(*settled.misses())) == joined(range(1, n + 1))
        assert sorted(zip(*settled.misses(exclude=n))) == joined(range(1, n))
        assert sorted(zip(*settled.misses(exclude=99))) == joined(range(1, n + 1))
    assert settled.ids == {1, 2, 3, 4}


# --- the finished trials' parts in a rung's competition -----------------------------------------------------

def _curve(i):
    c = np.geomspace(1.0, 64.0, 13)
    return c, (1.0 + 0.1 * ((7 * i) % 5)) * c ** (-0.3 - 0.05 * (i % 4))


def _report(trial, i, upto, start=0):
    c, l = _curve(i)
    for cj, lj in zip(c[start:upto], l[start:upto]):
        report(trial, float(lj), compute=float(cj))
        if trial.should_prune():
            return False
    return True


def _finish(study, trial, i, start=0):
    if _report(trial, i, 13, start):
        study.tell(trial, float(_curve(i)[1][-1]))
    else:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def _same(got, want):
    assert got[0] == want[0]
    assert all(g.dtype == w.dtype and np.array_equal(g, w) for g, w in zip(got[1], want[1]))
    assert (got[2] is None) == (want[2] is None)
    if want[2] is not None:
        assert all(g.dtype == w.dtype and np.array_equal(g, w) for g, w in zip(got[2], want[2]))


def test_finished_competitors_give_what_competitors_at_reads_afresh():
    pruner = SurrogateHalvingPruner(LogLinear(), max_compute=64.0, decision_start=0.0, reduction_factor=2,
                                    min_compute=4.0, objective="best_loss", optimism=None, margin=None,
                                    n_startup_trials=1)
    study = optuna.create_study(pruner=pruner)
    cache = FinishedCompetitors()

    def check(deciding, **kw):
        frozen = study._storage.get_trial(deciding._trial_id)
        finished = functools.partial(pruner._finished_trial, study)
        rungs = {(k, float(rec["compute"])) for t in study.get_trials(deepcopy=False)
                 for k, rec in rung_records(t.system_attrs).items()}
        assert rungs
        for k, r in sorted(rungs):
            for observed in (False, True):
                want = competitors_at(study, frozen, k, r, finished, observed=observed, **kw)
                got = competitors_at(study, frozen, k, r, finished, observed=observed, cache=cache, **kw)
                _same(got, want)

    for i in range(5):
        _finish(study, study.ask(), i)
    a, b = study.ask(), study.ask()  # two trials running among the finished ones
    _report(a, 5, 7)
    _report(b, 6, 9)
    for i in range(7, 10):
        _finish(study, study.ask(), i)
    deciding = study.ask()
    _report(deciding, 10, 5)
    check(deciding)
    check(deciding, pending=True)
    for i in range(11, 13):  # more finished trials after the ones the cache holds
        _finish(study, study.ask(), i)
    check(deciding)
    _finish(study, b, 6, start=9)  # a trial finishes before trials that finished earlier
    check(deciding, pending=True)
    study.tell(a, state=optuna.trial.TrialState.FAIL)
    check(deciding)
