"""Does knowing the learning-rate schedule let the pruner spend less? Replays under ours and Optuna's pruners.

Curve sets (each curve one trial of a real Optuna study, :func:`sh_scaling.simulation.replay_study`):

* ``schedule``: the 27 runs of Luo et al. (ICLR 2025; 25M/100M/400M parameters under nine learning-rate
  schedules: constant, cosine and WSD to 24k or 72k steps, two-stage), compute = N x steps;
* ``ladder``: a synthetic ladder from :func:`sh_scaling.curves.generate_schedule_ladder` (3 sizes x 6 runs,
  lengths 8k-72k steps, cosine / WSD / constant, multi-power-law truth with Luo et al.'s constants; the ladder's
  seed is the study's);
* ``routing``: the 223 runs of Clark et al. (ICML 2022), which carry no schedule: ours there is the power law.

Pruners, as trade-off curves:

* ours, ``powerlaw``: today's pruner (power law in compute, each curve's final compute as ``max_compute``), at
  its defaults and a small sweep (reduction factor 2 / 6, optimism 0.2 / the mean, the best-loss objective);
* ours, ``schedule``: each trial's schedule and planned compute from its curve's metadata
  (``PrunerSpec("ours", {"schedule": "from_curves"})``): the multi-power law forecasts each run under its own
  schedule; the same sweep, and with ``family`` (runs of one size fitted jointly);
* Optuna's ``SuccessiveHalvingPruner`` (min_resource and reduction_factor), ``HyperbandPruner``,
  ``MedianPruner`` / ``PercentilePruner`` (percentile and warm-up), ``PatientPruner``; ``nop`` (exhaustive).

Metrics per study: compute spent / exhaustive, best-loss regret ((best observed - exhaustive best) / exhaustive
best) and law error (mean |Δ ln L| between the law fitted on the observed frontier and on every full curve).
The issue's goal on the schedule curves: compute <= 0.35 with regret <= 0.5 % (the power-law pruner: 0.70).

Measured at commit ce333e3 (20 seeds; mean compute / regret / law error; ``--sets schedule``, then
``--sets routing,ladder``; HyperbandPruner's numbers move by about 0.002 between identical runs):

================================  ======================  ======================  =======================
pruner                            schedule curves (27)    ladder (18, synthetic)  routing (223)
================================  ======================  ======================  =======================
ours, power law (defaults)        0.686 / 0 % / 0.0026    0.486 / 1.7 % / 0.0045  0.255 / 0 % / 0.0001
ours, schedule-aware (defaults)   0.532 / 0 % / 0.0041    0.648 / 0.15 % / 0.0018 (no schedules)
ours, schedule-aware, mean        0.506 / 0 % / 0.0044    0.592 / 0.33 % / 0.0024 (no schedules)
ours, schedule-aware, best_loss   0.529 / 0 % / 0.0087    0.510 / 0.20 % / 0.014  (no schedules)
ours, schedule-aware, family      0.589 / 0 % / 0.0030    0.746 / 0 % / 0.0007    (no schedules)
Optuna SHA (defaults)             0.233 / 5.7 % / 0.024   0.208 / 6.3 % / 0.022   0.098 / 4.0 % / 0.016
Optuna SHA (reduction_factor=2)   0.405 / 2.5 % / 0.021   0.183 / 7.6 % / 0.023   0.111 / 4.2 % / 0.011
Optuna PercentilePruner(25)       0.284 / 5.0 % / 0.0074  0.308 / 4.5 % / 0.0091  0.124 / 3.3 % / 0.0043
Optuna HyperbandPruner            0.541 / 2.4 % / 0.0051  0.312 / 4.1 % / 0.011   0.159 / 1.7 % / 0.0065
================================  ======================  ======================  =======================

Knowing the schedule saves compute on the real schedule curves (0.69 -> 0.53) at no regret, but misses the
goal of 0.35. Of the 0.55 spent in 4 seeds (0-3) of the defaults (decision records): 0.19 is the best run
(400M, cosine to 72k steps), which must finish; 0.10 on average the 400M constant-rate run of 72k steps,
which finishes whenever it reaches the late rungs before the cosine run (the first arrivals at a rung are
promoted); 0.05 a 400M WSD run; 0.03 a 100M cosine run of 72k steps, pruned late (in seed 0 at 99.6 % of
its run). On the synthetic ladder it removes most of the power law's regret (1.7 % -> 0.15 %) for more
compute (0.49 -> 0.65). Family fits lower the law error and spend more.

    nice -n 10 python benchmarks/bench_schedule_replay.py --seeds 20 --sets schedule --jobs 2   # about 5 min
    nice -n 10 python benchmarks/bench_schedule_replay.py                     # 20 seeds, all three sets

Writes ``results/schedule_replay/runs.csv``, ``summary.csv``, ``summary.md`` and ``compute_vs_regret.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from sh_scaling.benchmarking import data_path, default_jobs, output_dir, parallel_map, write_summary
from sh_scaling.curves import CurveSet, generate_schedule_ladder, load_multipowerlaw, load_routing
from sh_scaling.simulation import FROM_CURVES, PrunerSpec, clairvoyant_bound, replay_study, summarize_replay

OPTUNA_PRUNERS = [
    PrunerSpec("nop"),
    PrunerSpec("sha"),
    PrunerSpec("sha", {"min_resource": 4}),
    PrunerSpec("sha", {"reduction_factor": 2}),
    PrunerSpec("sha", {"min_resource": 4, "reduction_factor": 2}),
    PrunerSpec("hyperband"),
    PrunerSpec("median"),
    PrunerSpec("median", {"n_warmup_steps": 20}),
    PrunerSpec("percentile", {"percentile": 25.0}),
    PrunerSpec("percentile", {"percentile": 75.0, "n_warmup_steps": 20}),
    PrunerSpec("patient"),
]

#: The sweep of our settings (reduction factor, optimism) run for each forecast kind.
OURS_SWEEP: list[dict[str, object]] = [
    {},
    {"reduction_factor": 2},
    {"reduction_factor": 6},
    {"optimism": 0.2},
    {"optimism": "mean"},
    {"objective": "best_loss"},
    {"calibrate": True},
]


def our_specs(set_name: str) -> list[PrunerSpec]:
    specs = [PrunerSpec("ours", dict(kw)) for kw in OURS_SWEEP]
    if set_name == "routing":
        return specs  # no schedules there: the schedule-aware pruner is the power law
    specs += [PrunerSpec("ours", {"schedule": FROM_CURVES, **kw}) for kw in OURS_SWEEP]
    specs.append(PrunerSpec("ours", {"schedule": FROM_CURVES, "family": FROM_CURVES}))
    return specs


def curve_set(name: str, seed: int) -> CurveSet:
    if name == "schedule":
        return load_multipowerlaw(data_path("multipowerlaw"))
    if name == "ladder":
        return generate_schedule_ladder(seed=seed)
    if name == "routing":
        return load_routing(data_path("routing"))
    raise ValueError(f"unknown curve set {name!r}")


def bound_row(set_name: str, n_seeds: int) -> dict[str, float]:
    """The clairvoyant bound over the seeds' arrival orders (each ladder seed is its own curve set)."""
    seeds = range(n_seeds)
    if set_name == "ladder":
        frames = [clairvoyant_bound(curve_set(set_name, s), seeds=[s]) for s in seeds]
        b = pd.concat(frames)
    else:
        b = clairvoyant_bound(curve_set(set_name, 0), seeds=seeds)
    return {"clairvoyant_frac": b.compute_frac.mean(), "clairvoyant_all_orders": b.expected_frac.mean(),
            "hindsight_frac": b.hindsight_frac.mean()}


def _task(args: tuple[str, int, PrunerSpec]) -> pd.DataFrame:
    set_name, seed, spec = args
    warnings.simplefilter("ignore")
    df = replay_study(curve_set(set_name, seed), spec, seeds=[seed])
    df.insert(0, "curves", set_name)
    return df


def kind(label: str) -> str:
    if not label.startswith("ours"):
        return "optuna"
    return "ours, schedule-aware" if "schedule" in label else "ours, power law"


def plot(summary: pd.DataFrame, path: Path, bounds: pd.DataFrame | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(summary.curves.unique())
    colors = {"optuna": "C0", "ours, power law": "C1", "ours, schedule-aware": "C3"}
    fig, axes = plt.subplots(2, len(sets), figsize=(6 * len(sets), 8), squeeze=False)
    for j, cs in enumerate(sets):
        s = summary[summary.curves == cs]
        for _, r in s.iterrows():
            k = kind(r.pruner)
            kw = dict(marker="s" if k == "optuna" else "o", color=colors[k], capsize=2, label=k)
            axes[0, j].errorbar(r.compute_frac, r.regret_pct, yerr=r.regret_se_pct, **kw)
            axes[1, j].errorbar(r.compute_frac, r.law_error, yerr=r.law_error_se, **kw)
            for ax, y in ((axes[0, j], r.regret_pct), (axes[1, j], r.law_error)):
                ax.annotate(r.pruner.replace("from_curves", "fc"), (r.compute_frac, y), fontsize=5,
                            xytext=(3, 3), textcoords="offset points")
        if bounds is not None and cs in set(bounds.curves):
            b = bounds[bounds.curves == cs].iloc[0]
            for x, name, ls in ((b.clairvoyant_frac, "least for zero regret, one by one", "--"),
                                (b.hindsight_frac, "hindsight (best run alone)", "-.")):
                for ax in axes[:, j]:
                    ax.axvline(x, color="k", lw=0.8, ls=ls, label=name)
        if cs == "schedule":
            axes[0, j].axvline(0.35, color="grey", lw=0.8, ls=":")
            axes[0, j].axhline(0.5, color="grey", lw=0.8, ls=":")
        axes[0, j].set_title(f"{cs}: regret vs compute (mean ± s.e. over seeds)")
        axes[0, j].set_ylabel("best-loss regret (%)")
        axes[1, j].set_ylabel("law error (mean |Δ ln L|)")
        handles, labels = axes[0, j].get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        axes[0, j].legend(unique.values(), unique.keys(), fontsize=7)
        for ax in axes[:, j]:
            ax.set_xlabel("compute spent / exhaustive")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--sets", default="schedule,ladder,routing")
    ap.add_argument("--jobs", type=int, default=default_jobs())
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    sets = args.sets.split(",")
    if "routing" in sets and data_path("routing") is None:
        print("routing curves not found (SH_SCALING_ROUTING_PATH); skipping them", file=sys.stderr)
        sets.remove("routing")
    tasks = [(cs, seed, spec) for cs in sets for spec in [*our_specs(cs), *OPTUNA_PRUNERS]
             for seed in range(args.seeds)]
    # Slow tasks (multi-power-law fits, the 223 routing runs) first, so that the pool ends together.
    tasks.sort(key=lambda t: (t[0] != "routing", "schedule" not in t[2].kwargs))
    out = output_dir("schedule_replay", args.out)
    t0 = time.perf_counter()
    df = pd.concat(parallel_map(_task, tasks, jobs=args.jobs, label="studies"), ignore_index=True)
    df.drop(columns="rungs").to_csv(out / "runs.csv", index=False)
    summary = summarize_replay(df)
    bounds = pd.DataFrame([
        {"curves": cs, **bound_row(cs, args.seeds)} for cs in sets
    ])
    bounds.to_csv(out / "bounds.csv", index=False)
    write_summary(summary, out)
    plot(summary, out / "compute_vs_regret.png", bounds)
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 70):
        cols = ["curves", "pruner", "seeds", "compute_frac", "compute_frac_se", "regret_pct", "regret_se_pct",
                "law_error"]
        print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nLeast compute for zero regret (trials arriving one by one, each seed's order):")
    print(bounds.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out}/ ({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
