"""Quickstart: a scaling-law sweep in Optuna, pruned by SurrogateHalvingPruner.

The "training" here is a stand-in: the loss after D tokens of a model with N parameters follows the Chinchilla
law L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022) with a little noise, so the script runs in seconds.
Replace ``train_and_evaluate`` by your training loop; the three lines that involve sh_scaling stay the same:

    import sh_scaling
    study = optuna.create_study(pruner=sh_scaling.SurrogateHalvingPruner(max_compute=...))
    sh_scaling.report(trial, loss, compute=flops_so_far)        # instead of trial.report(loss, step)

Run: ``python examples/pruner_quickstart.py``
"""

from __future__ import annotations

import numpy as np
import optuna

import sh_scaling
from sh_scaling.constants import HOFFMANN_2022
from sh_scaling.curves import Curve
from sh_scaling.keys import DECISION_KEY, FORECAST_KEY
from sh_scaling.laws import fit_scaling_law

N_EVALS = 20


def flops(params: dict) -> float:
    """Training compute the configuration is meant to reach: 6 * N * D (Kaplan et al. 2020)."""
    return 6.0 * params["n_params"] * params["tokens"]


def train_and_evaluate(n_params: float, tokens: float, rng: np.random.Generator):
    """Yields (tokens seen, validation loss) at N_EVALS log-spaced evaluations: a stand-in for training."""
    k = HOFFMANN_2022
    for seen in np.geomspace(tokens / 50, tokens, N_EVALS):
        loss = k.E + k.A / n_params**k.alpha + k.B / seen**k.beta
        yield seen, loss * float(np.exp(rng.normal(0, 0.003)))


def objective(trial: optuna.trial.Trial) -> float:
    n_params = trial.suggest_float("n_params", 1e7, 1e9, log=True)
    tokens = trial.suggest_float("tokens", 1e8, 2e10, log=True)
    rng = np.random.default_rng(trial.number)
    loss = float("nan")
    for seen, loss in train_and_evaluate(n_params, tokens, rng):
        sh_scaling.report(trial, loss, compute=6.0 * n_params * seen)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = sh_scaling.SurrogateHalvingPruner("powerlaw", max_compute=flops, min_compute=1e16)
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)

    states = [t.state for t in study.trials]
    spent = sum(max(sh_scaling.pruning.reported_compute(t).values()) for t in study.trials)
    exhaustive = sum(flops(t.params) for t in study.trials)
    print(f"{states.count(optuna.trial.TrialState.COMPLETE)} complete, "
          f"{states.count(optuna.trial.TrialState.PRUNED)} pruned; compute spent {spent:.3g} FLOPs "
          f"= {spent / exhaustive:.0%} of training every trial to its end")
    k = HOFFMANN_2022
    full = min(k.E + k.A / t.params["n_params"] ** k.alpha + k.B / t.params["tokens"] ** k.beta for t in study.trials)
    print(f"best loss {study.best_value:.4f} with {study.best_params}")
    print(f"  (training all {len(study.trials)} trials to the end would have found {full:.4f}, before noise)")

    pruned = next(t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    print(f"why trial {pruned.number} was pruned: {pruned.user_attrs[DECISION_KEY]}")
    print(f"  its forecast final loss (read by samplers): {pruned.user_attrs[FORECAST_KEY]:.4f}")

    # The scaling law, fitted on what was observed (pruned trials' points included, forecasts never used).
    curves = []
    for t in study.trials:
        steps = sorted(t.intermediate_values)
        compute = [sh_scaling.pruning.reported_compute(t)[s] for s in steps]
        curves.append(Curve.from_arrays(t.number, compute, [t.intermediate_values[s] for s in steps]))
    # Intervals resample the runs (curves), not points of the frontier grid.
    law = fit_scaling_law(curves, n_grid=30, n_bootstrap=200)
    print(f"law fitted on the observed frontier: {law}")


if __name__ == "__main__":
    main()
