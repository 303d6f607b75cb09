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
  its defaults and a small sweep (reduction factor 2 / 6, optimism 0.2 / the mean, the best-loss objective,
  the improvement rule at 0.5 % and 2 %);
* ours, ``schedule``: each trial's schedule and planned compute from its curve's metadata
  (``PrunerSpec("ours", {"schedule": "from_curves"})``): the multi-power law forecasts each run under its own
  schedule; the same sweep, the improvement rule's setting (``min_improvement``) from off to 10 %, and with
  ``family`` (runs of one size fitted jointly);
* Optuna's ``SuccessiveHalvingPruner`` (min_resource and reduction_factor), ``HyperbandPruner``,
  ``MedianPruner`` / ``PercentilePruner`` (percentile and warm-up), ``PatientPruner``; ``nop`` (exhaustive).

Metrics per study: compute spent / exhaustive, best-loss regret ((best observed - exhaustive best) / exhaustive
best) and law error (mean |Δ ln L| between the law fitted on the observed frontier and on every full curve).
The issue's goal on the schedule curves: compute <= 0.35 with regret <= 0.5 % (the power-law pruner: 0.70).

Measured (20 seeds, all three sets in one run, 8 min on the shared 2-core machine; mean compute / regret / law
error; HyperbandPruner's numbers move between runs: 0.552 / 2.0 % on the schedule curves in an earlier one):

==================================  ======================  ======================  =======================
pruner                              schedule curves (27)    ladder (18, synthetic)  routing (223)
==================================  ======================  ======================  =======================
least for zero regret, one by one   0.395                   0.432                   0.081
same, stopping at 3 points and 5 %  0.453                   0.481                   0.192
hindsight (best run alone)          0.191                   0.208                   0.018
same first look, improvement 0.01   0.368 / 0 %             0.413 / 0.12 %          0.174 / 0.19 %
same first look, improvement 0.02   0.367 / 0 %             0.354 / 0.36 %          0.161 / 0.84 %
same first look, improvement 0.05   0.224 / 2.8 %           0.262 / 2.4 %           0.146 / 2.2 %
ours, power law (defaults)          0.614 / 0 % / 0.0026    0.455 / 1.7 % / 0.0047  0.253 / 0 % / 0.0001
ours, power law, reduction 6        0.591 / 0 % / 0.0027    0.451 / 1.7 % / 0.0049  0.238 / 0 % / 0.0001
ours, power law, improvement 0.005  0.284 / 3.4 % / 0.0070  0.316 / 3.2 % / 0.0060  0.164 / 4.4 % / 0.0044
ours, schedule-aware (defaults)     0.472 / 0 % / 0.0043    0.552 / 0.32 % / 0.0024 (no schedules)
same, no improvement rule           0.515 / 0 % / 0.0043    0.639 / 0.15 % / 0.0018 (no schedules)
same, improvement 0.02              0.421 / 0 % / 0.0048    0.470 / 0.71 % / 0.0028 (no schedules)
same, improvement 0.05              0.261 / 2.7 % / 0.0087  0.299 / 2.1 % / 0.0065  (no schedules)
same, improvement 0.1               0.208 / 4.6 % / 0.014   0.215 / 5.5 % / 0.012   (no schedules)
ours, schedule-aware, mean          0.445 / 0 % / 0.0046    0.470 / 0.69 % / 0.0033 (no schedules)
ours, schedule-aware, best_loss     0.391 / 0 % / 0.017     0.352 / 0.91 % / 0.020  (no schedules)
ours, schedule-aware, family        0.528 / 0 % / 0.0032    0.680 / 0.03 % / 0.0013 (no schedules)
Optuna SHA (defaults)               0.233 / 5.7 % / 0.024   0.208 / 6.3 % / 0.022   0.098 / 4.0 % / 0.016
Optuna SHA (min_resource=4)         0.203 / 6.6 % / 0.035   0.164 / 9.3 % / 0.031   0.099 / 5.5 % / 0.0058
Optuna SHA (reduction_factor=2)     0.405 / 2.5 % / 0.021   0.183 / 7.6 % / 0.023   0.111 / 4.2 % / 0.011
Optuna MedianPruner                 0.444 / 3.3 % / 0.0070  0.313 / 4.5 % / 0.0091  0.157 / 3.0 % / 0.0038
Optuna HyperbandPruner              0.591 / 1.4 % / 0.0048  0.363 / 3.7 % / 0.013   0.156 / 1.5 % / 0.0055
==================================  ======================  ======================  =======================

The first three rows are :func:`sh_scaling.simulation.clairvoyant_bound` for the same arrival orders: a
pruner that knew every arriving run's whole curve at no cost, but not the runs still to come, must still train
every run that beats all earlier ones to be sure of zero regret, which costs 0.395 on the schedule curves
(0.381 over all orders). The issue's goal there, 0.35 at <= 0.5 % regret, lies below it: it can only be met by
stopping runs that are the best so far. If that pruner, like ours by default, could stop a run only once it has
3 points and 5 % of its planned compute (these curves have no points during their warm-up: 9 % of a 24k run),
the bound is 0.453. Ours, knowing the schedule, spends 0.472 at no regret (0.614 with the power law). The
"improvement" rows are that bound with the clairvoyant form of the improvement rule (below): a run is trained only
if it beats the best trained by more than the fraction. With ours' first look, regret under 0.5 % costs at least
0.367 on the schedule curves, so 0.35 needs earlier first looks, not only better forecasts.

Below that bound only the improvement rule goes (``min_improvement``: stop a trial, whatever its rank, when even
its optimistic forecast improves on what the study has observed by less than that fraction). Its default, 1 %
for trials with a stated schedule, was chosen on the schedule curves and checked on the ladder; swept, it draws
the schedule-aware pruner's trade-off curve, which lies below Optuna's pruners in regret and law error on the
schedule curves, and on the ladder down to about 0.2 of the compute (at 0.16-0.17 the regret is about even:
11.2 % at ``min_improvement=0.2``, a setting not in this sweep, against 9.3-10.9 %). With the power law's pessimistic forecasts it stops future winners (the rows
"improvement 0.005"), so it is off for them by default; on routing Optuna's SHA is cheaper than any setting of
ours (0.10-0.12 for 4-5.5 % regret). Where the compute of the rule-less pruner went (decision records of
``replay_study``'s ``rungs`` column, 6 seeds): 0.19 the best run; about 0.10 the 400M constant-rate 72k run,
the best so far whenever it arrives before the cosine one (its final loss, 2.716, beats every 24k run), promoted
alone at its late rungs; about 0.10 spent before each run's first decision (5 % of its planned compute and three
points); the rest on runs kept by rank or by the frontier rule.

    nice -n 10 python benchmarks/bench_schedule_replay.py --seeds 20 --sets schedule --jobs 2   # about 5 min
    nice -n 10 python benchmarks/bench_schedule_replay.py                     # 20 seeds, all three sets

Writes ``results/schedule_replay/runs.csv``, ``summary.csv``, ``summary.md`` and ``compute_vs_regret.png``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

from sh_scaling.benchmarking import (
    benchmark_curves,
    default_jobs,
    local_curve_sets,
    output_dir,
    parallel_map,
    write_summary,
)
from sh_scaling.halving import DECISION_START
from sh_scaling.simulation import FROM_CURVES, PrunerSpec, clairvoyant_bound, replay_study, summarize_replay
from sh_scaling.surrogates import MIN_POINTS

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

#: The improvement rule's setting, the knob that trades regret for compute: off by default (the pruner at its
#: defaults is a point of its own); swept for both kinds, each point of the curve one setting (0.01 is what
#: ``min_improvement="auto"`` gives schedule-aware forecasts).
IMPROVEMENT_SWEEP: dict[str, list[float | None]] = {
    "powerlaw": [0.005, 0.02],
    "schedule": [0.01, 0.02, 0.03, 0.05, 0.1],
}


def our_specs(set_name: str) -> list[PrunerSpec]:
    specs = [PrunerSpec("ours", dict(kw)) for kw in OURS_SWEEP]
    specs += [PrunerSpec("ours", {"min_improvement": m}) for m in IMPROVEMENT_SWEEP["powerlaw"]]
    if set_name == "routing":
        return specs  # no schedules there: the schedule-aware pruner is the power law
    specs += [PrunerSpec("ours", {"schedule": FROM_CURVES, **kw}) for kw in OURS_SWEEP]
    specs += [PrunerSpec("ours", {"schedule": FROM_CURVES, "min_improvement": m})
              for m in IMPROVEMENT_SWEEP["schedule"]]
    specs.append(PrunerSpec("ours", {"schedule": FROM_CURVES, "family": FROM_CURVES}))
    return specs


def bound_row(set_name: str, n_seeds: int) -> dict[str, float]:
    """The clairvoyant bound over the seeds' arrival orders (each ladder seed is its own curve set)."""
    seeds = range(n_seeds)
    out: dict[str, float] = {}
    # Any pruner; then one that, like ours by default, decides nothing before 3 points and 5 % of a run.
    first_look = {"min_points": MIN_POINTS, "min_fraction": DECISION_START}
    for suffix, look in (("", {}), ("_first_look", first_look)):
        b = _bound(set_name, seeds, **look)
        out.update({f"clairvoyant{suffix}": b.compute_frac.mean(), f"all_orders{suffix}": b.expected_frac.mean(),
                    f"hindsight{suffix}": b.hindsight_frac.mean()})
    # The clairvoyant form of the improvement rule, with the same first look: the least compute at that regret.
    for m in IMPROVEMENT_BOUNDS:
        b = _bound(set_name, seeds, min_improvement=m, **first_look)
        out.update({f"first_look_improvement_{m:g}": b.compute_frac.mean(),
                    f"first_look_improvement_{m:g}_regret_pct": 100 * b.regret.mean()})
    return out


#: Settings of the improvement rule whose clairvoyant bound is reported.
IMPROVEMENT_BOUNDS = (0.01, 0.02, 0.05)


def _bound(set_name: str, seeds: range, **kwargs: object) -> pd.DataFrame:
    if set_name == "ladder":  # each ladder seed is its own curve set
        return pd.concat([clairvoyant_bound(benchmark_curves(set_name, s), seeds=[s], **kwargs) for s in seeds])
    return clairvoyant_bound(benchmark_curves(set_name, 0), seeds=seeds, **kwargs)


def _task(args: tuple[str, int, PrunerSpec]) -> pd.DataFrame:
    set_name, seed, spec = args
    warnings.simplefilter("ignore")
    df = replay_study(benchmark_curves(set_name, seed), spec, seeds=[seed])
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
        # The improvement rule's settings as one trade-off curve per forecast kind (defaults included).
        for k in ("ours, power law", "ours, schedule-aware"):
            mine = s[(s.pruner.map(kind) == k) & (s.pruner.str.contains("min_improvement") | s.pruner.isin(
                ["ours", "ours(schedule=from_curves)"]))].sort_values("compute_frac")
            if len(mine) > 1:
                axes[0, j].plot(mine.compute_frac, mine.regret_pct, color=colors[k], lw=1, alpha=0.6)
                axes[1, j].plot(mine.compute_frac, mine.law_error, color=colors[k], lw=1, alpha=0.6)
        if bounds is not None and cs in set(bounds.curves):
            b = bounds[bounds.curves == cs].iloc[0]
            for x, name, ls in ((b.clairvoyant, "least for zero regret, one by one", "--"),
                                (b.clairvoyant_first_look, "same, nothing stopped before 3 points and 5 %", ":"),
                                (b.hindsight, "hindsight (best run alone)", "-.")):
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
    sets = local_curve_sets(args.sets.split(","))
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
