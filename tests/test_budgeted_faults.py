"""Budget-limited halving under faults: processes killed while they report, drivers restarted or started twice,
checkpoint locations read from a storage someone else can write, and what is left in the artifact store.

Every kill here is a real SIGKILL of a real process (forked or spawned), at a chosen storage write.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sh_scaling.budgeted import BudgetedHalving, ledger, segments
from sh_scaling.keys import BUDGETED_CANDIDATE_KEY, BUDGETED_FAILED_KEY, BUDGETED_PLAN_KEY, budgeted_segment_key
from sh_scaling.pruning import reported_compute

optuna.logging.set_verbosity(optuna.logging.ERROR)

#: 20 evaluations at compute 1..20 of one power law.
CURVE = [(float(c), 10.0 / c**0.1) for c in range(1, 21)]
#: Seconds any process of these tests may take; generous for a loaded 2-core machine.
DEADLINE_S = 180


def _journal(path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _curve_fn(config, from_checkpoint, until):
    return [(c, y) for c, y in CURVE if c <= until], b"checkpoint"


def _two_candidates(storage, **kw):
    return BudgetedHalving([{"i": 0}, {"i": 1}], 80.0, max_compute=20.0, storage=storage, study_name="s", **kw)


def _candidate_trials(study):
    return sorted((t for t in study.get_trials() if BUDGETED_CANDIDATE_KEY in t.system_attrs),
                  key=lambda t: t.system_attrs[BUDGETED_CANDIDATE_KEY]["index"])


def _assert_whole_curve(trial):
    """Every evaluation of the curve is stored once, each loss under the step of its own compute."""
    compute = reported_compute(trial)
    got = [(compute.get(s), v) for s, v in sorted(trial.intermediate_values.items())]
    assert got == CURVE


# --------------------------------------------------------------------------- a process killed while it reports
def _kill_at(method: str, n: int) -> None:
    """SIGKILL this process at its ``n``-th call of the storage's ``method`` (before the write happens)."""
    cls = optuna.storages.JournalStorage
    real = getattr(cls, method)
    calls = {"n": 0}

    def wrapper(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *args, **kwargs)

    setattr(cls, method, wrapper)


def _kill_after_losses(n: int) -> None:
    """SIGKILL this process at its first storage write of any kind after ``n`` losses were written."""
    cls = optuna.storages.JournalStorage
    real_loss, real_attr = cls.set_trial_intermediate_value, cls.set_trial_system_attr
    losses = {"n": 0}

    def loss(self, *args, **kwargs):
        if losses["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        losses["n"] += 1
        return real_loss(self, *args, **kwargs)

    def attr(self, *args, **kwargs):
        if losses["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_attr(self, *args, **kwargs)

    cls.set_trial_intermediate_value, cls.set_trial_system_attr = loss, attr


def _driver_killed_while_reporting(journal: str, where: str) -> None:
    if where == "between a compute and its loss":
        _kill_at("set_trial_intermediate_value", 6)
    else:
        _kill_after_losses(5)
    _two_candidates(_journal(journal)).run(_curve_fn)


@pytest.mark.parametrize("where", ["after five points", "between a compute and its loss"])
def test_a_driver_killed_while_it_reports_loses_no_point_and_pairs_every_loss_with_its_compute(tmp_path, where):
    journal = str(tmp_path / "sweep.journal")
    proc = multiprocessing.get_context("fork").Process(target=_driver_killed_while_reporting, args=(journal, where))
    proc.start()
    proc.join(DEADLINE_S)
    assert proc.exitcode == -signal.SIGKILL
    sweep = _two_candidates(_journal(journal)).run(_curve_fn)
    trials = _candidate_trials(sweep.study_)
    for t in trials:
        _assert_whole_curve(t)
        assert [s["status"] for s in segments(t)] == ["done"]
    assert sweep.ledger_["total"] == 40.0


def _train_and_die_while_reporting(config, from_checkpoint, until):
    """In a worker process: the first call arms a SIGKILL at the sixth loss written, then trains."""
    marker = Path(os.environ["SH_SCALING_TEST_MARKER"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        _kill_at("set_trial_intermediate_value", 6)
    return _curve_fn(config, from_checkpoint, until)


def test_a_worker_killed_while_it_reports_is_retried_and_loses_no_point(tmp_path, monkeypatch):
    monkeypatch.setenv("SH_SCALING_TEST_MARKER", str(tmp_path / "killed"))
    sweep = _two_candidates(_journal(tmp_path / "sweep.journal")).run(_train_and_die_while_reporting, n_workers=2)
    assert (tmp_path / "killed").exists()
    trials = _candidate_trials(sweep.study_)
    for t in trials:
        _assert_whole_curve(t)
    died = [s for t in trials for s in segments(t) if s.get("deaths")]
    assert len(died) == 1 and died[0]["status"] == "done" and died[0]["attempts"] == 2
    book = ledger(trials, 80.0)
    assert book["total"] == 40.0 and book["retries"] == 1


#: Evaluations in one segment of the tests of many points (a segment of 100,000 is measured, not tested:
#: ``benchmarks/bench_segment_points.py``).
MANY = 5000


def _many_points_fn(config, from_checkpoint, until):
    return [(until * (k + 1) / MANY, 10.0 / (k + 1) ** 0.1 + config["i"]) for k in range(MANY)], None


class _InterruptedStorage(optuna.storages.InMemoryStorage):
    """Ctrl-C at the ``n``-th loss written (once)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def set_trial_intermediate_value(self, *args, **kwargs):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt
        return super().set_trial_intermediate_value(*args, **kwargs)


def test_a_segment_of_many_points_reports_each_once_also_when_interrupted_while_it_reports():
    storage = _InterruptedStorage(MANY // 2)
    sweep = BudgetedHalving([{"i": 0}, {"i": 1}], 2.0, max_compute=1.0, strategy="UA", storage=storage)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(_many_points_fn)
    sweep.run(_many_points_fn)
    first, second = _candidate_trials(sweep.study_)
    for t in (first, second):
        want = _many_points_fn({"i": t.system_attrs[BUDGETED_CANDIDATE_KEY]["index"]}, None, 1.0)[0]
        compute = reported_compute(t)
        assert sorted(t.intermediate_values) == list(range(MANY))
        assert [(compute[s], t.intermediate_values[s]) for s in range(MANY)] == want
    (interrupted,), (whole,) = segments(first), segments(second)
    assert interrupted["interruptions"] == 1 and interrupted["n_points"] == MANY
    assert interrupted["n_reported"] == MANY - (MANY // 2 - 1)  # the retry wrote exactly the missing losses
    assert whole["n_reported"] == whole["n_points"] == MANY and not whole.get("interruptions")


# ------------------------------------------------------------------- driver restarts are not worker deaths
def _interrupt_then_die(config, from_checkpoint, until):
    """Candidate 0: interrupts its driver twice (Ctrl-C), then its worker process dies once (SIGKILL)."""
    log = Path(os.environ["SH_SCALING_TEST_MARKER"])
    if config["i"] == 0:
        n = len(list(log.glob("call-*"))) + 1
        (log / f"call-{n}").write_text(json.dumps(until))
        if n <= 2:
            raise KeyboardInterrupt
        if n == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    return [(until, 2.0 + config["i"] / 10 + 1 / until)], b"x"


def test_driver_interruptions_do_not_count_as_deaths_of_the_segments_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("SH_SCALING_TEST_MARKER", str(tmp_path))

    def sweep():
        return BudgetedHalving([{"i": i} for i in range(4)], 40.0, max_compute=20.0,
                               storage=_journal(tmp_path / "s.journal"), study_name="s")

    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            sweep().run(_interrupt_then_die)
    done = sweep().run(_interrupt_then_die, n_workers=2)
    first = _candidate_trials(done.study_)[0]
    assert first.state != TrialState.FAIL, first.system_attrs.get(BUDGETED_FAILED_KEY)
    seg = segments(first)[0]
    assert seg["status"] == "done" and seg["interruptions"] == 2 and seg["deaths"] == 1 and seg["attempts"] == 2
    tries = [c for c in tmp_path.glob("call-*") if json.loads(c.read_text()) == seg["until"]]
    assert len(tries) == 4  # two interrupted, one killed, one that trained


# ------------------------------------------------- deaths: only deaths in a row without progress fail a candidate
class _ReportsOneLossPerProcess(optuna.storages.JournalStorage):
    """A journal whose worker processes (not the driver) are SIGKILLed at their second loss write: every
    attempt of a segment reports one more point of its curve, then its worker dies."""

    def set_trial_intermediate_value(self, trial_id, step, intermediate_value):
        if multiprocessing.parent_process() is not None:
            written = getattr(self, "_losses_written", 0)
            if written == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            self._losses_written = written + 1
        return super().set_trial_intermediate_value(trial_id, step, intermediate_value)


def _four_points_fn(config, from_checkpoint, until):
    return [(c, y) for c, y in CURVE[:4] if c <= until], b"checkpoint"


def test_a_segment_killed_again_and_again_while_it_makes_progress_completes(tmp_path, monkeypatch):
    # With the limit at 2, the three deaths of its segment's worker would fail the candidate if they counted.
    monkeypatch.setattr("sh_scaling.budgeted._driver.MAX_DEATHS_WITHOUT_PROGRESS", 2)
    storage = _ReportsOneLossPerProcess(JournalFileBackend(str(tmp_path / "s.journal")))
    sweep = BudgetedHalving([{"i": 0}], 4.0, max_compute=4.0, storage=storage, study_name="s").run(
        _four_points_fn, n_workers=2)
    (trial,) = _candidate_trials(sweep.study_)
    assert trial.state == TrialState.COMPLETE, trial.system_attrs.get(BUDGETED_FAILED_KEY)
    (seg,) = segments(trial)
    # Four points, one reported per attempt: three workers died, each after one more point.
    assert seg["status"] == "done" and seg["deaths"] == 3 and seg["attempts"] == 4 and seg["deaths_in_a_row"] == 0
    assert sum("died after it made progress" in n for n in seg["notes"]) == 3
    compute = reported_compute(trial)
    assert [(compute[s], v) for s, v in sorted(trial.intermediate_values.items())] == CURVE[:4]


def _crash_candidate_0(config, from_checkpoint, until):
    """Candidate 0 kills its own process at the same point every time (a segfault, the OOM killer)."""
    if config["i"] == 0:
        log = Path(os.environ["SH_SCALING_TEST_MARKER"])
        (log / f"call-{len(list(log.glob('call-*')))}").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return _curve_fn(config, from_checkpoint, until)


def test_a_train_fn_that_kills_its_worker_at_the_same_point_fails_its_candidate_after_the_limit(
        tmp_path, monkeypatch):
    monkeypatch.setenv("SH_SCALING_TEST_MARKER", str(tmp_path))
    monkeypatch.setattr("sh_scaling.budgeted._driver.MAX_DEATHS_WITHOUT_PROGRESS", 3)  # 8 respawns: too slow
    sweep = _two_candidates(_journal(tmp_path / "s.journal")).run(_crash_candidate_0, n_workers=2)
    crashed, other = _candidate_trials(sweep.study_)
    assert crashed.state == TrialState.FAIL and other.state == TrialState.COMPLETE
    assert len(list(tmp_path.glob("call-*"))) == 3  # three attempts, then no more
    reason = crashed.system_attrs[BUDGETED_FAILED_KEY]["reason"]
    assert reason.startswith("its segment's worker died 3 times in a row without progress"), reason
    (seg,) = segments(crashed)
    assert seg["status"] == "failed" and seg["deaths"] == seg["deaths_in_a_row"] == 3
    assert all("without progress" in n for n in seg["notes"])


# --------------------------------------------------------------------------------- two drivers on one sweep
N_TWO = 8


def _slow_fn(config, from_checkpoint, until):
    """Holds the very first segment until the test says go, so that a second driver starts meanwhile."""
    log = Path(os.environ["SH_SCALING_TEST_MARKER"])
    (log / f"call-{os.getpid()}-{time.monotonic_ns()}").write_text(json.dumps([config["i"], until]))
    go = log / "go"
    deadline = time.monotonic() + DEADLINE_S
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(until, 2.0 + config["i"] / 10 + 1 / until)], json.dumps([config["i"], until]).encode()


def _two_driver_sweep(journal, budget=40.0):
    return BudgetedHalving([{"i": i} for i in range(N_TWO)], budget, max_compute=20.0, storage=_journal(journal),
                           study_name="s")


def _driver(journal: str, out: str) -> None:
    s = _two_driver_sweep(journal).run(_slow_fn)
    Path(out).write_text(json.dumps({"survivors": s.survivors_, "spent": s.spent_, "best": s.best_loss_}))


def test_a_second_driver_on_a_running_sweep_waits_and_neither_duplicates_trials_nor_overspends(
        tmp_path, monkeypatch):
    monkeypatch.setenv("SH_SCALING_TEST_MARKER", str(tmp_path))
    journal = str(tmp_path / "s.journal")
    ctx = multiprocessing.get_context("fork")
    first = ctx.Process(target=_driver, args=(journal, str(tmp_path / "out-0.json")))
    first.start()
    deadline = time.monotonic() + DEADLINE_S
    while not list(tmp_path.glob("call-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = ctx.Process(target=_driver, args=(journal, str(tmp_path / "out-1.json")))
    second.start()
    # A driver with other settings is refused at once, with the settings that differ.
    with pytest.raises(ValueError, match="budget.* differ"):
        _two_driver_sweep(journal, budget=80.0).run(_slow_fn)
    time.sleep(2.0)  # the second driver is running by now: were it to train, it would while the first waits
    (tmp_path / "go").write_text("")
    first.join(DEADLINE_S)
    second.join(DEADLINE_S)
    assert first.exitcode == 0 and second.exitcode == 0

    study = optuna.load_study(study_name="s", storage=_journal(journal))
    trials = study.get_trials()
    assert len(trials) == N_TWO  # one trial per candidate, none twice
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    every = [s for t in trials for s in segments(t)]
    calls = list(tmp_path.glob("call-*"))
    assert len(calls) == len(every)  # every segment trained once
    book = ledger(trials, 40.0)
    assert book["total"] <= 40.0 and book["reserved"] == 0
    outs = [json.loads((tmp_path / f"out-{k}.json").read_text()) for k in (0, 1)]
    assert outs[0] == outs[1]  # the second driver returns the sweep the first ran


# ------------------------------------------------------------------------------- where checkpoints are kept
def test_an_sqlite_url_of_any_driver_keeps_checkpoints_next_to_the_database(tmp_path):
    db = tmp_path / "s.db"
    sweep = _two_candidates(f"sqlite+pysqlite:///{db}").run(_curve_fn)
    assert Path(sweep.artifact_store_._base_path) == Path(f"{db}.checkpoints")
    assert list(Path(f"{db}.checkpoints").iterdir())


def test_a_database_server_needs_an_artifact_store_named(tmp_path):
    import sqlalchemy

    from sh_scaling.budgeted._driver import _default_checkpoint_folder

    server = SimpleNamespace(engine=SimpleNamespace(url=sqlalchemy.engine.make_url("postgresql://u:secret@db/sweeps")))
    with pytest.raises(ValueError, match=r"needs artifact_store=.*postgresql://u:\*\*\*@db/sweeps") as err:
        _default_checkpoint_folder(server)
    assert "secret" not in str(err.value)
    assert not str(_default_checkpoint_folder(_journal(tmp_path / "j.log"))).startswith(tempfile.gettempdir() + "/sh")


def test_an_in_memory_sweep_keeps_its_checkpoints_in_memory():
    sweep = _two_candidates(None).run(_curve_fn)
    assert sweep.artifact_store_.nbytes > 0


def test_checkpoint_locations_written_into_the_storage_are_not_followed(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    handed = []

    def train_fn(config, ckpt, until):
        handed.append(None if ckpt is None else Path(ckpt).read_bytes())
        if len(handed) == 2:
            raise KeyboardInterrupt
        return [(until, 2.0 + 1 / until)], b"honest checkpoint"

    def sweep():
        return BudgetedHalving([{"i": 0}, {"i": 1}], 40.0, max_compute=20.0, storage=url, study_name="s")

    with pytest.raises(KeyboardInterrupt):
        sweep().run(train_fn)
    # Someone who can write the storage (not the driver's machine) points the sweep at a file of their own.
    evil = tmp_path / "elsewhere"
    evil.mkdir()
    (evil / "payload").write_bytes(b"ATTACKER PICKLE")
    storage = optuna.storages.get_storage(url)
    study = optuna.load_study(study_name="s", storage=storage)
    plan = storage.get_study_system_attrs(study._study_id)[BUDGETED_PLAN_KEY]
    storage.set_study_system_attr(study._study_id, BUDGETED_PLAN_KEY, {**plan, "artifacts": str(evil)})
    t = study.trials[1]
    key = budgeted_segment_key(0)
    storage.set_trial_system_attr(t._trial_id, key, {**t.system_attrs[key], "resume": "../elsewhere/payload"})

    sweep().run(train_fn)
    assert b"ATTACKER PICKLE" not in handed
    seg = segments(optuna.load_study(study_name="s", storage=url).trials[1])[0]
    assert seg["from_scratch"] and any("not an id the artifact store gave" in n for n in seg["notes"])


# ------------------------------------------------------------------------------------------ checkpoint cleanup
def _sized_fn(config, from_checkpoint, until):
    """Checkpoints of a size that differs by candidate and segment, so that sizes tell them apart."""
    return [(until, 2.0 + config["i"] / 10 + 1 / until)], bytes(100 * (config["i"] + 1) + int(until))


def _store_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


@pytest.mark.parametrize("keep", ["last", "all"])
def test_the_artifact_store_ends_with_the_last_checkpoint_of_each_candidate_still_wanted(tmp_path, keep):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    store = optuna.artifacts.FileSystemArtifactStore(str(folder))
    sweep = BudgetedHalving([{"i": i} for i in range(8)], 80.0, max_compute=40.0, storage=None, study_name="s",
                            artifact_store=store, keep_checkpoints=keep).run(_sized_fn)
    trials = _candidate_trials(sweep.study_)
    every = {s["checkpoint"] for t in trials for s in segments(t)}
    wanted = {segments(t)[-1]["checkpoint"] for t in trials if t.state == TrialState.COMPLETE}
    assert wanted and any(t.state == TrialState.PRUNED for t in trials)
    files = _store_files(folder)
    if keep == "all":
        assert set(files) == every
    else:
        assert set(files) == wanted
        assert sum(files.values()) == sum(
            100 * (t.system_attrs[BUDGETED_CANDIDATE_KEY]["index"] + 1) + int(segments(t)[-1]["until"])
            for t in trials if t.state == TrialState.COMPLETE)


def test_keep_checkpoints_is_checked_before_training():
    with pytest.raises(ValueError, match="keep_checkpoints must be 'last'.*got 'some'"):
        BudgetedHalving([{"i": 0}], 1.0, keep_checkpoints="some").run(_sized_fn)
