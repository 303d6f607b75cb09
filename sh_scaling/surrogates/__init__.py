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

__all__ = ["MIN_POINTS", "Forecast", "MultiCurveSurrogate", "Surrogate", "forecast", "forecast_paths", "make_surrogate"]
