from .scaling_prior import ScalingLawPrior
from .scaling_prior import ScalingPriorSampler


__all__ = ["ScalingPriorSampler", "ScalingLawPrior"]
