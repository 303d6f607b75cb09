from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from sh_scaling.constants import ChinchillaConstants
from sh_scaling.laws import TransformerConfig, fit_step_time
from sh_scaling.sampling import (
    FORECAST_KEY,
    FROM_PRIOR_KEY,
    PREDICTED_LOSS_KEY,
    PRIOR_WEIGHT_KEY,
    ScalingLawPrior,
    ScalingPriorSampler,
)
from sh_scaling.sampling._priors import count_evidence, draw_uniform, prior_log_weights, prior_weight

optuna.logging.set_verbosity(optuna.logging.WARNING)

FLOPS = 1e20
SPACE = {
    "n_layers": IntDistribution(1, 96),
    "d_model": IntDistribution(64, 16384, log=True),
}
PARAMS = {"n_layers": "n_layers", "d_model": "d_model"}


def _prior(**kw) -> ScalingLawPrior:
    return ScalingLawPrior(flops=FLOPS, params=PARAMS, **kw)


def _suggest(trial: optuna.Trial) -> dict[str, int]:
    return {n: trial.suggest_int(n, d.low, d.high, log=d.log) for n, d in SPACE.items()}


def _law_objective(trial: optuna.Trial) -> float:
    """The prior's own law, so 'right prior' means exactly right."""
    return _prior()(_suggest(trial))


def _study(sampler, **kw) -> optuna.Study:
    return optuna.create_study(sampler=sampler, **kw)


# ------------------------------------------------------------------------------------------------ pure helpers


def test_prior_weight_is_beta_over_beta_plus_n():
    assert prior_weight(0, 10.0) == 1.0
    assert prior_weight(10, 10.0) == pytest.approx(0.5)
    assert prior_weight(90, 10.0) == pytest.approx(0.1)
    weights = [prior_weight(n, 5.0) for n in range(50)]
    assert all(a > b for a, b in zip(weights, weights[1:]))
    with pytest.raises(ValueError, match="n_evidence"):
        prior_weight(-1, 10.0)


def test_prior_log_weights_are_scale_free_and_flatten_with_weight():
    losses = np.array([2.0, 2.1, 2.5, 3.0, np.nan])
    lw = prior_log_weights(losses, 1.0, 0.1)
    assert lw[0] == 0.0 and lw[-1] == -np.inf
    assert np.all(np.diff(lw[:4]) < 0)
    # Same ranking and values whatever the loss units (shift and scale).
    np.testing.assert_allclose(prior_log_weights(10 * losses - 3, 1.0, 0.1)[:4], lw[:4])
    # A smaller weight flattens the density (piBO's pi ** (beta / n)).
    assert np.all(prior_log_weights(losses, 0.2, 0.1)[1:4] > lw[1:4])
    # All equal: all the same weight; none finite: all -inf.
    assert np.all(prior_log_weights(np.ones(3), 1.0, 0.1) == 0.0)
    assert np.all(prior_log_weights(np.full(3, np.nan), 1.0, 0.1) == -np.inf)


@pytest.mark.parametrize(
    "dist",
    [
        IntDistribution(1, 96),
        IntDistribution(64, 16384, log=True),
        IntDistribution(0, 100, step=10),
        FloatDistribution(1e-5, 1e-1, log=True),
        FloatDistribution(0.0, 1.0, step=0.25),
        FloatDistribution(-1.0, 1.0),
        CategoricalDistribution(["a", "b", 3]),
    ],
)
def test_draw_uniform_stays_in_the_distribution(dist):
    values = draw_uniform(dist, np.random.default_rng(0), 500)
    assert len(values) == 500
    assert all(dist._contains(dist.to_internal_repr(v)) for v in values)


def test_draw_uniform_is_uniform_in_log_space():
    values = np.array(draw_uniform(IntDistribution(64, 16384, log=True), np.random.default_rng(1), 4000))
    # Half the log range lies below sqrt(64 * 16384) = 1024.
    assert 0.45 < np.mean(values < 1024) < 0.55


def test_evidence_counts_finished_and_forecast_pruned_trials():
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED))
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={FORECAST_KEY: 2.5})
    )
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={FORECAST_KEY: float("nan")}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    assert count_evidence(study.get_trials(deepcopy=False)) == 2


# ------------------------------------------------------------------------------------------------ ScalingLawPrior


def test_law_prior_prefers_compute_optimal_sizes():
    prior = _prior()
    tiny, optimal, huge = prior({"n_layers": 2, "d_model": 128}), prior({"n_layers": 15, "d_model": 1856}), prior(
        {"n_layers": 96, "d_model": 16384}
    )
    assert optimal < tiny and optimal < huge


def test_law_prior_vocabulary_loss_has_an_interior_optimum():
    prior = ScalingLawPrior(flops=FLOPS, params={**PARAMS, "vocab_size": "vocab"})
    assert prior.loss == "vocabulary"  # "auto" with a searched vocabulary
    losses = [prior({"n_layers": 15, "d_model": 1856, "vocab": v}) for v in (1024, 16384, 500_000)]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_law_prior_with_a_time_budget_uses_the_calibration(tmp_path):
    cfgs = [
        TransformerConfig(n_layers=L, d_model=d, n_heads=d // 64, vocab_size=32000, seq_len=512, batch_size=8)
        for L, d in [(2, 128), (4, 256), (8, 512), (4, 1024), (12, 768)]
    ]
    seconds = [c.memory_copies_per_step() * 1e-11 + 1e-3 for c in cfgs]
    seconds[0] *= 1.05
    cal = fit_step_time(cfgs, seconds)
    path = cal.save(tmp_path / "cal.json")
    short = ScalingLawPrior(hours=1, calibration=path, params=PARAMS)
    long = ScalingLawPrior(hours=100, calibration=cal, params=PARAMS)
    shape = {"n_layers": 12, "d_model": 768}
    assert long(shape) < short(shape)  # more time, more tokens, lower loss


@pytest.mark.parametrize("bad", [0, -1e20, float("nan"), float("inf"), "lots"])
def test_law_prior_rejects_bad_flops(bad):
    with pytest.raises(ValueError, match="flops"):
        ScalingLawPrior(flops=bad, params=PARAMS)


def test_law_prior_bad_input():
    with pytest.raises(ValueError, match="sh-scaling calibrate"):
        ScalingLawPrior(hours=24, params=PARAMS)
    with pytest.raises(ValueError, match="calibration file|no step-time calibration"):
        ScalingLawPrior(hours=24, calibration="/nonexistent/cal.json", params=PARAMS)
    with pytest.raises(ValueError, match="exactly one budget"):
        ScalingLawPrior(flops=1e20, hours=2, params=PARAMS)
    with pytest.raises(ValueError, match="exactly one budget"):
        ScalingLawPrior(params=PARAMS)
    with pytest.raises(ValueError, match="unknown model field.*n_layer\\b"):
        ScalingLawPrior(flops=1e20, params={"n_layer": "L", "d_model": "d"})
    with pytest.raises(ValueError, match="d_model"):
        ScalingLawPrior(flops=1e20, params={"n_layers": "L"})
    with pytest.raises(ValueError, match="both searched"):
        ScalingLawPrior(flops=1e20, params=PARAMS, fixed={"d_model": 512})
    with pytest.raises(ValueError, match="loss"):
        ScalingLawPrior(flops=1e20, params=PARAMS, loss="kaplan")


def test_law_prior_scores_invalid_shapes_as_nan():
    prior = _prior(fixed={"n_heads": 7})
    out = prior.predict_many([{"n_layers": 4, "d_model": 512}, {"n_layers": 4, "d_model": 700}])
    assert math.isnan(out[0]) and math.isfinite(out[1])  # 512 is not divisible by 7 heads, 700 is


# ------------------------------------------------------------------------------------------------ the sampler


@pytest.mark.parametrize("base", [optuna.samplers.TPESampler, optuna.samplers.RandomSampler])
def test_wraps_tpe_and_random_and_records_its_decisions(base):
    sampler = ScalingPriorSampler(_prior(), base(seed=0), search_space=SPACE, seed=0)
    study = _study(sampler)

    def objective(trial):
        shape = _suggest(trial)
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)  # left to the base sampler
        return _prior()(shape) + abs(math.log10(lr) + 3)

    study.optimize(objective, n_trials=15)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert sampler.base_sampler.__class__ is base
    first = study.trials[0]
    assert first.system_attrs[PRIOR_WEIGHT_KEY] == 1.0 and first.system_attrs[FROM_PRIOR_KEY] is True
    assert PREDICTED_LOSS_KEY in first.system_attrs
    assert first.system_attrs[PREDICTED_LOSS_KEY] == pytest.approx(_prior()(first.params))
    assert len({t.params["lr"] for t in study.trials}) == 15


def test_prior_concentrates_early_trials_on_low_predicted_loss():
    prior = _prior()
    ours, rand = [], []
    for seed in range(3):
        s1 = _study(ScalingPriorSampler(prior, search_space=SPACE, seed=seed))
        s1.optimize(_law_objective, n_trials=10)
        ours += [t.value for t in s1.trials]
        s2 = _study(optuna.samplers.RandomSampler(seed=seed))
        s2.optimize(_law_objective, n_trials=10)
        rand += [t.value for t in s2.trials]
    # Measured (seeds 0-2): median 2.619 against 2.788 at random, mean 2.72 against 3.00; the law's optimum
    # in this space is 2.5998.
    assert np.median(ours) < np.median(rand) - 0.1
    assert np.mean(ours) < np.mean(rand) - 0.15


def test_weight_decays_with_evidence_and_the_base_sampler_takes_over():
    sampler = ScalingPriorSampler(_prior(), search_space=SPACE, beta=5.0, adaptive=False, seed=0)
    study = _study(sampler)
    study.optimize(_law_objective, n_trials=40)
    weights = [t.system_attrs[PRIOR_WEIGHT_KEY] for t in study.trials]
    np.testing.assert_allclose(weights, [5.0 / (5.0 + n) for n in range(40)])
    used = [t.system_attrs[FROM_PRIOR_KEY] for t in study.trials]
    assert sum(used[:10]) > sum(used[-10:])
    assert sampler.prior_weight(study) == pytest.approx(5.0 / 45.0)


def test_pruned_trials_with_a_forecast_count_as_evidence():
    sampler = ScalingPriorSampler(_prior(), search_space=SPACE, adaptive=False, seed=0)
    study = _study(sampler)

    def objective(trial):
        shape = _suggest(trial)
        if trial.number % 2:
            trial.set_user_attr(FORECAST_KEY, _prior()(shape))
        raise optuna.TrialPruned()

    study.optimize(objective, n_trials=6)
    # Trials 1, 3, 5 carry a forecast: 3 pieces of evidence.
    assert sampler.prior_weight(study) == pytest.approx(10.0 / 13.0)


def test_adaptive_weight_switches_off_a_prior_that_ranks_trials_backwards():
    right = _prior()

    def backwards(params):
        return -right(params)

    sampler = ScalingPriorSampler(backwards, search_space=SPACE, seed=0, min_agreement_trials=8)
    study = _study(sampler)
    study.optimize(_law_objective, n_trials=20)
    assert study.trials[-1].system_attrs[PRIOR_WEIGHT_KEY] == 0.0
    assert not any(t.system_attrs[FROM_PRIOR_KEY] for t in study.trials[10:])
    # The right prior keeps (most of) its weight.
    good = ScalingPriorSampler(right, search_space=SPACE, seed=0, min_agreement_trials=8)
    s2 = _study(good)
    s2.optimize(_law_objective, n_trials=20)
    assert good.prior_weight(s2) > 0.2


def test_adaptive_weight_understands_maximisation():
    right = _prior()
    sampler = ScalingPriorSampler(right, search_space=SPACE, seed=0)
    study = _study(sampler, direction="maximize")
    study.optimize(lambda t: -_law_objective(t), n_trials=15)
    assert sampler.prior_weight(study) > 0.2


def test_search_space_is_learnt_from_the_study_without_one():
    sampler = ScalingPriorSampler(_prior(), seed=0)
    study = _study(sampler)
    study.optimize(_law_objective, n_trials=4)
    assert PREDICTED_LOSS_KEY not in study.trials[0].system_attrs  # nothing to sample the prior on yet
    assert study.trials[0].system_attrs[FROM_PRIOR_KEY] is False
    assert PREDICTED_LOSS_KEY in study.trials[1].system_attrs


def test_enqueued_trials_keep_their_parameters():
    sampler = ScalingPriorSampler(_prior(), search_space=SPACE, seed=0)
    study = _study(sampler)
    study.enqueue_trial({"n_layers": 3, "d_model": 100})
    study.enqueue_trial({"n_layers": 5})  # the prior proposes d_model given n_layers = 5
    study.optimize(_law_objective, n_trials=2)
    assert study.trials[0].params == {"n_layers": 3, "d_model": 100}
    assert study.trials[0].system_attrs[FROM_PRIOR_KEY] is False
    assert study.trials[1].params["n_layers"] == 5
    assert study.trials[1].system_attrs[PREDICTED_LOSS_KEY] == pytest.approx(_prior()(study.trials[1].params))


class _Spy(optuna.samplers.RandomSampler):
    def __init__(self) -> None:
        super().__init__(seed=0)
        self.calls: list[str] = []
        self._spy_lock = threading.Lock()

    def _log(self, name):
        with self._spy_lock:
            self.calls.append(name)

    def infer_relative_search_space(self, study, trial):
        self._log("infer")
        return {"x": FloatDistribution(0, 1)}

    def sample_relative(self, study, trial, search_space):
        self._log("relative:" + ",".join(sorted(search_space)))
        return {"x": 0.5} if "x" in search_space else {}

    def sample_independent(self, study, trial, name, dist):
        self._log("independent:" + name)
        return super().sample_independent(study, trial, name, dist)

    def before_trial(self, study, trial):
        self._log("before")

    def after_trial(self, study, trial, state, values):
        self._log("after")

    def reseed_rng(self):
        self._log("reseed")
        super().reseed_rng()


def test_forwards_every_sampler_call_to_the_base():
    spy = _Spy()
    sampler = ScalingPriorSampler(_prior(), spy, search_space=SPACE, seed=0)
    study = _study(sampler)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        y = trial.suggest_float("y", 0, 1)
        return _prior()(_suggest(trial)) + x + y

    study.optimize(objective, n_trials=3)
    sampler.reseed_rng()
    assert spy.calls.count("before") == 3 and spy.calls.count("after") == 3
    assert spy.calls.count("infer") >= 3 and spy.calls.count("reseed") == 1
    assert "independent:y" in spy.calls
    # The base only ever sees its own relative space, never the prior's parameters.
    assert spy.calls.count("relative:x") == 3
    assert {c for c in spy.calls if c.startswith("relative:")} == {"relative:x"}
    assert all(t.params["x"] == 0.5 for t in study.trials)
    assert study.trials[0].system_attrs[FROM_PRIOR_KEY] is True


def test_n_jobs_2():
    sampler = ScalingPriorSampler(_prior(), search_space=SPACE, seed=0)
    study = _study(sampler)
    study.optimize(_law_objective, n_trials=16, n_jobs=2)
    assert len(study.trials) == 16
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert all(PRIOR_WEIGHT_KEY in t.system_attrs for t in study.trials)
    assert not sampler._decisions  # per-trial state is dropped after each trial


_WORKER = textwrap.dedent(
    """
    import sys
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.distributions import IntDistribution
    from sh_scaling.sampling import ScalingLawPrior, ScalingPriorSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"n_layers": IntDistribution(1, 96), "d_model": IntDistribution(64, 16384, log=True)}
    prior = ScalingLawPrior(flops=1e20, params={"n_layers": "n_layers", "d_model": "d_model"})
    storage = JournalStorage(JournalFileBackend(sys.argv[1]))
    study = optuna.load_study(study_name="s", storage=storage,
                              sampler=ScalingPriorSampler(prior, search_space=space, seed=int(sys.argv[2])))
    def objective(trial):
        return prior({n: trial.suggest_int(n, d.low, d.high, log=d.log) for n, d in space.items()})
    study.optimize(objective, n_trials=8)
    """
)


def test_two_processes_share_a_journal_storage(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(tmp_path / "journal.log")
    optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), path, "0"], stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 16
    assert all(PRIOR_WEIGHT_KEY in t.system_attrs for t in trials)
    # Same seed in both processes, yet the prior's draws differ: they are seeded by trial number.
    prior_trials = [t for t in trials if PREDICTED_LOSS_KEY in t.system_attrs]
    assert len({(t.params["n_layers"], t.params["d_model"]) for t in prior_trials}) == len(prior_trials)


def test_same_seed_same_trials():
    def run():
        study = _study(ScalingPriorSampler(_prior(), search_space=SPACE, seed=3))
        study.optimize(_law_objective, n_trials=12)
        return [t.params for t in study.trials]

    assert run() == run()


def test_multi_objective_study_is_refused_clearly():
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=ScalingPriorSampler(_prior(), search_space=SPACE)
    )
    with pytest.raises(ValueError, match="single-objective"):
        study.optimize(lambda t: (_law_objective(t), 1.0), n_trials=1)
    assert study.trials[0].state == TrialState.FAIL


def test_a_prior_that_scores_nothing_falls_back_to_the_base_with_a_warning():
    sampler = ScalingPriorSampler(lambda p: float("nan"), search_space=SPACE, seed=0)
    study = _study(sampler)
    with pytest.warns(UserWarning, match="could not score any candidate"):
        study.optimize(_law_objective, n_trials=2)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_a_raising_callable_prior_is_treated_as_unscorable():
    def picky(params):
        if params["d_model"] % 2:
            raise ValueError("odd width")
        return _prior()(params)

    study = _study(ScalingPriorSampler(picky, search_space=SPACE, seed=0))
    study.optimize(_law_objective, n_trials=5)
    assert all(t.params["d_model"] % 2 == 0 for t in study.trials if PREDICTED_LOSS_KEY in t.system_attrs)


def test_sampler_bad_input():
    with pytest.raises(ValueError, match="beta"):
        ScalingPriorSampler(_prior(), beta=0)
    with pytest.raises(ValueError, match="temperature"):
        ScalingPriorSampler(_prior(), temperature=float("nan"))
    with pytest.raises(ValueError, match="n_candidates"):
        ScalingPriorSampler(_prior(), n_candidates=0)
    with pytest.raises(ValueError, match="min_agreement_trials"):
        ScalingPriorSampler(_prior(), min_agreement_trials=1)
    with pytest.raises(ValueError, match="search_space="):
        ScalingPriorSampler(lambda p: 1.0)
    with pytest.raises(ValueError, match="no distribution.*d_model"):
        ScalingPriorSampler(_prior(), search_space={"n_layers": SPACE["n_layers"]})
    with pytest.raises(ValueError, match="optuna distribution"):
        ScalingPriorSampler(lambda p: 1.0, search_space={"x": (0, 1)})
    with pytest.raises(ValueError, match="base_sampler"):
        ScalingPriorSampler(_prior(), base_sampler="tpe")
    with pytest.raises(ValueError, match="prior"):
        ScalingPriorSampler(42)


def test_wrong_prior_costs_little_on_a_small_problem():
    """A deliberately wrong prior (it favours tiny models) still finds a good shape within a few dozen trials."""
    wrong = ScalingLawPrior(
        flops=FLOPS, params=PARAMS, constants=ChinchillaConstants(E=1.69, A=4.0, B=4000.0, alpha=0.34, beta=0.28)
    )
    best = []
    for seed in range(2):
        study = _study(ScalingPriorSampler(wrong, search_space=SPACE, seed=seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.optimize(_law_objective, n_trials=40)
        best.append(study.best_value)
    # Measured: the law's optimum here is 2.59985; in 40 trials TPE reaches 2.5999, random search 2.6014, this
    # sampler 2.5999, and the same prior without decay (beta = 1e9, adaptive=False) only 2.95 to 3.11.
    assert max(best) < 2.59985 * 1.002


def test_one_sampler_serving_two_studies_learns_each_search_space():
    # Random base: Optuna 5's TPESampler itself keeps one study's intersection search space for the next.
    sampler = ScalingPriorSampler(_prior(), optuna.samplers.RandomSampler(seed=0), seed=0)
    a = _study(sampler)
    a.optimize(_law_objective, n_trials=3)

    def narrow(trial):
        shape = {"n_layers": trial.suggest_int("n_layers", 2, 8), "d_model": trial.suggest_int("d_model", 256, 512)}
        return _prior()(shape)

    b = _study(sampler)
    b.optimize(narrow, n_trials=6)
    from_prior = [t for t in b.trials if PREDICTED_LOSS_KEY in t.system_attrs]
    assert from_prior
    for t in from_prior:  # the prior proposed these values itself, inside study b's ranges
        assert t.system_attrs[PREDICTED_LOSS_KEY] == pytest.approx(t.value)
        assert 2 <= t.params["n_layers"] <= 8 and 256 <= t.params["d_model"] <= 512


def test_a_prior_parameter_the_study_never_suggests_is_reported():
    prior = ScalingLawPrior(flops=FLOPS, params={"n_layers": "n_layer", "d_model": "d_model"})  # typo: n_layer
    study = _study(ScalingPriorSampler(prior, seed=0))
    with pytest.warns(UserWarning, match=r"\['n_layer'\].*parameters seen: \['d_model', 'n_layers'\]"):
        study.optimize(_law_objective, n_trials=5)
    assert not any(PREDICTED_LOSS_KEY in t.system_attrs for t in study.trials)
