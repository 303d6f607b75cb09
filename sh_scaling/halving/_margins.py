"""How wrong a forecast can be at a stage of its run: the margin a stopping rule gives the trial at risk.

A forecast of a run's final loss made at 5 % of the run misses by several percent on real curves; one made at
60 % misses by a fraction of that. A Gaussian interval from the surrogate's fit does not know this (the power
law's intervals are far too narrow early, ``benchmarks/bench_forecast_coverage.py``). The stage error model
does: the log error ``e = log(outcome / forecast)`` of forecasts made at a stage ``s`` (fraction of the run's
planned compute) has a lower ``1 - coverage`` quantile ``-m(s)``, measured on development curves (a table at
:data:`STAGE_NODES`, interpolated in log stage) and updated by the study's own finished trials. The trial at
risk is then given the benefit of the doubt down to ``forecast * exp(-m(s))``: its outcome falls below that in
about ``1 - coverage`` of cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["STAGE_NODES", "stage_margin", "margin_quantile", "stage_center_table", "at_stage", "widened_margin"]

#: Stages (fractions of a run's planned compute) at which the error model's table is given; between them it
#: is interpolated in log stage, and held constant beyond the ends.
STAGE_NODES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)


def margin_quantile(errors: np.ndarray, coverage: float) -> float:
    """The margin (log loss, >= 0) that covers ``coverage`` of ``errors = log(outcome / forecast)``: minus their
    lower ``1 - coverage`` quantile, floored at 0 (a forecast is never made more pessimistic)."""
    e = np.asarray(errors, dtype=float)
    e = e[np.isfinite(e)]
    if e.size == 0:
        return 0.0
    return max(0.0, -float(np.quantile(e, 1.0 - float(coverage))))


def stage_margin(
    stage: float,
    prior: Sequence[float],
    errors: np.ndarray | None = None,
    stages: np.ndarray | None = None,
    *,
    coverage: float,
    prior_weight: float,
    widen: bool = False,
    window: float = 2.0,
    proven: tuple[np.ndarray, np.ndarray] | None = None,
    widen_level: float | None = None,
) -> tuple[float, dict[str, float]]:
    """The margin (log loss) for a forecast made at ``stage``, and what went into it.

    Args:
        stage: Fraction of the run's planned compute spent when the forecast was made.
        prior: The margin at each of :data:`STAGE_NODES`, measured on development curves.
        errors, stages: The study's own log errors ``log(outcome / forecast)`` of forecasts whose outcome is
            known, and the stage each was made at; those made within a factor ``window`` of ``stage`` count.
        coverage: The share of outcomes the margin is meant to stay above.
        prior_weight: How many of the study's own errors the prior is worth: the margin is the weighted mean of
            the prior's and the study's (``n`` errors near the stage weigh ``n``).
        widen: Believe a study whose forecasts miss by more than the development sets' at once: where the
            study's own margin near the stage is the wider one, the margin is the largest of its misses there,
            the table left out. Evidence of larger errors is taken in whole, evidence of smaller ones is
            weighed against the table: a margin too narrow loses the best trial (in the study where it matters,
            the best trial is the one its early forecasts misjudge most), one too wide costs compute.
        proven: With ``widen``, misses that unfinished trials have already proven, ``(log_errors, stages)``
            (each an upper bound on a forecast's log error: the loss its trial has since observed below it,
            the ``margin={"proven": True}`` setting of the pruner): where the largest of them near the stage exceeds the
            table, it is the margin (or the study's largest finished miss, if larger). Trials that run at once
            finish late, long runs last; what they have already shown is known before their outcomes.
        widen_level: With ``widen``, how sure the study's finished errors near the stage must make it that the
            table is too narrow before the margin is widened to their largest miss (:func:`widened_margin`);
            otherwise they are weighed against the table. ``None``: any study margin above the table widens it,
            however many errors there are.

    Returns:
        ``(margin, info)``, ``info`` holding ``prior`` (the table's value here), ``n`` (the study's errors near
        the stage) and, when there are some, ``study`` (their margin; ``widened``: 1.0 when it was taken whole),
        ``proven`` and ``n_proven`` (the largest proven miss near the stage and how many there were).
    """
    if not (0.0 < coverage < 1.0):
        raise ValueError(f"coverage={coverage!r}: must be in (0, 1)")
    if len(prior) != len(STAGE_NODES):
        raise ValueError(f"prior has {len(prior)} values; the table has one per stage node {STAGE_NODES}")
    m0 = float(at_stage(prior, stage))
    info: dict[str, float] = {"prior": m0, "n": 0.0}
    m_proven = 0.0
    if widen and proven is not None:
        pe, pnear = _near_stage(proven[0], proven[1], stage, window)
        if pnear.any():
            m_proven = max(0.0, -float(np.min(pe[pnear])))
            info["proven"] = m_proven
            info["n_proven"] = float(pnear.sum())
    e, near = _near_stage(errors, stages, stage, window)
    n = int(near.sum())
    info["n"] = float(n)
    if n == 0:
        if m_proven > m0:
            info["widened"] = 1.0
            return m_proven, info
        return max(m0, 0.0), info
    m_study = margin_quantile(e[near], coverage)
    info["study"] = m_study
    m = max((prior_weight * m0 + n * m_study) / (prior_weight + n), 0.0)
    if not widen:
        return m, info
    if widen_level is None:
        if max(m_study, m_proven) > m0:
            info["study"] = m_study = max(m_study, -float(np.min(e[near])), m_proven)
            info["widened"] = 1.0
            return m_study, info
        return m, info
    bound = widened_margin(e[near], m0, coverage, widen_level)
    if bound is not None:
        info["study"] = m_study = max(m_study, bound)
        m = m_study
    if bound is not None or m_proven > m:
        info["widened"] = 1.0
        return max(m, m_proven), info
    return m, info


def _near_stage(
    errors: np.ndarray | None, stages: np.ndarray | None, stage: float, window: float
) -> tuple[np.ndarray, np.ndarray]:
    """``errors`` as floats, and which of them are finite and were made within a factor ``window`` of ``stage``."""
    if errors is None or stages is None or np.size(errors) == 0:
        return np.empty(0), np.zeros(0, bool)
    e = np.asarray(errors, dtype=float)
    s = np.asarray(stages, dtype=float)
    near = np.isfinite(e) & (s > 0) & (np.abs(np.log(np.maximum(s, 1e-12) / max(float(stage), 1e-12))) <= math.log(window))
    return e, near


def at_stage(table: Sequence[float], stage: float | np.ndarray) -> np.ndarray:
    """A table given at :data:`STAGE_NODES` read at ``stage`` (a number or an array; interpolated in log stage,
    held beyond the ends)."""
    x = np.log(np.clip(np.asarray(stage, dtype=float), STAGE_NODES[0], STAGE_NODES[-1]))
    return np.interp(x, np.log(STAGE_NODES), np.asarray(table, dtype=float))


def stage_center_table(
    prior: Sequence[float],
    errors: np.ndarray | None = None,
    stages: np.ndarray | None = None,
    *,
    prior_weight: float,
    window: float = 2.0,
) -> tuple[float, ...]:
    """The median log error ``log(outcome / forecast)`` at each of :data:`STAGE_NODES`: the development table
    ``prior``, each node moved towards the median of the study's own errors made within a factor ``window`` of
    it (``n`` of them weigh ``n`` against ``prior_weight``). A forecast made at a stage is read at
    ``forecast * exp(at_stage(table, stage))``: its typical error taken out (negative where forecasts made
    there were too pessimistic)."""
    if len(prior) != len(STAGE_NODES):
        raise ValueError(f"prior has {len(prior)} values; the table has one per stage node {STAGE_NODES}")
    out = [float(v) for v in prior]
    if errors is None or stages is None or np.size(errors) == 0:
        return tuple(out)
    e = np.asarray(errors, dtype=float)
    s = np.asarray(stages, dtype=float)
    ok = np.isfinite(e) & (s > 0)
    e, s = e[ok], s[ok]
    for i, node in enumerate(STAGE_NODES):
        near = np.abs(np.log(s / node)) <= math.log(window)
        n = int(near.sum())
        if n:
            out[i] = (prior_weight * out[i] + n * float(np.median(e[near]))) / (prior_weight + n)
    return tuple(out)


def widened_margin(errors: np.ndarray, table: float, coverage: float, level: float) -> float | None:
    """A study's own margin where its errors show the table's margin ``table`` too narrow: its largest miss;
    ``None`` where they do not.

    The table says that a share ``p = 1 - coverage`` of the errors fall below ``-table``. Out of ``n`` errors,
    ``k`` do; if the table were right, as many or more would with the binomial probability ``P(Bin(n, p) >= k)``.
    Only where that is at most ``level`` is the table taken to be too narrow. One error past the table is
    enough where it is the only one near the stage (``P = p``, at the default level); a hundred errors of which
    eleven lie past it (a 90 % quantile a hair beyond the table) are not, and are weighed against the table
    instead of being judged by their single worst.
    """
    e = np.asarray(errors, dtype=float)
    n = int(e.size)
    k = int(np.count_nonzero(e < -float(table)))
    if k == 0:
        return None
    from scipy.stats import binom  # scipy.stats takes a while to import; only a widening test needs it

    if float(binom.sf(k - 1, n, 1.0 - float(coverage))) > level:
        return None
    return max(0.0, -float(np.min(e)))
