"""The surrogate protocol and the one function decisions use to ask surrogates for a forecast.

A surrogate looks like a scikit-learn regressor on one learning curve::

    PowerLawSurrogate().fit(compute, loss).predict(compute_grid, return_std=True)

A *multi-curve* surrogate also offers ``fit_many(observations)`` / ``predict_many(targets, return_std=True)``
so curves can share information (the multi-output GP). Decision code (successive halving, the pruner) never
calls either directly: it calls :func:`forecast`, which handles short curves, failed fits and nonsense
predictions with a recorded fallback, so that a surrogate problem can never crash a study.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sh_scaling.surrogates._validation import MIN_FIT_POINTS

__all__ = [
    "Surrogate",
    "MultiCurveSurrogate",
    "Forecast",
    "forecast",
    "forecast_paths",
    "make_surrogate",
    "MIN_POINTS",
    "MIN_PLAUSIBLE_RATIO",
]

#: Fewer observed points than this and a curve is ranked by its observed minimum, unless the surrogate
#: declares a smaller ``min_points`` of its own. The fewest points the surrogates here can fit: asking them
#: with fewer would only record a failed fit.
MIN_POINTS = MIN_FIT_POINTS

#: A forecast below this fraction of a curve's lowest observed loss is rejected as implausible (the curve falls
#: back to its observed minimum). A language model's loss falls by about a factor of five over a whole run, from
#: ``log(vocabulary)`` at initialisation (10.8 nats for 50k tokens) to about 2; a forecast that falls five-fold
#: *below what the curve has already reached* is an extrapolation artefact (an asymptote fitted towards zero
#: through an early, steep stretch), not a forecast. On the routing curves the final loss is at least 0.84 of
#: the lowest of the first three points, so the threshold never rejects a sound forecast there.
MIN_PLAUSIBLE_RATIO = 0.2


@runtime_checkable
class Surrogate(Protocol):
    """A learning-curve model fitted on one curve."""

    def fit(self, compute: np.ndarray, loss: np.ndarray) -> Surrogate: ...

    def predict(self, compute: np.ndarray, return_std: bool = False) -> Any: ...


@runtime_checkable
class MultiCurveSurrogate(Protocol):
    """A learning-curve model fitted jointly on several curves."""

    def fit_many(self, observations: Sequence[tuple[np.ndarray, np.ndarray]]) -> MultiCurveSurrogate: ...

    def predict_many(self, targets: Sequence[np.ndarray], return_std: bool = False) -> Any: ...


@dataclass
class Forecast:
    """Forecast of each curve's loss at its target compute.

    Attributes:
        mean: Predicted loss at the target, never above the curve's observed minimum (a loss curve that
            has reached a value keeps it: the best checkpoint is kept).
        std: Predictive standard deviation (0 for fallbacks).
        fallback: True where the observed minimum was used instead of the surrogate.
        reason: Why the fallback was used (``None`` where it was not).
    """

    mean: np.ndarray
    std: np.ndarray
    fallback: np.ndarray
    reason: list[str | None] = field(default_factory=list)

    def optimistic(self, quantile: float | None) -> np.ndarray:
        """The mean, or a lower quantile of the Gaussian forecast (``quantile`` in (0, 0.5])."""
        if quantile is None:
            return self.mean
        from scipy.stats import norm

        return self.mean + norm.ppf(quantile) * self.std


def make_surrogate(spec: str | Any) -> Any:
    """A fresh surrogate from a name or a prototype object.

    Names: ``"powerlaw"``, ``"exponential"``, ``"mmf"``, ``"gp"`` (one GP per curve), ``"gp-multi"``
    (one GP over all curves, sharing information). A scikit-learn estimator (every surrogate here) is
    cloned (same settings, not fitted), any other object deep-copied, so a prototype can be passed once and
    used for many curves.
    """
    if not isinstance(spec, str):
        from sklearn.base import clone  # here, so that importing the protocol does not import scikit-learn

        return clone(spec, safe=False)  # deep copy for objects without get_params
    table = {
        "powerlaw": ("_parametric", "PowerLawSurrogate"),
        "exponential": ("_parametric", "ExponentialSurrogate"),
        "mmf": ("_parametric", "MMFSurrogate"),
        "gp": ("_gp", "GPSurrogate"),
        "gp-multi": ("_gp", "MultiCurveGPSurrogate"),
    }
    if spec not in table:
        raise ValueError(f"unknown surrogate {spec!r}; choose one of {sorted(table)} or pass an object")
    module, name = table[spec]
    return getattr(importlib.import_module(f"sh_scaling.surrogates.{module}"), name)()


def _check_prediction(pred: np.ndarray, std: np.ndarray, observed_min: float) -> str | None:
    if not (np.isfinite(pred) and np.isfinite(std)):
        return "non-finite prediction"
    if pred <= 0:
        return f"non-positive predicted loss {pred:.4g}"
    if pred < MIN_PLAUSIBLE_RATIO * observed_min:
        return f"implausible predicted loss {pred:.4g} (observed minimum {observed_min:.4g})"
    return None


def _fit_predict(
    surrogate: str | Any,
    observations: Sequence[tuple[np.ndarray, np.ndarray]],
    usable: list[int],
    grids: Sequence[np.ndarray],
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], dict[int, str]]:
    """Fit ``surrogate`` on the usable curves and predict each on its grid; failures go to ``errors``."""
    proto = make_surrogate(surrogate)
    raw: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    errors: dict[int, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(proto, MultiCurveSurrogate):
            try:
                proto.fit_many([observations[i] for i in usable])
                m, s = proto.predict_many([grids[i] for i in usable], return_std=True)
                for j, i in enumerate(usable):
                    raw[i] = (np.asarray(m[j], float).ravel(), np.asarray(s[j], float).ravel())
            except Exception as exc:  # noqa: BLE001 - any fit failure becomes a recorded fallback
                for i in usable:
                    errors[i] = f"fit failed: {type(exc).__name__}: {exc}"
        else:
            for i in usable:
                model = proto if i == usable[-1] else make_surrogate(proto)
                try:
                    c, l = observations[i]
                    model.fit(np.asarray(c, float), np.asarray(l, float))
                    m, s = model.predict(grids[i], return_std=True)
                    raw[i] = (np.asarray(m, float).ravel(), np.asarray(s, float).ravel())
                except Exception as exc:  # noqa: BLE001
                    errors[i] = f"fit failed: {type(exc).__name__}: {exc}"
    return raw, errors


def forecast_paths(
    surrogate: str | Any,
    observations: Sequence[tuple[np.ndarray, np.ndarray]],
    grids: Sequence[np.ndarray],
) -> list[Forecast]:
    """Forecast each curve along its own compute grid (one :class:`Forecast` per curve, one entry per point).

    Same fallbacks as :func:`forecast`; the mean along each grid is the running minimum of the surrogate's
    mean and the observed minimum, so a forecast never turns up.
    """
    n = len(observations)
    if len(grids) != n:
        raise ValueError(f"forecast_paths: {n} curves but {len(grids)} grids")
    grids = [np.asarray(g, dtype=float).reshape(-1) for g in grids]
    obs_min = [float(np.min(l)) if len(l) else np.nan for _, l in observations]
    out = [
        Forecast(np.full(g.size, m), np.zeros(g.size), np.ones(g.size, bool), [None])
        for g, m in zip(grids, obs_min)
    ]
    # A surrogate may declare that it copes with shorter curves (a multi-curve model borrows strength from the
    # other curves) by a class attribute ``min_points``.
    proto = make_surrogate(surrogate)
    need = max(1, int(getattr(proto, "min_points", MIN_POINTS)))
    usable = [i for i, (c, _) in enumerate(observations) if len(c) >= need]
    for i, (c, _) in enumerate(observations):
        if len(c) < need:
            out[i].reason = [f"fewer than {need} points"]
    if not usable:
        return out
    raw, errors = _fit_predict(proto, observations, usable, grids)
    for i in usable:
        if i in errors:
            out[i].reason = [errors[i]]
            continue
        m, s = raw[i]
        problems = [_check_prediction(mi, si, obs_min[i]) for mi, si in zip(m, s)]
        problem = next((p for p in problems if p is not None), None)
        if problem is not None:
            out[i].reason = [problem]
            continue
        out[i] = Forecast(
            np.minimum.accumulate(np.minimum(m, obs_min[i])),
            np.maximum(s, 0.0),
            np.zeros(m.size, bool),
            [None],
        )
    return out


def forecast(
    surrogate: str | Any,
    observations: Sequence[tuple[np.ndarray, np.ndarray]],
    targets: Sequence[float] | np.ndarray,
) -> Forecast:
    """Forecast each curve's loss at its own target compute.

    Args:
        surrogate: A name or prototype for :func:`make_surrogate`. Multi-curve surrogates are fitted once on
            all curves with at least :data:`MIN_POINTS` points; single-curve ones once per curve.
        observations: ``(compute, loss)`` per curve, the points observed so far (clean: positive, sorted).
        targets: Compute each curve would reach, one per curve.

    Returns:
        A :class:`Forecast`. A curve with fewer than :data:`MIN_POINTS` points, a fit that raises, and a
        prediction that is non-finite, non-positive or implausibly low fall back to the observed minimum; the
        reason is recorded. The mean is clipped to the observed minimum.
    """
    targets = np.asarray(targets, dtype=float).reshape(-1)
    if targets.size != len(observations):
        raise ValueError(f"forecast: {len(observations)} curves but {targets.size} targets")
    paths = forecast_paths(surrogate, observations, [np.array([t]) for t in targets])
    return Forecast(
        np.array([p.mean[0] for p in paths]),
        np.array([p.std[0] for p in paths]),
        np.array([bool(p.fallback[0]) for p in paths]),
        [p.reason[0] for p in paths],
    )
