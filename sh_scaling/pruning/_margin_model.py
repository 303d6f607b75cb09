"""The stage error model a pruner's ``margin`` setting asks for (:class:`MarginModel`, read by :func:`parse_margin`).

How wrong a forecast made at a stage of a run can be is measured on development curves
(:data:`sh_scaling.halving.STAGE_MARGINS`, :data:`sh_scaling.halving.STAGE_BIAS`); which evidence of the study's
own moves the margin away from those tables is set by the switches next to them in :mod:`sh_scaling.halving`.
``SurrogateHalvingPruner(margin=...)`` takes ``"stage"`` (those defaults), a coverage among the measured ones, a
mapping with tables of one's own and any switch, or ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sh_scaling.halving import (
    MARGIN_COVERAGE,
    MARGIN_FLOOR,
    MARGIN_PROVEN,
    MARGIN_PROVEN_OWN,
    MARGIN_WIDEN,
    MARGIN_WIDEN_LEVEL,
    STAGE_BIAS,
    STAGE_MARGINS,
    STAGE_NODES,
)
from sh_scaling.pruning._compute import is_number

__all__ = ["MarginModel", "parse_margin"]


@dataclass(frozen=True)
class MarginModel:
    """A stage error model: the coverage its margins are for, its tables (margins under ``"own"`` and
    ``"multipower"``, median errors under ``"own_bias"`` and ``"multipower_bias"``, one value per stage of
    :data:`~sh_scaling.halving.STAGE_NODES`), and which of the study's own evidence it believes: ``widen``
    (:data:`~sh_scaling.halving.MARGIN_WIDEN`), ``widen_level`` (:data:`~sh_scaling.halving.MARGIN_WIDEN_LEVEL`),
    ``proven`` (:data:`~sh_scaling.halving.MARGIN_PROVEN`), ``proven_own``
    (:data:`~sh_scaling.halving.MARGIN_PROVEN_OWN`) and ``floor`` (:data:`~sh_scaling.halving.MARGIN_FLOOR`)."""

    coverage: float
    tables: dict[str, tuple[float, ...]]
    widen: bool
    proven: bool
    floor: bool
    widen_level: float | None
    proven_own: bool


def _switch(margin: Mapping[str, Any], key: str, default: bool) -> bool:
    value = margin.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"margin={dict(margin)!r}: {key!r} must be True or False")
    return value


def parse_margin(margin: Any) -> MarginModel | None:
    """The stage error model ``margin`` asks for (``None`` for ``None``); a ``ValueError`` that names what is
    wrong otherwise."""
    if margin is None:
        return None
    bias = {f"{kind}_bias": STAGE_BIAS[kind] for kind in ("own", "multipower")}
    if (isinstance(margin, str) and margin == "stage") or is_number(margin):
        measured = MARGIN_COVERAGE if isinstance(margin, str) else float(margin)
        if measured not in STAGE_MARGINS:
            raise ValueError(f"margin={margin!r}: a coverage must be one of the measured {sorted(STAGE_MARGINS)}")
        return MarginModel(measured, {**STAGE_MARGINS[measured], **bias}, widen=MARGIN_WIDEN, proven=MARGIN_PROVEN,
                           floor=MARGIN_FLOOR, widen_level=MARGIN_WIDEN_LEVEL, proven_own=MARGIN_PROVEN_OWN)
    if isinstance(margin, Mapping):
        coverage: Any = margin.get("coverage")
        if not (is_number(coverage) and 0 < coverage < 1):
            raise ValueError(f"margin={dict(margin)!r}: 'coverage' must be a number in (0, 1)")
        widen = _switch(margin, "widen", MARGIN_WIDEN)
        proven = _switch(margin, "proven", MARGIN_PROVEN)
        floor = _switch(margin, "floor", MARGIN_FLOOR)
        proven_own = _switch(margin, "proven_own", MARGIN_PROVEN_OWN)
        level: Any = margin.get("widen_level", MARGIN_WIDEN_LEVEL)
        if level is not None and not (is_number(level) and 0 < level < 1):
            raise ValueError(f"margin={dict(margin)!r}: 'widen_level' must be a number in (0, 1) or None")
        tables: dict[str, tuple[float, ...]] = {}
        for kind in ("own", "multipower", "own_bias", "multipower_bias"):
            table = margin.get(kind, STAGE_BIAS[kind[:-5]] if kind.endswith("_bias") else None)
            try:
                values = tuple(float(v) for v in table)
            except TypeError:
                values = ()
            signed = kind.endswith("_bias")
            if len(values) != len(STAGE_NODES) or not all(math.isfinite(v) and (signed or v >= 0) for v in values):
                raise ValueError(
                    f"margin[{kind!r}]={table!r}: {len(STAGE_NODES)} {'log errors' if signed else 'margins >= 0'}, "
                    f"one per stage of {STAGE_NODES}"
                )
            tables[kind] = values
        return MarginModel(float(coverage), tables, widen=widen, proven=proven, floor=floor,
                           widen_level=None if level is None else float(level), proven_own=proven_own)
    raise ValueError(
        f"margin={margin!r}: must be 'stage', a coverage among {sorted(STAGE_MARGINS)}, "
        "{'coverage': c, 'own': table, 'multipower': table}, or None"
    )
