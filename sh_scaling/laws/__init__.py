"""Scaling laws: the loss-compute frontier and its fitted law, and the published laws used as priors."""

from sh_scaling.laws._frontier import (
    LossPrediction,
    ScalingLaw,
    area_between_laws,
    fit_scaling_law,
    frontier_grid,
    observed_frontier,
)
from sh_scaling.laws._chinchilla import (
    ChinchillaAllocation,
    ChinchillaFit,
    chinchilla_loss,
    compute_optimal_allocation,
    fit_chinchilla,
)
from sh_scaling.laws._calibration import calibrate, calibration_configs, time_training_step
from sh_scaling.laws._transformer import TransformerConfig
from sh_scaling.laws._vocabulary import (
    VocabularyExtrapolationWarning,
    VocabularyPrediction,
    VocabularySolverError,
    optimal_flops_for_non_vocab,
    optimal_non_vocab_for_flops,
    optimal_vocabulary,
    vocabulary_loss,
    width_for_non_vocab,
)
from sh_scaling.laws._wallclock import (
    ProxyFit,
    StepTimeCalibration,
    fit_step_time,
    time_budget_loss,
    tokens_in_time,
    wider_or_deeper,
)

__all__ = [
    "LossPrediction",
    "ScalingLaw",
    "area_between_laws",
    "fit_scaling_law",
    "frontier_grid",
    "observed_frontier",
]
__all__ += [
    "ChinchillaAllocation",
    "ChinchillaFit",
    "chinchilla_loss",
    "compute_optimal_allocation",
    "fit_chinchilla",
    "TransformerConfig",
    "VocabularyExtrapolationWarning",
    "VocabularyPrediction",
    "VocabularySolverError",
    "optimal_flops_for_non_vocab",
    "optimal_non_vocab_for_flops",
    "optimal_vocabulary",
    "vocabulary_loss",
    "width_for_non_vocab",
    "ProxyFit",
    "StepTimeCalibration",
    "fit_step_time",
    "time_budget_loss",
    "tokens_in_time",
    "wider_or_deeper",
    "calibrate",
    "calibration_configs",
    "time_training_step",
]
