"""Budget-allocation strategies replayed on recorded curves (SPEC §1.2).

Fixed-budget successive halving over a candidate set M0 with total budget B and reduction factor eta
(Schram et al., ICML 2026): R = ceil(log_eta |M0|) rounds; in round r every survivor is trained further by
C_r = B / (|M_r| * R); then the best ceil(|M_r| / eta) survive. The strategies differ only in how survivors are
ranked:

* ``UA``: uniform allocation, B / |M0| to every candidate, no pruning.
* ``SH``: lowest observed loss.
* ``SH+PL`` / ``SH+GP`` / ``SH+GPM``: lowest loss forecast at the compute the curve would have at the end of the
  schedule if it survived (power law, one GP per curve, one multi-curve GP).
* ``SH+FA``: frontier-aware, the rule :class:`sh_scaling.SurrogateHalvingPruner` ships (``objective="frontier"``,
  its default optimism and warm-up). A survivor is ranked by how far below the frontier of the others (their
  observed points, and the forecast paths of the other survivors) its own optimistic forecast path goes,
  anywhere in the compute range; a curve that would lower the frontier somewhere ranks first.
* ``SH+MPL`` / ``SH+FA-MPL``: the forecast and frontier-aware rankings with the multi-power law under each
  curve's own learning-rate schedule (``meta["schedule"]``, ``meta["max_compute"]``), so that a run still at a
  high learning rate is forecast to drop when its decay comes.
* ``SH+PL-SE`` / ``SH+FA-SE`` / ``SH+MPL-SE``: the same rankings with each survivor's forecast widened by the
  error measured at its stage of its run (``Strategy.margin``), so that a survivor early in a long run is
  given the benefit of the doubt its forecast's error there calls for.
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

Bad input, and what happens:

* **Candidates with no evaluation yet** when a round ends (every candidate, where evaluations start after a
  warm-up longer than the first round's share): they have no loss to rank, so they rank after every candidate
  with one, and among themselves by the seeded tie-break (``rng``: at random, the same draw for every strategy
  of a candidate set); ``keep_unseen=True`` instead keeps those the remaining rounds can still evaluate, and a
  strategy's ``unseen`` rule (:class:`Strategy`) scores them from the evaluated candidates' scores. The
  round's record shows them: ``loss`` and ``forecast`` NaN, ``fallback`` true.
* **Candidates with too few points to forecast** (one or two evaluations): their forecast falls back to their
  observed loss (``fallback`` true in the round's record, which keeps that value as ``forecast``); a strategy's
  ``few`` rule (:class:`Strategy`) scores them from the other survivors' forecasts or observed drops instead,
  and the record then holds what the rule ranked them with (``ranked_by`` names the rule, e.g. ``"few:stage"``).
* **A budget that cannot evaluate any candidate**: where the most the round schedule gives one candidate
  (:func:`first_evaluation_reach`) is below the cheapest first evaluation of the set, nothing is ever observed:
  ``best_loss`` is NaN and every round is decided by the tie-break alone. :func:`allocate` returns that result
  (a replay of a real sweep with such a budget does the same); :func:`~sh_scaling.simulation.simulate` refuses
  a budget with which no candidate set of a size can be evaluated (``ValueError``) and counts the candidate
  sets that could not (``unevaluated`` in :func:`~sh_scaling.simulation.summarize`).
* **Curves with and without schedules** under a schedule-aware strategy: each curve is forecast under its own
  ``meta["schedule"]`` (:func:`stated_schedule`), one without a schedule at a constant learning rate (the
  multi-power law then is a power law in compute); ``RoundRecord.scheduled`` says which. A ``meta["schedule"]``
  that is not a schedule (a name such as ``"cosine"``) raises ``ValueError`` naming the curve before any round.

Rounds, shares, scores and the survivor rule all come from the decision core, :mod:`sh_scaling.halving`; this
module only reveals prefixes of recorded curves and asks the surrogate for forecasts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.halving import (
    DEFAULT_OPTIMISM,
    MARGIN_COVERAGE,
    STAGE_MARGINS,
    WARMUP_FRACTION,
    at_stage,
    fit_window,
    forecast_scores,
    frontier_scores,
    n_rounds,
    observed_scores,
    round_shares,
    replanned_shares,
    round_sizes,
    select_survivors,
    trained_until,
    water_fill,
)
from sh_scaling.schedules import Schedule, schedule_from_dict
from sh_scaling.surrogates import MIN_POINTS, Forecast, forecast

__all__ = [
    "Strategy", "STRATEGIES", "SCHEDULE_AWARE", "AllocationResult", "RoundInputs", "RoundRecord", "allocate", "n_rounds",
    "get_strategy", "round_inputs", "round_scores", "stated_schedule", "first_evaluation_reach", "unseen_scores",
    "UNSEEN_RULES", "FEW_RULES", "parse_strategy", "SPEC_SETTINGS", "RANKED_BY", "RoundRanking", "round_ranking",
]

_RANKINGS = ("none", "observed", "forecast", "frontier", "oracle")
#: ``Strategy.unseen`` values: how a round ranks a survivor with no evaluation yet (see :class:`Strategy`).
UNSEEN_RULES = ("last", "median", "prior", "reach")
#: ``Strategy.few`` values: how a round ranks a survivor with too few points to forecast (see :class:`Strategy`).
FEW_RULES = ("last", "median", "slope", "stage")

#: ``Strategy.surrogate`` value for the multi-power law under each curve's own schedule and planned compute
#: (read from the curve's metadata), a different surrogate per curve.
SCHEDULE_AWARE = "multipower-schedule"


@dataclass(frozen=True)
class Strategy:
    """How survivors are ranked.

    Attributes:
        name: Label in tables and plots.
        ranking: ``"none"`` (UA), ``"observed"``, ``"forecast"``, ``"frontier"`` or ``"oracle"``.
        surrogate: A name or prototype for :func:`sh_scaling.surrogates.make_surrogate`.
        optimism: Rank each survivor by the lower ``optimism`` quantile of its forecast (in (0, 0.5]) instead of
            the mean (``None``): a long extrapolation is given the benefit of the doubt. Same meaning as the
            pruner's ``optimism``.
        warmup_fraction: Points before this fraction of each curve's planned compute are left out of
            surrogate fits (the last point is always kept). Same meaning as the pruner's ``warmup_fraction``.
        margin: Widen each survivor's forecast by the error expected at its stage (``None``: no widening): the
            coverage (a key of :data:`sh_scaling.halving.STAGE_MARGINS`, e.g. 0.9) of the stage error model of
            :func:`sh_scaling.halving.stage_margin`. A survivor whose run is at stage ``s`` (its trained compute
            over its planned compute) is ranked by the lower of its optimistic forecast and
            ``forecast * exp(-m(s))``, ``m`` the development table's margin for its kind of forecast (power law,
            or the multi-power law under a schedule). A survivor early in a long run, whose forecast is the least
            certain, is then neither trusted nor dropped on that forecast alone.
        unseen: How a survivor with no evaluation yet when its round ends is scored (it has no loss to rank).
            ``"last"`` (default): after every survivor with a score, among themselves by the seeded tie-break.
            ``"median"``: the median score of the survivors with one, as a typical candidate (the tie-break
            orders it against any with that exact score). ``"prior"``: the score the survivors with one predict
            for its planned compute (its curve's ``final_compute``): the straight line through their scores
            against the log of their planned compute, least squares (the median where they have fewer than two
            planned computes). ``"reach"``: the median, for a survivor whose target (the compute it reaches if
            it survives) is at least the stage of its run at which the evaluated survivors had their first
            evaluation (the median of those stages); last otherwise, since the rounds left would most likely
            end before it is ever evaluated. Every candidate gets the same compute in a round, so a candidate
            not evaluated yet is one whose first evaluation comes late: in a scaling ladder a long run, a large
            model, often the best at the end (the schedule curves of Luo et al. have no evaluation during a
            warm-up of 9 % of the run, routing runs none before 4 %). On the five development sets (20
            candidate sets per setting, ``benchmarks/bench_allocation_rounds.py``), in the 21 settings where the
            oracle gains at least 0.5 %, ``"reach"`` took ``SH+FA`` from half of the oracle's gain in 1 to 11
            (median share 0.05 to 0.50) and ``SH+MPL`` from 8 to 14, with no setting's interval below 0;
            ``keep_unseen`` reached 8 and 12, with two settings below 0 each (``SH+FA`` ladder 5 / 10 %: -2.1 %),
            and ``"median"`` 8 for ``SH+FA``, with two below 0 (ladder 5 / 3 and 5 / 10 %): kept at every cut, the
            largest models of a ladder at a small budget are never trained far enough to win. ``"prior"`` did
            worse than ``"median"`` (10 candidate sets per setting). Read by :func:`round_scores`, so the simulator
            and :class:`sh_scaling.BudgetedHalving` decide alike.
        few: How a survivor evaluated, but fewer times than the surrogates need
            (:data:`~sh_scaling.surrogates.MIN_POINTS`: one or two points), is scored. ``"last"`` (default): its
            observed loss stands in for the forecast, which ranks it as if it would not improve. ``"median"``:
            the median score of the survivors with a usable forecast. ``"slope"``: its observed loss carried to
            its target along the median slope, in log loss against log compute, of the others' forecasts from
            their last point to their targets (with their median relative spread), then ranked like theirs. ``"stage"``: its observed loss times the median
            ratio by which the other survivors' observed losses fell from its stage (the fraction of its planned
            compute at its last point) to its target's stage, among those observed at both; ``"slope"`` where
            none was. A survivor with enough points whose forecast fell back for another reason (points before
            ``warmup_fraction`` left out of its fit, a failed fit) keeps its observed loss.
            On the five development sets (20 candidate sets per setting, ``benchmarks/bench_allocation_rounds.py``)
            ``"stage"`` took ``SH+FA``'s wrong drops of candidates with 1-2 points from 142 to 84 on routing (89
            to 58 on the CPU ladder), but not its gain: half of the oracle's in 10 of the 21 settings against 11
            with ``"last"`` (routing 10 / 10 %: share 0.47 against 0.50), one setting's interval below 0
            (synthetic 20 / 3 %, -0.53 %); ``"slope"`` 10 of 21, none below 0; ``"median"`` 8 of 21, four below 0.
            Chosen leave-one-set-out by mean RI over the other sets, ``"last"`` wins for three left-out sets and
            ``"stage"`` for two, so the named strategies keep ``"last"``. Read by :func:`round_scores`; only for
            rankings by a forecast.
    """

    name: str
    ranking: str
    surrogate: Any = None
    optimism: float | None = None
    warmup_fraction: float = 0.0
    margin: float | None = None
    unseen: str = "last"
    few: str = "last"

    def __post_init__(self) -> None:
        if self.ranking not in _RANKINGS:
            raise ValueError(f"Strategy {self.name!r}: unknown ranking {self.ranking!r}; choose one of {_RANKINGS}")
        if self.ranking in ("forecast", "frontier") and self.surrogate is None:
            raise ValueError(f"Strategy {self.name!r}: ranking {self.ranking!r} needs a surrogate")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"Strategy {self.name!r}: warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.optimism is not None and not 0 < self.optimism <= 0.5:
            raise ValueError(f"Strategy {self.name!r}: optimism must be None or in (0, 0.5], got {self.optimism!r}")
        if self.margin is not None:
            if self.ranking not in ("forecast", "frontier"):
                raise ValueError(f"Strategy {self.name!r}: margin widens forecasts; ranking {self.ranking!r} has none")
            if self.margin not in STAGE_MARGINS:
                raise ValueError(f"Strategy {self.name!r}: margin={self.margin!r}: choose a measured coverage, one of "
                                 f"{sorted(STAGE_MARGINS)}")
        if self.unseen not in UNSEEN_RULES:
            raise ValueError(f"Strategy {self.name!r}: unknown unseen rule {self.unseen!r}; choose one of {UNSEEN_RULES}")
        if self.unseen != "last" and self.ranking in ("none", "oracle"):
            raise ValueError(f"Strategy {self.name!r}: unseen={self.unseen!r} scores candidates not evaluated yet; "
                             f"ranking {self.ranking!r} scores none")
        if self.few not in FEW_RULES:
            raise ValueError(f"Strategy {self.name!r}: unknown few rule {self.few!r}; choose one of {FEW_RULES}")
        if self.few != "last" and self.ranking not in ("forecast", "frontier"):
            raise ValueError(f"Strategy {self.name!r}: few={self.few!r} stands in for forecasts; ranking "
                             f"{self.ranking!r} has none")


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
        # The pruner's default rule (objective="frontier", its optimism and warm-up), in fixed-budget form.
        # The driver's default: unseen="reach", chosen leave-one-set-out on the five development sets (see
        # Strategy's ``unseen``); the other named strategies keep "last".
        Strategy("SH+FA", "frontier", "powerlaw", DEFAULT_OPTIMISM, WARMUP_FRACTION, unseen="reach"),
        Strategy("SH+FA-GP", "frontier", "gp", DEFAULT_OPTIMISM, WARMUP_FRACTION),
        # Schedule-aware: each curve's learning-rate schedule from its metadata (Luo et al., ICLR 2025).
        Strategy("SH+MPL", "forecast", SCHEDULE_AWARE, warmup_fraction=WARMUP_FRACTION),
        Strategy("SH+FA-MPL", "frontier", SCHEDULE_AWARE, DEFAULT_OPTIMISM, WARMUP_FRACTION),
        # Forecasts widened by the error measured at each survivor's stage of its run.
        Strategy("SH+PL-SE", "forecast", "powerlaw", warmup_fraction=WARMUP_FRACTION, margin=MARGIN_COVERAGE),
        Strategy("SH+FA-SE", "frontier", "powerlaw", DEFAULT_OPTIMISM, WARMUP_FRACTION, margin=MARGIN_COVERAGE),
        Strategy("SH+MPL-SE", "forecast", SCHEDULE_AWARE, warmup_fraction=WARMUP_FRACTION, margin=MARGIN_COVERAGE),
        Strategy("SH+oracle", "oracle"),
    )
}


#: The settings a strategy spec may change (:func:`parse_strategy`), with their allowed values.
SPEC_SETTINGS: dict[str, tuple[str, ...]] = {"unseen": UNSEEN_RULES, "few": FEW_RULES}


def parse_strategy(spec: str) -> Strategy:
    """A named strategy with settings changed, written ``NAME[:KEY=VALUE...]`` (keys ``unseen`` and ``few``, see
    :class:`Strategy`); the strategy is named by the spec, so that tables tell it from ``NAME``.

    Example:
        >>> s = parse_strategy("SH+FA:unseen=last:few=stage")
        >>> s.name, s.unseen, s.few
        ('SH+FA:unseen=last:few=stage', 'last', 'stage')

    Raises:
        ValueError: an unknown name, key or value, a key given twice, or a setting the strategy's ranking has no
            use for, in one line naming the part that is wrong.
    """
    name, *parts = spec.strip().split(":")
    try:
        strat = get_strategy(name)
    except ValueError as exc:
        if not parts:
            raise
        raise ValueError(f"strategy {spec.strip()!r}: {exc}") from None
    changes: dict[str, str] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or key not in SPEC_SETTINGS:
            raise ValueError(f"strategy {spec!r}: {part!r} is not a setting; write KEY=VALUE with KEY one of "
                             f"{sorted(SPEC_SETTINGS)}")
        if key in changes:
            raise ValueError(f"strategy {spec!r}: {key} given twice")
        if value not in SPEC_SETTINGS[key]:
            raise ValueError(f"strategy {spec!r}: {key}={value!r}; choose one of {list(SPEC_SETTINGS[key])}")
        changes[key] = value
    if not changes:
        return strat
    try:
        return dataclasses.replace(strat, name=spec.strip(), unseen=changes.get("unseen", strat.unseen),
                                   few=changes.get("few", strat.few))
    except ValueError as exc:
        raise ValueError(str(exc).replace(f"Strategy {spec.strip()!r}", f"strategy {spec.strip()!r}")) from None


def get_strategy(name: str | Strategy) -> Strategy:
    if isinstance(name, Strategy):
        return name
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}") from None


@dataclass
class RoundRecord:
    """One round of fixed-budget halving as the strategy saw it (arrays: one entry per survivor of the round,
    in the order of ``ids``).

    Attributes:
        round: The round's index (0 is the first).
        ids: The survivors the round trained.
        offered: Compute the round had to give: its share for each survivor (plus, with ``carry_over``, what
            earlier rounds could not spend).
        given: Compute it gave; less than ``offered`` where survivors reached their last point.
        trained: Compute each survivor was trained to when the round ended.
        target: Compute each would reach if it survived every remaining round (the forecasts' horizon).
        loss: Each survivor's lowest observed loss (NaN before its first evaluation).
        forecast: What the ranking believed each survivor reaches at ``target``, the value it ranked with
            (see ``ranked_by``): the surrogate's mean, or for a survivor with too few points to forecast what the
            strategy's ``few`` rule made (``SH``: the observed loss; ``SH+oracle``: the loss the curve really
            reaches there; NaN where nothing was observed).
        std: The forecast's standard deviation (0 without a surrogate).
        fallback: Where the surrogate gave no usable forecast (``ranked_by`` says what stood in for it).
        score: The ranking's scores (lower is better), ``None`` for the last round, which decides nothing.
        kept: Who survived the round's decision (all ``True`` in the last round).
        finished: Who had reached its last point (it leaves the race; its result stands).
        scheduled: For a schedule-aware strategy, who was forecast under a stated learning-rate schedule (the
            others at a constant rate); ``None`` for other strategies and for the last round.
        ranked_by: What each survivor's score was made from (:data:`RANKED_BY`): ``"forecast"`` (``forecast``
            is the surrogate's), ``"observed"`` (its observed loss: ``SH``, or a forecast that fell back for
            another reason than too few points), ``"oracle"``, ``"few:<rule>"`` for a survivor with too few
            points to forecast (``forecast`` is what the strategy's ``few`` rule made: its observed loss for
            ``"last"``, the rule's forecast for ``"slope"`` and ``"stage"``, NaN for ``"median"``, which scores
            it with the others' median score), ``"unseen:<rule>"`` for one not evaluated yet (``"unseen:last"``:
            ranked after every survivor with a score; ``"unseen:keep"``: kept ahead by ``keep_unseen``; the
            strategy's ``unseen`` rule otherwise). ``None`` for the last round, which ranks nobody.
    """

    round: int
    ids: list[str]
    offered: float
    given: float
    trained: np.ndarray
    target: np.ndarray
    loss: np.ndarray
    forecast: np.ndarray
    std: np.ndarray
    fallback: np.ndarray
    score: np.ndarray | None
    kept: np.ndarray
    finished: np.ndarray
    scheduled: np.ndarray | None = None
    ranked_by: list[str] | None = None


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
        budget: The budget the strategy was given (``budget - spent`` was left unspent).
        rounds: Each round's decision (:class:`RoundRecord`); empty for ``UA``, which has no rounds.
    """

    strategy: str
    trained: dict[str, float]
    observed: list[Curve]
    spent: float
    best_loss: float
    n_fallbacks: int = 0
    survivors: list[list[str]] = field(default_factory=list)
    budget: float = float("nan")
    rounds: list[RoundRecord] = field(default_factory=list)


@dataclass
class RoundInputs:
    """What the decision core sees at the end of a fixed-budget round (one entry per survivor).

    ``start``/``loss`` are the survivor's last observed compute and its lowest loss so far (NaN before its
    first evaluation), ``target`` the compute it would reach if it survived every remaining round, ``mean``/
    ``std``/``fallback`` the surrogate's forecast there, and ``anchors`` every candidate's observed points as
    ``(compute, loss, owner)`` with ``owner`` the survivor's index or -1 for eliminated candidates. ``stage`` is
    the fraction of its planned compute (its curve's ``final_compute``, in ``planned``) each survivor has been
    trained to. ``scheduled`` says, for a schedule-aware strategy, which survivors were forecast under a stated schedule.
    """

    start: np.ndarray
    loss: np.ndarray
    target: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    fallback: np.ndarray
    anchors: tuple[np.ndarray, np.ndarray, np.ndarray]
    stage: np.ndarray | None = None
    scheduled: np.ndarray | None = None
    planned: np.ndarray | None = None


def round_inputs(
    strategy: Strategy,
    alive: Sequence[Curve],
    trained: dict[str, float],
    targets: np.ndarray,
    dead: Sequence[Curve],
) -> RoundInputs:
    """Observe every survivor up to its trained compute and forecast it at its target."""
    obs = [c.observed_until(trained[c.id]) for c in alive]
    n = len(alive)
    start = np.array([o.final_compute if len(o) else np.nan for o in obs])
    loss = np.array([o.min_loss if len(o) else np.nan for o in obs])
    mean, std, fallback = loss.copy(), np.zeros(n), np.ones(n, bool)
    scheduled = None
    if strategy.ranking in ("forecast", "frontier"):
        points = []
        for o, c in zip(obs, alive):
            keep = fit_window(o.compute, c.final_compute, strategy.warmup_fraction)
            points.append((o.compute[keep], o.loss[keep]))
        if strategy.surrogate == SCHEDULE_AWARE:
            fc = _forecast_under_schedules(alive, points, targets)
            scheduled = np.array([stated_schedule(c) is not None for c in alive], bool)
        else:
            fc = forecast(strategy.surrogate, points, targets)
        seen = np.array([len(o) > 0 for o in obs])
        mean = np.where(seen, fc.mean, np.nan)
        std = np.where(seen, fc.std, 0.0)
        fallback = np.where(seen, fc.fallback, True)
    owners = [np.full(len(o), i) for i, o in enumerate(obs)]
    dead_obs = [c.observed_until(trained[c.id]) for c in dead]
    owners += [np.full(len(o), -1) for o in dead_obs]
    every = obs + dead_obs
    anchors = (
        np.concatenate([o.compute for o in every] or [np.empty(0)]),
        np.concatenate([o.loss for o in every] or [np.empty(0)]),
        np.concatenate(owners or [np.empty(0, int)]).astype(int),
    )
    planned = np.array([c.final_compute for c in alive], float)
    stage = np.array([trained[c.id] / p if p > 0 else np.nan for c, p in zip(alive, planned)])
    return RoundInputs(start, loss, np.asarray(targets, float), mean, std, fallback, anchors, stage, scheduled,
                       planned)


def _forecast_under_schedules(
    curves: Sequence[Curve], points: list[tuple[np.ndarray, np.ndarray]], targets: np.ndarray
) -> Forecast:
    """Each curve forecast by the multi-power law under its own schedule and planned compute (its metadata's
    ``schedule`` and ``max_compute``, as :func:`sh_scaling.curves.load_multipowerlaw` records them; a curve
    without a schedule is forecast at a constant rate, a power law in compute)."""
    from sh_scaling.surrogates import MultiPowerLawSurrogate  # scikit-learn, imported when first needed

    parts = []
    for c, p, t in zip(curves, points, targets):
        proto = MultiPowerLawSurrogate(schedule=stated_schedule(c),
                                       max_compute=float(c.meta.get("max_compute", c.final_compute)))
        parts.append(forecast(proto, [p], [t]))
    return Forecast(
        np.concatenate([f.mean for f in parts]) if parts else np.empty(0),
        np.concatenate([f.std for f in parts]) if parts else np.empty(0),
        np.concatenate([f.fallback for f in parts]) if parts else np.empty(0, bool),
        [r for f in parts for r in f.reason],
    )


def stated_schedule(curve: Curve) -> Schedule | None:
    """The learning-rate schedule a curve states in ``meta["schedule"]``, ``None`` where it states none.

    Accepts a :class:`~sh_scaling.schedules.Schedule` (what every loader and generator of
    :mod:`sh_scaling.curves` stores) or its ``to_dict()`` mapping; ``None`` or no key means no schedule.

    Raises:
        ValueError: anything else (a name such as ``"cosine"``, a number), naming the curve: forecasting it as if
            no schedule were known would be a silent fallback.

    Example:
        >>> from sh_scaling.curves import generate_synthetic
        >>> stated_schedule(generate_synthetic(1)[0]).kind
        'cosine'
    """
    value = curve.meta.get("schedule")
    if value is None or isinstance(value, Schedule):
        return value
    if isinstance(value, Mapping):
        try:
            return schedule_from_dict(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"curve {curve.id!r}: meta['schedule'] is not a schedule: {exc}") from None
    raise ValueError(
        f"curve {curve.id!r}: meta['schedule']={value!r} is not a learning-rate schedule; state it as a "
        "sh_scaling.schedules.Schedule (or its to_dict()), or leave it out to forecast the curve without one")


def first_evaluation_reach(n_candidates: int, budget: float, reduction_factor: float = 2.0) -> float:
    """The most compute the fixed-budget schedule gives one candidate: all of its rounds' shares (a candidate
    that survives every round), ``B / n`` for uniform allocation being less. A candidate whose first evaluation
    lies beyond it is never evaluated by any strategy without ``carry_over``.

    Example:
        >>> round(first_evaluation_reach(4, 12.0), 6)   # rounds of 4 and 2: shares 1.5 and 3
        4.5
    """
    return float(sum(round_shares(budget, round_sizes(n_candidates, reduction_factor))))


def round_scores(strategy: Strategy, inputs: RoundInputs) -> np.ndarray:
    """The core's scores for a fixed-budget round: every survivor is at risk (decided at once); survivors with
    too few points to forecast are scored by ``strategy.few``, those with no evaluation yet by
    ``strategy.unseen`` (:func:`unseen_scores`). The scores of :func:`round_ranking`."""
    return round_ranking(strategy, inputs).score


@dataclass
class RoundRanking:
    """What a fixed-budget round ranked its survivors by (:func:`round_ranking`; one entry per survivor).

    Attributes:
        score: The scores (lower is better), as :func:`round_scores` returns them.
        inputs: The round's inputs as ranked: ``mean``/``std`` hold the forecasts the ranking used, those of a
            ``few`` rule standing in for the surrogate's (``fallback`` still says where the surrogate gave none).
        ranked_by: What each survivor was ranked by (see :data:`RANKED_BY`): ``"forecast"`` (the surrogate's
            forecast), ``"observed"`` (its observed loss: the ranking ``SH``, or a surrogate that gave no usable
            forecast for another reason than too few points), ``"few:<rule>"`` (too few points to forecast, and
            the rule that scored it: ``"few:last"`` its observed loss, ``"few:slope"`` or ``"few:stage"`` the
            forecast that rule made, ``"few:median"`` the median of the others' scores, no forecast) or
            ``"unseen:<rule>"`` (no evaluation yet: ``"unseen:last"`` ranked after every survivor with a score,
            ``"unseen:median"``, ``"unseen:prior"``, ``"unseen:reach"`` scored from the others' scores).
    """

    score: np.ndarray
    inputs: RoundInputs
    ranked_by: list[str]


#: What a round record's ``ranked_by`` names (:class:`RoundRanking`, :class:`RoundRecord`): the source of each
#: survivor's score.
RANKED_BY = ("forecast", "observed", "oracle", *(f"few:{r}" for r in FEW_RULES),
             *(f"unseen:{r}" for r in UNSEEN_RULES), "unseen:keep")


def round_ranking(strategy: Strategy, inputs: RoundInputs) -> RoundRanking:
    """The round's scores (:func:`round_scores`), the forecasts they were made from, and what each survivor was
    ranked by: its forecast, its observed loss, a ``few`` rule or an ``unseen`` rule (:class:`RoundRanking`).

    Example:
        >>> import numpy as np
        >>> inputs = RoundInputs(start=np.array([1.0, 1.0]), loss=np.array([2.0, 4.0]), target=np.array([10.0, 100.0]),
        ...                      mean=np.array([1.0, 4.0]), std=np.zeros(2), fallback=np.array([False, True]),
        ...                      anchors=(np.array([0.5, 0.8, 1.0, 1.0]), np.array([3.0, 2.5, 2.0, 4.0]),
        ...                               np.array([0, 0, 0, 1])))
        >>> ranking = round_ranking(Strategy("x", "forecast", "powerlaw", few="slope"), inputs)
        >>> ranking.ranked_by, float(ranking.inputs.mean[1])   # halves per decade, two decades
        (['forecast', 'few:slope'], 1.0)
    """
    unseen = np.isnan(inputs.start)
    if strategy.ranking in ("forecast", "frontier"):
        ranked_by = np.where(np.asarray(inputs.fallback, bool), "observed", "forecast").astype(object)
    else:
        ranked_by = np.full(inputs.start.size, "observed", dtype=object)
    few = _too_few_points(inputs)
    if strategy.ranking in ("forecast", "frontier"):
        ranked_by[few] = "few:last"
    if strategy.few == "slope":
        inputs, by = _few_by_slope(inputs, few)
        ranked_by[by] = "few:slope"
    elif strategy.few == "stage":
        inputs, by_stage, by_slope = _few_by_stage(inputs, few)
        ranked_by[by_slope] = "few:slope"
        ranked_by[by_stage] = "few:stage"
    score = _ranking_scores(strategy, inputs)
    usable = ~unseen & ~np.asarray(inputs.fallback, bool) & np.isfinite(score)
    if strategy.few == "median" and few.any() and usable.any():
        score = np.where(few, float(np.median(score[usable])), score)
        inputs = dataclasses.replace(inputs, mean=np.where(few, np.nan, inputs.mean),
                                     std=np.where(few, np.nan, inputs.std))
        ranked_by[few] = "few:median"
    ranked_by[unseen] = "unseen:last"
    if strategy.unseen != "last":
        scored = unseen
        if strategy.unseen == "reach":
            scored = unseen & _reaches_first_evaluation(inputs)
            rule = "median"
        else:
            rule = strategy.unseen
        if (~scored & np.isfinite(score)).any():  # the rule scores them from the others' scores
            ranked_by[scored] = f"unseen:{strategy.unseen}"
        score = unseen_scores(score, scored, inputs.planned, rule)
    return RoundRanking(score, inputs, [str(b) for b in ranked_by])


def _too_few_points(inputs: RoundInputs) -> np.ndarray:
    """Survivors evaluated, but fewer times than the surrogates need (:data:`~sh_scaling.surrogates.MIN_POINTS`),
    whose forecast therefore fell back to their observed loss."""
    owner = np.asarray(inputs.anchors[2])
    points = np.bincount(owner[owner >= 0], minlength=inputs.start.size)[: inputs.start.size]
    return ~np.isnan(inputs.start) & np.asarray(inputs.fallback, bool) & (points < MIN_POINTS)


def few_by_slope(inputs: RoundInputs, few: np.ndarray) -> RoundInputs:
    """``inputs`` with the forecasts of the ``few`` survivors (points, but too few to forecast) replaced: each
    one's observed loss carried from its last point to its target along the median slope (log loss against log
    compute) of the forecasts of the survivors that have one, from their last points to their targets, with
    their median relative standard deviation; unchanged where no survivor has a forecast to take a slope from.

    Example:
        >>> import numpy as np
        >>> inputs = RoundInputs(start=np.array([1.0, 1.0]), loss=np.array([2.0, 4.0]), target=np.array([10.0, 100.0]),
        ...                      mean=np.array([1.0, 4.0]), std=np.zeros(2), fallback=np.array([False, True]),
        ...                      anchors=(np.empty(0), np.empty(0), np.empty(0, int)))
        >>> float(few_by_slope(inputs, np.array([False, True])).mean[1])   # halves per decade, two decades
        1.0
    """
    return _few_by_slope(inputs, few)[0]


def _few_by_slope(inputs: RoundInputs, few: np.ndarray) -> tuple[RoundInputs, np.ndarray]:
    """:func:`few_by_slope`, and which survivors it gave a forecast."""
    few = np.asarray(few, bool)
    start, loss, target = (np.asarray(a, dtype=float) for a in (inputs.start, inputs.loss, inputs.target))
    mean, std = np.array(inputs.mean, dtype=float), np.array(inputs.std, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        span = np.log(target) - np.log(start)
        slope = (np.log(mean) - np.log(loss)) / span
        spread = std / mean
    known = ~np.asarray(inputs.fallback, bool) & ~np.isnan(start) & np.isfinite(slope) & (span > 0)
    if not few.any() or not known.any():
        return inputs, np.zeros(few.size, bool)
    b = float(np.median(slope[known]))
    rel = float(np.median(np.nan_to_num(spread[known], nan=0.0)))
    ahead = np.nan_to_num(np.where(few, np.maximum(span, 0.0), 0.0))
    mean = np.where(few, loss * np.exp(min(b, 0.0) * ahead), mean)
    std = np.where(few, mean * max(rel, 0.0), std)
    return dataclasses.replace(inputs, mean=mean, std=std), few


def few_by_stage(inputs: RoundInputs, few: np.ndarray) -> RoundInputs:
    """``inputs`` with the forecasts of the ``few`` survivors replaced: each one's observed loss times the median
    ratio by which the other survivors' observed losses (their lowest at or before each stage) fell from its
    stage at its last point to its target's stage (stages: fractions of planned compute), with the spread of
    those ratios as its standard deviation; :func:`few_by_slope` for one that no other was observed at both.

    Example:
        >>> import numpy as np
        >>> inputs = RoundInputs(start=np.array([10.0, 10.0]), loss=np.array([2.4, 4.0]),
        ...                      target=np.array([80.0, 40.0]), mean=np.array([1.5, 4.0]), std=np.zeros(2),
        ...                      fallback=np.array([False, True]),
        ...                      anchors=(np.array([2.0, 10.0]), np.array([3.0, 2.4]), np.array([0, 0])),
        ...                      planned=np.array([100.0, 400.0]))
        >>> round(float(few_by_stage(inputs, np.array([False, True])).mean[1]), 6)  # stage 0.025 to 0.1: 3 to 2.4
        3.2
    """
    return _few_by_stage(inputs, few)[0]


def _few_by_stage(inputs: RoundInputs, few: np.ndarray) -> tuple[RoundInputs, np.ndarray, np.ndarray]:
    """:func:`few_by_stage`, and which survivors it gave a forecast from the others' stages, and which from the
    slope."""
    few = np.asarray(few, bool)
    by_slope_inputs, by_slope = _few_by_slope(inputs, few)
    by_stage = np.zeros(few.size, bool)
    if inputs.planned is None or not few.any():
        return by_slope_inputs, by_stage, by_slope
    c, l, owner = (np.asarray(a) for a in inputs.anchors)
    planned = np.asarray(inputs.planned, dtype=float)
    others = np.flatnonzero(~few & ~np.isnan(inputs.start))
    mean, std = np.array(by_slope_inputs.mean, dtype=float), np.array(by_slope_inputs.std, dtype=float)
    for i in np.flatnonzero(few):
        lo, hi = inputs.start[i] / planned[i], inputs.target[i] / planned[i]
        ratios = []
        for j in others:
            stage, loss = c[owner == j] / planned[j], l[owner == j]
            if stage.size and stage.min() <= lo and stage.max() >= hi:
                ratios.append(loss[stage <= hi].min() / loss[stage <= lo].min())
        if ratios:
            mean[i] = inputs.loss[i] * float(np.median(ratios))
            std[i] = inputs.loss[i] * float(np.std(ratios))
            by_stage[i] = True
    return dataclasses.replace(inputs, mean=mean, std=std), by_stage, by_slope & ~by_stage


def _reaches_first_evaluation(inputs: RoundInputs) -> np.ndarray:
    """Whether each survivor's target reaches the stage (fraction of its planned compute) at which the evaluated
    survivors had their first evaluation (their median); all ``False`` where none has one. A trainer evaluates
    at a fixed fraction of each run (after its warm-up) or every so many steps, so the others' first evaluations
    say where an unseen candidate's would be, in both the simulator and the budgeted driver, neither of which
    knows it."""
    c, _, owner = inputs.anchors
    seen = np.flatnonzero(~np.isnan(inputs.start))
    if inputs.planned is None or seen.size == 0:
        return np.zeros(inputs.start.size, bool)
    first = np.array([c[owner == i].min() / inputs.planned[i] for i in seen])
    return inputs.target >= float(np.median(first)) * inputs.planned


def unseen_scores(score: np.ndarray, unseen: np.ndarray, planned: np.ndarray | None, rule: str) -> np.ndarray:
    """Scores with those of the ``unseen`` candidates (no evaluation yet) replaced by ``rule``'s prior from the
    others' finite scores (see :class:`Strategy`, ``unseen``); unchanged where no other has a finite score.

    Example:
        >>> s = unseen_scores(np.array([3.0, 2.0, np.inf]), np.array([False, False, True]),
        ...                   np.array([10.0, 100.0, 1000.0]), "prior")
        >>> [round(float(x), 6) for x in s]   # the line through (1, 3) and (2, 2) in log10 planned compute
        [3.0, 2.0, 1.0]
    """
    if rule not in UNSEEN_RULES:
        raise ValueError(f"unknown unseen rule {rule!r}; choose one of {UNSEEN_RULES}")
    score = np.array(score, dtype=float)
    unseen = np.asarray(unseen, bool)
    known = ~unseen & np.isfinite(score)
    if rule == "last" or not unseen.any() or not known.any():
        return score
    prior = np.full(int(unseen.sum()), float(np.median(score[known])))
    if rule == "prior" and planned is not None:
        x = np.log(np.asarray(planned, dtype=float))
        if np.isfinite(x).all() and np.unique(x[known]).size >= 2:
            slope, intercept = np.polyfit(x[known], score[known], 1)
            prior = intercept + slope * x[unseen]
    score[unseen] = prior
    return score


def _ranking_scores(strategy: Strategy, inputs: RoundInputs) -> np.ndarray:
    """The ranking's own scores; ``inf`` for survivors with no evaluation yet."""
    seen = ~np.isnan(inputs.start)
    at_risk = np.ones(inputs.start.size, bool)
    if strategy.ranking == "observed":
        return observed_scores(inputs.loss)
    margin = _stage_margins(strategy, inputs)
    if strategy.ranking == "forecast":
        return forecast_scores(inputs.mean, inputs.std, optimism=strategy.optimism, at_risk=at_risk, margin=margin)
    score = np.full(inputs.start.size, np.inf)
    if seen.any():
        idx = np.flatnonzero(seen)
        remap = np.full(inputs.start.size, -1)
        remap[idx] = np.arange(idx.size)
        c, l, owner = inputs.anchors
        owner = np.where(owner >= 0, remap[np.maximum(owner, 0)], -1)
        score[idx] = frontier_scores(
            inputs.start[idx], inputs.loss[idx], inputs.target[idx], inputs.mean[idx], inputs.std[idx],
            optimism=strategy.optimism, at_risk=at_risk[idx], anchors=(c, l, owner),
            margin=None if margin is None else margin[idx],
        )
    return score


def _stage_margins(strategy: Strategy, inputs: RoundInputs) -> np.ndarray | None:
    """The development table's margin (log loss) at each survivor's stage, for the strategy's kind of forecast;
    ``None`` for a strategy without ``margin``. A survivor with no stage known gets the earliest stage's."""
    if strategy.margin is None:
        return None
    kind = "multipower" if strategy.surrogate == SCHEDULE_AWARE else "own"
    stage = inputs.stage if inputs.stage is not None else np.full(inputs.start.size, np.nan)
    stage = np.where(np.isfinite(stage) & (stage > 0), stage, 0.0)
    return np.asarray(at_stage(STAGE_MARGINS[strategy.margin][kind], stage), dtype=float)


def allocate(
    candidates: CurveSet | list[Curve],
    budget: float,
    strategy: str | Strategy = "SH",
    *,
    reduction_factor: float = 2.0,
    carry_over: bool = False,
    keep_unseen: bool = False,
    replan: bool = False,
    rng: np.random.Generator | None = None,
) -> AllocationResult:
    """Replay one strategy on one candidate set (fixed-budget successive halving).

    Args:
        candidates: The candidate curves (their full recorded curves; only prefixes are revealed).
        budget: Total compute B.
        strategy: A name from :data:`STRATEGIES` or a :class:`Strategy`.
        reduction_factor: ``eta``: ``ceil(|M_r| / eta)`` survive each round.
        carry_over: Give compute a finished curve cannot use to the other survivors (see the module doc).
        keep_unseen: A candidate with no evaluation yet survives ahead of every ranked one if the remaining
            rounds would take it to its :data:`~sh_scaling.surrogates.MIN_POINTS`-th evaluation (then it can be
            ranked), and is dropped first otherwise; by default it ranks last like a curve that cannot be
            forecast. Where evaluations start late (the schedule curves of Luo et al. have none during their
            warm-up, 9 % of a 24k-step run) a small first round leaves the largest models, the best ones,
            unseen, and ranking them last drops them all at the first cut.
        replan: Leave no budget unspent while keeping each round's decision consistent with what survivors
            then get: each round is given its schedule's share of what the budget has left when it starts
            (:func:`~sh_scaling.halving.replanned_shares`: what earlier rounds did not spend, because survivors
            reached their planned end, is spread over the remaining rounds in the schedule's proportions), the
            targets of a decision are each survivor's compute plus the remaining rounds' replanned shares, and
            the last round, which no decision follows, splits what is left among its survivors (water-filling).
            Unlike ``carry_over`` a target never falls short of what the schedule then gives (it can only be
            passed, where a later survivor finishes early). Not with ``carry_over``. On the five development
            sets (10 candidate sets per setting) it left 3.2 % of the budget unspent on average with
            ``SH+FA`` and ``unseen="reach"`` (10 % without), and more compute means lower losses for every
            strategy; measured against plain ``SH`` with ``replan`` as well, ``SH+FA`` with ``unseen="reach"``
            reached half of the gain of the oracle with ``replan`` in 13 of 19 settings, but fell below 0 in 3
            (the CPU ladder with 20 candidates at 10 and 30 %, -8.2 and -4.7 %, where the oracle itself loses
            6.2 % at 10 %; the ladder at 5 / 10 %, -1.3 %).
        rng: Breaks ties (e.g. between curves with no observed point yet) at random.

    Returns:
        What happened (:class:`AllocationResult`). Candidates never evaluated rank after the evaluated ones (see
        the module doc, "Bad input"); ``best_loss`` is NaN where the budget evaluated no candidate.

    Raises:
        ValueError: an empty candidate set, a budget that is not a positive number, an unknown strategy,
            ``replan`` with ``carry_over``, or, for a schedule-aware strategy, a curve whose ``meta["schedule"]``
            is not a schedule.
    """
    strat = get_strategy(strategy)
    cands = list(candidates)
    if not cands:
        raise ValueError("allocate: empty candidate set")
    if not (np.isfinite(budget) and budget > 0):
        raise ValueError(f"allocate: budget must be a positive number, got {budget!r}")
    if replan and carry_over:
        raise ValueError("allocate: replan and carry_over are two ways to spend what finished curves leave; "
                         "choose one")
    if strat.surrogate == SCHEDULE_AWARE:
        for c in cands:
            stated_schedule(c)  # a schedule that is not one fails here, before any round
    rng = rng if rng is not None else np.random.default_rng(0)
    trained = {c.id: 0.0 for c in cands}
    finals = {c.id: c.final_compute for c in cands}
    n_fallbacks = 0
    history: list[list[str]] = []
    rounds: list[RoundRecord] = []

    if strat.ranking == "none":
        if carry_over:
            give = water_fill(budget, np.array([finals[c.id] for c in cands]))
        else:
            give = np.minimum(budget / len(cands), [finals[c.id] for c in cands])
        for c, g in zip(cands, give):
            trained[c.id] = float(g)
    else:
        sizes = round_sizes(len(cands), reduction_factor)
        shares = round_shares(budget, sizes)
        R = len(sizes)
        alive = cands
        carry = 0.0
        for r in range(R):
            history.append([c.id for c in alive])
            room = np.array([finals[c.id] - trained[c.id] for c in alive])
            if carry_over:
                pool = shares[r] * len(alive) + carry
                give = water_fill(pool, room)
                carry = pool - float(give.sum())
            elif replan:
                share = replanned_shares(shares, sizes, r, budget - math.fsum(trained.values()))[0]
                pool = share * len(alive)
                give = water_fill(pool, room) if r == R - 1 else np.minimum(share, room)
            else:
                pool = shares[r] * len(alive)
                give = np.minimum(shares[r], room)
            for c, g in zip(alive, give):
                trained[c.id] = trained_until(trained[c.id], float(g), finals[c.id])
            now = np.array([trained[c.id] for c in alive])
            finished = np.array([trained[c.id] >= finals[c.id] for c in alive])
            if r == R - 1:
                obs = [c.observed_until(trained[c.id]) for c in alive]
                loss = np.array([o.min_loss if len(o) else np.nan for o in obs])
                rounds.append(RoundRecord(r, history[-1], float(pool), float(give.sum()), now, now.copy(), loss,
                                          loss.copy(), np.zeros(len(alive)), np.ones(len(alive), bool), None,
                                          np.ones(len(alive), bool), finished))
                break
            if replan:
                future = sum(replanned_shares(shares, sizes, r + 1, budget - math.fsum(trained.values())))
            else:
                future = sum(shares[r + 1 :])
            targets = np.array([min(trained[c.id] + future, finals[c.id]) for c in alive])
            scheduled = None
            if strat.ranking == "oracle":
                score = np.array([c.best_loss_at(t)[0] for c, t in zip(alive, targets)])
                obs = [c.observed_until(trained[c.id]) for c in alive]
                loss = np.array([o.min_loss if len(o) else np.nan for o in obs])
                believed, std, fell_back = score.copy(), np.zeros(len(alive)), np.zeros(len(alive), bool)
                score = np.where(np.isnan(score), np.inf, score)
                ranked_by = ["oracle"] * len(alive)
            else:
                alive_ids = {c.id for c in alive}
                dead = [c for c in cands if c.id not in alive_ids]
                inputs = round_inputs(strat, alive, trained, targets, dead)
                if strat.ranking in ("forecast", "frontier"):
                    n_fallbacks += int(np.sum(inputs.fallback & ~np.isnan(inputs.start)))
                ranking = round_ranking(strat, inputs)
                score, ranked_by = ranking.score, ranking.ranked_by
                loss, believed, std, fell_back = inputs.loss, ranking.inputs.mean, ranking.inputs.std, inputs.fallback
                scheduled = inputs.scheduled
                if keep_unseen:
                    unseen = np.isnan(inputs.start)
                    seeable = np.array([t >= c.compute[min(MIN_POINTS, len(c)) - 1]
                                        for c, t in zip(alive, targets)])
                    score = np.where(unseen, np.where(seeable, -np.inf, np.inf), score)
                    ranked_by = [("unseen:keep" if see else "unseen:last") if u else b
                                 for u, see, b in zip(unseen, seeable, ranked_by)]
            keep = select_survivors(score, sizes[r + 1], finished=finished, tiebreak=rng.random(len(alive)))
            kept = np.zeros(len(alive), bool)
            kept[keep] = True
            rounds.append(RoundRecord(r, history[-1], float(pool), float(give.sum()), now, targets, loss,
                                      np.asarray(believed, float), np.asarray(std, float),
                                      np.asarray(fell_back, bool), np.asarray(score, float), kept, finished,
                                      scheduled, list(ranked_by)))
            alive = [alive[i] for i in keep]

    observed = [c.observed_until(trained[c.id]) for c in cands]
    losses = [o.min_loss for o in observed if len(o)]
    return AllocationResult(
        strategy=strat.name,
        trained=trained,
        observed=observed,
        spent=float(sum(trained.values())),
        best_loss=float(min(losses)) if losses else float("nan"),
        n_fallbacks=n_fallbacks,
        survivors=history,
        budget=float(budget),
        rounds=rounds,
    )
