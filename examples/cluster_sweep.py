"""A budgeted sweep run by workers, as on a cluster: three "machines", one killed, one preempted and requeued.

    python examples/cluster_sweep.py --quick

Starts a budgeted halving sweep (``BudgetedHalving(...).start()``), then three ``sh-scaling work`` processes,
each in its own working directory, sharing nothing but the storage URL and the checkpoint folder: PostgreSQL
when ``SH_SCALING_TEST_POSTGRES_URL`` is set, else a journal file. While they train, it SIGKILLs one of them
in the middle of a segment (a lost machine) and sends another SIGTERM (a preemption: it finishes or puts back
its segment and exits 0), then starts that one again (the scheduler requeues it). At the end it prints the
ledger, each round's survivors next to the simulator's on the same curves, and the checks: budget kept, every
segment done exactly once, no trial left running, the checkpoint folder holding only the wanted checkpoints,
and how long the killed segment waited before another worker resumed it.

"Training" replays recorded curves (synthetic learning curves, a second per segment), so that the decisions
can be compared with the simulator's; a real sweep's ``train`` loads its checkpoint, trains to
``until_compute`` and saves (see ``examples/budgeted_sweep.py``). This file is also the workers' train module:
they run ``sh-scaling work --train cluster_sweep:train`` with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from functools import lru_cache
from typing import Any
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Seconds the whole demonstration may take before it gives up (and fails).
DEADLINE_S = 110.0


@lru_cache(maxsize=None)
def curves(n: int, seed: int):
    """The ``n`` recorded (synthetic) learning curves that ``train`` replays."""
    from sh_scaling.curves import generate_synthetic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(generate_synthetic(n, seed=seed))


def train(config, from_checkpoint, until_compute):
    """Replays candidate ``config["i"]``'s recorded curve from its checkpoint to ``until_compute``."""
    start = 0.0 if from_checkpoint is None else json.loads(Path(from_checkpoint).read_text())["until"]
    time.sleep(config["seconds"])  # a segment takes time, so the demonstration can stop workers in one
    seen = curves(config["n"], config["seed"])[config["i"]].observed_until(until_compute)
    points = [(float(c), float(y)) for c, y in zip(seen.compute, seen.loss) if c > start * (1 + 1e-9)]
    return points, json.dumps({"i": config["i"], "until": until_compute}).encode()


def shared_storage(root: Path) -> tuple[Any, str]:
    """(a storage for this process, the --storage the workers get): PostgreSQL when
    ``SH_SCALING_TEST_POSTGRES_URL`` is set, else a journal file in ``root``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    url = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
    if url:
        return url, url
    path = root / "sweep.journal"
    return optuna.storages.JournalStorage(JournalFileBackend(str(path))), str(path)


def start_worker(arg: str, study: str, artifacts: Path, machine: Path, *extra: str) -> subprocess.Popen:
    """``sh-scaling work`` on ``study`` in the working directory ``machine`` (its output appended to
    ``machine/worker.log``); ``extra``: more options of ``sh-scaling work``, e.g. ``--grace 1``."""
    machine.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    with open(machine / "worker.log", "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sh_scaling.cli", "work", "--storage", arg, "--study", study,
             "--train", "cluster_sweep:train", "--artifacts", str(artifacts), *extra],
            cwd=machine, env=env, stdout=log, stderr=subprocess.STDOUT)


def training(study, trials=None) -> dict[int, tuple[int, str]]:
    """{worker pid: (trial id, segment key)} for the segments being trained now, from the heartbeats of their
    attempts (a SIGKILLed worker's last heartbeat stays until its segment is taken back)."""
    from optuna.trial import TrialState

    from sh_scaling.budgeted import segments
    from sh_scaling.keys import BUDGETED_WORKER_KEY

    out = {}
    for t in trials if trials is not None else study.get_trials(deepcopy=False):
        seg = next((s for s in reversed(segments(t)) if s["status"] == "reserved"), None)
        if t.state != TrialState.RUNNING or seg is None:
            continue
        beat = study._storage.get_trial(seg["beat_trial"]).system_attrs.get(BUDGETED_WORKER_KEY) or {}
        if beat.get("state") == "running":
            out[int(beat["pid"])] = (t._trial_id, str(beat["key"]))
    return out


def outcome(study, result, curves, budget: float, artifacts: Path) -> dict:
    """What a finished sweep left, checked against the simulator on the same curves: ``book`` (the ledger),
    ``rounds`` (each round's survivors, ours and the simulator's), ``same`` (identical decisions and compute
    per candidate), ``budget_kept`` (ledger within the budget and equal to the compute the candidates were
    trained to), ``segments`` (every record), ``all_done``, ``deaths``, ``interruptions``, ``finished`` (no
    trial running or waiting), ``stored`` and ``wanted`` (checkpoint files in the folder, and the last
    checkpoint of each complete candidate)."""
    import numpy as np
    from optuna.trial import TrialState

    from sh_scaling.budgeted import ledger, segments
    from sh_scaling.simulation import allocate

    trials = sorted(study.get_trials(), key=lambda t: t.number)
    every = [s for t in trials for s in segments(t)]
    book = ledger(trials, budget)
    sim = allocate(curves, budget, "SH+FA", rng=np.random.default_rng(0))
    rounds = [([curves[i].id for i in mine], theirs) for mine, theirs in zip(result.survivors_, sim.survivors)]
    same = all(a == b for a, b in rounds) and len(result.survivors_) == len(sim.survivors)
    same &= bool(np.allclose(result.trained_, [sim.trained[c.id] for c in curves], rtol=1e-12, atol=0))
    wanted = set()
    for t in trials:
        done = [s for s in segments(t) if s["status"] == "done"]
        if t.state == TrialState.COMPLETE and done and done[-1].get("checkpoint"):
            wanted.add(done[-1]["checkpoint"])
    return {
        "trials": trials, "book": book, "rounds": rounds, "same": same, "segments": every,
        "budget_kept": book["total"] <= budget and abs(book["total"] - sum(result.trained_)) <= 1e-9 * budget,
        "all_done": all(s["status"] == "done" for s in every) and book["reserved"] == 0,
        "deaths": sum(int(s.get("deaths", 0)) for s in every),
        "interruptions": sum(int(s.get("interruptions", 0)) for s in every),
        "finished": all(t.state.is_finished() for t in trials),
        "stored": {p.name for p in artifacts.iterdir()}, "wanted": wanted,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 candidates (about a minute)")
    args = parser.parse_args(argv)
    import optuna

    import sh_scaling

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n, seconds = (8, 1.0) if args.quick else (16, 2.0)
    replayed = curves(n, 7)
    budget = 0.2 * sum(c.final_compute for c in replayed)
    root = Path(tempfile.mkdtemp(prefix="cluster-sweep-"))
    artifacts = root / "shared-checkpoints"
    artifacts.mkdir()
    storage, arg = shared_storage(root)
    study_name = f"cluster-{uuid.uuid4().hex[:8]}"
    configs = [{"n": n, "seed": 7, "i": i, "seconds": seconds} for i in range(n)]

    def sweep():
        return sh_scaling.BudgetedHalving(configs, budget, max_compute=lambda c: replayed[c["i"]].final_compute,
                                          storage=storage, study_name=study_name,
                                          artifact_store=optuna.artifacts.FileSystemArtifactStore(str(artifacts)))

    t0 = time.monotonic()
    study = optuna.load_study(study_name=study_name, storage=sweep().start().storage)
    print(f"sweep {study_name!r}: {n} candidates, budget {budget:.4g} (20% of exhaustive), storage "
          f"{'PostgreSQL' if arg.startswith('postgres') else 'journal file'}; 3 workers in {root}/machine-*")
    machines = [root / f"machine-{k}" for k in range(3)]
    procs = [start_worker(arg, study_name, artifacts, m) for m in machines]
    killed = preempted = None
    killed_trial, killed_at, resumed_after = None, 0.0, None
    deadline = time.monotonic() + DEADLINE_S
    try:
        while None in [p.poll() for p in procs]:  # polling every process reaps a killed one at once
            if time.monotonic() > deadline:
                raise SystemExit(f"the workers did not finish within {DEADLINE_S:g} s; logs in {root}")
            busy = training(study)
            if killed is None and procs[0].pid in busy:
                killed_trial = busy[procs[0].pid]
                procs[0].kill()
                killed, killed_at = procs[0].pid, time.monotonic()
                print(f"  {time.monotonic() - t0:5.1f} s: SIGKILL worker {killed} (machine-0) in a segment")
            elif killed is not None and preempted is None and procs[1].pid in busy:
                preempted = procs[1].pid
                procs[1].send_signal(signal.SIGTERM)
                code = procs[1].wait(60)
                print(f"  {time.monotonic() - t0:5.1f} s: SIGTERM worker {preempted} (machine-1): exit status "
                      f"{code}; requeued")
                procs[1] = start_worker(arg, study_name, artifacts, machines[1])
            if resumed_after is None and killed_trial is not None and any(
                    seg == killed_trial and pid != killed for pid, seg in busy.items()):
                resumed_after = time.monotonic() - killed_at
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    result = sweep().work(train)  # the sweep is finished: this returns its results at once
    elapsed = time.monotonic() - t0

    out = outcome(study, result, replayed, budget, artifacts)
    book = out["book"]
    print(f"\nledger: {book['total']:.6g} of {book['budget']:.6g} ({book['total'] / budget:.1%}) in "
          f"{book['segments']} segments; retries {book['retries']}, restarts {book['restarts']}")
    print("round  workers' survivors                         simulator's")
    for r, (mine, theirs) in enumerate(out["rounds"]):
        print(f"{r:5d}  {' '.join(mine):42s} {' '.join(theirs)}")
    checks = {
        "budget kept (ledger = compute trained, within the budget)": out["budget_kept"],
        "every segment done exactly once (one retry: the killed one)":
            out["all_done"] and out["deaths"] == book["retries"] <= 1,
        "no trial left running or waiting": out["finished"],
        "decisions equal to the simulator's": out["same"],
        f"checkpoint folder = wanted checkpoints only ({len(out['stored'])} files)": out["stored"] == out["wanted"],
        "one worker killed, one preempted and requeued": killed is not None and preempted is not None,
    }
    print()
    for what, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if resumed_after is not None:
        print(f"  the killed segment was resumed by another worker {resumed_after:.1f} s after the kill")
    print(f"done in {elapsed:.0f} s")
    if arg.startswith("postgres"):
        for name in (study_name, f"{study_name}:driver", f"{study_name}:attempts"):
            optuna.delete_study(study_name=name, storage=arg)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
