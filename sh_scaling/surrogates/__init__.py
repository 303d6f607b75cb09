"""Learning-curve surrogates behind one scikit-learn-shaped protocol."""

from sh_scaling.surrogates._base import (
    MIN_PLAUSIBLE_RATIO,
    MIN_POINTS,
    Forecast,
    MultiCurveSurrogate,
    Surrogate,
    forecast,
    forecast_paths,
    make_surrogate,
)
from sh_scaling.surrogates._gp import ExponentialDecayKernel, GPSurrogate, MultiCurveGPSurrogate
from sh_scaling.surrogates._multipower import JointMultiPowerLawSurrogate, MultiPowerLawSurrogate, priors_from_fits
from sh_scaling.surrogates._parametric import (
    EXTRAPOLATION_STD,
    ExponentialSurrogate,
    MMFSurrogate,
    PowerLawSurrogate,
)

__all__ = [
    "EXTRAPOLATION_STD",
    "MIN_PLAUSIBLE_RATIO",
    "MIN_POINTS",
    "ExponentialDecayKernel",
    "ExponentialSurrogate",
    "Forecast",
    "GPSurrogate",
    "JointMultiPowerLawSurrogate",
    "MMFSurrogate",
    "MultiPowerLawSurrogate",
    "MultiCurveGPSurrogate",
    "MultiCurveSurrogate",
    "PowerLawSurrogate",
    "Surrogate",
    "forecast",
    "forecast_paths",
    "make_surrogate",
    "priors_from_fits",
]
