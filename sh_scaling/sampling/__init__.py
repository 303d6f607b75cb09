"""Samplers with scaling-law priors, and the IsoFLOP sweep planner."""

# The attribute keys live in sh_scaling.keys; re-exported here, where users of the sampler look for them.
from sh_scaling.keys import FORECAST_KEY, FROM_PRIOR_KEY, PREDICTED_LOSS_KEY, PRIOR_ERROR_KEY, PRIOR_WEIGHT_KEY
from sh_scaling.sampling._planner import PLAN_COLUMNS, enqueue, plan_sweep
from sh_scaling.sampling._prior_sampler import ScalingPriorSampler
from sh_scaling.sampling._priors import ScalingLawPrior

__all__ = [
    "FORECAST_KEY",
    "FROM_PRIOR_KEY",
    "PLAN_COLUMNS",
    "PREDICTED_LOSS_KEY",
    "PRIOR_ERROR_KEY",
    "PRIOR_WEIGHT_KEY",
    "ScalingLawPrior",
    "ScalingPriorSampler",
    "enqueue",
    "plan_sweep",
]
