"""Learning-curve surrogates on the routing curves: fit time and extrapolation error.

For every surrogate (power law, stretched exponential, MMF, one GP per curve, the multi-curve GP):

* **fit time per curve**: wall-clock time of ``fit`` + ``predict`` on each routing curve's first half
  (12 points) and on the whole curve (25 points, resampled to 20 for the GPs); median and 90th percentile;
* **multi-curve GP fit time for 20 curves x 20 points**: whole routing curves in groups of 20, for 0, 1
  (default) and 2 optimiser restarts;
* **extrapolation error**: each curve is cut at 25 % and at 50 % of its final compute, the surrogate is fitted
  on the points seen so far and asked for the loss at the final compute; the forecast is clipped to the
  observed minimum, as :func:`sh_scaling.surrogates.forecast` does. Reported: median and 90th percentile of
  ``|forecast - final loss| / final loss``, its median signed value (bias), the share of curves where the
  surrogate beats the naive forecast "the lowest loss seen so far", and the share whose final loss lies
  within +-2 predicted std (calibration of the uncertainty, model-discrepancy term included). The multi-curve
  GP is fitted on groups of 20 curves at a time (consecutive ``hyper_id``), as a pruner would fit it on one
  rung.
* **sharing across curves**: the same, but in each group of 20 a random half of the curves is seen whole and
  the other half is cut at 25 % / 50 %; errors on the cut curves only. This is where the multi-curve GP can
  borrow from the longer curves; the single-curve surrogates see only their own curve.

Compute is ``flops_per_step * step`` (forward FLOPs; a constant factor changes nothing here); step 0 and NaN
losses are dropped. Data: Clark et al., *Unified Scaling Laws for Routed Language Models* (ICML 2022),
CC-BY 4.0.

    python benchmarks/bench_surrogates.py            # all 223 curves
    python benchmarks/bench_surrogates.py --quick    # every 5th curve

Prints a table and writes ``results/bench_surrogates.png`` (and ``results/bench_surrogates.csv``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sh_scaling.benchmarking import data_path as benchmark_data_path
from sh_scaling.surrogates import (
    ExponentialSurrogate,
    GPSurrogate,
    MMFSurrogate,
    MultiCurveGPSurrogate,
    PowerLawSurrogate,
)

SURROGATES = {
    "powerlaw": PowerLawSurrogate,
    "exponential": ExponentialSurrogate,
    "mmf": MMFSurrogate,
    "gp": GPSurrogate,
    "gp-multi": MultiCurveGPSurrogate,
}
FRACTIONS = (0.25, 0.5)
GROUP = 20


def routing_path(arg: str | None) -> Path:
    candidates = [arg, benchmark_data_path("routing")]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise SystemExit("routing curves not found: pass --data PATH or set SH_SCALING_ROUTING_PATH")


def load_curves(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    df = pd.read_csv(path)
    df = df[df["step"] > 0].dropna(subset=["loss_validation"]).sort_values(["hyper_id", "step"])
    df["compute"] = df["flops_per_step"] * df["step"]
    return [(g["compute"].to_numpy(), g["loss_validation"].to_numpy()) for _, g in df.groupby("hyper_id")]


def cut(curve: tuple[np.ndarray, np.ndarray], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    c, y = curve
    keep = c <= fraction * c[-1] * (1 + 1e-9)
    return c[keep], y[keep]


def timed_fit(cls, curve) -> float:
    c, y = curve
    t0 = time.perf_counter()
    cls().fit(c, y).predict(np.array([c[-1] * 2.0]), return_std=True)
    return time.perf_counter() - t0


def fit_times(curves, fraction: float | None) -> dict[str, np.ndarray]:
    out = {}
    for name, cls in SURROGATES.items():
        timed_fit(cls, curves[0])  # warm-up: imports, thread-pool discovery
        out[name] = np.array([timed_fit(cls, cut(cv, fraction) if fraction else cv) for cv in curves])
    return out


def multi_fit_times(curves, restarts: int) -> np.ndarray:
    times = []
    for k in range(0, len(curves) - GROUP + 1, GROUP):
        group = curves[k:k + GROUP]
        t0 = time.perf_counter()
        MultiCurveGPSurrogate(n_restarts_optimizer=restarts).fit_many(group)
        times.append(time.perf_counter() - t0)
    return np.array(times)


def forecasts(name: str, seen, finals) -> tuple[np.ndarray, np.ndarray]:
    """Mean (clipped to the observed minimum) and std of each curve's loss at its final compute."""
    cls = SURROGATES[name]
    preds, stds = np.empty(len(seen)), np.empty(len(seen))
    if name == "gp-multi":
        for k in range(0, len(seen), GROUP):
            model = cls().fit_many(seen[k:k + GROUP])
            means, sds = model.predict_many([np.array([c]) for c in finals[k:k + GROUP]], return_std=True)
            preds[k:k + GROUP] = [m[0] for m in means]
            stds[k:k + GROUP] = [s[0] for s in sds]
    else:
        for i, (obs, c_final) in enumerate(zip(seen, finals)):
            mean, std = cls().fit(*obs).predict(np.array([c_final]), return_std=True)
            preds[i], stds[i] = mean[0], std[0]
    return np.minimum(preds, [y.min() for _, y in seen]), stds


def sharing(curves, seed: int = 0) -> dict[float, dict[str, np.ndarray]]:
    """Relative errors on the cut curves of groups where half the curves are seen whole."""
    rng = np.random.default_rng(seed)
    out = {}
    for frac in FRACTIONS:
        errs: dict[str, list[float]] = {"last value": [], "powerlaw": [], "gp": [], "gp-multi": []}
        groups = [curves[k:k + GROUP] for k in range(0, max(len(curves) - GROUP + 1, 1), GROUP)]
        for group in groups:
            whole = set(rng.choice(len(group), len(group) // 2, replace=False).tolist())
            seen = [cv if j in whole else cut(cv, frac) for j, cv in enumerate(group)]
            multi = MultiCurveGPSurrogate().fit_many(seen).predict_many([cv[0][-1:] for cv in group])
            for j, (c, y) in enumerate(group):
                if j in whole:
                    continue
                best = seen[j][1].min()
                preds = {
                    "last value": best,
                    "powerlaw": PowerLawSurrogate().fit(*seen[j]).predict(c[-1:])[0],
                    "gp": GPSurrogate().fit(*seen[j]).predict(c[-1:])[0],
                    "gp-multi": multi[j][0],
                }
                for name, p in preds.items():
                    errs[name].append(abs(min(p, best) - y[-1]) / y[-1])
        out[frac] = {name: np.array(e) for name, e in errs.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every 5th curve only")
    parser.add_argument("--data", help="path to the routing curves.csv.gz")
    parser.add_argument("--out", default="results", help="folder for the plot and the CSV")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    curves = load_curves(routing_path(args.data))
    if args.quick:
        curves = curves[::5]
    finals = [c[-1] for c, _ in curves]
    truth = np.array([y[-1] for _, y in curves])
    print(f"{len(curves)} routing curves; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")

    # -- fit time ---------------------------------------------------------------------------------------
    t_half = fit_times(curves, 0.5)
    t_full = fit_times(curves, None)
    print("\nFit + predict time per curve (ms): median [90th percentile]")
    print(f"{'surrogate':<13}{'12 points (50 %)':>22}{'25 points (whole)':>22}")
    for name in SURROGATES:
        a, b = 1e3 * t_half[name], 1e3 * t_full[name]
        print(f"{name:<13}{np.median(a):>12.2f} [{np.percentile(a, 90):6.2f}]"
              f"{np.median(b):>12.2f} [{np.percentile(b, 90):6.2f}]")
    multi = {r: 1e3 * multi_fit_times(curves if len(curves) >= GROUP else curves * GROUP, r) for r in (0, 1, 2)}
    print(f"\nMulti-curve GP fit, {GROUP} curves x 20 points (ms): median [max] over {len(multi[1])} groups")
    for r, t in multi.items():
        tag = " (default)" if r == 1 else ""
        print(f"  n_restarts_optimizer={r}{tag:<10} {np.median(t):8.1f} [{t.max():7.1f}]")

    # -- extrapolation ------------------------------------------------------------------------------------
    rows = []
    for frac in FRACTIONS:
        seen = [cut(cv, frac) for cv in curves]
        naive = np.array([y.min() for _, y in seen])
        naive_err = np.abs(naive - truth) / truth
        rows.append(dict(fraction=frac, surrogate="last value", median=np.median(naive_err),
                         p90=np.percentile(naive_err, 90), bias=np.median((naive - truth) / truth), wins=np.nan,
                         coverage=np.nan))
        for name in SURROGATES:
            pred, std = forecasts(name, seen, finals)
            err = np.abs(pred - truth) / truth
            rows.append(dict(fraction=frac, surrogate=name, median=np.median(err), p90=np.percentile(err, 90),
                             bias=np.median((pred - truth) / truth), wins=np.mean(err < naive_err),
                             coverage=np.mean(np.abs(pred - truth) < 2 * std)))
    table = pd.DataFrame(rows)
    print("\nExtrapolation to the final loss: |forecast - final| / final")
    print(f"{'seen':>6} {'surrogate':<13}{'median':>9}{'p90':>9}{'median bias':>13}{'beats last value':>18}"
          f"{'within 2 std':>14}")
    for r in table.itertuples():
        wins = "" if np.isnan(r.wins) else f"{100 * r.wins:.0f} %"
        cover = "" if np.isnan(r.coverage) else f"{100 * r.coverage:.0f} %"
        print(f"{100 * r.fraction:>5.0f}% {r.surrogate:<13}{100 * r.median:>8.2f}%{100 * r.p90:>8.2f}%"
              f"{100 * r.bias:>12.2f}%{wins:>18}{cover:>14}")

    print("\nSharing across curves: half of each group of 20 seen whole; error on the other half (median)")
    shared = sharing(curves)
    print(f"{'seen':>6}" + "".join(f"{name:>13}" for name in shared[FRACTIONS[0]]))
    for frac, errs in shared.items():
        print(f"{100 * frac:>5.0f}%" + "".join(f"{100 * np.median(e):>12.2f}%" for e in errs.values()))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "bench_surrogates.csv", index=False)
    plot(curves, table, t_full, multi, out / "bench_surrogates.png")
    print(f"\nwrote {out / 'bench_surrogates.png'} and {out / 'bench_surrogates.csv'}")


def plot(curves, table, t_full, multi, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    names = ["last value", *SURROGATES]
    width = 0.38
    for j, frac in enumerate(FRACTIONS):
        sub = table[table.fraction == frac].set_index("surrogate").loc[names]
        ax.bar(np.arange(len(names)) + (j - 0.5) * width, 100 * sub["median"], width,
               yerr=[np.zeros(len(names)), 100 * (sub["p90"] - sub["median"])], capsize=3,
               label=f"fitted on first {100 * frac:.0f} % of compute")
    ax.set_xticks(np.arange(len(names)), names, rotation=20)
    ax.set_ylabel("relative error of final loss (%)\nmedian, whisker to 90th percentile")
    ax.set_title("Extrapolation on the routing curves")
    ax.legend(fontsize=8)

    ax = axes[1]
    data = [1e3 * t_full[n] for n in SURROGATES] + [multi[1]]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(np.arange(1, len(data) + 1), [*SURROGATES, f"gp-multi, {GROUP}\ncurves in one fit"], rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("fit + predict time (ms)")
    ax.set_title("Fit time per curve (whole curves)")

    ax = axes[2]
    c, y = curves[len(curves) // 2]
    seen = cut((c, y), 0.25)
    grid = np.geomspace(c[0], c[-1] * 4, 80)
    ax.plot(c, y, "k.", label="recorded")
    ax.plot(*seen, "ko", mfc="none", ms=8, label="seen (first 25 %)")
    for name, cls in SURROGATES.items():
        mean, std = cls().fit(*seen).predict(grid, return_std=True)
        (line,) = ax.plot(grid, mean, label=name)
        if name == "gp":
            ax.fill_between(grid, mean - 2 * std, mean + 2 * std, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("compute (forward FLOPs)")
    ax.set_ylabel("validation loss")
    ax.set_ylim(y.min() * 0.93, y[0] * 1.02)
    ax.set_title("Forecasts of one curve (GP: +-2 std)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
