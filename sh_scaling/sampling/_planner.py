"""IsoFLOP sweep planning: which model shapes to train at which budgets, from the published laws."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from sh_scaling.constants import HOFFMANN_2022, ChinchillaConstants
from sh_scaling.laws import (
    StepTimeCalibration,
    TransformerConfig,
    VocabularyExtrapolationWarning,
    chinchilla_loss,
    compute_optimal_allocation,
    optimal_vocabulary,
    tokens_in_time,
)
from sh_scaling._checks import positive_finite
from sh_scaling.constants import (
    CHINCHILLA_TOKENS_PER_PARAM,
    FLOPS_PER_PARAM_TOKEN,
    GPT3_ASPECT_RATIO,
    GPT_HEAD_DIM,
)
from sh_scaling.keys import plan_key
from sh_scaling.sampling._priors import load_wall_clock

__all__ = ["plan_sweep", "enqueue", "PLAN_COLUMNS"]

#: Columns of the table returned by :func:`plan_sweep`, in order.
PLAN_COLUMNS = (
    "budget",
    "budget_flops",
    "budget_hours",
    "size_factor",
    "n_layers",
    "d_model",
    "n_heads",
    "vocab_size",
    "seq_len",
    "batch_size",
    "n_params",
    "non_vocab_params",
    "vocab_params",
    "tokens",
    "steps",
    "flops",
    "tokens_per_param",
    "predicted_hours",
    "predicted_loss",
)

#: Aspect ratio d_model / n_layers used when no calibration chooses the shape (GPT-3 175B's, see
#: :data:`sh_scaling.constants.GPT3_ASPECT_RATIO`).
DEFAULT_ASPECT_RATIO = GPT3_ASPECT_RATIO
#: Depths tried when a step-time calibration chooses the shape.
_DEPTHS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128)
#: A calibration-chosen shape must be within this relative distance of the target size.
_SIZE_TOLERANCE = 0.2


def plan_sweep(
    flops: float | Sequence[float] | None = None,
    *,
    hours: float | Sequence[float] | None = None,
    calibration: StepTimeCalibration | str | Path | None = None,
    n_budgets: int = 3,
    budget_ratio: float = 10.0,
    size_factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    vocab_size: int | None = None,
    seq_len: int = 2048,
    batch_size: int = 256,
    head_dim: int = GPT_HEAD_DIM,
    aspect_ratio: float = DEFAULT_ASPECT_RATIO,
    aspect_range: tuple[float, float] = (16.0, 256.0),
    vocab_multiple: int = 64,
    constants: ChinchillaConstants = HOFFMANN_2022,
) -> pd.DataFrame:
    """Propose an IsoFLOP-style sweep: for each of a few budgets, model sizes around the optimum.

    The recipe of Hoffmann et al. (2022, Approach 2, "IsoFLOP profiles"): train several sizes at each of a few
    fixed budgets and read the optimum off each profile. For every budget:

    1. **Centre.** FLOPs budget ``C``: the compute-optimal size ``N_opt(C)`` of the Chinchilla law
       (:func:`sh_scaling.laws.compute_optimal_allocation`, ``constants``). Time budget ``T`` (``hours``, with
       a step-time ``calibration``): the size minimising ``L(N, D(T))`` with ``D(T) = T * tokens_per_step /
       t_step`` (Inbar & Sernau 2024), each size in its fastest shape (step 3), searched on a log grid.
    2. **Sizes.** ``N = f * N_opt`` for each ``f`` in ``size_factors`` (default 0.25x to 4x on a log grid);
       ``N`` counts all parameters, as Hoffmann et al. do.
    3. **Shape.** With a calibration, among depths whose width (a multiple of ``head_dim``) gives ``N`` within
       20 % and whose aspect ratio ``d_model / n_layers`` is within ``aspect_range``, the one with the shortest
       predicted step time per token, by whichever proxy (memory copies or FLOPs) fitted the calibration
       better: the wall-clock model's "wider rather than deeper". The range keeps the shapes inside what is
       trained in practice, since the laws themselves are blind to shape (Kaplan et al. 2020 report a weak
       dependence of the loss on shape at fixed ``N`` over a wide range). Without a calibration, the
       aspect-ratio rule ``d_model = aspect_ratio * n_layers`` (default 128, GPT-3's) solved with
       ``Nnv = 12 n_layers d_model**2``.
    4. **Vocabulary.** Unless ``vocab_size`` is given: the vocabulary parameters ``Nv`` of Tao et al. (2024,
       approach 3, which accepts any budget) for the row's non-vocabulary parameters and FLOPs, and
       ``V = Nv / d_model`` rounded to ``vocab_multiple``. ``Nv`` and ``Nnv`` depend on each other through
       ``N = Nnv + Nv``: a few fixed-point passes settle them.
    5. **Tokens.** ``D = C / (6 N)`` with the row's exact ``N`` (time budget: ``D(T)``, and the row's FLOPs
       ``6 N D``); ``steps = round(D / (batch_size * seq_len))``.

    Args:
        flops: The largest budget in FLOPs, or an explicit list of budgets. With one number, ``n_budgets``
            budgets spaced by ``budget_ratio`` end at it (``1e20`` with 3 and 10: ``1e18, 1e19, 1e20``).
        hours: Instead of ``flops``: the largest training time per run in hours (or a list); needs
            ``calibration``.
        calibration: Step-time calibration (:class:`~sh_scaling.laws.StepTimeCalibration` or the path of the
            JSON of ``sh-scaling calibrate --out FILE``). Required for ``hours``; optional with ``flops``,
            where it picks the width/depth.
        n_budgets: How many budgets when ``flops``/``hours`` is one number (default 3).
        budget_ratio: Ratio between consecutive budgets (default 10).
        size_factors: Multiples of the optimal size per budget (default ``0.25, 0.5, 1, 2, 4``).
        vocab_size: Fix the vocabulary instead of taking it from the vocabulary law.
        seq_len: Context length of every run (default 2048).
        batch_size: Sequences per step (default 256).
        head_dim: Width per attention head; widths are multiples of it (default 64).
        aspect_ratio: ``d_model / n_layers`` without a calibration (default 128).
        aspect_range: Allowed ``d_model / n_layers`` with a calibration (default 16 to 256).
        vocab_multiple: The vocabulary is rounded to a multiple of this (default 64).
        constants: Chinchilla constants for the centre and the predicted loss (default Hoffmann et al. 2022).

    Returns:
        A ``pandas.DataFrame``, one row per run, with the columns of :data:`PLAN_COLUMNS`: ``budget`` (index of
        the budget, 0 = smallest), ``budget_flops`` (``NaN`` for a time budget), ``budget_hours`` (``NaN`` for a
        FLOPs budget), ``size_factor`` (the row's ``N / N_opt``, after rounding the shape), the shape, parameter
        counts, ``tokens``, ``steps``, ``flops`` (``6 N D``), ``tokens_per_param``, ``predicted_hours`` (with
        a calibration, else ``NaN``) and ``predicted_loss`` (Chinchilla). ``attrs["total_flops"]`` is the cost
        of the whole sweep.

    Raises:
        ValueError: a budget that is not positive and finite (the message names it), both or neither of
            ``flops`` and ``hours``, ``hours`` without a calibration (the message says to run
            ``sh-scaling calibrate``), or a bad size factor, shape setting or vocabulary.

    Example:
        >>> plan = plan_sweep(1e20, n_budgets=2)  # doctest: +SKIP
        >>> plan[["budget_flops", "n_layers", "d_model", "vocab_size", "tokens"]]  # doctest: +SKIP
    """
    if flops is not None and hours is None:
        unit, raw = "flops", flops
    elif hours is not None and flops is None:
        unit, raw = "hours", hours
    else:
        raise ValueError("give exactly one budget: flops=... or hours=... (with calibration=...)")
    _check_int("n_budgets", n_budgets, 1)
    positive_finite("budget_ratio", budget_ratio)
    if budget_ratio <= 1.0:
        raise ValueError(f"budget_ratio must be > 1, got {budget_ratio!r}")
    factors = [positive_finite("size_factors entry", f) for f in size_factors]
    if not factors:
        raise ValueError("size_factors is empty")
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size), ("head_dim", head_dim),
                        ("vocab_multiple", vocab_multiple)):
        _check_int(name, value, 1)
    if vocab_size is not None:
        _check_int("vocab_size", vocab_size, 1)
    positive_finite("aspect_ratio", aspect_ratio)
    lo, hi = (positive_finite("aspect_range entry", a) for a in aspect_range)
    if lo >= hi:
        raise ValueError(f"aspect_range must be (low, high) with low < high, got {aspect_range!r}")

    budgets = _budgets(unit, raw, n_budgets, budget_ratio)
    cal = load_wall_clock(calibration) if (hours is not None or calibration is not None) else None
    shaper = _Shaper(seq_len, batch_size, head_dim, aspect_ratio, (lo, hi), vocab_size, vocab_multiple, cal)

    rows: list[dict[str, Any]] = []
    for b_index, budget in enumerate(budgets):
        if unit == "flops":
            n_opt = float(compute_optimal_allocation(budget, constants).n_params)
            for f in factors:
                cfg = shaper.shape(f * n_opt, budget)
                tokens = budget / (FLOPS_PER_PARAM_TOKEN * cfg.n_params)
                rows.append(_row(b_index, budget, math.nan, cfg, n_opt, tokens, cal, constants))
        else:
            assert cal is not None  # a time budget loaded its calibration above (load_wall_clock raises without)
            seconds = budget * 3600.0
            n_opt = _time_optimal_size(seconds, shaper, constants)
            for f in factors:
                cfg = shaper.shape_for_time(f * n_opt, seconds)
                tokens = tokens_in_time(seconds, cfg, cal, cal.best_proxy)
                rows.append(_row(b_index, math.nan, budget, cfg, n_opt, tokens, cal, constants))
    table = pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
    table.attrs["total_flops"] = float(table["flops"].sum())
    return table


def enqueue(
    study: optuna.Study,
    plan: pd.DataFrame,
    params: Mapping[str, str] | None = None,
    *,
    skip_if_exists: bool = False,
) -> int:
    """Enqueue every row of a :func:`plan_sweep` table into ``study`` (``study.enqueue_trial``).

    Each enqueued trial gets the row's shape as fixed parameters, and the rest of the row (budget, tokens,
    steps, predicted loss, ...) as ``user_attrs`` named ``"sh_scaling:plan:<column>"``, so the objective can
    read how long to train: ``trial.user_attrs["sh_scaling:plan:steps"]``.

    Args:
        study: The study.
        plan: A table from :func:`plan_sweep` (or one with the same columns).
        params: ``{plan column: trial parameter name}``; default
            ``{"n_layers": "n_layers", "d_model": "d_model", "n_heads": "n_heads", "vocab_size": "vocab_size"}``.
            Use the names your objective passes to ``trial.suggest_*``.
        skip_if_exists: Passed to ``study.enqueue_trial``.

    Returns:
        The number of trials enqueued.

    Raises:
        ValueError: ``params`` names a column the plan does not have, or the plan lacks a mapped column.
    """
    if params is None:
        params = {c: c for c in ("n_layers", "d_model", "n_heads", "vocab_size")}
    unknown = sorted(set(params) - set(plan.columns))
    if unknown:
        raise ValueError(f"params maps unknown plan column(s) {unknown}; plan columns: {list(plan.columns)}")
    for column, pname in params.items():
        if not isinstance(pname, str) or not pname:
            raise ValueError(f"params[{column!r}] must be a parameter name, got {pname!r}")
    count = 0
    for _, row in plan.iterrows():
        trial_params = {pname: _plain(row[column]) for column, pname in params.items()}
        attrs = {
            plan_key(c): _plain(row[c])
            for c in plan.columns
            if c not in params and not (isinstance(row[c], float) and math.isnan(row[c]))
        }
        study.enqueue_trial(trial_params, user_attrs=attrs, skip_if_exists=skip_if_exists)
        count += 1
    return count


# ---------------------------------------------------------------------------------------------------- helpers


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _budgets(name: str, raw: float | Sequence[float], n: int, ratio: float) -> list[float]:
    if isinstance(raw, (str, bytes)):
        raise ValueError(f"{name} must be a number or a list of numbers, got {raw!r}")
    if isinstance(raw, Sequence) or isinstance(raw, np.ndarray):
        values = [positive_finite(f"{name} budget", v) for v in raw]
        if not values:
            raise ValueError(f"{name} is an empty list")
        return sorted(values)
    top = positive_finite(name, raw)
    return [top / ratio ** (n - 1 - i) for i in range(n)]


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones (storages and JSON want plain types)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


class _Shaper:
    """Turns a target parameter count into a :class:`TransformerConfig`."""

    def __init__(
        self,
        seq_len: int,
        batch_size: int,
        head_dim: int,
        aspect_ratio: float,
        aspect_range: tuple[float, float],
        vocab_size: int | None,
        vocab_multiple: int,
        calibration: StepTimeCalibration | None,
    ) -> None:
        self.seq_len, self.batch_size, self.head_dim = seq_len, batch_size, head_dim
        self.aspect_ratio, self.aspect_range = aspect_ratio, aspect_range
        self.vocab_size, self.vocab_multiple = vocab_size, vocab_multiple
        self.cal = calibration

    def _config(self, n_layers: int, d_model: int, vocab: int) -> TransformerConfig:
        return TransformerConfig(
            n_layers=n_layers,
            d_model=d_model,
            n_heads=d_model // self.head_dim,
            vocab_size=vocab,
            seq_len=self.seq_len,
            batch_size=self.batch_size,
        )

    def _vocab(self, n_non_vocab: float, d_model: int, flops: float) -> int:
        if self.vocab_size is not None:
            return self.vocab_size
        nv = optimal_vocabulary(n_non_vocab, approach=3, flops=flops).n_vocab_params
        return max(self.vocab_multiple, self.vocab_multiple * round(nv / d_model / self.vocab_multiple))

    def _aspect_shape(self, n_non_vocab: float) -> tuple[int, int]:
        """The aspect-ratio rule: ``d = aspect * L`` and ``Nnv = 12 L d**2``, so ``d = (aspect Nnv / 12)**(1/3)``.

        ``d`` is rounded to a multiple of ``head_dim`` and ``L`` to a whole number of layers (at least one).
        """
        hd = self.head_dim
        d = (self.aspect_ratio * n_non_vocab / 12.0) ** (1.0 / 3.0)
        d = max(hd, hd * round(d / hd))
        return max(1, round(n_non_vocab / (12.0 * d * d))), d

    def _shapes(self, n_non_vocab: float) -> list[tuple[int, int]]:
        """Candidate (n_layers, d_model) for ``n_non_vocab``: the aspect rule, or all calibrated depths."""
        if self.cal is None:
            return [self._aspect_shape(n_non_vocab)]
        hd = self.head_dim
        lo, hi = self.aspect_range
        out = []
        for depth in _DEPTHS:
            d = max(hd, hd * round(math.sqrt(n_non_vocab / (12.0 * depth)) / hd))
            if abs(12.0 * depth * d * d / n_non_vocab - 1.0) <= _SIZE_TOLERANCE and lo <= d / depth <= hi:
                out.append((depth, d))
        # Nothing in range (tiny models, where widths are coarse multiples of head_dim): use the aspect rule.
        return out or [self._aspect_shape(n_non_vocab)]

    def _fastest(self, shapes: list[tuple[int, int]], vocab_for: Any) -> TransformerConfig:
        best, best_t = None, math.inf
        for depth, d in shapes:
            cfg = self._config(depth, d, vocab_for(depth, d))
            if self.cal is None:
                return cfg
            t = self.cal.predict_step_time(cfg, self.cal.best_proxy) / cfg.tokens_per_step
            if t > 0 and t < best_t:
                best, best_t = cfg, t
        if best is None:  # the calibration predicts no positive step time here: first shape, aspect order
            depth, d = shapes[0]
            best = self._config(depth, d, vocab_for(depth, d))
        return best

    def shape(self, n_total: float, flops: float) -> TransformerConfig:
        """Shape of about ``n_total`` parameters for a FLOPs budget (vocabulary by the law at ``flops``)."""
        nnv = n_total
        cfg = None
        for _ in range(4):  # fixed point of Nnv = N - Nv(Nnv)
            shapes = self._shapes(nnv)
            cfg = self._fastest(shapes, lambda depth, d: self._vocab(12.0 * depth * d * d, d, flops))
            nnv = max(n_total - cfg.vocab_params, 0.05 * n_total)
        assert cfg is not None
        return cfg

    def shape_for_time(self, n_total: float, seconds: float) -> TransformerConfig:
        """Shape of about ``n_total`` parameters for a time budget (vocabulary at the FLOPs it will use)."""
        assert self.cal is not None
        # The vocabulary law needs the FLOPs the run will use, which depend on the shape: start from 20 tokens
        # per parameter (Hoffmann et al. 2022's compute-optimal ratio) and iterate.
        cfg = self.shape(n_total, FLOPS_PER_PARAM_TOKEN * n_total * CHINCHILLA_TOKENS_PER_PARAM * n_total)
        for _ in range(3):
            flops = FLOPS_PER_PARAM_TOKEN * cfg.n_params * tokens_in_time(seconds, cfg, self.cal, self.cal.best_proxy)
            cfg = self.shape(n_total, flops)
        return cfg


def _time_optimal_size(seconds: float, shaper: _Shaper, constants: ChinchillaConstants) -> float:
    """The size minimising the Chinchilla loss after ``seconds`` of training, on a log grid of sizes."""
    assert shaper.cal is not None
    best_n, best_loss = math.nan, math.inf
    for n in np.geomspace(1e6, 1e12, 49):
        try:
            with warnings.catch_warnings():
                # The grid reaches far outside the vocabulary law's fitted range on purpose; the chosen rows
                # are shaped again afterwards, where an extrapolation warning is meaningful.
                warnings.simplefilter("ignore", VocabularyExtrapolationWarning)
                cfg = shaper.shape(float(n), FLOPS_PER_PARAM_TOKEN * n * CHINCHILLA_TOKENS_PER_PARAM * n)
            tokens = tokens_in_time(seconds, cfg, shaper.cal, shaper.cal.best_proxy)
        except ValueError:
            continue
        loss = float(chinchilla_loss(cfg.n_params, tokens, constants))
        if loss < best_loss:
            best_n, best_loss = float(cfg.n_params), loss
    if not math.isfinite(best_n):
        raise ValueError("the calibration predicts no positive step time for any model size: re-run calibration")
    return best_n


def _row(
    b_index: int,
    budget_flops: float,
    budget_hours: float,
    cfg: TransformerConfig,
    n_opt: float,
    tokens: float,
    cal: StepTimeCalibration | None,
    constants: ChinchillaConstants,
) -> dict[str, Any]:
    steps = max(1, round(tokens / cfg.tokens_per_step))
    hours = math.nan
    if cal is not None:
        hours = steps * cal.predict_step_time(cfg, cal.best_proxy) / 3600.0
    return {
        "budget": b_index,
        "budget_flops": budget_flops,
        "budget_hours": budget_hours,
        "size_factor": cfg.n_params / n_opt,
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_heads": cfg.n_heads,
        "vocab_size": cfg.vocab_size,
        "seq_len": cfg.seq_len,
        "batch_size": cfg.batch_size,
        "n_params": cfg.n_params,
        "non_vocab_params": cfg.non_vocab_params,
        "vocab_params": cfg.vocab_params,
        "tokens": tokens,
        "steps": steps,
        "flops": FLOPS_PER_PARAM_TOKEN * cfg.n_params * tokens,
        "tokens_per_param": tokens / cfg.n_params,
        "predicted_hours": hours,
        "predicted_loss": float(chinchilla_loss(cfg.n_params, tokens, constants)),
    }
