"""Replay recorded learning curves as trials of real Optuna studies, under Optuna's pruners and ours.

Each study is a sweep: every curve of the set is one trial (enqueued in a seeded order, so the sampler's choice
is the order of arrival). The objective reports the recorded curve point by point with
:func:`sh_scaling.report` (which also calls ``trial.report``), and stops when ``trial.should_prune()`` says so;
``study.optimize`` runs it, one trial at a time. Optuna's built-in pruners see a step index proportional to
compute (the step of a point is its compute in units of the smallest first evaluation), so their rungs, like
ours, compare trials of different sizes at equal compute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.keys import DECISION_KEY, FORECAST_KEY, rung_records
from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.simulation._metrics import allocation_metrics, frontier_law

__all__ = [
    "FROM_CURVES",
    "PRUNERS",
    "PrunerSpec",
    "arrival_order",
    "clairvoyant_bound",
    "make_pruner",
    "replay_study",
    "summarize_replay",
]

#: Largest step Optuna's RDB storages can hold (a signed 32-bit integer).
_MAX_STEP = 2**31 - 1


#: ``PrunerSpec("ours", {"schedule": FROM_CURVES, "family": FROM_CURVES})``: each trial's schedule, planned
#: compute or family read from its curve's metadata (``"from_curves"``).
FROM_CURVES = "from_curves"


def _ours(
    curves: CurveSet, *, max_compute: Any = None, schedule: Any = None, family: Any = None, **kwargs: Any
) -> optuna.pruners.BasePruner:
    """Our pruner for a replay: ``max_compute`` is each curve's final compute, unless ``max_compute``,
    ``schedule`` or ``family`` is :data:`FROM_CURVES`:

    * ``max_compute="from_curves"``: the planned compute in the curve's metadata (``meta["max_compute"]``, the
      schedule's end; the 25M two-stage runs of Luo et al. stop at 88 % of it), else its final compute;
    * ``schedule="from_curves"``: ``meta["schedule"]`` (``None`` where a curve has none), with the planned
      compute as above, since a schedule is a function of the fraction of the planned run;
    * ``family="from_curves"``: ``meta["size"]`` (else ``meta["n_params"]``): runs of one model size share
      the law's constants.

    Other values of ``schedule`` and ``family`` go to the pruner as they are.
    """
    final = [c.final_compute for c in curves]
    if schedule == FROM_CURVES:
        schedules = [c.meta.get("schedule") for c in curves]
        kwargs["schedule"] = lambda p: schedules[p["curve"]]
        max_compute = FROM_CURVES
    elif schedule is not None:
        kwargs["schedule"] = schedule
    if family == FROM_CURVES:
        names = [c.meta.get("size", c.meta.get("n_params")) for c in curves]
        kwargs["family"] = lambda p: names[p["curve"]]
    elif family is not None:
        kwargs["family"] = family
    if max_compute == FROM_CURVES:
        planned = [float(c.meta.get("max_compute", c.final_compute)) for c in curves]
        return SurrogateHalvingPruner(max_compute=lambda p: planned[p["curve"]], **kwargs)
    if max_compute is not None:
        raise ValueError(f"max_compute={max_compute!r}: the replay sets it (or {FROM_CURVES!r} from the metadata)")
    return SurrogateHalvingPruner(max_compute=lambda p: final[p["curve"]], **kwargs)


def _patient(curves: CurveSet, patience: int = 3, **kwargs: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**kwargs), patience=patience)


#: Pruner names :func:`replay_study` and ``sh-scaling simulate --pruners`` accept; each is a factory
#: ``f(curves, **kwargs)``, the keyword arguments being the pruner's own.
PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "ours": _ours,
    "nop": lambda curves, **kw: optuna.pruners.NopPruner(),
    "sha": lambda curves, **kw: optuna.pruners.SuccessiveHalvingPruner(**kw),
    "hyperband": lambda curves, **kw: optuna.pruners.HyperbandPruner(**kw),
    "median": lambda curves, **kw: optuna.pruners.MedianPruner(**kw),
    "percentile": lambda curves, **kw: optuna.pruners.PercentilePruner(**kw),
    "patient": _patient,
}


@dataclass(frozen=True)
class PrunerSpec:
    """A pruner by name and settings, so that it can be rebuilt in a worker process for each study.

    ``PrunerSpec("ours", {"surrogate": "gp"})``, ``PrunerSpec("sha", {"min_resource": 4})``,
    ``PrunerSpec("ours", {"schedule": "from_curves", "family": "from_curves"})`` (each curve's schedule and
    model size from its metadata; see :data:`FROM_CURVES`).
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in PRUNERS:
            raise ValueError(f"unknown pruner {self.name!r}; choose one of {sorted(PRUNERS)}")

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.name}({extra})" if extra else self.name


def make_pruner(spec: str | PrunerSpec, curves: CurveSet) -> optuna.pruners.BasePruner:
    """Build the pruner of ``spec`` for a replay of ``curves`` (ours gets each curve's final compute as its
    ``max_compute``)."""
    spec = PrunerSpec(spec) if isinstance(spec, str) else spec
    return PRUNERS[spec.name](curves, **dict(spec.kwargs))


def _compute_steps(curves: CurveSet) -> list[np.ndarray]:
    """Each curve's step indices, proportional to compute (unit: the smallest first evaluation)."""
    unit = min(float(c.compute[0]) for c in curves)
    out = []
    for c in curves:
        steps = np.maximum(np.rint(c.compute / unit), 1).astype(np.int64)
        # Points closer than one unit would share a step (Optuna keeps the first value): keep them distinct.
        for i in range(1, steps.size):
            steps[i] = max(steps[i], steps[i - 1] + 1)
        if steps[-1] > _MAX_STEP:
            raise ValueError(
                f"curve {c.id!r}: its compute spans more than 2**31 times the smallest first evaluation; "
                "Optuna's steps cannot represent it"
            )
        out.append(steps)
    return out


def arrival_order(curves: Sequence[Curve], seed: int, order: str = "random") -> np.ndarray:
    """The order in which a replay's study receives the curves (indices into ``curves``)."""
    n = len(curves)
    if order == "random":
        return np.random.default_rng(seed).permutation(n)
    if order == "given":
        return np.arange(n)
    if order == "small-first":
        return np.argsort([c.final_compute for c in curves], kind="stable")
    raise ValueError(f"order={order!r}: choose 'random', 'given' or 'small-first'")


def clairvoyant_bound(
    curves: CurveSet | Sequence[Curve],
    *,
    seeds: Sequence[int] | int = (0,),
    order: str = "random",
    min_points: int = 0,
    min_fraction: float = 0.0,
    min_improvement: float = 0.0,
) -> pd.DataFrame:
    """The least compute a pruner with no regret can spend when trials arrive one by one, as in a replay.

    The bound's pruner knows every arriving trial's whole curve at no cost, but not the trials still to come
    (it sees the study in the order :func:`replay_study` uses for the same seed). To be sure of zero
    best-loss regret, whatever comes later, it must train every trial that beats all earlier ones, up to the
    compute where that trial reaches its lowest loss; everything else it stops before the first report. A
    pruner that spends less in some study has stopped a trial that would have been the best had the study
    ended with it: its zero regret there came from trials that happened to arrive later.

    Args:
        curves, seeds, order: As for :func:`replay_study`.
        min_points, min_fraction: A trial it stops still costs the compute up to its first possible decision:
            its ``min_points``-th point, and at least ``min_fraction`` of its planned compute
            (``meta["max_compute"]``, else its final compute). The default pruner decides no trial before
            3 points and 5 % of its ``max_compute`` (``min_points=3, min_fraction=0.05``); 0 and 0 (the
            default) is the bound of any pruner.
        min_improvement: The clairvoyant form of the pruner's improvement rule: a trial is trained only if
            its lowest loss beats the best trained so far by more than this fraction, so the regret is at most
            that fraction (given per seed in ``regret``). 0 (default): the zero-regret bound above.

    Returns:
        One row per seed: ``seed``, ``compute_frac`` (the bound, a fraction of training every curve to its
        end), ``expected_frac`` (the bound's mean over all arrival orders: the trial ranked ``k``-th by lowest
        loss beats all earlier ones with probability ``1 / k``) and ``hindsight_frac`` (training the best
        trial alone, and the others to their first possible decision: the oracle that knows the whole study
        in advance), and ``regret`` (of the bound's pruner: 0 unless ``min_improvement``). With
        ``min_improvement`` > 0 a trial's fate depends on more than its rank, and ``expected_frac`` is NaN.
    """
    cs = list(curves)
    if len(cs) < 1:
        raise ValueError("clairvoyant_bound: no curves")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    best = np.array([float(np.min(c.loss)) for c in cs])
    upto = np.array([float(c.compute[int(np.argmin(c.loss))]) for c in cs])
    total = float(sum(c.final_compute for c in cs))
    if not (isinstance(min_points, int) and min_points >= 0):
        raise ValueError(f"min_points={min_points!r}: must be an integer >= 0")
    if not (0.0 <= min_fraction <= 1.0):
        raise ValueError(f"min_fraction={min_fraction!r}: must be in [0, 1]")
    if not (0.0 <= min_improvement < 1.0):
        raise ValueError(f"min_improvement={min_improvement!r}: must be in [0, 1)")
    look = np.array([
        min(float(c.final_compute), max(float(c.compute[min(min_points, len(c)) - 1]) if min_points else 0.0,
                                        min_fraction * float(c.meta.get("max_compute", c.final_compute))))
        for c in cs
    ])
    rank = np.argsort(np.argsort(best, kind="stable"), kind="stable") + 1
    # Over all orders: the trial ranked k-th is a record with probability 1 / k, stopped otherwise.
    expected = float(np.sum(upto / rank + look * (1 - 1 / rank))) / total if min_improvement == 0 else math.nan
    winner = int(np.argmin(best))
    hindsight = float(upto[winner] + look.sum() - look[winner]) / total
    rows = []
    for seed in seed_list:
        record, spent = math.inf, 0.0
        for i in arrival_order(cs, seed, order):
            if best[i] < record * (1 - min_improvement):
                record = best[i]
                spent += upto[i]
            else:
                spent += look[i]
        rows.append({"seed": seed, "compute_frac": spent / total, "expected_frac": expected,
                     "hindsight_frac": hindsight, "regret": (record - best[winner]) / best[winner]})
    return pd.DataFrame(rows)


def _one_study(curves: CurveSet, spec: PrunerSpec, seed: int, order: str) -> pd.DataFrame:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="minimize", pruner=make_pruner(spec, curves), sampler=optuna.samplers.RandomSampler(seed)
    )
    n = len(curves)
    for i in arrival_order(curves, seed, order):
        study.enqueue_trial({"curve": int(i)})
    steps = _compute_steps(curves)

    def objective(trial: optuna.trial.Trial) -> float:
        i = trial.suggest_int("curve", 0, n - 1)
        curve = curves[i]
        for step, c, loss in zip(steps[i], curve.compute, curve.loss):
            report(trial, float(loss), compute=float(c), step=int(step))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(curve.final_loss)

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n, catch=())
    wall = time.perf_counter() - t0
    rows = []
    observed: list[Curve] = []
    spent = 0.0
    for t in study.get_trials(deepcopy=False):
        i = t.params["curve"]
        curve = curves[i]
        k = len(t.intermediate_values)
        if k:
            observed.append(Curve(curve.id, curve.compute[:k], curve.loss[:k], curve.meta, curve.unit))
            spent += float(curve.compute[k - 1])
        rows.append(
            {
                "seed": seed,
                "pruner": spec.label,
                "trial": t.number,
                "curve": curve.id,
                "state": t.state.name,
                "n_reported": k,
                "compute_spent": float(curve.compute[k - 1]) if k else 0.0,
                "final_compute": curve.final_compute,
                "best_observed": float(curve.loss[:k].min()) if k else math.nan,
                "final_loss": curve.final_loss,
                "forecast": t.user_attrs.get(FORECAST_KEY),
                "decision": t.user_attrs.get(DECISION_KEY),
                "rungs": list(rung_records(t.system_attrs).values()),
            }
        )
    full = list(curves)
    metrics = allocation_metrics(observed, full, spent, frontier_law(full))
    df = pd.DataFrame(rows)
    df["compute_frac"] = spent / metrics["exhaustive_compute"]
    df["regret"] = metrics["regret"]
    df["law_error"] = metrics["law_area_mean"]
    df["exponent_error"] = metrics["exponent_error"]
    df["wall_s"] = wall
    return df


def replay_study(
    curves: CurveSet | Sequence[Curve],
    pruner: str | PrunerSpec,
    *,
    seeds: Sequence[int] | int = (0,),
    order: str = "random",
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Run each curve as a trial of a real Optuna study under ``pruner``, once per seed.

    Args:
        curves: The recorded curves (each one trial; only its prefix up to the pruning decision is seen).
        pruner: A name from :data:`PRUNERS` (``"ours"``, ``"sha"``, ``"hyperband"``, ``"median"``,
            ``"percentile"``, ``"patient"``, ``"nop"``) or a :class:`PrunerSpec` with settings.
        seeds: Seeds (or a count): each seed is one study, with its own arrival order.
        order: ``"random"`` (a seeded permutation per seed), ``"given"`` or ``"small-first"``.
        n_jobs: Worker processes over seeds (1: in this process).

    Returns:
        One row per seed and curve: ``seed, pruner, trial, curve, state, n_reported, compute_spent,
        final_compute, best_observed, final_loss, forecast, decision`` (the pruner's last forecast and
        decision text for the trial, ours only), ``rungs`` (ours: the trial's decision records, one dict per
        rung in order of compute, as :func:`sh_scaling.report` users find them in the trial's system
        attributes; other pruners: empty) and the study's metrics, repeated on each of its rows:
        ``compute_frac`` (compute spent / training every curve to its end), ``regret`` ((best observed -
        exhaustive best) / exhaustive best), ``law_error`` (mean absolute ln-loss gap between the law fitted
        on the observed frontier and the exhaustive law), ``exponent_error`` and ``wall_s``.
    """
    cs = curves if isinstance(curves, CurveSet) else CurveSet(curves)
    if len(cs) < 2:
        raise ValueError(f"replay_study: need at least 2 curves, got {len(cs)}")
    spec = PrunerSpec(pruner) if isinstance(pruner, str) else pruner
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("replay_study: no seeds")
    if n_jobs == 1:
        frames = [_one_study(cs, spec, s, order) for s in seed_list]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            frames = list(pool.map(_one_study, [cs] * len(seed_list), [spec] * len(seed_list), seed_list,
                                   [order] * len(seed_list)))
    return pd.concat(frames, ignore_index=True)


def summarize_replay(df: pd.DataFrame) -> pd.DataFrame:
    """Per pruner (and curve set, when a ``curves`` column is present): mean compute fraction, regret and law
    error over seeds, with standard errors."""
    keys = [k for k in ("curves", "pruner") if k in df.columns]
    per_study = df.groupby([*keys, "seed"], sort=False)[
        ["compute_frac", "regret", "law_error", "exponent_error", "wall_s"]
    ].first().reset_index()
    g = per_study.groupby(keys, sort=False)

    def se(x: pd.Series) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else math.nan

    out = g.agg(
        seeds=("seed", "nunique"),
        compute_frac=("compute_frac", "mean"),
        compute_frac_se=("compute_frac", se),
        regret_pct=("regret", lambda x: 100 * x.mean()),
        regret_se_pct=("regret", lambda x: 100 * se(x)),
        law_error=("law_error", "mean"),
        law_error_se=("law_error", se),
        exponent_error=("exponent_error", "mean"),
        wall_s=("wall_s", "mean"),
    )
    return out.reset_index()
