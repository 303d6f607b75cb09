"""``ScalingPriorSampler``: a wrapper that puts a scaling-law prior in front of any Optuna sampler."""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sh_scaling.keys import FROM_PRIOR_KEY, PREDICTED_LOSS_KEY, PRIOR_ERROR_KEY, PRIOR_WEIGHT_KEY
from sh_scaling.sampling._priors import (
    count_evidence,
    draw_uniform,
    evidence_value,
    prior_log_weights,
    prior_weight,
)

__all__ = ["ScalingPriorSampler"]


_EVIDENCE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
#: Without ``search_space``, warn when this many finished trials never suggested a parameter the prior reads.
_TRIALS_BEFORE_NAME_WARNING = 3


@dataclass(frozen=True)
class _Decision:
    use_prior: bool
    weight: float
    error: str | None = None  # the prior failed while the decision was made


class _PriorFailed(Exception):
    """The prior raised or answered nonsense: the trial falls back to the base sampler (the message says why)."""


class ScalingPriorSampler(BaseSampler):
    """Propose model shapes where scaling laws predict low loss, then let the evidence take over.

    Early in a sweep there is nothing to learn from, and samplers such as TPE start with random trials. Scaling
    laws already know a lot about which shapes are good for a budget (the compute-optimal size, the vocabulary
    that goes with it, wider rather than deeper at a fixed training time). This sampler uses that knowledge as a
    prior in the spirit of piBO (Hvarfner et al., ICLR 2022) and hands over to ``base_sampler`` as trials finish.

    How a trial is sampled:

    1. In :meth:`before_trial` the sampler counts the *evidence* ``n``: finished trials, and pruned trials whose
       forecast final loss a pruner stored under ``user_attrs["sh_scaling:forecast_final_loss"]``
       (:data:`sh_scaling.sampling.FORECAST_KEY`). The prior weight is ``w = beta / (beta + n)``
       (piBO's ``beta / n`` exponent, finite at ``n = 0``). With ``adaptive=True`` it is further multiplied by
       the agreement between the prior and the evidence (below).
    2. With probability ``w`` the trial is a *prior trial*: ``n_candidates`` points are drawn uniformly from the
       shape parameters' search space, scored by the prior's predicted loss, and one is drawn with probability
       proportional to ``pi(x) ** w`` (sampling-importance-resampling from the prior, flattened as the evidence
       grows, as in piBO); see :mod:`sh_scaling.sampling._priors` for the density. Every other parameter of the
       trial (learning rate, ...) is left to ``base_sampler``.
    3. Otherwise the trial belongs to ``base_sampler`` entirely. Prior trials are ordinary trials in the study,
       so the base sampler learns from them (for TPE they replace the random start-up trials).

    Because ``w`` decays like ``1/n``, a wrong prior costs a bounded number of trials early on and the sampler
    converges to its base sampler. ``adaptive=True`` shortens that further: once ``min_agreement_trials`` trials
    carry evidence, the Spearman rank correlation ``rho`` between the prior's predicted loss and the observed
    values (negated for a maximised objective) is computed and ``w`` is multiplied by ``clip(2 * rho, 0, 1)``:
    a prior that ranks the observed trials well keeps its full weight, one that ranks them no better than chance
    (or backwards) is switched off. Rank correlation is unit free, so the objective need not be on the scale of
    the prior's loss (it may even be an accuracy, with ``direction="maximize"``).

    State: the only cross-trial information is read from the study (trial states, values, ``user_attrs``), and
    each trial's decision is written to its ``system_attrs`` (``"sh_scaling:prior_weight"``,
    ``"sh_scaling:from_prior"``, ``"sh_scaling:prior_predicted_loss"``), so the sampler works with ``n_jobs > 1``
    (lazy caches are guarded by a lock) and across processes sharing an RDB or journal storage.

    A prior that fails never fails the trial: the prior is consulted inside ``study.ask()`` (to measure its
    agreement) and when the trial samples, and an exception there would leave the trial ``RUNNING`` for good or
    abort ``optimize``. If the prior raises (a prior service that is down, a ``KeyError`` from a user's model) or
    ``predict_many`` returns the wrong number of values, the trial is given to the base sampler, the reason is
    stored in its ``system_attrs["sh_scaling:prior_error"]`` (:data:`PRIOR_ERROR_KEY`), one warning is issued
    per sampler, and the next trial asks the prior again (a service may come back).

    Args:
        prior:
            A :class:`~sh_scaling.sampling.ScalingLawPrior` (budget in FLOPs or hours, and how the parameters map
            to a transformer), or any callable ``params -> predicted loss`` (a ``float``; return ``nan``, or raise
            ``ValueError``, ``ArithmeticError``, ``TypeError`` or ``KeyError``, for configurations it cannot score;
            any other exception means the prior is unavailable, see above). An object with
            ``predict_many(list_of_params)`` is scored in one call (any exception from it means unavailable).
        base_sampler:
            The sampler that takes over; default ``TPESampler(seed=seed)``.
        search_space:
            Distributions of the shape parameters the prior reads, e.g.
            ``{"n_layers": IntDistribution(2, 48), "d_model": IntDistribution(128, 4096, log=True)}``. With it the
            prior is used from the very first trial. Without it, the distributions are learnt from the study's
            trials (so the first trial of a fresh study goes to the base sampler); a plain callable prior needs it,
            since the sampler cannot otherwise know which parameters it reads.
        beta:
            Prior strength, in trials: the weight halves after ``beta`` trials of evidence. Default 10.
        temperature:
            Sharpness of the prior (scale free, see :mod:`sh_scaling.sampling._priors`); default 0.1.
        n_candidates:
            Candidates scored per prior trial; default 256.
        adaptive:
            Scale ``w`` by the agreement between prior and evidence (see above); default ``True``.
        min_agreement_trials:
            Evidence needed before the agreement is measured; default 8.
        seed:
            Seed of the prior's draws (and of the default base sampler). Each trial's draws are seeded by
            ``(seed, trial.number)``, so processes sharing a seed still draw different points.

    Example:

        .. code-block:: python

            import optuna
            from sh_scaling.sampling import ScalingLawPrior, ScalingPriorSampler

            prior = ScalingLawPrior(
                flops=1e20,
                params={"n_layers": "n_layers", "d_model": "d_model", "vocab_size": "vocab"},
            )
            sampler = ScalingPriorSampler(prior, seed=0)
            study = optuna.create_study(sampler=sampler)
    """

    def __init__(
        self,
        prior: Any,
        base_sampler: BaseSampler | None = None,
        *,
        search_space: Mapping[str, BaseDistribution] | None = None,
        beta: float = 10.0,
        temperature: float = 0.1,
        n_candidates: int = 256,
        adaptive: bool = True,
        min_agreement_trials: int = 8,
        seed: int | None = None,
    ) -> None:
        if not callable(prior) and not hasattr(prior, "predict_many"):
            raise ValueError(f"prior must be a ScalingLawPrior or a callable params -> loss, got {prior!r}")
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive finite number, got {beta!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        if not (isinstance(n_candidates, int) and n_candidates >= 1):
            raise ValueError(f"n_candidates must be a positive integer, got {n_candidates!r}")
        if not (isinstance(min_agreement_trials, int) and min_agreement_trials >= 3):
            raise ValueError(f"min_agreement_trials must be an integer >= 3, got {min_agreement_trials!r}")
        if base_sampler is not None and not isinstance(base_sampler, BaseSampler):
            raise ValueError(f"base_sampler must be an optuna BaseSampler, got {base_sampler!r}")

        names = _prior_param_names(prior, search_space)
        if search_space is not None:
            for name, dist in search_space.items():
                if not isinstance(dist, BaseDistribution):
                    raise ValueError(f"search_space[{name!r}] must be an optuna distribution, got {dist!r}")
        self._prior = prior
        self._names: tuple[str, ...] = names
        self._search_space = dict(search_space) if search_space is not None else None
        self._base = base_sampler if base_sampler is not None else TPESampler(seed=seed)
        self._beta = float(beta)
        self._temperature = float(temperature)
        self._n_candidates = n_candidates
        self._adaptive = adaptive
        self._min_agreement = min_agreement_trials
        self._entropy = seed if seed is not None else _fresh_entropy()

        self._lock = threading.Lock()
        self._decisions: dict[int, _Decision] = {}  # trial_id -> decision, for trials running in this process
        self._learned_spaces: dict[tuple[int, int], dict[str, BaseDistribution]] = {}
        self._warned_names: set[tuple[int, int]] = set()
        self._warned_failure = False
        self._loss_cache: dict[tuple[Any, ...], float] = {}

    # ------------------------------------------------------------------ the Optuna sampler contract

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        _raise_if_multi_objective(study)
        space = dict(self._base.infer_relative_search_space(study, trial))
        if self._decision(study, trial).use_prior:
            prior_space = self._prior_space(study)
            if prior_space is not None:
                space.update(prior_space)
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        _raise_if_multi_objective(study)
        decision = self._decision(study, trial)
        if not (decision.use_prior and all(n in search_space for n in self._names)):
            return dict(self._base.sample_relative(study, trial, search_space))
        try:
            drawn = self._sample_from_prior(study, trial, {n: search_space[n] for n in self._names}, decision)
        except _PriorFailed as err:
            self._record_failure(study, trial, str(err))
            drawn = {}
        # The base sees the relative space it inferred itself, less what the prior drew.
        own = self._base.infer_relative_search_space(study, trial)
        base_space = {k: v for k, v in own.items() if k not in drawn}
        out = dict(self._base.sample_relative(study, trial, base_space)) if base_space else {}
        out.update(drawn)
        return out

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        _raise_if_multi_objective(study)
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        if study._is_multi_objective():
            return  # the error is raised by the sample_* calls, inside the trial, so the trial is marked failed
        decision = self._decide(study, trial)
        with self._lock:
            self._decisions[trial._trial_id] = decision
        study._storage.set_trial_system_attr(trial._trial_id, PRIOR_WEIGHT_KEY, decision.weight)
        study._storage.set_trial_system_attr(trial._trial_id, FROM_PRIOR_KEY, decision.use_prior)
        if decision.error is not None:
            self._record_failure(study, trial, decision.error)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        with self._lock:
            self._decisions.pop(trial._trial_id, None)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._entropy = _fresh_entropy()
        self._base.reseed_rng()

    # ------------------------------------------------------------------ public helpers

    @property
    def base_sampler(self) -> BaseSampler:
        """The wrapped sampler."""
        return self._base

    def prior_weight(self, study: Study) -> float:
        """The prior weight ``w`` the next trial of ``study`` would start with (for monitoring; 0 while the prior
        fails)."""
        return self._weight(study)[0]

    # ------------------------------------------------------------------ internals

    def _trial_rng(self, trial: FrozenTrial, salt: int) -> np.random.Generator:
        return np.random.default_rng([self._entropy, trial.number, salt])

    def _weight(self, study: Study) -> tuple[float, str | None]:
        """The prior weight, and why the prior failed while measuring its agreement (the weight is then 0)."""
        trials = study.get_trials(deepcopy=False, states=_EVIDENCE_STATES)
        w = prior_weight(count_evidence(trials), self._beta)
        if self._adaptive:
            try:
                rho = self._agreement(study, trials)
            except _PriorFailed as err:
                return 0.0, str(err)
            if rho is not None:
                w *= float(np.clip(2.0 * rho, 0.0, 1.0))
        return w, None

    def _decide(self, study: Study, trial: FrozenTrial) -> _Decision:
        w, error = self._weight(study)
        if error is not None:
            return _Decision(False, w, error)
        fixed = trial.system_attrs.get("fixed_params", {}) or {}
        if all(n in fixed for n in self._names):
            return _Decision(False, w)  # an enqueued trial that fixes the whole shape: nothing to propose
        if self._prior_space(study) is None:
            return _Decision(False, w)  # no search space yet (learnt from the trials; warns on unknown names)
        use = bool(self._trial_rng(trial, 0).random() < w)
        return _Decision(use, w)

    def _decision(self, study: Study, trial: FrozenTrial) -> _Decision:
        with self._lock:
            decision = self._decisions.get(trial._trial_id)
        if decision is not None:
            return decision
        # Not started in this process (ask in one process, sample in another): read what before_trial stored.
        attrs = study._storage.get_trial(trial._trial_id).system_attrs
        if FROM_PRIOR_KEY in attrs:
            decision = _Decision(bool(attrs[FROM_PRIOR_KEY]), float(attrs.get(PRIOR_WEIGHT_KEY, 0.0)))
        else:
            decision = self._decide(study, trial)
        with self._lock:
            self._decisions[trial._trial_id] = decision
        return decision

    def _prior_space(self, study: Study) -> dict[str, BaseDistribution] | None:
        if self._search_space is not None:
            return {n: self._search_space[n] for n in self._names}
        key = (id(study._storage), study._study_id)  # a sampler object may serve several studies
        with self._lock:
            learned = self._learned_spaces.get(key)
        if learned is not None:
            return dict(learned)
        found: dict[str, BaseDistribution] = {}
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            for n in self._names:
                if n not in found and n in t.distributions:
                    found[n] = t.distributions[n]
            if len(found) == len(self._names):
                with self._lock:
                    self._learned_spaces[key] = dict(found)
                return found
        finished = [t for t in trials if t.state.is_finished() and t.distributions]
        if len(finished) >= _TRIALS_BEFORE_NAME_WARNING:
            with self._lock:
                warn = key not in self._warned_names
                self._warned_names.add(key)
            if warn:
                missing = sorted(set(self._names) - set(found))
                seen = sorted({n for t in finished for n in t.distributions})
                warnings.warn(
                    f"ScalingPriorSampler: the prior reads parameter(s) {missing}, which no trial of this study "
                    f"has suggested (parameters seen: {seen}); the prior is not used. Check the parameter names "
                    "given to the prior, or pass search_space=.",
                    stacklevel=2,
                )
        return None

    def _sample_from_prior(
        self,
        study: Study,
        trial: FrozenTrial,
        space: dict[str, BaseDistribution],
        decision: _Decision,
    ) -> dict[str, Any]:
        rng = self._trial_rng(trial, 1)
        known = dict(trial.system_attrs.get("fixed_params", {}) or {})
        known.update(trial.params)
        free = [n for n in self._names if n not in known and not space[n].single()]
        if not free:
            return {}
        k = self._n_candidates
        columns = {n: draw_uniform(space[n], rng, k) for n in free}
        held = {n: known[n] if n in known else _single_value(space[n]) for n in self._names if n not in columns}
        candidates = [{**held, **{n: columns[n][i] for n in free}} for i in range(k)]
        losses = self._predict(candidates)
        logw = prior_log_weights(losses, decision.weight, self._temperature)
        if not np.isfinite(logw).any():
            warnings.warn(
                "ScalingPriorSampler: the prior could not score any candidate (all predicted losses are "
                "non-finite); this trial falls back to the base sampler.",
                stacklevel=2,
            )
            return {}
        p = np.exp(logw - logw.max())
        p /= p.sum()
        i = int(rng.choice(k, p=p))
        study._storage.set_trial_system_attr(trial._trial_id, PREDICTED_LOSS_KEY, float(losses[i]))
        return {n: candidates[i][n] for n in free}

    def _predict(self, candidates: list[dict[str, Any]]) -> np.ndarray:
        """The prior's loss for each candidate (``nan``: cannot score it).

        Raises:
            _PriorFailed: the prior raised (for a callable, anything but the "cannot score" exceptions), or
                ``predict_many`` did not return one number per candidate.
        """
        predict_many = getattr(self._prior, "predict_many", None)
        if predict_many is None:
            return np.array([_safe_call(self._prior, c) for c in candidates], dtype=float)
        # The prior is user code or a remote service: whatever it raises, the trial must go on without it.
        try:
            raw = predict_many(candidates)
        except Exception as err:
            raise _PriorFailed(f"predict_many raised {type(err).__name__}: {err}") from err
        try:
            out = np.asarray(raw, dtype=float)
        except (TypeError, ValueError) as err:
            raise _PriorFailed(f"predict_many returned {type(raw).__name__}, not numbers ({err})") from None
        if out.shape != (len(candidates),):
            raise _PriorFailed(
                f"predict_many returned {out.size} value(s) of shape {out.shape} for {len(candidates)} configurations"
            )
        return out

    def _record_failure(self, study: Study, trial: FrozenTrial, reason: str) -> None:
        study._storage.set_trial_system_attr(trial._trial_id, PRIOR_ERROR_KEY, reason)
        with self._lock:
            first = not self._warned_failure
            self._warned_failure = True
        if first:
            warnings.warn(
                f"ScalingPriorSampler: the prior failed ({reason}); trials fall back to the base sampler while it "
                f"fails, each with the reason in system_attrs[{PRIOR_ERROR_KEY!r}]. This warning is shown once.",
                stacklevel=3,
            )

    def _agreement(self, study: Study, trials: Sequence[FrozenTrial]) -> float | None:
        """Spearman correlation between the prior's predicted loss and the evidence (``None``: too little)."""
        pairs: list[tuple[dict[str, Any], float]] = []
        for t in trials:
            v = evidence_value(t)
            if v is not None and all(n in t.params for n in self._names):
                pairs.append(({n: t.params[n] for n in self._names}, v))
        if len(pairs) < self._min_agreement:
            return None
        keys = [tuple(p[n] for n in self._names) for p, _ in pairs]
        with self._lock:
            missing = [i for i, key in enumerate(keys) if key not in self._loss_cache]
        if missing:
            new = self._predict([pairs[i][0] for i in missing])
            with self._lock:
                for i, loss in zip(missing, new):
                    self._loss_cache[keys[i]] = float(loss)
        with self._lock:
            predicted = np.array([self._loss_cache[key] for key in keys])
        observed = np.array([v for _, v in pairs])
        if study.direction == StudyDirection.MAXIMIZE:
            observed = -observed
        ok = np.isfinite(predicted) & np.isfinite(observed)
        if ok.sum() < self._min_agreement or np.ptp(predicted[ok]) == 0 or np.ptp(observed[ok]) == 0:
            return None
        from scipy.stats import spearmanr  # imported when first needed: scipy.stats is slow to import

        rho = spearmanr(predicted[ok], observed[ok]).statistic
        return float(rho) if math.isfinite(rho) else None


def _prior_param_names(prior: Any, search_space: Mapping[str, BaseDistribution] | None) -> tuple[str, ...]:
    declared = getattr(prior, "param_names", None)
    if declared is not None:
        names = tuple(declared)
        if search_space is not None:
            unknown = sorted(set(names) - set(search_space))
            if unknown:
                raise ValueError(
                    f"search_space has no distribution for the prior's parameter(s) {unknown}; "
                    f"search_space names: {sorted(search_space)}"
                )
        return names
    if search_space is None or not search_space:
        raise ValueError(
            "a callable prior needs search_space={param name: distribution} naming the parameters it reads"
        )
    return tuple(search_space)


def _single_value(dist: BaseDistribution) -> Any:
    return optuna.distributions._get_single_value(dist)


def _safe_call(fn: Callable[[dict[str, Any]], float], params: dict[str, Any]) -> float:
    """``fn(params)``; ``nan`` when it says it cannot score this configuration.

    Raises:
        _PriorFailed: any other exception (the prior itself is broken or unavailable).
    """
    try:
        v = float(fn(params))
    except (ValueError, ArithmeticError, TypeError, KeyError):
        return math.nan
    except Exception as err:
        raise _PriorFailed(f"the prior raised {type(err).__name__}: {err}") from err
    return v if math.isfinite(v) else math.nan


def _raise_if_multi_objective(study: Study) -> None:
    if study._is_multi_objective():
        raise ValueError(
            "ScalingPriorSampler supports single-objective studies only: the prior predicts one loss per "
            f"configuration, and this study has {len(study.directions)} objectives."
        )


def _fresh_entropy() -> int:
    return int.from_bytes(os.urandom(8), "little")
