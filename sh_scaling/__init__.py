"""sh_scaling: cheap scaling-law sweeps for Optuna.

Compute-aware successive halving guided by learning-curve surrogates (a pruner), scaling-law priors for
samplers, and a simulator that replays recorded and synthetic learning curves.
"""

from sh_scaling.budgeted import BudgetedHalving, ComputeBudget
from sh_scaling.curves import Curve, CurveSet
from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.sampling import ScalingLawPrior, ScalingPriorSampler, plan_sweep

__version__ = "0.1.0"

__all__ = ["Curve", "CurveSet", "SurrogateHalvingPruner", "report",
           "ScalingLawPrior", "ScalingPriorSampler", "plan_sweep", "BudgetedHalving", "ComputeBudget", "__version__"]
