"""Prior densities over model shapes built from scaling laws, and the pure helpers the sampler scores them with.

The prior of :class:`~sh_scaling.sampling.ScalingPriorSampler` is a *predicted final loss*: a function from a
trial's parameters to the loss the laws predict for that configuration at the user's budget. It becomes a
density over the search space through a Boltzmann form

    pi(x) ∝ exp(-z(x) / temperature),   z(x) = (L(x) - L_best) / (L_median - L_best),

where ``L_best`` and ``L_median`` are taken over a set of candidate points drawn uniformly from the search space.
Scaling by the spread of the candidates makes ``temperature`` scale free: it does not matter whether the prior
predicts a loss in nats, in bits, or in the normalised units of Tao et al. (2024), whose fitted loss is shifted
by a constant. ``temperature = 0.1`` gives the median candidate a weight ``e**-10`` relative to the best one.

:class:`ScalingLawPrior` builds ``L(x)`` from the laws in :mod:`sh_scaling.laws`:

* a **FLOPs budget** C: D = C / (training FLOPs per token of the configuration) tokens, and the loss of
  Hoffmann et al. (2022), L = E + A/N**alpha + B/D**beta (``loss="chinchilla"``), or the vocabulary-aware
  parametric loss of Tao et al. (2024, approach 3), which separates non-vocabulary and vocabulary parameters
  (``loss="vocabulary"``);
* a **wall-clock budget** T with a step-time calibration (Inbar & Sernau, 2024): the configuration sees
  D(T) = T * tokens_per_step / t_step(config) tokens, so the loss depends on the shape alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from sh_scaling._checks import positive_finite
from sh_scaling.constants import FLOPS_PER_PARAM_TOKEN, GPT_HEAD_DIM, HOFFMANN_2022, ChinchillaConstants
from sh_scaling.keys import FORECAST_KEY
from sh_scaling.laws import (
    StepTimeCalibration,
    TransformerConfig,
    chinchilla_loss,
    tokens_in_time,
    vocabulary_loss,
)

__all__ = [
    "ScalingLawPrior",
    "load_wall_clock",
    "default_heads",
    "prior_weight",
    "prior_log_weights",
    "draw_uniform",
    "count_evidence",
    "evidence_value",
]



def prior_weight(n_evidence: int, beta: float) -> float:
    """Weight of the prior after ``n_evidence`` informative trials: ``beta / (beta + n)``.

    This is the exponent of piBO (Hvarfner et al., "piBO: Augmenting Acquisition Functions with User Beliefs for
    Bayesian Optimization", ICLR 2022), where the prior enters the acquisition as ``pi(x) ** (beta / n)``; the
    ``beta + n`` form is 1 before any evidence instead of infinite, and decays at the same ``1/n`` rate.
    """
    if n_evidence < 0:
        raise ValueError(f"n_evidence must be >= 0, got {n_evidence}")
    return float(beta) / (float(beta) + float(n_evidence))


def prior_log_weights(losses: np.ndarray, weight: float, temperature: float) -> np.ndarray:
    """Log of ``pi(x) ** weight`` (unnormalised) for candidates with predicted losses ``losses``.

    Non-finite losses (configurations the prior cannot score) get ``-inf``. The losses are scaled by the spread
    between the best and the median candidate (see the module docstring), so the result does not depend on the
    units of the loss. When every finite loss is equal, every finite candidate gets the same weight.
    """
    losses = np.asarray(losses, dtype=float)
    out = np.full(losses.shape, -np.inf)
    finite = np.isfinite(losses)
    if not finite.any():
        return out
    lf = losses[finite]
    best = float(lf.min())
    spread = float(np.median(lf)) - best
    if not spread > 0.0:
        spread = float(lf.max()) - best
    if not spread > 0.0:
        out[finite] = 0.0
        return out
    out[finite] = -weight * (lf - best) / (spread * temperature)
    return out


def draw_uniform(distribution: BaseDistribution, rng: np.random.Generator, size: int) -> list[Any]:
    """``size`` values drawn uniformly from ``distribution`` (uniform in log space for ``log=True``)."""
    if isinstance(distribution, CategoricalDistribution):
        idx = rng.integers(0, len(distribution.choices), size=size)
        return [distribution.choices[i] for i in idx]
    if isinstance(distribution, IntDistribution):
        return _draw_int(distribution, rng, size)
    if isinstance(distribution, FloatDistribution):
        return _draw_float(distribution, rng, size)
    raise ValueError(f"unsupported distribution for prior sampling: {distribution!r}")


def _draw_int(distribution: IntDistribution, rng: np.random.Generator, size: int) -> list[int]:
    low, high, step = distribution.low, distribution.high, distribution.step
    vals: np.ndarray
    if distribution.log:
        # Uniform in log over [low - 0.5, high + 0.5] then rounded: every integer gets its log-width share.
        u = rng.uniform(math.log(low - 0.5), math.log(high + 0.5), size=size)
        vals = np.clip(np.round(np.exp(u)), low, high)
    else:
        k = rng.integers(0, (high - low) // step + 1, size=size)
        vals = low + k * step
    return [int(v) for v in vals]


def _draw_float(distribution: FloatDistribution, rng: np.random.Generator, size: int) -> list[float]:
    low, high = distribution.low, distribution.high
    vals: np.ndarray
    if distribution.log:
        vals = np.exp(rng.uniform(math.log(low), math.log(high), size=size))
    elif distribution.step is not None:
        k = rng.integers(0, int(round((high - low) / distribution.step)) + 1, size=size)
        vals = low + k * distribution.step
    else:
        vals = rng.uniform(low, high, size=size)
    return [float(min(max(v, low), high)) for v in vals]


def evidence_value(trial: FrozenTrial) -> float | None:
    """The loss a trial gives evidence about: its value if finished, the forecast final loss if pruned.

    Returns ``None`` for a trial that carries no evidence (running, failed, or pruned without a forecast).
    """
    if trial.state == TrialState.COMPLETE and trial.values is not None and len(trial.values) == 1:
        return float(trial.values[0])
    if trial.state == TrialState.PRUNED:
        v = trial.user_attrs.get(FORECAST_KEY, trial.system_attrs.get(FORECAST_KEY))
        if v is not None:
            try:
                v = float(v)
            except (TypeError, ValueError):
                return None
            return v if math.isfinite(v) else None
    return None


def count_evidence(trials: Sequence[FrozenTrial]) -> int:
    """How many trials carry evidence: finished ones, and pruned ones with a forecast (``FORECAST_KEY``)."""
    return sum(1 for t in trials if evidence_value(t) is not None)



#: ``TransformerConfig`` fields a prior may read from the search space or from ``fixed``.
_CONFIG_FIELDS = (
    "n_layers", "d_model", "n_heads", "vocab_size", "seq_len", "batch_size", "d_ff", "tied_embeddings"
)
#: Values used for fields that are neither searched nor fixed. They do not change a FLOPs-budget prediction
#: except through ``vocab_size`` (and, for a time budget, ``seq_len``/``batch_size``: fix those to your own).
_DEFAULTS: dict[str, Any] = {"vocab_size": 32000, "seq_len": 2048, "batch_size": 256}
#: Head width used when ``n_heads`` is neither searched nor fixed.
_DEFAULT_HEAD_DIM = GPT_HEAD_DIM
_LOSSES = ("auto", "chinchilla", "vocabulary")


class ScalingLawPrior:
    """Predicted final loss of a trial's model shape at the user's budget, from published scaling laws.

    The prior of :class:`~sh_scaling.sampling.ScalingPriorSampler`: ``prior(params)`` builds a
    :class:`~sh_scaling.laws.TransformerConfig` from the trial's parameters and returns the loss the laws predict
    when that model is trained on the whole budget.

    * ``flops=C``: the model sees ``D = C / (6 N)`` tokens (the ``C = 6 N D`` of Hoffmann et al. 2022, with
      ``N`` all parameters counted by :class:`~sh_scaling.laws.TransformerConfig`).
    * ``hours=T`` with ``calibration``: the model sees ``D = T * tokens_per_step / t_step`` tokens, ``t_step``
      predicted by the wall-clock model from the calibration (Inbar & Sernau 2024, "Time Matters"), with
      whichever step-time proxy (memory copies or FLOPs) fitted the calibration better.

    The loss (``loss=``):

    * ``"chinchilla"``: ``E + A/N**alpha + B/D**beta`` with ``constants`` (default Hoffmann et al. 2022).
    * ``"vocabulary"``: the parametric loss of Tao et al. (2024, approach 3), which separates non-vocabulary
      parameters ``Nnv`` from vocabulary parameters ``Nv = V d`` and so has an optimal vocabulary per budget.
      Its value is a unigram-normalised loss; only its ranking of configurations matters to the sampler. For a
      time budget the tokens ``D(T)`` are converted to the equivalent budget ``6 (Nnv + Nv) D``.
    * ``"auto"`` (default): ``"vocabulary"`` when ``vocab_size`` is a searched parameter, else ``"chinchilla"``.
    * a callable ``(config, tokens) -> loss``: your own law (for example one fitted on your earlier sweeps with
      :func:`sh_scaling.laws.fit_chinchilla`).

    Args:
        flops: Training budget in FLOPs (positive, finite). Exactly one of ``flops`` and ``hours``.
        hours: Training budget in hours of wall-clock time; needs ``calibration``.
        calibration: A step-time calibration: a :class:`~sh_scaling.laws.StepTimeCalibration` or the path of
            the JSON written by ``sh-scaling calibrate --out FILE``.
        params: How the search space maps to the model: ``{config field: trial parameter name}``, e.g.
            ``{"n_layers": "n_layer", "d_model": "width", "vocab_size": "vocab"}``. Fields are those of
            :class:`~sh_scaling.laws.TransformerConfig` (``n_layers, d_model, n_heads, vocab_size, seq_len,
            batch_size, d_ff, tied_embeddings``). ``n_layers`` and ``d_model`` must be searched or fixed.
        model: Instead of ``params``, a function ``trial params -> TransformerConfig`` (or a dict of its fields).
            The sampler then needs ``search_space=`` to know which parameters it reads.
        fixed: Values of fields that are not searched, e.g. ``{"seq_len": 1024, "batch_size": 64}``. Unset
            fields default to ``vocab_size=32000, seq_len=2048, batch_size=256`` and ``n_heads = d_model / 64``
            (rounded down to a divisor of ``d_model``).
        loss: ``"auto"``, ``"chinchilla"``, ``"vocabulary"`` or a callable ``(config, tokens) -> loss`` (above).
        constants: Chinchilla constants (default :data:`sh_scaling.constants.HOFFMANN_2022`).

    Raises:
        ValueError: a non-positive or non-finite budget, both or neither budget, a time budget without a
            calibration, an unknown field or a field both searched and fixed, or an unknown ``loss``.

    Example:
        >>> prior = ScalingLawPrior(flops=1e20, params={"n_layers": "layers", "d_model": "width"})
        >>> prior({"layers": 24, "width": 2048}) < prior({"layers": 2, "width": 128})
        True
    """

    def __init__(
        self,
        *,
        flops: float | None = None,
        hours: float | None = None,
        calibration: Any = None,
        params: Mapping[str, str] | None = None,
        model: Callable[[Mapping[str, Any]], Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
        loss: str | Callable[[TransformerConfig, float], float] = "auto",
        constants: ChinchillaConstants = HOFFMANN_2022,
    ) -> None:
        if (flops is None) == (hours is None):
            raise ValueError(
                "give exactly one budget: flops=... (FLOPs) or hours=... (wall-clock, with calibration)"
            )
        self.flops = positive_finite("flops", flops) if flops is not None else None
        self.hours = positive_finite("hours", hours) if hours is not None else None
        self.wall_clock: StepTimeCalibration | None = None
        if self.hours is not None:
            self.wall_clock = load_wall_clock(calibration)
        if (params is None) == (model is None):
            raise ValueError("give exactly one of params={config field: param name} and model=callable")
        if model is not None and not callable(model):
            raise ValueError(f"model must be a callable params -> TransformerConfig, got {model!r}")
        self.params = dict(params) if params is not None else None
        self.fixed = dict(fixed or {})
        _check_fields("fixed", self.fixed)
        if self.params is not None:
            _check_fields("params", self.params)
            both = sorted(set(self.params) & set(self.fixed))
            if both:
                raise ValueError(f"field(s) {both} are both searched (params) and fixed (fixed)")
            for name in ("n_layers", "d_model"):
                if name not in self.params and name not in self.fixed:
                    raise ValueError(f"params must map {name!r} to a trial parameter (or fixed must set it)")
            for field, pname in self.params.items():
                if not isinstance(pname, str) or not pname:
                    raise ValueError(f"params[{field!r}] must be a parameter name, got {pname!r}")
        self.model = model
        if not callable(loss) and loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES} or a callable (config, tokens) -> loss, got {loss!r}")
        if loss == "auto":
            loss = "vocabulary" if self.params is not None and "vocab_size" in self.params else "chinchilla"
        self.loss = loss
        self.constants = constants

    @property
    def param_names(self) -> tuple[str, ...] | None:
        """The trial parameters the prior reads (``None`` with a ``model`` callable)."""
        return tuple(self.params.values()) if self.params is not None else None

    def config(self, params: Mapping[str, Any]) -> TransformerConfig:
        """The :class:`~sh_scaling.laws.TransformerConfig` of a trial's parameters."""
        if self.model is not None:
            cfg = self.model(params)
            if isinstance(cfg, TransformerConfig):
                return cfg
            if isinstance(cfg, Mapping):
                return _build_config(dict(cfg))
            raise ValueError(f"model must return a TransformerConfig or a dict, got {cfg!r}")
        assert self.params is not None
        fields = dict(self.fixed)
        for field, pname in self.params.items():
            if pname not in params:
                raise ValueError(f"parameter {pname!r} (for {field}) is missing from the trial's parameters")
            fields[field] = params[pname]
        return _build_config(fields)

    def tokens(self, cfg: TransformerConfig) -> float:
        """Training tokens the budget buys for ``cfg``."""
        if self.flops is not None:
            return self.flops / (FLOPS_PER_PARAM_TOKEN * cfg.n_params)
        assert self.hours is not None and self.wall_clock is not None
        return tokens_in_time(self.hours * 3600.0, cfg, self.wall_clock, self.wall_clock.best_proxy)

    def predict_config(self, cfg: TransformerConfig) -> float:
        """Predicted final loss of ``cfg`` trained on the whole budget."""
        d = self.tokens(cfg)
        if callable(self.loss):
            return float(self.loss(cfg, d))
        if self.loss == "chinchilla":
            return float(chinchilla_loss(cfg.n_params, d, self.constants))
        # Tao et al.'s law counts the vocabulary once and ties D to C by C = 6 (Nnv + Nv) D.
        nv = cfg.vocab_size * cfg.d_model
        c = self.flops if self.flops is not None else FLOPS_PER_PARAM_TOKEN * (cfg.non_vocab_params + nv) * d
        return float(vocabulary_loss(cfg.non_vocab_params, nv, c))

    def __call__(self, params: Mapping[str, Any]) -> float:
        """Predicted final loss for a trial's parameters."""
        return self.predict_config(self.config(params))

    def predict_many(self, candidates: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """:meth:`__call__` over many parameter sets; ``nan`` where a configuration is invalid."""
        out = np.full(len(candidates), np.nan)
        for i, params in enumerate(candidates):
            try:
                v = self(params)
            except (ValueError, ArithmeticError, TypeError):
                continue
            if math.isfinite(v):
                out[i] = v
        return out




def _check_fields(arg: str, mapping: Mapping[str, Any]) -> None:
    unknown = sorted(set(mapping) - set(_CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"{arg} has unknown model field(s) {unknown}; known fields: {list(_CONFIG_FIELDS)}")


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{name} must be an integer, got {value!r}")


def _build_config(fields: dict[str, Any]) -> TransformerConfig:
    for name, default in _DEFAULTS.items():
        fields.setdefault(name, default)
    for name in ("n_layers", "d_model", "n_heads", "vocab_size", "seq_len", "batch_size", "d_ff"):
        if fields.get(name) is not None:
            fields[name] = _as_int(name, fields[name])
    if fields.get("n_heads") is None:
        fields["n_heads"] = default_heads(fields["d_model"])
    return TransformerConfig(**fields)


def default_heads(d_model: int, head_dim: int = _DEFAULT_HEAD_DIM) -> int:
    """Heads for ``d_model`` at about ``head_dim`` per head: the largest divisor of ``d_model`` <= d/head_dim."""
    h = max(1, d_model // head_dim)
    while d_model % h:
        h -= 1
    return h


def load_wall_clock(calibration: StepTimeCalibration | str | Path | None) -> StepTimeCalibration:
    """The step-time calibration of a time budget: a :class:`~sh_scaling.laws.StepTimeCalibration`, or the path
    of the JSON written by ``sh-scaling calibrate --out FILE``.

    Raises:
        ValueError: ``calibration`` is ``None`` (a time budget needs one: the message says how to make it), the
            file does not exist, or it is not a calibration.
    """
    if calibration is None:
        raise ValueError(
            "a wall-clock budget (hours) needs a step-time calibration of your hardware: run "
            "`sh-scaling calibrate --out calibration.json` and pass that file as the calibration "
            "(calibration='calibration.json', or --calibration calibration.json on the command line), "
            "or give the budget in FLOPs instead"
        )
    if isinstance(calibration, StepTimeCalibration):
        return calibration
    if isinstance(calibration, (str, Path)):
        try:
            return StepTimeCalibration.load(calibration)
        except FileNotFoundError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError(
        f"calibration must be a StepTimeCalibration or the path of its JSON, got {type(calibration).__name__}"
    )
