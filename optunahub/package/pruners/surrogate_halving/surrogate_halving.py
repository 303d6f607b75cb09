"""OptunaHub entry point of ``SurrogateHalvingPruner`` and ``report``.

The implementation lives in the ``sh_scaling`` library (see ``requirements.txt``); this module re-exports it, so
the hub package and the library cannot drift apart. ``tests/test_optunahub.py`` in the library checks that
the names, the README and the example stay in step with it.
"""

from sh_scaling.pruning import report
from sh_scaling.pruning import SurrogateHalvingPruner


__all__ = ["SurrogateHalvingPruner", "report"]
