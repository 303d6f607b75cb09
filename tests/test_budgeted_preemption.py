"""Budget-limited halving told to stop (SIGTERM, how Slurm and Kubernetes preempt), and storage that drops.

Every signal here is a real SIGTERM sent to a real process (the driver, forked, or one of its spawned worker
processes); every wait has a deadline.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sh_scaling.budgeted import BudgetedHalving, ledger, segments
from sh_scaling.keys import BUDGETED_CANDIDATE_KEY
from sh_scaling.pruning import reported_compute

optuna.logging.set_verbosity(optuna.logging.ERROR)

CURVE = [(float(c), 10.0 / c**0.1) for c in range(1, 21)]
DEADLINE_S = 180


def _journal(path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _sweep(journal) -> BudgetedHalving:
    return BudgetedHalving([{"i": 0}, {"i": 1}], 80.0, max_compute=20.0, storage=_journal(journal), study_name="s")


def _trials(journal):
    study = optuna.load_study(study_name="s", storage=_journal(journal))
    return sorted((t for t in study.get_trials() if BUDGETED_CANDIDATE_KEY in t.system_attrs),
                  key=lambda t: t.system_attrs[BUDGETED_CANDIDATE_KEY]["index"])


def _assert_whole_curve(trial):
    compute = reported_compute(trial)
    assert [(compute.get(s), v) for s, v in sorted(trial.intermediate_values.items())] == CURVE


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared"


def _held_fn(config, from_checkpoint, until):
    """The first call in any process writes its pid to ``first`` and waits for ``go``; every call is logged."""
    log = Path(os.environ["SH_SCALING_TEST_MARKER"])
    (log / f"call-{os.getpid()}-{time.monotonic_ns()}").write_text(json.dumps([config["i"], until]))
    try:
        fd = os.open(log / "first", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        held = False
    else:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        held = True
    if held:
        deadline = time.monotonic() + DEADLINE_S
        while not (log / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return [(c, y) for c, y in CURVE if c <= until], b"checkpoint"


def _drive(journal: str, n_workers: int, grace: float | None) -> None:
    kw = {} if grace is None else {"preempt_grace": grace}
    _sweep(journal).run(_held_fn, n_workers, **kw)


@pytest.mark.parametrize("n_workers", [1, 2], ids=["the driver", "a worker process"])
@pytest.mark.parametrize("in_time", [True, False], ids=["train_fn returns in time", "train_fn outlasts the grace"])
def test_a_process_told_to_stop_finishes_or_puts_its_segment_back_and_exits_0(tmp_path, monkeypatch, n_workers,
                                                                            in_time):
    monkeypatch.setenv("SH_SCALING_TEST_MARKER", str(tmp_path))
    journal = str(tmp_path / "s.journal")
    driver = multiprocessing.get_context("fork").Process(
        target=_drive, args=(journal, n_workers, None if in_time else 1.0))
    driver.start()
    try:
        _wait_for(tmp_path / "first")
        held_pid = int((tmp_path / "first").read_text())
        assert (held_pid == driver.pid) == (n_workers == 1)
        os.kill(held_pid, signal.SIGTERM)  # the driver itself, or the worker process that trains
        if in_time:
            time.sleep(0.5)
            (tmp_path / "go").write_text("")
        driver.join(DEADLINE_S)
    finally:
        if driver.is_alive():
            driver.kill()
            driver.join(10)
    assert driver.exitcode == 0
    trials = _trials(journal)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    if n_workers == 1:
        # The driver stopped: the segment it was training is done (in time) or waits to be trained again.
        # (candidate 0 is trained first; candidate 1's segment was granted and waits).
        held, waiting = (segments(t)[0] for t in trials)
        assert held["status"] == ("done" if in_time else "reserved") and waiting["status"] == "reserved"
        if not in_time:
            assert held["interruptions"] == 1 and not held.get("deaths") and held["attempts"] == 1
        _sweep(journal).run(_held_fn)
        trials = _trials(journal)
    every = [s for t in trials for s in segments(t)]
    assert [s["status"] for s in every] == ["done", "done"]
    assert not any(s.get("deaths") for s in every)  # a SIGTERM is no death of the worker
    assert sum(int(s.get("interruptions", 0)) for s in every) == (0 if in_time else 1)
    assert all(s["attempts"] == 1 for s in every)
    assert len(list(tmp_path.glob("call-*"))) == (2 if in_time else 3)  # trained once, or once more after the stop
    for t in trials:
        _assert_whole_curve(t)
    assert ledger(trials, 80.0)["total"] == 40.0  # each grant charged once


# ----------------------------------------------------------------------------------- the storage drops
def _drop_storage_for(n: int) -> None:
    """The next ``n`` calls of the journal storage's reads and writes (in this process) fail as a lost
    connection would."""
    cls = optuna.storages.JournalStorage
    left = {"n": n}
    for name in ("get_trial", "set_trial_system_attr", "set_trial_intermediate_value", "set_trial_state_values"):
        real = getattr(cls, name)

        def failing(self, *args, _real=real, **kwargs):
            if left["n"] > 0:
                left["n"] -= 1
                raise ConnectionError("storage connection lost")
            return _real(self, *args, **kwargs)

        setattr(cls, name, failing)


def _fn_whose_storage_drops(config, from_checkpoint, until):
    """Candidate 0's worker loses its storage for the next four calls once training ends."""
    if config["i"] == 0:
        _drop_storage_for(4)
        (Path(os.environ["SH_SCALING_TEST_MARKER"]) / "dropped").write_text("")
    return [(c, y) for c, y in CURVE if c <= until], b"checkpoint"


def test_a_worker_whose_storage_drops_retries_and_leaves_nothing_running(tmp_path, monkeypatch):
    monkeypatch.setenv("SH_SCALING_TEST_MARKER", str(tmp_path))
    sweep = _sweep(tmp_path / "s.journal").run(_fn_whose_storage_drops, n_workers=2)
    assert (tmp_path / "dropped").exists()
    trials = _trials(tmp_path / "s.journal")
    assert all(t.state == TrialState.COMPLETE for t in trials)
    every = [s for t in trials for s in segments(t)]
    assert [s["status"] for s in every] == ["done", "done"]
    assert all(s["attempts"] == 1 and not s.get("deaths") for s in every)  # retried, not died
    for t in trials:
        _assert_whole_curve(t)
    assert sweep.ledger_["total"] == 40.0


def test_a_driver_of_worker_processes_told_to_stop_lets_them_finish_and_exits_0(tmp_path, monkeypatch):
    monkeypatch.setenv("SH_SCALING_TEST_MARKER", str(tmp_path))
    journal = str(tmp_path / "s.journal")
    driver = multiprocessing.get_context("fork").Process(target=_drive, args=(journal, 2, None))
    driver.start()
    try:
        _wait_for(tmp_path / "first")
        os.kill(driver.pid, signal.SIGTERM)  # the driver; its worker process trains the held segment
        time.sleep(0.5)
        (tmp_path / "go").write_text("")
        driver.join(DEADLINE_S)
    finally:
        if driver.is_alive():
            driver.kill()
            driver.join(10)
    assert driver.exitcode == 0
    trials = _trials(journal)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    held_pid = int((tmp_path / "first").read_text())
    done = [s for t in trials for s in segments(t) if s["status"] == "done"]
    assert held_pid in [s["worker"] for s in done]  # the worker's segment was finished within the grace
    assert not any(s.get("deaths") for t in trials for s in segments(t))
    _sweep(journal).run(_held_fn)
    trials = _trials(journal)
    every = [s for t in trials for s in segments(t)]
    assert [s["status"] for s in every] == ["done", "done"] and not any(s.get("deaths") for s in every)
    for t in trials:
        _assert_whole_curve(t)
    assert ledger(trials, 80.0)["total"] == 40.0


def test_the_retrying_storage_gives_up_after_its_window_and_never_retries_a_refused_request(monkeypatch):
    from optuna.exceptions import UpdateFinishedTrialError
    from sqlalchemy.exc import OperationalError

    from sh_scaling.budgeted import _retry

    monkeypatch.setattr(_retry.time, "sleep", lambda s: None)
    calls = {"n": 0}

    class Flaky(optuna.storages.InMemoryStorage):
        def get_trial(self, trial_id):
            calls["n"] += 1
            if calls["n"] <= 3:
                raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
            return super().get_trial(trial_id)

    storage = _retry.RetryingStorage(Flaky(), retry_for=60.0)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    assert storage.get_trial(trial._trial_id).number == 0 and storage.retries == 3
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError):  # the request itself is wrong: raised at once
        storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
    assert storage.retries == 3

    class Down(optuna.storages.InMemoryStorage):
        def get_all_studies(self):
            raise ConnectionRefusedError("connection refused")

    down = _retry.RetryingStorage(Down(), retry_for=0.0)
    with pytest.raises(ConnectionRefusedError):
        down.get_all_studies()


def test_the_retrying_storage_waits_for_a_grpc_storage_proxy_that_is_not_up_yet():
    # A worker behind Optuna's gRPC storage proxy sees a proxy that restarts as gRPC's UNAVAILABLE: retried like
    # a database that restarts. Before, the first call raised at once.
    pytest.importorskip("grpc")
    import socket
    import threading

    from sh_scaling.budgeted import _retry

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    behind = optuna.storages.InMemoryStorage()
    behind.create_new_study([optuna.study.StudyDirection.MINIMIZE], "behind-the-proxy")
    client = optuna.storages.GrpcStorageProxy(host="localhost", port=port)
    server = threading.Timer(1.0, optuna.storages.run_grpc_proxy_server, args=(behind,),
                             kwargs={"host": "localhost", "port": port})
    server.daemon = True
    storage = _retry.RetryingStorage(client, retry_for=30.0)
    server.start()  # the proxy comes up a second after the first call
    assert [s.study_name for s in storage.get_all_studies()] == ["behind-the-proxy"]
    assert storage.retries >= 1
    with pytest.raises(KeyError):  # a request the proxy refuses (NOT_FOUND) is raised at once
        storage.get_study_id_from_name("no-such-study")
