"""Latency of ``prune()`` as the study grows, ours (power law and GP surrogates) against Optuna's SH pruner.

For each study size N (100, 500, 2000 trials of 30 reports each, in-memory storage), the study is first filled
by replaying N synthetic learning curves through the pruner under test (for the GP surrogate the study is
filled with the power-law pruner: the stored rung records do not depend on the surrogate, and a GP fit per
rung for 2000 trials would only make the benchmark slow). Then 50 more trials are replayed and every
``prune()`` call is timed. Reported: median, 90th percentile and maximum per call, the share of calls that
decided a rung (the only ones that fit a surrogate and read other trials) and their median, and the ratio of medians to
Optuna's ``SuccessiveHalvingPruner`` on the same replay.

Memory: one trial's ``prune()`` is called 2,000 times with no new report; the growth of Python's traced
memory per call is reported (it must be ~0: the pruner keeps no per-call state).

    python benchmarks/bench_pruner_latency.py           # N = 100, 500, 2000
    python benchmarks/bench_pruner_latency.py --quick   # N = 100, 500

Writes ``results/pruner_latency/latency.csv`` and ``latency.png``.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from sh_scaling.pruning import SurrogateHalvingPruner, report

N_REPORTS = 30
N_PROBE = 50


class _Timed(optuna.pruners.BasePruner):
    def __init__(self, inner: optuna.pruners.BasePruner) -> None:
        self.inner = inner
        self.times: list[float] | None = None
        self.decided: list[bool] = []

    def prune(self, study, trial) -> bool:
        if self.times is None:
            return self.inner.prune(study, trial)
        # Counted through the storage, so that the trial's lazily loaded attributes are read inside the timer.
        before = len(study._storage.get_trial_system_attrs(trial._trial_id))
        t0 = time.perf_counter()
        out = self.inner.prune(study, trial)
        self.times.append(time.perf_counter() - t0)
        self.decided.append(out or len(study._storage.get_trial_system_attrs(trial._trial_id)) != before)
        return out


def _curve(rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    size = float(np.exp(rng.uniform(np.log(1.0), np.log(100.0))))
    compute = size * np.geomspace(1.0, 200.0, N_REPORTS)
    loss = 1.7 + rng.uniform(1.0, 3.0) / size**0.3 + 4.0 * (compute / size) ** -0.35
    loss *= np.exp(rng.normal(0.0, 0.005, N_REPORTS))
    return size, compute, loss


def _objective(rng: np.random.Generator):
    def objective(trial: optuna.trial.Trial) -> float:
        size, compute, loss = _curve(rng)
        trial.suggest_float("size", size, size)
        for step, (c, value) in enumerate(zip(compute, loss)):
            report(trial, float(value), compute=float(c), step=step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(loss[-1])

    return objective


def _ours(surrogate: str) -> SurrogateHalvingPruner:
    return SurrogateHalvingPruner(surrogate, max_compute=lambda p: p["size"] * 200.0, min_compute=3.0)


def measure(kind: str, n_trials: int, seed: int = 0) -> dict:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if kind == "optuna-SH":
        filler, probe = optuna.pruners.SuccessiveHalvingPruner(), optuna.pruners.SuccessiveHalvingPruner()
    else:
        filler, probe = _ours("powerlaw"), _ours(kind)
    timed = _Timed(filler)
    study = optuna.create_study(pruner=timed, sampler=optuna.samplers.RandomSampler(seed))
    rng = np.random.default_rng(seed)
    study.optimize(_objective(rng), n_trials=n_trials)
    timed.inner, timed.times = probe, []
    study.optimize(_objective(rng), n_trials=N_PROBE)
    t = np.array(timed.times) * 1e3
    return {
        "pruner": kind,
        "n_trials": n_trials,
        "calls": t.size,
        "median_ms": float(np.median(t)),
        "p90_ms": float(np.percentile(t, 90)),
        "max_ms": float(t.max()),
        "decision_calls": float(np.mean(timed.decided)),
        "decision_median_ms": float(np.median(t[np.array(timed.decided, dtype=bool)])) if any(timed.decided) else np.nan,
        "mem_bytes_per_call": _memory_per_call(study, probe),
    }


def _memory_per_call(study: optuna.Study, pruner, calls: int = 2000) -> float:
    trial = study.get_trials(deepcopy=True)[-1]
    trial.system_attrs  # noqa: B018 - materialise
    for _ in range(50):  # warm caches
        pruner.prune(study, trial)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(calls):
        pruner.prune(study, trial)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return grown / calls


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, g in df.groupby("pruner"):
        ax.plot(g.n_trials, g.median_ms, marker="o", label=f"{kind} median")
        ax.plot(g.n_trials, g.p90_ms, marker="x", ls=":", label=f"{kind} p90")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trials in the study (30 reports each)")
    ax.set_ylabel("prune() latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default=None, help="comma list of study sizes")
    ap.add_argument("--out", default="results/pruner_latency")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("100,500" if args.quick else "100,500,2000")).split(",")]
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sizes:
        for kind in ("optuna-SH", "powerlaw", "gp"):
            t0 = time.perf_counter()
            rows.append(measure(kind, n))
            print(f"{kind:10s} N={n:5d}: median {rows[-1]['median_ms']:.3f} ms ({time.perf_counter() - t0:.0f}s)")
    df = pd.DataFrame(rows)
    ref = df[df.pruner == "optuna-SH"].set_index("n_trials").median_ms
    df["ratio_to_optuna_SH"] = df.median_ms / df.n_trials.map(ref)
    df.to_csv(out / "latency.csv", index=False)
    plot(df, out / "latency.png")
    with pd.option_context("display.width", 200):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
