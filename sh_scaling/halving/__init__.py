"""sh_scaling.halving: the successive-halving decision core, shared by every driver.

Pure functions (numpy only, no Optuna): where decisions happen (rungs of the asynchronous pruner; rounds and
shares of fixed-budget halving), how candidates are scored (observed loss, forecast with a stated optimism,
frontier), and who goes on. :class:`sh_scaling.SurrogateHalvingPruner` reads a study's storage, asks this core,
and writes the record; :func:`sh_scaling.simulation.allocate` drives the same core over recorded curves with a
fixed budget. Where the two settings differ, the difference is an argument here (``at_risk`` in the scores,
:func:`decide` against :func:`select_survivors`).
"""

from sh_scaling.halving._defaults import (
    DECISION_START,
    DEFAULT_OPTIMISM,
    MARGIN_COVERAGE,
    MARGIN_PRIOR_WEIGHT,
    MARGIN_WIDEN,
    MIN_RUNG_FACTOR,
    N_STARTUP_TRIALS,
    PRUNER_WARMUP_FRACTION,
    SCHEDULE_MIN_IMPROVEMENT,
    STAGE_BIAS,
    STAGE_MARGINS,
    WARMUP_FRACTION,
)
from sh_scaling.halving._geometry import (
    RTOL,
    RUNG_ANCHOR,
    fit_window,
    highest_rung,
    n_rounds,
    round_shares,
    round_sizes,
    rung_compute,
    rungs_crossed,
)
from sh_scaling.halving._margins import STAGE_NODES, at_stage, margin_quantile, stage_center_table, stage_margin
from sh_scaling.halving._rule import Decision, decide, improvement_of, quota, select_survivors
from sh_scaling.halving._scores import (
    FRONTIER_GRID,
    MIN_CALIBRATION_RESIDUALS,
    calibrate_forecasts,
    forecast_paths_loglog,
    forecast_scores,
    frontier_scores,
    lower_envelope,
    observed_gap,
    observed_scores,
    optimistic,
)

__all__ = [
    "MARGIN_COVERAGE",
    "MARGIN_PRIOR_WEIGHT",
    "MARGIN_WIDEN",
    "MIN_RUNG_FACTOR",
    "STAGE_MARGINS",
    "STAGE_NODES",
    "margin_quantile",
    "at_stage",
    "stage_center_table",
    "STAGE_BIAS",
    "stage_margin",
    "MIN_CALIBRATION_RESIDUALS",
    "calibrate_forecasts",
    "DECISION_START",
    "N_STARTUP_TRIALS",
    "DEFAULT_OPTIMISM",
    "PRUNER_WARMUP_FRACTION",
    "SCHEDULE_MIN_IMPROVEMENT",
    "WARMUP_FRACTION",
    "FRONTIER_GRID",
    "RTOL",
    "RUNG_ANCHOR",
    "Decision",
    "decide",
    "fit_window",
    "highest_rung",
    "improvement_of",
    "forecast_paths_loglog",
    "forecast_scores",
    "frontier_scores",
    "lower_envelope",
    "n_rounds",
    "observed_gap",
    "observed_scores",
    "optimistic",
    "quota",
    "round_shares",
    "round_sizes",
    "rung_compute",
    "rungs_crossed",
    "select_survivors",
]
