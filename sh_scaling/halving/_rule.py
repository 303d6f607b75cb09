"""The promote/prune rule: who goes on after a decision.

Asynchronous successive halving (the pruner; Li et al., *A System for Massively Parallel Hyperparameter
Tuning*, MLSys 2020) decides one trial against the others that reached the same compute: it goes on if it
ranks in the top ``ceil(n / reduction_factor)`` of the ``n`` competitors. Fixed-budget successive halving (the
simulator and the budgeted driver; Schram et al., ICML 2026) decides a whole round at once: exactly the
``ceil(|M_r| / reduction_factor)`` best survive, because the next round's shares are computed for that many.
Both rank with the same scores (:mod:`sh_scaling.halving._scores`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Decision", "decide", "improvement_of", "select_survivors", "quota"]


def quota(n: int, reduction_factor: float) -> int:
    """How many of ``n`` competitors go on: ``ceil(n / reduction_factor)``."""
    return math.ceil(n / reduction_factor)


@dataclass(frozen=True)
class Decision:
    """The outcome of one asynchronous decision and the rule that made it.

    Attributes:
        promoted: Whether the candidate goes on.
        rule: ``"startup"`` (too few competitors to rank), ``"rank"`` (its rank decided), ``"frontier"``
            (ranked out, but kept because its path could lower the frontier), or ``"improvement"`` (stopped
            whatever its rank: even its optimistic forecast does not improve enough on what was observed).
        n: Competitors, the candidate included.
        rank: Its rank among them (1 is best; ``None`` for startup).
        quota: How many go on by rank (``None`` for startup).
        gain: For ``"improvement"``: the most its optimistic forecast improves on the observed losses, as a
            fraction of the loss (negative: it does not improve at all).
    """

    promoted: bool
    rule: str
    n: int
    rank: int | None = None
    quota: int | None = None
    gain: float | None = None

    def explain(self) -> str:
        """One clause saying which rule decided, for the trial's decision text."""
        if self.rule == "startup":
            return f"startup: {self.n} trial(s) at this rung, ranking starts above that"
        if self.rule == "improvement":
            gain = self.gain
            if gain is None or not math.isfinite(gain):
                return "stopped by the improvement rule: even its optimistic forecast does not improve on the losses "\
                    "already observed"
            if gain <= 0:
                return (
                    "stopped by the improvement rule: even its optimistic forecast stays above the losses already "
                    f"observed, by {100 * -gain:.3g} % at least"
                )
            return (
                f"stopped by the improvement rule: even its optimistic forecast improves on the losses already "
                f"observed by {100 * gain:.3g} % at most"
            )
        by_rank = f"ranked {self.rank} of {self.n}; top {self.quota} go on"
        if self.rule == "frontier":
            return f"kept by the frontier rule (its path could lower the others' frontier) although {by_rank}"
        return by_rank


def improvement_of(gap: float) -> float | None:
    """The fraction of the loss by which a log-loss ``gap`` below what was observed improves on it (negative: it
    stays above); ``None`` for a gap that is not a finite number. Gaps beyond 50 (a factor e^50) count as 50."""
    if not math.isfinite(gap) and not (gap == -math.inf):
        return None
    return -math.expm1(min(gap, 50.0))


def decide(
    score: float,
    competitors: np.ndarray,
    *,
    reduction_factor: float,
    n_startup: int = 0,
    keep_below_frontier: bool = False,
    observed_gap: float | None = None,
    min_improvement: float | None = None,
) -> Decision:
    """Asynchronous rule: promote a candidate with ``score`` among ``competitors``' scores (lower is better).

    Args:
        score: The deciding candidate's score.
        competitors: The other candidates' scores (those competing for the same next slice of compute).
        reduction_factor: ``eta``: ``ceil(n / eta)`` of ``n`` go on.
        n_startup: With ``n <= n_startup`` competitors (itself included) the candidate is promoted unranked.
        keep_below_frontier: Keep a candidate with a negative frontier score (its path goes below the others'
            frontier somewhere) whatever its rank.
        observed_gap: How far (log loss) the candidate's optimistic forecast goes below the losses observed so
            far (:func:`~sh_scaling.halving.observed_gap`; negative where it improves on them).
        min_improvement: Stop the candidate, whatever its rank and even alone at its rung, unless its
            ``observed_gap`` is below ``log(1 - min_improvement)``: it must be forecast to improve on what was
            observed by more than that fraction of the loss. ``None``: no such rule.
    """
    competitors = np.asarray(competitors, dtype=float)
    n = int(competitors.size) + 1
    rank = 1 + int(np.sum(competitors < score))
    q = quota(n, reduction_factor)
    if min_improvement is not None and observed_gap is not None and observed_gap > math.log1p(-min_improvement):
        return Decision(False, "improvement", n, rank, q, gain=improvement_of(observed_gap))
    if n <= n_startup:
        return Decision(True, "startup", n)
    if rank <= q:
        return Decision(True, "rank", n, rank, q)
    if keep_below_frontier and score < 0:
        return Decision(True, "frontier", n, rank, q)
    return Decision(False, "rank", n, rank, q)


def select_survivors(
    scores: np.ndarray, n_keep: int, *, finished: np.ndarray | None = None, tiebreak: np.ndarray | None = None
) -> np.ndarray:
    """Fixed-budget rule: indices of the ``n_keep`` best candidates, best first.

    A candidate that has ``finished`` (reached its last point: it needs no more compute and its result stands)
    leaves the race, and its slot goes to the best unfinished one. Ties break on ``tiebreak`` (random numbers
    from the caller's generator), then on the index. A negative frontier score ranks ahead of every
    positive one, so candidates that could lower the frontier survive first: the fixed-budget form of the
    asynchronous ``keep_below_frontier`` (which cannot keep more than ``n_keep`` without overdrawing the next
    round's budget).
    """
    scores = np.asarray(scores, dtype=float)
    n = scores.size
    finished = np.zeros(n, bool) if finished is None else np.asarray(finished, bool)
    tiebreak = np.zeros(n) if tiebreak is None else np.asarray(tiebreak, dtype=float)
    order = np.lexsort((np.arange(n), tiebreak, scores, finished))
    return order[: max(0, int(n_keep))]
