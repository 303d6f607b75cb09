"""What the plotly and matplotlib versions of each plot share: colours, markers, labels, and the imports.

Both versions draw the same things in the same colours so that a figure in a paper (matplotlib) and the one
attached to the study for optuna-dashboard (plotly) read alike. Colours are from the Okabe-Ito palette, which
stays distinct for the common kinds of colour blindness; complete and pruned runs differ in marker shape too,
so the plots survive greyscale printing.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = [
    "COLORS",
    "OUTCOME_STYLE",
    "RULE_SYMBOLS",
    "TRADEOFF_SYMBOLS",
    "DRAW_ORDER",
    "GROUP_NAMES",
    "FRONTIER_GREY",
    "RunStyle",
    "format_number",
    "html_text",
    "matplotlib_text",
    "run_style",
    "wrap",
    "import_matplotlib",
    "import_plotly",
]

COLORS = {
    "complete": "#0072B2",  # blue
    "pruned": "#E69F00",  # orange
    "other": "#999999",  # running or failed trials
    "law": "#D55E00",  # vermillion
    "promoted": "#009E73",  # bluish green
    "pruned_decision": "#CC79A7",  # reddish purple
}
#: The observed frontier: a wide, light, opaque band under the runs (opaque, so that it reads the same in the
#: legend and wherever runs cross it).
FRONTIER_GREY = "#C8C8C8"
#: (colour, plotly symbol, matplotlib marker) of each kind of curve.
OUTCOME_STYLE = {
    "complete": (COLORS["complete"], "circle", "o"),
    "pruned": (COLORS["pruned"], "x", "x"),
    "other": (COLORS["other"], "square", "s"),
}
#: (plotly symbol, matplotlib marker, words) for the rule behind a decision (:class:`sh_scaling.halving.Decision`).
RULE_SYMBOLS = {
    "startup": ("circle-open", "o", "too few trials at the rung to rank"),
    "rank": ("circle", "o", "ranked"),
    "frontier": ("diamond", "D", "kept by the frontier rule"),
    "improvement": ("x", "X", "would not improve on what was observed"),
}
#: One (plotly symbol, matplotlib marker) per pruner of a trade-off plot, in order.
TRADEOFF_SYMBOLS = [("circle", "o"), ("square", "s"), ("diamond", "D"), ("triangle-up", "^"),
                    ("triangle-down", "v"), ("star", "*"), ("pentagon", "p"), ("hexagon", "h")]
#: A qualitative palette for pruners (Okabe-Ito without black).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]


#: Groups of runs from back to front: complete runs on top, where they make the frontier.
DRAW_ORDER = ("other", "pruned", "complete")
#: Legend words of each group of runs.
GROUP_NAMES = {"complete": "complete runs", "pruned": "pruned runs", "other": "running or failed runs"}
#: Above this many runs in a group, its lines are drawn as a translucent bundle without markers.
DENSE_GROUP = 30


@dataclass(frozen=True)
class RunStyle:
    """How the runs of one group are drawn: few runs as lines with markers, many as a translucent bundle."""

    alpha: float
    width: float
    markers: bool


def run_style(n_runs: int) -> RunStyle:
    """Lines for ``n_runs`` runs of one group.

    Up to :data:`DENSE_GROUP` runs each is readable on its own (markers show where it was evaluated). A sweep of
    hundreds of runs would otherwise bury the frontier and the law under a solid block of colour; its lines
    fade as their number grows (alpha about ``25 / n``, at least 0.12), so overlapping runs read as a density.
    """
    if n_runs <= DENSE_GROUP:
        return RunStyle(alpha=0.85, width=1.2, markers=True)
    return RunStyle(alpha=max(0.12, min(0.85, 25.0 / n_runs)), width=0.8, markers=False)


def format_number(value: Any) -> str:
    """A compact number for hover text and legends (``1.23e+18``, ``3.142``), or the value as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def wrap(text: str, width: int = 90) -> list[str]:
    """``text`` in lines of at most ``width`` characters (words kept whole), for a title that must not run under
    the legend beside it."""
    return textwrap.wrap(text, width, break_long_words=False) or [""]


def matplotlib_text(text: Any) -> str:
    """``text`` (a study name, a unit, a note) as matplotlib shows it literally: a ``$`` would start mathtext,
    and a user's ``lr $\\frac{$`` is no valid formula (matplotlib raises when it draws it)."""
    return str(text).replace("$", r"\$")


def html_text(text: Any) -> str:
    """``text`` as plotly shows it literally in titles and hover text: HTML markup as entities, and ``%`` as
    ``&#37;`` so that a user's ``%{x}`` is not read as a hover-template field."""
    return html.escape(str(text), quote=False).replace("%", "&#37;")


def import_plotly() -> ModuleType:
    """``plotly.graph_objects``, or an ImportError that says which extra installs it."""
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ImportError("sh_scaling.visualization needs plotly: pip install 'sh_scaling[plotly]'") from exc
    return go


def import_matplotlib() -> ModuleType:
    """``matplotlib.pyplot`` (its current backend kept), or an ImportError that says which extra installs it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "sh_scaling.visualization.matplotlib needs matplotlib: pip install 'sh_scaling[plot]'"
        ) from exc
    return plt
