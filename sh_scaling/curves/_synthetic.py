"""Synthetic learning curves that behave like a real scaling-law sweep: they cross.

Each curve is one model of ``N`` parameters trained on its own token budget. Its noiseless loss follows the
Chinchilla form of Hoffmann et al. (2022) in the tokens seen so far, bent at the start by a learning-rate
warm-up and a cap at the loss of a uniform prediction, and at the end by the learning-rate schedule. Small
models lead early; large models win late, exactly as in a real sweep, because at a fixed compute the
Chinchilla law prefers a larger model the more compute there is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from sh_scaling.constants import FLOPS_PER_PARAM_TOKEN, HOFFMANN_2022, ChinchillaConstants
from sh_scaling.curves._curve import Curve, CurveSet
from sh_scaling.schedules import Constant, Cosine, Schedule

__all__ = ["generate_synthetic", "NOISE_MODELS", "SCHEDULES"]

#: Names accepted by ``generate_synthetic(noise=...)``.
NOISE_MODELS = ("none", "white", "brownian", "ou")
#: Names accepted by ``generate_synthetic(schedule=...)``.
SCHEDULES = ("constant", "cosine")

#: Sharpness of the smooth cap at ln(vocab_size); large enough that the cap leaves the law untouched
#: (< 0.1 % change) once the law is below half the cap.
_CAP_SHARPNESS = 10.0
#: Final learning rate of the cosine schedule, relative to the peak (the common 10x decay, as in
#: Hoffmann et al. 2022, Section 3).
_COSINE_FLOOR = 0.1


def generate_synthetic(
    n_curves: int = 20,
    *,
    seed: int | np.random.Generator | None = 0,
    noise: str = "white",
    noise_scale: float = 0.01,
    constants: ChinchillaConstants = HOFFMANN_2022,
    n_params_range: tuple[float, float] = (1e7, 1e9),
    tokens_per_param_range: tuple[float, float] = (5.0, 100.0),
    n_points: int = 30,
    spacing: str = "log",
    start_fraction: float = 2e-3,
    warmup_fraction: float = 0.01,
    schedule: str = "cosine",
    anneal_gain: float = 0.1,
    jitter: float = 0.05,
    vocab_size: int = 50_257,
    ou_theta: float = 1.0,
    name: str = "synthetic",
) -> CurveSet:
    """Generate a seeded, reproducible set of learning curves that cross like real ones.

    **The model.** Curve ``m`` is a model of ``N_m`` parameters (log-uniform over ``n_params_range``) trained on
    ``D_m = r_m * N_m`` tokens, with ``r_m`` log-uniform over ``tokens_per_param_range`` (around the ~20
    tokens per parameter that Hoffmann et al. 2022 found compute-optimal). Compute is training FLOPs,
    ``C = 6 N D`` (Kaplan et al. 2020; Hoffmann et al. 2022), so after ``D`` tokens::

        L(D) = cap( E + (A / N**alpha + B / D_eff**beta) * (1 - anneal_gain * decay(D / D_m)) )

    * ``E, A, B, alpha, beta`` are ``constants`` (default Hoffmann et al. 2022, Approach 3; pass
      :data:`~sh_scaling.constants.EPOCH_2024` for the Epoch AI refit) with per-curve jitter: ``E, A, B`` are
      multiplied by ``exp(jitter * z)`` and the exponents by ``exp(jitter / 10 * z)`` (``z`` standard
      normal; the exponents get a tenth because the loss is exponentially sensitive to them).
    * **Warm-up**: the learning rate ramps up linearly over the first ``warmup_fraction`` of the tokens, so
      progress is counted in learning-rate area: ``D_eff = D**2 / (2 D_w)`` during warm-up and
      ``D - D_w / 2`` after it. ``cap`` is a smooth minimum with ``ln(vocab_size)`` (about 10.8 nats for the
      GPT-2 vocabulary), the loss of a uniform prediction: every curve starts near it and falls into the law.
    * **Learning-rate schedule**: ``"constant"`` leaves the law as it is (``decay = 0``). ``"cosine"`` decays
      the learning rate from its peak to 10 % of it along a half cosine after warm-up;
      ``decay = 1 - lr/lr_peak`` goes from 0 to 0.9 and removes up to ``0.9 * anneal_gain`` of the reducible
      loss, so the curve drops faster near its end, as annealing does in practice (Tissue et al. 2024,
      *Scaling Law with Learning Rate Annealing*, model the same effect with an annealing-area term).
    * Evaluations: ``n_points`` per curve, at token counts log-spaced from ``start_fraction * D_m`` to
      ``D_m`` (``spacing="log"``) or equally spaced from ``D_m / n_points`` to ``D_m`` (``"linear"``, like
      evaluating every k steps).

    **Noise** (added to the loss; ``sigma = noise_scale`` in nats, default 0.01):

    * ``"none"``: the noiseless loss.
    * ``"white"``: i.i.d. Gaussian, standard deviation ``sigma`` at every evaluation.
    * ``"brownian"``: a random walk in log-compute that starts at 0 at the first evaluation; its increment
      between two evaluations is Gaussian with variance ``sigma**2 * ln(C_k+1 / C_k)``, i.e. the walk's
      standard deviation grows by ``sigma`` per sqrt(e-fold of compute), whatever the spacing.
    * ``"ou"``: an Ornstein-Uhlenbeck process in ``t = ln C``, stationary from the first point: marginal
      standard deviation ``sigma``, correlation ``exp(-ou_theta * |t - t'|)`` (``ou_theta`` = 1: the
      correlation falls by e per e-fold of compute), simulated exactly at the evaluation points.

    A noisy value is floored at half the noiseless loss so every loss stays positive (only reached when
    ``noise_scale`` is comparable to the loss itself).

    **Metadata** of each curve (the truth, so experiments can compute exact optima): ``n_params``,
    ``tokens`` (the budget ``D_m``), ``tokens_per_param``, ``E, A, B, alpha, beta`` (after jitter),
    ``warmup_tokens``, ``schedule`` (the learning-rate schedule the anneal assumes, a
    :class:`~sh_scaling.schedules.Schedule` over the fraction of the run: :class:`~sh_scaling.schedules.Cosine`
    with ``warmup=warmup_fraction`` and ``final_ratio=0.1``, or :class:`~sh_scaling.schedules.Constant` with the
    same warm-up; peak 1, since only its shape matters), ``schedule_kind`` (its name, the ``schedule``
    argument), ``max_compute`` (the planned compute ``6 N D_m``, the curve's last point), ``anneal_gain``,
    ``vocab_size``, ``noise``, ``noise_scale``, ``final_law_loss`` (``E + A/N**alpha + B/D_m**beta``, the law at the budget without schedule effects),
    ``noiseless_loss`` (read-only array aligned with ``compute``) and ``tokens_seen`` (array).

    Args:
        n_curves: Number of curves (model configurations). Default 20, a typical sweep.
        seed: Seed or :class:`numpy.random.Generator`; the same seed gives the same curves. Default 0.
            The laws (sizes, budgets, constants) are drawn before any noise, so two noise models with one
            seed give the same noiseless curves.
        noise: One of ``"none"``, ``"white"`` (default), ``"brownian"``, ``"ou"``.
        noise_scale: ``sigma`` above, in nats (>= 0). Default 0.01, a sweep evaluated on small held-out
            sets. For comparison, Clark et al.'s (2022) curves wiggle by about 0.002 around a smooth fit
            (residual standard deviation of a cubic in log-compute over their second half, measured here).
        constants: Chinchilla constants of the underlying law. Default Hoffmann et al. (2022), Approach 3.
        n_params_range: ``(low, high)`` parameter counts, sampled log-uniformly. Default ``(1e7, 1e9)``, the
            range of academic sweeps (Clark et al. 2022: 15M-1.3B).
        tokens_per_param_range: ``(low, high)`` token budget per parameter, sampled log-uniformly. Default
            ``(5, 100)``: geometric centre 22, near the compute-optimal 20 of Hoffmann et al. (2022), with
            under- and over-trained runs on both sides, so that some small models run long enough to be
            overtaken.
        n_points: Evaluations per curve (>= 2). Default 30.
        spacing: ``"log"`` (default; dense early, where the curve bends most) or ``"linear"`` spacing of the
            evaluations in tokens.
        start_fraction: First evaluation as a fraction of the budget for ``spacing="log"``, in (0, 1).
            Default 0.002, so the first few evaluations fall inside the warm-up.
        warmup_fraction: Fraction of the budget spent in linear learning-rate warm-up, in [0, 1). Default
            0.01 (1 %); 0 disables warm-up (the curve then starts on the law, still capped at ln(vocab_size)).
        schedule: ``"cosine"`` (default, the schedule of Hoffmann et al. 2022) or ``"constant"``.
        anneal_gain: Fraction of the reducible loss a full decay to zero would remove, in [0, 1). Default 0.1.
        jitter: Relative per-curve jitter of the constants (>= 0; 0 gives every curve the same law).
            Default 0.05: configurations of one size differ by a few percent in loss.
        vocab_size: Vocabulary size; the loss starts near ``ln(vocab_size)``. Default 50,257 (GPT-2's).
        ou_theta: Mean-reversion rate of the ``"ou"`` noise per unit of natural-log compute (> 0). Default 1.
        name: Name of the returned :class:`CurveSet`. Default ``"synthetic"``.

    Returns:
        A :class:`CurveSet` of ``n_curves`` curves with ids ``"syn-000"``, ``"syn-001"``, ... and compute in
        training FLOPs.

    Example:
        >>> curves = generate_synthetic(8, seed=1, noise="ou", noise_scale=0.02)
        >>> len(curves), curves[0].unit
        (8, 'FLOPs')
        >>> curves[0].meta["schedule"]
        Cosine(peak_lr=1.0, warmup=0.01, final_ratio=0.1)
    """
    n_curves = _check_int("n_curves", n_curves, 1)
    n_points = _check_int("n_points", n_points, 2)
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise={noise!r} is not one of {list(NOISE_MODELS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not one of {list(SCHEDULES)}")
    if spacing not in ("log", "linear"):
        raise ValueError(f"spacing={spacing!r} is not one of ['log', 'linear']")
    _check_range("n_params_range", n_params_range)
    _check_range("tokens_per_param_range", tokens_per_param_range)
    _check_interval("noise_scale", noise_scale, 0.0, math.inf, closed_low=True)
    _check_interval("start_fraction", start_fraction, 0.0, 1.0)
    _check_interval("warmup_fraction", warmup_fraction, 0.0, 1.0, closed_low=True)
    _check_interval("anneal_gain", anneal_gain, 0.0, 1.0, closed_low=True)
    _check_interval("jitter", jitter, 0.0, math.inf, closed_low=True)
    _check_interval("ou_theta", ou_theta, 0.0, math.inf)
    if not (isinstance(vocab_size, (int, np.integer)) and vocab_size >= 2):
        raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # All per-curve draws first, in a fixed order, so a curve's law does not depend on the noise model.
    n_params = _log_uniform(rng, n_params_range, n_curves)
    ratio = _log_uniform(rng, tokens_per_param_range, n_curves)
    z = rng.standard_normal((n_curves, 5))
    E = constants.E * np.exp(jitter * z[:, 0])
    A = constants.A * np.exp(jitter * z[:, 1])
    B = constants.B * np.exp(jitter * z[:, 2])
    alpha = constants.alpha * np.exp(jitter / 10 * z[:, 3])
    beta = constants.beta * np.exp(jitter / 10 * z[:, 4])
    budget = ratio * n_params
    cap = math.log(vocab_size)

    curves = []
    for m in range(n_curves):
        if spacing == "log":
            frac = np.geomspace(start_fraction, 1.0, n_points)
        else:
            frac = np.arange(1, n_points + 1) / n_points
        tokens = frac * budget[m]
        clean = _noiseless_loss(
            tokens, n_params[m], budget[m], E[m], A[m], B[m], alpha[m], beta[m],
            warmup_fraction=warmup_fraction, schedule=schedule, anneal_gain=anneal_gain, cap=cap,
        )
        compute = FLOPS_PER_PARAM_TOKEN * n_params[m] * tokens
        lr_schedule = _lr_schedule(schedule, warmup_fraction)
        eps = _noise(rng, noise, noise_scale, np.log(compute), ou_theta)
        loss = np.maximum(clean + eps, 0.5 * clean)
        clean.setflags(write=False)
        tokens.setflags(write=False)
        meta = {
            "n_params": float(n_params[m]),
            "tokens": float(budget[m]),
            "tokens_per_param": float(ratio[m]),
            "E": float(E[m]),
            "A": float(A[m]),
            "B": float(B[m]),
            "alpha": float(alpha[m]),
            "beta": float(beta[m]),
            "warmup_tokens": float(warmup_fraction * budget[m]),
            "schedule": lr_schedule,
            "schedule_kind": schedule,
            # The run ends where it was planned to: its last evaluation is at its token budget.
            "max_compute": float(compute[-1]),
            "anneal_gain": float(anneal_gain),
            "vocab_size": int(vocab_size),
            "noise": noise,
            "noise_scale": float(noise_scale),
            "final_law_loss": float(E[m] + A[m] / n_params[m] ** alpha[m] + B[m] / budget[m] ** beta[m]),
            "noiseless_loss": clean,
            "tokens_seen": tokens,
        }
        curves.append(Curve.from_arrays(f"syn-{m:03d}", compute, loss, meta, unit="FLOPs"))
    return CurveSet(curves, name=name)


def _lr_schedule(kind: str, warmup_fraction: float) -> Schedule:
    """The learning rate :func:`_noiseless_loss` anneals by, as a schedule over the fraction of the run: a
    linear warm-up over ``warmup_fraction``, then constant or a half cosine down to ``_COSINE_FLOOR`` of the peak
    (``tests/test_synthetic.py`` reads the rate back from the noiseless losses)."""
    if kind == "cosine":
        return Cosine(warmup=warmup_fraction, final_ratio=_COSINE_FLOOR)
    return Constant(warmup=warmup_fraction)


def _noiseless_loss(
    tokens: np.ndarray,
    n_params: float,
    budget: float,
    E: float,
    A: float,
    B: float,
    alpha: float,
    beta: float,
    *,
    warmup_fraction: float,
    schedule: str,
    anneal_gain: float,
    cap: float,
) -> np.ndarray:
    """The noiseless loss after ``tokens`` tokens of a run planned for ``budget`` tokens (see the docstring above)."""
    warm = warmup_fraction * budget
    d_eff = tokens - warm / 2
    during = tokens < warm
    d_eff[during] = tokens[during] ** 2 / (2 * warm)
    with np.errstate(divide="ignore"):
        reducible = A / n_params**alpha + B / d_eff**beta
    if schedule == "cosine":
        u = np.clip((tokens - warm) / max(budget - warm, 1e-300), 0.0, 1.0)
        decay = (1 - _COSINE_FLOOR) * (1 - np.cos(np.pi * u)) / 2
        reducible = reducible * (1 - anneal_gain * decay)
    law = E + reducible
    # Smooth minimum with the cap: (law^-p + cap^-p)^(-1/p), written to stay finite when law is infinite.
    ratio = cap / law
    return cap / (1 + ratio**_CAP_SHARPNESS) ** (1 / _CAP_SHARPNESS)


def _noise(rng: np.random.Generator, model: str, sigma: float, log_compute: np.ndarray, theta: float) -> np.ndarray:
    """One draw of the noise model at the evaluation points ``log_compute`` (natural log)."""
    n = log_compute.size
    if model == "none":
        return np.zeros(n)
    eps = rng.standard_normal(n)
    if model == "white":
        return sigma * eps
    dt = np.diff(log_compute)
    if model == "brownian":
        steps = sigma * np.sqrt(dt) * eps[1:]
        return np.concatenate([[0.0], np.cumsum(steps)])
    # Ornstein-Uhlenbeck, exact transition: x' = x e^{-theta dt} + sigma sqrt(1 - e^{-2 theta dt}) eps.
    out = np.empty(n)
    out[0] = sigma * eps[0]
    rho = np.exp(-theta * dt)
    for k in range(1, n):
        out[k] = out[k - 1] * rho[k - 1] + sigma * math.sqrt(1 - rho[k - 1] ** 2) * eps[k]
    return out


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    lo, hi = bounds
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_range(name: str, value: object) -> None:
    try:
        # A value that is not an iterable of two numbers raises TypeError or ValueError, reported below.
        lo, hi = (float(v) for v in cast("Iterable[Any]", value))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of positive numbers, got {value!r}") from None
    if not (0 < lo <= hi < math.inf):
        raise ValueError(f"{name} must satisfy 0 < low <= high < inf, got {value!r}")


def _check_interval(name: str, value: float, low: float, high: float, *, closed_low: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and (low <= value if closed_low else low < value) and value < high
    if not ok:
        bracket = "[" if closed_low else "("
        raise ValueError(f"{name} must be in {bracket}{low}, {high}), got {value!r}")
