"""What each round of fixed-budget halving decided, set against what the curves really did.

A strategy that gains less than the oracle over plain SH loses it at some round: it drops a candidate that the
oracle, ranking the same survivors by the loss each really reaches, would have kept. :func:`round_table` lays
every round of one :class:`~sh_scaling.simulation.AllocationResult` out as one row per survivor, with the
forecast the ranking believed, the outcome read off the full recorded curve, and the oracle's choice among the
same survivors, so that such drops can be counted and explained (how wrong the forecast was, and at what stage
of the candidate's run it was made).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.halving import select_survivors
from sh_scaling.simulation._strategies import AllocationResult

__all__ = ["round_table"]

_COLUMNS = [
    "strategy", "round", "n_rounds", "candidate", "stage", "trained", "target", "points", "loss", "forecast", "std",
    "fallback", "score", "outcome", "forecast_error", "kept", "finished", "oracle_kept", "outcome_rank",
    "dropped", "wrong_drop", "wrong_keep", "offered", "given", "scheduled", "ranked_by",
]


def round_table(result: AllocationResult, candidates: CurveSet | Sequence[Curve]) -> pd.DataFrame:
    """Every decision of ``result``, one row per survivor of each round, beside what the curves really did.

    Args:
        result: What :func:`~sh_scaling.simulation.allocate` returned.
        candidates: The candidate set it ran on (the full recorded curves).

    Returns:
        One row per round and survivor, with columns

        - ``strategy``, ``round`` (0 is the first), ``n_rounds``, ``candidate`` (its id);
        - ``stage``: the fraction of the candidate's run (compute of its last recorded point) trained when the
          round ended, ``trained`` that compute, ``target`` the compute it would reach if it survived,
          ``points`` how many evaluations it had by then;
        - ``loss``: its lowest observed loss, ``forecast``/``std``/``fallback`` what the ranking believed it
          reaches at ``target`` (see :class:`~sh_scaling.simulation.RoundRecord`), ``score`` its score,
          ``ranked_by`` what the score was made from (``"forecast"``, ``"observed"``, ``"few:stage"``, ...; see
          :class:`~sh_scaling.simulation.RoundRecord`; ``None`` in the last round);
        - ``outcome``: the lowest loss the full curve reaches by ``target`` (what the oracle ranks by; NaN where
          the curve has no point by then), and ``forecast_error = forecast / outcome - 1``: positive where the
          forecast was too pessimistic (it expected a higher loss than the curve reached);
        - ``kept``, ``finished`` (it reached its last point and left the race), ``oracle_kept`` (whether ranking
          the same survivors by ``outcome`` keeps it), ``outcome_rank`` (1: the lowest outcome of the round's
          unfinished survivors);
        - ``dropped`` (neither kept nor finished), ``wrong_drop`` (dropped although the oracle keeps it),
          ``wrong_keep`` (kept although the oracle drops it: it took the place of a wrong drop);
        - ``offered`` and ``given``: the round's compute, offered and spent (repeated on each of its rows);
        - ``scheduled``: whether a schedule-aware strategy forecast it under its stated learning-rate schedule
          (false without a schedule, for other strategies and in the last round).

        The last round decides nothing: its rows are all kept, with ``score`` NaN and ``target = trained``.
    """
    by_id = {c.id: c for c in candidates}
    missing = [i for rec in result.rounds for i in rec.ids if i not in by_id]
    if missing:
        raise ValueError(f"round_table: candidates {sorted(set(missing))[:5]} of the result are not among the "
                         "curves given; pass the candidate set the result was computed on")
    frames = []
    n_rounds = len(result.rounds)
    for rec in result.rounds:
        curves = [by_id[i] for i in rec.ids]
        final = np.array([c.final_compute for c in curves])
        outcome = np.array([c.best_loss_at(t)[0] for c, t in zip(curves, rec.target)])
        decided = rec.score is not None
        if decided:
            oracle = np.zeros(len(curves), bool)
            ranked = np.where(np.isnan(outcome), np.inf, outcome)
            oracle[select_survivors(ranked, int(rec.kept.sum()), finished=rec.finished)] = True
        else:
            oracle = np.ones(len(curves), bool)
        open_ = ~rec.finished
        rank = np.full(len(curves), np.nan)
        if open_.any():
            ranked_open = np.where(np.isnan(outcome[open_]), np.inf, outcome[open_])
            rank[open_] = 1 + np.argsort(np.argsort(ranked_open, kind="stable"), kind="stable")
        dropped = ~rec.kept & ~rec.finished
        with np.errstate(invalid="ignore", divide="ignore"):
            error = rec.forecast / outcome - 1.0
        frames.append(pd.DataFrame({
            "strategy": result.strategy,
            "round": rec.round,
            "n_rounds": n_rounds,
            "candidate": rec.ids,
            "stage": rec.trained / final,
            "trained": rec.trained,
            "target": rec.target,
            "points": [len(c.observed_until(t)) for c, t in zip(curves, rec.trained)],
            "loss": rec.loss,
            "forecast": rec.forecast,
            "std": rec.std,
            "fallback": rec.fallback,
            "score": rec.score if decided else np.nan,
            "outcome": outcome,
            "forecast_error": error,
            "kept": rec.kept,
            "finished": rec.finished,
            "oracle_kept": oracle,
            "outcome_rank": rank,
            "dropped": dropped,
            "wrong_drop": dropped & oracle,
            "wrong_keep": rec.kept & ~oracle & ~rec.finished,
            "offered": rec.offered,
            "given": rec.given,
            "scheduled": rec.scheduled if rec.scheduled is not None else np.zeros(len(curves), bool),
            "ranked_by": rec.ranked_by if rec.ranked_by is not None else [None] * len(curves),
        }))
    if not frames:
        return pd.DataFrame(columns=_COLUMNS)
    return pd.concat(frames, ignore_index=True)[_COLUMNS]
