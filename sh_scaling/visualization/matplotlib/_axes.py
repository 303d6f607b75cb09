"""Log axes whose tick labels a reader can read, a legend that stays off the data, and point labels that do
not overlap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["label_points", "legend_outside", "place_labels", "readable_log_axes"]

#: Directions tried around a point for its label, in order of preference: right and up first (where the
#: decisions plot's curves, falling to the right, leave room), then the other sides.
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0))


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


def place_labels(
    anchors: np.ndarray,
    sizes: np.ndarray,
    obstacles: np.ndarray | None = None,
    *,
    gap: float = 3.0,
    marker: float = 4.0,
    pad: float = 1.0,
    step: float = 4.0,
    max_rings: int = 40,
) -> np.ndarray:
    """Where to put each point's label so that no two labels overlap and no label covers a labelled point.

    A pure function of display geometry, in points (1/72 inch): ``anchors`` ``(n, 2)`` are the points, ``sizes``
    ``(n, 2)`` the labels' widths and heights, ``obstacles`` other points whose markers no label may cover.
    Each label in turn tries eight positions around its point (right-up first), ``gap`` beyond the point's
    marker of half-size ``marker``, then the same eight further out by ``step`` at a time, and takes the first
    whose box, grown by ``pad``, meets no label placed before and no marker. Returns ``(n, 2)`` offsets of each
    label's lower-left corner from its point.
    """
    anchors = np.asarray(anchors, dtype=float).reshape(-1, 2)
    sizes = np.asarray(sizes, dtype=float).reshape(-1, 2)
    placed: list[tuple[float, float, float, float]] = []
    others = np.empty((0, 2)) if obstacles is None else np.asarray(obstacles, dtype=float).reshape(-1, 2)
    markers = [(x - marker, y - marker, x + marker, y + marker) for x, y in np.vstack([anchors, others])]
    offsets = np.zeros_like(anchors)
    # Top to bottom, left to right: neighbours in a falling cluster then step aside in a consistent direction.
    for i in sorted(range(len(anchors)), key=lambda i: (-anchors[i, 1], anchors[i, 0])):
        (x, y), (w, h) = anchors[i], sizes[i]
        spot = None
        for ring in range(max_rings):
            for direction in _DIRECTIONS:
                left, bottom = _candidate(direction, w, h, marker + gap + ring * step, ring * step)
                box = (x + left - pad, y + bottom - pad, x + left + w + pad, y + bottom + h + pad)
                if not any(_overlap(box, other) for other in (*placed, *markers)):
                    spot = (left, bottom)
                    break
            if spot is not None:
                break
        if spot is None:  # nowhere free within reach: right of the point
            spot = (marker + gap, 0.0)
        placed.append((x + spot[0], y + spot[1], x + spot[0] + w, y + spot[1] + h))
        offsets[i] = spot
    return offsets


def _candidate(direction: tuple[int, int], w: float, h: float, away: float, rise: float) -> tuple[float, float]:
    """Lower-left corner of a ``w`` x ``h`` label relative to its point, on the side ``direction`` points to:
    ``away`` from the point sideways (or up/down for a label straight above/below), raised or lowered by
    ``rise`` on the diagonals."""
    dx, dy = direction
    left = away if dx > 0 else -away - w if dx < 0 else -w / 2
    if dx == 0:
        bottom = away if dy > 0 else -away - h
    else:
        bottom = rise if dy > 0 else -rise - h if dy < 0 else -h / 2
    return left, bottom


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_points(
    fig: Any,
    ax: Any,
    xy: Sequence[tuple[float, float]],
    texts: Sequence[str],
    avoid: Sequence[tuple[float, float]] = (),
    **text_kw: Any,
) -> list[Any]:
    """Label the data points ``xy`` of ``ax`` with ``texts``, no two labels overlapping and none over the
    markers of ``xy`` or ``avoid`` (:func:`place_labels`); a label that had to move away from its point is
    joined to it by a thin line. Labels are drawn above the data.

    The layout is settled first (the figure is drawn once without output), so the points' places on the page
    are final; the labels stay out of the layout, so they cannot move the axes afterwards.
    """
    if not len(xy):
        return []
    to_points = 72.0 / fig.dpi
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    sizes = []
    for t in texts:  # measured as drawn, then removed: the final labels are made with their places
        probe = ax.text(0, 0, t, transform=None, **text_kw)
        box = probe.get_window_extent(renderer)
        sizes.append((box.width * to_points, box.height * to_points))
        probe.remove()
    anchors = ax.transData.transform(np.asarray(xy, dtype=float)) * to_points
    others = ax.transData.transform(np.asarray(avoid, dtype=float).reshape(-1, 2)) * to_points
    offsets = place_labels(anchors, np.array(sizes), others)
    first_ring = 4.0 + 3.0 + 1e-6  # place_labels' nearest spot: beside the marker, no line needed
    labels = []
    for point, text, (dx, dy), (w, h) in zip(xy, texts, offsets, sizes):
        # How far the label's box lies from the point (0 when the point is inside it).
        far = max(abs(dx + w / 2) - w / 2, abs(dy + h / 2) - h / 2)
        line = dict(arrowstyle="-", lw=0.5, color=text_kw.get("color", "0.4"), shrinkA=0, shrinkB=2)
        label = ax.annotate(text, point, xytext=(float(dx), float(dy)), textcoords="offset points", ha="left",
                            va="bottom", arrowprops=line if far > first_ring else None, zorder=5, **text_kw)
        label.set_in_layout(False)
        labels.append(label)
    return labels
