"""Where decisions happen: the rung grid of the asynchronous pruner, the rounds of fixed-budget halving.

Rungs are a fixed geometric grid in compute, ``r_k = RUNG_ANCHOR * rung_factor**k`` for every integer ``k``
(negative ones included), so that the grid depends on nothing but the rung factor: not on which trial arrives
first, not on which process computes it, not on anything stored. Two workers that never talk to each other
decide at the same compute, and a grid cannot change in the middle of a study.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "RUNG_ANCHOR",
    "RTOL",
    "rung_compute",
    "rungs_crossed",
    "highest_rung",
    "n_rounds",
    "round_sizes",
    "round_shares",
    "replanned_shares",
    "trained_until",
    "water_fill",
    "fit_window",
]

#: The compute every rung grid passes through, in the unit the compute is reported in. Any fixed value works
#: (the grid is geometric, so it covers every scale); 1 keeps rung indices readable: rung ``k`` is
#: ``rung_factor**k``.
RUNG_ANCHOR = 1.0

#: Relative tolerance on compute comparisons: rung boundaries are products of floats.
RTOL = 1e-9


def rung_compute(k: int, rung_factor: float) -> float:
    """Compute of rung ``k``."""
    return RUNG_ANCHOR * float(rung_factor) ** int(k)


def rungs_crossed(c_first: float, c_last: float, rung_factor: float) -> range:
    """Indices of the rungs ``r_k`` with ``c_first <= r_k <= c_last`` (within :data:`RTOL`), in order."""
    if not (c_first > 0 and c_last > 0):
        return range(0)
    lo = math.ceil(math.log(c_first / RUNG_ANCHOR) / math.log(rung_factor) - RTOL)
    return range(lo, highest_rung(c_last, rung_factor) + 1)


def highest_rung(compute: float, rung_factor: float) -> int:
    """Index of the highest rung at or below ``compute`` (within :data:`RTOL`)."""
    return math.floor(math.log(compute / RUNG_ANCHOR) / math.log(rung_factor) + RTOL)


def n_rounds(n_candidates: int, reduction_factor: float) -> int:
    """``R = ceil(log_eta |M0|)``, at least 1 (Schram et al., ICML 2026, fixed-budget successive halving)."""
    if n_candidates < 1:
        raise ValueError(f"need at least one candidate, got {n_candidates}")
    if not reduction_factor > 1:
        raise ValueError(f"reduction_factor must be > 1, got {reduction_factor!r}")
    # The small epsilon keeps exact powers (log_2 8 = 3) from rounding up.
    return max(1, math.ceil(math.log(n_candidates) / math.log(reduction_factor) - RTOL))


def round_sizes(n_candidates: int, reduction_factor: float) -> list[int]:
    """Survivors at the start of each round: ``|M_0| = n``, ``|M_{r+1}| = ceil(|M_r| / eta)``."""
    sizes = [n_candidates]
    for _ in range(n_rounds(n_candidates, reduction_factor) - 1):
        sizes.append(math.ceil(sizes[-1] / reduction_factor))
    return sizes


def round_shares(budget: float, sizes: list[int]) -> list[float]:
    """Compute each survivor gets in each round: ``C_r = B / (|M_r| * R)``."""
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a positive number, got {budget!r}")
    R = len(sizes)
    return [budget / (m * R) for m in sizes]


def replanned_shares(shares: list[float], sizes: list[int], r: int, left: float) -> list[float]:
    """The shares of rounds ``r`` onwards, scaled so that they spend ``left`` (what the budget has left when
    round ``r`` starts): ``shares[q] * left / sum_{p >= r} |M_p| shares[p]``. Compute the earlier rounds did not
    spend (a survivor that reached its planned end) is spread over the remaining rounds in the schedule's own
    proportions, so that a round's targets (each survivor's compute plus the remaining replanned shares) are
    what the schedule then gives a survivor.

    Example:
        >>> [round(s, 6) for s in replanned_shares([1.5, 3.0], [4, 2], 1, 9.0)]   # 3 unspent in round 0
        [4.5]
    """
    planned = sum(m * s for m, s in zip(sizes[r:], shares[r:]))
    scale = max(0.0, left) / planned if planned > 0 else 0.0
    return [s * scale for s in shares[r:]]


def water_fill(pool: float, room: np.ndarray) -> np.ndarray:
    """Split ``pool`` as equally as possible among candidates that can take at most ``room`` more each (what one
    cannot take goes to the others; what none can take is left).

    Example:
        >>> water_fill(9.0, np.array([1.0, 10.0, 10.0])).tolist()
        [1.0, 4.0, 4.0]
    """
    give = np.zeros_like(room)
    left = pool
    open_ = room > 0
    while left > 1e-12 * pool and open_.any():
        share = left / open_.sum()
        add = np.where(open_, np.minimum(share, room - give), 0.0)
        give += add
        left -= add.sum()
        open_ = open_ & (room - give > 1e-12 * np.maximum(room, 1.0))
    return give


def trained_until(start: float, give: float, end: float) -> float:
    """The compute a candidate trained to ``start`` reaches when given ``give`` more, at most its planned ``end``:
    ``end`` itself when given all the room it had, since ``start + (end - start)`` can round to just below it
    (it is then finished, in the simulator and the budgeted driver alike)."""
    reached = start + give
    return end if reached >= end * (1 - RTOL) else reached


def fit_window(compute: np.ndarray, planned: float, warmup_fraction: float) -> np.ndarray:
    """Which observed points a surrogate is fitted on: those at or past ``warmup_fraction`` of the planned
    compute (learning-rate warm-up bends the start of a curve away from any law); the last point is always
    kept."""
    compute = np.asarray(compute, dtype=float)
    keep = compute >= warmup_fraction * planned
    if compute.size and not keep.any():
        keep[-1] = True
    return keep
