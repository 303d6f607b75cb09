"""Replaying learning curves through budget-allocation strategies, and the metrics that compare them."""

from sh_scaling.simulation._metrics import (
    MIN_ORACLE_GAIN,
    allocation_metrics,
    frontier_law,
    oracle_share,
    relative_improvement,
)
from sh_scaling.simulation._plots import plot_frontiers, plot_ri_by_budget
from sh_scaling.simulation._clairvoyant import clairvoyant_bound
from sh_scaling.simulation._replay import (
    FROM_CURVES,
    PRUNERS,
    PrunerSpec,
    arrival_order,
    make_pruner,
    replay_study,
    summarize_replay,
)
from sh_scaling.simulation._rounds import round_table
from sh_scaling.simulation._runner import DEFAULT_STRATEGIES, simulate, summarize
from sh_scaling.simulation._strategies import (
    SCHEDULE_AWARE,
    STRATEGIES,
    UNSEEN_RULES,
    AllocationResult,
    RoundInputs,
    RoundRecord,
    Strategy,
    allocate,
    first_evaluation_reach,
    n_rounds,
    round_inputs,
    round_scores,
    stated_schedule,
    unseen_scores,
)

__all__ = [
    "DEFAULT_STRATEGIES",
    "MIN_ORACLE_GAIN",
    "oracle_share",
    "FROM_CURVES",
    "PRUNERS",
    "PrunerSpec",
    "RoundInputs",
    "RoundRecord",
    "SCHEDULE_AWARE",
    "UNSEEN_RULES",
    "unseen_scores",
    "arrival_order",
    "clairvoyant_bound",
    "make_pruner",
    "plot_frontiers",
    "plot_ri_by_budget",
    "replay_study",
    "round_inputs",
    "round_scores",
    "round_table",
    "summarize_replay",
    "STRATEGIES",
    "AllocationResult",
    "Strategy",
    "allocate",
    "allocation_metrics",
    "first_evaluation_reach",
    "frontier_law",
    "n_rounds",
    "relative_improvement",
    "simulate",
    "stated_schedule",
    "summarize",
]
