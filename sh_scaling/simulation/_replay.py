"""Replay recorded learning curves as trials of real Optuna studies, under Optuna's pruners and ours.

Each study is a sweep: every curve of the set is one trial (enqueued in a seeded order, so the sampler's choice
is the order of arrival). Each trial reports its recorded curve point by point with :func:`sh_scaling.report`
(which also calls ``trial.report``) and stops when ``trial.should_prune()`` says so. Trials run on simulated
workers, one or many, through Optuna's ask-and-tell interface: a discrete-event simulation in which every
report arrives at a simulated time, so that a pruner sees the other trials as they stand at that moment.
Optuna's built-in pruners see a step index proportional to compute (the step of a point is its compute in units
of the smallest first evaluation), so their rungs, like ours, compare trials of different sizes at equal
compute.
"""

from __future__ import annotations

import heapq
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
from sh_scaling.simulation._timing import Duration, check_workers, list_schedule_makespan, report_times
from sh_scaling.simulation._strategies import stated_schedule

__all__ = [
    "FROM_CURVES",
    "PRUNERS",
    "PrunerSpec",
    "arrival_order",
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
    * ``schedule="from_curves"``: ``meta["schedule"]`` (``None`` where a curve has none; ``ValueError`` where it is
      not a schedule, see :func:`~sh_scaling.simulation.stated_schedule`), with the planned
      compute as above, since a schedule is a function of the fraction of the planned run;
    * ``family="from_curves"``: ``meta["size"]`` (else ``meta["n_params"]``): runs of one model size share
      the law's constants.

    Other values of ``schedule`` and ``family`` go to the pruner as they are.
    """
    final = [c.final_compute for c in curves]
    if schedule == FROM_CURVES:
        schedules = [stated_schedule(c) for c in curves]
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


def _percentile(curves: CurveSet, percentile: float = 25.0, **kwargs: Any) -> optuna.pruners.BasePruner:
    """Optuna's ``PercentilePruner``, which has no default percentile: 25 here (the median pruner is 50)."""
    return optuna.pruners.PercentilePruner(percentile, **kwargs)


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
    "percentile": _percentile,
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


@dataclass
class _Running:
    """A trial in progress in a replay: its Optuna handle, curve, start time and next point."""

    trial: optuna.trial.Trial
    curve: int
    start: float
    point: int = 0


def _report_point(study: optuna.Study, run: _Running, curve: Curve, step: int) -> bool:
    """Report the trial's next point and ask the pruner; tell the study and return True when the trial ends
    there (pruned, or at its last point)."""
    k = run.point
    report(run.trial, float(curve.loss[k]), compute=float(curve.compute[k]), step=step)
    if run.trial.should_prune():
        study.tell(run.trial, state=optuna.trial.TrialState.PRUNED)
        return True
    if k + 1 == len(curve):
        study.tell(run.trial, float(curve.final_loss))
        return True
    run.point += 1
    return False


def _run_events(
    study: optuna.Study, curves: CurveSet, steps: list[np.ndarray], times: list[np.ndarray], n_workers: int
) -> dict[int, tuple[float, float]]:
    """Run the study's enqueued trials on ``n_workers`` simulated workers; ``{trial number: (start, end)}``.

    Events are reports, processed in order of time, ties in order of trial number (the trial that started
    first reports first; each running trial has one report pending). A trial pruned at a report, or ended at
    its last point, frees its worker, which asks the study for the next trial at once, at the same time.
    """
    n = len(curves)
    events: list[tuple[float, int]] = []
    running: dict[int, _Running] = {}
    spans: dict[int, tuple[float, float]] = {}

    def start(now: float) -> None:
        trial = study.ask()
        i = trial.suggest_int("curve", 0, n - 1)
        running[trial.number] = _Running(trial, i, now)
        heapq.heappush(events, (now + float(times[i][0]), trial.number))

    for _ in range(min(n_workers, n)):
        start(0.0)
    while events:
        now, number = heapq.heappop(events)
        run = running[number]
        if not _report_point(study, run, curves[run.curve], int(steps[run.curve][run.point])):
            heapq.heappush(events, (run.start + float(times[run.curve][run.point]), number))
            continue
        spans[number] = (run.start, now)
        del running[number]
        if len(spans) + len(running) < n:
            start(now)
    return spans


def _one_study(
    curves: CurveSet, spec: PrunerSpec, seed: int, order: str, n_workers: int, times: list[np.ndarray]
) -> pd.DataFrame:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # A name of the seed's own: HyperbandPruner assigns trials to brackets by a hash of the study's name, which
    # Optuna otherwise draws at random.
    study = optuna.create_study(
        study_name=f"replay-{seed}", direction="minimize", pruner=make_pruner(spec, curves),
        sampler=optuna.samplers.RandomSampler(seed),
    )
    arrivals = arrival_order(curves, seed, order)
    for i in arrivals:
        study.enqueue_trial({"curve": int(i)})
    t0 = time.perf_counter()
    spans = _run_events(study, curves, _compute_steps(curves), times, n_workers)
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
                "start_time": spans[t.number][0],
                "end_time": spans[t.number][1],
            }
        )
    full = list(curves)
    metrics = allocation_metrics(observed, full, spent, frontier_law(full))
    makespan = max(end for _, end in spans.values())
    exhaustive = list_schedule_makespan([times[i][-1] for i in arrivals], n_workers)
    df = pd.DataFrame(rows)
    df["compute_frac"] = spent / metrics["exhaustive_compute"]
    df["regret"] = metrics["regret"]
    df["law_error"] = metrics["law_area_mean"]
    df["exponent_error"] = metrics["exponent_error"]
    df["wall_s"] = wall
    df["n_workers"] = n_workers
    df["makespan"] = makespan
    df["exhaustive_makespan"] = exhaustive
    df["makespan_frac"] = makespan / exhaustive
    return df


def replay_study(
    curves: CurveSet | Sequence[Curve],
    pruner: str | PrunerSpec,
    *,
    seeds: Sequence[int] | int = (0,),
    order: str = "random",
    n_jobs: int = 1,
    n_workers: int = 1,
    duration: Duration | None = None,
    throughput: float | None = None,
) -> pd.DataFrame:
    """Run each curve as a trial of a real Optuna study under ``pruner``, once per seed, on ``n_workers``
    simulated workers.

    The replay is a deterministic discrete-event simulation in one process, through Optuna's ask-and-tell
    interface. The curves are enqueued in the seed's arrival order; each of the ``n_workers`` workers asks the
    study for the next trial when it is free (all at time 0 to begin with). A trial's reports arrive at
    simulated times after its start: ``compute / throughput`` by default, or ``duration(curve, compute)``.
    Reports are processed in order of time; reports at the same time in order of trial number (the trial that
    started first reports first). At each one the trial reports through :func:`sh_scaling.report` and asks
    ``trial.should_prune()``, so every pruner sees the study as it stands at that moment: other trials'
    reports up to then, the trials finished or pruned by then. A trial pruned, or finished at its last point,
    frees its worker, which asks for the next trial at once, at that time. With one worker (the default) the
    trials run one after the other, as ``study.optimize`` runs them.

    Args:
        curves: The recorded curves (each one trial; only its prefix up to the pruning decision is seen).
        pruner: A name from :data:`PRUNERS` (``"ours"``, ``"sha"``, ``"hyperband"``, ``"median"``,
            ``"percentile"``, ``"patient"``, ``"nop"``) or a :class:`PrunerSpec` with settings.
        seeds: Seeds (or a count): each seed is one study, with its own arrival order.
        order: ``"random"`` (a seeded permutation per seed), ``"given"`` or ``"small-first"``.
        n_jobs: Worker processes over seeds (1: in this process).
        n_workers: Trials running at once in each simulated sweep (an integer >= 1).
        duration: ``duration(curve, compute) -> seconds since the trial started`` for the report at
            ``compute`` (e.g. measured seconds per step times the step, or the wall-clock model of
            :mod:`sh_scaling.laws`); it must return finite, positive times that never decrease along a curve.
            Evaluated once per point before any study starts; a function that raises or returns a bad time is
            a ``ValueError`` naming the curve and the value.
        throughput: Compute per second, one for every trial, when ``duration`` is not given (default 1, so
            that times are in units of compute).

    Returns:
        One row per seed and curve: ``seed, pruner, trial, curve, state, n_reported, compute_spent,
        final_compute, best_observed, final_loss, forecast, decision`` (the pruner's last forecast and
        decision text for the trial, ours only), ``rungs`` (ours: the trial's decision records, one dict per
        rung in order of compute, as :func:`sh_scaling.report` users find them in the trial's system
        attributes; other pruners: empty), ``start_time, end_time`` (the trial's simulated seconds) and the
        study's metrics, repeated on each of its rows: ``compute_frac`` (compute spent / training every curve
        to its end), ``regret`` ((best observed - exhaustive best) / exhaustive best), ``law_error`` (mean
        absolute ln-loss gap between the law fitted on the observed frontier and the exhaustive law),
        ``exponent_error``, ``wall_s`` (real seconds the replay took), ``n_workers``, ``makespan`` (simulated
        seconds until the last trial ended), ``exhaustive_makespan`` (the same workers training every curve to
        its end, in the same order, each trial taken by the first worker free) and ``makespan_frac`` (their
        ratio).
    """
    cs = curves if isinstance(curves, CurveSet) else CurveSet(curves)
    if len(cs) < 2:
        raise ValueError(f"replay_study: need at least 2 curves, got {len(cs)}")
    spec = PrunerSpec(pruner) if isinstance(pruner, str) else pruner
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("replay_study: no seeds")
    workers = check_workers(n_workers)
    times = report_times(list(cs), duration, throughput)
    if n_jobs == 1:
        frames = [_one_study(cs, spec, s, order, workers, times) for s in seed_list]
    else:
        from concurrent.futures import ProcessPoolExecutor

        m = len(seed_list)
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            frames = list(pool.map(_one_study, [cs] * m, [spec] * m, seed_list, [order] * m, [workers] * m,
                                   [times] * m))
    return pd.concat(frames, ignore_index=True)


def summarize_replay(df: pd.DataFrame) -> pd.DataFrame:
    """Per pruner (and curve set and number of workers, when ``curves`` and ``n_workers`` columns are present):
    over seeds, mean compute fraction, regret (and ``zero_regret``, the share of seeds with none), law error and
    makespan fraction, with standard errors."""
    keys = [k for k in ("curves", "pruner", "n_workers") if k in df.columns]
    metrics = ["compute_frac", "regret", "law_error", "exponent_error", "wall_s"]
    metrics += [m for m in ("makespan_frac",) if m in df.columns]
    per_study = df.groupby([*keys, "seed"], sort=False)[metrics].first().reset_index()
    g = per_study.groupby(keys, sort=False)

    def se(x: pd.Series) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else math.nan

    columns: dict[str, tuple[str, Any]] = {
        "seeds": ("seed", "nunique"),
        "compute_frac": ("compute_frac", "mean"),
        "compute_frac_se": ("compute_frac", se),
        "regret_pct": ("regret", lambda x: 100 * x.mean()),
        "regret_se_pct": ("regret", lambda x: 100 * se(x)),
        "zero_regret": ("regret", lambda x: float((x == 0).mean())),
        "law_error": ("law_error", "mean"),
        "law_error_se": ("law_error", se),
        "exponent_error": ("exponent_error", "mean"),
        "wall_s": ("wall_s", "mean"),
    }
    if "makespan_frac" in metrics:
        columns["makespan_frac"] = ("makespan_frac", "mean")
        columns["makespan_frac_se"] = ("makespan_frac", se)
    return g.agg(**columns).reset_index()
