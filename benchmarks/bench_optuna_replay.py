"""Replay recorded and synthetic learning curves as trials of real Optuna studies, under Optuna's pruners and ours.

Each study is a sweep: every curve of the set is one trial (enqueued in a seeded random order, so the sampler's
choice is the order of arrival); the objective reports the recorded curve point by point with
``sh_scaling.report(trial, loss, compute=...)`` (which also calls ``trial.report(loss, step)``, so Optuna's
pruners see the usual step index) and stops when ``trial.should_prune()`` says so. ``study.optimize`` runs it,
one trial at a time.

Pruners: ``NopPruner`` (exhaustive), Optuna's ``SuccessiveHalvingPruner``, ``HyperbandPruner``,
``MedianPruner`` and ``PatientPruner(MedianPruner)`` (defaults and a common variant each), and
``SurrogateHalvingPruner`` with each surrogate and each objective.

Metrics per study (sh_scaling.simulation.allocation_metrics): compute spent as a fraction of ``NopPruner``'s,
best-loss regret ((best observed - exhaustive best) / exhaustive best) and the law error (mean absolute
ln-loss gap between the law fitted on the observed frontier and the law fitted on every full curve, over the
exhaustive frontier's compute range). Compute is training FLOPs (routing: 3 x forward FLOPs per step).

    python benchmarks/bench_optuna_replay.py             # 20 seeds, routing + synthetic, all pruners
    python benchmarks/bench_optuna_replay.py --quick     # 3 seeds, power-law surrogate only
    python benchmarks/bench_optuna_replay.py --jobs 16   # worker processes

Writes ``results/optuna_replay/runs.csv``, ``summary.csv``, ``summary.md`` and ``regret_vs_compute.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from sh_scaling.curves import Curve, CurveSet, generate_synthetic, load_routing
from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.simulation._metrics import allocation_metrics, frontier_law

OPTUNA_PRUNERS = {
    "Nop": lambda: optuna.pruners.NopPruner(),
    "SH": lambda: optuna.pruners.SuccessiveHalvingPruner(),
    "SH(eta=2)": lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=2),
    "Hyperband": lambda: optuna.pruners.HyperbandPruner(),
    "Median": lambda: optuna.pruners.MedianPruner(),
    "Median(warmup=5)": lambda: optuna.pruners.MedianPruner(n_warmup_steps=5),
    "Patient(Median)": lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=3),
}


def _ours(surrogate: str, objective: str, **overrides):
    """Our pruner with its defaults, except for the surrogate, the objective and ``overrides``."""
    return {"surrogate": surrogate, "objective": objective, **overrides}


def _routing_path() -> str | None:
    env = os.environ.get("SH_SCALING_ROUTING_PATH")
    here = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing" / "curves.csv.gz"
    return env or (str(here) if here.exists() else None)


def _curve_set(name: str, seed: int) -> CurveSet:
    if name == "routing":
        return load_routing(_routing_path())
    return generate_synthetic(100, seed=seed, noise="white", name="synthetic")


def _make_pruner(spec, curves: CurveSet):
    if isinstance(spec, str):
        return OPTUNA_PRUNERS[spec]()
    final = [c.final_compute for c in curves]
    # First rung: the third evaluation of the cheapest run (a user knows the sizes and the eval schedule).
    first = min(c.compute[min(2, len(c) - 1)] for c in curves)
    options = {k: v for k, v in spec.items() if k not in ("surrogate",)}
    return SurrogateHalvingPruner(
        spec["surrogate"], max_compute=lambda p: final[p["curve"]], min_compute=first, **options
    )


def _label(spec) -> str:
    if isinstance(spec, str):
        return spec
    extra = "".join(f",{k}={v}" for k, v in spec.items() if k not in ("surrogate", "objective"))
    return f"Ours({spec['surrogate']},{spec['objective']}{extra})"


def replay(curves: CurveSet, spec, seed: int) -> tuple[list[Curve], float, float]:
    """Run one Optuna study over ``curves``; returns the observed curves, compute spent and wall seconds."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="minimize", pruner=_make_pruner(spec, curves), sampler=optuna.samplers.RandomSampler(seed)
    )
    for i in np.random.default_rng(seed).permutation(len(curves)):
        study.enqueue_trial({"curve": int(i)})

    def objective(trial: optuna.trial.Trial) -> float:
        curve = curves[trial.suggest_int("curve", 0, len(curves) - 1)]
        for step, (c, loss) in enumerate(zip(curve.compute, curve.loss)):
            report(trial, float(loss), compute=float(c), step=step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return curve.final_loss

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=len(curves))
    wall = time.perf_counter() - t0
    observed, spent = [], 0.0
    for t in study.get_trials(deepcopy=False):
        curve = curves[t.params["curve"]]
        n = len(t.intermediate_values)
        if n:
            observed.append(Curve(curve.id, curve.compute[:n], curve.loss[:n], curve.meta, curve.unit))
            spent += float(curve.compute[n - 1])
    return observed, spent, wall


def _task(args) -> dict:
    set_name, seed, spec = args
    warnings.simplefilter("ignore")
    curves = _curve_set(set_name, seed)
    full = list(curves)
    observed, spent, wall = replay(curves, spec, seed)
    row = {"curves": set_name, "seed": seed, "pruner": _label(spec), "wall_s": wall}
    row.update(allocation_metrics(observed, full, spent, frontier_law(full)))
    row["compute_frac"] = spent / row["exhaustive_compute"]
    return row


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["curves", "pruner"], sort=False)
    out = g.agg(
        seeds=("seed", "nunique"),
        compute_frac=("compute_frac", "mean"),
        regret_pct=("regret", lambda x: 100 * x.mean()),
        regret_se_pct=("regret", lambda x: 100 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan),
        within_1pct=("regret", lambda x: (x <= 0.01).mean()),
        law_err=("law_area_mean", "mean"),
        law_err_se=("law_area_mean", lambda x: x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan),
        exponent_err=("exponent_error", "mean"),
        wall_s=("wall_s", "mean"),
    )
    return out.reset_index()


def verdict(df: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Each of our settings against each built-in: compute <=, regret <= (``=`` marks a tie), law error <."""
    lines = []
    builtin = [p for p in summary.pruner.unique() if not p.startswith("Ours") and p != "Nop"]
    for cs in summary.curves.unique():
        s = summary[summary.curves == cs].set_index("pruner")
        for ours in [p for p in s.index if p.startswith("Ours")]:
            marks = []
            for b in builtin:
                c_ok = s.at[ours, "compute_frac"] <= s.at[b, "compute_frac"]
                r_ours, r_b = s.at[ours, "regret_pct"], s.at[b, "regret_pct"]
                r_mark = "<" if r_ours < r_b else ("=" if r_ours == r_b else ">")
                l_ok = s.at[ours, "law_err"] < s.at[b, "law_err"]
                ok = c_ok and r_mark != ">" and l_ok
                marks.append(f"{b}[{'C' if c_ok else 'c'}{r_mark}{'L' if l_ok else 'l'}]{'' if ok else '!'}")
            lines.append(f"{cs:9s} {ours:55s} {' '.join(marks)}")
    lines.append("legend: C compute <= built-in (c: more), </=/> regret, L law error lower (l: not); ! = not better")
    return lines


def plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(summary.curves.unique())
    fig, axes = plt.subplots(2, len(sets), figsize=(6 * len(sets), 8), squeeze=False)
    for j, cs in enumerate(sets):
        s = summary[summary.curves == cs]
        for _, r in s.iterrows():
            ours = r.pruner.startswith("Ours")
            kw = dict(marker="o" if ours else "s", color="C3" if ours else "C0", capsize=2)
            axes[0, j].errorbar(r.compute_frac, r.regret_pct, yerr=r.regret_se_pct, **kw)
            axes[1, j].errorbar(r.compute_frac, r.law_err, yerr=r.law_err_se, **kw)
            for ax, y in ((axes[0, j], r.regret_pct), (axes[1, j], r.law_err)):
                ax.annotate(r.pruner, (r.compute_frac, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        axes[0, j].set_title(f"{cs}: best-loss regret vs compute (mean ± s.e. over seeds)")
        axes[0, j].set_ylabel("regret (%)")
        axes[1, j].set_ylabel("law error (mean |Δ ln L|)")
        for ax in axes[:, j]:
            ax.set_xlabel("compute spent / NopPruner's")
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 seeds, power-law surrogate only")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--sets", default="routing,synthetic")
    ap.add_argument("--surrogates", default=None, help="comma list (default powerlaw,gp; --quick: powerlaw)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", default="results/optuna_replay")
    args = ap.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 20)
    surrogates = (args.surrogates or ("powerlaw" if args.quick else "powerlaw,gp")).split(",")
    sets = args.sets.split(",")
    if "routing" in sets and _routing_path() is None:
        print("routing curves not found (SH_SCALING_ROUTING_PATH); skipping them", file=sys.stderr)
        sets.remove("routing")
    specs: list = list(OPTUNA_PRUNERS)
    specs += [_ours(s, o) for s in surrogates for o in ("frontier", "best_loss")]
    if "powerlaw" in surrogates:
        # A conservative setting, to trace regret against compute.
        specs.append(_ours("powerlaw", "frontier", reduction_factor=2, optimism=0.2))
    tasks = [(cs, seed, spec) for cs in sets for seed in range(seeds) for spec in specs]
    # Slow tasks (GP surrogates) first, so that the pool ends together.
    tasks.sort(key=lambda t: 0 if (not isinstance(t[2], str) and t[2]["surrogate"] != "powerlaw") else 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for i, row in enumerate(pool.map(_task, tasks, chunksize=1), 1):
            rows.append(row)
            if i % 10 == 0 or i == len(tasks):
                print(f"\r{i}/{len(tasks)} studies, {time.perf_counter() - t0:.0f}s", end="", file=sys.stderr)
    print(file=sys.stderr)
    df = pd.DataFrame(rows)
    df.to_csv(out / "runs.csv", index=False)
    summary = summarize(df)
    summary.to_csv(out / "summary.csv", index=False)
    table = summary.to_markdown(index=False, floatfmt=".4g") if _has_tabulate() else summary.to_string(index=False)
    lines = verdict(df, summary)
    (out / "summary.md").write_text(table + "\n\n" + "\n".join(lines) + "\n")
    plot(summary, out / "regret_vs_compute.png")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(lines))
    print(f"wrote {out}/ ({time.perf_counter() - t0:.0f}s)")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
