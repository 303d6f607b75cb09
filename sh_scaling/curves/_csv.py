"""A user's own sweep, from a long-format CSV file (one row per evaluation)."""

from __future__ import annotations

import os
from typing import IO, Any

import numpy as np

from sh_scaling.curves._curve import Curve, CurveSet

__all__ = ["load_csv"]


def load_csv(
    path: str | os.PathLike[str] | IO[str] | Any,
    *,
    run_col: str = "run_id",
    compute_col: str = "compute",
    loss_col: str = "loss",
    unit: str = "FLOPs",
    name: str | None = None,
) -> CurveSet:
    """Read learning curves from a long-format table: one row per evaluation of one run.

    Example file::

        run_id,compute,loss,n_params,lr
        small,1.0e15,4.10,1.2e7,3e-4
        small,2.0e15,3.85,1.2e7,3e-4
        large,1.0e15,4.60,1.1e8,3e-4
        ...

    Every other column whose value is constant within each run (``n_params``, ``lr`` above) becomes curve
    metadata; a column that varies within a run (say ``step``) is left out. Curves keep the order in which
    their runs first appear. Rows are cleaned as :meth:`Curve.from_arrays` does: empty or non-finite values
    are dropped with a :class:`~sh_scaling.curves.CurveWarning` per curve, zero compute is dropped,
    unsorted points are sorted and repeated compute values averaged (with a warning), negative compute or a
    loss <= 0 raises ``ValueError`` naming the run.

    Args:
        path: A CSV file (compression inferred from the suffix, e.g. ``.csv.gz``), an open text stream, or
            an already-loaded :class:`pandas.DataFrame`.
        run_col: Column identifying the run (converted to ``str``; each run is one curve).
        compute_col: Column with the cumulative compute at the evaluation, in ``unit``.
        loss_col: Column with the loss.
        unit: Unit of ``compute_col`` (``"FLOPs"``, ``"PF-days"``, ``"GPU-hours"``, ...); a label carried by
            each curve, no conversion is done.
        name: Name of the returned set (default: the file name).

    Raises:
        ValueError: missing columns (the message lists every missing column and the columns found), a
            non-numeric value in ``compute_col`` or ``loss_col`` (naming the row), an empty table, or a
            run that fails :meth:`Curve.from_arrays`.

    Example:
        >>> import io
        >>> curves = load_csv(io.StringIO("run_id,compute,loss\\na,1,3.0\\na,2,2.5\\nb,1,3.2\\n"))
        >>> curves.ids, curves.get("a").loss.tolist()
        (['a', 'b'], [3.0, 2.5])
    """
    import pandas as pd

    if not isinstance(unit, str) or not unit:
        raise ValueError(f"unit must be a non-empty string, got {unit!r}")
    if isinstance(path, pd.DataFrame):
        frame = path
        label = name or "dataframe"
    else:
        label = name or (os.path.basename(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else "csv")
        frame = pd.read_csv(path)

    wanted = [run_col, compute_col, loss_col]
    missing = [c for c in dict.fromkeys(wanted) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{label}: missing column(s) {missing} (run_col={run_col!r}, compute_col={compute_col!r}, "
            f"loss_col={loss_col!r}); columns found: {list(frame.columns)}"
        )
    if len(frame) == 0:
        raise ValueError(f"{label}: no rows")
    if frame[run_col].isna().any():
        row = int(np.flatnonzero(frame[run_col].isna().to_numpy())[0])
        raise ValueError(f"{label}: empty {run_col!r} in data row {row + 1}")

    values = {c: _numeric_column(frame, c, label) for c in (compute_col, loss_col)}
    runs = frame[run_col].astype(str)
    extra = [c for c in frame.columns if c not in (run_col, compute_col, loss_col)]
    constant = [c for c in extra if (frame.groupby(runs, sort=False)[c].nunique(dropna=False) <= 1).all()]

    curves = []
    positions = runs.groupby(runs, sort=False).indices
    for run_id in pd.unique(runs):
        index = positions[run_id]
        first = frame.iloc[index[0]]
        meta = {c: _python_scalar(first[c]) for c in constant}
        curves.append(
            Curve.from_arrays(run_id, values[compute_col][index], values[loss_col][index], meta, unit=unit)
        )
    return CurveSet(curves, name=label)


def _numeric_column(frame, column: str, label: str) -> np.ndarray:
    """The column as floats; empty cells become NaN, anything else that is not a number is an error."""
    import pandas as pd

    raw = frame[column]
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = numeric.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{label}: column {column!r} has a non-numeric value {raw.iloc[row]!r} in data row {row + 1}")
    return numeric.to_numpy(dtype=float)


def _python_scalar(value):
    """numpy scalars to plain Python values, so metadata compares and serialises simply."""
    return value.item() if isinstance(value, np.generic) else value
