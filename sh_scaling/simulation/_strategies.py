"""Budget-allocation strategies replayed on recorded curves (SPEC §1.2).

Fixed-budget successive halving over a candidate set M0 with total budget B and reduction factor eta
(Schram et al., ICML 2026): R = ceil(log_eta |M0|) rounds; in round r every survivor is trained further by
C_r = B / (|M_r| * R); then the best ceil(|M_r| / eta) survive. The strategies differ only in how survivors are
ranked:

* ``UA``: uniform allocation, B / |M0| to every candidate, no pruning.
* ``SH``: lowest observed loss.
* ``SH+PL`` / ``SH+GP`` / ``SH+GPM``: lowest loss forecast at the compute the curve would have at the end of the
  schedule if it survived (power law, one GP per curve, one multi-curve GP).
* ``SH+FA``: frontier-aware. A survivor is ranked by how close its forecast continuation comes to the frontier
  of all the other candidates (observed for eliminated ones, forecast for survivors) anywhere in the compute
  range; a curve that would lower the frontier somewhere ranks first.
* ``SH+oracle``: ranks by the loss each curve really reaches at its target (read off the full recorded curve).
  Not a method: an upper bound on what any forecast can gain over ``SH`` on a given set of curves.

A curve trained to compute c is observed only at its recorded evaluations with compute <= c. Training never
goes past a curve's last recorded point (its planned length). By default the share that would go beyond is
not spent, as in the paper's schedule. ``carry_over=True`` instead splits it among the other survivors of the
round (water-filling) and moves what is still left to the next round; it lowers every strategy's regret, but
the forecast targets (the compute a curve would reach if it survived) then underestimate what survivors really
get, so forecast rankings are no longer consistent with the schedule. A curve that has reached its last point
leaves the race (its result stands) and its survivor slot goes to the best unfinished curve.

Forecasts decide what to prune only; reported losses and laws use observed points only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.surrogates import forecast, forecast_paths

__all__ = ["Strategy", "STRATEGIES", "AllocationResult", "allocate", "n_rounds", "get_strategy"]


@dataclass(frozen=True)
class Strategy:
    """How survivors are ranked: ``ranking`` is ``"none"`` (UA), ``"observed"``, ``"forecast"``, ``"frontier"``
    or ``"oracle"``; ``surrogate`` is a name or prototype for :func:`sh_scaling.surrogates.make_surrogate`;
    ``quantile`` ranks forecasts by a lower quantile of the predictive distribution instead of the mean
    (optimism in the face of uncertainty: a long extrapolation is given the benefit of the doubt);
    ``warmup_fraction`` leaves out of surrogate fits the points before that fraction of each curve's planned
    compute (learning-rate warm-up bends the start of a curve away from any law; the last point is always
    kept)."""

    name: str
    ranking: str
    surrogate: Any = None
    quantile: float | None = None
    warmup_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.ranking not in ("none", "observed", "forecast", "frontier", "oracle"):
            raise ValueError(f"Strategy {self.name!r}: unknown ranking {self.ranking!r}")
        if self.ranking in ("forecast", "frontier") and self.surrogate is None:
            raise ValueError(f"Strategy {self.name!r}: ranking {self.ranking!r} needs a surrogate")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"Strategy {self.name!r}: warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.quantile is not None and not 0 < self.quantile <= 0.5:
            raise ValueError(f"Strategy {self.name!r}: quantile must be in (0, 0.5], got {self.quantile!r}")


#: Surrogate fits skip the points before 2 % of a curve's planned compute, where learning-rate warm-up bends
#: the curve away from any law (chosen among 0, 2, 5 and 20 % on the routing and synthetic curves of
#: ``benchmarks/bench_allocation.py``: 0 made power-law forecasts significantly worse than SH on synthetic
#: curves with warm-up, 5 % drops the first evaluation of every routing curve).
WARMUP_FRACTION = 0.02

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("UA", "none"),
        Strategy("SH", "observed"),
        Strategy("SH+PL", "forecast", "powerlaw", warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+EXP", "forecast", "exponential", warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+MMF", "forecast", "mmf", warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+GP", "forecast", "gp", warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+GPM", "forecast", "gp-multi", warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+FA", "frontier", "powerlaw", warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+FA-GP", "frontier", "gp", warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+oracle", "oracle"),
    )
}


def get_strategy(name: str | Strategy) -> Strategy:
    if isinstance(name, Strategy):
        return name
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}") from None


@dataclass
class AllocationResult:
    """What a strategy did with one candidate set.

    Attributes:
        strategy: Strategy name.
        trained: Compute each candidate was trained to (never past its last point).
        observed: Each candidate's observed prefix.
        spent: Total compute spent.
        best_loss: Lowest observed loss over all candidates.
        n_fallbacks: Surrogate forecasts that fell back to the observed minimum.
        survivors: Candidate ids alive at the start of each round.
    """

    strategy: str
    trained: dict[str, float]
    observed: list[Curve]
    spent: float
    best_loss: float
    n_fallbacks: int = 0
    survivors: list[list[str]] = field(default_factory=list)


def n_rounds(n_candidates: int, eta: float) -> int:
    """R = ceil(log_eta |M0|), at least 1."""
    if n_candidates < 1:
        raise ValueError(f"need at least one candidate, got {n_candidates}")
    if eta <= 1:
        raise ValueError(f"reduction factor eta must be > 1, got {eta!r}")
    # The small epsilon keeps exact powers (log_2 8 = 3) from rounding up.
    return max(1, math.ceil(math.log(n_candidates) / math.log(eta) - 1e-9))


def _observed(curve: Curve, compute: float) -> Curve:
    return curve.observed_until(compute)


def _score_observed(obs: list[Curve]) -> np.ndarray:
    return np.array([c.min_loss if len(c) else np.inf for c in obs])


def _fit_points(strategy: Strategy, obs: list[Curve], full: list[Curve]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The observed points a surrogate is fitted on: those past the strategy's warm-up fraction."""
    out = []
    for o, c in zip(obs, full):
        keep = o.compute >= strategy.warmup_fraction * c.final_compute
        if len(o) and not keep.any():
            keep[-1] = True
        out.append((o.compute[keep], o.loss[keep]))
    return out


def _score_forecast(
    strategy: Strategy, alive: list[Curve], obs: list[Curve], targets: np.ndarray
) -> tuple[np.ndarray, int]:
    fc = forecast(strategy.surrogate, _fit_points(strategy, obs, alive), targets)
    value = fc.optimistic(strategy.quantile)
    score = np.where(np.isnan(value), np.inf, value)
    return score, int(sum(1 for c, f in zip(obs, fc.fallback) if f and len(c)))


def _score_frontier(
    strategy: Strategy, alive: list[Curve], obs_alive: list[Curve], targets: np.ndarray, obs_dead: list[Curve]
) -> tuple[np.ndarray, int]:
    firsts = [c.compute[0] for c in alive]
    grid = np.geomspace(min(firsts), max(targets.max(), min(firsts) * 1.0001), 64)
    paths = []
    fc = forecast_paths(strategy.surrogate, _fit_points(strategy, obs_alive, alive), [grid] * len(alive))
    n_fallbacks = 0
    for c, o, f, t in zip(alive, obs_alive, fc, targets):
        if not len(o):
            paths.append(np.full(grid.size, np.nan))
            continue
        n_fallbacks += int(f.fallback.any())
        seen = o.best_loss_at(grid)
        future = np.where((grid > o.final_compute) & (grid <= t * (1 + 1e-9)), f.mean, np.nan)
        paths.append(np.where(grid <= o.final_compute, seen, future))
    others_dead = [o.best_loss_at(grid) for o in obs_dead if len(o)]
    mat = np.log(np.vstack(paths + others_dead))
    n_alive = len(alive)
    score = np.full(n_alive, np.inf)
    for i in range(n_alive):
        mine = mat[i]
        if np.all(np.isnan(mine)):
            continue
        rest = np.delete(mat, i, axis=0)
        with np.errstate(all="ignore"):
            env = np.where(np.all(np.isnan(rest), axis=0), np.inf, np.nanmin(np.where(np.isnan(rest), np.inf, rest), axis=0))
        gap = mine - env
        score[i] = np.nanmin(gap)
    return score, n_fallbacks


def _water_fill(pool: float, room: np.ndarray) -> np.ndarray:
    """Split ``pool`` as equally as possible among curves that can take at most ``room`` more each."""
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


def allocate(
    candidates: CurveSet | list[Curve],
    budget: float,
    strategy: str | Strategy = "SH",
    *,
    eta: float = 2.0,
    carry_over: bool = False,
    rng: np.random.Generator | None = None,
) -> AllocationResult:
    """Replay one strategy on one candidate set.

    Args:
        candidates: The candidate curves (their full recorded curves; only prefixes are revealed).
        budget: Total compute B.
        strategy: A name from :data:`STRATEGIES` or a :class:`Strategy`.
        eta: Reduction factor.
        carry_over: Give compute a finished curve cannot use to the other survivors (see the module doc).
        rng: Breaks ties (e.g. between curves with no observed point yet) at random.
    """
    strat = get_strategy(strategy)
    cands = list(candidates)
    if not cands:
        raise ValueError("allocate: empty candidate set")
    if not (np.isfinite(budget) and budget > 0):
        raise ValueError(f"allocate: budget must be a positive number, got {budget!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    trained = {c.id: 0.0 for c in cands}
    finals = {c.id: c.final_compute for c in cands}
    n_fallbacks = 0
    history: list[list[str]] = []

    if strat.ranking == "none":
        if carry_over:
            give = _water_fill(budget, np.array([finals[c.id] for c in cands]))
        else:
            give = np.minimum(budget / len(cands), [finals[c.id] for c in cands])
        for c, g in zip(cands, give):
            trained[c.id] = float(g)
    else:
        R = n_rounds(len(cands), eta)
        sizes = [len(cands)]
        for _ in range(R - 1):
            sizes.append(math.ceil(sizes[-1] / eta))
        shares = [budget / (m * R) for m in sizes]
        alive = cands
        carry = 0.0
        for r in range(R):
            history.append([c.id for c in alive])
            room = np.array([finals[c.id] - trained[c.id] for c in alive])
            if carry_over:
                pool = shares[r] * len(alive) + carry
                give = _water_fill(pool, room)
                carry = pool - float(give.sum())
            else:
                give = np.minimum(shares[r], room)
            for c, g in zip(alive, give):
                trained[c.id] = min(trained[c.id] + float(g), finals[c.id])
            if r == R - 1:
                break
            obs_alive = [_observed(c, trained[c.id]) for c in alive]
            future = sum(shares[r + 1 :])
            targets = np.array([min(trained[c.id] + future, finals[c.id]) for c in alive])
            if strat.ranking == "observed":
                score = _score_observed(obs_alive)
            elif strat.ranking == "oracle":
                score = np.array([c.best_loss_at(t)[0] for c, t in zip(alive, targets)])
                score = np.where(np.isnan(score), np.inf, score)
            elif strat.ranking == "forecast":
                score, nf = _score_forecast(strat, alive, obs_alive, targets)
                n_fallbacks += nf
            else:
                alive_ids = {c.id for c in alive}
                dead = [_observed(c, trained[c.id]) for c in cands if c.id not in alive_ids]
                score, nf = _score_frontier(strat, alive, obs_alive, targets, dead)
                n_fallbacks += nf
            # A curve at its last point needs no more compute and its result stands whatever happens: it
            # leaves the race and its slot goes to the best unfinished curve.
            done = np.array([trained[c.id] >= finals[c.id] for c in alive])
            order = np.lexsort((rng.random(len(alive)), score, done))
            alive = [alive[i] for i in order[: sizes[r + 1]]]

    observed = [_observed(c, trained[c.id]) for c in cands]
    losses = [o.min_loss for o in observed if len(o)]
    return AllocationResult(
        strategy=strat.name,
        trained=trained,
        observed=observed,
        spent=float(sum(trained.values())),
        best_loss=float(min(losses)) if losses else float("nan"),
        n_fallbacks=n_fallbacks,
        survivors=history,
    )
