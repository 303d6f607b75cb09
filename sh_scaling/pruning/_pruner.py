"""SurrogateHalvingPruner: asynchronous successive halving on compute, ranked by learning-curve forecasts."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection

from sh_scaling.pruning._attrs import (
    DECISION_KEY,
    FIRST_RUNG_KEY,
    FORECAST_KEY,
    HOW_TO_REPORT,
    MAX_COMPUTE_KEY,
    MIN_COMPUTE_STUDY_KEY,
    PRUNED_KEY,
    clean_float,
    loss_at,
    observed_curve,
    rung_key,
)
from sh_scaling.surrogates._base import MIN_POINTS, Forecast, MultiCurveSurrogate, Surrogate, forecast

__all__ = ["SurrogateHalvingPruner"]

_SURROGATE_NAMES = ("powerlaw", "exponential", "mmf", "gp", "gp-multi")
_OBJECTIVES = ("best_loss", "frontier")
# A multi-curve surrogate is fitted on the deciding trial and at most this many other trials' curves (a GP over
# 20 curves x 20 points fits in about 15 ms).
_MAX_PEERS = 19
# Relative tolerance on compute comparisons: rung boundaries are products of floats.
_RTOL = 1e-9


class SurrogateHalvingPruner(BasePruner):
    """Asynchronous successive halving whose rungs are in compute, ranking trials by where they are going.

    Rung ``k`` sits at compute ``r_k = min_compute * rung_factor**k``. When a trial's reports first pass ``r_k``
    (with ``warmup_fraction * max_compute <= r_k < max_compute``), the pruner

    1. reads the trial's loss at exactly ``r_k``, interpolated (log-log) between the reports around it;
    2. asks the surrogate for the loss the trial would reach at its ``max_compute``, fitted on the points up to
       ``r_k`` (through :func:`sh_scaling.surrogates.forecast`, which falls back to the observed minimum, with
       the reason recorded, for short curves and failed fits); a rung is decided once the trial has three
       points up to it, so that forecasts, not observed minima, are compared;
    3. compares it with every other trial that has passed ``r_k``: those read at ``r_k`` when *they* crossed
       it (trials of different sizes are compared at equal compute, never on "their last value"), and those
       whose first evaluations already lay beyond ``r_k`` (larger models), with their first record;
    4. promotes the trial if it ranks in the top ``ceil(n / reduction_factor)`` of the ``n`` trials that go at
       least as far as it would next (a large model is not promoted merely for beating small models that are
       about to finish anyway), or, for the frontier objective, if it could lower the frontier; it prunes
       the trial otherwise. Trials are never paused (asynchronous SH, Li et al.,
       MLSys 2020).

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

    State: nothing about trials is kept in this object. Each rung decision, with the forecast behind it, is a
    system attribute of the trial (``sh_scaling:rung:<k>``); the latest decision and forecast final loss are
    user attributes (``sh_scaling:decision``, ``sh_scaling:forecast_final_loss``), visible in optuna-dashboard
    and readable by samplers. The study therefore runs unchanged on many threads, processes (JournalStorage)
    or machines (RDBStorage).

    Args:
        surrogate: ``"powerlaw"`` (default: a fit costs milliseconds), ``"exponential"``, ``"mmf"``, ``"gp"``,
            ``"gp-multi"``, or any object with the surrogate protocol (``fit(compute, loss)`` /
            ``predict(compute, return_std=True)``); objects are deep-copied before each fit. A multi-curve
            surrogate (``"gp-multi"``, or an object with ``fit_many``/``predict_many``) is fitted on the deciding
            trial together with the observed curves of up to 19 other trials, the most recent ones.
        max_compute: Compute a trial is meant to reach if never pruned: a number, or a function of the trial's
            params (``lambda p: 6 * n_params(p) * p["tokens"]``). :func:`sh_scaling.report` can also set it
            per trial. Required by one of these routes; must be positive.
        min_compute: Compute of the first rung. ``None``: the compute of the third report of the first trial
            to make three (stored in the study's system attributes, so every worker uses the same rungs). Set it
            explicitly for sweeps over model sizes, e.g. to the smallest model's third evaluation.
        reduction_factor: ``eta`` > 1: about ``1/eta`` of the trials at a rung go on. Default 4, as Optuna's
            ``SuccessiveHalvingPruner`` (Schram et al. use 2 in a synchronous, fixed-budget schedule; with
            asynchronous rungs 1.5x apart, 4 spent less for the same regret on both curve sets of
            ``benchmarks/bench_optuna_replay.py``; use 2 for a more conservative sweep).
        rung_factor: Ratio of compute between consecutive rungs. ``None``: ``reduction_factor`` (classic SH).
            Default 1.5: finer rungs than the cull rate decide each trial sooner after its first evaluations,
            which is where most compute is saved when model sizes differ.
        n_startup_trials: At each rung, the first ``n_startup_trials`` trials to arrive are promoted.
            Default 2: a decision between two forecasts is a coin toss where they are close; from the third
            arrival on, trials are ranked.
        warmup_fraction: No decision before a trial has spent this fraction of its ``max_compute`` (learning
            rate warm-up makes the first points useless for forecasts). Default 0.05.
        optimism: ``None`` or ``"mean"`` ranks on the forecast mean; a quantile ``q`` in (0, 0.5] gives the
            trial being decided the benefit of the doubt: its lower ``q`` quantile is set against the others'
            means. Default 0.4.
        objective: ``"frontier"`` (default) ranks on how far below the loss-compute frontier of the other
            trials the trial's forecast path goes, anywhere in the compute range, and keeps (whatever its rank)
            a trial whose optimistic path goes below the others' somewhere: a small model that could own the
            frontier at low compute is kept although it will never reach the best loss; this is what the
            fitted scaling law needs. ``"best_loss"`` (the paper's proxy) ranks on the forecast loss at
            ``max_compute``.
        compute_fn: ``compute_fn(params, step)`` gives the compute of a step reported with plain
            ``trial.report`` (used when no compute was reported with :func:`sh_scaling.report`).

    Raises (from :meth:`prune`, so the trial fails with the message): ``ValueError`` for a maximize or
    multi-objective study, a trial with losses but no compute, and a missing or non-positive ``max_compute``.
    A NaN or infinite loss prunes the trial, with the reason in ``sh_scaling:pruned``.

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
        n_startup_trials: int = 2,
        warmup_fraction: float = 0.05,
        optimism: float | str | None = 0.4,
        objective: str = "frontier",
        compute_fn: Callable[[dict[str, Any], int], float] | None = None,
    ) -> None:
        if isinstance(surrogate, str):
            if surrogate not in _SURROGATE_NAMES:
                raise ValueError(f"surrogate={surrogate!r}: choose one of {list(_SURROGATE_NAMES)} or pass an object")
        elif not isinstance(surrogate, (Surrogate, MultiCurveSurrogate)):
            raise ValueError(
                f"surrogate={surrogate!r} has neither fit/predict nor fit_many/predict_many (the surrogate protocol)"
            )
        if max_compute is not None and not callable(max_compute):
            _check_positive("max_compute", max_compute)
        if min_compute is not None:
            _check_positive("min_compute", min_compute)
        if not (isinstance(reduction_factor, (int, float)) and math.isfinite(reduction_factor) and reduction_factor > 1):
            raise ValueError(f"reduction_factor={reduction_factor!r}: must be a number > 1")
        if rung_factor is not None and not (
            isinstance(rung_factor, (int, float)) and math.isfinite(rung_factor) and rung_factor > 1
        ):
            raise ValueError(f"rung_factor={rung_factor!r}: must be a number > 1 (or None for reduction_factor)")
        if not (isinstance(n_startup_trials, int) and n_startup_trials >= 0):
            raise ValueError(f"n_startup_trials={n_startup_trials!r}: must be an integer >= 0")
        if not (isinstance(warmup_fraction, (int, float)) and 0 <= warmup_fraction < 1):
            raise ValueError(f"warmup_fraction={warmup_fraction!r}: must be in [0, 1)")
        if optimism == "mean":
            optimism = None
        if optimism is not None and not (isinstance(optimism, (int, float)) and 0 < optimism <= 0.5):
            raise ValueError(f"optimism={optimism!r}: use None / 'mean' or a lower quantile in (0, 0.5]")
        if objective not in _OBJECTIVES:
            raise ValueError(f"objective={objective!r}: choose one of {list(_OBJECTIVES)}")
        if compute_fn is not None and not callable(compute_fn):
            raise ValueError(f"compute_fn={compute_fn!r}: must be callable as compute_fn(params, step)")
        self._surrogate = surrogate
        self._max_compute = max_compute
        self._min_compute = None if min_compute is None else float(min_compute)
        self._eta = float(reduction_factor)
        self._spacing = float(reduction_factor if rung_factor is None else rung_factor)
        self._n_startup = n_startup_trials
        self._warmup = float(warmup_fraction)
        self._optimism = None if optimism is None else float(optimism)
        self._objective = objective
        self._compute_fn = compute_fn
        # The only lazy state: the study's first rung once it is fixed in storage (per study; read-only after).
        # Keyed weakly by storage, so that a storage that is gone (and its id reused) is never confused.
        self._first_rung_cache: weakref.WeakKeyDictionary[Any, dict[int, float]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (workers of other frameworks receive the pruner by pickle); the cache is rebuilt from storage.
        state = self.__dict__.copy()
        del state["_lock"], state["_first_rung_cache"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._first_rung_cache = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------------------
    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        _check_study(study)
        values = trial.intermediate_values
        if not values:
            return False
        attrs = trial.system_attrs
        if PRUNED_KEY in attrs:
            return True
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
        target = self._target(trial, attrs)
        first = self._first_rung(study, compute)
        if first is None:
            return False
        log_eta = math.log(self._spacing)
        k_lo = max(0, math.ceil(math.log(compute[0] / first) / log_eta - _RTOL))
        k_hi = math.floor(math.log(compute[-1] / first) / log_eta + _RTOL)
        for k in range(k_lo, k_hi + 1):
            r = first * self._spacing**k
            if r >= target * (1 - _RTOL):
                break
            if r < self._warmup * target:
                continue
            # A rung is decided once the trial has MIN_POINTS points up to it (its loss at the rung included),
            # so that what is compared at a rung is a surrogate forecast, not an observed minimum set against
            # forecasts; a trial whose first reports lie beyond the early rungs starts at a later one.
            if int(np.count_nonzero(compute < r * (1 - _RTOL))) + 1 < MIN_POINTS:
                continue
            record = attrs.get(rung_key(k))
            if record is not None:
                if not record.get("promoted", True):
                    return True
                continue
            if not self._decide(study, trial, attrs, k, r, compute, loss, target, notes):
                return True
        return False

    # ----------------------------------------------------------------------------------------------------
    def _target(self, trial: optuna.trial.FrozenTrial, attrs: Mapping[str, Any]) -> float:
        value = attrs.get(MAX_COMPUTE_KEY)
        if value is None:
            if self._max_compute is None:
                raise ValueError(
                    f"trial {trial.number}: no max_compute; pass max_compute= to SurrogateHalvingPruner (a number "
                    "or a function of trial.params) or to sh_scaling.report"
                )
            value = self._max_compute(dict(trial.params)) if callable(self._max_compute) else self._max_compute
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"trial {trial.number}: max_compute is {value!r}; it must be a positive finite number")
        return value

    def _first_rung(self, study: optuna.study.Study, compute: np.ndarray) -> float | None:
        if self._min_compute is not None:
            return self._min_compute
        storage, sid = study._storage, study._study_id
        with self._lock:
            cached = self._first_rung_cache.get(storage, {}).get(sid)
        if cached is not None:
            return cached
        value = study._storage.get_study_system_attrs(study._study_id).get(MIN_COMPUTE_STUDY_KEY)
        if value is None:
            if compute.size < MIN_POINTS:
                return None
            value = float(compute[MIN_POINTS - 1])
            study._storage.set_study_system_attr(study._study_id, MIN_COMPUTE_STUDY_KEY, value)
        with self._lock:
            self._first_rung_cache.setdefault(storage, {})[sid] = float(value)
        return float(value)

    def _shares_curves(self) -> bool:
        return self._surrogate == "gp-multi" or isinstance(self._surrogate, MultiCurveSurrogate)

    def _peer_curves(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> list[tuple[Any, Any]]:
        """Other trials' observed curves, for a multi-curve surrogate to borrow strength from (the most recent
        ``_MAX_PEERS`` with at least ``MIN_POINTS`` clean points)."""
        peers: list[tuple[Any, Any]] = []
        for other in reversed(study.get_trials(deepcopy=False)):
            if other._trial_id == trial._trial_id or not other.intermediate_values:
                continue
            c, l, _ = observed_curve(other.intermediate_values, other.system_attrs, other.params, self._compute_fn)
            ok = np.isfinite(l) & (l > 0)
            if ok.sum() >= MIN_POINTS:
                peers.append((c[ok], l[ok]))
                if len(peers) == _MAX_PEERS:
                    break
        return peers

    def _forecast(
        self, compute: np.ndarray, loss: np.ndarray, target: float, peers: Sequence[tuple[Any, Any]] = ()
    ) -> Forecast:
        if np.any(loss <= 0):
            reason = "non-positive loss: surrogates model positive losses"
        else:
            try:
                # Peers are fitted with the trial (a multi-curve model shares information across curves); only
                # the trial's own forecast is used.
                fc = forecast(
                    self._surrogate, [(compute, loss), *peers], [target, *(float(c[-1]) for c, _ in peers)]
                )
                return Forecast(fc.mean[:1], fc.std[:1], fc.fallback[:1], fc.reason[:1])
            except Exception as exc:  # noqa: BLE001 - the study must go on; the reason is recorded
                reason = f"forecast failed: {type(exc).__name__}: {exc}"
        return Forecast(np.array([loss.min()]), np.zeros(1), np.ones(1, bool), [reason])

    def _decide(
        self,
        study: optuna.study.Study,
        trial: optuna.trial.FrozenTrial,
        attrs: Mapping[str, Any],
        k: int,
        r: float,
        compute: np.ndarray,
        loss: np.ndarray,
        target: float,
        notes: list[str],
    ) -> bool:
        loss_r = loss_at(compute, loss, r)
        before = compute < r * (1 - _RTOL)
        peers = self._peer_curves(study, trial) if self._shares_curves() else []
        fc = self._forecast(np.append(compute[before], r), np.append(loss[before], loss_r), target, peers)
        mean, std = float(fc.mean[0]), float(fc.std[0])
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
        if notes:
            record["skipped_reports"] = notes[:5]

        key = rung_key(k)
        # Competitors: every trial that has passed this rung's compute. Those with a record here were read at
        # exactly r. Those that started beyond r (a larger model's first evaluations already cost more) have
        # no value at r; they take part with their first record, which is later in compute and better informed.
        others: list[dict[str, Any]] = []
        floor = math.inf
        for other in study.get_trials(deepcopy=False):
            if other._trial_id == trial._trial_id:
                continue
            sa = other.system_attrs
            rec = sa.get(key)
            if rec is None:
                j = sa.get(FIRST_RUNG_KEY)
                rec = sa.get(rung_key(j)) if j is not None and j > k else None
            if rec is not None and rec.get("forecast") is not None:
                others.append(rec)
            if self._objective == "frontier":
                for j in range(k):
                    low = sa.get(rung_key(j))
                    if low is not None:
                        floor = min(floor, low["loss"])
        # The quota applies among the trials that compete for the same next slice of compute: those meant to
        # go at least as far as this one does next (to the next rung, or to its end if that comes first). A
        # large model is not promoted merely for beating small ones that are about to finish anyway.
        reach = min(target, r * self._spacing) * (1 - _RTOL)
        ranking = self._objective
        if record["fallback"]:
            # No forecast for this trial (too short, failed fit, implausible prediction): rank it as plain
            # successive halving would, on its loss at this rung's compute, among the trials read there too.
            ranking = "observed"
            others = [rec for rec in others if abs(rec["compute"] / r - 1) < 1e-6]
        in_pool = np.array([rec["target"] >= reach for rec in others], dtype=bool)
        n = int(in_pool.sum()) + 1
        if n <= self._n_startup:
            promoted, why = True, f"startup ({n} of {self._n_startup} trials at this rung)"
            record.update(n_competitors=n)
        else:
            if ranking == "observed":
                scores = np.array([loss_r] + [rec["loss"] for rec in others], dtype=float)
            else:
                scores = self._scores([record, *others], floor)
            rank = 1 + int(np.sum(scores[1:][in_pool] < scores[0]))
            quota = math.ceil(n / self._eta)
            promoted = rank <= quota
            if ranking == "frontier" and scores[0] < 0:
                # Its optimistic path goes below every other trial's forecast somewhere: it could lower the
                # frontier, so it is kept whatever its rank.
                promoted = True
            why = f"ranked {rank} of {n} ({ranking} score {scores[0]:.5g}); top {quota} go on"
            record.update(n_competitors=n, rank=rank, quota=quota, score=clean_float(scores[0]), ranking=ranking)
        record.update(objective=self._objective, promoted=promoted)
        source = "observed minimum" if record["fallback"] else "surrogate"
        text = (
            f"{'promoted' if promoted else 'pruned'} at rung {k} (compute {r:.4g}): loss {loss_r:.5g}, "
            f"forecast {mean:.5g} at {target:.4g} ({source}); {why}"
        )
        storage, tid = study._storage, trial._trial_id
        storage.set_trial_system_attr(tid, key, record)
        if FIRST_RUNG_KEY not in attrs:
            storage.set_trial_system_attr(tid, FIRST_RUNG_KEY, k)
        storage.set_trial_user_attr(tid, FORECAST_KEY, clean_float(mean))
        storage.set_trial_user_attr(tid, DECISION_KEY, text)
        if not promoted:
            storage.set_trial_system_attr(tid, PRUNED_KEY, text)
        return promoted

    def _scores(self, records: Sequence[Mapping[str, Any]], floor: float) -> np.ndarray:
        """Lower is better; ``records[0]`` is the trial being decided.

        Optimism is given to the trial being decided only (its lower quantile against the others' means): the
        benefit of the doubt goes to the trial at risk, which is what protects a young, uncertain forecast.
        """
        mean = np.array([rec["forecast"] for rec in records], dtype=float)
        std = np.array([rec.get("std") or 0.0 for rec in records], dtype=float)
        optimistic = Forecast(mean, std, np.zeros(len(records), bool)).optimistic(self._optimism)
        if self._objective == "best_loss":
            return np.concatenate([optimistic[:1], mean[1:]])
        start = np.array([rec["compute"] for rec in records], dtype=float)
        loss_r = np.array([rec["loss"] for rec in records], dtype=float)
        target = np.array([rec["target"] for rec in records], dtype=float)
        return _frontier_scores(start, loss_r, target, mean, optimistic, floor)


def _frontier_scores(
    start: np.ndarray,
    loss_start: np.ndarray,
    target: np.ndarray,
    mean: np.ndarray,
    optimistic: np.ndarray,
    floor: float,
    n_grid: int = 16,
) -> np.ndarray:
    """How far below the other trials' frontier each trial's forecast path goes (log loss; lower is better).

    Trial ``i``'s path runs from its loss ``loss_start[i]`` at the rung compute ``start[i]`` to its forecast at
    ``target[i]``, straight in log-log space (a power law between the two), stays flat after the target (the
    frontier is the lowest loss reached at compute <= C), and is unknown before ``start[i]``. The frontier of
    the *others* at each compute is the lower envelope of their mean paths and ``floor``, the lowest loss
    observed by anyone at lower rungs. The score is the minimum over a log grid from ``start[0]`` (the rung
    being decided) to the largest target of ``log(own optimistic path) - log(others' frontier)``: negative
    where the trial could lower the frontier.
    """
    n = len(loss_start)
    if n == 1:
        return np.full(1, -np.inf)
    x_start = np.log(start)
    grid = np.linspace(x_start[0], max(float(np.log(target).max()), x_start[0] + 1e-6), n_grid)
    span = np.maximum(np.log(target) - x_start, 1e-12)
    frac = np.clip((grid[None, :] - x_start[:, None]) / span[:, None], 0.0, 1.0)
    unknown = grid[None, :] < x_start[:, None] * (1 - 1e-12)

    def paths(end: np.ndarray) -> np.ndarray:
        first = np.log(np.maximum(loss_start, 1e-300))[:, None]
        last = np.log(np.maximum(np.minimum(end, loss_start), 1e-300))[:, None]
        return np.where(unknown, np.inf, first + frac * (last - first))

    mean_paths = paths(mean)
    own = paths(optimistic)
    order = np.argsort(mean_paths, axis=0)
    lowest = np.take_along_axis(mean_paths, order[:1], axis=0)[0]
    second = np.take_along_axis(mean_paths, order[1:2], axis=0)[0]
    others = np.where(order[0][None, :] == np.arange(n)[:, None], second[None, :], lowest[None, :])
    if math.isfinite(floor) and floor > 0:
        others = np.minimum(others, math.log(floor))
    with np.errstate(invalid="ignore"):
        gap = own - others
    gap = np.where(unknown, np.inf, gap)  # no claim where the trial's own path is unknown
    return np.min(gap, axis=1)


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
