"""How wrong the pruner's forecasts are at each stage of a run, on every development set, and the margin that
covers them, chosen leave-one-set-out.

For each set and forecast kind (``own``: the power law on the curve's own points, as the pruner forecasts a
trial without a schedule; ``multipower``: the multi-power law under the curve's stated schedule, on the sets
whose curves carry one), :func:`sh_scaling.pruning.stage_forecast_errors` cuts every curve at 5, 10, 20, 40 and
80 % of its planned compute, forecasts its end with the pruner's own code and compares with the outcome.

Printed: the median error and the 90 % margin by stage on each set; then, leaving each set out in turn, the
table chosen on the others (the largest margin over them, as the shipped :data:`sh_scaling.halving.STAGE_MARGINS`
is the largest over all; the CPU ladder is checked against but does not choose, see :data:`NOT_FOR_TABLES`) and
its coverage on the left-out set (the share of its forecasts whose outcome stayed
above ``forecast * exp(-margin)``; the target is the coverage asked for). Saves ``errors.csv``, ``loso.csv`` and
``stage_error.png`` under ``--out``.

    nice python benchmarks/bench_stage_error.py --out results/stage_error
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pruner_sets import load_set  # noqa: E402

from sh_scaling.halving import STAGE_NODES  # noqa: E402
from sh_scaling.pruning import stage_forecast_errors, stage_margin_table  # noqa: E402

KINDS = {"routing": ("own",), "synthetic": ("own",), "multipowerlaw": ("own", "multipower"),
         "ladder": ("own", "multipower"), "cpu-ladder": ("own", "multipower")}


#: Sets whose errors are reported and checked against, but not used to choose tables: the CPU ladder's byte-level
#: models sit on a plateau and then drop (a transition no surrogate forecasts), so every forecast made before the
#: drop misses by 15-35 %; a table that covered them would stop the pruner from pruning anything early.
NOT_FOR_TABLES = ("cpu-ladder",)


def loso_tables(errors: pd.DataFrame, left_out: str, kind: str, coverage: float) -> tuple[float, ...] | None:
    """The margin table chosen without ``left_out``: the largest over the other sets (those of
    :data:`NOT_FOR_TABLES` left out too), never growing with stage."""
    chosen = errors[(errors.kind == kind) & (errors.set != left_out) & ~errors.set.isin(NOT_FOR_TABLES)]
    tables = [stage_margin_table(g, coverage) for s, g in chosen.groupby("set")]
    if not tables:
        return None
    # Each set's table already never grows with the stage, and neither does their largest.
    return tuple(float(v) for v in np.max(np.vstack(tables), axis=0))


def loso_bias(errors: pd.DataFrame, left_out: str, kind: str) -> tuple[float, ...] | None:
    """The median-error table chosen without ``left_out``: at each stage the largest median over the other sets
    (the smallest correction of pessimistic forecasts), as the shipped :data:`sh_scaling.halving.STAGE_BIAS`."""
    others = errors[(errors.kind == kind) & (errors.set != left_out) & ~errors.set.isin(NOT_FOR_TABLES)]
    if others.empty:
        return None
    per_set = []
    for _, g in others.groupby("set"):
        med = g.groupby("stage")["log_error"].median()
        per_set.append([float(med.get(node, np.nan)) for node in STAGE_NODES])
    table = np.nanmax(np.array(per_set), axis=0)
    return tuple(float(v) if np.isfinite(v) else 0.0 for v in table)


def coverage_of(errors: pd.DataFrame, table: tuple[float, ...]) -> pd.Series:
    """Per stage, the share of forecasts whose outcome stayed above ``forecast * exp(-margin)``."""
    margin = np.interp(np.log(errors["stage"].to_numpy(dtype=float)), np.log(STAGE_NODES), table)
    ok = errors["log_error"].to_numpy(dtype=float) >= -margin
    return pd.Series(ok, index=errors.index).groupby(errors["stage"]).mean()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["routing", "multipowerlaw", "synthetic", "ladder", "cpu-ladder"])
    ap.add_argument("--coverage", type=float, default=0.9)
    ap.add_argument("--errors", type=Path, default=None, help="reuse an errors.csv written earlier")
    ap.add_argument("--out", type=Path, default=Path("results/stage_error"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.errors is not None:
        errors = pd.read_csv(args.errors)
        errors = errors[errors.set.isin(args.sets)]
    else:
        frames = []
        for name in args.sets:
            curves = load_set(name)
            for kind in KINDS[name]:
                t0 = time.time()
                df = stage_forecast_errors(curves, kind=kind)
                df["set"], df["kind"] = name, kind
                frames.append(df)
                print(f"{name} {kind}: {len(df)} forecasts in {time.time() - t0:.0f} s", flush=True)
        errors = pd.concat(frames, ignore_index=True)
        errors.to_csv(args.out / "errors.csv", index=False)
    errors = errors[~errors["fallback"].astype(bool)]
    print(f"\nBy stage (5/10/20/40/80 % of the run): median log error (negative: the forecast was too pessimistic)"
          f" and the {100 * args.coverage:g} % margin, in % of the loss")
    for (name, kind), g in errors.groupby(["set", "kind"]):
        med = g.groupby("stage")["log_error"].median()
        table = stage_margin_table(g, args.coverage)
        print(f"  {name:14s} {kind:10s} n={len(g):4d}  median " + " ".join(f"{100 * v:6.2f}" for v in med.values)
              + "  margin " + " ".join(f"{100 * v:5.2f}" for v in table))
    rows = []
    print(f"\nLeave one set out: the table chosen on the other sets, and its coverage on the left-out one "
          f"(target {100 * args.coverage:g} %)")
    for name in errors.set.unique():
        for kind in KINDS[name]:
            table = loso_tables(errors, name, kind, args.coverage)
            held = errors[(errors.set == name) & (errors.kind == kind)]
            if table is None or held.empty:
                continue
            cov = coverage_of(held, table)
            overall = float((held["log_error"].to_numpy() >= -np.interp(
                np.log(held["stage"].to_numpy(dtype=float)), np.log(STAGE_NODES), table)).mean())
            rows.append({"left_out": name, "kind": kind, "table": table, "coverage": overall,
                         **{f"cov_{s:g}": float(v) for s, v in cov.items()}})
            print(f"  {name:14s} {kind:10s} table " + " ".join(f"{100 * v:5.2f}" for v in table)
                  + f"  covers {100 * overall:5.1f} % (by stage " + " ".join(f"{100 * v:.0f}" for v in cov.values)
                  + ")")
    pd.DataFrame(rows).to_csv(args.out / "loso.csv", index=False)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, kind in zip(axes, ("own", "multipower")):
        for name, g in errors[errors.kind == kind].groupby("set"):
            q = g.groupby("stage")["log_error"].quantile([0.1, 0.5, 0.9]).unstack()
            line = ax.plot(q.index, 100 * q[0.5], marker="o", label=name)[0]
            ax.fill_between(q.index, 100 * q[0.1], 100 * q[0.9], color=line.get_color(), alpha=0.15)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(STAGE_NODES, [f"{100 * n:g} %" for n in STAGE_NODES])
        ax.minorticks_off()
        ax.set_xlabel("stage of the run at the forecast (share of its planned compute)")
        ax.set_ylabel("log(outcome / forecast), % (median, 10-90 %)")
        ax.set_title("power law (own curve)" if kind == "own" else "multi-power law (stated schedule)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "stage_error.png", dpi=120)
    print(f"\nwrote {args.out}/errors.csv, loso.csv, stage_error.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
