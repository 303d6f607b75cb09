"""Allocation quality (SPEC §1.2): UA, SH and surrogate-guided SH on synthetic and routing curves.

Runs the paper-style grid (candidate-set sizes 5/10/20, four budgets from 1 % to 30 % of exhaustive compute,
30 random candidate sets each) on the routing curves and on synthetic curves under each noise model, prints
the tables (RI over SH with 95 % intervals, regret, law error), the wall time of each grid, and writes
``results/allocation/<curves>/`` (CSV, JSON, plots) plus ``results/allocation/summary.md``.

    python benchmarks/bench_allocation.py                  # full grid
    python benchmarks/bench_allocation.py --quick          # 5 candidate sets, two budgets
    python benchmarks/bench_allocation.py --only routing   # one curve set
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd

from sh_scaling.benchmarking import data_path, default_jobs, output_dir
from sh_scaling.curves import generate_synthetic, load_routing
from sh_scaling.simulation import plot_ri_by_budget, simulate, summarize

STRATEGIES = ("UA", "SH", "SH+PL", "SH+GP", "SH+GPM", "SH+FA", "SH+oracle")
NOISES = ("none", "white", "brownian", "ou")


REFERENCES = ("SH", "UA", "SH+oracle")


def _verdict(summary: pd.DataFrame) -> pd.DataFrame:
    """The best surrogate strategy per setting (the oracle is a bound, not a strategy)."""
    sur = summary[~summary.strategy.isin(REFERENCES)]
    best = sur.loc[sur.groupby(["n_candidates", "budget_frac"]).ri_mean.idxmax()]
    return best[["n_candidates", "budget_frac", "strategy", "ri_mean", "ri_lo", "ri_hi"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["routing", "synthetic"], default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=default_jobs())
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 30)
    budgets = (0.03, 0.3) if args.quick else (0.01, 0.03, 0.1, 0.3)
    out = output_dir("allocation", args.out)
    warnings.simplefilter("ignore")

    sets = []
    if args.only in (None, "routing"):
        sets.append(("routing", lambda: load_routing(data_path("routing"))))
    if args.only in (None, "synthetic"):
        for noise in NOISES:
            sets.append((f"synthetic-{noise}", lambda noise=noise: generate_synthetic(100, seed=0, noise=noise,
                                                                                      name=f"synthetic-{noise}")))
    md = ["| curves | candidates | budget | best surrogate strategy | RI over SH (95 % CI) | oracle bound | UA RI |",
          "|---|---|---|---|---|---|---|"]
    for label, make in sets:
        curves = make()
        t0 = time.perf_counter()
        df = simulate(curves, candidates=(5, 10, 20), budgets=budgets, strategies=STRATEGIES, repeats=repeats,
                      seed=0, n_jobs=args.jobs, progress=True)
        secs = time.perf_counter() - t0
        s = summarize(df)
        d = out / label
        d.mkdir(exist_ok=True)
        df.to_csv(d / "runs.csv", index=False)
        s.to_csv(d / "summary.csv", index=False)
        plot_ri_by_budget(s, d / "ri_by_budget.png", title=label)
        piv = s.pivot_table(index=["n_candidates", "budget_frac"], columns="strategy", values="ri_mean") * 100
        print(f"\n== {label}: {len(curves)} curves, {repeats} candidate sets per size, {secs:.1f}s "
              f"({args.jobs} processes) ==")
        print("RI over SH (%, mean):")
        print(piv.round(2).to_string())
        print("Law error (median mean |ln gap| x100):")
        print((s.pivot_table(index=["n_candidates", "budget_frac"], columns="strategy", values="law_area") * 100)
              .round(2).to_string())
        v = _verdict(s)
        ua = s[s.strategy == "UA"].set_index(["n_candidates", "budget_frac"]).ri_mean
        oracle = s[s.strategy == "SH+oracle"].set_index(["n_candidates", "budget_frac"]).ri_mean
        for _, r in v.iterrows():
            key = (r.n_candidates, r.budget_frac)
            md.append(f"| {label} | {r.n_candidates} | {100 * r.budget_frac:g}% | {r.strategy} | "
                      f"{100 * r.ri_mean:+.2f}% [{100 * r.ri_lo:+.2f}, {100 * r.ri_hi:+.2f}] | "
                      f"{100 * oracle.get(key, np.nan):+.2f}% | {100 * ua.get(key, np.nan):+.2f}% |")
        best = v.loc[v.ri_mean.idxmax()]
        print(f"best setting: {best.strategy} at {best.n_candidates} candidates, {100 * best.budget_frac:g}% "
              f"budget: RI {100 * best.ri_mean:+.2f}% [{100 * best.ri_lo:+.2f}, {100 * best.ri_hi:+.2f}]")
        methods = s[~s.strategy.isin(REFERENCES)]
        low = methods.loc[methods.ri_hi.idxmin()]
        print(f"lowest upper 95% bound of a surrogate strategy's RI: {100 * low.ri_hi:+.2f}% ({low.strategy}, "
              f"{low.n_candidates} candidates, {100 * low.budget_frac:g}%); settings with RI significantly below 0: "
              f"{int((methods.ri_hi < 0).sum())} of {len(methods)}")
        fa, sh = s[s.strategy == "SH+FA"], s[s.strategy == "SH"]
        if len(fa):
            print(f"frontier-aware vs SH, law error (median mean |ln gap|, averaged over settings): "
                  f"{100 * fa.law_area.mean():.2f} vs {100 * sh.law_area.mean():.2f}; exponent error "
                  f"{100 * fa.exponent_error.mean():.1f}% vs {100 * sh.exponent_error.mean():.1f}%")
        print(f"wall time of this grid: {secs:.1f}s")
    (out / "summary.md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {out}/summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
