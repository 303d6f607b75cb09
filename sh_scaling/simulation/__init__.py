"""Replaying learning curves through budget-allocation strategies, and the metrics that compare them."""

from sh_scaling.simulation._metrics import allocation_metrics, frontier_law, relative_improvement
from sh_scaling.simulation._runner import DEFAULT_STRATEGIES, simulate, summarize
from sh_scaling.simulation._strategies import STRATEGIES, AllocationResult, Strategy, allocate, n_rounds

__all__ = [
    "DEFAULT_STRATEGIES",
    "STRATEGIES",
    "AllocationResult",
    "Strategy",
    "allocate",
    "allocation_metrics",
    "frontier_law",
    "n_rounds",
    "relative_improvement",
    "simulate",
    "summarize",
]
