"""Workers of a budgeted sweep given bad input: a clear error naming the cause, in the worker (one line and a
non-zero exit status for ``sh-scaling work``) and in the study (its worker errors), and nothing half-claimed.

A train function that cannot be imported and a storage URL that cannot be reached by a worker process are in
``tests/test_budgeted_workers.py``; here: a worker of another release, a storage server that refuses the
connection or is full, and an artifact store that is not shared.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import _workers_train
import sh_scaling
from sh_scaling.budgeted import BudgetedHalving, ledger, segments
from sh_scaling.budgeted._compat import RECORDS_FORMAT
from sh_scaling.cli import main
from sh_scaling.keys import BUDGETED_PLAN_KEY, BUDGETED_WORKER_ERRORS_KEY
from sh_scaling.simulation import allocate

optuna.logging.set_verbosity(optuna.logging.ERROR)

N, SEED = 8, 7


def _journal(path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _sweep(journal, store: Path) -> BudgetedHalving:
    curves = _workers_train.curves(N, SEED)
    configs = [{"n": N, "seed": SEED, "i": i, "kill": None, "sleep": 0.0} for i in range(N)]
    store.mkdir(exist_ok=True)
    return BudgetedHalving(configs, 0.2 * sum(c.final_compute for c in curves),
                           max_compute=lambda c: curves[c["i"]].final_compute, storage=_journal(journal),
                           study_name="w", artifact_store=optuna.artifacts.FileSystemArtifactStore(str(store)))


def _study(journal):
    study = optuna.load_study(study_name="w", storage=_journal(journal))
    return study, study._storage.get_study_system_attrs(study._study_id)


def _work(journal, store: Path, capsys) -> tuple[int, str]:
    code = main(["work", "--storage", str(journal), "--study", "w", "--train", "_workers_train:train",
                 "--artifacts", str(store)])
    return code, capsys.readouterr().err


@pytest.fixture
def log(tmp_path, monkeypatch):
    folder = tmp_path / "calls"
    folder.mkdir()
    monkeypatch.setenv("SH_SCALING_TEST_WORKERS_LOG", str(folder))
    return folder


def _same_as_simulator(sweep) -> None:
    curves = _workers_train.curves(N, SEED)
    sim = allocate(curves, sweep.budget, "SH+FA", rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-12)


# ------------------------------------------------------------------------------------------------ versions
def test_the_sweep_records_the_release_that_started_it(tmp_path, log):
    _sweep(tmp_path / "w.journal", tmp_path / "ckpt").start()
    plan = _study(tmp_path / "w.journal")[1][BUDGETED_PLAN_KEY]
    assert plan["sh_scaling_version"] == sh_scaling.__version__ and plan["version"] == RECORDS_FORMAT


def test_a_worker_of_another_minor_release_refuses_to_join_naming_both(tmp_path, log, monkeypatch, capsys):
    journal, store = tmp_path / "w.journal", tmp_path / "ckpt"
    _sweep(journal, store).start()
    started = sh_scaling.__version__
    monkeypatch.setattr(sh_scaling, "__version__", "99.0.0")
    code, err = _work(journal, store, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"sh_scaling {started}" in err and "sh_scaling 99.0.0" in err and "Traceback" not in err
    study, attrs = _study(journal)
    assert "99.0.0" in attrs[BUDGETED_WORKER_ERRORS_KEY][-1]["error"]
    # Nothing claimed, nothing granted: the refused worker wrote only its error.
    assert all(t.state == TrialState.WAITING and not segments(t) for t in study.get_trials())
    assert not list(log.glob("call-*.json"))
    # The same refusal from the Python API, recorded too.
    with pytest.raises(ValueError, match="same major.minor release"):
        _sweep(journal, store).work(_workers_train.train)
    assert len(_study(journal)[1][BUDGETED_WORKER_ERRORS_KEY]) == 2


def test_a_worker_of_another_patch_release_joins(tmp_path, log, monkeypatch, capsys):
    journal, store = tmp_path / "w.journal", tmp_path / "ckpt"
    _sweep(journal, store).start()
    major, minor, _ = sh_scaling.__version__.split(".")
    monkeypatch.setattr(sh_scaling, "__version__", f"{major}.{minor}.99")
    code, err = _work(journal, store, capsys)
    assert code == 0, err
    _same_as_simulator(_sweep(journal, store).work(_workers_train.train))


def test_a_sweep_whose_records_format_differs_is_refused(tmp_path, log, capsys):
    journal, store = tmp_path / "w.journal", tmp_path / "ckpt"
    _sweep(journal, store).start()
    study, attrs = _study(journal)
    study._storage.set_study_system_attr(study._study_id, BUDGETED_PLAN_KEY, {**attrs[BUDGETED_PLAN_KEY],
                                                                              "version": RECORDS_FORMAT + 1})
    code, err = _work(journal, store, capsys)
    assert code == 2 and f"records format {RECORDS_FORMAT + 1}" in err and f"records format {RECORDS_FORMAT}" in err


def test_a_sweep_started_before_attempts_had_trials_of_their_own_is_refused_naming_both_formats(tmp_path, log,
                                                                                                  capsys):
    # Records format 1 kept no trial per attempt (nor one per attempt's heartbeat): a worker of that format
    # joining a sweep of this one would ignore them and write its outcome and heartbeat where no one reads them,
    # and one of this format cannot take back an attempt of that one. Both sides refuse the other.
    journal, store = tmp_path / "w.journal", tmp_path / "ckpt"
    _sweep(journal, store).start()
    study, attrs = _study(journal)
    study._storage.set_study_system_attr(study._study_id, BUDGETED_PLAN_KEY, {**attrs[BUDGETED_PLAN_KEY],
                                                                              "version": 1})
    code, err = _work(journal, store, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "records format 1" in err and "records format 2" in err and "Traceback" not in err
    assert "records format 1" in _study(journal)[1][BUDGETED_WORKER_ERRORS_KEY][-1]["error"]
    assert all(t.state == TrialState.WAITING and not segments(t) for t in _study(journal)[0].get_trials())
    assert not list(log.glob("call-*.json"))


# ------------------------------------------------------------------------------------------------- storage
def test_a_worker_whose_database_refuses_the_connection_says_which_without_the_password(capsys):
    url = "postgresql+psycopg2://someone:s3cret@127.0.0.1:1/sweeps"  # port 1: nothing listens there
    code = main(["work", "--storage", url, "--study", "w", "--train", "_workers_train:train"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot reach storage 'postgresql+psycopg2://***@127.0.0.1:1/sweeps'" in err and "s3cret" not in err


_FULL = "connection to server at \"db\" (10.0.0.5), port 5432 failed: FATAL:  sorry, too many clients already"


def _full_server(monkeypatch, refusals: float) -> dict:
    """``optuna.storages.get_storage`` refuses the first ``refusals`` connections as a PostgreSQL server at
    ``max_connections`` does, then opens an in-memory storage."""
    from sqlalchemy.exc import OperationalError

    calls = {"n": 0}
    real, server = optuna.storages.get_storage, optuna.storages.InMemoryStorage()

    def get_storage(storage):
        if not isinstance(storage, str):  # a storage object is used as it is (optuna.load_study, ...)
            return real(storage)
        calls["n"] += 1
        if calls["n"] <= refusals:
            raise OperationalError("connect", {}, Exception(_FULL))
        return server

    monkeypatch.setattr(optuna.storages, "get_storage", get_storage)
    return calls


def test_a_worker_that_the_database_refuses_as_too_many_clients_waits_and_joins(tmp_path, monkeypatch, caplog):
    # Workers started together beyond the server's max_connections failed at once ("cannot reach storage").
    calls = _full_server(monkeypatch, 2)
    sweep = _sweep(tmp_path / "unused.journal", tmp_path / "ckpt")
    sweep.storage = "postgresql+psycopg2://someone:s3cret@db/sweeps"
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="sh_scaling.budgeted"):
        sweep.start()
    assert calls["n"] == 3 and time.monotonic() - t0 < 10  # waited 0.25 s, then 0.5 s
    lines = [r.getMessage() for r in caplog.records if r.name == "sh_scaling.budgeted"]
    assert len(lines) == 2 and all("too many clients" in m and "\n" not in m for m in lines), lines
    assert all("***@db/sweeps" in m and "s3cret" not in m for m in lines)


def test_a_database_that_stays_full_is_said_after_the_retry_window(monkeypatch):
    from sh_scaling.budgeted._driver import _connect

    calls = _full_server(monkeypatch, float("inf"))
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot reach storage .*\(tried for 1 s\).*too many clients already"):
        _connect("postgresql+psycopg2://someone:s3cret@db/sweeps", retry_for=1.0)
    assert calls["n"] == 3 and time.monotonic() - t0 < 1.0 + 0.5  # tried at 0, 0.25 and 0.75 s; 1.75 is too late
    # Any other connection error is said at once: the URL is more likely wrong than the server busy.
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(optuna.storages, "get_storage", lambda s: (_ for _ in ()).throw(
        OperationalError("connect", {}, Exception('FATAL:  password authentication failed for user "someone"'))))
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="password authentication failed"):
        _connect("postgresql+psycopg2://someone:s3cret@db/sweeps", retry_for=60.0)
    assert time.monotonic() - t0 < 0.2


# ------------------------------------------------------------------------------------------ artifact store
def _stop_at_first_resume(config, from_checkpoint, until):
    """Trains as usual; the first resumed segment (round 2) asks its own process to stop once it is done."""
    marker = Path(os.environ["SH_SCALING_TEST_WORKERS_LOG"]) / "stopped"
    if from_checkpoint is not None and not marker.exists():
        marker.write_text("")
        os.kill(os.getpid(), signal.SIGTERM)  # returns within the grace: the segment is recorded, then it stops
    return _workers_train.train(config, from_checkpoint, until)


def test_a_worker_whose_artifact_store_is_not_shared_says_so_and_puts_the_segment_back(tmp_path, log, capsys):
    journal, shared, own = tmp_path / "w.journal", tmp_path / "shared", tmp_path / "own"
    with pytest.raises(SystemExit) as stopped:  # Preempted: round 1 done, one segment of round 2 done
        _sweep(journal, shared).work(_stop_at_first_resume)
    assert stopped.value.code == 0
    study, _ = _study(journal)
    before = {t.number: (t.state, segments(t)) for t in study.get_trials()}
    waiting = [s for _, segs in before.values() for s in segs if s["status"] == "reserved"]
    assert waiting and all(s["resume"] for s in waiting)
    n_calls = len(list(log.glob("call-*.json")))

    own.mkdir()
    code, err = _work(journal, own, capsys)  # a machine that mounted another folder
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "was written by worker" in err and f"not in this worker's artifact store at {str(own)!r}" in err
    assert "the store must be shared" in err
    study, attrs = _study(journal)
    assert "the store must be shared" in attrs[BUDGETED_WORKER_ERRORS_KEY][-1]["error"]
    # Put back as it was: nothing trained, nothing charged again, no attempt counted, no trial running.
    assert {t.number: (t.state, segments(t)) for t in study.get_trials()} == before
    assert len(list(log.glob("call-*.json"))) == n_calls

    sweep = _sweep(journal, shared).work(_workers_train.train)  # a worker with the shared store finishes it
    _same_as_simulator(sweep)
    book = ledger(sweep.study_.get_trials(), sweep.budget)
    assert book["restarts"] == 0 and book["retries"] == 0
