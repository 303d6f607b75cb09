"""A user's own sweep, from a long-format CSV file (one row per evaluation)."""

from __future__ import annotations

import io
import os
import re
from typing import IO, Any

import numpy as np

from sh_scaling.curves._curve import Curve, CurveSet, schedule_of_text

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
    metadata (left out of a run's metadata where its cells are empty); a column that varies within a run (say
    ``step``) is left out. A ``schedule`` column holding the JSON text of a learning-rate schedule (as
    :meth:`CurveSet.to_csv` writes it) gives a :class:`~sh_scaling.schedules.Schedule`; other text stays text.
    :meth:`CurveSet.to_csv` writes this format. Curves keep the order in which
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
        ValueError: a file that is empty, not UTF-8 text or not a complete compressed file; a line with more
            or fewer fields than the header (naming the line); a header that names a column twice; one column
            given for two of ``run_col``, ``compute_col``, ``loss_col``; missing columns (the message lists every
            missing column and the columns found); a non-numeric value in ``compute_col`` or ``loss_col`` (naming the
            row); a table without rows; or a run that fails :meth:`Curve.from_arrays`. Every message starts
            with the file.

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
        frame = _read_table(path, os.fspath(path) if isinstance(path, (str, os.PathLike)) else label)

    roles = {"run_col": run_col, "compute_col": compute_col, "loss_col": loss_col}
    for i, (role, column) in enumerate(roles.items()):
        for other, same in list(roles.items())[i + 1:]:
            if column == same:
                raise ValueError(
                    f"{label}: {role} and {other} both name the column {column!r}; each needs its own column"
                )
    if frame.columns.duplicated().any():
        raise ValueError(_repeated_message(label, [str(c) for c in frame.columns]))
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
        # An empty cell in a metadata column means "no value for this run" (e.g. a forecast that only pruned
        # runs have), so the key is left out rather than set to NaN: CurveSet.to_csv then round-trips.
        meta = {c: _python_scalar(first[c]) for c in constant if not pd.isna(first[c])}
        if isinstance(meta.get("schedule"), str):
            # A learning-rate schedule written by CurveSet.to_csv (JSON text) becomes the schedule again.
            schedule = schedule_of_text(meta["schedule"])
            meta["schedule"] = schedule if schedule is not None else meta["schedule"]
        curves.append(
            Curve.from_arrays(run_id, values[compute_col][index], values[loss_col][index], meta, unit=unit)
        )
    return CurveSet(curves, name=label)


#: Suffixes from which pandas infers a compression (their bytes are binary by nature).
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")
#: pandas' words for a line with too many fields (both of its parsers).
_PANDAS_EXTRA_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_table(source: str | os.PathLike[str] | IO[str], where: str):
    """The table, or a ``ValueError`` starting with ``where`` when the file is not a rectangular CSV.

    pandas alone reports an empty file as ``EmptyDataError`` and binary data as ``UnicodeDecodeError``, neither
    naming the file; takes the first column for a row index when the first row has one field too many (every
    column then shifts one place to the left); and pads a row with too few fields with empty values, which would
    silently drop the point.
    """
    import pandas as pd

    if not isinstance(source, (str, os.PathLike)):
        data = source.read()  # a stream is read twice when its rows must be counted
        source = io.StringIO(data) if isinstance(data, str) else io.BytesIO(data)
    try:
        frame = pd.read_csv(_from_start(source))
    except pd.errors.EmptyDataError:
        raise ValueError(f"{where}: the file is empty (no header line)") from None
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{where}: not a UTF-8 text file (it holds the byte {err.object[err.start:err.start + 1]!r}): binary "
            "data, or text to save as UTF-8"
        ) from None
    except pd.errors.ParserError as err:
        if _is_binary(source):
            raise ValueError(f"{where}: binary data, not a CSV text file") from None
        message = _extra_fields_message(err) or f"not a readable CSV ({str(err).strip()})"
        raise ValueError(f"{where}: {message}") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (OSError, EOFError) as err:  # a damaged or truncated compressed file
        raise ValueError(f"{where}: cannot read the file ({err})") from None
    repeated = _repeated_header(frame, source)
    if repeated is not None:
        raise ValueError(_repeated_message(where, repeated))
    inferred_index = not isinstance(frame.index, pd.RangeIndex)
    if inferred_index or (len(frame.columns) and frame.iloc[:, -1].isna().any()):
        problem = _field_count_error(source)
        if problem is None and inferred_index:
            problem = "the rows have more fields than the header"
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
    return frame


#: How pandas renames the second ``loss`` column of a header: ``loss.1``.
_MANGLED = re.compile(r"^(.*)\.(\d+)$")


def _repeated_header(frame, source: str | os.PathLike[str] | io.IOBase) -> list[str] | None:
    """The header's names, read as plain text, when it holds a name twice; ``None`` otherwise.

    ``pandas.read_csv`` renames a repeated name (``loss``, ``loss.1``), which would make the second column
    vanish from view; the header is read again only when a name has that shape, to tell a repeat from a column
    really named ``loss.1``.
    """
    import pandas as pd

    names = [str(c) for c in frame.columns]
    if not any(m and m.group(1) in names for m in map(_MANGLED.match, names)):
        return None
    try:
        header = pd.read_csv(_from_start(source), header=None, nrows=1, dtype=str, na_filter=False).iloc[0]
    except (ValueError, OSError, EOFError):
        return None
    raw = [str(c) for c in header.tolist()]
    return raw if len(set(raw)) < len(raw) else None


def _repeated_message(where: str, names: list[str]) -> str:
    twice = list(dict.fromkeys(c for i, c in enumerate(names) if c in names[:i]))
    return (
        f"{where}: the header names the column(s) {', '.join(repr(c) for c in twice)} more than once; give "
        "every column its own name"
    )


def _field_count_error(source: str | os.PathLike[str] | io.IOBase) -> str | None:
    """The first line whose number of fields differs from the header's, described, or ``None``."""
    import pandas as pd

    # Python's parser leaves the fields a short line lacks as NaN and keeps empty fields as "" (with no NA
    # conversion), so the two can be told apart; with blank lines kept, row i is line i + 1.
    try:
        raw = pd.read_csv(
            _from_start(source), header=None, dtype=str, na_filter=False, engine="python", skip_blank_lines=False
        )
    except pd.errors.ParserError as err:
        return _extra_fields_message(err)
    except (ValueError, OSError, EOFError):
        return None
    fields = raw.notna().sum(axis=1).to_numpy()
    short = np.flatnonzero((fields > 0) & (fields < raw.shape[1]))
    if len(short) == 0:
        return None
    i = int(short[0])
    return f"line {i + 1} has {int(fields[i])} field(s), the header has {raw.shape[1]}"


def _extra_fields_message(err: Exception) -> str | None:
    match = _PANDAS_EXTRA_FIELDS.search(str(err))
    if match is None:
        return None
    expected, line, seen = match.groups()
    return f"line {line} has {seen} fields, the header has {expected}"


def _is_binary(source: str | os.PathLike[str] | io.IOBase) -> bool:
    """A NUL byte near the start of an uncompressed file: no text file has one."""
    if not isinstance(source, (str, os.PathLike)) or os.fspath(source).lower().endswith(_COMPRESSED):
        return False
    try:
        with open(source, "rb") as f:
            return b"\0" in f.read(1 << 13)
    except OSError:
        return False


def _from_start(source):
    if isinstance(source, (io.StringIO, io.BytesIO)):
        source.seek(0)
    return source


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
