"""sh_scaling.pruning: successive halving on compute, guided by learning-curve surrogates (an Optuna pruner).

* :class:`SurrogateHalvingPruner`: the pruner.
* :func:`report`: ``trial.report`` with the compute spent so far; :func:`report_points` for a batch of points.
* :func:`reported_compute`: the compute reported with each step of a trial, read back from its attributes.
* :func:`stage_forecast_errors`: how wrong the pruner's forecasts are at each stage of recorded runs (the
  measurement behind its stage error model), and :func:`stage_margin_table` the margins they give.
"""

from sh_scaling.pruning._compute import reported_compute, reported_lr
from sh_scaling.pruning._error_model import stage_forecast_errors, stage_margin_table
from sh_scaling.pruning._pruner import SurrogateHalvingPruner
from sh_scaling.pruning._report import report, report_points

__all__ = [
    "SurrogateHalvingPruner",
    "report",
    "report_points",
    "reported_compute",
    "reported_lr",
    "stage_forecast_errors",
    "stage_margin_table",
]
