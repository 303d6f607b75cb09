"""Learning curves and where they come from: recorded runs, a user's CSV, an Optuna study, or a synthetic generator."""

from sh_scaling.curves._csv import load_csv
from sh_scaling.curves._curve import DEFAULT_STATES, Curve, CurveSet, CurveWarning, from_study
from sh_scaling.curves._routing import ROUTER_TYPES, ROUTING_SHA256, ROUTING_URL, fetch_routing, load_routing
from sh_scaling.curves._synthetic import NOISE_MODELS, generate_synthetic

__all__ = [
    "Curve",
    "CurveSet",
    "CurveWarning",
    "load_routing",
    "fetch_routing",
    "ROUTING_URL",
    "ROUTING_SHA256",
    "ROUTER_TYPES",
    "generate_synthetic",
    "NOISE_MODELS",
    "load_csv",
    "from_study",
    "DEFAULT_STATES",
]

from sh_scaling.curves._multipowerlaw import (  # noqa: E402 - grouped with its names below
    MULTIPOWERLAW_SHA256,
    MULTIPOWERLAW_SIZES,
    MULTIPOWERLAW_URL,
    fetch_multipowerlaw,
    load_multipowerlaw,
)
from sh_scaling.curves._cpu_ladder import CPU_LADDER_LOSSES, load_cpu_ladder  # noqa: E402
from sh_scaling.curves._schedule_synthetic import (  # noqa: E402
    LADDER_NOISE_MODELS,
    LADDER_SCHEDULES,
    generate_schedule_ladder,
)

__all__ += [
    "load_multipowerlaw",
    "fetch_multipowerlaw",
    "MULTIPOWERLAW_URL",
    "MULTIPOWERLAW_SHA256",
    "MULTIPOWERLAW_SIZES",
    "generate_schedule_ladder",
    "LADDER_SCHEDULES",
    "LADDER_NOISE_MODELS",
    "load_cpu_ladder",
    "CPU_LADDER_LOSSES",
]
