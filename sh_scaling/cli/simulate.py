"""``sh-scaling simulate``: replay curves through allocation strategies and print the paper-style table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sh_scaling.cli._output import check_output_dir, write_results
from sh_scaling.cli._replay_mode import pruner_names, replay_outputs, run_replay
from sh_scaling.curves import NOISE_MODELS
from sh_scaling.simulation import DEFAULT_STRATEGIES, MIN_ORACLE_GAIN, SPEC_SETTINGS, STRATEGIES, parse_strategy

#: Always replayed beside the strategies asked for: RI is measured against SH, and the share of the oracle's
#: gain against SH+oracle (a bound that needs no forecast, so it costs next to nothing).
REFERENCES = ("SH", "SH+oracle")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    """Strategy specs, each a name with optional settings (``SH+FA:unseen=last:few=stage``), checked here."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n.split(":")[0] not in STRATEGIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown strategies {unknown}; choose from {sorted(STRATEGIES)}")
    for n in names:
        try:
            parse_strategy(n)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return names


#: The CSV column options: (default column, what it holds), as load_csv names them.
_CSV_COLUMNS = {
    "--run-col": ("run_id", "identifying the run"),
    "--compute-col": ("compute", "with the cumulative compute"),
    "--loss-col": ("loss", "with the loss"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay learning curves through budget-allocation strategies",
        description="Replay learning curves (synthetic, the DeepMind routing runs, a CSV of your own, or the complete "
        "trials of a past Optuna study) through "
        "uniform allocation and successive halving with and without surrogates, on random candidate sets, and "
        "report relative improvement (RI) over SH, the share of the oracle's gain each strategy reaches, regret, "
        "savings and the error of the fitted law. The share is mean RI / mean RI of SH+oracle (which ranks by "
        "each curve's true future) on the same candidate sets, with a 95 % interval (delta method); it is "
        f"printed only where the oracle gains at least {100 * MIN_ORACLE_GAIN:g} % over SH.",
    )
    p.add_argument("--curves", default=None, help="'synthetic' (default), 'routing', or a path to a long-format "
                   "CSV (columns run_id, compute, loss, or as named by --run-col/--compute-col/--loss-col)")
    for option, (column, what) in _CSV_COLUMNS.items():
        p.add_argument(option, default=column, help=f"CSV column {what} (default {column})")
    p.add_argument("--storage", default=None, help="replay a past study instead: its Optuna storage URL "
                   "(e.g. sqlite:///sweep.db), with --study (default: none)")
    p.add_argument("--study", "--study-name", dest="study", default=None,
                   help="name of the study to replay (its complete trials: whole runs; default: none)")
    p.add_argument("--noise", default="white",
                   help=f"synthetic noise model: {', '.join(NOISE_MODELS)} (default white)")
    p.add_argument("--n-curves", type=int, default=100, help="number of synthetic curves, >= 1 (default 100)")
    p.add_argument("--routing-path", default=None, help="local copy of the routing curves.csv.gz "
                   "(default: download once and cache)")
    p.add_argument("--loss", default="loss_validation", help="routing loss column (default loss_validation)")
    p.add_argument("--candidates", type=_ints, default=[5, 10, 20],
                   help="candidate-set sizes, each >= 1 (default 5,10,20)")
    p.add_argument("--budgets", type=_floats, default=[0.01, 0.03, 0.1, 0.3],
                   help="budgets as fractions of exhaustive compute, each in (0, 1] (default 0.01,0.03,0.1,0.3)")
    p.add_argument("--strategies", type=_names, default=list(DEFAULT_STRATEGIES),
                   help=f"comma-separated, from {', '.join(STRATEGIES)}, each optionally with settings changed as "
                        f"NAME:KEY=VALUE ({'; '.join(f'{k}: ' + '/'.join(v) for k, v in SPEC_SETTINGS.items())}; "
                        f"e.g. SH+FA:unseen=last, the driver's former default); SH and SH+oracle are always "
                        f"replayed too (the references of RI and of the share of the oracle's gain; default "
                        f"{','.join(DEFAULT_STRATEGIES)})")
    p.add_argument("--pruners", type=pruner_names, default=None,
                   help="replay the curves as trials of real Optuna studies under these pruners instead (comma-"
                        "separated: ours, sha, hyperband, median, percentile, patient, nop); --repeats seeds "
                        "(default: the strategies above)")
    p.add_argument("--workers", type=int, default=1,
                   help="with --pruners: trials running at once in each replayed sweep, >= 1; reports arrive at "
                        "times proportional to compute (default 1: one trial after the other)")
    p.add_argument("--repeats", type=int, default=30,
                   help="random candidate sets per size, or seeds with --pruners, >= 1 (default 30)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed, >= 0, of the synthetic curves and the random candidate sets; with --pruners, the "
                        "first of the --repeats seeds of arrival orders (default 0)")
    p.add_argument("--reduction-factor", "--eta", dest="reduction_factor", type=float, default=2.0,
                   help="reduction factor eta of fixed-budget halving, > 1 (default 2)")
    p.add_argument("--carry-over", action="store_true",
                   help="give compute that finished curves cannot use to the other survivors (default: unspent, "
                        "as in the paper's schedule)")
    p.add_argument("--keep-unseen", action="store_true",
                   help="keep candidates with no evaluation yet while later rounds can still observe them "
                        "(default: they rank last)")
    p.add_argument("--replan", action="store_true",
                   help="give each round its share of what the budget has left and the last round all of it, for "
                        "every strategy, SH and SH+oracle included (default: each round its planned share); not "
                        "with --carry-over")
    p.add_argument("--jobs", type=int, default=1, help="worker processes, >= 1 or -1 for all cores (default 1)")
    p.add_argument("--out", default=None, help="directory for runs.csv, summary.csv, summary.json and plots "
                   "(default: print only)")
    p.add_argument("--force", action="store_true", help="overwrite those files if --out already holds them")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def load_curves(args: argparse.Namespace):
    """The curves to replay, and notes on what was left out."""
    from sh_scaling.curves import generate_synthetic, load_csv, load_routing

    if args.storage or args.study:
        return _study_curves(args)
    source = args.curves or "synthetic"
    if source == "synthetic":
        return generate_synthetic(args.n_curves, seed=args.seed, noise=args.noise, name=f"synthetic-{args.noise}"), []
    if source == "routing":
        return load_routing(args.routing_path, loss=args.loss), []
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--curves: {source!r} is neither 'synthetic', 'routing' nor an existing file")
    return load_csv(path, run_col=args.run_col, compute_col=args.compute_col, loss_col=args.loss_col), []


def _study_curves(args: argparse.Namespace):
    """A past study's complete trials, which are whole runs: a pruned trial's curve stops where it was pruned,
    and a strategy replaying it would take it for a smaller run."""
    from optuna.trial import TrialState

    from sh_scaling.cli.report import check_study, open_study
    from sh_scaling.curves import from_study

    if not (args.storage and args.study):
        raise ValueError("--storage and --study go together: the storage URL and the name of the study in it")
    if args.curves is not None:
        raise ValueError("give either --curves or --storage/--study, not both")
    study = open_study(args.storage, args.study)
    check_study(study)
    curves = from_study(study, states=[TrialState.COMPLETE])
    notes = []
    n_pruned = sum(t.state == TrialState.PRUNED for t in study.get_trials(deepcopy=False))
    if n_pruned:
        notes.append(f"{n_pruned} pruned trial(s) left out: their curves stop where they were pruned, and the "
                     f"strategies replay whole runs; {len(curves)} complete trial(s) replayed")
    if len(curves) < 2:
        raise ValueError(f"study {args.study!r}: {len(curves)} complete trial(s) with compute; replaying needs at "
                         "least 2")
    return curves, notes


def _check_columns(args: argparse.Namespace) -> None:
    """The CSV column options, checked before any work: one column named for two roles, or options for a CSV
    given without one."""
    options = {option: getattr(args, option[2:].replace("-", "_")) for option in _CSV_COLUMNS}
    names = list(options.items())
    for i, (option, column) in enumerate(names):
        for other, same in names[i + 1:]:
            if column == same:
                raise ValueError(f"{option} and {other} both name the column {column!r}; each needs its own column")
    mapped = [option for option, column in options.items() if column != _CSV_COLUMNS[option][0]]
    if mapped and (args.curves in (None, "synthetic", "routing") or args.storage or args.study):
        raise ValueError(f"{', '.join(mapped)} name columns of a CSV file; give the file with --curves")


def _fit_candidates(candidates: list[int], n_runs: int) -> tuple[list[int], list[str]]:
    """Candidate-set sizes a pool of ``n_runs`` can fill; larger ones are dropped, with a note."""
    kept = [k for k in candidates if k <= n_runs]
    dropped = [k for k in candidates if k > n_runs]
    if not dropped:
        return candidates, []
    if not kept:
        kept = [n_runs]
        return kept, [f"candidate-set sizes {dropped} are above the number of runs ({n_runs}); using {n_runs}"]
    return kept, [f"candidate-set sizes {dropped} are above the number of runs ({n_runs}) and were dropped"]


def paper_table(summary: pd.DataFrame, column: str = "ri_mean", scale: float = 100.0) -> pd.DataFrame:
    """Rows (candidates, budget), columns strategies, cells of ``column`` (RI in % by default: 'mean [95 % interval
    of the mean]', the interval the RI plot draws; ``"oracle_share"``: the share of the oracle's gain, 'share [95 %
    interval]', '-' where the oracle gains too little to share, for every strategy but the references)."""
    cells = summary.copy()
    if column == "ri_mean":
        cells["cell"] = [f"{scale * m:+.2f} [{scale * lo:+.2f}, {scale * hi:+.2f}]"
                         for m, lo, hi in zip(cells.ri_mean, cells.ri_lo, cells.ri_hi)]
    elif column == "oracle_share":
        cells = cells[~cells.strategy.isin(REFERENCES)]
        cells["cell"] = ["-" if not np.isfinite(m) else
                         f"{m:+.2f}" + (f" [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) else "")
                         for m, lo, hi in zip(cells.oracle_share, cells.oracle_share_lo, cells.oracle_share_hi)]
    else:
        cells["cell"] = [f"{scale * m:.3g}" for m in cells[column]]
    if cells.empty:
        return pd.DataFrame()
    cells["budget"] = [f"{100 * b:g}%" for b in cells.budget_frac]
    table = cells.pivot_table(index=["n_candidates", "budget_frac", "budget"], columns="strategy", values="cell",
                              aggfunc="first")
    table = table.reset_index(level="budget_frac", drop=True)
    table.columns.name = None
    return table


def _output_names(args: argparse.Namespace) -> list[str]:
    """The files ``run`` writes into ``--out``."""
    plots = [] if args.no_plots else ["ri_by_budget.png", "frontiers.png"]
    return ["runs.csv", "summary.csv", "summary.json", *plots]


def _check_ranges(args: argparse.Namespace) -> None:
    """Options with a range, checked before any work: a value outside it is a one-line error naming it."""
    def bad(option: str, value: object, rule: str) -> ValueError:
        return ValueError(f"{option} {value}: {rule}")

    for option, values in (("--budgets", args.budgets), ("--candidates", args.candidates)):
        if not values:
            raise bad(option, "''", "give at least one value")
    for b in args.budgets:
        if not (0 < b <= 1):
            raise bad("--budgets", f"{b:g}", "each budget is a fraction of exhaustive compute, in (0, 1]")
    for k in args.candidates:
        if k < 1:
            raise bad("--candidates", k, "each candidate-set size must be >= 1")
    for option, value in (("--n-curves", args.n_curves), ("--repeats", args.repeats), ("--workers", args.workers)):
        if value < 1:
            raise bad(option, value, "must be >= 1")
    if args.seed < 0:
        raise bad("--seed", args.seed, "must be >= 0")
    if not args.reduction_factor > 1:
        raise bad("--reduction-factor", f"{args.reduction_factor:g}", "must be > 1")
    if args.jobs < 1 and args.jobs != -1:
        raise bad("--jobs", args.jobs, "must be >= 1, or -1 for all cores")
    if args.workers != 1 and not args.pruners:
        raise bad("--workers", args.workers, "applies to replays under --pruners")
    if args.replan and args.carry_over:
        raise ValueError("--replan and --carry-over are two ways to spend what finished curves leave; choose one")


def run(args: argparse.Namespace) -> int:
    from sh_scaling.simulation import simulate, summarize

    names = replay_outputs(args.no_plots) if args.pruners else _output_names(args)
    _check_ranges(args)
    _check_columns(args)
    if args.out:  # before the simulation, which may take minutes
        check_output_dir(args.out, names, option="--out", force=args.force)
    t0 = time.perf_counter()
    curves, notes = load_curves(args)
    if not args.pruners:
        args.candidates, dropped = _fit_candidates(args.candidates, len(curves))
        notes += dropped
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.pruners:
        return run_replay(args, curves)
    strategies = [*REFERENCES, *(s for s in args.strategies if s not in REFERENCES)]
    df = simulate(
        curves,
        candidates=args.candidates,
        budgets=args.budgets,
        strategies=strategies,
        repeats=args.repeats,
        seed=args.seed,
        reduction_factor=args.reduction_factor,
        carry_over=args.carry_over,
        keep_unseen=args.keep_unseen,
        replan=args.replan,
        n_jobs=args.jobs,
        progress=not args.quiet,
    )
    summary = summarize(df)
    elapsed = time.perf_counter() - t0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\n{curves.name}: {len(curves)} curves, {args.repeats} candidate sets per size, reduction_factor={args.reduction_factor:g}")
        print("\nRelative improvement of the best loss over SH, % (mean [95 % interval of the mean, normal "
              "approximation]):")
        print(paper_table(summary).to_string())
        shares = paper_table(summary, "oracle_share")
        if len(shares.columns):
            print(f"\nShare of the oracle's gain reached: mean RI / mean RI of SH+oracle on the same candidate sets "
                  f"(1: as good as ranking by the true future, 0: no better than SH) [95 % interval, delta method]; "
                  f"'-' where the oracle gains less than {100 * MIN_ORACLE_GAIN:g} % over SH:")
            print(shares.to_string())
        print("\nRegret vs exhaustive best, % (mean):")
        print(paper_table(summary, "regret_mean").to_string())
        print("\nLaw error: mean |ln L_fit - ln L_exhaustive| over the exhaustive range, x100 (median):")
        print(paper_table(summary, "law_area").to_string())
        print(f"\nCompute savings vs exhaustive: {100 * summary.savings.min():.1f}% to "
              f"{100 * summary.savings.max():.1f}%; {elapsed:.1f}s")
        print(f"Surrogate fallbacks: {int(summary.fallbacks.sum())} round forecasts (all strategies and candidate sets) "
              "where the surrogate gave no usable forecast (too few points, a failed fit) and the curve was ranked "
              "on its observed minimum loss instead.")
    if args.out:
        out = write_results(args.out, df, summary, {
            "curves": curves.name,
            "n_curves": len(curves),
            "candidates": args.candidates,
            "budgets": args.budgets,
            "strategies": strategies,
            "repeats": args.repeats,
            "seed": args.seed,
            "reduction_factor": args.reduction_factor,
            "carry_over": args.carry_over,
            "keep_unseen": args.keep_unseen,
            "replan": args.replan,
            "seconds": round(elapsed, 2),
        })
        if not args.no_plots:
            from sh_scaling.simulation import plot_frontiers, plot_ri_by_budget

            plot_ri_by_budget(summary, out / "ri_by_budget.png", title=curves.name)
            k = max(args.candidates)
            rng = np.random.default_rng(args.seed)
            ids = list(rng.choice(curves.ids, size=k, replace=False))
            plot_frontiers(curves.subset(ids), sorted(args.budgets)[len(args.budgets) // 2], args.strategies,
                           out / "frontiers.png", reduction_factor=args.reduction_factor)
        print(f"wrote {out}/runs.csv, summary.csv, summary.json" + ("" if args.no_plots else " and plots"))
    return 0
