"""Fixed-budget allocation, round by round: where surrogate-guided halving loses what the oracle gains.

For each development set (routing, the schedule curves of Luo et al., synthetic curves, the synthetic schedule
ladder, the CPU ladder) and each setting (5, 10, 20 candidates x budgets of 3, 10, 30 % of exhaustive compute),
replays plain SH, SH+oracle, the budgeted driver's default rule (SH+FA) and the other surrogate strategies of
:data:`sh_scaling.simulation.STRATEGIES` on the same random candidate sets with
:func:`sh_scaling.simulation.allocate`, and lays every round out with :func:`sh_scaling.simulation.round_table`:
at each decision, which candidate the oracle (ranking the same survivors by the loss each really reaches) keeps
and the strategy drops, with what forecast, what forecast error (``forecast / outcome - 1``, positive: too
pessimistic), at what stage of its run (fraction of its planned compute), and how much of the budget is left
unspent at the end.

Prints, per set, a table per setting (RI over SH with 95 % intervals, the share of the oracle's RI reached,
unspent budget) and the diagnosis (wrong drops by cause: no point yet, no usable forecast, a forecast; their
errors and stages, against those of the candidates kept in their place), the choice among the strategies made
leave-one-set-out (for each set, the strategy with the best mean RI over the other sets' settings, and how every
strategy fares on the set left out: settings reaching half of the oracle's RI, settings whose RI interval lies
below 0, mean RI), and writes
``results/allocation_rounds/`` (``runs.csv``, ``summary.csv``, ``rounds.csv.gz`` with every round's rows,
``diagnosis.csv``, ``diagnosis.md`` and ``rounds.png``).

    python benchmarks/bench_allocation_rounds.py                       # 20 candidate sets per setting
    python benchmarks/bench_allocation_rounds.py --repeats 3 --sets schedule --strategies SH+FA,SH+FA:keep_unseen
    python benchmarks/bench_allocation_rounds.py --load results/a/allocation_rounds,results/b/allocation_rounds

A strategy written ``NAME:keep_unseen`` is replayed with ``allocate(..., keep_unseen=True)`` (candidates with no
evaluation yet survive while the remaining rounds can still observe them), ``NAME:unseen=RULE`` with the strategy's
``unseen`` rule set to ``RULE`` (``median``, ``prior`` or ``reach``: candidates with no evaluation yet scored from
the others' scores; see :class:`sh_scaling.simulation.Strategy`), ``NAME:few=RULE`` with its ``few`` rule set to
``RULE`` (``median``, ``slope`` or ``stage``: candidates with one or two points, too few to forecast),
``NAME:replan`` with ``allocate(..., replan=True)`` (what a round leaves unspent goes to the remaining rounds, the
last round's to its survivors); options combine (``SH+FA:unseen=reach:few=stage:replan``). SH and SH+oracle always run plain.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings

import numpy as np
import pandas as pd

from sh_scaling.benchmarking import benchmark_curves, local_curve_sets, output_dir, parallel_map
from sh_scaling.simulation import (
    MIN_ORACLE_GAIN,
    STRATEGIES,
    FEW_RULES,
    UNSEEN_RULES,
    Strategy,
    allocate,
    oracle_share,
    relative_improvement,
    round_table,
)

SETS = ("routing", "schedule", "synthetic", "ladder", "cpu-ladder")
#: SH and the oracle first (the reference and the bound), then the driver's default, then every other ranking
#: by a surrogate that the simulator has.
REFERENCES = ("SH", "SH+oracle")
DEFAULT_RULE = "SH+FA"
SURROGATES = tuple(n for n, s in STRATEGIES.items() if s.ranking in ("forecast", "frontier") and n != DEFAULT_RULE)
STRATEGY_ORDER = (*REFERENCES, DEFAULT_RULE, *SURROGATES)
KEEP_UNSEEN = "keep_unseen"
UNSEEN = "unseen"
FEW = "few"
REPLAN = "replan"


def _one_set(task: tuple) -> tuple[list[dict], list[pd.DataFrame]]:
    """Every strategy and budget on one candidate set: run rows and round tables."""
    name, curves, ids, k, repeat, budgets, strategies, seed = task
    warnings.simplefilter("ignore")
    cands = curves.subset(ids)
    runs, tables = [], []
    for frac in budgets:
        budget = frac * cands.exhaustive_compute
        for strategy in strategies:
            # The stream simulate() gives every strategy for this candidate set and budget.
            rng = np.random.default_rng([seed, k, repeat, int(frac * 1e6)])
            strat, options = _strategy(strategy)
            res = allocate(cands, budget, strat, keep_unseen=KEEP_UNSEEN in options, replan=REPLAN in options,
                           rng=rng)
            key = {"set": name, "n_candidates": k, "budget_frac": frac, "repeat": repeat, "strategy": strategy}
            res.strategy = strategy
            runs.append({**key, "best_loss": res.best_loss, "spent": res.spent, "budget": budget,
                         "unspent": 1.0 - res.spent / budget, "n_fallbacks": res.n_fallbacks,
                         "exhaustive_best": min(c.min_loss for c in cands)})
            table = round_table(res, cands)
            for col, value in key.items():
                table[col] = value
            tables.append(table)
    return runs, tables


def _strategy(text: str) -> tuple[Strategy, list[str]]:
    """A strategy written ``NAME`` followed by options (``:keep_unseen``, ``:replan``, ``:unseen=RULE``,
    ``:few=RULE``), with its ``unseen`` and ``few`` rules set, and the options for :func:`allocate`."""
    name, *options = text.split(":")
    strat = STRATEGIES[name]
    for option in options:
        if option.startswith(UNSEEN + "="):
            strat = dataclasses.replace(strat, unseen=option[len(UNSEEN) + 1:])
        if option.startswith(FEW + "="):
            strat = dataclasses.replace(strat, few=option[len(FEW) + 1:])
    return dataclasses.replace(strat, name=text), options


def _settings_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting and strategy: RI over SH (mean, 95 % interval), share of the oracle's RI, unspent budget."""
    keys = ["set", "n_candidates", "budget_frac", "repeat"]
    sh = runs[runs.strategy == "SH"].set_index(keys)["best_loss"].rename("sh_loss")
    runs = runs.join(sh, on=keys)
    runs["ri"] = relative_improvement(runs["sh_loss"], runs["best_loss"])
    oracle = runs[runs.strategy == "SH+oracle"].set_index(keys)["ri"].rename("oracle_ri")
    runs = runs.join(oracle, on=keys)
    rows = []
    for (name, k, b, strategy), g in runs.groupby(["set", "n_candidates", "budget_frac", "strategy"], sort=False):
        n = len(g)
        half = 1.96 * float(g.ri.std(ddof=1)) / np.sqrt(n) if n > 1 else np.nan
        share, lo, hi = oracle_share(g.ri.to_numpy(), g.oracle_ri.to_numpy())
        rows.append({"set": name, "n_candidates": k, "budget_frac": b, "strategy": strategy, "n": n,
                     "ri_mean": g.ri.mean(), "ri_lo": g.ri.mean() - half, "ri_hi": g.ri.mean() + half,
                     "oracle_ri": g.oracle_ri.mean(), "share": share, "share_lo": lo, "share_hi": hi,
                     "unspent": g.unspent.mean(), "regret": ((g.best_loss - g.exhaustive_best)
                                                             / g.exhaustive_best).mean()})
    return pd.DataFrame(rows)


def _leave_one_set_out(summary: pd.DataFrame, sets: list[str], strategies: list[str]) -> list[str]:
    """The choice among ``strategies`` made without each set: the best mean RI over the settings of the other
    sets, and how every strategy fares on the set left out (settings where the oracle gains at least
    ``MIN_ORACLE_GAIN`` in which it reaches half of the oracle's RI; settings whose RI interval lies below 0)."""
    if len(sets) < 2 or len(strategies) < 2:
        return []
    s = summary[summary.strategy.isin(strategies)]
    lines = ["", "== Leave-one-set-out: chosen on the other sets (best mean RI over their settings); on the set "
                 "left out, per strategy: half of the oracle's RI / settings where the oracle gains >= "
                 f"{100 * MIN_ORACLE_GAIN:g} %, settings with the RI interval below 0, mean RI % ==",
             "", f"| left-out set | chosen | {' | '.join(strategies)} |", "|---" * (len(strategies) + 2) + "|"]
    for name in sets:
        others = s[s.set != name].groupby("strategy").ri_mean.mean()
        chosen = max(strategies, key=lambda x: others.get(x, -np.inf))
        cells = []
        for strategy in strategies:
            g = s[(s.set == name) & (s.strategy == strategy)]
            counted = g[g.oracle_ri >= MIN_ORACLE_GAIN]
            cells.append(f"{int((counted.share >= 0.5).sum())}/{len(counted)}, {int((g.ri_hi < 0).sum())}, "
                         f"{_pct(g.ri_mean.mean())}")
        lines.append(f"| {name} | {chosen} ({_pct(others[chosen])} elsewhere) | {' | '.join(cells)} |")
    return lines


def _pct(v: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:+.{digits}f}"


def _print_settings(summary: pd.DataFrame, name: str, strategies: list[str]) -> None:
    s = summary[summary.set == name]
    width = max(len(x) for x in strategies)
    print(f"\n== {name}: RI over SH, % (mean [95 % interval]); share of the oracle's RI (where the oracle gains "
          f">= {100 * MIN_ORACLE_GAIN:g} %) [95 % interval]; budget unspent, % ==")
    for (k, b), g in s.groupby(["n_candidates", "budget_frac"], sort=True):
        g = g.set_index("strategy")
        oracle = g.loc["SH+oracle"]
        print(f"-- {k} candidates, budget {100 * b:g} %: oracle RI {_pct(oracle.ri_mean)} "
              f"[{_pct(oracle.ri_lo)}, {_pct(oracle.ri_hi)}], SH leaves {100 * g.loc['SH'].unspent:.1f} % unspent")
        for strategy in strategies:
            if strategy in REFERENCES or strategy not in g.index:
                continue
            r = g.loc[strategy]
            share = ("-" if not np.isfinite(r.share) else f"{r.share:+.2f}"
                     + (f" [{r.share_lo:+.2f}, {r.share_hi:+.2f}]" if np.isfinite(r.share_lo) else ""))
            print(f"   {strategy:<{width}} RI {_pct(r.ri_mean):>6} [{_pct(r.ri_lo):>6}, {_pct(r.ri_hi):>6}]  "
                  f"share {share:<22} unspent {100 * r.unspent:5.1f}")


def _cause(rows: pd.DataFrame) -> pd.Series:
    """Why a candidate's forecast was what it was: no point yet, the observed loss standing in, a forecast."""
    return pd.Series(np.where(rows.loss.isna(), "unseen", np.where(rows.fallback, "fallback", "forecast")),
                     index=rows.index)


def diagnose(rounds: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per set and strategy: the wrong drops (the oracle keeps, the strategy drops) by cause, with the median
    forecast error and stage of the dropped candidates and of those kept in their place, how often the round's
    best candidate was among them, and the budget left unspent."""
    decided = rounds[rounds["round"] < rounds.n_rounds - 1]
    rows = []
    for (name, strategy), g in decided.groupby(["set", "strategy"], sort=False):
        drops = g[g.wrong_drop]
        keeps = g[g.wrong_keep]
        cause = _cause(drops)
        seen = drops[cause != "unseen"]
        fc = drops[cause == "forecast"]
        kfc = keeps[_cause(keeps) == "forecast"]
        r = runs[(runs.set == name) & (runs.strategy == strategy)]
        gaps = _best_gaps(g)
        rows.append({
            "set": name, "strategy": strategy,
            "decisions": int(g.dropped.sum()), "wrong_drops": len(drops),
            "lost_best": int((drops.outcome_rank == 1).sum()),
            "lost_best_gap": float(gaps[gaps > 0].median()) if (gaps > 0).any() else np.nan,
            "unseen": int((cause == "unseen").sum()), "fallback": int((cause == "fallback").sum()),
            "forecast": len(fc),
            **_by_points(drops[cause == "fallback"]),
            "pessimistic": int((seen.forecast_error > 0).sum()), "seen": len(seen),
            "drop_error": float(seen.forecast_error.median()) if len(seen) else np.nan,
            "drop_stage": float(seen.stage.median()) if len(seen) else np.nan,
            "unseen_stage": float(drops[cause == "unseen"].stage.median()) if (cause == "unseen").any() else np.nan,
            "drop_error_forecast": float(fc.forecast_error.median()) if len(fc) else np.nan,
            "drop_stage_forecast": float(fc.stage.median()) if len(fc) else np.nan,
            "keep_error": float(keeps.forecast_error.median()) if len(keeps) else np.nan,
            "keep_error_forecast": float(kfc.forecast_error.median()) if len(kfc) else np.nan,
            "keep_stage": float(keeps.stage.median()) if len(keeps) else np.nan,
            "all_error": float(g.forecast_error.median()),
            "unspent": float(r.unspent.mean()),
            "unspent_last": _last_round_share(rounds[(rounds.set == name) & (rounds.strategy == strategy)]),
        })
    return pd.DataFrame(rows)


def _by_points(drops: pd.DataFrame) -> dict[str, float]:
    """Wrong drops without a usable forecast by the evaluations the candidate had when its round ended (1, 2,
    3 or more), with the median forecast error of those with 1-2 (NaN counts from runs recorded without them)."""
    if "points" not in drops:
        return {"fallback_1": np.nan, "fallback_2": np.nan, "fallback_3up": np.nan, "fallback_few_error": np.nan}
    few = drops[drops.points <= 2]
    return {"fallback_1": int((drops.points == 1).sum()), "fallback_2": int((drops.points == 2).sum()),
            "fallback_3up": int((drops.points >= 3).sum()),
            "fallback_few_error": float(few.forecast_error.median()) if len(few) else np.nan}


def _best_gaps(decided: pd.DataFrame) -> pd.Series:
    """Per decision: how much worse the best outcome among the candidates it kept (and those that finished) is
    than the best outcome among all its survivors (0 where the round kept its best)."""
    keys = ["n_candidates", "budget_frac", "repeat", "round"]
    stays = decided.kept | decided.finished
    best_all = decided.groupby(keys).outcome.min()
    best_kept = decided[stays].groupby(keys).outcome.min().reindex(best_all.index)
    return (best_kept / best_all - 1.0).dropna()


def _last_round_share(rounds: pd.DataFrame) -> float:
    """The share of the unspent compute that the last round left (its survivors reached their last point)."""
    per_round = rounds.drop_duplicates(["n_candidates", "budget_frac", "repeat", "round"])
    left = per_round.offered - per_round.given
    total = float(left.sum())
    if not total > 0:
        return float("nan")
    return float(left[per_round["round"] == per_round.n_rounds - 1].sum()) / total


def _diagnosis_lines(d: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in d.iterrows():
        if r.strategy == "SH+oracle":
            continue
        text = (f"{r.set} / {r.strategy}: {r.wrong_drops} of {r.decisions} drops went against the oracle "
                f"({r.lost_best} dropped the round's best"
                + ("" if not np.isfinite(r.lost_best_gap) else
                   f", whose outcome was a median {100 * r.lost_best_gap:.2f} % below the best kept")
                + f"); by cause: {r.unseen} unseen (no point yet"
                + ("" if not r.unseen else f", median stage {r.unseen_stage:.3f}") + "), "
                f"{r.fallback} without a usable forecast (observed loss used"
                + ("" if not np.isfinite(r.fallback_1) else
                   f"; {r.fallback_1:.0f} with 1 point, {r.fallback_2:.0f} with 2, {r.fallback_3up:.0f} with more"
                   + ("" if not np.isfinite(r.fallback_few_error) else
                      f", those with 1-2 at a median forecast error {100 * r.fallback_few_error:+.1f} %"))
                + f"), {r.forecast} on a forecast")
        if r.seen:
            text += (f"; in {r.pessimistic} of {r.seen} drops with a point, the dropped candidate's forecast was too "
                     f"pessimistic; median forecast error {100 * r.drop_error:+.1f} % (forecast / outcome - 1) at "
                     f"median stage {r.drop_stage:.2f}")
            if r.forecast:
                text += (f" (on a forecast: {100 * r.drop_error_forecast:+.1f} % at stage "
                         f"{r.drop_stage_forecast:.2f})")
            if np.isfinite(r.keep_error):
                text += f"; the candidates kept in their place: {100 * r.keep_error:+.1f} % at stage {r.keep_stage:.2f}"
        text += (f"; budget unspent {100 * r.unspent:.1f} %"
                 + ("" if not np.isfinite(r.unspent_last) else f" ({100 * r.unspent_last:.0f} % of it in the last round)"))
        lines.append(text)
    return lines


def _plot(rounds: pd.DataFrame, summary: pd.DataFrame, sets: list[str], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = [x for x in dict.fromkeys(rounds.strategy) if x not in REFERENCES]
    rule = DEFAULT_RULE if DEFAULT_RULE in ranked else (ranked or ["SH"])[0]
    fig, axes = plt.subplots(2, len(sets), figsize=(4.2 * len(sets), 7.5), squeeze=False)
    for j, name in enumerate(sets):
        ax = axes[0, j]
        g = rounds[(rounds.set == name) & (rounds.strategy == rule) & rounds.loss.notna()]
        g = g[g["round"] < g.n_rounds - 1]
        ax.scatter(g.stage, 100 * g.forecast_error, s=6, c="0.75", label="every forecast")
        for mask, style, label in ((g.wrong_keep, dict(c="tab:blue", marker="+"), "kept, oracle drops"),
                                   (g.wrong_drop, dict(c="tab:red", marker="x"), "dropped, oracle keeps")):
            ax.scatter(g.stage[mask], 100 * g.forecast_error[mask], s=22, label=label, **style)
        ax.axhline(0, c="k", lw=0.6)
        if (g.stage > 0).any():
            ax.set_xscale("log")
        ax.set_title(f"{name}: {rule}")
        ax.set_xlabel("stage (fraction of the run trained)")
        if j == 0:
            ax.set_ylabel("forecast / outcome - 1, %  (> 0: pessimistic)")
            ax.legend(fontsize=7)
        ax = axes[1, j]
        s = summary[(summary.set == name) & ~summary.strategy.isin(REFERENCES)]
        settings = sorted(set(zip(s.n_candidates, s.budget_frac)))
        labels = [f"{k}/{100 * b:g}%" for k, b in settings]
        for strategy, sg in s.groupby("strategy", sort=False):
            x = [settings.index(key) for key in zip(sg.n_candidates, sg.budget_frac)]
            ax.plot(x, sg.share, ls="none" if strategy != DEFAULT_RULE else "-",
                    marker="o" if strategy == DEFAULT_RULE else ".",
                    lw=2 if strategy == DEFAULT_RULE else 0.8, label=strategy)
        ax.axhline(0, c="k", lw=0.6)
        ax.axhline(0.5, c="k", lw=0.6, ls=":")
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
        ax.set_ylim(-1.5, 1.5)
        ax.set_title("share of the oracle's RI (where >= 0.5 %)", fontsize=9)
        if j == 0:
            ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=_names, default=list(SETS), help=f"curve sets (default {','.join(SETS)})")
    ap.add_argument("--candidates", type=lambda t: [int(x) for x in _names(t)], default=[5, 10, 20])
    ap.add_argument("--budgets", type=lambda t: [float(x) for x in _names(t)], default=[0.03, 0.1, 0.3])
    ap.add_argument("--strategies", type=_names, default=list(STRATEGY_ORDER),
                    help="strategies besides SH and SH+oracle, which are always run (default: SH+FA and every "
                         "other surrogate strategy)")
    ap.add_argument("--repeats", type=int, default=20, help="candidate sets per setting (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="results")
    ap.add_argument("--load", type=_names, default=None,
                    help="comma-separated folders of earlier runs (their runs.csv and rounds.csv.gz): report on "
                         "them, merged, instead of replaying")
    args = ap.parse_args(argv)
    strategies = list(REFERENCES) + [s for s in args.strategies if s not in REFERENCES]
    options = (KEEP_UNSEEN, REPLAN, *(f"{UNSEEN}={rule}" for rule in UNSEEN_RULES),
               *(f"{FEW}={rule}" for rule in FEW_RULES))
    unknown = [s for s in strategies
               if s.split(":")[0] not in STRATEGIES or any(o not in options for o in s.split(":")[1:])]
    if unknown:
        ap.error(f"unknown strategies {unknown}; choose from {sorted(STRATEGIES)}, each optionally with any of "
                 f"{[':' + o for o in options]}")
    sets = local_curve_sets(args.sets)
    out = output_dir("allocation_rounds", args.out)
    warnings.simplefilter("ignore")

    if args.load:
        runs, rounds = _load(args.load)
        sets = [n for n in SETS if n in set(runs.set)]
        strategies = list(REFERENCES) + [x for x in dict.fromkeys(runs.strategy) if x not in REFERENCES]
    else:
        runs, rounds = _replay(args, sets, strategies)
    _report(runs, rounds, sets, strategies, out)
    return 0


def _replay(args: argparse.Namespace, sets: list[str], strategies: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    all_runs, all_rounds = [], []
    for name in sets:
        curves = benchmark_curves(name, seed=args.seed)
        rng = np.random.default_rng(args.seed)
        tasks = []
        for k in args.candidates:
            if k > len(curves):
                print(f"{name}: {k} candidates is more than its {len(curves)} curves; skipped", file=sys.stderr)
                continue
            for repeat in range(args.repeats):
                ids = [curves.ids[i] for i in rng.choice(len(curves), size=k, replace=False)]
                tasks.append((name, curves, ids, k, repeat, tuple(args.budgets), tuple(strategies), args.seed))
        t0 = time.perf_counter()
        results = parallel_map(_one_set, tasks, jobs=args.jobs, label=f"rounds[{name}]")
        print(f"{name}: {len(curves)} curves, {len(tasks)} candidate sets, {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        for runs, tables in results:
            all_runs += runs
            all_rounds += tables
    return pd.DataFrame(all_runs), pd.concat(all_rounds, ignore_index=True)


def _load(folders: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and rounds of earlier runs of this benchmark (same seed, candidates and repeats, so that they drew
    the same candidate sets), merged: a strategy replayed in two of
    them (SH and SH+oracle always are) is kept once."""
    keys = ["set", "n_candidates", "budget_frac", "repeat", "strategy"]
    runs = pd.concat([pd.read_csv(f"{f}/runs.csv") for f in folders], ignore_index=True)
    rounds = pd.concat([pd.read_csv(f"{f}/rounds.csv.gz") for f in folders], ignore_index=True)
    runs = runs.drop_duplicates(keys)
    rounds = rounds.drop_duplicates([*keys, "round", "candidate"])
    return runs, rounds


def _report(runs: pd.DataFrame, rounds: pd.DataFrame, sets: list[str], strategies: list[str], out) -> None:
    summary = _settings_table(runs)
    for name in sets:
        _print_settings(summary, name, strategies)
    d = diagnose(rounds, runs)
    lines = _diagnosis_lines(d)
    print("\n== Diagnosis: drops that went against the oracle (it keeps the candidate, the strategy drops it) ==")
    for line in lines:
        print("- " + line)
    counted = summary[(summary.strategy == DEFAULT_RULE) & (summary.oracle_ri >= MIN_ORACLE_GAIN)]
    half = int((counted.share >= 0.5).sum())
    below = int((summary[~summary.strategy.isin(REFERENCES)].ri_hi < 0).sum())
    print(f"\n{DEFAULT_RULE} reaches half of the oracle's RI in {half} of {len(counted)} settings where the oracle "
          f"gains >= {100 * MIN_ORACLE_GAIN:g} %; settings (any strategy) with the RI interval below 0: {below}")
    width = max(len(x) for x in strategies)
    for strategy in strategies:
        if strategy in REFERENCES:
            continue
        c = summary[(summary.strategy == strategy) & (summary.oracle_ri >= MIN_ORACLE_GAIN)]
        print(f"  {strategy:<{width}} half of the oracle in {int((c.share >= 0.5).sum())} of {len(c)}; median "
              f"share {c.share.median():+.2f}; RI interval below 0 in "
              f"{int((summary[summary.strategy == strategy].ri_hi < 0).sum())} settings")
    for line in _leave_one_set_out(summary, sets, [x for x in strategies if x not in REFERENCES]):
        print(line)
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    rounds.to_csv(out / "rounds.csv.gz", index=False)
    d.to_csv(out / "diagnosis.csv", index=False)
    (out / "diagnosis.md").write_text("\n".join("- " + line for line in lines) + "\n")
    _plot(rounds, summary, sets, out / "rounds.png")
    print(f"\nwrote {out}/runs.csv, summary.csv, rounds.csv.gz, diagnosis.csv, diagnosis.md, rounds.png")


if __name__ == "__main__":
    sys.exit(main())
