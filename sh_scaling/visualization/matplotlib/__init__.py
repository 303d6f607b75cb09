"""The plots of :mod:`sh_scaling.visualization` drawn with matplotlib, for papers (``pip install 'sh_scaling[plot]'``).

Same arguments and the same content as the plotly versions; each returns a ``matplotlib.figure.Figure`` (the
plots have one or two panels), to be saved with ``fig.savefig("curves.pdf", bbox_inches="tight")`` (the
legend sits outside the axes, right of the data).
"""

from sh_scaling.visualization.matplotlib._curves import plot_curves
from sh_scaling.visualization.matplotlib._decisions import plot_decisions
from sh_scaling.visualization.matplotlib._tradeoff import plot_tradeoff

__all__ = ["plot_curves", "plot_decisions", "plot_tradeoff"]
