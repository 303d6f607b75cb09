"""A ladder of small language models trained on CPU under three learning-rate schedules, shipped with the package.

30 runs: four GPT-style byte-level models (d_model 32 to 96, 38k to 484k parameters), each trained for planned
lengths of 0.5M and 1.25M tokens (the two smallest also 5M) under a cosine, a WSD and a constant schedule, on the
docstrings of Python's standard library. Validation loss (nats per byte) 36 times per run. Recorded by
``sh_scaling/curves/cpu_ladder/record.py``; how, on what and in how long: ``sh_scaling/curves/cpu_ladder/README.md``.
Same license as this package.

Unlike the other recorded sets it needs no download, and its runs of one model under different schedules and
lengths share their initialisation and data order, so a schedule's effect is not mixed with a seed's.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sh_scaling.curves._curve import Curve, CurveSet
from sh_scaling.schedules import WSD, Constant, Cosine, Schedule

__all__ = ["load_cpu_ladder", "CPU_LADDER_LOSSES"]

#: Loss columns of the file: validation loss on a fixed held-out set, and the mean training loss of the batches
#: since the previous evaluation (both mean cross-entropy in nats per byte).
CPU_LADDER_LOSSES = ("val_loss", "train_loss")
#: Columns that hold one value per run (checked constant within a run).
_PER_RUN = ("size", "n_params", "n_params_total", "d_model", "n_layers", "n_heads", "seq_len", "batch_size",
            "schedule", "length", "planned_steps", "warmup_steps", "decay_start_step", "peak_lr", "seed")
_PER_POINT = ("step", "tokens", "flops", "lr") + CPU_LADDER_LOSSES
#: Cosine runs decay to this fraction of the peak; WSD runs cool down linearly to 0 (record.py).
_COSINE_FINAL_RATIO = 0.1


def load_cpu_ladder(path: str | os.PathLike[str] | None = None, *, loss: str = "val_loss") -> CurveSet:
    """Load the CPU ladder: one :class:`Curve` per run, compute in training FLOPs.

    **Compute** of a point is ``6 * n_params_total * tokens`` (column ``flops``), ``n_params_total`` counting
    every trainable parameter (the output head is tied to the token embedding, counted once). Within a run
    compute is proportional to steps, so ``compute / meta["max_compute"]`` is the fraction of the planned run,
    the argument of ``meta["schedule"]``.

    **Metadata** (``curve.meta``): ``size`` (``"d32"``, ``"d48"``, ``"d64"``, ``"d96"``: the model, shared by its
    six or nine runs), ``n_params`` (total, the count in the compute), ``n_params_non_embedding``, ``d_model``,
    ``n_layers``, ``schedule`` (a :mod:`sh_scaling.schedules` object in fractions of the planned run, with the
    recorded peak: ``Cosine(final_ratio=0.1)``, ``WSD(decay="linear", final_ratio=0.0)`` or ``Constant``, each
    after the run's linear warm-up), ``schedule_kind`` (``"cosine"``, ``"wsd"``, ``"constant"``),
    ``schedule_name`` (``"cosine_2.5x"``...), ``length`` (``"1x"``, ``"2.5x"`` or ``"10x"`` 0.5M tokens),
    ``total_steps`` (planned), ``max_compute`` (the planned compute, at the schedule's end), ``peak_lr``,
    ``seed``, and arrays aligned with ``compute``: ``steps``, ``tokens`` and ``lr`` (the rate of the update just
    before the evaluation, which equals ``schedule(compute / max_compute)``).

    Args:
        path: The CSV (``.csv`` or ``.csv.gz``) written by ``record.py``; ``None`` reads the copy shipped with the
            package.
        loss: ``"val_loss"`` (default: held-out validation loss) or ``"train_loss"``.

    Returns:
        A :class:`CurveSet` named ``"cpu_ladder"``, ids ``"d32/cosine_1x"``..., in the file's order (by size,
        schedule, length).

    Raises:
        ValueError: ``loss`` is not a loss column; the file is missing, unreadable, lacks columns, has
            non-numeric or non-finite values, or a run whose per-run columns change between rows.

    Example:
        >>> curves = load_cpu_ladder()
        >>> c = curves.get("d96/wsd_2.5x")
        >>> c.meta["schedule"].kind, c.meta["size"]
        ('wsd', 'd96')
        >>> bool(np.allclose(c.meta["schedule"](c.compute / c.meta["max_compute"]), c.meta["lr"]))
        True
    """
    if loss not in CPU_LADDER_LOSSES:
        raise ValueError(f"loss={loss!r} is not a loss column of the CPU ladder; valid: {list(CPU_LADDER_LOSSES)}")
    file = _shipped_file() if path is None else Path(path)
    frame = _read(file)
    curves = []
    for run_id, rows in frame.groupby("run_id", sort=False):
        rows = rows.sort_values("step", kind="stable")
        run = _per_run(file, str(run_id), rows)
        schedule = _schedule(file, str(run_id), run)
        steps = _frozen(rows["step"].to_numpy(dtype=float))
        meta: dict[str, Any] = {
            "size": str(run["size"]),
            "n_params": int(run["n_params_total"]),
            "n_params_non_embedding": int(run["n_params"]),
            "d_model": int(run["d_model"]),
            "n_layers": int(run["n_layers"]),
            "schedule": schedule,
            "schedule_kind": schedule.kind,
            "schedule_name": f"{run['schedule']}_{run['length']}",
            "length": str(run["length"]),
            "total_steps": int(run["planned_steps"]),
            "max_compute": 6.0 * float(run["n_params_total"]) * float(run["planned_steps"])
            * float(run["seq_len"]) * float(run["batch_size"]),
            "peak_lr": float(run["peak_lr"]),
            "seed": int(run["seed"]),
            "steps": steps,
            "tokens": _frozen(rows["tokens"].to_numpy(dtype=float)),
            "lr": _frozen(rows["lr"].to_numpy(dtype=float)),
        }
        curves.append(Curve.from_arrays(run_id, rows["flops"].to_numpy(dtype=float),
                                        rows[loss].to_numpy(dtype=float), meta))
    return CurveSet(curves, name="cpu_ladder")


def _shipped_file() -> Path:
    folder = resources.files("sh_scaling.curves").joinpath("cpu_ladder")
    for name in ("curves.csv", "curves.csv.gz"):
        candidate = folder.joinpath(name)
        if candidate.is_file():
            return Path(str(candidate))
    raise ValueError(f"the CPU ladder's curves.csv is missing from {folder}; reinstall sh_scaling, or record it "
                     "with python -m sh_scaling.curves.cpu_ladder.record and pass path=...")


def _read(file: Path) -> Any:
    import pandas as pd

    if not file.is_file():
        raise ValueError(f"CPU ladder path={str(file)!r} is not a file")
    try:
        frame = pd.read_csv(file, compression="infer")
    except (ValueError, UnicodeDecodeError, OSError, EOFError, pd.errors.ParserError) as err:
        raise ValueError(f"{file}: not a readable CSV ({err})") from None
    missing = [c for c in ("run_id",) + _PER_RUN + _PER_POINT if c not in frame.columns]
    if missing:
        raise ValueError(f"{file}: missing columns {missing}; is this a CPU ladder file written by record.py?")
    if frame.empty:
        raise ValueError(f"{file}: no rows")
    numeric = [c for c in _PER_RUN + _PER_POINT if c not in ("size", "schedule", "length", "decay_start_step")]
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        if not np.all(np.isfinite(values.to_numpy(dtype=float))):
            row = int(np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))[0])
            raise ValueError(f"{file}: column {column!r} row {row + 2} is not a finite number "
                             f"({frame[column].iloc[row]!r})")
        frame[column] = values
    return frame


def _per_run(file: Path, run_id: str, rows: Any) -> dict[str, Any]:
    """The run's per-run columns, checked to hold one value each."""
    out = {}
    for column in _PER_RUN:
        values = rows[column].unique()
        if len(values) != 1:
            raise ValueError(f"{file}: run {run_id!r} has several values of {column!r}: {list(values)[:3]}")
        out[column] = values[0]
    return out


def _schedule(file: Path, run_id: str, run: dict[str, Any]) -> Schedule:
    """The run's schedule in fractions of its planned steps (``lr`` of update ``k`` is ``schedule(k / total)``)."""
    total = float(run["planned_steps"])
    peak, warmup = float(run["peak_lr"]), float(run["warmup_steps"]) / total
    kind = str(run["schedule"])
    if kind == "cosine":
        return Cosine(peak_lr=peak, warmup=warmup, final_ratio=_COSINE_FINAL_RATIO)
    if kind == "wsd":
        try:
            start = float(run["decay_start_step"]) / total
        except (TypeError, ValueError):
            start = math.nan
        if not 0.0 <= start <= 1.0:
            raise ValueError(f"{file}: WSD run {run_id!r} has no decay_start_step within its planned steps "
                             f"({run['decay_start_step']!r})")
        return WSD(peak_lr=peak, warmup=warmup, decay_start=start, decay="linear", final_ratio=0.0)
    if kind == "constant":
        return Constant(peak_lr=peak, warmup=warmup)
    raise ValueError(f"{file}: run {run_id!r} has the unknown schedule {kind!r} (cosine, wsd or constant)")


def _frozen(values: np.ndarray) -> np.ndarray:
    values.setflags(write=False)
    return values
