"""sh_scaling.pruning: successive halving on compute, guided by learning-curve surrogates (an Optuna pruner).

* :class:`SurrogateHalvingPruner`: the pruner.
* :func:`report`: ``trial.report`` with the compute spent so far.
* :func:`reported_compute`: the compute reported with each step of a trial, read back from its attributes.
"""

from sh_scaling.pruning._compute import reported_compute, reported_lr
from sh_scaling.pruning._pruner import SurrogateHalvingPruner
from sh_scaling.pruning._report import report

__all__ = ["SurrogateHalvingPruner", "report", "reported_compute", "reported_lr"]
