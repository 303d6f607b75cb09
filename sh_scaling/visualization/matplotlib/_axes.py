"""Log axes whose tick labels a reader can read, and a legend that stays off the data."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["legend_outside", "readable_log_axes"]


def readable_log_axes(ax: Any) -> None:
    """Log-log axes; an axis spanning less than about a decade gets plain numbers (2.5, 3, 3.5) at round values.

    Matplotlib labels a short log axis with a single power of ten or with minor labels such as
    ``3 × 10^0``; a loss axis usually spans less than a decade.
    """
    from matplotlib import ticker

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if lo > 0 and hi > lo and math.log10(hi / lo) < 1.3:
            axis.set_major_locator(ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())
        else:
            axis.set_major_locator(ticker.LogLocator(base=10))
            axis.set_major_formatter(ticker.LogFormatterSciNotation(base=10))
            axis.set_minor_formatter(ticker.NullFormatter())


def legend_outside(fig: Any, ax: Any, **kwargs: Any) -> Any:
    """The legend of ``ax`` right of the figure's axes, top-aligned, so it never covers data.

    The figure must use the constrained layout, which then makes room for it (``loc="outside ..."``).
    """
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    legend = fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False, **kwargs)
    for handle in legend.legend_handles:
        # A bundle of hundreds of faint lines is still named by a legend entry one can see (lines only: a band's
        # swatch keeps its transparency).
        if isinstance(handle, Line2D) and handle.get_alpha() is not None:
            handle.set_alpha(1.0)
    return legend
