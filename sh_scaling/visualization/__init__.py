"""Plots of a sweep on a compute axis, as ``optuna.visualization`` offers for any study.

* :func:`plot_curves`: loss against compute for every run, complete and pruned told apart, the pruner's
  forecasts, the observed frontier and the law fitted to it with its named interval.
* :func:`plot_decisions`: where the pruner decided each trial, the loss and forecast it decided on, and why.
* :func:`plot_tradeoff`: compute spent against regret and law error of pruners replayed as Optuna studies.

They return plotly figures (``pip install 'sh_scaling[plotly]'``), which optuna-dashboard shows once attached
with ``optuna_dashboard.save_plotly_graph_object(study, fig)``; :mod:`sh_scaling.visualization.matplotlib`
draws the same figures with matplotlib (``pip install 'sh_scaling[plot]'``), for papers.
"""

from sh_scaling.visualization._curves import plot_curves
from sh_scaling.visualization._decisions import plot_decisions
from sh_scaling.visualization._tradeoff import plot_tradeoff

__all__ = ["plot_curves", "plot_decisions", "plot_tradeoff"]
