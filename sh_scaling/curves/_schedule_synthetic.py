"""Synthetic sweeps whose runs each follow their own learning-rate schedule, with a schedule-aware ground truth.

A ladder of model sizes; at each size several runs of different lengths, each with a cosine decay to its own
end, a WSD schedule or a constant rate. The noiseless loss of a run is the multi-power law of Luo et al. (ICLR
2025) with the constants they fitted for each size (:data:`~sh_scaling.schedules.LUO_2025`, interpolated in
log-size between their 25M, 100M and 400M models), so runs of one size share one law, as the joint surrogate
assumes, and a long cosine run looks worse than a short one at equal compute until its own decay, as in real
sweeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sh_scaling._checks import positive_finite
from sh_scaling.curves._curve import Curve, CurveSet
from sh_scaling.schedules import LUO_2025, WSD, Constant, Cosine, MultiPowerLawParams, Schedule, multi_power_law

__all__ = ["generate_schedule_ladder", "LADDER_SCHEDULES", "LADDER_NOISE_MODELS"]

#: Schedule kinds accepted by ``generate_schedule_ladder(schedules=...)``.
LADDER_SCHEDULES = ("cosine", "wsd", "constant")
#: Noise models accepted by ``generate_schedule_ladder(noise=...)``.
LADDER_NOISE_MODELS = ("none", "white", "ar1")

#: The runs behind the constants: peak 3e-4 after a 2,160-step warm-up, decays to 10 % of the peak, WSD decays
#: exponential over the last 1/6 of the run (Luo et al. 2025; ``shared/data/multipowerlaw/SUMMARY.md``).
_PEAK_LR = 3e-4
_WARMUP_STEPS = 2160
_FINAL_RATIO = 0.1
_WSD_DECAY_FRACTION = 4000 / 24000
#: Parameter counts of the three fits of Luo et al. (nominal).
_FIT_SIZES = {"25M": 25e6, "100M": 100e6, "400M": 400e6}


def generate_schedule_ladder(
    sizes: Sequence[float] = (25e6, 100e6, 400e6),
    runs_per_size: int = 6,
    *,
    seed: int | np.random.Generator | None = 0,
    steps_range: tuple[int, int] = (8_000, 72_000),
    schedules: Sequence[str] = LADDER_SCHEDULES,
    eval_every: int = 256,
    tokens_per_step: float = 2.0**19,
    noise: str = "white",
    noise_scale: float = 0.002,
    noise_correlation: float = 0.9,
    run_offset_scale: float = 0.003,
    name: str = "schedule-ladder",
) -> CurveSet:
    """A seeded ladder of runs with per-run sizes, lengths and schedules, and a multi-power-law ground truth.

    **Runs.** For each model size in ``sizes``, ``runs_per_size`` runs, each with a length drawn log-uniformly
    from ``steps_range`` and a schedule drawn uniformly from ``schedules``:

    * ``"cosine"``: warm-up, then a cosine decay to 10 % of the peak at the run's own end;
    * ``"wsd"``: warm-up, constant, then an exponential decay to 10 % of the peak over the last sixth of the run;
    * ``"constant"``: warm-up, then the peak rate.

    Peak 3e-4 after a 2,160-step linear warm-up (at most a tenth of a run), as in the runs of Luo et al.
    (2025), whose constants assume those rates.

    **Ground truth.** :func:`~sh_scaling.schedules.multi_power_law` with time in steps and the constants Luo et
    al. fitted for 25M, 100M and 400M parameters; for other sizes each constant is interpolated linearly in
    log-size (logs of the positive scale constants ``L0, A, B, C``; the exponents as they are), and held at the
    nearest fit outside 25M-400M. Runs of one size share the law.

    **Noise**, on log-loss (so ``noise_scale`` is relative: 0.002 is 0.2 %):

    * ``"none"``: the noiseless law;
    * ``"white"``: independent Gaussian noise of std ``noise_scale`` at each evaluation;
    * ``"ar1"``: Gaussian noise of std ``noise_scale`` correlated ``noise_correlation`` between consecutive
      evaluations (slow wiggles, like the drift of a real loss curve).

    Each run also gets a constant offset of std ``run_offset_scale`` (0.3 % by default: the 24k- and 72k-step
    runs of Luo et al. differ by 0.6 % at the same step under the same learning rates), the spread between
    seeds that a shared law cannot follow. ``noise="none"`` removes the offset too.

    **Compute** is training FLOPs, ``6 N x tokens_per_step x step`` (Kaplan et al. 2020); the batch of Luo et
    al. is not published, so ``tokens_per_step`` (default 2**19, a common half-million-token batch) is a choice.

    **Metadata** of each curve: ``n_params``, ``size`` (e.g. ``"1e+08"``, the family key), ``schedule`` (a
    :mod:`sh_scaling.schedules` object), ``schedule_kind``, ``total_steps``, ``max_compute`` (compute at the
    planned end; ``compute / max_compute`` is the schedule's fraction), ``law`` (the constants, a dict),
    ``run_offset``, ``steps``, ``lr`` and ``noiseless_loss`` (arrays aligned with ``compute``).

    Args:
        sizes: Parameter counts of the ladder (> 0). Default the three sizes of Luo et al.
        runs_per_size: Runs per size (>= 1). Default 6.
        seed: Seed or :class:`numpy.random.Generator`; the same seed gives the same ladder.
        steps_range: ``(low, high)`` run lengths in steps, ``low >= 2 * eval_every``. Default 8k-72k.
        schedules: Schedule kinds to draw from (from :data:`LADDER_SCHEDULES`). Default all three.
        eval_every: Steps between evaluations (>= 1); the first is at the end of warm-up, the last at the
            planned end. Default 256.
        tokens_per_step: Tokens per step for the compute axis (> 0).
        noise: One of :data:`LADDER_NOISE_MODELS`. Default ``"white"``.
        noise_scale: Std of the log-loss noise (>= 0). Default 0.002.
        noise_correlation: Correlation of consecutive ``"ar1"`` noise values, in ``[0, 1)``. Default 0.9.
        run_offset_scale: Std of the per-run log-loss offset (>= 0). Default 0.003.
        name: Name of the returned :class:`CurveSet`.

    Returns:
        A :class:`CurveSet` of ``len(sizes) * runs_per_size`` curves, ids ``"run-000"``, ... ordered by size.

    Example:
        >>> ladder = generate_schedule_ladder((25e6, 4e8), 3, seed=1)
        >>> len(ladder), sorted({c.meta["schedule_kind"] for c in ladder}) <= ["constant", "cosine", "wsd"]
        (6, True)
    """
    sizes = [positive_finite(f"sizes[{i}]", s) for i, s in enumerate(sizes)]
    if not sizes:
        raise ValueError("sizes must name at least one model size")
    runs_per_size = _integer("runs_per_size", runs_per_size, 1)
    eval_every = _integer("eval_every", eval_every, 1)
    low, high = _steps_range(steps_range, eval_every)
    kinds = list(schedules)
    unknown = sorted(set(kinds) - set(LADDER_SCHEDULES))
    if not kinds or unknown:
        raise ValueError(f"schedules must be a non-empty selection of {list(LADDER_SCHEDULES)}, got {schedules!r}")
    if noise not in LADDER_NOISE_MODELS:
        raise ValueError(f"noise={noise!r} is not one of {list(LADDER_NOISE_MODELS)}")
    tokens_per_step = positive_finite("tokens_per_step", tokens_per_step)
    noise_scale = _non_negative("noise_scale", noise_scale)
    run_offset_scale = _non_negative("run_offset_scale", run_offset_scale)
    if not (isinstance(noise_correlation, (int, float)) and 0.0 <= noise_correlation < 1.0):
        raise ValueError(f"noise_correlation must be a number in [0, 1), got {noise_correlation!r}")

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_runs = len(sizes) * runs_per_size
    # Every draw that shapes a run comes first, so the noise model never changes the runs themselves.
    lengths = np.round(np.exp(rng.uniform(math.log(low), math.log(high), n_runs))).astype(int)
    kind_of = [kinds[i] for i in rng.integers(0, len(kinds), n_runs)]
    offsets = rng.standard_normal(n_runs) * run_offset_scale

    curves = []
    for k in range(n_runs):
        n_params = sizes[k // runs_per_size]
        law = _constants_for(n_params)
        total = int(lengths[k])
        warmup = min(_WARMUP_STEPS / total, 0.1)
        schedule = _schedule(kind_of[k], total, warmup)
        # Every ``eval_every`` steps from the end of warm-up, and at the planned end.
        steps = np.union1d(np.arange(max(round(warmup * total), 1), total, eval_every), [total]).astype(float)
        clean = multi_power_law(steps / total, schedule, law, run_length=total)
        if noise == "none":
            log_noise = np.zeros_like(steps)
        else:
            log_noise = offsets[k] + _noise(rng, noise, noise_scale, noise_correlation, steps.size)
        loss = clean * np.exp(log_noise)
        flops_per_step = 6.0 * n_params * tokens_per_step
        for arr in (steps, clean):
            arr.setflags(write=False)
        lr = schedule(steps / total)
        lr.setflags(write=False)
        meta = {
            "n_params": n_params,
            "size": f"{n_params:.3g}",
            "schedule": schedule,
            "schedule_kind": schedule.kind,
            "total_steps": total,
            "max_compute": flops_per_step * total,
            "law": law.as_dict(),
            "run_offset": float(offsets[k]) if noise != "none" else 0.0,
            "steps": steps,
            "lr": lr,
            "noiseless_loss": clean,
        }
        curves.append(Curve.from_arrays(f"run-{k:03d}", flops_per_step * steps, loss, meta))
    return CurveSet(curves, name=name)


def _constants_for(n_params: float) -> MultiPowerLawParams:
    """Luo et al.'s constants at ``n_params``: linear in log-size between their fits, held beyond them."""
    x = [math.log(v) for v in _FIT_SIZES.values()]
    fits = [LUO_2025[k] for k in _FIT_SIZES]
    at = math.log(n_params)

    def interp(values: list[float], log_scale: bool) -> float:
        v = np.log(values) if log_scale else np.asarray(values)
        out = float(np.interp(at, x, v))
        return math.exp(out) if log_scale else out

    return MultiPowerLawParams(
        L0=interp([p.L0 for p in fits], True),
        A=interp([p.A for p in fits], True),
        alpha=interp([p.alpha for p in fits], False),
        B=interp([p.B for p in fits], True),
        C=interp([p.C for p in fits], True),
        beta=interp([p.beta for p in fits], False),
        gamma=interp([p.gamma for p in fits], False),
        source=f"Luo et al. 2025 interpolated to {n_params:.3g} parameters",
    )


def _schedule(kind: str, total: int, warmup: float) -> Schedule:
    if kind == "cosine":
        return Cosine(peak_lr=_PEAK_LR, warmup=warmup, final_ratio=_FINAL_RATIO)
    if kind == "wsd":
        return WSD(peak_lr=_PEAK_LR, warmup=warmup, decay_start=1.0 - _WSD_DECAY_FRACTION, decay="exponential",
                   final_ratio=_FINAL_RATIO)
    return Constant(peak_lr=_PEAK_LR, warmup=warmup)


def _noise(rng: np.random.Generator, kind: str, scale: float, rho: float, n: int) -> np.ndarray:
    z = rng.standard_normal(n) * scale
    if kind == "white" or n == 0:
        return z
    # Stationary AR(1): x_0 ~ N(0, s^2), x_t = rho x_{t-1} + sqrt(1 - rho^2) z_t.
    out = np.empty(n)
    out[0] = z[0]
    innovation = math.sqrt(1.0 - rho * rho)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + innovation * z[t]
    return out


def _non_negative(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _integer(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _steps_range(steps_range: tuple[int, int], eval_every: int) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in steps_range)
    except (TypeError, ValueError):
        raise ValueError(f"steps_range must be (low, high) integers, got {steps_range!r}") from None
    if not (2 * eval_every <= low <= high):
        raise ValueError(f"steps_range must satisfy 2 * eval_every ({2 * eval_every}) <= low <= high, "
                         f"got {steps_range!r}")
    return low, high
