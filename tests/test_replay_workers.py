"""replay_study with many workers: a discrete-event replay whose pruners see the study as it stands at each
report; one worker is the sequential replay of ``study.optimize``; bad times are refused by name."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest

from sh_scaling.curves import Curve, CurveSet, generate_synthetic
from sh_scaling.keys import DECISION_KEY, FORECAST_KEY, rung_records
from sh_scaling.pruning import report
from sh_scaling.simulation import PRUNERS, PrunerSpec, arrival_order, make_pruner, replay_study, summarize_replay


@pytest.fixture(scope="module")
def curves():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_synthetic(12, seed=5, name="synthetic")


def _curve(cid, compute, loss, **meta):
    return Curve(cid, np.asarray(compute, float), np.asarray(loss, float), meta)


def _optimize_replay(curves, spec, seed):
    """The sequential replay as ``study.optimize`` runs it, one trial after the other: per trial (number,
    state, points reported, last forecast and decision, decision records)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=f"replay-{seed}", direction="minimize", pruner=make_pruner(spec, curves),
                                sampler=optuna.samplers.RandomSampler(seed))
    for i in arrival_order(curves, seed):
        study.enqueue_trial({"curve": int(i)})
    unit = min(float(c.compute[0]) for c in curves)

    def objective(trial):
        curve = curves[trial.suggest_int("curve", 0, len(curves) - 1)]
        step = 0
        for c, loss in zip(curve.compute, curve.loss):
            step = max(int(np.rint(c / unit)), 1, step + 1)
            report(trial, float(loss), compute=float(c), step=step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(curve.final_loss)

    study.optimize(objective, n_trials=len(curves))
    return [(t.number, t.state.name, len(t.intermediate_values), t.user_attrs.get(FORECAST_KEY),
             t.user_attrs.get(DECISION_KEY), list(rung_records(t.system_attrs).values()))
            for t in study.get_trials(deepcopy=False)]


@pytest.mark.parametrize("spec", ["nop", "sha", PrunerSpec("sha", {"reduction_factor": 2}), "hyperband", "median",
                                  PrunerSpec("percentile", {"percentile": 25.0}), "patient", "ours",
                                  PrunerSpec("ours", {"surrogate": "powerlaw", "objective": "best_loss"})])
def test_one_worker_is_the_sequential_replay(curves, spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = replay_study(curves, spec, seeds=[0, 3], n_workers=1)
        for seed, g in df.groupby("seed"):
            expected = _optimize_replay(curves, spec if isinstance(spec, PrunerSpec) else PrunerSpec(spec), seed)
            got = [(r.trial, r.state, r.n_reported, r.forecast, r.decision, r.rungs) for r in g.itertuples()]
            assert got == expected
            # One trial after the other: each starts when the one before ended, and with times in units of
            # compute the makespan is the compute spent.
            assert list(g.start_time[1:]) == list(g.end_time[:-1]) and g.start_time.iloc[0] == 0
            assert g.makespan_frac.iloc[0] == pytest.approx(g.compute_frac.iloc[0])
            assert g.makespan.iloc[0] == pytest.approx(g.compute_spent.sum())


@pytest.mark.parametrize("spec", ["nop", "sha", "hyperband", "median", "ours"])
def test_many_workers_replay_every_curve_once_with_its_times(curves, spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = replay_study(curves, spec, seeds=[1, 2], n_workers=4)
    for seed, g in df.groupby("seed"):
        assert sorted(g.curve) == sorted(curves.ids) and (g.n_workers == 4).all()
        order = [curves.ids[i] for i in arrival_order(curves, seed)]
        assert list(g.sort_values("trial").curve) == order  # trials asked in arrival order
        for r in g.itertuples():
            full = curves.get(r.curve)
            assert 1 <= r.n_reported <= len(full) and r.compute_spent == full.compute[r.n_reported - 1]
            # Complete trials reported every point; a pruner may still stop a trial at its last one.
            assert r.state == ("COMPLETE" if r.n_reported < len(full) else r.state) or r.state == "PRUNED"
            assert r.state == "PRUNED" or r.n_reported == len(full)
            assert r.end_time - r.start_time == pytest.approx(r.compute_spent)  # throughput 1
        # Never more than 4 at once, and a worker is taken as soon as one is free.
        starts, ends = np.sort(g.start_time.to_numpy()), np.sort(g.end_time.to_numpy())
        assert (starts[:4] == 0).all() and np.array_equal(starts[4:], ends[:len(starts) - 4])
        assert g.makespan.iloc[0] == ends[-1]
        if spec == "nop":
            assert g.makespan_frac.iloc[0] == 1 and g.compute_frac.iloc[0] == pytest.approx(1)
    s = summarize_replay(df)
    assert list(s.n_workers) == [4] and 0 < s.makespan_frac.iloc[0] <= 1 and 0 <= s.zero_regret.iloc[0] <= 1


def test_exhaustive_makespan_is_greedy_list_scheduling():
    # Lengths 4, 10, 6, 3 in the given order on 2 workers: 4 | 10, then 6 after 4 (ends 10), 3 after 10: 13.
    cs = CurveSet([_curve("a", [2, 4], [3, 2.9]), _curve("b", [5, 10], [2.5, 2]), _curve("c", [6], [2.4]),
                   _curve("d", [1, 3], [2.6, 2.3])])
    df = replay_study(cs, "nop", order="given", n_workers=2)
    assert df.exhaustive_makespan.iloc[0] == 13 and df.makespan.iloc[0] == 13
    assert list(df.start_time) == [0, 0, 4, 10] and list(df.end_time) == [4, 10, 10, 13]
    assert replay_study(cs, "nop", order="given", n_workers=9).makespan.iloc[0] == 10  # all at once
    assert replay_study(cs, "nop", order="given", n_workers=1).makespan.iloc[0] == 23
    # Twice the throughput, half the time; a duration function sets each trial's own pace.
    assert replay_study(cs, "nop", order="given", n_workers=2, throughput=2.0).makespan.iloc[0] == 6.5
    slow = replay_study(cs, "nop", order="given", n_workers=2,
                        duration=lambda c, x: x * (3.0 if c.id == "a" else 1.0))
    # a takes 12: b [0, 10], c [10, 16], d [12, 15].
    assert list(slow.end_time) == [12, 10, 16, 15] and slow.exhaustive_makespan.iloc[0] == 16


class _Recorder(optuna.pruners.BasePruner):
    """Prunes a trial at its second report when its curve's index is odd, and records at every call what the
    study holds: each other trial's state and number of reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, dict[int, tuple[str, int]]]] = []

    def prune(self, study, trial):
        seen = {t.number: (t.state.name, len(t.intermediate_values)) for t in study.get_trials(deepcopy=False)
                if t.number != trial.number}
        k = len(trial.intermediate_values)
        self.calls.append((trial.number, k, seen))
        return k == 2 and trial.params["curve"] % 2 == 1


def test_each_report_sees_the_study_as_it_stands_then(monkeypatch):
    # Integer computes, so that many reports of different trials fall at the same time.
    rng = np.random.default_rng(0)
    cs = CurveSet([_curve(f"c{i}", np.cumsum(rng.integers(1, 4, size=n)), np.linspace(3 + i / 10, 2, n))
                   for i, n in enumerate(rng.integers(2, 7, size=9))])
    recorder = _Recorder()
    monkeypatch.setitem(PRUNERS, "recorder", lambda curves, **kw: recorder)
    df = replay_study(cs, "recorder", seeds=[4], n_workers=3).set_index("trial")
    times = {r.Index: cs.get(r.curve).compute for r in df.itertuples()}
    assert len(recorder.calls) == df.n_reported.sum()
    now_seen = []
    for number, k, seen in recorder.calls:
        now = df.start_time[number] + times[number][k - 1]
        now_seen.append((now, number))
        for m, (state, n_reports) in seen.items():
            def before(t, m=m):  # an event of trial m at time t is processed before this one
                return t < now or (t == now and m < number)

            start = df.start_time[m]
            if state == "WAITING":
                assert start >= now and n_reports == 0
                continue
            assert start <= now
            assert n_reports == sum(before(start + t) for t in times[m][:df.n_reported[m]])
            assert (state in ("COMPLETE", "PRUNED")) == before(df.end_time[m])
        assert all(m in seen and seen[m][0] != "WAITING" for m in df.index if df.start_time[m] < now and m != number)
    assert now_seen == sorted(now_seen)  # reports in order of time, ties in order of trial number
    assert len({t for t, _ in now_seen}) < len(now_seen) - 5  # with many ties
    assert (df[df.state == "PRUNED"].n_reported == 2).all() and (df.state == "PRUNED").any()


def test_replays_are_deterministic(curves):
    a = replay_study(curves, "hyperband", seeds=[7], n_workers=3).drop(columns="wall_s")
    b = replay_study(curves, "hyperband", seeds=[7], n_workers=3).drop(columns="wall_s")
    assert a.astype(str).equals(b.astype(str))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4", None])
def test_bad_worker_counts_are_refused(curves, bad):
    with pytest.raises(ValueError, match=f"n_workers={bad!r}"):
        replay_study(curves, "nop", n_workers=bad)


@pytest.mark.parametrize("fn, what", [
    (lambda c, x: 0.0, "returned 0.0: a report arrives a positive time"),
    (lambda c, x: -x, "returned -"),
    (lambda c, x: math.nan, "returned nan"),
    (lambda c, x: math.inf, "returned inf"),
    (lambda c, x: "soon", "returned 'soon'"),
    (lambda c, x: 1.0 / x, "earlier than"),
    (lambda c, x: {}[c.id], "raised KeyError"),
])
def test_bad_durations_name_the_curve_and_the_value(fn, what):
    cs = CurveSet([_curve("a", [1, 2], [3, 2.5]), _curve("b", [1, 4], [2.8, 2.2])])
    with pytest.raises(ValueError, match="duration\\(curve 'a', compute [12]\\)") as info:
        replay_study(cs, "nop", duration=fn)
    assert what in str(info.value)


def test_durations_that_fail_late_name_that_point():
    cs = CurveSet([_curve("a", [1, 2], [3, 2.5]), _curve("b", [1, 4], [2.8, 2.2])])
    with pytest.raises(ValueError, match="curve 'b', compute 4\\) returned -1.0"):
        replay_study(cs, "nop", duration=lambda c, x: -1.0 if x == 4 else x)
    with pytest.raises(ValueError, match="throughput=0"):
        replay_study(cs, "nop", throughput=0)
    with pytest.raises(ValueError, match="not both"):
        replay_study(cs, "nop", throughput=2.0, duration=lambda c, x: x)


def test_percentile_by_name_has_a_default(curves):
    pruner = make_pruner("percentile", curves)
    assert isinstance(pruner, optuna.pruners.PercentilePruner) and pruner._percentile == 25.0
    assert make_pruner(PrunerSpec("percentile", {"percentile": 75.0}), curves)._percentile == 75.0
