"""What each plot shows, computed once for both drawing libraries: pure functions of a study, curves or a table.

The plotly and matplotlib versions only draw what these return, so the two can never disagree about which
runs were pruned, what the pruner forecast, or which interval the law's band is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from sh_scaling.curves import Curve, CurveSet, from_study
from sh_scaling.halving import Decision, improvement_of
from sh_scaling.keys import DECISION_KEY, PRUNED_KEY, rung_records
from sh_scaling.laws import LossPrediction, ScalingLaw, fit_scaling_law, observed_frontier
from sh_scaling.simulation import summarize_replay

__all__ = [
    "CurvesData",
    "DecisionPoint",
    "curves_data",
    "decision_points",
    "decisions_title",
    "describe_interval",
    "dodge",
    "error_bar",
    "forecast_range",
    "pruned_without_decision",
    "law_label",
    "tradeoff_data",
]

#: Bootstrap replicates of the law drawn by default: the 2.5 % tails of a 95 % interval then rest on 25
#: replicates each (the default of :func:`sh_scaling.laws.fit_scaling_law`).
N_BOOTSTRAP = 1000
#: Points of the law's band.
_BAND_POINTS = 60


@dataclass(frozen=True)
class CurvesData:
    """Everything :func:`plot_curves` draws.

    Attributes:
        curves: All curves, grouped by outcome in ``groups`` (``"complete"``, ``"pruned"``, ``"other"``).
        forecasts: For each pruned curve with a forecast: ``(id, last compute, last loss, max_compute,
            forecast)``, the pruner's last word on where it was going.
        unforecast: For each pruned curve without one: ``(id, why)``, e.g. a trial the pruner stopped for a
            NaN loss before any rung decision, or one the objective itself pruned.
        frontier: ``(grid, loss)`` of the observed frontier.
        law: The law fitted to the observed frontier (``None`` when it could not be fitted: see ``law_note``).
        band: The law's loss with its interval on a grid from its fitted range to ``predict_at``.
        prediction: The law's prediction at ``predict_at`` with its interval, when asked for.
        law_note: Why there is no law or no band, or why its sweep cannot pin it (empty when all is well).
        unit: Compute unit, for the axis label.
    """

    curves: CurveSet
    groups: dict[str, list[Curve]]
    forecasts: list[tuple[str, float, float, float, float]]
    unforecast: list[tuple[str, str]]
    frontier: tuple[np.ndarray, np.ndarray]
    law: ScalingLaw | None
    band: LossPrediction | None
    prediction: LossPrediction | None
    law_note: str
    unit: str

    @property
    def counts(self) -> str:
        """``"9 complete, 214 pruned"``: how many runs of each outcome, for a title."""
        return ", ".join(f"{len(v)} {k}" for k, v in self.groups.items() if v)

    @property
    def forecast_label(self) -> str:
        """The legend entry of the forecasts, with how many pruned runs have one when not all do."""
        n, pruned = len(self.forecasts), len(self.groups["pruned"])
        return f"pruner's forecast at max_compute ({n}" + (f" of {pruned} pruned runs)" if n != pruned else ")")

    @property
    def forecast_note(self) -> str:
        """Which pruned runs have no forecast drawn and why (``""`` when every pruned run has one)."""
        if not self.unforecast:
            return ""
        shown = "; ".join(f"{cid}: {why}" for cid, why in self.unforecast[:3])
        more = f"; and {len(self.unforecast) - 3} more" if len(self.unforecast) > 3 else ""
        return f"{len(self.unforecast)} pruned run(s) without a forecast ({shown}{more})"

    def band_split(self) -> tuple[np.ndarray, int | None]:
        """Where the band lies within the law's fitted range (a mask), and the index from which it is drawn as
        an extrapolation (``None`` when it does not go beyond); the two parts share a point so the line is
        continuous."""
        if self.band is None or self.law is None:
            raise ValueError("band_split: there is no law band to split")
        inside = self.band.compute <= self.law.c_max * (1 + 1e-9)
        if inside.all():
            return inside, None
        return inside, max(int(np.argmax(~inside)) - 1, 0)


def as_curves(
    study_or_curves: optuna.study.Study | CurveSet | Any,
    compute_fn: Callable[[dict[str, Any], int], float] | None = None,
) -> CurveSet:
    """A study's curves (:func:`sh_scaling.curves.from_study`), or the curves given."""
    if isinstance(study_or_curves, optuna.study.Study):
        return from_study(study_or_curves, compute_fn=compute_fn)
    if isinstance(study_or_curves, CurveSet):
        return study_or_curves
    items = list(study_or_curves)
    if not items or not all(isinstance(c, Curve) for c in items):
        raise ValueError(
            f"expected an optuna Study, a CurveSet or a list of Curve objects, got {type(study_or_curves).__name__}"
        )
    return CurveSet(items)


def outcome(curve: Curve) -> str:
    """``"pruned"``, ``"complete"`` (also for curves with no state: a recorded run is a finished run) or
    ``"other"`` (running, failed)."""
    state = curve.meta.get("state", "COMPLETE")
    return {"COMPLETE": "complete", "PRUNED": "pruned"}.get(str(state), "other")


def fit_law(
    curves: CurveSet, *, n_bootstrap: int = N_BOOTSTRAP, confidence: float = 0.95, seed: int | None = 0
) -> tuple[ScalingLaw | None, str]:
    """The law fitted to the observed frontier of ``curves`` with intervals over runs, and a note on what is
    missing (``""`` when nothing is)."""
    runs = [c for c in curves if len(c)]
    if len(runs) < 2:
        try:
            law = fit_scaling_law(runs, n_bootstrap=0)
        except ValueError as exc:
            return None, f"no law: {exc}"
        return law, f"no interval: intervals over runs need at least 2 runs, the study has {len(runs)}"
    try:
        with warnings.catch_warnings():
            # A replicate whose runs reach too few grid points is left out; the note below says how many.
            warnings.simplefilter("ignore", UserWarning)
            law = fit_scaling_law(runs, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    except ValueError as exc:
        return None, f"no law: {exc}"
    note = f"{law.n_failed} of {n_bootstrap} bootstrap refits failed" if law.n_failed else ""
    return law, note


def describe_interval(law: ScalingLaw) -> str:
    """The interval's name, as the legend and the report print it (``95 % percentile bootstrap over 12 runs``)."""
    if not law.intervals:
        return "no interval"
    over = f"{law.n_runs} runs" if law.resampling == "runs" else f"{law.n_points} frontier points"
    return f"{100 * law.confidence:g} % {law.interval_method} bootstrap over {over}"


def law_label(law: ScalingLaw, markup: str = "html") -> str:
    """``L = a C^-gamma, gamma = 0.074 [0.065, 0.086]`` (the exponent with its interval), with the power
    written for plotly (``markup="html"``) or matplotlib (``"tex"``)."""
    power = "C<sup>−γ</sup>" if markup == "html" else r"$C^{-\gamma}$"
    formula = f"L = a·{power}" if law.form == "power" else f"L = E + A·{power}"
    gamma = f"γ = {law.exponent:.3g}"
    if "gamma" in law.intervals:
        lo, hi = law.intervals["gamma"]
        gamma += f" [{lo:.3g}, {hi:.3g}]"
    return f"{formula}, {gamma}"


def dodge(x: list[float], keys: list[Any], step: float = 0.025) -> list[float]:
    """``x`` spread sideways where several points share a key (a rung), by ``step`` decades between neighbours,
    so that markers and error bars at the same compute stay apart on a log axis."""
    seen: dict[Any, int] = {}
    order = []
    for k in keys:
        order.append(seen.get(k, 0))
        seen[k] = order[-1] + 1
    return [v * 10 ** (step * (j - (seen[k] - 1) / 2)) for v, k, j in zip(x, keys, order)]


def curves_data(
    study_or_curves: optuna.study.Study | CurveSet | Any,
    *,
    compute_fn: Callable[[dict[str, Any], int], float] | None = None,
    law: ScalingLaw | bool = True,
    predict_at: float | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int | None = 0,
) -> CurvesData:
    """What :func:`sh_scaling.visualization.plot_curves` draws (its arguments)."""
    curves = as_curves(study_or_curves, compute_fn)
    groups: dict[str, list[Curve]] = {"complete": [], "pruned": [], "other": []}
    for c in curves:
        groups[outcome(c)].append(c)
    forecasts, unforecast = [], []
    for c in groups["pruned"]:
        target, fc = _float(c.meta.get("max_compute")), _float(c.meta.get("forecast"))
        if math.isfinite(target) and math.isfinite(fc) and target > c.final_compute:
            forecasts.append((c.id, c.final_compute, c.final_loss, target, fc))
        else:
            unforecast.append((c.id, _why_no_forecast(c, target, fc)))
    frontier = observed_frontier(list(curves))
    note = ""
    fitted: ScalingLaw | None
    if isinstance(law, ScalingLaw):
        fitted = law
    elif law:
        fitted, note = fit_law(curves, n_bootstrap=n_bootstrap, seed=seed)
    else:
        fitted, note = None, "no law asked for"
    band = prediction = None
    if fitted is not None and fitted.replicates.size:
        top = max(fitted.c_max, predict_at or 0.0)
        band = fitted.predict_interval(np.geomspace(fitted.c_min, top, _BAND_POINTS))
        if predict_at is not None:
            prediction = fitted.predict_interval(predict_at)
    elif fitted is not None and not note:
        note = "no band: the law has no bootstrap replicates"
    if fitted is not None and fitted.caveats():
        note = "; ".join(filter(None, [note, "this sweep cannot pin the law: " + "; ".join(fitted.caveats())]))
    return CurvesData(curves, groups, forecasts, unforecast, frontier, fitted, band, prediction, note,
                      curves[0].unit)


def _why_no_forecast(curve: Curve, target: float, forecast: float) -> str:
    """Why a pruned curve has no forecast to draw, in the pruner's words where it left some."""
    if not math.isfinite(forecast):
        decision = curve.meta.get("decision")
        # The pruner's own sentence (e.g. "pruned: non-finite loss nan at step 3": no forecast is made of a
        # curve with a NaN); no sentence at all: the objective raised TrialPruned itself, or another pruner did.
        return str(decision) if decision else "no decision of the pruner recorded (pruned by the objective?)"
    if not math.isfinite(target):
        return "its max_compute is unknown"
    return "pruned at its max_compute, with nothing left to forecast"


def error_bar(mid: float, low: float, high: float) -> tuple[float, float]:
    """Lengths below and above ``mid`` of an error bar from ``low`` to ``high``, clipped at zero: a negative
    length (an interval that excludes its estimate, or a rounding) is refused by matplotlib."""
    return max(mid - low, 0.0), max(high - mid, 0.0)


@dataclass(frozen=True)
class DecisionPoint:
    """One rung decision of the pruner, as recorded in the trial (:func:`sh_scaling.keys.rung_key`)."""

    trial: int
    rung: int
    compute: float
    loss: float
    target: float
    forecast: float
    std: float
    promoted: bool
    rule: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)


def decision_points(study: optuna.study.Study) -> list[DecisionPoint]:
    """Every rung record of every trial, in trial and rung order, with a sentence saying what happened."""
    points = []
    for t in study.get_trials(deepcopy=False):
        records = list(rung_records(t.system_attrs).items())
        for i, (k, rec) in enumerate(records):
            last = i == len(records) - 1
            # The pruner keeps the full sentence for the trial's last decision only; earlier ones are rebuilt.
            text = (t.system_attrs.get(PRUNED_KEY) or t.user_attrs.get(DECISION_KEY)) if last else None
            points.append(
                DecisionPoint(
                    trial=t.number,
                    rung=k,
                    compute=float(rec["compute"]),
                    loss=float(rec["loss"]),
                    target=float(rec["target"]),
                    forecast=_float(rec.get("forecast")),
                    std=_float(rec.get("std")) if rec.get("std") is not None else 0.0,
                    promoted=bool(rec.get("promoted", True)),
                    rule=str(rec.get("rule", "rank")),
                    text=str(text) if text else _describe(k, rec),
                    params=dict(t.params),
                )
            )
    return points


def pruned_without_decision(study: optuna.study.Study, points: list[DecisionPoint]) -> list[tuple[int, str]]:
    """Pruned trials with no pruning decision among ``points``, and why (the pruner's sentence when it left
    one): they count among the study's pruned trials but not among the plot's pruning decisions."""
    pruned_by_rank = {p.trial for p in points if not p.promoted}
    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)):
        if t.number not in pruned_by_rank:
            why = t.system_attrs.get(PRUNED_KEY) or t.user_attrs.get(DECISION_KEY)
            out.append((t.number, str(why) if why else "no decision of the pruner recorded (pruned by the "
                        "objective?)"))
    return out


def decisions_title(study: optuna.study.Study, points: list[DecisionPoint]) -> tuple[str, str]:
    """The decisions plot's title: how many decisions, and a note naming the study's pruned trials that have
    none among them (``""`` when there are none), so that the plot's count of prunings and the study's count of
    pruned trials can be told apart."""
    title = f"{study.study_name}: {len(points)} pruning decisions"
    missing = pruned_without_decision(study, points)
    if not missing:
        return title, ""
    shown = "; ".join(f"trial {n}: {why}" for n, why in missing[:3])
    more = f"; and {len(missing) - 3} more" if len(missing) > 3 else ""
    return title, f"{len(missing)} pruned trial(s) without a pruning decision ({shown}{more})"


def forecast_range(points: list[DecisionPoint], pad: float = 1.06) -> tuple[float, float]:
    """The forecast axis's range: the forecasts themselves, padded. Error bars do not widen it: a forecast
    whose standard deviation exceeds its mean (a short fit) would stretch a log axis below zero and squash
    every other forecast into a few pixels; its bar runs off the axis instead."""
    values = [p.forecast for p in points if math.isfinite(p.forecast) and p.forecast > 0]
    if not values:
        return 0.1, 10.0
    return min(values) / pad, max(values) * pad


def _describe(k: int, rec: dict[str, Any]) -> str:
    verdict = "promoted" if rec.get("promoted", True) else "pruned"
    text = (f"{verdict} at rung {k} (compute {rec['compute']:.4g}): loss {rec['loss']:.5g}, forecast "
            f"{_float(rec.get('forecast')):.5g} at {rec['target']:.4g}")
    # The rule's clause in the pruner's own words (Decision.explain), rebuilt from the record.
    decision = Decision(bool(rec.get("promoted", True)), str(rec.get("rule", "rank")), int(rec.get("n_competitors", 0)),
                        rec.get("rank"), rec.get("quota"), gain=improvement_of(_float(rec.get("observed_gap"))))
    return text + "; " + decision.explain()


def tradeoff_data(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per_study, summary)`` of a :func:`sh_scaling.simulation.replay_study` table: one row per pruner and
    seed (compute fraction, regret in %, law error), and per pruner the means with standard errors."""
    needed = {"pruner", "seed", "compute_frac", "regret", "law_error"}
    missing = sorted(needed - set(df.columns))
    if missing:
        raise ValueError(
            f"plot_tradeoff: the table lacks the column(s) {missing}; pass replay_study()'s DataFrame (columns "
            "pruner, seed, compute_frac, regret, law_error)"
        )
    if len(df) == 0:
        raise ValueError("plot_tradeoff: the table has no rows")
    keys = [k for k in ("curves", "pruner") if k in df.columns]
    per_study = df.groupby([*keys, "seed"], sort=False)[["compute_frac", "regret", "law_error"]].first().reset_index()
    per_study["regret_pct"] = 100 * per_study["regret"]
    return per_study, summarize_replay(df)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _float(value: Any) -> float:
    return float(value) if _finite(value) else math.nan
