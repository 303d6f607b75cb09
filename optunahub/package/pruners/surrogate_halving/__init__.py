from .surrogate_halving import report
from .surrogate_halving import SurrogateHalvingPruner


__all__ = ["SurrogateHalvingPruner", "report"]
