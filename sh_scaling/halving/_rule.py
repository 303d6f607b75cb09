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

__all__ = ["Decision", "decide", "select_survivors", "quota"]


def quota(n: int, reduction_factor: float) -> int:
    """How many of ``n`` competitors go on: ``ceil(n / reduction_factor)``."""
    return math.ceil(n / reduction_factor)


@dataclass(frozen=True)
class Decision:
    """The outcome of one asynchronous decision and the rule that made it.

    Attributes:
        promoted: Whether the candidate goes on.
        rule: ``"startup"`` (too few competitors to rank), ``"rank"`` (its rank decided), or ``"frontier"``
            (ranked out, but kept because its path could lower the frontier).
        n: Competitors, the candidate included.
        rank: Its rank among them (1 is best; ``None`` for startup).
        quota: How many go on by rank (``None`` for startup).
    """

    promoted: bool
    rule: str
    n: int
    rank: int | None = None
    quota: int | None = None

    def explain(self) -> str:
        """One clause saying which rule decided, for the trial's decision text."""
        if self.rule == "startup":
            return f"startup: {self.n} trial(s) at this rung, ranking starts above that"
        by_rank = f"ranked {self.rank} of {self.n}; top {self.quota} go on"
        if self.rule == "frontier":
            return f"kept by the frontier rule (its path could lower the others' frontier) although {by_rank}"
        return by_rank


def decide(
    score: float,
    competitors: np.ndarray,
    *,
    reduction_factor: float,
    n_startup: int = 0,
    keep_below_frontier: bool = False,
) -> Decision:
    """Asynchronous rule: promote a candidate with ``score`` among ``competitors``' scores (lower is better).

    Args:
        score: The deciding candidate's score.
        competitors: The other candidates' scores (those competing for the same next slice of compute).
        reduction_factor: ``eta``: ``ceil(n / eta)`` of ``n`` go on.
        n_startup: With ``n <= n_startup`` competitors (itself included) the candidate is promoted unranked.
        keep_below_frontier: Keep a candidate with a negative frontier score (its path goes below the others'
            frontier somewhere) whatever its rank.
    """
    competitors = np.asarray(competitors, dtype=float)
    n = int(competitors.size) + 1
    if n <= n_startup:
        return Decision(True, "startup", n)
    rank = 1 + int(np.sum(competitors < score))
    q = quota(n, reduction_factor)
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
