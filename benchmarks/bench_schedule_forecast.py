"""Forecasts that know the learning-rate schedule, on the 27 runs of Luo et al. (2025).

Each of the 27 runs (25M, 100M and 400M parameters; constant, cosine, WSD and two-stage schedules) is cut at
5 %, 10 %, 25 % and 50 % of its *planned* compute; every surrogate is fitted on the points seen so far and asked
for the loss at the run's last evaluation, which is compared with the recorded final loss. Surrogates:

* ``powerlaw``: ``sh_scaling.surrogates.forecast("powerlaw", ...)``, the power law in compute (no schedule);
* ``mpl``: :class:`MultiPowerLawSurrogate` on the run alone, knowing its schedule, default priors (from the
  constants Luo et al. fitted on these very runs: an in-sample prior);
* ``mpl-loso``: the same with priors from the other two model sizes only (leave one size out): what a prior
  from *other* models gives;
* ``tissue``: the annealing law of Tissue et al. (2024) on the run alone (five constants), default priors;
* ``joint``: :class:`JointMultiPowerLawSurrogate` on the run's family (the 9 runs of its size), every run cut at
  the same fraction of its own planned compute, as in a sweep where all runs progress together (one fit per
  size and fraction serves its 9 runs);
* ``joint-loo``: the same, but the other 8 runs of the family complete (leave one out): the best case, when
  shorter runs have finished. Beware: several runs share their first steps (``constant_24000``, ``wsd``,
  ``wsdld`` and ``wsdcon_*`` branch off one run), so their finished curves tell a lot about each other.

Single-run forecasts go through :func:`sh_scaling.surrogates.forecast` (a run with fewer than 3 points falls
back to its observed minimum and is left out here; a forecast is never above the observed minimum); joint
forecasts are clipped to the observed minimum the same way, and a run with no points yet is forecast from
its family. At 5 % and 10 % only the six 72k-step runs have 3 points (the others are in warm-up or have 2),
so the single-run rows there cover 6 runs; the joint fits forecast all 27.

Reported per surrogate and cut: the number of forecasts, the median and 90th percentile of ``|forecast -
final| / final``, the median signed error (negative = too optimistic), the coverage of the central 80 %
interval (``|error| <= 1.2816 std``), and the largest optimism ``(final - forecast) / final``. Then the goals of
the issue, checked: median error <= 1 % from 25 % of a cosine or WSD run; 80 % intervals covering 70-90 %;
no forecast at 5 % of a run more than 10 % too optimistic.

    nice -n 10 python benchmarks/bench_schedule_forecast.py                 # 1-2 minutes on 2 busy cores
    nice -n 10 python benchmarks/bench_schedule_forecast.py --data PATH     # a local copy of the curves

Writes ``results/schedule_forecast/forecasts.csv`` (one row per run, cut and surrogate),
``results/schedule_forecast/summary.csv`` and ``results/schedule_forecast/schedule_forecast.png``.
Data: Luo et al., *A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules* (ICLR 2025),
MIT license, downloaded and cached by :func:`sh_scaling.curves.load_multipowerlaw` unless ``--data`` is given.
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
from sh_scaling.curves import load_multipowerlaw
from sh_scaling.schedules import LUO_2025
from sh_scaling.surrogates import (
    JointMultiPowerLawSurrogate,
    MultiPowerLawSurrogate,
    PowerLawSurrogate,
    forecast,
    priors_from_fits,
)

FRACTIONS = (0.05, 0.10, 0.25, 0.50)
SURROGATES = ("powerlaw", "mpl", "mpl-loso", "tissue", "joint", "joint-loo")
#: z of the central 80 % interval of a Gaussian.
Z80 = 1.2816


def data_path(arg: str | None) -> Path | None:
    """``--data``, ``$SH_SCALING_MULTIPOWERLAW_PATH``, the shared copy beside the repository, else the cache."""
    for candidate in (arg, benchmark_data_path("multipowerlaw")):
        if candidate and (Path(candidate) / "loss_curve_repo").is_dir():
            return Path(candidate)
    if arg:
        raise SystemExit(f"--data {arg}: no loss_curve_repo folder there")
    return None


def cut(curve, fraction: float):
    return curve.observed_until(fraction * curve.meta["max_compute"])


def single_run_forecasts(curves, fraction: float) -> list[dict]:
    """Power law, multi-power law (two priors) and Tissue et al.'s law, each run on its own."""
    rows = []
    for c in curves:
        seen = cut(c, fraction)
        obs = [(seen.compute, seen.loss)]
        target = [c.final_compute]
        schedule, max_compute = c.meta["schedule"], c.meta["max_compute"]
        loso = priors_from_fits([p for size, p in LUO_2025.items() if size != c.meta["size"]])
        models = {
            "powerlaw": "powerlaw",
            "mpl": MultiPowerLawSurrogate(schedule=schedule, max_compute=max_compute),
            "mpl-loso": MultiPowerLawSurrogate(schedule=schedule, max_compute=max_compute, priors=loso),
            "tissue": MultiPowerLawSurrogate(schedule=schedule, max_compute=max_compute, law="tissue"),
        }
        for name, model in models.items():
            start = time.perf_counter()
            out = forecast(model, obs, target)
            seconds = time.perf_counter() - start
            if out.fallback[0]:
                continue
            rows.append(_row(c, fraction, name, len(seen), out.mean[0], out.std[0], seconds))
    return rows


def joint_forecasts(curves, fraction: float) -> list[dict]:
    """The family of each size fitted jointly: all runs cut (one fit per size), or the others complete."""
    rows = []
    for size in LUO_2025:
        family = [c for c in curves if c.meta["size"] == size]
        schedules = [c.meta["schedule"] for c in family]
        maxes = [c.meta["max_compute"] for c in family]
        seen = [cut(c, fraction) for c in family]
        start = time.perf_counter()
        model = JointMultiPowerLawSurrogate().fit_many([(s.compute, s.loss) for s in seen], schedules, maxes)
        means, stds = model.predict_many([np.array([c.final_compute]) for c in family], return_std=True)
        seconds = time.perf_counter() - start
        for c, s, m, sd in zip(family, seen, means, stds):
            rows.append(_row(c, fraction, "joint", len(s), _clip(m[0], s), sd[0], seconds / len(family)))
        for k, c in enumerate(family):
            others = [seen[k] if i == k else d for i, d in enumerate(family)]
            start = time.perf_counter()
            model = JointMultiPowerLawSurrogate().fit_many([(o.compute, o.loss) for o in others], schedules, maxes)
            means, stds = model.predict_many([np.array([d.final_compute]) for d in family], return_std=True)
            seconds = time.perf_counter() - start
            rows.append(_row(c, fraction, "joint-loo", len(seen[k]), _clip(means[k][0], seen[k]), stds[k][0],
                             seconds))
    return rows


def _clip(mean: float, seen) -> float:
    """As :func:`sh_scaling.surrogates.forecast` does: a curve keeps the best loss it has reached."""
    return min(mean, float(seen.loss.min())) if len(seen) else mean


def _row(curve, fraction: float, name: str, n_seen: int, mean: float, std: float, seconds: float) -> dict:
    final = curve.final_loss
    return {
        "run": curve.id,
        "size": curve.meta["size"],
        "schedule": curve.meta["schedule_kind"],
        "fraction": fraction,
        "surrogate": name,
        "points_seen": n_seen,
        "forecast": mean,
        "std": std,
        "final": final,
        "error": (mean - final) / final,
        "covered80": bool(abs(mean - final) <= Z80 * std),
        "seconds": seconds,
    }


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["surrogate", "fraction"], sort=False)
    out = g.agg(
        n=("error", "size"),
        median_abs_error_pct=("error", lambda e: 100 * np.median(np.abs(e))),
        p90_abs_error_pct=("error", lambda e: 100 * np.percentile(np.abs(e), 90)),
        median_error_pct=("error", lambda e: 100 * np.median(e)),
        coverage80=("covered80", "mean"),
        max_optimism_pct=("error", lambda e: 100 * max(0.0, -float(np.min(e)))),
        median_seconds=("seconds", "median"),
    )
    return out.reset_index()


def check_goals(df: pd.DataFrame) -> list[str]:
    lines = []
    annealed = df[df["schedule"].isin(["cosine", "wsd"]) & (df["fraction"] == 0.25)]
    for name in ("mpl", "mpl-loso", "joint"):
        sel = annealed[annealed["surrogate"] == name]
        med = 100 * float(np.median(np.abs(sel["error"])))
        lines.append(f"median |error| <= 1 % from 25 % of a cosine or WSD run ({name}, n={len(sel)}): "
                     f"{med:.2f} % -> {'met' if med <= 1.0 else 'NOT met'}")
    for name in ("mpl", "mpl-loso", "tissue", "joint", "joint-loo", "powerlaw"):
        sel = df[df["surrogate"] == name]
        cov = 100 * float(sel["covered80"].mean())
        lines.append(f"80 % intervals cover 70-90 % ({name}, all cuts, n={len(sel)}): {cov:.0f} % -> "
                     f"{'met' if 70 <= cov <= 90 else 'NOT met'}")
    early = df[df["fraction"] == 0.05]
    for name in SURROGATES:
        sel = early[early["surrogate"] == name]
        if len(sel) == 0:
            continue
        worst = 100 * max(0.0, -float(sel["error"].min()))
        lines.append(f"no forecast at 5 % more than 10 % too optimistic ({name}, n={len(sel)}): worst "
                     f"{worst:.1f} % -> {'met' if worst <= 10 else 'NOT met'}")
    return lines


def plot(df: pd.DataFrame, curves, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    summary = summarise(df)
    for name in SURROGATES:
        s = summary[summary["surrogate"] == name]
        axes[0].plot(100 * s["fraction"], s["median_abs_error_pct"], marker="o", label=name)
        axes[1].plot(100 * s["fraction"], 100 * s["coverage80"], marker="o", label=name)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("share of the planned compute seen (%)")
    axes[0].set_ylabel("median |error| of the final loss (%)")
    axes[0].axhline(1.0, color="grey", lw=0.8, ls=":")
    axes[0].legend(fontsize=8)
    axes[1].axhspan(70, 90, color="grey", alpha=0.15)
    axes[1].set_xlabel("share of the planned compute seen (%)")
    axes[1].set_ylabel("coverage of 80 % intervals (%)")
    axes[1].set_ylim(0, 102)

    c = curves.get("100M/cosine_72000")
    seen = cut(c, 0.25)
    ax = axes[2]
    ax.plot(c.meta["steps"], c.loss, color="black", lw=1, label="recorded")
    ax.axvline(seen.meta["steps"][len(seen) - 1], color="grey", lw=0.8, ls=":")
    grid = np.linspace(seen.compute[-1], c.final_compute, 60)
    steps = grid / c.meta["n_params"]
    pl = PowerLawSurrogate().fit(seen.compute, seen.loss)
    ax.plot(steps, pl.predict(grid), label="power law from 25 %")
    mpl = MultiPowerLawSurrogate(schedule=c.meta["schedule"], max_compute=c.meta["max_compute"])
    mean, std = mpl.fit(seen.compute, seen.loss).predict(grid, return_std=True)
    ax.plot(steps, mean, label="multi-power law from 25 %")
    ax.fill_between(steps, mean - Z80 * std, mean + Z80 * std, alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("100M, cosine over 72k steps", fontsize=10)
    ax.set_ylim(c.final_loss * 0.97, c.loss[0] * 0.9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="folder holding loss_curve_repo (default: shared copy or cache)")
    parser.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS))
    parser.add_argument("--out", default="results/schedule_forecast", help="folder for the CSVs and the plot")
    args = parser.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]

    where = data_path(args.data)
    curves = load_multipowerlaw(where)
    print(f"{len(curves)} runs from {where or 'the cache'}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; fractions {fractions}")
    start = time.perf_counter()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in fractions:
            rows += single_run_forecasts(curves, f)
            rows += joint_forecasts(curves, f)
    df = pd.DataFrame(rows)
    summary = summarise(df)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "forecasts.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.round({"median_abs_error_pct": 2, "p90_abs_error_pct": 2, "median_error_pct": 2,
                             "coverage80": 2, "max_optimism_pct": 1, "median_seconds": 3}).to_string(index=False))
        by_kind = df[df["fraction"] == 0.25].groupby(["schedule", "surrogate"])["error"].agg(
            lambda e: 100 * np.median(np.abs(e))).unstack().round(2)
        print("\nmedian |error| (%) from 25 % of each run, by schedule:")
        print(by_kind[[s for s in SURROGATES if s in by_kind.columns]].to_string())
    print("\ngoals:")
    for line in check_goals(df):
        print("  " + line)
    plot(df, curves, out / "schedule_forecast.png")
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {out}/forecasts.csv, summary.csv, schedule_forecast.png")


if __name__ == "__main__":
    main()
