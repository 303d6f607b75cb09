"""from_study: a study's learning curves, read back exactly as they were reported, by either reporting route."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import sh_scaling
from sh_scaling.curves import Curve, CurveSet, CurveWarning, from_study, load_csv, load_routing
from sh_scaling.keys import FORECAST_KEY

ROUTES = ("report", "compute_fn")


def step_compute(curves: CurveSet):
    """The ``compute_fn`` of a replay: step ``s`` of trial ``params["curve"]`` is that curve's ``s``-th point."""
    return lambda params, step: float(curves[params["curve"]].compute[step])


def replay_into_study(
    curves: CurveSet,
    *,
    route: str = "report",
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 0,
    direction: str = "minimize",
) -> optuna.Study:
    """Each curve reported point by point as one trial under the pruner, in a seeded order.

    ``route="report"`` reports with :func:`sh_scaling.report` (compute stored in the trial); ``"compute_fn"``
    with plain ``trial.report`` and the pruner's ``compute_fn``.
    """
    final = [c.final_compute for c in curves]
    fn = step_compute(curves) if route == "compute_fn" else None
    pruner = sh_scaling.SurrogateHalvingPruner(max_compute=lambda p: final[p["curve"]], compute_fn=fn)
    study = optuna.create_study(storage=storage, study_name=study_name, pruner=pruner, direction=direction,
                                sampler=optuna.samplers.RandomSampler(seed))
    for i in np.random.default_rng(seed).permutation(len(curves)):
        study.enqueue_trial({"curve": int(i)})

    def objective(trial: optuna.Trial) -> float:
        curve = curves[trial.suggest_int("curve", 0, len(curves) - 1)]
        for step, (c, loss) in enumerate(zip(curve.compute, curve.loss)):
            if route == "report":
                sh_scaling.report(trial, float(loss), compute=float(c), step=step)
            else:
                trial.report(float(loss), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return curve.final_loss

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study.optimize(objective, n_trials=len(curves))
    return study


@pytest.fixture(scope="module")
def dense(routing_csv) -> CurveSet:
    """The 13 dense routing runs (25 evaluations each, 15M to 1.3B parameters)."""
    return load_routing(routing_csv, router_types=["Dense"])


@pytest.fixture(scope="module", params=ROUTES)
def replayed(request, dense):
    return request.param, replay_into_study(dense, route=request.param)


def test_from_study_returns_exactly_the_replayed_points(replayed, dense):
    route, study = replayed
    fn = step_compute(dense) if route == "compute_fn" else None
    curves = from_study(study, compute_fn=fn)
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert states.count("PRUNED") >= 3 and "COMPLETE" in states  # prefixes, not only whole curves
    assert curves.ids == [str(t.number) for t in trials] and curves.name == study.study_name
    for t in trials:
        original, curve = dense[t.params["curve"]], curves.get(str(t.number))
        k = len(t.intermediate_values)
        np.testing.assert_array_equal(curve.compute, original.compute[:k])
        np.testing.assert_array_equal(curve.loss, original.loss[:k])
        assert curve.meta["trial"] == t.number and curve.meta["state"] == t.state.name
        assert curve.meta["params_curve"] == t.params["curve"]
        assert curve.meta["max_compute"] == pytest.approx(original.final_compute)
        if t.state.name == "PRUNED":
            assert curve.meta["forecast"] == pytest.approx(t.user_attrs[FORECAST_KEY])
            assert curve.meta["decision"].startswith("pruned at rung")


def test_plain_trial_report_needs_the_compute_fn(dense):
    study = replay_into_study(dense[:4], route="compute_fn")
    with pytest.raises(ValueError, match=r"4 trial\(s\) reported losses but no compute.*compute_fn="):
        from_study(study)


def test_states_filter_and_no_trial_message(replayed, dense):
    route, study = replayed
    fn = step_compute(dense) if route == "compute_fn" else None
    pruned = from_study(study, states=[optuna.trial.TrialState.PRUNED], compute_fn=fn)
    assert {c.meta["state"] for c in pruned} == {"PRUNED"}
    assert len(from_study(study, states=None, compute_fn=fn)) == len(study.trials)
    with pytest.raises(ValueError, match="no trial in state FAIL reported a loss"):
        from_study(study, states=[optuna.trial.TrialState.FAIL])


def test_partly_reported_compute_and_max_compute_sources():
    study = optuna.create_study()
    trial = study.ask({"n": optuna.distributions.IntDistribution(1, 8)})
    sh_scaling.report(trial, 3.0, compute=1.0, step=0, max_compute=9.0)
    trial.report(2.5, 1)  # no compute for this step
    sh_scaling.report(trial, 2.0, compute=4.0, step=2)
    study.tell(trial, 2.0)
    other = study.ask({"n": optuna.distributions.IntDistribution(1, 8)})
    sh_scaling.report(other, 3.5, compute=2.0, step=0)
    study.tell(other, state=optuna.trial.TrialState.PRUNED)
    with pytest.warns(CurveWarning, match=r"steps without compute left out \(trials 0\)"):
        curves = from_study(study)
    assert curves.get("0").compute.tolist() == [1.0, 4.0] and curves.get("0").meta["max_compute"] == 9.0
    assert "max_compute" not in curves.get("1").meta  # pruned, never decided, nothing given
    with pytest.warns(CurveWarning):
        given = from_study(study, max_compute=lambda p: 2.0 * p["n"])
    assert given.get("1").meta["max_compute"] == 2.0 * other.params["n"]
    with pytest.raises(ValueError, match=r"trial 1: max_compute\(params\) raised"):
        from_study(study, max_compute=lambda p: p["missing"])
    with pytest.raises(ValueError, match=r"trial 0: compute_fn\(params, 1\) raised ZeroDivisionError"):
        from_study(study, compute_fn=lambda p, s: 1 / 0)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_to_csv_and_load_csv_round_trip_a_study(replayed, dense, tmp_path, suffix):
    route, study = replayed
    curves = from_study(study, compute_fn=step_compute(dense) if route == "compute_fn" else None)
    path = tmp_path / f"sweep{suffix}"
    curves.to_csv(path)
    back = load_csv(path)
    assert back.ids == curves.ids
    for a, b in zip(curves, back):
        np.testing.assert_array_equal(a.compute, b.compute)
        np.testing.assert_array_equal(a.loss, b.loss)
        assert b.meta == a.meta  # a forecast only pruned trials have is absent, not NaN, on the others


def test_to_csv_refuses_metadata_named_like_a_point_column(tmp_path):
    curves = CurveSet([Curve.from_arrays("a", [1, 2], [3, 2], {"loss": 1.0})])
    with pytest.raises(ValueError, match=r"curve 'a': metadata \['loss'\]"):
        curves.to_csv(tmp_path / "x.csv")


def test_a_column_named_twice_is_a_clear_error(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("run_id,compute,loss,loss\na,1,3.0,2.9\na,2,2.5,2.4\n")
    with pytest.raises(ValueError, match=rf"{path}: the header names the column\(s\) 'loss' more than once"):
        load_csv(path)
    # A column really named "loss.1" (what pandas renames a repeat to) is not a repeat.
    path.write_text("run_id,compute,loss,loss.1\na,1,3.0,2.9\na,2,2.5,2.9\n")
    assert load_csv(path).get("a").meta == {"loss.1": 2.9}
    with pytest.raises(ValueError, match="compute_col and loss_col both name the column 'loss'"):
        load_csv(path, compute_col="loss")


def test_the_schedule_the_pruner_stored_is_in_the_metadata_and_survives_the_csv(tmp_path):

    from sh_scaling.schedules import Cosine

    cosine = Cosine(peak_lr=3e-4, warmup=0.05, final_ratio=0.1)
    study = optuna.create_study(pruner=sh_scaling.SurrogateHalvingPruner(max_compute=16.0, schedule=cosine))
    for scale in (1.0, 1.5, 2.0):
        trial = study.ask()
        for step, c in enumerate([1.0, 2.0, 4.0, 8.0, 16.0]):
            sh_scaling.report(trial, scale * 3.0 * c ** -0.1, compute=c, step=step)
            trial.should_prune()
        study.tell(trial, scale * 3.0 * 16.0 ** -0.1)
    curves = from_study(study)
    # The schedule as every curve set holds it (a Schedule), so replays and schedule-aware strategies read it.
    assert all(c.meta["schedule"] == cosine and c.meta["schedule_kind"] == "cosine" for c in curves)
    curves.to_csv(tmp_path / "s.csv")
    assert [c.meta for c in load_csv(tmp_path / "s.csv")] == [c.meta for c in curves]
