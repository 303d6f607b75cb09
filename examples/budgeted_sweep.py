"""A budget-limited scaling-law sweep on a laptop: the tiny GPTs of ``tiny_lm_sweep.py`` under one compute budget.

Three ways to spend compute on the same candidate models, in one run, each printed with the compute it spent,
the best loss it found and the scaling law fitted to its observed frontier (with intervals over runs):

1. **Budgeted successive halving** (:class:`sh_scaling.BudgetedHalving`, the paper's fixed-budget schedule):
   every candidate is trained by an equal share of each round, *paused* (its Optuna trial waits, its
   checkpoint, model, optimizer, learning-rate schedule and data order, goes to an ``optuna.artifacts``
   store), ranked by the frontier-aware rule, and the best half resume from their checkpoints. The total
   never passes the budget.
2. **The asynchronous pruner under a budget**: ``SurrogateHalvingPruner`` on an ordinary ``study.optimize``
   over the same candidates under the same budget: each trial reserves its planned compute with
   :class:`sh_scaling.ComputeBudget` before it trains, and the callback stops the study when no further trial
   fits.
3. **The exhaustive sweep**: every candidate trained to its end. Training is deterministic (seeded model,
   data order and optimizer; one thread), so each candidate is finished from the checkpoint budgeted
   halving left it at: a paused and resumed run computes exactly the same numbers as one that never paused
   (``tests/test_budgeted_example.py`` checks it), and the reference costs only the compute the budgeted run
   did not spend.

Candidates: distinct (depth, width, vocabulary) shapes drawn from the search space of ``tiny_lm_sweep.py``,
each trained on the same number of FLOPs (an IsoFLOP family), evaluated in bits per byte of held-out text.

Run: ``python examples/budgeted_sweep.py`` (16 candidates, budget 30 % of exhaustive; several minutes on one
core) or ``--quick`` (6 small candidates, under 2 minutes; for CI). ``--storage FILE`` keeps the budgeted
study in a journal file (checkpoints beside it): run the same command again after stopping it and it
continues where it was. ``--workers N`` trains the segments of a round in N processes.
Needs ``pip install "sh_scaling[torch]" tokenizers``.
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

import sh_scaling
from sh_scaling.budgeted import CheckpointError, segments
from sh_scaling.curves import Curve
from sh_scaling.laws import area_between_laws, fit_scaling_law
from sh_scaling.pruning import reported_compute
from tiny_lm_sweep import SEARCH_SPACE, Corpus, Encoded, Run, encode, model_config, train_tokenizer

#: Sweep sizes. ``flops``: planned training compute of every candidate; ``budget``: fraction of the
#: exhaustive sweep's compute both budgeted methods may spend. With 16 candidates and a reduction factor of 2
#: the survivors of the last round get 15/64 of the budget each, so 30 % lets them reach their planned end.
SIZES = {
    "default": dict(n_models=16, flops=1.0e12, chars=2_000_000, val_chars=40_000, n_evals=12, budget=0.3,
                    vocabs=(256, 512, 1024, 2048, 4096)),
    "quick": dict(n_models=6, flops=1.0e11, chars=300_000, val_chars=12_000, n_evals=8, budget=0.5,
                  vocabs=(512, 1024)),
}


# --- candidates and their training, resumable ------------------------------------------------------------------


def candidates(size: dict, seed: int) -> list[dict]:
    """``n_models`` distinct shapes, drawn without replacement (seeded), each with its own model seed."""
    shapes = [(n, d, v) for n in range(SEARCH_SPACE["n_layers"].low, SEARCH_SPACE["n_layers"].high + 1)
              for d in SEARCH_SPACE["d_model"].choices for v in size["vocabs"]]
    pick = np.random.default_rng(seed).choice(len(shapes), size=size["n_models"], replace=False)
    return [{"n_layers": shapes[j][0], "d_model": shapes[j][1], "vocab_size": shapes[j][2], "seed": seed + k}
            for k, j in enumerate(sorted(pick))]


def planned_compute(config: dict, size: dict) -> float:
    """Compute of the candidate's whole run: its learning-rate schedule ends there (``Run.total_steps``)."""
    cfg = model_config(config)
    per_step = cfg.training_flops_per_token() * cfg.tokens_per_step
    return max(1, round(size["flops"] / per_step)) * per_step


def first_eval_compute(config: dict, size: dict) -> float:
    cfg = model_config(config)
    per_step = cfg.training_flops_per_token() * cfg.tokens_per_step
    steps = max(1, round(size["flops"] / per_step))
    return max(1, round(0.02 * steps)) * per_step  # Run's first evaluation, at 2 % of the run


@functools.lru_cache(maxsize=None)
def _corpus(chars: int, val_chars: int) -> Corpus:
    return Corpus.build(chars, val_chars)


@functools.lru_cache(maxsize=None)
def data_for(chars: int, val_chars: int, vocab: int) -> Encoded:
    """The corpus in one tokenizer's ids (cached per process: workers build their own once)."""
    corpus = _corpus(chars, val_chars)
    return encode(corpus, train_tokenizer(corpus.train_docs, vocab))


def new_run(config: dict, size: dict) -> Run:
    data = data_for(size["chars"], size["val_chars"], config["vocab_size"])
    return Run(model_config(config), data, size["flops"], size["n_evals"], config["seed"])


def save(run: Run) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": run.model.state_dict(), "opt": run.opt.state_dict(), "sched": run.sched.state_dict(),
                "gen": run.gen.get_state(), "step": run.step, "compute": run.compute, "loss": run.loss}, buf)
    return buf.getvalue()


def load(run: Run, path: str) -> None:
    try:
        # Tensors and plain containers only: a checkpoint file is data, and a pickle could run code.
        state = torch.load(path, weights_only=True)
        run.model.load_state_dict(state["model"])
        run.opt.load_state_dict(state["opt"])
        run.sched.load_state_dict(state["sched"])
        run.gen.set_state(state["gen"])
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, the driver restarts from scratch
        raise CheckpointError(f"{type(exc).__name__}: {exc}") from exc
    run.step, run.compute, run.loss = state["step"], list(state["compute"]), list(state["loss"])


def train_segment(config: dict, from_checkpoint: str | None, until_compute: float, *, size: dict):
    """The ``train_fn`` of budgeted halving: resume, train to ``until_compute``, evaluate on the way and where
    the segment ends, return the new evaluations and a checkpoint."""
    torch.set_num_threads(1)  # the same arithmetic in every process, so a resumed run repeats a paused one
    run = new_run(config, size)
    if from_checkpoint is not None:
        load(run, from_checkpoint)
    per_step = run.fpt * run.cfg.tokens_per_step
    target = min(run.total_steps, math.floor(until_compute / per_step * (1 + 1e-9)))
    seen = len(run.loss)
    for s in run.eval_steps:
        if run.step < s <= target:
            run.train_to(s)
            run.evaluate()
    if run.step < target:
        run.train_to(target)
        run.evaluate()  # the loss where the segment ends, for the round's decision
    return list(zip(run.compute[seen:], run.loss[seen:])), save(run)


# --- the three methods -----------------------------------------------------------------------------------------


def budgeted_halving(configs, size, budget, storage, artifact_store, workers, seed):
    t0 = time.perf_counter()
    sweep = sh_scaling.BudgetedHalving(
        configs, budget, max_compute=functools.partial(planned_compute, size=size),
        first_eval_compute=functools.partial(first_eval_compute, size=size), storage=storage,
        study_name="budgeted-sweep", artifact_store=artifact_store, seed=seed,
        # The exhaustive reference finishes every candidate from where budgeted halving left it, pruned ones too.
        keep_checkpoints="all")
    sweep.run(functools.partial(train_segment, size=size), n_workers=workers)
    curves = [_curve(t) for t in sweep.study_.trials]
    return dict(name="budgeted halving", sweep=sweep, curves=[c for c in curves if c is not None],
                spent=sweep.spent_, seconds=time.perf_counter() - t0,
                n_trained=sum(1 for t in sweep.study_.trials if segments(t)),
                n_pruned=sum(1 for t in sweep.study_.trials if t.state == TrialState.PRUNED))


def asynchronous_pruner(configs, size, budget):
    t0 = time.perf_counter()
    planned = [planned_compute(c, size) for c in configs]
    pruner = sh_scaling.SurrogateHalvingPruner("powerlaw", max_compute=lambda p: planned[p["candidate"]])
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(0))
    for i in range(len(configs)):
        study.enqueue_trial({"candidate": i})

    callback = sh_scaling.ComputeBudget(budget, max_compute=lambda p: planned[p["candidate"]])

    def objective(trial: optuna.Trial) -> float:
        i = trial.suggest_int("candidate", 0, len(configs) - 1)
        callback.reserve(trial)  # before training: pruned here if its planned compute would pass the budget
        run = new_run(configs[i], size)
        for s in run.eval_steps:
            run.train_to(s)
            sh_scaling.report(trial, run.evaluate(), compute=run.compute[-1], max_compute=planned[i])
            if trial.should_prune():
                raise optuna.TrialPruned()
        return run.loss[-1]

    study.optimize(objective, n_trials=len(configs), callbacks=[callback])
    started = [t for t in study.trials if t.state != TrialState.WAITING]
    curves = [_curve(t) for t in started]
    return dict(name="asynchronous pruner + ComputeBudget", study=study, curves=[c for c in curves if c is not None],
                spent=callback.status(study)["spent"], seconds=time.perf_counter() - t0, n_trained=len(started),
                n_pruned=sum(1 for t in started if t.state == TrialState.PRUNED))


def exhaustive(configs, size, sweep):
    """Every candidate to its end, each resumed from the checkpoint budgeted halving left it at."""
    t0 = time.perf_counter()
    store = sweep.artifact_store_
    curves = []
    with tempfile.TemporaryDirectory() as tmp:
        for t, config in zip(sweep.study_.trials, configs):
            run = new_run(config, size)
            done = [s for s in segments(t) if s["status"] == "done" and s.get("checkpoint")]
            if done:
                path = str(Path(tmp) / f"{t.number}.pt")
                optuna.artifacts.download_artifact(artifact_store=store, file_path=path,
                                                   artifact_id=done[-1]["checkpoint"])
                load(run, path)
            # Run.finish() counts evaluations to know where it is; the pauses added some, so go by step.
            for step in run.eval_steps:
                if step > run.step:
                    run.train_to(step)
                    run.evaluate()
            curves.append(Curve.from_arrays(t.number, run.compute, run.loss))
    spent = sum(c.final_compute for c in curves)
    return dict(name="exhaustive", curves=curves, spent=spent, n_trained=len(curves), n_pruned=0,
                seconds=time.perf_counter() - t0)


def _curve(trial) -> Curve | None:
    compute = reported_compute(trial)
    steps = [s for s in sorted(trial.intermediate_values) if s in compute]
    if not steps:
        return None
    return Curve.from_arrays(trial.number, [compute[s] for s in steps], [trial.intermediate_values[s] for s in steps])


def run_sweep(size: dict, seed: int = 0, storage=None, workers: int = 1, log=print) -> dict:
    t0 = time.perf_counter()
    configs = candidates(size, seed)
    planned = [planned_compute(c, size) for c in configs]
    budget = size["budget"] * sum(planned)
    for v in sorted({c["vocab_size"] for c in configs}):  # tokenizers first, so that no method is charged for them
        data_for(size["chars"], size["val_chars"], v)
    log(f"{len(configs)} candidates, {size['flops']:.3g} FLOPs each; budget {budget:.4g} FLOPs "
        f"({size['budget']:.0%} of exhaustive); data ready in {time.perf_counter() - t0:.0f} s")
    with tempfile.TemporaryDirectory(prefix="budgeted-sweep-") as tmp:
        # Without a storage of their own, the checkpoints live only as long as this run needs them; with one,
        # BudgetedHalving keeps them beside it, so that a restart can resume.
        store = None if storage is not None else optuna.artifacts.FileSystemArtifactStore(tmp)
        results = [budgeted_halving(configs, size, budget, storage, store, workers, seed)]
        log(f"  budgeted halving done in {results[0]['seconds']:.0f} s")
        results.append(asynchronous_pruner(configs, size, budget))
        log(f"  asynchronous pruner done in {results[1]['seconds']:.0f} s")
        results.append(exhaustive(configs, size, results[0]["sweep"]))
    results[2]["seconds"] += results[0]["seconds"]  # it continued where budgeted halving stopped
    log(f"  exhaustive reference done in {results[2]['seconds']:.0f} s (budgeted halving's time included)")
    exh = results[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # replicates whose refit fails are left out and counted on the law
        exh["law"] = fit_scaling_law(exh["curves"], n_grid=30, n_bootstrap=200, seed=seed)
        span = (exh["law"].c_min, exh["law"].c_max)
        for r in results[:2]:
            # Over the exhaustive frontier's range, so that the laws are comparable (a power law fitted to a
            # curved frontier has a range-dependent slope).
            r["law"] = fit_scaling_law(r["curves"], n_grid=30, n_bootstrap=200, seed=seed, compute_range=span)
    for r in results:
        r["best"] = min(c.min_loss for c in r["curves"])
        r["law_gap"] = area_between_laws(r["law"], exh["law"], *span) / math.log(span[1] / span[0])
    return dict(results=results, budget=budget, exhaustive=exh["spent"], planned=sum(planned), configs=configs,
                seconds_total=time.perf_counter() - t0)


def summary(res: dict) -> str:
    exh = res["results"][2]
    lines = [f"budget {res['budget']:.4g} FLOPs = {res['budget'] / res['exhaustive']:.0%} of exhaustive "
             f"({res['exhaustive']:.4g})"]
    for r in res["results"]:
        within = "" if r is exh else (" (within budget)" if r["spent"] <= res["budget"] else " (OVER BUDGET)")
        lines += [
            f"\n{r['name']}: {r['n_trained']} candidates trained, {r['n_pruned']} pruned",
            f"  compute: {r['spent']:.4g} FLOPs = {r['spent'] / res['exhaustive']:.1%} of exhaustive{within}",
            f"  best loss: {r['best']:.4f} bits/byte ({(r['best'] - exh['best']) / exh['best']:+.2%} vs exhaustive)",
            f"  law: {r['law']}",
            f"  mean |log-loss gap| to the exhaustive law over its range: {r['law_gap']:.4f}",
            f"  wall time: {r['seconds']:.0f} s",
        ]
    lines.append(f"\ntotal wall time {res['seconds_total']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 small candidates (CI): under 2 minutes")
    parser.add_argument("--models", type=int, help="number of candidates (overrides the size)")
    parser.add_argument("--budget", type=float, help="budget as a fraction of the exhaustive compute, in (0, 1]")
    parser.add_argument("--storage", type=Path, help="journal file for the budgeted study (restartable)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for budgeted halving")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = dict(SIZES["quick" if args.quick else "default"])
    if args.models is not None:
        if args.models < 2:
            parser.error(f"--models must be at least 2, got {args.models}")
        size["n_models"] = args.models
    if args.budget is not None:
        if not 0 < args.budget <= 1:
            parser.error(f"--budget must be in (0, 1], got {args.budget}")
        size["budget"] = args.budget
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    storage = None
    if args.storage is not None:
        from optuna.storages.journal import JournalFileBackend

        args.storage.parent.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(args.storage)))
    elif args.workers > 1:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
            str(Path(tempfile.mkdtemp(prefix="budgeted-sweep-")) / "sweep.journal")))
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    res = run_sweep(size, seed=args.seed, storage=storage, workers=args.workers)
    print()
    print(summary(res))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
