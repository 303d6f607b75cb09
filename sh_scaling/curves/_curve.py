"""Learning curves: the one data type every other part of the package reads."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Curve", "CurveSet", "CurveWarning"]


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

    def __getitem__(self, index):  # type: ignore[override]
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
        """Long-format :class:`pandas.DataFrame` with columns ``run_id, compute, loss`` plus metadata."""
        import pandas as pd

        frames = []
        for c in self._curves:
            df = pd.DataFrame({"run_id": c.id, "compute": c.compute, "loss": c.loss})
            for k, v in c.meta.items():
                if np.isscalar(v):
                    df[k] = v
            frames.append(df)
        return pd.concat(frames, ignore_index=True)
