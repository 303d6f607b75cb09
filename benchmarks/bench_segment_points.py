"""How fast a budgeted segment records and reports many points, on each kind of storage.

    python benchmarks/bench_segment_points.py                          # 100,000 points; memory, journal, sqlite
    python benchmarks/bench_segment_points.py --points 10000 --profile # and where the time goes (cProfile)
    SH_SCALING_TEST_POSTGRES_URL=postgresql+psycopg2://... python benchmarks/bench_segment_points.py \
        --storages postgres --points 10000                            # a PostgreSQL server (a study removed after)

A sweep of one candidate trained in one segment, whose ``train_fn`` returns ``--points`` evaluations at once:
the time of :meth:`~sh_scaling.BudgetedHalving.run` (setting the sweep up is a few storage writes), and the
points reported per second. The train function costs nothing, so the time is the segment's bookkeeping:
its record (one write holding every point), the compute lists (one write), then one
``set_trial_intermediate_value`` per loss, and the record marked done.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
import uuid

import optuna
from optuna.storages.journal import JournalFileBackend

from sh_scaling.budgeted import BudgetedHalving, segments


def _points(n: int):
    def train_fn(config, from_checkpoint, until):
        return [(until * (k + 1) / n, 10.0 / (k + 1) ** 0.1) for k in range(n)], None

    return train_fn


def _storage(kind: str, folder: str):
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    if kind == "journal":
        return optuna.storages.JournalStorage(JournalFileBackend(os.path.join(folder, "s.journal")))
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{os.path.join(folder, 's.db')}")
    if kind == "postgres":
        return optuna.storages.RDBStorage(os.environ["SH_SCALING_TEST_POSTGRES_URL"])
    raise ValueError(f"storage {kind!r}: choose memory, journal, sqlite or postgres")


def measure(kind: str, n: int, profile: bool) -> tuple[float, int, str]:
    """Seconds of one segment of ``n`` points on storage ``kind``, the losses it reported, and its profile."""
    name = f"points-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        storage = _storage(kind, folder)
        try:
            return _measure(storage, name, folder, n, profile)
        finally:
            for study in (name, f"{name}:driver", f"{name}:attempts"):
                try:
                    optuna.delete_study(study_name=study, storage=storage)
                except KeyError:
                    pass


def _measure(storage, name: str, folder: str, n: int, profile: bool) -> tuple[float, int, str]:
    """Seconds of a one-candidate sweep (one segment of ``n`` points) in study ``name`` of ``storage``, the
    losses its segment reported, and its profile."""
    sweep = BudgetedHalving([{"i": 0}], 1.0, max_compute=1.0, strategy="UA", storage=storage, study_name=name,
                            artifact_store=optuna.artifacts.FileSystemArtifactStore(folder))
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    sweep.run(_points(n))
    if prof is not None:
        prof.disable()
    seconds = time.perf_counter() - t0
    (trial,) = sweep.study_.get_trials()
    (seg,) = segments(trial)
    assert seg["status"] == "done" and len(trial.intermediate_values) == n == seg["n_reported"], seg
    text = ""
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
        text = out.getvalue()
    return seconds, int(seg["n_reported"]), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--storages", default="memory,journal,sqlite")
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest calls (cumulative)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("| storage | points | seconds | points/s |\n|---|---|---|---|")
    for kind in args.storages.split(","):
        seconds, n, text = measure(kind, args.points, args.profile)
        print(f"| {kind} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} |", flush=True)
        if text:
            print(text, flush=True)


if __name__ == "__main__":
    main()
