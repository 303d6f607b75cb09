import numpy as np
import optuna
import optunahub


mod = optunahub.load_module(package="pruners/surrogate_halving")


def objective(trial: optuna.Trial) -> float:
    # A stand-in for training: the Chinchilla law (Hoffmann et al., 2022) for N parameters after D tokens.
    n_params = trial.suggest_float("n_params", 1e7, 1e9, log=True)
    tokens = trial.suggest_float("tokens", 1e8, 2e10, log=True)
    rng = np.random.default_rng(trial.number)
    loss = float("nan")
    for seen in np.geomspace(tokens / 50, tokens, 20):
        loss = 1.69 + 406.4 / n_params**0.34 + 410.7 / seen**0.28 + rng.normal(0, 0.003)
        # Report the loss with the training compute spent so far (FLOPs = 6 N D), not a step count.
        mod.report(trial, loss, compute=6 * n_params * seen)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


pruner = mod.SurrogateHalvingPruner(
    max_compute=lambda p: 6 * p["n_params"] * p["tokens"], min_compute=1e16
)
study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
study.optimize(objective, n_trials=40)
pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
print(f"best loss {study.best_value:.4f}; {len(pruned)} of {len(study.trials)} trials pruned")
