"""Learning curves and where they come from: recorded runs, a user's CSV, or a synthetic generator."""

from sh_scaling.curves._curve import Curve, CurveSet, CurveWarning

__all__ = ["Curve", "CurveSet", "CurveWarning"]
