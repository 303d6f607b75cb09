import optuna
import optunahub


mod = optunahub.load_module(package="samplers/scaling_prior")
FLOPS = 1e19  # the training budget of every model


def objective(trial: optuna.Trial) -> float:
    # A stand-in for training a transformer of this shape on FLOPS = 6 N D: the Chinchilla law with constants a
    # little off the published ones (Hoffmann et al., 2022), as the real world would be.
    n_layers = trial.suggest_int("n_layers", 2, 48)
    d_model = trial.suggest_int("d_model", 128, 4096, log=True)
    n_params = 12 * n_layers * d_model**2 + 32000 * d_model
    tokens = FLOPS / (6 * n_params)
    return 1.75 + 480.0 / n_params**0.35 + 380.0 / tokens**0.27


# The prior: the loss published scaling laws predict for each shape at this budget.
prior = mod.ScalingLawPrior(flops=FLOPS, params={"n_layers": "n_layers", "d_model": "d_model"})
sampler = mod.ScalingPriorSampler(prior, seed=0)  # hands over to TPE as evidence accumulates
study = optuna.create_study(sampler=sampler)
study.optimize(objective, n_trials=30)
print(f"best loss {study.best_value:.4f} with {study.best_params}")
