"""Scaling laws: the loss-compute frontier and its fitted law, and the published laws used as priors."""

from sh_scaling.laws._frontier import (
    ScalingLaw,
    area_between_laws,
    fit_scaling_law,
    frontier_grid,
    observed_frontier,
)

__all__ = ["ScalingLaw", "area_between_laws", "fit_scaling_law", "frontier_grid", "observed_frontier"]
