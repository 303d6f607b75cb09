"""OptunaHub entry point of ``ScalingPriorSampler`` and ``ScalingLawPrior``.

The implementation lives in the ``sh_scaling`` library (see ``requirements.txt``); this module re-exports it, so
the hub package and the library cannot drift apart. ``tests/test_optunahub.py`` in the library checks that
the names, the README and the example stay in step with it.
"""

from sh_scaling.sampling import ScalingLawPrior
from sh_scaling.sampling import ScalingPriorSampler


__all__ = ["ScalingPriorSampler", "ScalingLawPrior"]
