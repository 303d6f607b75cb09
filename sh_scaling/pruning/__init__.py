"""sh_scaling.pruning: successive halving on compute, guided by learning-curve surrogates (an Optuna pruner).

* :class:`SurrogateHalvingPruner`: the pruner.
* :func:`report`: ``trial.report`` with the compute spent so far.
"""

from sh_scaling.pruning._pruner import SurrogateHalvingPruner
from sh_scaling.pruning._report import report

__all__ = ["SurrogateHalvingPruner", "report"]
