"""sh_scaling: cheap scaling-law sweeps for Optuna.

Compute-aware successive halving guided by learning-curve surrogates (a pruner), scaling-law priors for
samplers, and a simulator that replays recorded and synthetic learning curves.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from sh_scaling._lazy import lazy_exports
from sh_scaling._source_tree import add_integrations_finder

# The one place the version is written: pyproject.toml reads it from here (setuptools' dynamic version).
__version__ = "0.1.0"

if TYPE_CHECKING:
    from sh_scaling.budgeted import BudgetedHalving, ComputeBudget
    from sh_scaling.curves import Curve, CurveSet
    from sh_scaling.pruning import SurrogateHalvingPruner, report
    from sh_scaling.sampling import ScalingLawPrior, ScalingPriorSampler, plan_sweep

__all__ = ["Curve", "CurveSet", "SurrogateHalvingPruner", "report",
           "ScalingLawPrior", "ScalingPriorSampler", "plan_sweep", "BudgetedHalving", "ComputeBudget", "__version__"]

# Imported on first use, so that `import sh_scaling` stays cheap (sh_scaling._lazy); subpackages such as
# `sh_scaling.curves` are reachable as attributes too, as when this module imported them eagerly.
__getattr__, __dir__ = lazy_exports(__name__, {
    "BudgetedHalving": "sh_scaling.budgeted",
    "ComputeBudget": "sh_scaling.budgeted",
    "Curve": "sh_scaling.curves",
    "CurveSet": "sh_scaling.curves",
    "SurrogateHalvingPruner": "sh_scaling.pruning",
    "report": "sh_scaling.pruning",
    "ScalingLawPrior": "sh_scaling.sampling",
    "ScalingPriorSampler": "sh_scaling.sampling",
    "plan_sweep": "sh_scaling.sampling",
}, submodules=True)

add_integrations_finder(Path(__file__).parent)
