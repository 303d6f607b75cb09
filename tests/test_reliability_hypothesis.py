"""Random report sequences through report() and should_prune(), for every built-in surrogate.

Each example is a study of one to four trials; each trial reports a random sequence: losses mostly from a
learning curve, else anywhere from 1e-300 to 1e300 (and 0, negative, NaN, inf, and values that are not
numbers), compute on any scale, steps repeated, out of order or left to the default, compute that sometimes
does not increase. The properties:

* report() raises nothing but its documented ValueError, and a rejected report writes nothing;
* should_prune() never raises (a study must go on whatever the curves);
* nothing hangs: every example runs under a wall-clock alarm;
* no report is lost: every accepted report is in the trial's intermediate values, with its loss, and its compute
  in :func:`sh_scaling.pruning.reported_compute`; nothing else is there.

2,000 examples in all (400 per surrogate; ``SH_SCALING_HYPOTHESIS_EXAMPLES`` sets another number per
surrogate for a longer search).
"""

from __future__ import annotations

import math
import os
import signal
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sh_scaling.pruning import SurrogateHalvingPruner, report, reported_compute
from sh_scaling.schedules import Cosine

optuna.logging.set_verbosity(optuna.logging.ERROR)

SURROGATES = ["powerlaw", "exponential", "mmf", "gp", "gp-multi"]
EXAMPLES_PER_SURROGATE = int(os.environ.get("SH_SCALING_HYPOTHESIS_EXAMPLES", 400))
#: Seconds one example may take before it counts as a hang (the slowest seen take well under a second).
EXAMPLE_TIMEOUT_S = 30

_SPECIAL = [0.0, -1.0, math.nan, math.inf, -math.inf, 5e-324, 1e-300, 1e300, 1.7e308]
_JUNK = ["abc", None, "2.5"]  # not numbers, except "2.5", which float() takes

# One report: where it sits relative to its position in the sequence (0: in order; else a repeated or an
# out-of-order step), where its loss comes from (the trial's learning curve, mostly, so that surrogate fits
# succeed and rungs are ranked; else anywhere in 1e-300..1e300, a special value, or not a number), whether the
# step is given or left to the default, and a factor that sometimes breaks the increase of compute.
_report = st.tuples(
    st.sampled_from([0, 0, 0, 0, 0, -1, -2, 1]),
    st.sampled_from(["curve"] * 6 + ["any", "special", "junk"]),
    st.floats(1e-300, 1e300),
    st.sampled_from(_SPECIAL + _JUNK),
    st.sampled_from([True, True, True, False]),
    st.sampled_from([None] * 8 + [0.5, 2.0]),
)

_trial = st.fixed_dictionaries({
    "scale": st.sampled_from([1e-3, 1.0, 1e6, 1e20]),  # compute in any unit
    "ratios": st.lists(st.floats(1.05, 3.0), min_size=12, max_size=12),
    "curve": st.tuples(st.floats(1.0, 3.0), st.floats(0.5, 5.0), st.floats(0.1, 0.8)),
    "reports": st.lists(_report, min_size=1, max_size=14),
    "planned": st.floats(0.3, 4.0),  # max_compute as a multiple of the curve's last compute
})


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"example ran past {EXAMPLE_TIMEOUT_S} s")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _same_values(a: dict[int, float], b: dict[int, float]) -> bool:
    return a.keys() == b.keys() and all(_same(a[s], b[s]) for s in a)


def _run_trial(study: optuna.Study, spec: dict) -> None:
    compute = spec["scale"] * np.cumprod(spec["ratios"])
    trial = study.ask()
    trial.suggest_float("planned", spec["planned"] * compute[-1], spec["planned"] * compute[-1])
    a, b, alpha = spec["curve"]
    accepted: dict[int, tuple[float, float]] = {}
    for i, (jitter, kind, anything, special, give_step, perturb) in enumerate(spec["reports"]):
        point = min(max(i + jitter, 0), len(compute) - 1)
        c = float(compute[point] * (perturb or 1.0))
        loss = {"curve": a + b * (compute[point] / compute[0]) ** -alpha, "any": anything}.get(kind, special)
        before = study._storage.get_trial(trial._trial_id)
        try:
            step = report(trial, loss, compute=c, step=point if give_step else None)
        except ValueError:
            after = study._storage.get_trial(trial._trial_id)
            assert _same_values(after.intermediate_values, before.intermediate_values)
            assert reported_compute(after) == reported_compute(before)
            continue
        if step not in accepted:  # a step reported twice keeps its first loss and compute
            accepted[step] = (float(loss), c)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            break
    else:
        # Finished trials matter too: the pruner checks them for "never decided" and gp-multi fits their curves.
        study.tell(trial, 1.0)
    frozen = study._storage.get_trial(trial._trial_id)
    assert sorted(frozen.intermediate_values) == sorted(accepted)
    stored = reported_compute(frozen)
    assert set(stored) == set(accepted)
    for step, (loss, c) in accepted.items():
        assert _same(frozen.intermediate_values[step], loss), (step, frozen.intermediate_values[step], loss)
        assert stored[step] == c, (step, stored[step], c)


@pytest.mark.parametrize("surrogate", [*SURROGATES, "schedule"])
def test_random_report_sequences_never_crash_hang_or_lose_a_report(surrogate):
    # "schedule": every trial states a cosine schedule, so forecasts are the multi-power law's and the
    # improvement rule applies (by default, or at a setting drawn here).
    schedule = Cosine(warmup=0.05, final_ratio=0.1) if surrogate == "schedule" else None

    @settings(max_examples=EXAMPLES_PER_SURROGATE, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(trials=st.lists(_trial, min_size=1, max_size=4), n_startup=st.sampled_from([0, 2]),
           objective=st.sampled_from(["frontier", "best_loss"]),
           min_improvement=st.sampled_from(["auto", None, 0.0, 0.3]))
    def check(trials, n_startup, objective, min_improvement):
        pruner = SurrogateHalvingPruner("powerlaw" if schedule else surrogate, max_compute=lambda p: p["planned"],
                                        n_startup_trials=n_startup, objective=objective, schedule=schedule,
                                        min_improvement=min_improvement)
        study = optuna.create_study(pruner=pruner)
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, EXAMPLE_TIMEOUT_S)
        try:
            with warnings.catch_warnings():
                # Optuna's warning for a repeated step and the pruner's "cannot decide" warning are expected.
                warnings.simplefilter("ignore")
                for spec in trials:
                    _run_trial(study, spec)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    check()
