"""How many storage calls a budgeted sweep makes per segment: writes and reads, counted one by one.

    python benchmarks/bench_budgeted_storage_calls.py

A sweep of 8 candidates (20 evaluations each of one power law, a budget of 40 % of training them all) worked by
one worker in this process (:meth:`~sh_scaling.BudgetedHalving.work`) on an in-memory storage whose every call is
counted. Prints the segments, the writes (and each kind of write) and the reads, in total and per segment. The
counts depend on the code only (the sweep is seeded and nothing is timed), so two versions of sh_scaling can be
compared by running this script with each.
"""

from __future__ import annotations

import collections
import tempfile
import warnings
from typing import Any

import optuna

import sh_scaling
from sh_scaling.budgeted import segments

WRITES = ("set_trial_system_attr", "set_trial_state_values", "set_trial_user_attr", "set_trial_intermediate_value",
          "create_new_trial", "set_study_system_attr", "create_new_study")
READS = ("get_trial", "get_all_trials", "get_trial_system_attrs", "get_study_system_attrs")
CURVE = [(float(c), 10.0 / c**0.1) for c in range(1, 21)]


def _train(config: dict[str, Any], from_checkpoint: str | None, until: float) -> tuple[list, bytes]:
    return [(c, y + config["i"] / 10) for c, y in CURVE if c <= until], b"checkpoint"


def _counting_storage(calls: collections.Counter) -> optuna.storages.InMemoryStorage:
    storage = optuna.storages.InMemoryStorage()
    for name in WRITES + READS:
        real = getattr(storage, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(storage, name, counted)
    return storage


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    calls: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        sweep = sh_scaling.BudgetedHalving(
            [{"i": i} for i in range(8)], 0.4 * 8 * 20, max_compute=20.0, storage=_counting_storage(calls),
            study_name="calls", artifact_store=optuna.artifacts.FileSystemArtifactStore(folder))
        sweep.work(_train)
        n = sum(len(segments(t)) for t in sweep.study_.get_trials())
    writes, reads = sum(calls[k] for k in WRITES), sum(calls[k] for k in READS)
    print(f"sh_scaling {sh_scaling.__version__} from {sh_scaling.__file__}")
    print(f"{n} segments: {writes} writes ({writes / n:.2f} a segment), {reads} reads ({reads / n:.2f} a segment)")
    for k in WRITES + READS:
        print(f"  {k:32s} {calls[k]}")


if __name__ == "__main__":
    main()
