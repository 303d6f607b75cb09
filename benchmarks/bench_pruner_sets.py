"""The pruner at its defaults on every development set, one trial at a time and many at once.

For each set, each pruner setting and each number of workers K, :func:`sh_scaling.simulation.replay_study`
replays the set's curves as the trials of a real study (seeded arrival orders; K trials running at once, each
report arriving at a time proportional to its compute) and :func:`sh_scaling.simulation.clairvoyant_bound`
gives the least compute any zero-regret pruner that knows only the trials started so far could spend. Printed
per set and K: mean compute (fraction of exhaustive), its ratio to the bound, mean best-loss regret, the share of
orders with zero regret, the law error and the makespan (fraction of the exhaustive sweep's wall-clock time on
the same K workers).

Trials are told what a user would tell the pruner: on sets whose curves carry a learning-rate schedule and a
planned compute (``multipowerlaw``, ``ladder``, ``cpu-ladder``) each trial's schedule is stated and its
``max_compute`` is its planned compute; on the others (``routing``, ``synthetic``) the pruner forecasts with the
power law, ``max_compute`` being each curve's final compute.

    nice python benchmarks/bench_pruner_sets.py --sets multipowerlaw ladder --seeds 20 --workers 1 8 \\
        --setting default --setting "no-margin:margin=None" --out results/pruner_sets

Settings are ``label:key=value,key=value`` (values are Python literals) added to the pruner's defaults; with
``--loso-errors``, ``margin_<key>=value`` adds ``<key>`` to the leave-one-set-out ``margin`` mapping (for
example ``proven:margin_proven=True``).
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sh_scaling.benchmarking import benchmark_curves
from sh_scaling.curves import CurveSet
from sh_scaling.simulation import PrunerSpec, clairvoyant_bound, replay_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
SCHEDULED = {"multipowerlaw", "ladder", "cpu-ladder"}
#: This script's set names, as :func:`sh_scaling.benchmarking.benchmark_curves` calls them.
_BENCHMARK_NAMES = {"multipowerlaw": "schedule"}


def load_set(name: str) -> CurveSet:
    """A development set by this script's name (``multipowerlaw`` is the benchmarks' ``schedule`` set)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return benchmark_curves(_BENCHMARK_NAMES.get(name, name), seed=0)


def loso_margin(path: Path, left_out: str, coverage: float) -> dict[str, object]:
    """The stage error model chosen without ``left_out``: each kind's margin table and median-error table the
    largest over the other sets (the shipped tables where no other set has that kind)."""
    from bench_stage_error import loso_tables

    from sh_scaling.halving import STAGE_MARGINS

    errors = pd.read_csv(path)
    errors = errors[~errors["fallback"].astype(bool)]
    from bench_stage_error import loso_bias

    from sh_scaling.halving import STAGE_BIAS

    margin: dict[str, object] = {"coverage": coverage}
    for kind in ("own", "multipower"):
        table = loso_tables(errors, left_out, kind, coverage)
        margin[kind] = table if table is not None else STAGE_MARGINS[coverage][kind]
        bias = loso_bias(errors, left_out, kind)
        margin[f"{kind}_bias"] = bias if bias is not None else STAGE_BIAS[kind]
    return margin


def parse_setting(text: str) -> tuple[str, dict[str, object]]:
    if text == "default":
        return "default", {}
    label, _, rest = text.partition(":")
    kwargs: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        kwargs[key.strip()] = ast.literal_eval(value.strip())
    return label, kwargs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["multipowerlaw", "ladder", "routing", "synthetic"])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--setting", action="append", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--loso-errors", type=Path, default=None,
                    help="errors.csv of bench_stage_error.py: each set's stage margin table is chosen on the others")
    ap.add_argument("--coverage", type=float, default=0.9, help="the margin's coverage with --loso-errors")
    ap.add_argument("--no-bias", action="store_true",
                    help="with --loso-errors: competitors' forecasts read as they are (median-error tables of 0)")
    ap.add_argument("--out", type=Path, default=Path("results/pruner_sets"))
    args = ap.parse_args(argv)
    settings = [parse_setting(s) for s in (args.setting or ["default"])]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    for name in args.sets:
        curves = load_set(name)
        for k in args.workers:
            bound = clairvoyant_bound(curves, seeds=seeds, min_points=3, min_fraction=0.05, n_workers=k)
            b = float(bound["compute_frac"].mean())
            for label, extra in settings:
                kwargs = dict(extra)
                margin_keys = {key[len("margin_"):]: kwargs.pop(key) for key in list(kwargs) if key.startswith("margin_")}
                if args.loso_errors is not None and "margin" not in kwargs:
                    kwargs["margin"] = {**loso_margin(args.loso_errors, name, args.coverage), **margin_keys}
                    if args.no_bias:
                        kwargs["margin"].update(own_bias=(0.0,) * 5, multipower_bias=(0.0,) * 5)
                if name in SCHEDULED:
                    kwargs.setdefault("schedule", "from_curves")
                t0 = time.time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    df = replay_study(curves, PrunerSpec("ours", kwargs), seeds=seeds, n_workers=k, n_jobs=args.jobs)
                df.to_csv(args.out / f"{name}_{label}_K{k}.csv", index=False)
                regret = df["regret"].to_numpy(dtype=float)
                row = {
                    "set": name, "setting": label, "K": k,
                    "compute": float(df["compute_frac"].mean()),
                    "bound": b,
                    "x_bound": float(df["compute_frac"].mean()) / b if b > 0 else np.nan,
                    "regret_%": 100 * float(np.mean(regret)),
                    "zero_regret": float(np.mean(regret <= 1e-12)),
                    "law_error": float(df["law_error"].mean()),
                    "makespan": float(df["makespan_frac"].mean()),
                    "seconds": round(time.time() - t0, 1),
                }
                rows.append(row)
                print(" ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                               for key, value in row.items()), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
