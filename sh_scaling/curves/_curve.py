"""Learning curves: the one data type every other part of the package reads."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from sh_scaling.keys import DECISION_KEY, FORECAST_KEY, MAX_COMPUTE_KEY, SCHEDULE_KEY, rung_records
from sh_scaling.pruning import reported_compute
from sh_scaling.schedules import Schedule, schedule_from_dict

__all__ = ["Curve", "CurveSet", "CurveWarning", "DEFAULT_STATES", "from_study"]

#: Columns :meth:`CurveSet.to_frame` writes for the points; metadata may not use these names.
_POINT_COLUMNS = ("run_id", "compute", "loss")


class CurveWarning(UserWarning):
    """Raised (as a warning) when a curve had to be cleaned: NaN dropped, points sorted or averaged."""


@dataclass(frozen=True)
class Curve:
    """One learning curve: loss against cumulative training compute.

    Build it with :meth:`Curve.from_arrays`, which validates and cleans the points. After construction
    ``compute`` is strictly increasing and positive and ``loss`` is finite and positive, so every consumer can
    work in log-log space without further checks.

    Attributes:
        id: Identifier of the run (a string; loaders convert numeric ids).
        compute: Cumulative training compute at each evaluation, in ``unit``.
        loss: Validation loss at each evaluation.
        meta: Free-form metadata (parameter count, architecture, ...).
        unit: The compute unit, for labels only (``"FLOPs"`` by default).
    """

    id: str
    compute: np.ndarray
    loss: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)
    unit: str = "FLOPs"

    @classmethod
    def from_arrays(
        cls,
        id: Any,
        compute: Iterable[float],
        loss: Iterable[float],
        meta: Mapping[str, Any] | None = None,
        *,
        unit: str = "FLOPs",
        warn: bool = True,
    ) -> Curve:
        """Validate and clean raw points into a :class:`Curve`.

        Outcomes, in order:
          * non-finite losses or compute values are dropped (one :class:`CurveWarning` with the count);
          * points with zero compute (the untrained model) are dropped silently: they have no place in
            log-compute space;
          * negative compute or a loss <= 0 raise ``ValueError`` naming the curve;
          * unsorted compute is sorted and duplicated compute values are averaged (one warning each).

        Raises:
            ValueError: on shape mismatch, negative compute, non-positive loss, or when no point is left.
        """
        cid = str(id)
        c = np.asarray(list(compute) if not isinstance(compute, np.ndarray) else compute, dtype=float).ravel()
        y = np.asarray(list(loss) if not isinstance(loss, np.ndarray) else loss, dtype=float).ravel()
        if c.shape != y.shape:
            raise ValueError(f"curve {cid!r}: compute has {c.size} points but loss has {y.size}")
        finite = np.isfinite(c) & np.isfinite(y)
        n_bad = int((~finite).sum())
        if n_bad and warn:
            warnings.warn(f"curve {cid!r}: dropped {n_bad} non-finite point(s)", CurveWarning, stacklevel=2)
        c, y = c[finite], y[finite]
        if np.any(c < 0):
            raise ValueError(f"curve {cid!r}: negative compute {c[c < 0][0]!r}; compute must be >= 0")
        if np.any(y <= 0):
            raise ValueError(f"curve {cid!r}: loss must be > 0, got {y[y <= 0][0]!r}")
        keep = c > 0
        c, y = c[keep], y[keep]
        if c.size == 0:
            raise ValueError(f"curve {cid!r}: no point with positive compute and a finite loss")
        if np.any(np.diff(c) < 0):
            if warn:
                warnings.warn(f"curve {cid!r}: compute was not sorted; points sorted", CurveWarning, stacklevel=2)
            order = np.argsort(c, kind="stable")
            c, y = c[order], y[order]
        if np.any(np.diff(c) == 0):
            if warn:
                warnings.warn(
                    f"curve {cid!r}: duplicated compute values averaged", CurveWarning, stacklevel=2
                )
            uniq, inverse = np.unique(c, return_inverse=True)
            y = np.bincount(inverse, weights=y) / np.bincount(inverse)
            c = uniq
        c.setflags(write=False)
        y.setflags(write=False)
        return cls(id=cid, compute=c, loss=y, meta=dict(meta or {}), unit=unit)

    def __len__(self) -> int:
        return int(self.compute.size)

    @property
    def final_compute(self) -> float:
        """Compute at the last evaluation: what training this curve to its end costs."""
        return float(self.compute[-1])

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def min_loss(self) -> float:
        return float(self.loss.min())

    def observed_until(self, compute: float) -> Curve:
        """The prefix of the curve that has been observed once ``compute`` was spent on it.

        Only recorded evaluations count: a point is observed if its compute is <= ``compute``
        (with a relative tolerance of 1e-9 against rounding).
        """
        n = int(np.searchsorted(self.compute, compute * (1 + 1e-9), side="right"))
        return Curve(self.id, self.compute[:n], self.loss[:n], self.meta, self.unit)

    def loss_at(self, compute: float | np.ndarray) -> np.ndarray:
        """Loss read off the curve at ``compute``, interpolated linearly in log-log space.

        Before the first point returns NaN, after the last point returns NaN: a curve is never extrapolated.
        """
        q = np.log(np.atleast_1d(np.asarray(compute, dtype=float)))
        out = np.interp(q, np.log(self.compute), np.log(self.loss), left=np.nan, right=np.nan)
        return np.exp(out)

    def best_loss_at(self, compute: float | np.ndarray) -> np.ndarray:
        """Lowest loss reached at compute <= ``compute`` (interpolated in log-log space), NaN before the start."""
        q = np.atleast_1d(np.asarray(compute, dtype=float))
        running = np.minimum.accumulate(self.loss)
        inner = np.exp(np.interp(np.log(np.clip(q, self.compute[0], self.compute[-1])),
                                 np.log(self.compute), np.log(running)))
        return np.where(q < self.compute[0] * (1 - 1e-12), np.nan, inner)


class CurveSet(Sequence[Curve]):
    """An ordered collection of curves with unique ids."""

    def __init__(self, curves: Iterable[Curve], *, name: str = "curves") -> None:
        self._curves = list(curves)
        self.name = name
        ids = [c.id for c in self._curves]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"{name}: duplicated curve ids {dup[:5]}")
        self._by_id = {c.id: c for c in self._curves}

    @overload
    def __getitem__(self, index: int) -> Curve: ...

    @overload
    def __getitem__(self, index: slice) -> CurveSet: ...

    def __getitem__(self, index: int | slice) -> Curve | CurveSet:
        if isinstance(index, slice):
            return CurveSet(self._curves[index], name=self.name)
        return self._curves[index]

    def __len__(self) -> int:
        return len(self._curves)

    def __iter__(self) -> Iterator[Curve]:
        return iter(self._curves)

    def __repr__(self) -> str:
        return f"CurveSet(name={self.name!r}, n={len(self)})"

    def get(self, id: str) -> Curve:
        return self._by_id[str(id)]

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self._curves]

    @property
    def exhaustive_compute(self) -> float:
        """Compute needed to train every curve to its end."""
        return float(sum(c.final_compute for c in self._curves))

    def subset(self, ids: Iterable[str]) -> CurveSet:
        return CurveSet([self._by_id[str(i)] for i in ids], name=self.name)

    def to_frame(self):
        """Long-format :class:`pandas.DataFrame` with columns ``run_id, compute, loss`` plus metadata.

        Each scalar metadata value becomes a column, repeated on the curve's rows (empty for curves without
        it); a learning-rate schedule (a :class:`~sh_scaling.schedules.Schedule`) becomes the JSON text of its
        ``to_dict()``, which :func:`~sh_scaling.curves.load_csv` turns back into the schedule; other metadata
        that is not a scalar (a list, a dict, an array) is left out.

        Raises:
            ValueError: a metadata key is ``run_id``, ``compute`` or ``loss`` (it would overwrite the points).
        """
        import pandas as pd

        frames = []
        for c in self._curves:
            clash = [k for k in c.meta if k in _POINT_COLUMNS]
            if clash:
                raise ValueError(f"curve {c.id!r}: metadata {clash} has the name of a column of the points")
            df = pd.DataFrame({"run_id": c.id, "compute": c.compute, "loss": c.loss})
            for k, v in c.meta.items():
                if isinstance(v, Schedule):
                    df[k] = schedule_text(v)
                elif np.isscalar(v):
                    df[k] = v
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def to_csv(self, path: Any) -> None:
        """Write the curves as a long-format CSV that :func:`sh_scaling.curves.load_csv` reads back.

        One row per point (``run_id, compute, loss``) and one column per scalar metadata key (see
        :meth:`to_frame`); compression follows the suffix (``.csv.gz``). Floats are written with all their
        digits, so ``load_csv(path)`` returns the same ids, points and metadata (the unit is not stored: pass
        it to ``load_csv`` again).
        """
        self.to_frame().to_csv(path, index=False)


#: Trial states :func:`from_study` reads by default: the finished trials whose curves are final.
DEFAULT_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def from_study(
    study: optuna.study.Study,
    *,
    states: Iterable[TrialState] | None = DEFAULT_STATES,
    compute_fn: Callable[[dict[str, Any], int], float] | None = None,
    max_compute: float | Callable[[dict[str, Any]], float] | None = None,
    unit: str = "FLOPs",
    name: str | None = None,
) -> CurveSet:
    """The learning curves of a study's trials: loss against the compute reported with each step.

    Reads both ways of reporting: :func:`sh_scaling.report` (compute stored in the trial's attributes, read
    with :func:`sh_scaling.pruning.reported_compute`) and plain ``trial.report(loss, step)`` with the
    pruner's ``compute_fn``, which must then be passed here too (stored compute wins where a step has both).
    Each trial with at least one point becomes a curve whose id is the trial number (as a string) and whose
    metadata holds:

    * ``trial`` (its number) and ``state`` (``"COMPLETE"``, ``"PRUNED"``, ...);
    * ``max_compute``: the compute the trial was meant to reach, from the trial's own record
      (``report(..., max_compute=...)``), else the ``max_compute`` argument, else the target of the pruner's
      rung records (the pruner's ``max_compute`` when it decided), else, for a finished trial, its last
      compute; absent when none is known;
    * ``forecast``: the pruner's last forecast of the loss at ``max_compute`` and ``decision``: its last
      decision in words (both absent for trials the pruner never decided);
    * ``schedule``: the trial's learning-rate schedule as the pruner stored it (its ``schedule=``), a
      :class:`~sh_scaling.schedules.Schedule` as every curve set holds it (so a replay with
      ``schedule="from_curves"`` and the schedule-aware strategies read it), and ``schedule_kind`` its name;
      absent when none was stated (a stored schedule that no longer parses is left out with a
      :class:`CurveWarning`);
    * ``params_<name>`` for each parameter (the naming of ``study.trials_dataframe()``).

    Losses are the reported intermediate values, cleaned as :meth:`Curve.from_arrays` does (a NaN loss that got
    a trial pruned is dropped with a :class:`CurveWarning`). Steps without compute are left out with one
    warning naming the trials.

    Args:
        study: The study (or anything with ``get_trials`` and ``study_name``).
        states: Trial states to read (default complete and pruned; ``None``: every state, running and failed
            trials included).
        compute_fn: ``compute_fn(params, step)``: the compute of a step reported with plain ``trial.report``.
        max_compute: A number, or a function of the trial's params, for trials that stored none.
        unit: Unit of the compute, carried by each curve for labels.
        name: Name of the set (default: the study's name).

    Raises:
        ValueError: no trial in ``states`` reported a loss, or losses were reported without compute and no
            ``compute_fn`` gives it (the message says how to report compute), or ``compute_fn`` or
            ``max_compute`` raised (naming the trial).

    Example::

        study = optuna.load_study(study_name="sweep", storage="sqlite:///sweep.db")
        curves = from_study(study)
        curves.to_csv("sweep.csv.gz")
    """
    wanted = None if states is None else tuple(states)
    label = name or str(getattr(study, "study_name", "study"))
    trials = study.get_trials(deepcopy=False, states=wanted)
    curves: list[Curve] = []
    without_compute: list[int] = []
    partly: list[int] = []
    for trial in trials:
        compute, loss, missing = _points(trial, compute_fn)
        if not compute:
            if missing:
                without_compute.append(trial.number)
            continue
        if missing:
            partly.append(trial.number)
        meta = _trial_meta(trial, max_compute, max(compute))
        curves.append(Curve.from_arrays(trial.number, compute, loss, meta, unit=unit))
    if not curves:
        if without_compute:
            raise ValueError(
                f"study {label!r}: {len(without_compute)} trial(s) reported losses but no compute (trials "
                f"{_numbers(without_compute)}); report with sh_scaling.report(trial, loss, compute=...), or read plain "
                "trial.report values with from_study(study, compute_fn=...), the pruner's compute_fn(params, step)"
            )
        which = "any state" if wanted is None else "state " + "/".join(s.name for s in wanted)
        raise ValueError(f"study {label!r}: no trial in {which} reported a loss")
    if without_compute or partly:
        warnings.warn(
            f"study {label!r}: steps without compute left out (trials {_numbers(without_compute + partly)}); "
            "pass compute_fn= to read them",
            CurveWarning,
            stacklevel=2,
        )
    return CurveSet(curves, name=label)


def _points(
    trial: FrozenTrial, compute_fn: Callable[[dict[str, Any], int], float] | None
) -> tuple[list[float], list[float], list[int]]:
    """The trial's ``(compute, loss)`` points in step order, and the steps that have no compute."""
    stored = reported_compute(trial)
    compute: list[float] = []
    loss: list[float] = []
    missing: list[int] = []
    for step, value in sorted(trial.intermediate_values.items()):
        c = stored.get(step)
        if c is None and compute_fn is not None:
            try:
                c = float(compute_fn(dict(trial.params), step))
            except Exception as exc:  # noqa: BLE001 - re-raised with the trial and step named
                raise ValueError(
                    f"trial {trial.number}: compute_fn(params, {step}) raised {type(exc).__name__}: {exc}"
                ) from exc
        if c is None:
            missing.append(step)
            continue
        compute.append(c)
        loss.append(float(value))
    return compute, loss, missing


def _trial_meta(
    trial: FrozenTrial, max_compute: float | Callable[[dict[str, Any]], float] | None, last: float
) -> dict[str, Any]:
    meta: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    target = _max_compute(trial, max_compute, last)
    if target is not None:
        meta["max_compute"] = target
    forecast = trial.user_attrs.get(FORECAST_KEY)
    if forecast is not None:
        meta["forecast"] = float(forecast)
    decision = trial.user_attrs.get(DECISION_KEY)
    if decision:
        meta["decision"] = str(decision)
    stored = trial.system_attrs.get(SCHEDULE_KEY)
    if stored is not None:
        try:
            schedule = schedule_from_dict(stored)
        except (TypeError, ValueError) as exc:
            warnings.warn(f"trial {trial.number}: its stored schedule {stored!r} is not a schedule ({exc}); left out",
                          CurveWarning, stacklevel=3)
        else:
            meta["schedule"] = schedule
            meta["schedule_kind"] = schedule.kind
    meta.update({f"params_{k}": v for k, v in trial.params.items()})
    return meta


def schedule_text(schedule: Schedule) -> str:
    """A schedule as the JSON text a CSV cell holds (:meth:`CurveSet.to_csv`; :func:`load_csv` reads it back)."""
    return json.dumps(schedule.to_dict(), sort_keys=True)


def schedule_of_text(text: str) -> Schedule | None:
    """The schedule a CSV cell's JSON text describes, ``None`` where the text is not one (e.g. a name)."""
    try:
        return schedule_from_dict(json.loads(text))
    except (TypeError, ValueError, AttributeError):
        return None


def _max_compute(
    trial: FrozenTrial, given: float | Callable[[dict[str, Any]], float] | None, last: float
) -> float | None:
    """What the trial was meant to reach (see :func:`from_study`); ``last`` is its last reported compute."""
    attrs = trial.system_attrs
    if attrs.get(MAX_COMPUTE_KEY) is not None:
        return float(attrs[MAX_COMPUTE_KEY])
    if given is not None:
        if not callable(given):
            return float(given)
        try:
            return float(given(dict(trial.params)))
        except Exception as exc:  # noqa: BLE001 - re-raised with the trial named
            raise ValueError(f"trial {trial.number}: max_compute(params) raised {type(exc).__name__}: {exc}") from exc
    # The pruner writes its max_compute into every rung record as the decision's target.
    targets = [v["target"] for v in rung_records(attrs).values()]
    if targets:
        return float(targets[-1])
    return last if trial.state == TrialState.COMPLETE else None


def _numbers(numbers: list[int], shown: int = 10) -> str:
    text = ", ".join(str(n) for n in sorted(numbers)[:shown])
    return text + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")
