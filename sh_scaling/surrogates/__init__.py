"""Learning-curve surrogates behind one scikit-learn-shaped protocol.

The surrogates are scikit-learn estimators, and scikit-learn takes seconds to import; each name here is
imported on first use (:mod:`sh_scaling._lazy`), so that code needing only the protocol and :func:`forecast`
(the pruner's import, ``sh-scaling --help``) does not import scikit-learn.
"""

from typing import TYPE_CHECKING

from sh_scaling._lazy import lazy_exports

if TYPE_CHECKING:
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
    from sh_scaling.surrogates._multipower import (
        JointMultiPowerLawSurrogate,
        MultiPowerLawSurrogate,
        priors_from_fits,
    )
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

_BASE, _GP = "sh_scaling.surrogates._base", "sh_scaling.surrogates._gp"
_MULTIPOWER, _PARAMETRIC = "sh_scaling.surrogates._multipower", "sh_scaling.surrogates._parametric"
__getattr__, __dir__ = lazy_exports(__name__, {
    "MIN_PLAUSIBLE_RATIO": _BASE,
    "MIN_POINTS": _BASE,
    "Forecast": _BASE,
    "MultiCurveSurrogate": _BASE,
    "Surrogate": _BASE,
    "forecast": _BASE,
    "forecast_paths": _BASE,
    "make_surrogate": _BASE,
    "ExponentialDecayKernel": _GP,
    "GPSurrogate": _GP,
    "MultiCurveGPSurrogate": _GP,
    "JointMultiPowerLawSurrogate": _MULTIPOWER,
    "MultiPowerLawSurrogate": _MULTIPOWER,
    "priors_from_fits": _MULTIPOWER,
    "EXTRAPOLATION_STD": _PARAMETRIC,
    "ExponentialSurrogate": _PARAMETRIC,
    "MMFSurrogate": _PARAMETRIC,
    "PowerLawSurrogate": _PARAMETRIC,
})
