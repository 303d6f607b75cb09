"""SurrogateHalvingPruner: asynchronous successive halving on compute, ranked by learning-curve forecasts."""

from __future__ import annotations

import functools
import inspect
import math
import threading
import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from sh_scaling.halving import (
    DECISION_START,
    DEFAULT_OPTIMISM,
    MARGIN_PRIOR_WEIGHT,
    PENDING_COMPETITORS,
    MIN_RUNG_FACTOR,
    N_STARTUP_TRIALS,
    RTOL,
    PRUNER_WARMUP_FRACTION,
    SCHEDULE_MIN_IMPROVEMENT,
    Decision,
    at_stage,
    calibrate_forecasts,
    decide,
    highest_rung,
    forecast_scores,
    frontier_scores,
    observed_gap,
    optimistic,
    rung_compute,
    rungs_crossed,
    stage_center_table,
    stage_margin,
)
from sh_scaling.keys import (
    CHECKED_RUNG_KEY,
    DECISION_KEY,
    FIRST_RUNG_KEY,
    FORECAST_KEY,
    MAX_COMPUTE_KEY,
    NO_DECISION_WARNING_KEY,
    PRUNED_KEY,
    SCHEDULE_KEY,
    SCHEDULE_NOTE_KEY,
    SCHEDULE_WARNING_KEY,
    rung_key,
)
from sh_scaling.pruning._competitors import Finished, FinishedCompetitors, RungSummary, competitors_at
from sh_scaling.pruning._compute import (
    HOW_TO_REPORT,
    clean_float,
    is_number,
    last_reported,
    loss_at,
    observed_curve,
)
from sh_scaling.pruning._margin_model import MarginModel, parse_margin
from sh_scaling.pruning._forecasting import family_forecast, fit_points, own_forecast, peer_curves, shares_curves
from sh_scaling.pruning._outcomes import (
    IMPLAUSIBLE_DROP_FACTOR,
    FinishedOutcomes,
    Outcome,
    SettledMisses,
    drop_bound,
    forecast_residuals,
    proven_misses,
    read_finished,
)
from sh_scaling.pruning._trial_schedules import schedule_dict, stated_schedule, trial_schedule
from sh_scaling.schedules import Schedule, schedule_from_dict
from sh_scaling.surrogates import MIN_POINTS, Forecast, MultiCurveSurrogate, Surrogate

__all__ = ["SurrogateHalvingPruner"]

_SURROGATE_NAMES = ("powerlaw", "exponential", "mmf", "gp", "gp-multi")
_OBJECTIVES = ("best_loss", "frontier")


class SurrogateHalvingPruner(BasePruner):
    """Asynchronous successive halving whose rungs are in compute, ranking trials by where they are going.

    Rungs sit on a fixed geometric grid in compute, ``r_k = rung_factor**k`` (in the unit compute is reported
    in; :func:`sh_scaling.halving.rung_compute`), the same in every process and for every arrival order. When
    a trial's reports first pass ``r_k`` (with ``decision_start * max_compute <= r_k < max_compute``, and at
    least three points up to ``r_k`` so that forecasts, not observed minima, are compared), the pruner

    1. reads the trial's loss at exactly ``r_k``, interpolated (log-log) between the reports around it;
    2. asks the surrogate for the loss the trial would reach at its ``max_compute``, fitted on the points up to
       ``r_k`` past the warm-up (through :func:`sh_scaling.surrogates.forecast`, which falls back to the
       observed minimum, with the reason recorded, for short curves and failed fits);
    3. compares it with every other trial that has passed ``r_k``: those read at ``r_k`` when *they* crossed
       it (trials of different sizes are compared at equal compute, never on "their last value"), and those
       whose first evaluations already lay beyond ``r_k`` (larger models), with their first record; each is
       scored by what is known *now* (:mod:`sh_scaling.pruning._competitors`): a trial that finished at its
       ``max_compute`` by its outcome, any other by its latest forecast, read with the median error of
       forecasts made at that stage of a run taken out (the stage error model, below);
    4. scores them with the decision core (:mod:`sh_scaling.halving`, the same scores fixed-budget halving
       uses in :func:`sh_scaling.simulation.allocate`) and promotes the trial if it ranks in the top
       ``ceil(n / reduction_factor)`` of the ``n`` trials that go at least as far as it would next (a large
       model is not promoted merely for beating small models that are about to finish anyway), or, for the
       frontier objective with ``keep_below_frontier``, if its path could lower the frontier; it prunes the
       trial otherwise. Trials are never paused (asynchronous SH, Li et al., MLSys 2020);
    5. with ``min_improvement`` (off by default), overrides the rank, and stops the trial, if even its
       optimistic forecast does not improve on what the study has already observed by that fraction.

    Both the rank and the improvement rule give the trial being decided the benefit of the doubt down to its
    optimistic value: the lower ``optimism`` quantile of its forecast, or, lower still where forecasts made at
    its stage of a run have missed by more, the forecast less the stage error model's ``margin``.

    Ranking on forecasts instead of the current loss is the point (Schram et al., *Active Budget Allocation for
    Efficient Scaling Law Estimation via Surrogate-Guided Pruning*, ICML 2026): small models look good early
    and large ones win late; ranking on the current loss prunes the future winners. When a trial's own
    forecast falls back, it is ranked on its observed loss at ``r_k`` against the trials read there (plain SH).

    Differences from Optuna's :class:`~optuna.pruners.SuccessiveHalvingPruner`, on purpose: rungs are
    compute, not step counts (its zero-based steps put rungs one step early, Optuna issue 5750); values are
    read at the rung, not at the last reported step; the first ``n_startup_trials`` arrivals at a rung are
    promoted, where Optuna's ``bootstrap_count`` prunes them all (Optuna issue 3330); otherwise ``n``
    arrivals promote ``ceil(n / eta)`` of them, where Optuna's rule makes the first ``eta - 1`` arrivals beat
    everyone.

    State: nothing about trials is kept in this object, and the rung grid needs no shared state at all. Each
    rung decision, with the forecast behind it, is a system attribute of the trial (keys in
    :mod:`sh_scaling.keys`); the latest decision and forecast final loss are user attributes, visible in
    optuna-dashboard and readable by samplers. The study therefore runs unchanged on many threads, processes
    (JournalStorage) or machines (RDBStorage).

    Args:
        surrogate: ``"powerlaw"`` (default: a fit costs milliseconds), ``"exponential"``, ``"mmf"``, ``"gp"``,
            ``"gp-multi"``, or any object with the surrogate protocol (``fit(compute, loss)`` /
            ``predict(compute, return_std=True)``); objects are copied before each fit. A multi-curve
            surrogate (``"gp-multi"``, or an object with ``fit_many``/``predict_many``) is fitted on the deciding
            trial together with the observed curves of up to 19 other trials, the most recent ones.
        max_compute: Compute a trial is meant to reach if never pruned: a number, or a function of the trial's
            params (``lambda p: 6 * n_params(p) * p["tokens"]``). :func:`sh_scaling.report` can also set it
            per trial. Required by one of these routes; must be positive and in the unit compute is reported
            in (a warning, recorded in the study, says when reports never enter the decision window).
        min_compute: No rung below this compute. ``None`` (default): rungs from the trial's third report on.
        reduction_factor: ``eta`` > 1: about ``1/eta`` of the trials at a rung go on. Default 4, as Optuna's
            ``SuccessiveHalvingPruner`` (Schram et al. use 2 in a synchronous, fixed-budget schedule; with
            asynchronous rungs 1.5x apart, 4 spent less for the same regret on both curve sets of
            ``benchmarks/bench_optuna_replay.py``; use 2 for a more conservative sweep).
        rung_factor: Ratio of compute between consecutive rungs. ``None``: ``reduction_factor`` (classic SH).
            Default 1.5: finer rungs than the cull rate decide each trial sooner after its first evaluations,
            which is where most compute is saved when model sizes differ.
        n_startup_trials: At each rung, the first ``n_startup_trials`` trials to arrive are promoted.
            Default 1 (:data:`sh_scaling.halving.N_STARTUP_TRIALS`): a trial alone at a rung goes on; from the
            second arrival on, trials are ranked (spent less than 2 at equal regret on four curve sets).
        decision_start: No decision before a trial has spent this fraction of its ``max_compute``. Default
            0.05 (:data:`sh_scaling.halving.DECISION_START`).
        warmup_fraction: Points before this fraction of the trial's ``max_compute`` are left out of surrogate
            fits (learning-rate warm-up bends the start of a curve away from any law); the same setting as the
            simulator's strategies. Default 0 (:data:`sh_scaling.halving.PRUNER_WARMUP_FRACTION`, which gives the
            measurement; the simulator's strategies use 0.02).
        optimism: ``None`` or ``"mean"`` ranks on the forecast mean; a quantile ``q`` in (0, 0.5] gives the
            trial being decided the benefit of the doubt: its lower ``q`` quantile is set against the others'
            means. Default 0.4 (:data:`sh_scaling.halving.DEFAULT_OPTIMISM`).
        objective: ``"frontier"`` (default) ranks on how far below the loss-compute frontier of the other
            trials (their forecast paths and every point recorded at a rung) the trial's forecast path goes,
            anywhere in the compute range: a small model that could own the frontier at low compute is kept
            although it will never reach the best loss; this is what the fitted scaling law needs.
            ``"best_loss"`` (the paper's proxy) ranks on the forecast loss at ``max_compute``.
        keep_below_frontier: With the frontier objective, keep a trial whose optimistic path goes below the
            others' frontier somewhere, whatever its rank. Default True.
        compute_fn: ``compute_fn(params, step)`` gives the compute of a step reported with plain
            ``trial.report`` (used when no compute was reported with :func:`sh_scaling.report`).
        schedule: The trials' planned learning-rate schedule, as a fraction of each trial's ``max_compute``:
            a :class:`~sh_scaling.schedules.Schedule` (``Cosine(warmup=0.05, final_ratio=0.1)``), its
            ``to_dict()``, or a function of the trial's params returning one of those (or ``None`` for a trial
            without a known schedule; wrap a function of the fraction with
            :func:`~sh_scaling.schedules.from_callable`). Each trial's schedule is stored once, as a system
            attribute (:data:`sh_scaling.keys.SCHEDULE_KEY`). A trial with a schedule is forecast by the
            multi-power law (:class:`~sh_scaling.surrogates.MultiPowerLawSurrogate`, Luo et al., ICLR 2025)
            under its schedule to its ``max_compute``, so a run still at a high rate is forecast to drop when its
            decay comes (on the 27 runs of Luo et al.: 0.4-0.6 % median error from a quarter of a cosine or WSD
            run against 1.7-8.3 % for the power law, ``benchmarks/bench_schedule_forecast.py``). Default
            ``None``: no schedule; forecasts as set by ``surrogate``, unless rates are reported (below).
            Learning rates reported with :func:`sh_scaling.report` (``lr=``) are checked against the schedule:
            a disagreement by more than a factor of 2 is warned about once per study (recorded in the study,
            :data:`~sh_scaling.keys.SCHEDULE_WARNING_KEY`, and the trial, :data:`~sh_scaling.keys.SCHEDULE_NOTE_KEY`)
            and the reports are trusted: the rates so far are the reported ones, the future the stated shape
            scaled to meet the latest report. Rates reported without a schedule are used as given, the future
            held at the latest rate (recorded in the trial). A params function that raises or returns something
            that is not a valid schedule leaves the trial without one (recorded in the study and the trial).
        family: ``family(params)`` names the model a trial trains (for example ``lambda p: p["n_params"]``):
            trials of one family, whatever their lengths and schedules, share the multi-power law's constants
            (Luo et al. fit one set per model size across nine schedules). The deciding trial is then fitted
            jointly with its family's observed curves (running and finished, at most 19, the most recent; each
            with its stored schedule and ``max_compute``) by
            :class:`~sh_scaling.surrogates.JointMultiPowerLawSurrogate`, so that a short run's finished decay
            informs a long run's forecast. A trial alone in its family, a family function that raises, a
            family fit that fails, or one that misses the trial's own points by more than
            :data:`FAMILY_MISS` fall back to the trial's own fit, with the reason in its rung record
            (``family_fallback``). Default ``None``: no sharing.
        calibrate: Rank with the study's own record of its forecasts instead of trusting their Gaussian
            intervals. Each forecast recorded for a trial that has since finished is compared with the loss the
            trial reached at that forecast's target, in units of its std; once
            :data:`~sh_scaling.halving.MIN_CALIBRATION_RESIDUALS` such errors exist, every forecast is ranked
            at their median and the trial at risk at their lower ``optimism`` quantile
            (:func:`sh_scaling.halving.calibrate_forecasts`), so that ``optimism`` is the probability, as
            observed in this study, that the outcome falls below the value the trial is ranked by. What was
            applied is in each rung record (``calibration``). The study's finished trials also bound what is
            plausible: a forecast that has a trial drop, from its loss at a stage of its run to the end, more
            than :data:`IMPLAUSIBLE_DROP_FACTOR` times (in log loss) the most any of them dropped from that stage
            is held at that bound, with the reason in the record (``implausible``). Default False. With it, the
            stage error model's median is not applied to competitors (calibration moves every forecast already).
        min_improvement: Stop a trial, whatever its rank and even alone at its rung, when even its optimistic
            forecast does not improve on what the study has already observed by more than this fraction of the
            loss: for ``objective="best_loss"`` the lowest loss reported by any other trial; for ``"frontier"``
            the observed frontier (the lowest loss reported at or below each compute), anywhere along the
            trial's path to its ``max_compute``. This is the knob that trades regret for compute: successive
            halving alone must train every trial that is the best so far to its end, since nothing ranks
            above it; with ``min_improvement`` a trial forecast to beat the best so far by less than that is
            not worth its remaining compute. What the rule saw is in the rung record (``observed_gap``, log
            loss). The rule trusts the forecasts' level: it suits forecasts that are not biased, such as the
            schedule-aware ones, and prunes future winners where forecasts are pessimistic (the power law on
            real curves). Default ``None``: no rule, since on ladders of real runs not used to choose it the
            rule lost the best run (:data:`sh_scaling.halving.SCHEDULE_MIN_IMPROVEMENT` gives the
            measurements). ``"auto"``: 0.01 for trials with a stated schedule, no rule for the others (nor for
            rates reported without a stated schedule, whose future is a guess). A trial
            whose forecast fell back is left to the ranking. The trade-off as the setting varies, measured with
            :func:`sh_scaling.simulation.replay_study`, is in ``benchmarks/bench_schedule_replay.py`` and the
            README.

        margin: The stage error model (:func:`sh_scaling.halving.stage_margin`): how wrong a forecast made at a
            stage of a run (a fraction of its ``max_compute``) can be. ``"stage"`` (default): the trial being
            decided is given the benefit of the doubt down to ``forecast * exp(-m)``, ``m`` being the margin
            that 90 % (:data:`sh_scaling.halving.MARGIN_COVERAGE`) of forecasts made at the same stage stayed
            above on the development curves (:data:`sh_scaling.halving.STAGE_MARGINS`, measured with
            :func:`sh_scaling.pruning.stage_forecast_errors`: for the power law 15 % of the loss at 5 % of a run
            and 4 % at 80 %; for schedule-aware forecasts 3.8 % and 0.8 %), and competitors' forecasts are read
            with their stage's median error taken out (:data:`sh_scaling.halving.STAGE_BIAS`); both move towards
            the study's own finished forecasts as they accumulate (ten of them near a stage weigh as much as the
            table), except that a study whose forecasts miss by more than the table allows is believed at once:
            where more of its finished forecasts near the stage miss past the table than chance allows
            (:data:`sh_scaling.halving.MARGIN_WIDEN_LEVEL`), the margin is the largest of those misses
            (:data:`sh_scaling.halving.MARGIN_WIDEN`, which gives the measurement; ``"widen": False`` in a
            mapping turns it off, ``"widen_level": None`` widens on any study margin past the table). ``"proven": True`` in a mapping also believes misses that unfinished trials
            have already proven (a forecast made at an earlier rung that a later rung of the same trial has
            already beaten), which a study running many trials at once learns long before its long runs
            finish (:data:`sh_scaling.halving.MARGIN_PROVEN` gives the measurement); ``"proven_own": True``
            also the deciding trial's own (its earlier forecasts that this rung's loss has beaten:
            :data:`sh_scaling.halving.MARGIN_PROVEN_OWN`). A trial forecast under its
            schedule is also forecast by the pruner's surrogate from its own curve alone; as a competitor it is
            never read below that forecast's optimistic bound at its stage (the ``"own"`` table), its ``floor``:
            a schedule-aware forecast that falls below it forecasts a drop nothing else supports, and no trial is
            ranked out on it (:data:`sh_scaling.halving.MARGIN_FLOOR` gives the measurement; ``"floor": False`` in
            a mapping turns it off; the rung record keeps ``forecast_own`` and ``floor``). The margin used is in each
            rung record (``margin``, ``margin_info``) and in the decision text. A number among ``sorted(STAGE_MARGINS)`` (0.5, 0.8, 0.9, 0.95) asks for another coverage; a
            mapping ``{"coverage": c, "own": table, "multipower": table}`` (optionally ``"own_bias"``,
            ``"multipower_bias"``, ``"widen"``, ``"widen_level"``, ``"proven"``, ``"proven_own"``, ``"floor"``) gives tables measured on one's own past sweeps, one value per stage of
            :data:`sh_scaling.halving.STAGE_NODES`. ``None``: forecasts' own Gaussian intervals only, and
            competitors' forecasts as they are; measured on 100 synthetic curves (5 arrival orders, competitors
            scored as now), that loses 2.8 % of the best loss where the default loses none.
        pending_competitors: With several trials running at once, also rank a trial at a rung against the
            running trials that have not reached the rung yet but are planned past it, each with the forecast
            of its highest rung (a decision then knows more than the trials that happen to be ahead). One trial
            at a time nothing changes. Default :data:`sh_scaling.halving.PENDING_COMPETITORS` (on; which gives
            the measurement: 8 trials at once it spends 1-21 % less compute on the five development sets, and
            keeps the CPU ladder's best run in 19 of 20 orders instead of 20, with the trial's own proven misses
            in its margin).

    Raises: ``ValueError`` at construction for settings that can be checked then (numbers out of range,
    functions that cannot take the arguments they will be given); from :meth:`prune` (so the trial fails with
    the message) for a maximize or multi-objective study, a trial with losses but no compute, and a
    ``max_compute`` that is missing, non-positive, or whose function raises (the message names it). A NaN or
    infinite loss prunes the trial, with the reason in its attributes.

    Example::

        import optuna, sh_scaling

        pruner = sh_scaling.SurrogateHalvingPruner(max_compute=lambda p: 6 * n_params(p) * p["tokens"])
        study = optuna.create_study(pruner=pruner)

        def objective(trial):
            ...
            for step in range(n_evals):
                loss = train_and_evaluate()
                sh_scaling.report(trial, loss, compute=flops_so_far)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return loss
    """

    def __init__(
        self,
        surrogate: str | Surrogate | MultiCurveSurrogate = "powerlaw",
        *,
        max_compute: float | Callable[[dict[str, Any]], float] | None = None,
        min_compute: float | None = None,
        reduction_factor: float = 4,
        rung_factor: float | None = 1.5,
        n_startup_trials: int = N_STARTUP_TRIALS,
        decision_start: float = DECISION_START,
        warmup_fraction: float = PRUNER_WARMUP_FRACTION,
        optimism: float | str | None = DEFAULT_OPTIMISM,
        objective: str = "frontier",
        keep_below_frontier: bool = True,
        compute_fn: Callable[[dict[str, Any], int], float] | None = None,
        schedule: Schedule | Mapping[str, Any] | Callable[[dict[str, Any]], Any] | None = None,
        family: Callable[[dict[str, Any]], Hashable] | None = None,
        calibrate: bool = False,
        min_improvement: float | str | None = None,
        margin: str | float | Mapping[str, Any] | None = "stage",
        pending_competitors: bool = PENDING_COMPETITORS,
    ) -> None:
        if isinstance(surrogate, str):
            if surrogate not in _SURROGATE_NAMES:
                raise ValueError(f"surrogate={surrogate!r}: choose one of {list(_SURROGATE_NAMES)} or pass an object")
        elif not isinstance(surrogate, (Surrogate, MultiCurveSurrogate)):
            raise ValueError(
                f"surrogate={surrogate!r} has neither fit/predict nor fit_many/predict_many (the surrogate protocol)"
            )
        if max_compute is not None:
            if callable(max_compute):
                _check_callable("max_compute", max_compute, "max_compute(params)", 1)
            else:
                _check_positive("max_compute", max_compute)
        if min_compute is not None:
            _check_positive("min_compute", min_compute)
        if not (is_number(reduction_factor) and reduction_factor > 1):
            raise ValueError(f"reduction_factor={reduction_factor!r}: must be a number > 1")
        spacing = reduction_factor if rung_factor is None else rung_factor
        if not (is_number(spacing) and spacing >= MIN_RUNG_FACTOR):
            name = "rung_factor" if rung_factor is not None else "reduction_factor (the rung spacing when rung_factor=None)"
            raise ValueError(
                f"{name}={spacing!r}: must be a number >= {MIN_RUNG_FACTOR:g}; rungs closer than that decide a trial "
                "again before its forecast can have changed, each decision costing a fit and a stored record"
            )
        if not (isinstance(n_startup_trials, int) and n_startup_trials >= 0):
            raise ValueError(f"n_startup_trials={n_startup_trials!r}: must be an integer >= 0")
        for name, value in (("decision_start", decision_start), ("warmup_fraction", warmup_fraction)):
            if not (is_number(value) and 0 <= value < 1):
                raise ValueError(f"{name}={value!r}: must be in [0, 1)")
        if optimism == "mean":
            optimism = None
        if optimism is not None and not (is_number(optimism) and 0 < optimism <= 0.5):  # type: ignore[operator]
            raise ValueError(f"optimism={optimism!r}: use None / 'mean' or a lower quantile in (0, 0.5]")
        if objective not in _OBJECTIVES:
            raise ValueError(f"objective={objective!r}: choose one of {list(_OBJECTIVES)}")
        if compute_fn is not None:
            if not callable(compute_fn):
                raise ValueError(f"compute_fn={compute_fn!r}: must be callable as compute_fn(params, step)")
            _check_callable("compute_fn", compute_fn, "compute_fn(params, step)", 2)
        if isinstance(schedule, Mapping):
            described: Mapping[str, Any] = schedule
            try:
                schedule = schedule_from_dict(described)
            except ValueError as exc:
                raise ValueError(f"schedule={dict(described)!r}: {exc}") from None
        elif schedule is not None and not isinstance(schedule, Schedule):
            if not callable(schedule):
                raise ValueError(
                    f"schedule={schedule!r}: pass a Schedule, its to_dict(), or a function of the trial's params "
                    "returning one"
                )
            _check_callable("schedule", schedule, "schedule(params)", 1)
        if not (min_improvement is None or min_improvement == "auto"
                or (is_number(min_improvement) and 0 <= min_improvement < 1)):  # type: ignore[operator]
            raise ValueError(f"min_improvement={min_improvement!r}: must be 'auto', None or a fraction in [0, 1)")
        margin_model = parse_margin(margin)
        if family is not None:
            if not callable(family):
                raise ValueError(f"family={family!r}: must be callable as family(params)")
            _check_callable("family", family, "family(params)", 1)
        self._surrogate = surrogate
        self._max_compute = max_compute
        self._min_compute = None if min_compute is None else float(min_compute)
        self._eta = float(reduction_factor)
        self._spacing = float(reduction_factor if rung_factor is None else rung_factor)
        self._n_startup = n_startup_trials
        self._decision_start = float(decision_start)
        self._warmup = float(warmup_fraction)
        self._optimism = None if optimism is None else float(optimism)
        self._objective = objective
        self._keep = bool(keep_below_frontier)
        if not isinstance(pending_competitors, bool):
            raise ValueError(f"pending_competitors={pending_competitors!r}: must be True or False")
        self._pending = pending_competitors
        self._compute_fn = compute_fn
        self._schedule = schedule
        self._family = family
        self._calibrate = bool(calibrate)
        self._margin: MarginModel | None = margin_model
        self._min_improvement: float | str | None = (
            min_improvement if min_improvement is None or min_improvement == "auto" else float(min_improvement)
        )
        # Finished trials, read once each per study (a cache: a finished trial's records and curve no longer
        # change): what competitors_at needs of them, and what they tell about forecasts.
        self._finished: dict[tuple[int, int], dict[int, tuple[Finished, Outcome]]] = {}
        # Studies (by storage and id) whose no-decision warning has been given by this object: a cache only,
        # the record itself is in the study's system attributes.
        self._warned: set[tuple[int, int]] = set()
        self._warned_schedule: set[tuple[int, int, str]] = set()
        # Finished trials already checked for "never decided", per study (a cache: checking again is harmless).
        self._checked: dict[tuple[int, int], set[int]] = {}
        # The proven misses of the trials that are pruned or failed, per study and forecast kind, gathered into one
        # (a cache: such a trial no longer changes).
        self._settled: dict[tuple[int, int, str], SettledMisses] = {}
        # The outcomes of each study's completed trials (a cache: extended as trials complete).
        self._outcomes: dict[tuple[int, int], FinishedOutcomes] = {}
        # The finished trials' parts in each rung's competition, per study (a cache: extended as trials finish).
        self._competing: dict[tuple[int, int], FinishedCompetitors] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (workers of other frameworks receive the pruner by pickle).
        state = self.__dict__.copy()
        del state["_lock"]
        state["_warned"] = set()
        state["_warned_schedule"] = set()
        state["_checked"] = {}
        state["_finished"] = {}
        state["_settled"] = {}
        state["_outcomes"] = {}
        state["_competing"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------------------
    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        _check_study(study)
        values = trial.intermediate_values
        if not values:
            return False
        attrs = _system_attrs(study, trial)
        if PRUNED_KEY in attrs:
            return True
        if self._schedule is not None and SCHEDULE_KEY not in attrs:
            self._store_schedule(study, trial, attrs)
        target = self._target(trial, attrs)
        fast = self._latest_point(trial, attrs)
        if fast is not None:
            last_step, c_last = fast
            last_loss = values.get(last_step)
            rung = highest_rung(c_last, self._spacing)
            checked = attrs.get(CHECKED_RUNG_KEY)
            # Between rungs nothing can change: the rungs up to the latest report were all looked at.
            if last_loss is not None and math.isfinite(last_loss) and checked is not None and rung <= checked:
                return False
        return self._prune_slow(study, trial, attrs, target)

    def _prune_slow(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial, attrs: Any, target: float) -> bool:
        values = trial.intermediate_values
        storage, tid = study._storage, trial._trial_id
        bad = [s for s in sorted(values) if not math.isfinite(values[s])]
        if bad:
            why = f"pruned: non-finite loss {values[bad[0]]!r} at step {bad[0]}"
            storage.set_trial_system_attr(tid, PRUNED_KEY, why)
            storage.set_trial_user_attr(tid, DECISION_KEY, why)
            return True
        compute, loss, notes = observed_curve(values, attrs, trial.params, self._compute_fn)
        if compute.size == 0:
            raise ValueError(
                f"trial {trial.number}: {len(values)} loss(es) reported but no compute "
                f"({'; '.join(notes[:2])}); {HOW_TO_REPORT}"
            )
        if compute[0] >= target * (1 - RTOL):
            self._warn_no_decision(
                study,
                f"trial {trial.number} reported compute {compute[0]:.4g} at its first point, at or past its "
                f"max_compute {target:.4g}: no rung lies within its reports, so the pruner cannot decide it. Is "
                "max_compute in the unit compute is reported in (FLOPs, PF-days, ...)?",
            )
        increasing = [n for n in notes if "does not increase" in n]
        if increasing:
            self._warn_no_decision(
                study,
                f"trial {trial.number}: compute does not increase from one report to the next "
                f"({increasing[0]}); such reports are left out of its curve, and a curve without increasing "
                "compute is never decided. Check compute_fn or the compute passed to sh_scaling.report.",
            )
        self._check_finished_trials(study)
        highest = highest_rung(float(compute[-1]), self._spacing)
        for k in rungs_crossed(float(compute[0]), float(compute[-1]), self._spacing):
            r = rung_compute(k, self._spacing)
            if r >= target * (1 - RTOL):
                break
            if self._min_compute is not None and r < self._min_compute * (1 - RTOL):
                continue
            if r < self._decision_start * target:
                continue
            # A rung is decided once the trial has MIN_POINTS points up to it (its loss at the rung included),
            # so that what is compared at a rung is a surrogate forecast, not an observed minimum set against
            # forecasts; a trial whose first reports lie beyond the early rungs starts at a later one.
            if int(np.count_nonzero(compute < r * (1 - RTOL))) + 1 < MIN_POINTS:
                continue
            record = attrs.get(rung_key(k))
            if record is not None:
                if not record.get("promoted", True):
                    return True
                continue
            if not self._decide(study, trial, attrs, k, r, compute, loss, target, notes):
                return True
        if attrs.get(CHECKED_RUNG_KEY) is None or highest > attrs.get(CHECKED_RUNG_KEY):
            storage.set_trial_system_attr(tid, CHECKED_RUNG_KEY, highest)
        return False

    # ----------------------------------------------------------------------------------------------------
    def _latest_point(self, trial: optuna.trial.FrozenTrial, attrs: Any) -> tuple[int, float] | None:
        """The latest report's step and compute, read without rebuilding the curve (``None``: unknown)."""
        last = last_reported(attrs)
        if last is not None:
            return last
        if self._compute_fn is None:
            return None
        step = max(trial.intermediate_values)
        try:
            c_last = float(self._compute_fn(dict(trial.params), int(step)))
            if step > 0 and float(self._compute_fn(dict(trial.params), int(step) - 1)) >= c_last:
                return None  # compute does not increase: the slow path warns about it
            return step, c_last
        except Exception:  # noqa: BLE001 - the slow path records why
            return None

    def _target(self, trial: optuna.trial.FrozenTrial, attrs: Any) -> float:
        value = attrs.get(MAX_COMPUTE_KEY)
        if value is None:
            if self._max_compute is None:
                raise ValueError(
                    f"trial {trial.number}: no max_compute; pass max_compute= to SurrogateHalvingPruner (a number "
                    "or a function of trial.params) or to sh_scaling.report"
                )
            if callable(self._max_compute):
                try:
                    value = self._max_compute(dict(trial.params))
                except KeyError as exc:
                    raise ValueError(
                        f"trial {trial.number}: max_compute(params) read the param {exc} that the trial does not "
                        f"have (its params: {sorted(trial.params)})"
                    ) from exc
                except Exception as exc:  # noqa: BLE001 - re-raised with the function named
                    raise ValueError(
                        f"trial {trial.number}: max_compute(params) raised {type(exc).__name__}: {exc} "
                        f"(params: {dict(trial.params)})"
                    ) from exc
            else:
                value = self._max_compute
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"trial {trial.number}: max_compute is {value!r}; it must be a positive finite number")
        return value

    def _warn_no_decision(self, study: optuna.study.Study, message: str) -> None:
        """Warn once per study (and record it in the study) that trials pass without a decision."""
        key = (id(study._storage), study._study_id)
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        storage = study._storage
        if NO_DECISION_WARNING_KEY not in storage.get_study_system_attrs(study._study_id):
            storage.set_study_system_attr(study._study_id, NO_DECISION_WARNING_KEY, message)
            warnings.warn(f"SurrogateHalvingPruner: {message}", UserWarning, stacklevel=3)

    def _store_schedule(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial, attrs: Any) -> None:
        """Resolve the trial's stated schedule and store it once (``None``: none, or a failed params function,
        whose reason goes to the trial and, once, to the study)."""
        value: dict[str, Any] | None
        fn = self._schedule
        if isinstance(fn, Schedule):
            value = fn.to_dict()
        elif callable(fn):
            try:
                value = schedule_dict(fn(dict(trial.params)))
            except Exception as exc:  # noqa: BLE001 - a broken schedule function must not fail the study
                value = None
                note = (
                    f"trial {trial.number}: schedule(params) gave no valid schedule ({type(exc).__name__}: {exc}); "
                    "its forecasts ignore the schedule"
                )
                self._note_schedule(study, trial, attrs, note)
        else:
            return
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, SCHEDULE_KEY, value)
        attrs[SCHEDULE_KEY] = value

    def _note_schedule(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial, attrs: Any, note: str) -> None:
        """Record why a trial's forecasts do not follow its stated schedule: in the trial (once) and, with a
        warning, once per study."""
        storage = study._storage
        if SCHEDULE_NOTE_KEY not in attrs:
            storage.set_trial_system_attr(trial._trial_id, SCHEDULE_NOTE_KEY, note)
            attrs[SCHEDULE_NOTE_KEY] = note
        key = (id(storage), study._study_id, "schedule")
        with self._lock:
            if key in self._warned_schedule:
                return
            self._warned_schedule.add(key)
        if SCHEDULE_WARNING_KEY not in storage.get_study_system_attrs(study._study_id):
            storage.set_study_system_attr(study._study_id, SCHEDULE_WARNING_KEY, note)
            warnings.warn(f"SurrogateHalvingPruner: {note}", UserWarning, stacklevel=4)

    def _check_finished_trials(self, study: optuna.study.Study) -> None:
        """Warn when a trial finished without ever reaching a rung the pruner could decide at."""
        key = (id(study._storage), study._study_id)
        with self._lock:
            if key in self._warned:
                return
            seen = self._checked.setdefault(key, set())
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t._trial_id in seen:
                continue
            with self._lock:
                seen.add(t._trial_id)
            sa = t.system_attrs
            if not t.intermediate_values or FIRST_RUNG_KEY in sa or PRUNED_KEY in sa:
                continue
            c, _, _ = observed_curve(t.intermediate_values, sa, t.params, self._compute_fn)
            if c.size < MIN_POINTS:
                continue
            try:
                target = self._target(t, sa)
            except ValueError:
                continue
            self._warn_no_decision(
                study,
                f"trial {t.number} finished without a decision: its reports spanned compute {c[0]:.4g} to "
                f"{c[-1]:.4g}, and the pruner decides between {self._decision_start:g} x max_compute = "
                f"{self._decision_start * target:.4g} and max_compute = {target:.4g}. Is max_compute in the unit "
                "compute is reported in (FLOPs, PF-days, ...)?",
            )
            return

    def _decide(
        self,
        study: optuna.study.Study,
        trial: optuna.trial.FrozenTrial,
        attrs: Any,
        k: int,
        r: float,
        compute: np.ndarray,
        loss: np.ndarray,
        target: float,
        notes: list[str],
    ) -> bool:
        loss_r = loss_at(compute, loss, r)
        before = compute < r * (1 - RTOL)
        schedule, schedule_note, mismatch = trial_schedule(attrs, target, r)
        if schedule_note is not None and (mismatch or SCHEDULE_NOTE_KEY not in attrs):
            if mismatch:
                schedule_note = f"trial {trial.number}: {schedule_note}"
                self._note_schedule(study, trial, attrs, schedule_note)
            else:
                study._storage.set_trial_system_attr(trial._trial_id, SCHEDULE_NOTE_KEY, schedule_note)
                attrs[SCHEDULE_NOTE_KEY] = schedule_note
        peers = peer_curves(study, trial, self._compute_fn) if shares_curves(self._surrogate) and schedule is None else []
        fit_c, fit_l = fit_points(np.append(compute[before], r), np.append(loss[before], loss_r), target, self._warmup)
        family_info: dict[str, Any] = {}
        fc: Forecast | None = None
        if self._family is not None:
            fc, family_info = family_forecast(
                study, trial, fit_c, fit_l, target, schedule, self._family,
                lambda t: self._target(t, t.system_attrs), self._compute_fn, self._warmup,
            )
        if fc is None:
            fc = own_forecast(self._surrogate, fit_c, fit_l, target, peers, schedule)
        mean, std = float(fc.mean[0]), float(fc.std[0])
        # What the study's finished trials tell about forecasts, read once for the uses below.
        trials = study.get_trials(deepcopy=False)
        finished = self._finished_outcomes(study, trials)
        outcomes = finished.outcomes
        evidence = finished.stage_errors
        implausible = None
        if self._calibrate and not bool(fc.fallback[0]) and target > r:
            bound = drop_bound(outcomes, r / target)
            if bound is not None and math.isfinite(mean) and mean > 0 and math.log(loss_r / mean) > bound[0]:
                floor = loss_r * math.exp(-bound[0])
                implausible = (
                    f"forecast {mean:.5g} is a drop of {100 * (1 - mean / loss_r):.3g} % from the loss at "
                    f"{100 * r / target:.3g} % of the run; the study's {bound[1]} finished trials dropped at most "
                    f"{100 * (1 - math.exp(-bound[0] / IMPLAUSIBLE_DROP_FACTOR)):.3g} % from there: held at "
                    f"{floor:.5g}"
                )
                mean = floor
        record: dict[str, Any] = {
            "compute": r,
            "loss": loss_r,
            "target": target,
            "forecast": clean_float(mean),
            "std": clean_float(std),
            "fallback": bool(fc.fallback[0]),
            "reason": fc.reason[0] if fc.reason else None,
            "n_points": int(before.sum()) + 1,
        }
        if implausible is not None:
            record["implausible"] = implausible
        if schedule is not None:
            record["surrogate"] = "multipower"
            record["schedule"] = schedule.kind if schedule_note is None else schedule_note
        record.update(family_info)
        if notes:
            record["skipped_reports"] = notes[:5]
        if self._margin is not None and not record["fallback"] and target > r:
            # How wrong a forecast of this kind can be at this stage of a run: the development sets' error table,
            # updated by this study's finished trials.
            kind = "multipower" if schedule is not None else "own"
            model = self._margin
            errors, stages = evidence(kind)
            proven = self._proven_misses(study, trials, trial, kind) if model.proven else None
            if model.proven_own:
                # The trial's own earlier forecasts that its loss has since beaten, this rung's loss included.
                summary = RungSummary.read(attrs)
                own = proven_misses([RungSummary({**summary.records, -1: {"compute": r, "loss": loss_r}}, None,
                                                 [], [])], kind)
                proven = own if proven is None else (np.concatenate([proven[0], own[0]]),
                                                     np.concatenate([proven[1], own[1]]))
            margin, margin_info = stage_margin(r / target, model.tables[kind], errors, stages,
                                               coverage=model.coverage, prior_weight=MARGIN_PRIOR_WEIGHT,
                                               widen=model.widen, proven=proven, widen_level=model.widen_level)
            record["margin"] = clean_float(margin)
            record["margin_info"] = {"kind": kind, **{key: clean_float(v) for key, v in margin_info.items()}}
        if self._margin is not None and self._margin.floor and schedule is not None and not record["fallback"] \
                and target > r:
            # A second opinion that knows nothing of the schedule: the trial's own curve by the pruner's surrogate.
            # Where the schedule-aware forecast lies below what that forecast's error table allows at this stage,
            # the drop it forecasts is one no other evidence supports; as a competitor, the trial is read at that
            # floor (_competitors.freshest), so no trial is ranked out on such a forecast.
            second = own_forecast(self._surrogate, fit_c, fit_l, target)
            if not bool(second.fallback[0]):
                floor = float(second.mean[0]) * math.exp(-float(at_stage(self._margin.tables["own"], r / target)))
                record["forecast_own"] = clean_float(float(second.mean[0]))
                record["floor"] = clean_float(min(floor, loss_r))
        min_improvement = self._min_improvement
        if min_improvement == "auto":
            # Only forecasts that know the schedule's future (a stated one, not just the rates reported so far)
            # are trusted to say that a trial will not improve.
            stated = schedule is not None and stated_schedule(attrs) is not None
            min_improvement = SCHEDULE_MIN_IMPROVEMENT if stated else None
        if min_improvement is not None:
            record["min_improvement"] = float(min_improvement)
        others, anchors, observed = competitors_at(
            study, trial, k, r, functools.partial(self._finished_trial, study), observed=min_improvement is not None,
            trials=trials, pending=self._pending, cache=self._competing_in(study),
        )
        if self._margin is not None and not self._calibrate:
            others = self._debiased(others, evidence, finished.derived)
        residuals = forecast_residuals(outcomes, r / target) if self._calibrate else None
        decision, ranking, score = self.decide_record(record, others, anchors, r, residuals=residuals,
                                                      observed=observed)
        record.update(objective=self._objective, promoted=decision.promoted, rule=decision.rule,
                      n_competitors=decision.n)
        if decision.rule != "startup":
            record.update(rank=decision.rank, quota=decision.quota, score=clean_float(score), ranking=ranking)
        source = "observed minimum" if record["fallback"] else "surrogate"
        score_text = "" if decision.rule == "startup" else f"; {ranking} score {score:.5g}"
        margin_text = ""
        if record.get("margin") and decision.rule != "startup" and ranking != "observed":
            margin_text = (
                f", given a margin down to {mean * math.exp(-record['margin']):.5g} "
                f"({100 * -math.expm1(-record['margin']):.2g} % below, for a forecast at {100 * r / target:.2g} % of "
                "its run"
                + ("; the largest miss of this study's own forecasts near that stage" if
                   record.get("margin_info", {}).get("widened") else "")
                + ")"
            )
        text = (
            f"{'promoted' if decision.promoted else 'pruned'} at rung {k} (compute {r:.4g}): loss {loss_r:.5g}, "
            f"forecast {mean:.5g} at {target:.4g} ({source}){margin_text}{score_text}; {decision.explain()}"
        )
        storage, tid = study._storage, trial._trial_id
        storage.set_trial_system_attr(tid, rung_key(k), record)
        if FIRST_RUNG_KEY not in attrs:
            storage.set_trial_system_attr(tid, FIRST_RUNG_KEY, k)
        storage.set_trial_user_attr(tid, FORECAST_KEY, clean_float(mean))
        storage.set_trial_user_attr(tid, DECISION_KEY, text)
        if not decision.promoted:
            storage.set_trial_system_attr(tid, PRUNED_KEY, text)
        return decision.promoted

    def _debiased(
        self, others: list[dict[str, Any]], evidence: Callable[[str], tuple[np.ndarray, np.ndarray]],
        derived: Callable[[Hashable, Callable[[], Any]], Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Competitors' forecasts with the stage error model's median error taken out (outcomes unchanged): a
        competitor forecast early, pessimistic on real curves, is read at what such forecasts typically
        became. The centre moves from the development table towards this study's own finished forecasts
        (``evidence(kind)``: their log errors and stages). ``derived``: where the centre tables are kept for the
        same evidence (:meth:`FinishedOutcomes.derived`)."""
        assert self._margin is not None
        tables = self._margin.tables
        out = list(others)
        for kind in ("own", "multipower"):
            idx = [i for i, rec in enumerate(others) if rec.get("forecast_kind") == kind
                   and rec.get("fresh") != "outcome" and rec.get("forecast") is not None]
            if not idx:
                continue

            def center(kind: str = kind) -> tuple[float, ...]:
                errors, stages = evidence(kind)
                return stage_center_table(tables[f"{kind}_bias"], errors, stages, prior_weight=MARGIN_PRIOR_WEIGHT)

            # The centre table depends on the finished outcomes alone: computed once for each set of them.
            table = center() if derived is None else derived(("center", kind), center)
            shifts = at_stage(table, np.array([float(others[i]["forecast_stage"]) for i in idx]))
            for i, shift in zip(idx, shifts):
                rec = others[i]
                out[i] = {**rec, "forecast": float(rec["forecast"]) * math.exp(float(shift)), "debiased": float(shift)}
        return out

    def _proven_misses(
        self, study: optuna.study.Study, trials: list[optuna.trial.FrozenTrial], trial: optuna.trial.FrozenTrial,
        kind: str,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The misses of ``kind`` forecasts that the study's unfinished trials (running, pruned, failed; not
        ``trial``) have already proven (:func:`proven_misses`), in no particular order.

        Pruned and failed trials no longer change: their misses are gathered once into :class:`SettledMisses`;
        only the running trials' are read at each decision (a waiting trial has reported nothing yet)."""
        key = (id(study._storage), study._study_id)
        with self._lock:
            settled = self._settled.setdefault((*key, kind), SettledMisses())
        parts = []
        for t in trials:
            if t.number == trial.number:
                continue
            state = t.state
            if state in (TrialState.COMPLETE, TrialState.WAITING) or t._trial_id in settled.ids:
                continue
            # Read afresh until settled: a trial proves more misses as it runs.
            known = proven_misses([RungSummary.read(t.system_attrs)], kind)
            if state.is_finished():
                with self._lock:
                    settled.add(t._trial_id, known)
            else:
                parts.append(known)
        errors, stages = settled.misses(exclude=trial._trial_id)
        if not parts:
            return errors, stages
        return np.concatenate([errors, *(p[0] for p in parts)]), np.concatenate([stages, *(p[1] for p in parts)])

    def _competing_in(self, study: optuna.study.Study) -> FinishedCompetitors:
        """The study's :class:`FinishedCompetitors` (one per study, kept by this object)."""
        key = (id(study._storage), study._study_id)
        with self._lock:
            return self._competing.setdefault(key, FinishedCompetitors())

    def _finished_outcomes(self, study: optuna.study.Study, trials: list[optuna.trial.FrozenTrial]) -> FinishedOutcomes:
        """The outcomes of the study's completed trials among ``trials`` (:class:`FinishedOutcomes`, kept per
        study and extended as trials complete)."""
        key = (id(study._storage), study._study_id)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        known = self._outcomes.get(key) or FinishedOutcomes()
        found = known.extended(complete, lambda t: self._read_finished(study, t)[1])
        if found is not known:
            with self._lock:
                self._outcomes[key] = found
        return found

    def _finished_trial(self, study: optuna.study.Study, t: optuna.trial.FrozenTrial) -> Finished:
        """A finished trial as decisions need it (read once per trial: a cache)."""
        return self._read_finished(study, t)[0]

    def _read_finished(self, study: optuna.study.Study, t: optuna.trial.FrozenTrial) -> tuple[Finished, Outcome]:
        known = self._finished.get((id(study._storage), study._study_id))
        if known is not None and t._trial_id in known:
            return known[t._trial_id]
        try:
            planned = self._target(t, t.system_attrs)
        except ValueError:
            planned = math.nan
        pair = read_finished(t, self._compute_fn, planned)
        with self._lock:
            self._finished.setdefault((id(study._storage), study._study_id), {})[t._trial_id] = pair
        return pair

    def _finished_trials(self, study: optuna.study.Study) -> list[tuple[Finished, Outcome]]:
        """Every trial of the study that completed, read once each."""
        return [self._read_finished(study, t)
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]

    def decide_record(
        self,
        record: dict[str, Any],
        others: list[dict[str, Any]],
        anchors: tuple[np.ndarray, np.ndarray, np.ndarray],
        r: float,
        residuals: np.ndarray | None = None,
        observed: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[Decision, str, float]:
        """The decision core applied to one rung: ``record`` (the trial being decided) against ``others``.

        ``residuals``: standardised errors of earlier forecasts whose outcome is known (``calibrate=True``);
        every forecast is then ranked at the study's empirical quantiles, and what was applied is written to
        ``record["calibration"]``. ``observed``: the ``(compute, loss)`` the study has observed in other trials,
        for the improvement rule at ``record["min_improvement"]`` (the setting that applies to this trial, if
        any); the gap is written to ``record["observed_gap"]``.

        Returns the decision, the ranking used (``"observed"`` when the trial's own forecast fell back) and
        the trial's score. Pure: reads nothing from storage, so tests can check it against the core directly.
        """
        # The quota applies among the trials that compete for the same next slice of compute: those meant to
        # go at least as far as this one does next (to the next rung, or to its end if that comes first).
        reach = min(record["target"], r * self._spacing) * (1 - RTOL)
        ranking = self._objective
        if record["fallback"]:
            # No forecast for this trial (too short, failed fit, implausible prediction): rank it as plain
            # successive halving would, on its loss at this rung's compute, among the trials read there too.
            ranking = "observed"
            keep = [i for i, rec in enumerate(others) if abs(rec["compute"] / r - 1) < 1e-6]
            others = [others[i] for i in keep]
        in_pool = np.array([rec["target"] >= reach for rec in others], dtype=bool)
        everyone = [record, *others]
        at_risk = np.zeros(len(everyone), bool)
        at_risk[0] = True  # asynchronous: only the trial being decided gets the benefit of the doubt
        if ranking == "observed":
            scores = np.array([rec["loss"] for rec in everyone], dtype=float)
        else:
            mean = np.array([rec["forecast"] for rec in everyone], dtype=float)
            std = np.array([rec.get("std") or 0.0 for rec in everyone], dtype=float)
            if residuals is not None:
                mean, std, applied = calibrate_forecasts(mean, std, residuals, optimism=self._optimism)
                record["calibration"] = applied or {"n": float(np.isfinite(residuals).sum()), "applied": False}
            margin = np.zeros(len(everyone))
            margin[0] = record.get("margin") or 0.0
            if ranking == "best_loss":
                scores = forecast_scores(mean, std, optimism=self._optimism, at_risk=at_risk, margin=margin)
            else:
                scores = frontier_scores(
                    np.array([rec["compute"] for rec in everyone], dtype=float),
                    np.array([rec["loss"] for rec in everyone], dtype=float),
                    np.array([rec["target"] for rec in everyone], dtype=float),
                    mean, std, optimism=self._optimism, at_risk=at_risk, anchors=anchors, margin=margin,
                )
        gap = None
        min_improvement = record.get("min_improvement")
        if min_improvement is not None and observed is not None and ranking != "observed":
            # Only a forecast can say that a trial will not improve on what was observed: a trial whose forecast
            # fell back is ranked as plain successive halving ranks it, and the rule leaves it alone.
            end = float(optimistic(mean[:1], std[:1], self._optimism, margin=margin[:1])[0])
            gap = observed_gap(record["compute"], record["loss"], record["target"], end, observed, objective=ranking)
            record["observed_gap"] = clean_float(gap)
        decision = decide(
            float(scores[0]),
            scores[1:][in_pool],
            reduction_factor=self._eta,
            n_startup=self._n_startup,
            keep_below_frontier=self._keep and ranking == "frontier",
            observed_gap=gap,
            min_improvement=min_improvement,
        )
        return decision, ranking, float(scores[0])



def _system_attrs(study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> Any:
    """The trial's system attributes, read without loading the whole trial where that can be avoided.

    ``trial.system_attrs`` goes through Optuna's storage cache, which reloads a running trial in full
    (every intermediate value) from an RDB storage at each access: a cost that grows with the reports. The
    cache's backend answers the attributes alone.
    """
    backend = getattr(study._storage, "_backend", None)
    if backend is not None and hasattr(backend, "get_trial_system_attrs"):
        return backend.get_trial_system_attrs(trial._trial_id)
    return trial.system_attrs


def _check_study(study: optuna.study.Study) -> None:
    if study._is_multi_objective():
        raise ValueError(
            "SurrogateHalvingPruner: multi-objective studies cannot be pruned (Optuna does not support it); "
            "optimise the loss alone"
        )
    if study.direction != StudyDirection.MINIMIZE:
        raise ValueError(
            "SurrogateHalvingPruner: the study direction is maximize, but the pruner forecasts a loss to "
            "minimise; create the study with direction='minimize' and report the loss"
        )


def _check_positive(name: str, value: Any) -> None:
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}={value!r}: must be a positive finite number")


def _check_callable(name: str, fn: Callable[..., Any], call: str, n_args: int) -> None:
    """A function that cannot take the arguments it will be given is an error now, not in a trial."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: checked when called
    try:
        sig.bind(*([None] * n_args))
    except TypeError as exc:
        raise ValueError(f"{name}={fn!r}: it will be called as {call}, but {exc}") from None
