"""The paper-style experiment grid: strategies x candidate-set sizes x budgets x random candidate sets."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sh_scaling.benchmarking import parallel_map
from sh_scaling.curves import CurveSet
from sh_scaling.simulation._metrics import allocation_metrics, frontier_law, oracle_share, relative_improvement
from sh_scaling.simulation._strategies import (
    SCHEDULE_AWARE,
    allocate,
    first_evaluation_reach,
    get_strategy,
    parse_strategy,
    stated_schedule,
)

__all__ = ["simulate", "summarize", "DEFAULT_STRATEGIES"]

DEFAULT_STRATEGIES = ("UA", "SH", "SH+PL", "SH+GP", "SH+FA")


def _one_candidate_set(args: tuple) -> list[dict]:
    curves, ids, k, budgets, strategies, reduction_factor, carry_over, keep_unseen, replan, repeat, seed = args
    cands = curves.subset(ids)
    exh_law = frontier_law(list(cands))
    rows = []
    for frac in budgets:
        budget = frac * cands.exhaustive_compute
        for name in strategies:
            # Every strategy gets the same tie-breaking stream for this candidate set and budget.
            rng = np.random.default_rng([seed, k, repeat, int(frac * 1e6)])
            res = allocate(cands, budget, name, reduction_factor=reduction_factor, carry_over=carry_over,
                           keep_unseen=keep_unseen, replan=replan, rng=rng)
            row = {
                "n_candidates": k,
                "budget_frac": frac,
                "repeat": repeat,
                "strategy": res.strategy,
                "budget": budget,
                "n_fallbacks": res.n_fallbacks,
            }
            row.update(allocation_metrics(res.observed, list(cands), res.spent, exh_law))
            rows.append(row)
    return rows


def simulate(
    curves: CurveSet,
    *,
    candidates: Sequence[int] = (5, 10, 20),
    budgets: Sequence[float] = (0.01, 0.03, 0.1, 0.3),
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    repeats: int = 30,
    seed: int = 0,
    reduction_factor: float = 2.0,
    carry_over: bool = False,
    keep_unseen: bool = False,
    replan: bool = False,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Replay every strategy on random candidate sets and return one tidy row per run.

    Args:
        curves: The pool of recorded curves.
        candidates: Candidate-set sizes ``|M0|``.
        budgets: Budgets as fractions of the candidate set's exhaustive compute (every curve to its end).
        strategies: Names from :data:`sh_scaling.simulation.STRATEGIES`, specs with settings changed
            (``"SH+FA:unseen=last"``, :func:`~sh_scaling.simulation.parse_strategy`) or :class:`Strategy` objects
            (e.g. with a surrogate of your own). ``"SH"`` is always added, because
            relative improvement is measured against it.
        repeats: Random candidate sets per size; the same sets are used for every budget and strategy.
        seed: Seed of the candidate draws and the tie-breaking.
        reduction_factor: ``eta``: ``ceil(|M_r| / eta)`` candidates survive each round.
        carry_over: Pass compute that finished curves cannot use to the other survivors
            (see :func:`sh_scaling.simulation.allocate`).
        keep_unseen: Keep candidates with no evaluation yet while the remaining rounds can still observe them
            (see :func:`sh_scaling.simulation.allocate`).
        replan: Give each round its share of what the budget has left, the last round all of it (see
            :func:`sh_scaling.simulation.allocate`); every strategy, SH included, replays with it. Not with
            ``carry_over``.
        n_jobs: Worker processes (1 runs in-process).
        progress: Print progress on stderr.

    Returns:
        Columns ``n_candidates, budget_frac, repeat, strategy, budget, n_fallbacks`` and the metrics of
        :func:`sh_scaling.simulation.allocation_metrics`, plus ``ri_vs_sh`` (relative improvement of the best
        loss over SH on the same candidate set and budget).

    Bad input (see :mod:`sh_scaling.simulation`'s ``allocate`` for each round): a candidate set whose cheapest
    first evaluation lies beyond what the round schedule gives one candidate
    (:func:`~sh_scaling.simulation.first_evaluation_reach`) is evaluated by no strategy: its rows have
    ``best_loss`` and ``ri_vs_sh`` NaN, and :func:`summarize` counts them (``unevaluated``) and leaves them out of
    the means. Where that holds for every candidate set of a size and budget, nothing can be learned from the
    setting: ``ValueError``, naming it and the smallest budget that evaluates a candidate of every set drawn
    (not checked with ``carry_over``, which can give one candidate more than the rounds' shares).
    A schedule-aware strategy forecasts each curve under its own ``meta["schedule"]``, or at a constant rate
    where it has none; a ``meta["schedule"]`` that is not a schedule raises ``ValueError`` naming the curve.

    Example:
        >>> from sh_scaling.curves import generate_synthetic
        >>> df = simulate(generate_synthetic(12, seed=0), candidates=(4,), budgets=(0.1,), strategies=("SH",),
        ...               repeats=2, progress=False)
        >>> sorted(df.strategy.unique()), len(df)
        (['SH'], 2)
    """
    names = [parse_strategy(s) if isinstance(s, str) else get_strategy(s) for s in strategies]
    if replan and carry_over:
        raise ValueError("replan and carry_over are two ways to spend what finished curves leave; choose one")
    if "SH" not in [s.name for s in names]:
        names.insert(0, get_strategy("SH"))
    for k in candidates:
        if not 1 <= k <= len(curves):
            raise ValueError(f"candidate-set size {k} is outside 1..{len(curves)} (the number of curves)")
    for b in budgets:
        if not (np.isfinite(b) and b > 0):
            raise ValueError(f"budgets are fractions of exhaustive compute and must be > 0, got {b!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if any(s.surrogate == SCHEDULE_AWARE for s in names):
        for c in curves:
            stated_schedule(c)  # a schedule that is not one fails here, before any candidate set
    rng = np.random.default_rng(seed)
    ids = curves.ids
    tasks = []
    for k in candidates:
        drawn = []
        for repeat in range(repeats):
            chosen = list(rng.choice(len(ids), size=k, replace=False))
            drawn.append([ids[i] for i in chosen])
            tasks.append((curves, drawn[-1], k, tuple(budgets), tuple(names), reduction_factor,
                          carry_over, keep_unseen, replan, repeat, seed))
        _check_some_set_can_be_evaluated(curves, drawn, budgets, reduction_factor, carry_over)
    workers = n_jobs if n_jobs > 0 else os.cpu_count() or 1
    per_set = parallel_map(_one_candidate_set, tasks, jobs=workers, label=f"simulate[{curves.name}]",
                           chunksize=max(1, len(tasks) // (8 * workers)), progress=progress)
    df = pd.DataFrame([row for rows in per_set for row in rows])
    keys = ["n_candidates", "budget_frac", "repeat"]
    sh = df[df.strategy == "SH"].set_index(keys)["best_loss"].rename("sh_best_loss")
    df = df.join(sh, on=keys)
    df["ri_vs_sh"] = relative_improvement(df["sh_best_loss"], df["best_loss"])
    return df.drop(columns="sh_best_loss")


def _check_some_set_can_be_evaluated(curves: CurveSet, drawn: list[list[str]], budgets: Sequence[float],
                                     reduction_factor: float, carry_over: bool) -> None:
    """``ValueError`` where a budget leaves every drawn candidate set of one size without a single evaluation."""
    if carry_over:  # compute a finished curve leaves can go to one candidate: the schedule's shares do not bound it
        return
    need = []  # per set: the budget fraction at which its cheapest first evaluation is reached
    for ids in drawn:
        cands = curves.subset(ids)
        reach_per_budget = first_evaluation_reach(len(ids), 1.0, reduction_factor)
        need.append(min(c.compute[0] for c in cands) / (reach_per_budget * cands.exhaustive_compute))
    for frac in budgets:
        if all(frac < n * (1 - 1e-9) for n in need):
            raise ValueError(
                f"budget {frac:g} of exhaustive compute evaluates no candidate of any of the {len(drawn)} candidate "
                f"sets of size {len(drawn[0])}: the most the rounds give one candidate is below the set's cheapest "
                f"first evaluation. The smallest budget that evaluates a candidate of every set is {max(need):.3g}")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, candidate-set size and budget: RI over SH (mean, std, 95 % interval by the normal
    approximation), mean best loss, regret and savings, median law error (``law_area``: mean absolute ln-loss
    gap between the fitted and the exhaustive law; ``exponent_error``: relative), and fallback count.

    Where ``df`` holds ``SH+oracle`` runs, also ``oracle_share`` with ``oracle_share_lo``/``oracle_share_hi``:
    the share of the oracle's gain over SH the strategy reaches, ``mean RI / mean RI of the oracle`` on the same
    candidate sets, with a 95 % interval (:func:`~sh_scaling.simulation.oracle_share`); NaN where the oracle gains
    less than :data:`~sh_scaling.simulation.MIN_ORACLE_GAIN` (0.5 %), where there is no gain to share.

    ``unevaluated`` counts the runs that evaluated no candidate (``best_loss`` NaN: the budget could not reach a
    first evaluation; see :func:`simulate`); they are left out of every mean, and ``n`` counts them."""
    g = df.groupby(["n_candidates", "budget_frac", "strategy"], sort=True)
    out = g.agg(
        n=("ri_vs_sh", "size"),
        ri_mean=("ri_vs_sh", "mean"),
        ri_std=("ri_vs_sh", "std"),
        best_loss=("best_loss", "mean"),
        regret_mean=("regret", "mean"),
        savings=("savings", "mean"),
        # Medians: a law fitted to a nearly empty frontier can be wildly off, and one such run would
        # dominate a mean.
        law_area=("law_area_mean", "median"),
        exponent_error=("exponent_error", "median"),
        fallbacks=("n_fallbacks", "sum"),
        # Candidate sets the budget evaluated no candidate of (best loss NaN): left out of the means above.
        unevaluated=("best_loss", lambda x: int(x.isna().sum())),
    ).reset_index()
    half = 1.96 * out["ri_std"].fillna(0.0) / np.sqrt(out["n"])
    out["ri_lo"] = out["ri_mean"] - half
    out["ri_hi"] = out["ri_mean"] + half
    shares = np.full((len(out), 3), np.nan)
    if (df.strategy == "SH+oracle").any():
        keys = ["n_candidates", "budget_frac", "repeat"]
        oracle = df[df.strategy == "SH+oracle"].set_index(keys)["ri_vs_sh"].rename("oracle_ri")
        paired = df.join(oracle, on=keys)
        by = paired.groupby(["n_candidates", "budget_frac", "strategy"], sort=True)
        for i, (k, b, name) in enumerate(zip(out.n_candidates, out.budget_frac, out.strategy)):
            rows = by.get_group((k, b, name))
            shares[i] = oracle_share(rows["ri_vs_sh"].to_numpy(), rows["oracle_ri"].to_numpy())
    out["oracle_share"], out["oracle_share_lo"], out["oracle_share_hi"] = shares.T
    return out
