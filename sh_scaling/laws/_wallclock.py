"""Wall-clock loss model: step time from the architecture, and the Chinchilla law rewritten in training time.

After Inbar & Sernau, "Time Matters: Scaling Laws for Any Budget" (2024): the time of a training step is
predicted better by the memory traffic it causes than by its FLOPs; with step time estimated from the
hyper-parameters, a time budget ``T`` buys ``D(T) = T * tokens_per_step / t_step`` tokens, and

    L(T, hp) = E + A / N**alpha + B / D(T)**beta

depends on the hyper-parameters alone. Their conclusion, that at a fixed time budget models should be wider
rather than deeper, is reproduced by :func:`wider_or_deeper`. The paper's own memory-copy formula and its
fitted coefficients (1,535 models on C4) are not reproduced here: step time is modelled as ``t = a x + b``
with ``x`` the first-principles byte count of :meth:`TransformerConfig.memory_copies_per_step` (or the FLOPs,
for comparison), fitted on step times measured on the user's own hardware (``sh-scaling calibrate``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sh_scaling.constants import HOFFMANN_2022, ChinchillaConstants
from sh_scaling.laws._chinchilla import chinchilla_loss
from sh_scaling.laws._transformer import OPTIMIZER_STATES, TransformerConfig

__all__ = [
    "ProxyFit",
    "StepTimeCalibration",
    "fit_step_time",
    "tokens_in_time",
    "time_budget_loss",
    "wider_or_deeper",
    "CALIBRATION_FORMAT_VERSION",
]

#: Version of the JSON written by :meth:`StepTimeCalibration.save`; loading any other version is refused.
CALIBRATION_FORMAT_VERSION = 1
_FORMAT_NAME = "sh_scaling.step_time_calibration"

Proxy = Literal["copies", "flops"]

_HOW_TO_CALIBRATE = (
    "measure step times on your hardware with `sh-scaling calibrate --out calibration.json` and pass "
    "StepTimeCalibration.load('calibration.json')"
)


@dataclass(frozen=True)
class ProxyFit:
    """Least-squares line ``seconds = slope * proxy + intercept`` and its coefficient of determination."""

    slope: float
    intercept: float
    r2: float

    def predict(self, x: float | np.ndarray) -> float | np.ndarray:
        """Predicted seconds at proxy value(s) ``x``."""
        return self.slope * x + self.intercept


def _fit_line(x: np.ndarray, y: np.ndarray) -> ProxyFit:
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot
    return ProxyFit(float(slope), float(intercept), r2)


@dataclass
class StepTimeCalibration:
    """Step-time models fitted on measured training steps (see :func:`fit_step_time`).

    Attributes:
        copies: Fit of step seconds on memory traffic per step (bytes).
        flops: Fit of step seconds on training FLOPs per step (detailed count, attention included).
        configs: The measured configurations.
        measured_seconds: Their measured step times (median over repeats).
        bytes_per_element: Activation element size used for the memory-traffic count.
        param_bytes_per_element: Weight/gradient/optimizer-state element size (``None``: same as activations).
        optimizer: Optimizer assumed by the memory-traffic count.
        device: Free-text description of the hardware.
        metadata: Free-form extra information (library versions, settings).
    """

    copies: ProxyFit
    flops: ProxyFit
    configs: list[TransformerConfig]
    measured_seconds: list[float]
    bytes_per_element: float = 4.0
    optimizer: str = "adam"
    device: str = ""
    param_bytes_per_element: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def best_proxy(self) -> Proxy:
        """The proxy with the higher R² (``"copies"`` on ties)."""
        return "copies" if self.copies.r2 >= self.flops.r2 else "flops"

    def proxy_value(self, config: TransformerConfig, proxy: Proxy) -> float:
        """The regressor of ``proxy`` for ``config`` (bytes moved or FLOPs per step)."""
        if proxy == "copies":
            return config.memory_copies_per_step(self.bytes_per_element, self.optimizer, self.param_bytes_per_element)
        if proxy == "flops":
            return config.training_flops_per_step()
        raise ValueError(f"proxy must be 'copies' or 'flops', got {proxy!r}")

    def predict_step_time(self, config: TransformerConfig, proxy: Proxy = "copies") -> float:
        """Predicted seconds per training step of ``config`` under ``proxy``'s linear model."""
        fit = self.copies if proxy == "copies" else self.flops
        return float(fit.predict(self.proxy_value(config, proxy)))

    # --- JSON ---------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT_NAME,
            "format_version": CALIBRATION_FORMAT_VERSION,
            "copies": vars(self.copies).copy(),
            "flops": vars(self.flops).copy(),
            "configs": [c.to_dict() for c in self.configs],
            "measured_seconds": list(map(float, self.measured_seconds)),
            "bytes_per_element": self.bytes_per_element,
            "param_bytes_per_element": self.param_bytes_per_element,
            "optimizer": self.optimizer,
            "device": self.device,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StepTimeCalibration:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: not a calibration, another format version, or a field that is missing or of the wrong
                type or range (the message names it, e.g. ``copies.slope``).
        """
        return cls._from_dict(data, "")

    @classmethod
    def _from_dict(cls, data: Any, prefix: str) -> StepTimeCalibration:
        if not isinstance(data, dict) or data.get("format") != _FORMAT_NAME:
            raise ValueError(f"{prefix}not a step-time calibration (missing or wrong 'format' field)")
        version = data.get("format_version")
        if version != CALIBRATION_FORMAT_VERSION:
            raise ValueError(
                f"{prefix}step-time calibration has format_version {version!r}; this version of sh_scaling reads "
                f"{CALIBRATION_FORMAT_VERSION}: re-run `sh-scaling calibrate`"
            )
        # Every field is checked here, where the file is named: a string where a number belongs would otherwise
        # load and fail much later, inside the planner, as a TypeError naming neither.
        try:
            configs = _json_list(data, "configs")
            seconds = _json_list(data, "measured_seconds")
            if len(seconds) != len(configs):
                raise ValueError(f"field 'measured_seconds' has {len(seconds)} values for {len(configs)} configs")
            optimizer = _json_field(data, "optimizer")
            if optimizer not in OPTIMIZER_STATES:
                raise ValueError(f"field 'optimizer' must be one of {sorted(OPTIMIZER_STATES)}, got {optimizer!r}")
            device = data.get("device", "")
            if not isinstance(device, str):
                raise ValueError(f"field 'device' must be a string, got {device!r}")
            metadata = data.get("metadata", {})
            if not isinstance(metadata, dict):
                raise ValueError(f"field 'metadata' must be an object, got {metadata!r}")
            param_bytes = data.get("param_bytes_per_element")
            return cls(
                copies=_json_proxy_fit(data, "copies"),
                flops=_json_proxy_fit(data, "flops"),
                configs=[_json_config(c, f"configs[{i}]") for i, c in enumerate(configs)],
                measured_seconds=[
                    _json_number(s, f"measured_seconds[{i}]", positive=True) for i, s in enumerate(seconds)
                ],
                bytes_per_element=_json_number(
                    _json_field(data, "bytes_per_element"), "bytes_per_element", positive=True
                ),
                optimizer=optimizer,
                device=device,
                param_bytes_per_element=(
                    None
                    if param_bytes is None
                    else _json_number(param_bytes, "param_bytes_per_element", positive=True)
                ),
                metadata=dict(metadata),
            )
        except ValueError as exc:
            raise ValueError(f"{prefix}corrupt step-time calibration: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON (with its format version); returns the path."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=2))
        return p

    @classmethod
    def load(cls, path: str | Path) -> StepTimeCalibration:
        """Read a calibration written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file (the message says how to make one).
            ValueError: not JSON, not a calibration, another format version, or a field that is missing or of
                the wrong type (the message names the file and the field).
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no step-time calibration at {str(p)!r}: {_HOW_TO_CALIBRATE}")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"corrupt step-time calibration {str(p)!r}: not JSON ({exc})") from exc
        return cls._from_dict(data, f"{p}: ")


def _json_field(data: dict[str, Any], key: str, where: str = "") -> Any:
    if key not in data:
        raise ValueError(f"field {where + key!r} is missing")
    return data[key]


def _json_list(data: dict[str, Any], key: str) -> list[Any]:
    value = _json_field(data, key)
    if not isinstance(value, list):
        raise ValueError(f"field {key!r} must be a list, got {value!r}")
    return value


def _json_number(value: Any, name: str, *, positive: bool = False) -> float:
    """A JSON number as a float; strings, booleans, non-finite and (with ``positive``) values <= 0 are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field {name!r} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        raise ValueError(f"field {name!r} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return number


def _json_proxy_fit(data: dict[str, Any], key: str) -> ProxyFit:
    fit = _json_field(data, key)
    if not isinstance(fit, dict):
        raise ValueError(f"field {key!r} must be an object with slope, intercept and r2, got {fit!r}")
    unknown = sorted(set(fit) - {"slope", "intercept", "r2"})
    if unknown:
        raise ValueError(f"field {key!r} has unknown entries {unknown}")
    return ProxyFit(
        *(_json_number(_json_field(fit, n, f"{key}."), f"{key}.{n}") for n in ("slope", "intercept", "r2"))
    )


def _json_config(value: Any, name: str) -> TransformerConfig:
    if not isinstance(value, dict):
        raise ValueError(f"field {name!r} must be an object, got {value!r}")
    try:
        return TransformerConfig.from_dict(value)
    except (TypeError, ValueError) as exc:  # TypeError: a required size is missing
        raise ValueError(f"field {name!r}: {exc}") from None


def fit_step_time(
    configs: Sequence[TransformerConfig],
    measured_seconds: Sequence[float],
    *,
    bytes_per_element: float = 4.0,
    optimizer: str = "adam",
    device: str = "",
    metadata: dict[str, Any] | None = None,
    param_bytes_per_element: float | None = None,
) -> StepTimeCalibration:
    """Fit ``t = a * copies + b`` and ``t = a * flops + b`` on measured step times.

    Args:
        configs: The timed configurations (at least 3).
        measured_seconds: Seconds per training step of each, positive and finite.
        bytes_per_element: Activation element size for the memory-traffic count (4 for float32 training,
            2 for bf16 mixed precision).
        optimizer: Optimizer of the timed steps (one of ``OPTIMIZER_STATES``; default Adam).
        device: Free-text hardware description, stored with the fit.
        metadata: Extra information stored with the fit.
        param_bytes_per_element: Weight/gradient/optimizer-state element size (``None``: same as activations;
            4 for mixed precision with float32 master weights).

    Returns:
        A :class:`StepTimeCalibration` with both fits and their R².

    Raises:
        ValueError: fewer than 3 configs, mismatched lengths, bad times, or times that do not vary.
    """
    cfgs = list(configs)
    y = np.asarray(measured_seconds, dtype=float).ravel()
    if len(cfgs) != len(y):
        raise ValueError(f"configs and measured_seconds differ in length: {len(cfgs)} vs {len(y)}")
    if len(cfgs) < 3:
        raise ValueError(f"need at least 3 timed configurations to fit and judge a line, got {len(cfgs)}")
    if not all(isinstance(c, TransformerConfig) for c in cfgs):
        raise ValueError("configs must be TransformerConfig instances")
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise ValueError(f"measured_seconds must be positive and finite, got {y.tolist()}")
    if np.ptp(y) == 0:
        raise ValueError("measured_seconds are all equal: nothing to fit")
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_STATES)}, got {optimizer!r}")
    copies = np.array([c.memory_copies_per_step(bytes_per_element, optimizer, param_bytes_per_element) for c in cfgs])
    flops = np.array([c.training_flops_per_step() for c in cfgs])
    return StepTimeCalibration(
        copies=_fit_line(copies, y),
        flops=_fit_line(flops, y),
        configs=cfgs,
        measured_seconds=y.tolist(),
        bytes_per_element=float(bytes_per_element),
        optimizer=optimizer,
        device=device,
        metadata=dict(metadata or {}),
        param_bytes_per_element=param_bytes_per_element,
    )


def _require_calibration(calibration: StepTimeCalibration | None) -> StepTimeCalibration:
    if calibration is None:
        raise ValueError(f"a time budget needs a step-time calibration: {_HOW_TO_CALIBRATE}")
    if not isinstance(calibration, StepTimeCalibration):
        raise ValueError(f"calibration must be a StepTimeCalibration, got {type(calibration).__name__}")
    return calibration


def tokens_in_time(
    time_budget: float,
    config: TransformerConfig,
    calibration: StepTimeCalibration | None,
    proxy: Proxy = "copies",
) -> float:
    """``D(T) = T * tokens_per_step / t_step``: training tokens that fit in ``time_budget`` seconds.

    Raises:
        ValueError: no calibration (the message says how to make one), a bad budget, or a calibration that
            predicts a non-positive step time for ``config`` (far outside the calibrated sizes).
    """
    cal = _require_calibration(calibration)
    t = float(time_budget)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"time_budget must be positive seconds, got {time_budget!r}")
    step = cal.predict_step_time(config, proxy)
    if not step > 0:
        raise ValueError(
            f"the {proxy} calibration predicts a non-positive step time ({step:.3g} s) for {config}: "
            "this configuration is outside the calibrated range"
        )
    return t * config.tokens_per_step / step


def time_budget_loss(
    time_budget: float,
    config: TransformerConfig,
    calibration: StepTimeCalibration | None,
    constants: ChinchillaConstants = HOFFMANN_2022,
    proxy: Proxy = "copies",
) -> float:
    """Predicted loss after ``time_budget`` seconds of training: ``E + A/N**alpha + B/D(T)**beta``.

    Args:
        time_budget: Training time in seconds.
        config: The model and its training-step shape; ``N = config.n_params``.
        calibration: Measured step-time model (``sh-scaling calibrate``); required.
        constants: Chinchilla constants. **Default: Hoffmann et al. (2022)**, fitted on FLOP budgets, not the
            Time Matters paper's own coefficients (which are not reproduced).
        proxy: Which step-time model to use: ``"copies"`` (default, as in Inbar & Sernau 2024) or ``"flops"``.
    """
    tokens = tokens_in_time(time_budget, config, calibration, proxy)
    return float(chinchilla_loss(config.n_params, tokens, constants))


def wider_or_deeper(
    time_budget: float,
    n_non_vocab: float,
    calibration: StepTimeCalibration | None,
    *,
    vocab_size: int = 32_000,
    seq_len: int = 1024,
    batch_size: int = 32,
    head_dim: int = 64,
    n_layers: Sequence[int] = (2, 4, 6, 8, 12, 16, 24, 32, 48),
    constants: ChinchillaConstants = HOFFMANN_2022,
    tolerance: float = 0.5,
):
    """Compare shapes with the same non-vocabulary parameters at a fixed time budget: wider or deeper?

    For each depth ``L`` in ``n_layers`` the width is the multiple of ``head_dim`` nearest to
    ``sqrt(Nnv / (12 L))`` (the ``d_ff = 4 d`` shape), heads ``d / head_dim``, and ``d_ff`` is then set so that
    ``L (4 d**2 + 2 d d_ff)`` equals ``n_non_vocab`` to rounding; shapes whose ``d_ff / (4 d)`` strays from 1 by
    more than ``tolerance`` are dropped. For each shape and each step-time model, the table gives the step
    time, the tokens ``D(T)`` trained in ``time_budget`` seconds, and the Chinchilla loss at ``N = n_params``
    (which includes the ``V d`` embedding, so wider shapes carry slightly more parameters).

    Returns:
        A ``pandas.DataFrame`` sorted by depth with columns ``n_layers, d_model, n_heads, d_ff, aspect_ratio``
        (``d_model / n_layers``), ``non_vocab_params, n_params, copies_bytes, flops, step_s_copies,
        step_s_flops, tokens_copies, tokens_flops, loss_copies, loss_flops`` and ``best_copies``/``best_flops``
        marking the lowest loss under each model. Under a memory-copy model wide shapes win (Inbar & Sernau
        2024): at fixed ``Nnv`` the activation traffic of a layer grows like ``d`` while the number of layers
        falls like ``1 / d**2``.

    Raises:
        ValueError: no calibration, a bad budget or size, or no depth gives an admissible shape.
    """
    import pandas as pd

    cal = _require_calibration(calibration)
    if not (isinstance(time_budget, (int, float)) and math.isfinite(time_budget) and time_budget > 0):
        raise ValueError(f"time_budget must be positive seconds, got {time_budget!r}")
    target = float(n_non_vocab)
    if not math.isfinite(target) or target <= 0:
        raise ValueError(f"n_non_vocab must be positive, got {n_non_vocab!r}")
    rows = []
    for depth in sorted(set(int(x) for x in n_layers)):
        if depth < 1:
            raise ValueError(f"n_layers entries must be positive, got {depth}")
        d = head_dim * max(1, round(math.sqrt(target / (12 * depth)) / head_dim))
        d_ff = round((target / depth - 4 * d * d) / (2 * d))
        if d_ff < 1 or abs(d_ff / (4 * d) - 1) > tolerance:
            continue
        cfg = TransformerConfig(
            n_layers=depth,
            d_model=d,
            n_heads=d // head_dim,
            vocab_size=vocab_size,
            seq_len=seq_len,
            batch_size=batch_size,
            d_ff=d_ff,
        )
        row: dict[str, Any] = {
            "n_layers": depth,
            "d_model": d,
            "n_heads": cfg.n_heads,
            "d_ff": d_ff,
            "aspect_ratio": d / depth,
            "non_vocab_params": cfg.non_vocab_params,
            "n_params": cfg.n_params,
            "copies_bytes": cal.proxy_value(cfg, "copies"),
            "flops": cfg.training_flops_per_step(),
        }
        for proxy in ("copies", "flops"):
            step = cal.predict_step_time(cfg, proxy)
            row[f"step_s_{proxy}"] = step
            if step > 0:
                tokens = time_budget * cfg.tokens_per_step / step
                row[f"tokens_{proxy}"] = tokens
                row[f"loss_{proxy}"] = float(chinchilla_loss(cfg.n_params, tokens, constants))
            else:
                row[f"tokens_{proxy}"] = math.nan
                row[f"loss_{proxy}"] = math.nan
        rows.append(row)
    if not rows:
        raise ValueError(
            f"no depth in {list(n_layers)} gives a shape for n_non_vocab={n_non_vocab!r} with head_dim={head_dim} "
            f"and d_ff within {tolerance:.0%} of 4 d_model"
        )
    table = pd.DataFrame(rows)
    for proxy in ("copies", "flops"):
        col = table[f"loss_{proxy}"]
        table[f"best_{proxy}"] = col == col.min()
    return table
