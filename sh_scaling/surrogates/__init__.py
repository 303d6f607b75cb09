"""Learning-curve surrogates behind one scikit-learn-shaped protocol."""

from sh_scaling.surrogates._base import (
    MIN_POINTS,
    Forecast,
    MultiCurveSurrogate,
    Surrogate,
    forecast,
    forecast_paths,
    make_surrogate,
)
from sh_scaling.surrogates._gp import ExponentialDecayKernel, GPSurrogate, MultiCurveGPSurrogate
from sh_scaling.surrogates._parametric import ExponentialSurrogate, MMFSurrogate, PowerLawSurrogate

__all__ = ["MIN_POINTS", "Forecast", "MultiCurveSurrogate", "Surrogate", "forecast", "forecast_paths", "make_surrogate"]
__all__ += [
    "ExponentialDecayKernel",
    "ExponentialSurrogate",
    "GPSurrogate",
    "MMFSurrogate",
    "MultiCurveGPSurrogate",
    "PowerLawSurrogate",
]
