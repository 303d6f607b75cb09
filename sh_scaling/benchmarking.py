"""What every benchmark script shares: where the data are, where results go, a parallel map with progress,
and a summary writer.

Benchmarks print a table and save a plot; they are run on demand (``python benchmarks/bench_*.py``), never by
the test suite.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

__all__ = ["BENCHMARK_CURVES", "benchmark_curves", "data_path", "local_curve_sets", "output_dir", "parallel_map",
           "write_summary", "default_jobs"]

T = TypeVar("T")
R = TypeVar("R")

#: The data sets the benchmarks read, as paths below a ``data`` folder (the layout of the project's shared
#: copy) and the environment variable that overrides each.
_DATA = {
    "routing": ("routing/curves.csv.gz", "SH_SCALING_ROUTING_PATH"),
    "multipowerlaw": ("multipowerlaw", "SH_SCALING_MULTIPOWERLAW_PATH"),
}


def data_path(name: str) -> str | None:
    """A local copy of data set ``name`` (``"routing"``, ``"multipowerlaw"``), or ``None`` (the loaders then
    download it).

    Looked up in the environment variable (``SH_SCALING_ROUTING_PATH``, ``SH_SCALING_MULTIPOWERLAW_PATH``),
    then in ``shared/data/`` next to the checkout and in the current directory's parents.
    """
    if name not in _DATA:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(_DATA)}")
    rel, env = _DATA[name]
    if os.environ.get(env):
        return os.environ[env]
    roots = [Path(__file__).resolve().parents[2], *Path.cwd().resolve().parents, Path.cwd().resolve()]
    for root in roots:
        candidate = root / "shared" / "data" / rel
        if candidate.exists():
            return str(candidate)
    return None


#: The curve sets the replay benchmarks run on, by name (see :func:`benchmark_curves`).
BENCHMARK_CURVES = ("schedule", "ladder", "routing", "synthetic", "cpu-ladder")


def benchmark_curves(name: str, seed: int = 0) -> Any:
    """A benchmark curve set by name: ``"schedule"`` (the 27 runs of Luo et al. under nine schedules),
    ``"ladder"`` (a synthetic schedule ladder, :func:`~sh_scaling.curves.generate_schedule_ladder`, drawn with
    ``seed``), ``"routing"`` (the 223 runs of Clark et al.), ``"synthetic"`` (100 synthetic curves with white
    noise, drawn with ``seed``) or ``"cpu-ladder"`` (the 30 runs recorded on CPU that the package ships,
    :func:`~sh_scaling.curves.load_cpu_ladder`). Real sets are read from :func:`data_path`, else downloaded
    once."""
    from sh_scaling.curves import (
        generate_schedule_ladder,
        generate_synthetic,
        load_cpu_ladder,
        load_multipowerlaw,
        load_routing,
    )

    if name == "schedule":
        return load_multipowerlaw(data_path("multipowerlaw"))
    if name == "ladder":
        return generate_schedule_ladder(seed=seed)
    if name == "routing":
        return load_routing(data_path("routing"))
    if name == "synthetic":
        return generate_synthetic(100, seed=seed, noise="white", name="synthetic")
    if name == "cpu-ladder":
        return load_cpu_ladder()
    raise ValueError(f"unknown curve set {name!r}; choose one of {list(BENCHMARK_CURVES)}")


def local_curve_sets(names: Iterable[str]) -> list[str]:
    """``names`` without ``"routing"`` when no local copy of the routing curves is found (said on stderr)."""
    kept = list(names)
    if "routing" in kept and data_path("routing") is None:
        print("routing curves not found (SH_SCALING_ROUTING_PATH); skipping them", file=sys.stderr)
        kept.remove("routing")
    return kept


def output_dir(name: str, root: str | os.PathLike[str] = "results") -> Path:
    """``results/<name>/``, created."""
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def default_jobs() -> int:
    """Worker processes for a benchmark: every core but none beyond 2 on a shared machine."""
    return min(2, os.cpu_count() or 1)


def parallel_map(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    jobs: int = 1,
    label: str = "tasks",
    chunksize: int = 1,
    progress: bool = True,
) -> list[R]:
    """``[fn(t) for t in tasks]`` over ``jobs`` processes (1: in this process; 0 or less: one per core), with
    progress on stderr when ``progress`` is set: a bar (tqdm, which Optuna already depends on) where stderr is a
    terminal; elsewhere (a log file, where a bar redrawn with carriage returns is one endless line) a line at
    each tenth of the tasks done, with the time so far."""
    from tqdm.auto import tqdm

    if jobs < 1:
        jobs = os.cpu_count() or 1
    tty = sys.stderr.isatty()
    bar = tqdm(total=len(tasks), desc=label, disable=not (progress and tty), file=sys.stderr)
    out: list[R] = []
    t0 = time.perf_counter()
    steps = {math.ceil(len(tasks) * i / 10) for i in range(1, 11)}

    def done(r: R) -> None:
        out.append(r)
        bar.update()
        if progress and not tty and len(out) in steps:
            print(f"{label}: {len(out)} of {len(tasks)} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)

    try:
        if jobs == 1:
            for t in tasks:
                done(fn(t))
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for r in pool.map(fn, tasks, chunksize=chunksize):
                    done(r)
    finally:
        bar.close()
    return out


def write_summary(df: pd.DataFrame, out: Path, name: str = "summary", *, notes: Iterable[str] = ()) -> str:
    """Write ``<name>.csv`` and ``<name>.md`` (a Markdown table when ``tabulate`` is installed) and return the
    table as text, for printing."""
    df.to_csv(out / f"{name}.csv", index=False)
    try:
        table = df.to_markdown(index=False, floatfmt=".4g")
    except ImportError:
        table = df.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    text = table + ("\n\n" + "\n".join(notes) if notes else "") + "\n"
    (out / f"{name}.md").write_text(text)
    return text


