"""Search model shapes for a FLOPs budget with a scaling-law prior, after seeding the study with an IsoFLOP plan.

Replace ``train`` with your training run: it gets a model shape and a token budget and returns a validation
loss. Here it is simulated by a Chinchilla law with constants that differ from the published ones, so the
script runs in seconds: ``python examples/prior_sampler.py``.
"""

from __future__ import annotations

import optuna

from sh_scaling.constants import ChinchillaConstants
from sh_scaling.laws import TransformerConfig, chinchilla_loss
from sh_scaling.sampling import ScalingLawPrior, ScalingPriorSampler, enqueue, plan_sweep

FLOPS = 1e19  # the training budget of every run

#: The "real world" of this example: not quite the published law the prior believes in.
WORLD = ChinchillaConstants(E=1.75, A=480.0, B=380.0, alpha=0.35, beta=0.27, source="simulated")


def train(cfg: TransformerConfig, tokens: float) -> float:
    """Stand-in for a training run: the loss the simulated world gives this shape after ``tokens`` tokens."""
    return float(chinchilla_loss(cfg.non_vocab_params, tokens, WORLD))


def objective(trial: optuna.Trial) -> float:
    n_layers = trial.suggest_int("n_layers", 2, 48)
    d_model = 64 * trial.suggest_int("d_model_64", 2, 64)  # width in multiples of the head size
    cfg = TransformerConfig(n_layers=n_layers, d_model=d_model, n_heads=d_model // 64, vocab_size=32768,
                            seq_len=2048, batch_size=128)
    tokens = FLOPS / (6 * cfg.n_params)  # C = 6 N D
    return train(cfg, tokens)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    # 1. The prior: how trial parameters map to a transformer, and the budget. "d_model_64" is not a model
    #    field, so the shape is built by a function; the sampler then needs the search space it reads.
    def model(params):
        d = 64 * params["d_model_64"]
        return {"n_layers": params["n_layers"], "d_model": d, "n_heads": d // 64,
                "vocab_size": 32768, "seq_len": 2048, "batch_size": 128}

    prior = ScalingLawPrior(flops=FLOPS, model=model)  # Hoffmann et al. (2022) constants by default
    space = {
        "n_layers": optuna.distributions.IntDistribution(2, 48),
        "d_model_64": optuna.distributions.IntDistribution(2, 64),
    }
    sampler = ScalingPriorSampler(prior, search_space=space, seed=0)
    study = optuna.create_study(sampler=sampler)

    # 2. Optionally start from the planner's IsoFLOP profile at this budget (sizes 0.25x to 4x the optimum).
    plan = plan_sweep(FLOPS, n_budgets=1, vocab_size=32768, head_dim=64)
    plan["d_model_64"] = plan["d_model"] // 64
    enqueue(study, plan, params={"n_layers": "n_layers", "d_model_64": "d_model_64"})
    print(plan[["n_layers", "d_model", "n_params", "tokens", "predicted_loss"]].to_string())

    # 3. Search: early trials follow the prior, later ones TPE.
    study.optimize(objective, n_trials=40)
    for t in study.trials[:12]:
        print(f"trial {t.number:2d}: from prior={t.system_attrs['sh_scaling:from_prior']!s:5}  "
              f"weight={t.system_attrs['sh_scaling:prior_weight']:.2f}  loss={t.value:.4f}  {t.params}")
    print(f"best: {study.best_value:.4f} with {study.best_params}")


if __name__ == "__main__":
    main()
