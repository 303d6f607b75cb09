"""How many storage calls a budgeted sweep makes per segment, and per hold of the sweep's lease: counted one by one.

    python benchmarks/bench_budgeted_storage_calls.py
    python benchmarks/bench_budgeted_storage_calls.py --candidates 64 --holds
    python benchmarks/bench_budgeted_storage_calls.py --candidates 64 --holds --storage postgresql+psycopg2://...

A sweep of 8 candidates (``--candidates``; 20 evaluations each of one power law, a budget of 40 % of training them
all) worked by one worker in this process (:meth:`~sh_scaling.BudgetedHalving.work`) on an in-memory storage whose
every call is counted. Prints the segments, the writes (and each kind of write) and the reads, in total and per
segment. With ``--holds``, also the calls made while the worker held the sweep's lease (the steps that open and
close rounds), hold by hold: the calls of the holding thread between the claim of the lease and its release, and
the most frequent kinds, and how long each hold took (``--storage``: a database instead of memory, where each
call is a round trip; the sweep's studies are deleted afterwards). Every worker of a sweep waits for the lease while another holds it, so that each of these
calls, a round trip to a shared database, delays them all. The counts depend on the code only (the sweep is
seeded and nothing is timed), so two versions of sh_scaling can be compared by running this script with each.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
import uuid
import warnings
from typing import Any

import optuna

import sh_scaling
from sh_scaling.budgeted import _lease, segments

WRITES = ("set_trial_system_attr", "set_trial_state_values", "set_trial_user_attr", "set_trial_intermediate_value",
          "create_new_trial", "set_study_system_attr", "create_new_study")
READS = ("get_trial", "get_all_trials", "get_trial_system_attrs", "get_study_system_attrs")
CURVE = [(float(c), 10.0 / c**0.1) for c in range(1, 21)]


def _train(config: dict[str, Any], from_checkpoint: str | None, until: float) -> tuple[list, bytes]:
    return [(c, y + config["i"] / 10) for c, y in CURVE if c <= until], b"checkpoint"


class Holds:
    """The storage calls of the thread that holds the sweep's lease, one counter per hold."""

    def __init__(self) -> None:
        self.counts: list[collections.Counter] = []
        self.seconds: list[float] = []
        self._holder: int | None = None

    def note(self, name: str) -> None:
        if self._holder is not None and threading.get_ident() == self._holder:
            self.counts[-1][name] += 1

    def install(self) -> None:
        acquire, release = _lease.Lease.acquire, _lease.Lease.release
        holds = self

        def counted_acquire(lease: Any, *args: Any, **kwargs: Any) -> bool:
            held = acquire(lease, *args, **kwargs)
            if held:
                holds.counts.append(collections.Counter())
                holds.seconds.append(time.perf_counter())
                holds._holder = threading.get_ident()
            return held

        def counted_release(lease: Any, *args: Any, **kwargs: Any) -> None:
            try:
                release(lease, *args, **kwargs)
            finally:
                if holds._holder is not None:
                    holds.seconds[-1] = time.perf_counter() - holds.seconds[-1]
                holds._holder = None

        setattr(_lease.Lease, "acquire", counted_acquire)
        setattr(_lease.Lease, "release", counted_release)


def _counting_storage(calls: collections.Counter, holds: Holds | None = None, url: str | None = None) -> Any:
    """An in-memory storage that counts the calls made to it from outside (a call the storage makes to itself,
    such as ``get_trial_system_attrs`` reading the trial, is part of the outer call, as it would be one round trip
    to a database)."""
    storage: Any = optuna.storages.RDBStorage(url) if url else optuna.storages.InMemoryStorage()
    names = [n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_")]
    if url:
        # Optuna puts a cache in front of a database (finished trials are read from it once); the reads that reach
        # the database are the calls counted, and the cache's read of every trial changed since the last one.
        names.append("_get_trials")
    depth = threading.local()
    for name in names:
        real = getattr(storage, name)
        if not callable(real):
            continue

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            outer = getattr(depth, "n", 0) == 0
            if outer:
                calls[_name] += 1
                if holds is not None:
                    holds.note(_name)
            depth.n = getattr(depth, "n", 0) + 1
            try:
                return _real(*args, **kwargs)
            finally:
                depth.n -= 1

        setattr(storage, name, counted)
    return storage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=8, help="candidates in the sweep (default 8)")
    parser.add_argument("--holds", action="store_true", help="also count the calls of each hold of the lease")
    parser.add_argument("--storage", default=None, help="a database URL (default: in memory)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    calls: collections.Counter = collections.Counter()
    holds = Holds() if args.holds else None
    if holds is not None:
        holds.install()
    n_cand = args.candidates
    storage = _counting_storage(calls, holds, args.storage)
    name = f"calls-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            sweep = sh_scaling.BudgetedHalving(
                [{"i": i} for i in range(n_cand)], 0.4 * n_cand * 20, max_compute=20.0, storage=storage,
                study_name=name, artifact_store=optuna.artifacts.FileSystemArtifactStore(folder))
            sweep.work(_train)
            n = sum(len(segments(t)) for t in sweep.study_.get_trials())
    finally:
        if args.storage:
            for study in (f"{name}:driver", f"{name}:attempts", name):
                try:
                    optuna.delete_study(study_name=study, storage=args.storage)
                except KeyError:
                    pass
    writes, reads = sum(calls[k] for k in WRITES), sum(calls[k] for k in READS)
    print(f"sh_scaling {sh_scaling.__version__} from {sh_scaling.__file__}")
    print(f"{n_cand} candidates, {n} segments: {writes} writes ({writes / n:.2f} a segment), "
          f"{reads} reads ({reads / n:.2f} a segment)")
    for k in WRITES + READS:
        print(f"  {k:32s} {calls[k]}")
    if holds is not None:
        print(f"{len(holds.counts)} holds of the lease, storage calls in each: "
              f"{[sum(c.values()) for c in holds.counts]}")
        print(f"seconds each: {[round(s, 3) for s in holds.seconds]}")
        for h, c in enumerate(holds.counts, start=1):
            kinds = ", ".join(f"{k} {v}" for k, v in c.most_common())
            print(f"  hold {h}: {sum(c.values())} calls ({sum(v for k, v in c.items() if k in WRITES)} writes, "
                  f"{holds.seconds[h - 1]:.3f} s): {kinds}")


if __name__ == "__main__":
    main()
