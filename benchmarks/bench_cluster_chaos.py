"""A budgeted sweep worked by 3 "machines" x 2 workers under random SIGKILLs and SIGTERMs, then checked.

    python benchmarks/bench_cluster_chaos.py                 # 20 rounds of kills; PostgreSQL if configured
    python benchmarks/bench_cluster_chaos.py --rounds 2      # a short run (under 2 minutes)

Starts a budgeted halving sweep on PostgreSQL when ``SH_SCALING_TEST_POSTGRES_URL`` is set, else on a journal
file, and six ``sh-scaling work`` processes: two in each of three working directories ("machines") that share
nothing but the storage URL and the checkpoint folder. Training replays recorded curves (the train function
and helpers of ``examples/cluster_sweep.py``: each segment sleeps ``--seconds``, then returns the curve's
points), so that the decisions can be compared with the simulator's. While the sweep runs, every 0.5-1.5 s
(seeded) one round of chaos picks a random worker among those that are up (seen training a segment since they
started: a worker still starting has not yet installed its SIGTERM handler), in a segment or idle, and sends it
SIGKILL or SIGTERM at random (the workers run with ``--grace`` seconds to finish a segment after SIGTERM);
once the worker has exited it is started again in the same directory, as a Slurm requeue would.

At the end it prints the rounds and a table of checks:

* the budget was never overdrawn: the ledger, read at every poll of the storage (every 0.2 s) and at the
  end, never passed the budget, and at the end it equals the compute the candidates were trained to;
* every segment was done exactly once: every record is done, one per candidate and round, every retry was
  caused by a death of its worker, no candidate failed, and each candidate's reported points are exactly its
  replayed curve up to the compute it was trained to (no point lost, none reported twice);
* the decisions (survivors of every round, compute of every candidate) equal the simulator's;
* no trial is left RUNNING (or WAITING) in the sweep's study, nor in its companion ``<name>:driver``;
* the checkpoint folder holds the wanted checkpoints only (the last of each complete candidate);
* every worker that was sent SIGTERM exited 0, and every worker not signalled exited 0 at the end;

and the time from each signal to its segment being given back (the trial no longer held by the signalled
worker: taken back from a dead one, put back or finished by a preempted one) and to another worker training
that segment again, which also waits for a worker to be free (median and max, SIGKILL and SIGTERM apart). All
workers run on this one machine, so a killed worker's segment is taken back as soon as its process is seen
gone, not after the 60 s heartbeat grace that applies across machines. Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from cluster_sweep import curves, outcome, shared_storage, start_worker, train, training  # noqa: E402

MACHINES, PER_MACHINE = 3, 2
POLL_S = 0.2


def _reported(trial) -> list[tuple[float, float]]:
    from sh_scaling.pruning import reported_compute

    computes = reported_compute(trial)
    return [(float(computes.get(step, float("nan"))), float(loss))
            for step, loss in sorted(trial.intermediate_values.items())]


def _same_points(got: list[tuple[float, float]], want: list[tuple[float, float]]) -> bool:
    return len(got) == len(want) and all(
        abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1e-300) for g, w in zip(got, want) for a, b in zip(g, w))


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s / {max(values):.2f} s" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of SIGKILL/SIGTERM (default 20)")
    parser.add_argument("--candidates", type=int, default=16, help="candidates of the sweep (default 16)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds one segment trains (default 2)")
    parser.add_argument("--grace", type=float, default=1.0,
                        help="the workers' --grace: seconds a segment may finish after SIGTERM (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chaos (default 0)")
    parser.add_argument("--deadline", type=float, default=900.0,
                        help="seconds the whole run may take before it gives up (default 900)")
    args = parser.parse_args(argv)
    if args.rounds < 0 or args.candidates < 2 or args.seconds <= 0 or args.grace < 0:
        parser.error("--rounds >= 0, --candidates >= 2, --seconds > 0 and --grace >= 0 are needed")

    import optuna
    from optuna.trial import TrialState

    import sh_scaling
    from sh_scaling.budgeted import ledger, segments
    from sh_scaling.budgeted._driver import MAX_DEATHS, MAX_DEATHS_WITHOUT_PROGRESS
    from sh_scaling.keys import BUDGETED_FAILED_KEY

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n, seed = args.candidates, 7
    replayed = curves(n, seed)
    budget = 0.2 * sum(c.final_compute for c in replayed)
    root = Path(tempfile.mkdtemp(prefix="cluster-chaos-"))
    artifacts = root / "shared-checkpoints"
    artifacts.mkdir()
    storage, arg = shared_storage(root)
    kind = "PostgreSQL" if arg.startswith("postgres") else "journal file"
    study_name = f"chaos-{uuid.uuid4().hex[:8]}"
    configs = [{"n": n, "seed": seed, "i": i, "seconds": args.seconds} for i in range(n)]

    def sweep():
        return sh_scaling.BudgetedHalving(configs, budget, max_compute=lambda c: replayed[c["i"]].final_compute,
                                          storage=storage, study_name=study_name,
                                          artifact_store=optuna.artifacts.FileSystemArtifactStore(str(artifacts)))

    rng = random.Random(args.seed)
    t0 = time.monotonic()
    study = optuna.load_study(study_name=study_name, storage=sweep().start().storage)
    print(f"sweep {study_name!r}: {n} candidates, budget {budget:.4g} (20% of exhaustive), {kind}; "
          f"{MACHINES} machines x {PER_MACHINE} workers in {root}/machine-*; {args.rounds} rounds of chaos")
    machines = [root / f"machine-{k // PER_MACHINE}" for k in range(MACHINES * PER_MACHINE)]
    extra = ("--grace", f"{args.grace:g}")
    procs = [start_worker(arg, study_name, artifacts, m, *extra) for m in machines]
    events: list[dict] = []
    requeue: dict[int, dict] = {}  # slot -> its event, while the signalled worker has not exited yet
    own_exits: dict[int, int] = {}  # slot -> exit status of a worker that stopped by itself
    up_pids: set[int] = set()  # workers seen training a segment: they are up (their SIGTERM handler is installed)
    most_ledger = 0.0
    next_at = time.monotonic() + rng.uniform(0.5, 1.5)
    deadline = t0 + args.deadline
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                raise SystemExit(f"the workers did not finish within {args.deadline:g} s; logs in {root}")
            for k, p in enumerate(procs):  # polling every process reaps a killed one at once
                code = p.poll()
                if code is None or k in own_exits:
                    continue
                if k in requeue:
                    ev = requeue.pop(k)
                    ev["exit"], ev["exited_after"] = code, now - ev["t"]
                    procs[k] = start_worker(arg, study_name, artifacts, machines[k], *extra)
                else:
                    own_exits[k] = code
            if len(own_exits) == len(procs):
                break
            trials = study.get_trials(deepcopy=False)
            most_ledger = max(most_ledger, ledger(trials, budget)["total"])
            busy = training(study, trials)
            up_pids.update(busy)
            for ev in events:
                held = busy.get(ev["pid"])
                if ev["segment"] is not None and ev["released_after"] is None and held != ev["segment"]:
                    ev["released_after"] = now - ev["t"]
                if ev["segment"] is not None and ev["resumed_after"] is None and any(
                        seg == ev["segment"] and pid != ev["pid"] for pid, seg in busy.items()):
                    ev["resumed_after"] = now - ev["t"]
            if len(events) < args.rounds and not own_exits and now >= next_at:
                up = [k for k, p in enumerate(procs) if p.poll() is None and k not in requeue and p.pid in up_pids]
                if up:
                    k = rng.choice(up)
                    sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
                    pid = procs[k].pid
                    procs[k].send_signal(sig)
                    ev = {"round": len(events), "t": time.monotonic(), "signal": sig.name, "slot": k, "pid": pid,
                          "segment": busy.get(pid), "released_after": None, "resumed_after": None, "exit": None}
                    events.append(ev)
                    requeue[k] = ev
                    where = f"in segment {ev['segment'][1]} of trial {ev['segment'][0]}" if ev["segment"] else "idle"
                    print(f"  {ev['t'] - t0:6.1f} s  round {ev['round']:2d}: {sig.name} worker {pid} "
                          f"({machines[k].name}) {where}")
                    next_at = now + rng.uniform(0.5, 1.5)
            time.sleep(POLL_S)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    result = sweep().work(train)  # the sweep is finished: this returns its results at once
    elapsed = time.monotonic() - t0

    out = outcome(study, result, replayed, budget, artifacts)
    book, trials = out["book"], out["trials"]
    most_ledger = max(most_ledger, book["total"])
    driver = optuna.load_study(study_name=f"{study_name}:driver", storage=storage).get_trials(deepcopy=False)
    rounds_once = all(len({s["round"] for s in segments(t)}) == len(segments(t)) for t in trials)
    # Each candidate's reported points are its replayed curve up to the compute it was trained to; a failed
    # candidate's may go on into its failed segment (a worker killed while it reported them), as a prefix.
    bad_points = []
    for i, t in enumerate(trials):
        got = _reported(t)
        top = max([result.trained_[i], *(float(s["until"]) for s in segments(t) if s["status"] == "failed")])
        full = replayed[i].observed_until(top)
        want = [(float(c), float(y)) for c, y in zip(full.compute, full.loss)]
        least = len(replayed[i].observed_until(result.trained_[i]).compute)
        if t.state == TrialState.FAIL:
            ok = least <= len(got) <= len(want) and _same_points(got, want[:len(got)])
        else:
            ok = _same_points(got, want)
        if not ok:
            bad_points.append(f"trial {t.number} ({t.state.name}): {len(got)} reported, {least} expected")
    points_ok = not bad_points
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    for ev in events:
        if ev["segment"] is None or ev["resumed_after"] is not None:
            continue
        tid, key = ev["segment"]
        rec = next(dict(t.system_attrs[key]) for t in trials if t._trial_id == tid)
        ev["done"] = rec.get("status") == "done"
        ev["failed"] = rec.get("status") == "failed"
        ev["finished_by_itself"] = ev["done"] and rec.get("worker") == ev["pid"]
    kills = [ev for ev in events if ev["signal"] == "SIGKILL"]
    terms = [ev for ev in events if ev["signal"] == "SIGTERM"]
    lost = [ev["round"] for ev in events
            if ev["segment"] is not None and ev["resumed_after"] is None and not ev.get("done")
            and not ev.get("failed")]
    gave_up_rounds = [ev["round"] for ev in events if ev.get("failed")]
    unseen = [ev["round"] for ev in events if ev.get("done") and not ev["finished_by_itself"]]

    print(f"\nledger: {book['total']:.6g} of {budget:.6g} ({book['total'] / budget:.1%}) in {book['segments']} "
          f"segments; retries {book['retries']}, deaths {out['deaths']}, interruptions {out['interruptions']}, "
          f"restarts from scratch {book['restarts']}; {elapsed:.0f} s")
    width = max(len(" ".join(mine)) for mine, _ in out["rounds"])
    label = "workers' survivors"
    print(f"round  {label:{width}s}  simulator's")
    for r, (mine, theirs) in enumerate(out["rounds"]):
        print(f"{r:5d}  {' '.join(mine):{width}s}  {' '.join(theirs)}")
    lost_grants = [s for s in out["segments"] if s["status"] == "failed"]
    gave_up = sum(int(s.get("deaths_in_a_row", 0)) >= MAX_DEATHS_WITHOUT_PROGRESS
                  or int(s.get("deaths", 0)) >= MAX_DEATHS for s in lost_grants)
    in_a_row = max([int(s.get("deaths_in_a_row", 0)) for s in out["segments"]], default=0)
    # The share of attempts (not put back after SIGTERM) whose worker died, per round: under random kills, n
    # deaths in a row of one segment happen with about this probability to the n-th power.
    killed = []
    for r in range(len(out["rounds"])):
        segs = [s for s in out["segments"] if s["round"] == r]
        dead = sum(int(s.get("deaths", 0)) for s in segs)
        killed.append(f"{dead}/{len(segs) + dead}")
    most_deaths = max([int(s.get("deaths", 0)) for s in out["segments"]], default=0)
    charged = math.fsum([*result.trained_, *(float(s["charge"]) for s in lost_grants)])
    why_failed = "; ".join(f"trial {t.number}: {t.system_attrs.get(BUDGETED_FAILED_KEY, {}).get('reason')}"
                           for t in trials if t.state == TrialState.FAIL)
    checks = [
        ("budget never overdrawn", most_ledger <= budget and abs(book["total"] - charged) <= 1e-9 * budget,
         f"largest ledger seen {most_ledger:.6g} <= budget {budget:.6g}; at the end {book['total']:.6g} = compute "
         f"trained {sum(result.trained_):.6g} + grants of failed segments "
         f"{math.fsum(float(s['charge']) for s in lost_grants):.6g}"),
        ("every segment done exactly once",
         all(s["status"] == "done" for s in out["segments"] if s not in lost_grants) and book["reserved"] == 0
         and rounds_once and out["deaths"] - gave_up == book["retries"] and points_ok,
         f"{book['segments'] - len(lost_grants)} segments done once, {len(lost_grants)} failed; {book['retries']} "
         f"retries = {out['deaths']} worker deaths - {gave_up} given up; reported points = replayed curves: "
         f"{'yes' if points_ok else 'NO: ' + '; '.join(bad_points)}"),
        (f"no candidate failed ({MAX_DEATHS_WITHOUT_PROGRESS} deaths in a row without progress fail it)",
         not failed, (why_failed or "none") + f"; most deaths of one segment's worker: {most_deaths}, "
         f"{in_a_row} in a row without progress; attempts whose worker died, per round: {', '.join(killed)}"),
        ("decisions equal to the simulator's", out["same"],
         f"{len(out['rounds'])} rounds, survivors and compute of all {n} candidates"),
        ("no trial left RUNNING", out["finished"] and all(t.state != TrialState.RUNNING for t in driver),
         f"{len(trials)} trials: " + ", ".join(f"{sum(t.state == s for t in trials)} {s.name}"
                                               for s in TrialState if any(t.state == s for t in trials))),
        ("checkpoint folder = wanted checkpoints only", out["stored"] == out["wanted"],
         f"{len(out['stored'])} files ({sum(p.stat().st_size for p in artifacts.iterdir())} bytes), "
         f"{len(out['wanted'])} wanted"),
        ("workers exited 0", all(ev["exit"] == 0 for ev in terms) and all(c == 0 for c in own_exits.values()),
         f"SIGTERM: {sum(ev['exit'] == 0 for ev in terms)} of {len(terms)} exited 0; at the end "
         f"{sum(c == 0 for c in own_exits.values())} of {len(own_exits)}"),
        (f"{args.rounds} rounds of chaos", len(events) == args.rounds,
         f"{len(kills)} SIGKILL ({sum(ev['segment'] is not None for ev in kills)} in a segment), "
         f"{len(terms)} SIGTERM ({sum(ev['segment'] is not None for ev in terms)} in a segment)"),
        ("every interrupted segment resumed or finished", not lost,
         f"SIGTERM segments finished within the grace: {sum(bool(ev.get('finished_by_itself')) for ev in terms)}"
         + (f"; done by another worker between two polls: rounds {unseen}" if unseen else "")
         + (f"; candidate failed instead: rounds {gave_up_rounds}" if gave_up_rounds else "")
         + (f"; never resumed: rounds {lost}" if lost else "")),
    ]
    print("\n| check | result | measured |\n|---|---|---|")
    for what, ok, detail in checks:
        print(f"| {what} | {'ok' if ok else 'FAIL'} | {detail} |")
    kill_s = [ev["resumed_after"] for ev in kills if ev["resumed_after"] is not None]
    term_s = [ev["resumed_after"] for ev in terms if ev["resumed_after"] is not None]
    kill_r = [ev["released_after"] for ev in kills if ev["released_after"] is not None]
    term_r = [ev["released_after"] for ev in terms if ev["released_after"] is not None]
    print(f"| kill to the segment given back, SIGKILL (median / max) | | {_ms(kill_r)} ({len(kill_r)} segments) |")
    print(f"| kill to the segment given back, SIGTERM (median / max) | | {_ms(term_r)} ({len(term_r)} segments) |")
    print(f"| kill to resumption, SIGKILL (median / max) | | {_ms(kill_s)} ({len(kill_s)} segments) |")
    print(f"| kill to resumption, SIGTERM (median / max) | | {_ms(term_s)} ({len(term_s)} segments put back) |")
    passed = all(ok for _, ok, _ in checks)
    if arg.startswith("postgres") and passed:
        for name in (study_name, f"{study_name}:driver", f"{study_name}:attempts"):
            optuna.delete_study(study_name=name, storage=arg)
    elif not passed:
        print(f"kept for inspection: study {study_name!r} in {kind}, worker logs and checkpoints in {root}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
