"""Cost of one ``report`` and one ``should_prune`` call as a trial accumulates reports.

One trial reports ``N`` losses (5,000 in memory, 1,500 on PostgreSQL), one unit of compute per step, and asks
``should_prune`` after each; every call is timed. The pruner has its default settings and ``max_compute`` equal
to the last report's compute (the trial is planned to run to its end), so that it decides rungs from 5 % of the
run on, as in a sweep. The floor is Optuna itself, on the same storage with the same number of reports:
``trial.report`` and ``trial.should_prune`` under ``NopPruner`` (``optuna-nop``), and under Optuna's
``SuccessiveHalvingPruner`` (``optuna-SH``), which like ours reads its state from the trial's system attributes.
Python's garbage collector is off inside the timed calls and run between them (as ``timeit`` does): its pauses
grow with everything the process holds and would land on whichever call happens to trigger them. Each trial is
run ``--repeats`` times (default 3) and each call counts with its fastest time over the repeats, so that a
time slice lost to another process on a shared machine does not count as cost of the call.

Reported per storage and call: the mean of the first 100 calls, of the last 100, and their ratio (the goal is
at most 2: a call must not cost more because the trial already made thousands of reports); the same ratio over
the calls that decided no rung (a decision fits a surrogate on the trial's points up to the rung: its cost is
that of the fit, see ``bench_pruner_latency.py``), and how many of the last 100 calls decided one.

    python benchmarks/bench_pruner_cost.py              # in memory, and PostgreSQL when
                                                        # SH_SCALING_TEST_POSTGRES_URL is set
    python benchmarks/bench_pruner_cost.py --n-memory 500 --n-postgres 200     # quick look

Writes ``results/pruner_cost/calls.csv`` (every call of every repeat), ``summary.csv``/``summary.md`` and
``cost.png``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from sh_scaling.benchmarking import output_dir, write_summary
from sh_scaling.keys import RUNG_PREFIX
from sh_scaling.pruning import SurrogateHalvingPruner, report

WINDOW = 100
GOAL = 2.0


def _curve(n: int) -> tuple[np.ndarray, np.ndarray]:
    compute = np.arange(1, n + 1, dtype=float)
    return compute, 2.5 + 4.0 * compute**-0.4


def _n_rungs(storage: optuna.storages.BaseStorage, trial_id: int) -> int:
    return sum(k.startswith(RUNG_PREFIX) for k in storage.get_trial_system_attrs(trial_id))


def _pruner(who: str, max_compute: float) -> optuna.pruners.BasePruner:
    if who == "sh_scaling":
        return SurrogateHalvingPruner(max_compute=max_compute)
    if who == "optuna-SH":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def measure(who: str, storage: optuna.storages.BaseStorage | None, n: int) -> pd.DataFrame:
    """Time every call of one trial making ``n`` reports: ``who`` is ``"sh_scaling"``, ``"optuna-nop"`` or
    ``"optuna-SH"``."""
    compute, loss = _curve(n)
    pruner = _pruner(who, float(compute[-1]))
    study = optuna.create_study(storage=storage, pruner=pruner, study_name=f"cost-{uuid.uuid4().hex[:8]}")
    trial = study.ask()
    rows = []
    rungs = 0
    gc.disable()
    for step, (c, value) in enumerate(zip(compute, loss)):
        if step % WINDOW == 0:
            gc.collect()
        t0 = time.perf_counter()
        if who == "sh_scaling":
            report(trial, float(value), compute=float(c))
        else:
            trial.report(float(value), step)
        t1 = time.perf_counter()
        pruned = trial.should_prune()
        t2 = time.perf_counter()
        assert not pruned  # a single trial is never ranked out
        decided = False
        if who == "sh_scaling":  # counted outside the timers
            now = _n_rungs(study._storage, trial._trial_id)
            decided, rungs = now > rungs, now
        rows.append({"step": step, "report_s": t1 - t0, "should_prune_s": t2 - t1, "decided": decided})
    gc.enable()
    study.tell(trial, float(loss[-1]))
    if storage is not None:
        optuna.delete_study(study_name=study.study_name, storage=storage)
    df = pd.DataFrame(rows)
    df.insert(0, "who", who)
    return df


def summarize(calls: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (store, who), g in calls.groupby(["storage", "who"], sort=False):
        first, last = g.head(WINDOW), g.tail(WINDOW)
        for call in ("report", "should_prune"):
            col = f"{call}_s"
            row = {"storage": store, "who": who, "call": call, "reports": len(g),
                   "first100_us": first[col].mean() * 1e6, "last100_us": last[col].mean() * 1e6}
            row["ratio"] = row["last100_us"] / row["first100_us"]
            between_first, between_last = first[~first.decided], last[~last.decided]
            row["ratio_between_rungs"] = between_last[col].mean() / between_first[col].mean()
            row["decisions_in_last100"] = int(last.decided.sum()) if call == "should_prune" else 0
            rows.append(row)
    return pd.DataFrame(rows)


def plot(calls: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = list(dict.fromkeys(calls.storage))
    fig, axes = plt.subplots(1, len(stores), figsize=(6 * len(stores), 4), squeeze=False)
    for ax, store in zip(axes[0], stores):
        for (who, call), style in {("sh_scaling", "report"): "C0-", ("sh_scaling", "should_prune"): "C1-",
                                   ("optuna-nop", "report"): "C0:", ("optuna-nop", "should_prune"): "C1:",
                                   ("optuna-SH", "should_prune"): "C2--"}.items():
            g = calls[(calls.storage == store) & (calls.who == who)]
            if len(g):
                # A rolling median shows the typical call; rung decisions show as the spikes of the raw series.
                ax.plot(g.step, g[f"{call}_s"].rolling(WINDOW, min_periods=1).median() * 1e6, style,
                        label=f"{who} {call}")
        ax.set_title(store)
        ax.set_xlabel("reports made by the trial")
        ax.set_ylabel(f"time per call, µs (rolling median of {WINDOW})")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-memory", type=int, default=5000)
    ap.add_argument("--n-postgres", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="pruner_cost")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
    frames = []
    targets = [("memory", None, args.n_memory)]
    if url:
        targets.append(("postgres", optuna.storages.RDBStorage(url), args.n_postgres))
    for store, storage, n in targets:
        for who in ("optuna-nop", "optuna-SH", "sh_scaling"):
            for r in range(args.repeats):
                print(f"{store}: {who}, {n} reports, repeat {r} ...", file=sys.stderr)
                frames.append(measure(who, storage, n).assign(storage=store, repeat=r))
    calls = pd.concat(frames, ignore_index=True)
    out = output_dir(args.out)
    calls.to_csv(out / "calls.csv", index=False)
    fastest = calls.groupby(["storage", "who", "step"], sort=False).agg(
        report_s=("report_s", "min"), should_prune_s=("should_prune_s", "min"), decided=("decided", "any")
    ).reset_index()
    summary = summarize(fastest)
    notes = [f"ratio = mean of the last {WINDOW} calls / mean of the first {WINDOW} (each call: fastest of "
             f"{args.repeats} repeats); goal <= {GOAL:g} for sh_scaling."]
    if not url:
        notes.append("PostgreSQL skipped: SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run shows how to start a server).")
    print(write_summary(summary, out, notes=notes))
    plot(fastest, out / "cost.png")
    ours = summary[summary.who == "sh_scaling"]
    return 0 if (ours.ratio <= GOAL).all() else 1


if __name__ == "__main__":
    sys.exit(main())
