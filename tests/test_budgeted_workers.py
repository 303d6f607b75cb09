"""Budgeted sweeps run by workers (``BudgetedHalving.work``, ``sh-scaling work``), with no driver."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import _workers_train
from sh_scaling.budgeted import BudgetedHalving, CheckpointError, ledger, segments
from sh_scaling.budgeted._segment import SegmentTask
from sh_scaling.keys import BUDGETED_WORKER_ERRORS_KEY
from sh_scaling.schedules import Cosine
from sh_scaling.simulation import STRATEGIES, allocate

optuna.logging.set_verbosity(optuna.logging.ERROR)

DEADLINE_S = 240
POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
TESTS = Path(__file__).resolve().parent
N, SEED = 8, 7


def _journal(path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _sweep(storage, tmp_path, *, kill=None, sleep=0.2, budget_fraction=0.2, study_name="w",
           **kw) -> BudgetedHalving:
    curves = _workers_train.curves(N, SEED)
    configs = [{"n": N, "seed": SEED, "i": i, "kill": kill, "sleep": sleep} for i in range(N)]
    return BudgetedHalving(configs, budget_fraction * sum(c.final_compute for c in curves),
                           max_compute=lambda c: curves[c["i"]].final_compute, storage=storage, study_name=study_name,
                           artifact_store=optuna.artifacts.FileSystemArtifactStore(str(tmp_path / "checkpoints")),
                           **kw)


def _same_as_simulator(sweep) -> None:
    curves = _workers_train.curves(N, SEED)
    sim = allocate(curves, sweep.budget, "SH+FA", rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-12)
    assert sweep.spent_ == pytest.approx(sim.spent, rel=1e-12) and sweep.spent_ <= sweep.budget
    assert sweep.best_loss_ == sim.best_loss


def _beat_trial(storage, trial_id):
    """The heartbeat trial of a candidate's segment in progress (its last one reserved, else its last one)."""
    segs = segments(storage.get_trial(trial_id))
    seg = next((s for s in reversed(segs) if s["status"] == "reserved"), segs[-1])
    return storage.get_trial(seg["beat_trial"])


def _beat(storage, trial_id) -> dict:
    """The last heartbeat of the worker of a candidate's segment in progress."""
    from sh_scaling.keys import BUDGETED_WORKER_KEY

    return _beat_trial(storage, trial_id).system_attrs.get(BUDGETED_WORKER_KEY) or {}


def _setup(tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    log = tmp_path / "calls"
    log.mkdir()
    monkeypatch.setenv("SH_SCALING_TEST_WORKERS_LOG", str(log))
    return log


def test_one_worker_in_this_process_makes_the_simulators_decisions(tmp_path, monkeypatch):
    _setup(tmp_path, monkeypatch)
    sweep = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0).work(_workers_train.train)
    _same_as_simulator(sweep)
    states = {t.state for t in sweep.study_.get_trials()}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED}
    # The same sweep from the stored settings alone, as `sh-scaling work` builds it, is finished: it returns.
    again = BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w", artifact_store=sweep.artifact_store_)
    assert again.work(_workers_train.train).survivors_ == sweep.survivors_


def test_workers_forecast_under_the_schedules_stored_in_the_plan(tmp_path, monkeypatch):
    """A schedule-aware sweep run by workers: its candidates' schedules are in the plan, so a worker that knows
    only where the sweep is (``join``, as ``sh-scaling work``) decides with them, and a restart with other
    schedules is refused."""
    _setup(tmp_path, monkeypatch)
    curves = _workers_train.curves(N, SEED)
    strategy = dataclasses.replace(STRATEGIES["SH+MPL"], unseen="reach")
    sweep = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0, strategy=strategy,
                   schedule=lambda c: curves[c["i"]].meta["schedule"]).work(_workers_train.train)
    sim = allocate(curves, sweep.budget, strategy, rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    again = BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w", artifact_store=sweep.artifact_store_)
    assert [again.schedule(c) for c in again.candidates] == [c.meta["schedule"].to_dict() for c in curves]
    assert again.work(_workers_train.train).survivors_ == sweep.survivors_
    with pytest.raises(ValueError, match="schedules differ"):
        _sweep(_journal(tmp_path / "w.journal"), tmp_path, strategy=strategy, schedule=Cosine()).start()


def _worker_cmd(journal, tmp_path, *extra, study="w"):
    return [sys.executable, "-m", "sh_scaling.cli", "work", "--storage", str(journal), "--study", study,
            "--train", "_workers_train:train", "--artifacts", str(tmp_path / "checkpoints"), *extra]


def _start_workers(journal, tmp_path, n, *extra, study="w"):
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    procs = []
    for k in range(n):
        cwd = tmp_path / f"machine-{k}"  # nothing shared but the storage and the artifact folder
        cwd.mkdir(exist_ok=True)
        # Output to files: a pipe nobody reads while the workers run would fill up and block them.
        with open(cwd / "out.txt", "w") as out:
            proc = subprocess.Popen(_worker_cmd(journal, tmp_path, *extra, study=study), cwd=cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        proc.out = cwd / "out.txt"  # type: ignore[attr-defined]
        procs.append(proc)
    return procs


def _wait_all(procs):
    deadline = time.monotonic() + DEADLINE_S
    try:
        # Poll every process each time (no short cut): polling reaps a killed worker at once, so the others see
        # that its process is gone.
        while None in [p.poll() for p in procs] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.wait(10), p.out.read_text()[-3000:]) for p in procs]


@pytest.fixture(params=["journal file", pytest.param("PostgreSQL", marks=pytest.mark.postgres)])
def shared_storage(request, tmp_path):
    """(a storage for this process, the --storage of the workers, the study name)."""
    if request.param == "journal file":
        yield (lambda: _journal(tmp_path / "w.journal")), str(tmp_path / "w.journal"), "w"
        return
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name = f"workers-{uuid.uuid4().hex[:8]}"
    yield (lambda: POSTGRES_URL), POSTGRES_URL, name
    for study in (name, f"{name}:driver", f"{name}:attempts"):
        try:
            optuna.delete_study(study_name=study, storage=POSTGRES_URL)
        except KeyError:
            pass


def test_three_worker_processes_one_killed_make_the_simulators_decisions(tmp_path, monkeypatch, shared_storage):
    log = _setup(tmp_path, monkeypatch)
    storage, arg, name = shared_storage
    kill = 1
    # Any process starts the sweep; workers join it knowing only the storage, the study and the artifacts.
    _sweep(storage(), tmp_path, kill=kill, study_name=name).start()
    results = _wait_all(_start_workers(arg, tmp_path, 3, study=name))
    codes = [r[0] for r in results]
    assert sorted(codes) == [-signal.SIGKILL, 0, 0], results
    assert (log / "killed").exists()
    sweep = _sweep(storage(), tmp_path, kill=kill, study_name=name).work(_workers_train.train)  # finished
    _same_as_simulator(sweep)
    trials = sorted(sweep.study_.get_trials(), key=lambda t: t.number)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    every = [s for t in trials for s in segments(t)]
    assert every and all(s["status"] == "done" for s in every)
    book = ledger(trials, sweep.budget)
    assert book["total"] == pytest.approx(sum(sweep.trained_), rel=1e-12) and book["reserved"] == 0
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    died = [s for s in every if s.get("deaths")]
    # The segment whose worker was killed was taken back and trained once more; every other one once.
    assert len(died) == 1 and died[0]["attempts"] == 2 and book["retries"] == 1
    assert died[0]["notes"] == [f"attempt 1: worker process {(log / 'killed').read_text()} on "
                                f"{socket.gethostname()} is gone; died without progress (1 in a row)"]
    # (seen at once, not after the grace)
    assert len(calls) == len(every) + 1
    assert len({c["pid"] for c in calls}) >= 2  # segments really ran in several processes
    # Every round but the last was decided exactly once, whichever worker finished its last segment.
    decided = sorted(int(p.name.split("-")[1]) for p in log.glob("decide-*"))
    assert decided == list(range(len(sweep.survivors_) - 1))


def test_a_worker_that_cannot_import_train_fn_says_so_and_claims_nothing(tmp_path, monkeypatch):
    _setup(tmp_path, monkeypatch)
    journal = tmp_path / "w.journal"
    _sweep(_journal(journal), tmp_path).start()
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    cmd = _worker_cmd(journal, tmp_path)
    cmd[cmd.index("_workers_train:train")] = "no_such_module_here:train"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=DEADLINE_S)
    assert out.returncode == 2 and "cannot import train function 'no_such_module_here:train'" in out.stderr
    assert "ModuleNotFoundError" in out.stderr
    study = optuna.load_study(study_name="w", storage=_journal(journal))
    errors = study._storage.get_study_system_attrs(study._study_id)[BUDGETED_WORKER_ERRORS_KEY]
    assert "no_such_module_here" in errors[-1]["error"]
    assert all(t.state == TrialState.WAITING and not segments(t) for t in study.get_trials())


def test_a_worker_that_cannot_reach_its_storage_says_which(tmp_path):
    url = f"sqlite:///{tmp_path}/no-such-folder/s.db"
    cmd = [sys.executable, "-m", "sh_scaling.cli", "work", "--storage", url, "--study", "w",
           "--train", "_workers_train:train"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE_S)
    assert out.returncode == 2 and "cannot reach storage" in out.stderr and "no-such-folder" in out.stderr
    missing = subprocess.run(cmd[:5] + [str(tmp_path / "none.journal")] + cmd[6:], capture_output=True, text=True,
                             timeout=DEADLINE_S)
    assert missing.returncode == 2 and "no such journal file" in missing.stderr


def test_a_sweep_started_for_workers_refuses_other_settings_and_a_driver(tmp_path, monkeypatch):
    _setup(tmp_path, monkeypatch)
    storage = _journal(tmp_path / "w.journal")
    _sweep(storage, tmp_path).start()
    _sweep(storage, tmp_path).start()  # the same settings join
    with pytest.raises(ValueError, match="budget.* differ"):
        _sweep(storage, tmp_path, budget_fraction=0.3).start()
    with pytest.raises(ValueError, match="by workers"):
        _sweep(storage, tmp_path).run(_workers_train.train)


@pytest.mark.parametrize("grace", [None, "0.2"], ids=["train_fn returns in the grace", "train_fn outlasts it"])
def test_a_worker_told_to_stop_finishes_or_puts_its_segment_back_and_exits_0(tmp_path, monkeypatch, grace):
    log = _setup(tmp_path, monkeypatch)
    journal = tmp_path / "w.journal"
    _sweep(_journal(journal), tmp_path, sleep=1.5).start()
    stopped, other = _start_workers(journal, tmp_path, 2, *([] if grace is None else ["--grace", grace]))
    deadline = time.monotonic() + DEADLINE_S
    while not any(json.loads(p.read_text())["pid"] == stopped.pid for p in log.glob("call-*.json")):
        assert time.monotonic() < deadline and stopped.poll() is None
        time.sleep(0.05)
    stopped.send_signal(signal.SIGTERM)  # while its train_fn runs
    (code, out), (other_code, _) = _wait_all([stopped, other])
    assert code == 0 and "stopped by SIGTERM" in out, out
    assert other_code == 0
    sweep = _sweep(_journal(journal), tmp_path, sleep=1.5).work(_workers_train.train)  # finished: returns
    _same_as_simulator(sweep)
    every = [s for t in sweep.study_.get_trials() for s in segments(t)]
    assert all(s["status"] == "done" for s in every)
    assert not any(s.get("deaths") for s in every) and all(s["attempts"] == 1 for s in every)
    stops = [s for s in every if s.get("interruptions")]
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    if grace is None:  # the segment was finished and recorded by the worker told to stop
        assert not stops and len(calls) == len(every)
    else:  # put back, trained again by the other worker, charged once
        assert len(stops) == 1 and stops[0]["interruptions"] == 1 and len(calls) == len(every) + 1
    assert ledger(sweep.study_.get_trials(), sweep.budget)["total"] == pytest.approx(sum(sweep.trained_), rel=1e-12)


def _checkpoint_once(config, from_checkpoint, until):
    """The first resumed segment of candidate 0 cannot load its checkpoint."""
    marker = Path(os.environ["SH_SCALING_TEST_WORKERS_LOG"]) / "refused"
    if config["i"] == 0 and from_checkpoint is not None and not marker.exists():
        marker.write_text("")
        raise CheckpointError("corrupt")
    return _workers_train.train(config, from_checkpoint, until)


def test_a_worker_that_cannot_load_a_checkpoint_restarts_the_segment_from_scratch(tmp_path, monkeypatch):
    log = _setup(tmp_path, monkeypatch)
    sweep = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0, budget_fraction=0.5)
    sweep.work(_checkpoint_once)
    assert (log / "refused").exists()
    trials = sweep.study_.get_trials()
    assert all(t.state.is_finished() for t in trials)
    every = [s for t in trials for s in segments(t)]
    assert all(s["status"] == "done" for s in every)
    book = ledger(trials, sweep.budget)
    assert book["restarts"] == 1 and book["total"] <= sweep.budget
    restarted = [s for s in segments(trials[0]) if s.get("from_scratch")]
    assert len(restarted) == 1 and restarted[0]["attempts"] == 2
    assert any("could not be loaded" in n for n in restarted[0]["notes"])


def _die_in_first_segment(config, from_checkpoint, until):
    os.kill(os.getpid(), signal.SIGKILL)


def _work_and_die(journal, tmp_path) -> None:
    _sweep(_journal(journal), tmp_path, sleep=0.0).work(_die_in_first_segment)


def test_a_segment_just_claimed_again_is_not_taken_back_on_its_dead_workers_heartbeat(tmp_path, monkeypatch):
    import multiprocessing

    from sh_scaling.budgeted._workers import Watch

    _setup(tmp_path, monkeypatch)
    journal = tmp_path / "w.journal"
    dead = multiprocessing.get_context("fork").Process(target=_work_and_die, args=(journal, tmp_path))
    dead.start()
    dead.join(DEADLINE_S)
    assert dead.exitcode == -signal.SIGKILL  # it left its segment's trial RUNNING with its heartbeat
    sweep = _sweep(_journal(journal), tmp_path, sleep=0.0)
    ctx = sweep._start()
    storage = ctx.study._storage
    (held,) = [t for t in sweep._trials(ctx) if t.state == TrialState.RUNNING]
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))  # another worker takes the segment back
    taken = storage.get_trial(held._trial_id)
    assert taken.state == TrialState.WAITING and segments(taken)[0]["attempts"] == 2
    assert storage.get_trial(segments(held)[0]["beat_trial"]).state == TrialState.FAIL
    # A worker claims it again: RUNNING first, its own heartbeat a moment later. A third worker that looks in
    # between must not take the segment back from it on the dead worker's heartbeat.
    assert storage.set_trial_state_values(held._trial_id, TrialState.RUNNING)
    assert sweep._scan(ctx, Watch())[0] != "close"
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))
    again = storage.get_trial(held._trial_id)
    assert again.state == TrialState.RUNNING and segments(again)[0]["attempts"] == 2
    assert _beat(storage, held._trial_id) == {}  # the next attempt's heartbeat is its own, not the dead one's


def test_a_worker_writes_its_idle_heartbeat_only_while_it_holds_the_trial(tmp_path, monkeypatch):
    from sh_scaling.budgeted._segment import SegmentTask, run_segment
    from sh_scaling.budgeted._workers import SegmentBeat, Watch
    from sh_scaling.keys import budgeted_segment_key

    _setup(tmp_path, monkeypatch)
    sweep = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0)
    ctx = sweep._start()
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))  # grants the first round
    storage = ctx.study._storage
    first, second = sweep._trials(ctx)[:2]
    tasks = [SegmentTask(t._trial_id, budgeted_segment_key(0), 1) for t in (first, second)]
    # A worker that trains a segment finishes its heartbeat before it gives the trial back, not after: by then
    # another worker may hold the trial.
    seen = []

    def release() -> None:
        seen.append(storage.get_trial(first._trial_id).state)
        beat.stop()

    beat = SegmentBeat(storage, tasks[0])
    assert run_segment(ctx.study, ctx.store, _workers_train.train, tasks[0], on_claim=beat.start,
                       on_release=release)["status"] == "done"
    assert seen == [TrialState.RUNNING]
    assert _beat_trial(storage, first._trial_id).state == TrialState.COMPLETE
    # A worker that lost the race for a trial writes nothing into it: the winner's heartbeat stands.
    assert storage.set_trial_state_values(second._trial_id, TrialState.RUNNING)
    winner = SegmentBeat(storage, tasks[1])
    winner.start()
    loser = SegmentBeat(storage, tasks[1])
    try:
        out = run_segment(ctx.study, ctx.store, _workers_train.train, tasks[1], on_claim=loser.start,
                          on_release=loser.stop)
    finally:
        loser.stop()
    assert out["status"] == "stale"
    held = _beat(storage, second._trial_id)
    winner.stop()
    assert held["state"] == "running" and held["pid"] == os.getpid() and held["beat"] == 1


def _hold_the_first_segment(config, from_checkpoint, until):
    """Says it trains (its pid in ``training``), then outlasts any grace: it ignores the stop request."""
    (Path(os.environ["SH_SCALING_TEST_WORKERS_LOG"]) / "training").write_text(str(os.getpid()))
    time.sleep(DEADLINE_S)


def _work_and_hold(journal, tmp_path) -> None:
    _sweep(_journal(journal), tmp_path, sleep=0.0).work(_hold_the_first_segment, preempt_grace=DEADLINE_S)


@pytest.mark.parametrize("told_to_stop", [True, False], ids=["SIGKILL after SIGTERM", "SIGKILL alone"])
def test_a_worker_killed_after_it_was_told_to_stop_is_preempted_not_dead(tmp_path, monkeypatch, told_to_stop):
    # A scheduler sends SIGTERM, then SIGKILL when its grace runs out, maybe before the worker put its segment
    # back. Taken back, that segment was counted as a death of its worker, and such deaths in a row fail a
    # candidate; a worker that was told to stop is preempted, whatever stopped it in the end.
    import multiprocessing

    from sh_scaling.budgeted._workers import Watch

    log = _setup(tmp_path, monkeypatch)
    journal = tmp_path / "w.journal"
    worker = multiprocessing.get_context("fork").Process(target=_work_and_hold, args=(journal, tmp_path))
    worker.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not (log / "training").exists():
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.05)
        if told_to_stop:
            os.kill(worker.pid, signal.SIGTERM)
            stop_deadline = time.monotonic() + 10  # the mark comes within 0.1 s; a loaded machine is slower
            while time.monotonic() < stop_deadline:
                study = optuna.load_study(study_name="w", storage=_journal(journal))
                held = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
                if held and _beat(study._storage, held[0]._trial_id).get("state") == "stopping":
                    break
                time.sleep(0.1)
    finally:
        os.kill(worker.pid, signal.SIGKILL)  # before it put its segment back
        worker.join(DEADLINE_S)
    assert worker.exitcode == -signal.SIGKILL
    sweep = _sweep(_journal(journal), tmp_path, sleep=0.0)
    ctx = sweep._start()
    (held,) = [t for t in sweep._trials(ctx) if t.state == TrialState.RUNNING]
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))  # another worker takes the segment back
    taken = ctx.study._storage.get_trial(held._trial_id)
    (seg,) = segments(taken)
    assert taken.state == TrialState.WAITING and seg["status"] == "reserved" and seg["attempts"] == 2
    if told_to_stop:
        assert not seg.get("deaths") and not seg.get("deaths_in_a_row") and seg["interruptions"] == 1
        assert "told to stop" in seg["notes"][-1]
    else:
        assert seg["deaths"] == seg["deaths_in_a_row"] == 1 and not seg.get("interruptions")


def _hold_once(config, from_checkpoint, until):
    """The first call says it trains (its pid in ``training``), then outlasts any grace; later calls train."""
    log = Path(os.environ["SH_SCALING_TEST_WORKERS_LOG"])
    try:
        fd = os.open(log / "training", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return _workers_train.train(config, from_checkpoint, until)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    time.sleep(DEADLINE_S)


@pytest.mark.parametrize("told_to_stop", [True, False], ids=["SIGKILL after SIGTERM", "SIGKILL alone"])
def test_a_driver_pool_worker_killed_after_it_was_told_to_stop_is_preempted_not_dead(tmp_path, monkeypatch,
                                                                                      told_to_stop):
    # One worker process of run(n_workers=2) alone is sent SIGTERM, then SIGKILL when its scheduler's grace runs
    # out, while its driver lives: as a worker of work(), it says so in its heartbeat, and its segment is an
    # interruption. Killed outright, it is a death, and its heartbeat named it while it trained.
    import threading

    from sh_scaling.keys import BUDGETED_CANDIDATE_KEY

    log = _setup(tmp_path, monkeypatch)
    journal = tmp_path / "w.journal"
    seen: dict = {}

    def kill() -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not (log / "training").exists() or not (log / "training").read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        pid = int((log / "training").read_text())
        beats = []

        def held() -> list:
            study = optuna.load_study(study_name="w", storage=_journal(journal))
            return [_beat(study._storage, t._trial_id) for t in study.get_trials()
                    if t.state == TrialState.RUNNING]

        if told_to_stop:
            os.kill(pid, signal.SIGTERM)
        mark_deadline = time.monotonic() + 10  # the mark comes within 0.1 s; a loaded machine is slower
        while time.monotonic() < mark_deadline:
            beats = [b for b in held() if b and b.get("pid") == pid]
            if beats and beats[0]["state"] == ("stopping" if told_to_stop else "running"):
                break
            time.sleep(0.1)
        seen["beat"] = beats[0] if beats else None
        os.kill(pid, signal.SIGKILL)  # before it put its segment back

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    sweep = _sweep(_journal(journal), tmp_path, sleep=0.0).run(_hold_once, n_workers=2, preempt_grace=DEADLINE_S)
    killer.join(DEADLINE_S)
    _same_as_simulator(sweep)
    trials = sweep.study_.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    segs = [s for t in trials for s in segments(t)]
    assert segs and all(s["status"] == "done" for s in segs)
    # Every segment trained once, the held one once more (its retry); nothing else was retried.
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    assert sorted((c["i"], c["until"]) for c in calls) == sorted(
        (candidate, s["until"]) for t in trials for s in segments(t)
        for candidate in [t.system_attrs[BUDGETED_CANDIDATE_KEY]["index"]])
    interruptions = sum(int(s.get("interruptions", 0)) for s in segs)
    deaths = sum(int(s.get("deaths", 0)) for s in segs)
    assert (interruptions, deaths) == ((1, 0) if told_to_stop else (0, 1))
    assert sum(int(s["attempts"]) for s in segs) == len(segs) + 1
    assert seen["beat"] is not None and seen["beat"]["state"] == ("stopping" if told_to_stop else "running")


def test_a_segment_taken_back_from_a_dead_worker_is_claimable_only_with_its_next_attempt(tmp_path, monkeypatch):
    # The lease holder takes a dead worker's segment back: the next attempt in the segment's record, and the trial
    # back to WAITING. A worker that scanned before the death holds a task for the attempt that died; if it claims
    # the trial the moment it is WAITING, it must find the next attempt's record, not train the old attempt and
    # then see its done record overwritten with a reserved one (the segment trained twice, the death uncounted).
    from sh_scaling.budgeted._preempt import Preemption
    from sh_scaling.budgeted._workers import Watch, run_beating
    from sh_scaling.keys import BUDGETED_WORKER_KEY

    log = _setup(tmp_path, monkeypatch)
    sweep = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0)
    ctx = sweep._start()
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))  # grants the first round
    storage = ctx.study._storage
    kind, tasks = sweep._scan(ctx, Watch())
    assert kind == "claim"
    late = tasks[0]  # a worker's pick from its scan, claimed only later
    # Another worker claimed it first and died without a trace but its heartbeat: its process is gone.
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    assert storage.set_trial_state_values(late.trial_id, TrialState.RUNNING)
    storage.set_trial_system_attr(_beat_trial(storage, late.trial_id)._trial_id, BUDGETED_WORKER_KEY, {
        "state": "running", "host": socket.gethostname(), "pid": gone.pid, "key": late.key,
        "attempt": late.attempt, "beat": 1})
    real = storage.set_trial_state_values
    outcomes: list = []

    def set_state(trial_id, state, values=None):
        done = real(trial_id, state, values)
        if trial_id == late.trial_id and state == TrialState.WAITING and not outcomes:
            # The late worker claims the trial the moment it is claimable again.
            outcomes.append(None)
            outcomes[0] = run_beating(ctx.study, ctx.store, _workers_train.train, late, Preemption())
        return done

    with monkeypatch.context() as patch:
        patch.setattr(storage, "set_trial_state_values", set_state)
        sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))  # the lease holder takes the segment back
    assert [o["status"] for o in outcomes] == ["stale"]
    taken = storage.get_trial(late.trial_id)
    (seg,) = segments(taken)
    assert taken.state == TrialState.WAITING and seg["status"] == "reserved"
    assert seg["attempts"] == 2 and seg["deaths"] == 1
    finished = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0).work(_workers_train.train)
    _same_as_simulator(finished)
    # Each segment trained once.
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    assert len(calls) == len({(c["i"], c["until"]) for c in calls})
    (seg,) = [s for s in segments(finished.study_._storage.get_trial(late.trial_id)) if s["k"] == 0]
    assert seg["status"] == "done" and seg["deaths"] == 1 and seg["attempts"] == 2


def _first_segment_granted(tmp_path, monkeypatch):
    """A sweep whose first round is granted, with workers that beat only once a segment (so a test decides when
    one is taken for dead): the call log, the sweep, its context, its storage and the first segment to claim."""
    from sh_scaling.budgeted._workers import Watch

    log = _setup(tmp_path, monkeypatch)
    monkeypatch.setattr("sh_scaling.budgeted._workers.SEGMENT_HEARTBEAT_S", 1e9)  # its first beat only
    sweep = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0)
    ctx = sweep._start()
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))  # grants the first round
    return log, sweep, ctx, ctx.study._storage, sweep._scan(ctx, Watch())[1][0]


def test_a_live_worker_whose_segment_was_taken_back_writes_nothing_more(tmp_path, monkeypatch):
    # A worker whose heartbeats stop reaching the storage for the grace (a stalled process, a partition) is taken
    # for dead while it trains: its segment is taken back and another worker trains it. When the first one's
    # train_fn returns, it must not record its result over the retry's, nor the attempt that was taken back.
    import threading

    from sh_scaling.budgeted._preempt import Preemption
    from sh_scaling.budgeted._workers import Watch, run_beating

    log, sweep, ctx, storage, first = _first_segment_granted(tmp_path, monkeypatch)
    training, release = threading.Event(), threading.Event()

    def stalled(config, from_checkpoint, until):
        training.set()
        release.wait(DEADLINE_S)
        return _workers_train.train(config, from_checkpoint, until)

    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(
        run_beating(ctx.study, ctx.store, stalled, first, Preemption())), daemon=True)
    worker.start()
    assert training.wait(DEADLINE_S)
    watch = Watch(grace=0.0)
    watch.dead(storage.get_trial(first.trial_id), _beat(storage, first.trial_id))  # seen once; its heartbeat does not change after
    time.sleep(0.01)
    sweep._locked(ctx, lambda: sweep._close(ctx, watch))  # taken back: no heartbeat for longer than the grace
    retry = SegmentTask(first.trial_id, first.key, first.attempt + 1)
    assert run_beating(ctx.study, ctx.store, _workers_train.train, retry, Preemption())["status"] == "done"
    done = storage.get_trial(first.trial_id)
    release.set()
    worker.join(DEADLINE_S)
    assert outcome["status"] == "stale" and "taken back" in outcome["reason"]
    after = storage.get_trial(first.trial_id)
    assert after.system_attrs[first.key] == done.system_attrs[first.key]
    assert after.system_attrs[first.key]["attempts"] == 2 and after.system_attrs[first.key]["deaths"] == 1
    assert _beat_trial(storage, first.trial_id).state == TrialState.COMPLETE and after.state == TrialState.WAITING
    assert after.intermediate_values == done.intermediate_values


def _delay_first_outcome_write(storage, worker: list, run_first) -> None:
    """Patch ``storage`` so that the first write the thread in ``worker`` makes after its ``train_fn`` returned
    (other than a heartbeat or a checkpoint's upload) waits while ``run_first()`` runs, then lands: a worker
    that passed every check that it still holds its segment and stalled inside its write of the outcome."""
    from sh_scaling.keys import BUDGETED_WORKER_KEY

    hooked = {"done": False}

    def delayed(name):
        real = getattr(storage, name)

        def write(trial_id, *args, **kwargs):
            key = args[0] if args and isinstance(args[0], str) else ""
            if (not hooked["done"] and worker and worker[0] == threading.get_ident() and worker[1]
                    and key != BUDGETED_WORKER_KEY and not key.startswith("artifacts:")):
                hooked["done"] = True
                run_first()
            return real(trial_id, *args, **kwargs)

        return write

    for name in ("set_trial_system_attr", "set_trial_state_values", "set_trial_user_attr",
                 "set_trial_intermediate_value"):
        setattr(storage, name, delayed(name))


def test_a_live_worker_whose_outcome_write_lands_after_the_take_back_records_nothing(tmp_path, monkeypatch):
    # A worker taken for dead while it lives passes every check that it still holds its segment, then stalls
    # inside its one write of the outcome for longer than the grace. Meanwhile the segment is taken back and its
    # retry trains and records it. When the stalled write lands, the storage must refuse it: the segment trained
    # twice must be recorded once (the retry's), with the death counted, and the stalled worker writes nothing.
    from sh_scaling.budgeted._preempt import Preemption
    from sh_scaling.budgeted._workers import Watch, run_beating

    log, sweep, ctx, storage, first = _first_segment_granted(tmp_path, monkeypatch)
    retry = SegmentTask(first.trial_id, first.key, first.attempt + 1)
    watch = Watch(grace=0.0)
    worker: list = []  # [thread id, train_fn returned]
    seen: dict = {}

    def trained(config, from_checkpoint, until):
        worker[:] = [threading.get_ident(), False]
        watch.dead(storage.get_trial(first.trial_id), _beat(storage, first.trial_id))  # seen once; its heartbeat does not change after
        out = _workers_train.train(config, from_checkpoint, until)
        worker[1] = True
        return out

    def take_back_and_retry() -> None:
        worker[1] = False  # the retry runs in this thread too: its writes are not delayed
        time.sleep(0.01)
        sweep._locked(ctx, lambda: sweep._close(ctx, watch))  # taken back: no heartbeat for longer than the grace
        seen["retry"] = run_beating(ctx.study, ctx.store, _workers_train.train, retry, Preemption())
        seen["done"] = storage.get_trial(first.trial_id)

    _delay_first_outcome_write(storage, worker, take_back_and_retry)
    outcome = run_beating(ctx.study, ctx.store, trained, first, Preemption())
    assert seen["retry"]["status"] == "done"
    assert outcome["status"] == "stale"
    done, after = seen["done"], storage.get_trial(first.trial_id)
    assert after.system_attrs[first.key] == done.system_attrs[first.key]
    seg = after.system_attrs[first.key]
    assert seg["status"] == "done" and seg["attempts"] == 2 and seg["deaths"] == 1
    assert after.intermediate_values == done.intermediate_values
    assert after.state == TrialState.WAITING and _beat_trial(storage, first.trial_id).state == TrialState.COMPLETE
    # Trained twice (the stalled attempt and its retry), recorded once.
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    assert len(calls) == 2 and len({(c["i"], c["until"]) for c in calls}) == 1


def test_a_worker_lost_after_it_recorded_its_outcome_has_it_reported_not_trained_again(tmp_path, monkeypatch):
    # The other order: the worker's outcome is recorded (its attempt's trial finished with it), then the worker
    # stalls while it reports the segment's points, and is taken for dead. The take-back finds the outcome
    # recorded: it goes into the segment's record with the death counted after progress, and the next attempt
    # reports it without training. When the stalled worker wakes up it reports the same points and keeps the
    # death: the segment is trained once, its points are on the curve once.
    from sh_scaling.budgeted import _segment
    from sh_scaling.budgeted._preempt import Preemption
    from sh_scaling.budgeted._workers import Watch, run_beating

    log, sweep, ctx, storage, first = _first_segment_granted(tmp_path, monkeypatch)
    watch = Watch(grace=0.0)
    real = _segment._report_result
    seen: dict = {}

    def stalled(*args, **kwargs):
        if not seen:
            watch.dead(storage.get_trial(first.trial_id), _beat(storage, first.trial_id))
            time.sleep(0.01)
            sweep._locked(ctx, lambda: sweep._close(ctx, watch))  # the take-back finds the outcome recorded
            seen["taken"] = storage.get_trial(first.trial_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(_segment, "_report_result", stalled)  # the worker stalls while it reports
    outcome = run_beating(ctx.study, ctx.store, _workers_train.train, first, Preemption())
    seg = seen["taken"].system_attrs[first.key]
    assert seen["taken"].state == TrialState.WAITING and seg["status"] == "reserved" and seg["attempts"] == 2
    assert seg["result"] is not None and seg["deaths"] == 1 and seg["deaths_in_a_row"] == 0
    assert outcome["status"] == "done"
    after = storage.get_trial(first.trial_id)
    seg = after.system_attrs[first.key]
    assert seg["status"] == "done" and seg["attempts"] == 2 and seg["deaths"] == 1 and "result" not in seg
    monkeypatch.setattr(_segment, "_report_result", real)
    retry = SegmentTask(first.trial_id, first.key, first.attempt + 1)
    assert run_beating(ctx.study, ctx.store, _workers_train.train, retry, Preemption())["status"] == "stale"
    finished = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0).work(_workers_train.train)
    _same_as_simulator(finished)
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    assert len(calls) == len({(c["i"], c["until"]) for c in calls})  # each segment trained once


def test_a_claim_won_on_a_segment_another_worker_finished_since_the_scan_trains_nothing(tmp_path, monkeypatch):
    # A worker picks a segment from its scan (its trial WAITING, the segment reserved) and claims it later. Another
    # worker may have claimed, trained and given it back in between: the trial is WAITING again, so the claim is
    # won, but the segment is done. The worker gives the trial back untrained and untouched (the claims won that
    # trained nothing in the load test), and the segment stays trained once.
    from sh_scaling.budgeted._preempt import Preemption
    from sh_scaling.budgeted._workers import Watch, run_beating

    log = _setup(tmp_path, monkeypatch)
    sweep = _sweep(_journal(tmp_path / "w.journal"), tmp_path, sleep=0.0)
    ctx = sweep._start()
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch()))
    storage = ctx.study._storage
    kind, tasks = sweep._scan(ctx, Watch())
    assert kind == "claim"
    late = tasks[0]
    assert run_beating(ctx.study, ctx.store, _workers_train.train, late, Preemption())["status"] == "done"
    before = storage.get_trial(late.trial_id)
    out = run_beating(ctx.study, ctx.store, _workers_train.train, late, Preemption())
    assert out["status"] == "stale" and "is done" in out["reason"]
    after = storage.get_trial(late.trial_id)
    assert after.state == TrialState.WAITING and _beat_trial(storage, late.trial_id).state == TrialState.COMPLETE
    assert after.system_attrs[late.key] == before.system_attrs[late.key]
    assert after.intermediate_values == before.intermediate_values
    assert len(list(log.glob("call-*.json"))) == 1


def test_a_worker_lost_after_it_recorded_a_failure_fails_its_candidate_once_and_does_not_crash(tmp_path,
                                                                                                monkeypatch):
    # The worker's train_fn raised and its failure is recorded (the attempt's trial finished with it); the worker
    # stalls before it fails the candidate and is taken for dead. The take-back fails the candidate with the
    # recorded reason; the worker, when it wakes up, finds the candidate finished and writes nothing more.
    from sh_scaling.budgeted import _segment
    from sh_scaling.budgeted._preempt import Preemption
    from sh_scaling.budgeted._workers import Watch, run_beating
    from sh_scaling.keys import BUDGETED_FAILED_KEY

    _, sweep, ctx, storage, first = _first_segment_granted(tmp_path, monkeypatch)
    watch = Watch(grace=0.0)
    real = _segment.fail_trial
    seen: dict = {}

    def raises(config, from_checkpoint, until):
        raise RuntimeError("out of memory")

    def stalled(*args, **kwargs):
        if not seen:
            seen["stalled"] = True
            watch.dead(storage.get_trial(first.trial_id), _beat(storage, first.trial_id))
            time.sleep(0.01)
            sweep._locked(ctx, lambda: sweep._close(ctx, watch))  # the take-back finds the failure recorded
            seen["taken"] = storage.get_trial(first.trial_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(_segment, "fail_trial", stalled)
    outcome = run_beating(ctx.study, ctx.store, raises, first, Preemption())
    assert seen["taken"].state == TrialState.FAIL
    assert "out of memory" in seen["taken"].system_attrs[BUDGETED_FAILED_KEY]["reason"]
    assert outcome["status"] == "stale"
    after = storage.get_trial(first.trial_id)
    assert after.state == TrialState.FAIL and after.system_attrs[first.key]["status"] == "failed"


def test_a_heartbeat_of_a_worker_whose_segment_was_taken_back_never_lands(tmp_path, monkeypatch):
    # A worker taken for dead while it lives (its beats stalled past the grace) wakes up inside a heartbeat: the
    # write reaches the storage after its segment was taken back and the retry's worker started beating. It must
    # be refused: landed, it stood as the segment's heartbeat, and the retry's worker, finding the heartbeat no
    # longer its own, gave the segment up as taken back from it (the segment left RUNNING with no worker).
    from sh_scaling.budgeted._preempt import Preemption
    from sh_scaling.budgeted._workers import Watch, run_beating
    from sh_scaling.keys import BUDGETED_WORKER_KEY

    log, sweep, ctx, storage, first = _first_segment_granted(tmp_path, monkeypatch)
    monkeypatch.setattr("sh_scaling.budgeted._workers.SEGMENT_HEARTBEAT_S", 0.05)
    retry = SegmentTask(first.trial_id, first.key, first.attempt + 1)
    release = {1: threading.Event(), 2: threading.Event()}
    training = {1: threading.Event(), 2: threading.Event()}
    outcomes: dict = {}

    def train(config, from_checkpoint, until):
        attempt = 2 if 1 in outcomes or training[1].is_set() else 1
        training[attempt].set()
        assert release[attempt].wait(DEADLINE_S)
        return _workers_train.train(config, from_checkpoint, until)

    def take_back_and_retry() -> None:
        sweep._locked(ctx, lambda: sweep._close(ctx, Watch(grace=-1.0)))  # taken for dead
        retrying = threading.Thread(target=lambda: outcomes.update(
            {2: run_beating(ctx.study, ctx.store, train, retry, Preemption())}), daemon=True)
        retrying.start()
        assert training[2].wait(DEADLINE_S)  # the retry's worker holds the segment and beats
        outcomes["retrying"] = retrying

    real = storage.set_trial_system_attr
    stale = threading.Event()

    def set_attr(trial_id, key, value):
        if (key == BUDGETED_WORKER_KEY and isinstance(value, dict) and value.get("attempt") == first.attempt
                and value.get("beat", 0) >= 2 and not stale.is_set()):
            take_back_and_retry()  # the first worker stalls inside this beat; the write lands after
            try:
                return real(trial_id, key, value)
            finally:
                stale.set()
        return real(trial_id, key, value)

    monkeypatch.setattr(storage, "set_trial_system_attr", set_attr)
    worker = threading.Thread(target=lambda: outcomes.update(
        {1: run_beating(ctx.study, ctx.store, train, first, Preemption())}), daemon=True)
    worker.start()
    assert stale.wait(DEADLINE_S)
    time.sleep(0.3)  # a few beats of the retry's worker
    release[1].set()
    worker.join(DEADLINE_S)
    release[2].set()
    outcomes["retrying"].join(DEADLINE_S)
    assert outcomes[1]["status"] == "stale"
    assert outcomes[2]["status"] == "done", outcomes[2]
    after = storage.get_trial(first.trial_id)
    seg = after.system_attrs[first.key]
    assert after.state == TrialState.WAITING and seg["status"] == "done" and seg["attempts"] == 2
    assert seg["deaths"] == 1


def test_a_worker_taken_back_then_told_to_stop_writes_nothing_over_the_segments_next_worker(tmp_path, monkeypatch):
    # A worker taken for dead while it lives is then told to stop (SIGTERM) and its train_fn stops. Its note of the
    # interruption and its give-back must be refused: they would overwrite the record of the segment's next attempt
    # and hand the trial back (WAITING) while the next worker trains it, for a third worker to claim.
    from sh_scaling.budgeted._preempt import Preemption, TrainingStopped
    from sh_scaling.budgeted._workers import Watch, run_beating

    log, sweep, ctx, storage, first = _first_segment_granted(tmp_path, monkeypatch)
    retry = SegmentTask(first.trial_id, first.key, first.attempt + 1)
    training, release = threading.Event(), threading.Event()
    retry_training, retry_release = threading.Event(), threading.Event()

    def stopped(config, from_checkpoint, until):
        training.set()
        assert release.wait(DEADLINE_S)
        raise TrainingStopped("train_fn did not return within 0 s of SIGTERM")

    def retried(config, from_checkpoint, until):
        retry_training.set()
        assert retry_release.wait(DEADLINE_S)
        return _workers_train.train(config, from_checkpoint, until)

    outcomes: dict = {}
    worker = threading.Thread(target=lambda: outcomes.update(
        {1: run_beating(ctx.study, ctx.store, stopped, first, Preemption())}), daemon=True)
    worker.start()
    assert training.wait(DEADLINE_S)
    sweep._locked(ctx, lambda: sweep._close(ctx, Watch(grace=-1.0)))  # taken for dead
    retrying = threading.Thread(target=lambda: outcomes.update(
        {2: run_beating(ctx.study, ctx.store, retried, retry, Preemption())}), daemon=True)
    retrying.start()
    assert retry_training.wait(DEADLINE_S)
    held = storage.get_trial(first.trial_id)
    release.set()  # the first worker's train_fn stops, as after SIGTERM
    worker.join(DEADLINE_S)
    assert outcomes[1]["status"] == "stale", outcomes[1]
    now = storage.get_trial(first.trial_id)
    assert now.state == TrialState.RUNNING  # still the retry's
    assert now.system_attrs[first.key] == held.system_attrs[first.key]
    retry_release.set()
    retrying.join(DEADLINE_S)
    assert outcomes[2]["status"] == "done", outcomes[2]
    seg = storage.get_trial(first.trial_id).system_attrs[first.key]
    assert seg["status"] == "done" and seg["attempts"] == 2 and seg["deaths"] == 1 and not seg.get("interruptions")
