"""The lease of a budgeted sweep (``sh_scaling.budgeted._lease``): one holder at a time, also while it changes hands."""

from __future__ import annotations

import multiprocessing

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import sh_scaling
from sh_scaling.budgeted._lease import Lease, create_sweep_study
from sh_scaling.keys import BUDGETED_LEASE_KEY

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _journal(path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _hold_and_give_back(path: str) -> None:
    storage = _journal(path)
    lease = Lease(storage, "s", storage.get_study_id_from_name("s"))
    assert lease.acquire()
    lease.release(finished=False)


def test_a_lease_claimed_again_is_not_taken_over_on_its_last_holders_record(tmp_path):
    path = str(tmp_path / "s.journal")
    storage = _journal(path)
    assert create_sweep_study(storage, "s")
    Lease(storage, "s", storage.get_study_id_from_name("s")).create_root()
    # A process held the lease, gave it back and is gone.
    proc = multiprocessing.get_context("fork").Process(target=_hold_and_give_back, args=(path,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    link = Lease(storage, "s", storage.get_study_id_from_name("s"))._current()
    assert link.state == TrialState.WAITING
    # The next holder claims it: RUNNING first, its own record a moment later. A third process that looks in
    # between must not take the lease over on the strength of the last holder, whose process is gone.
    assert storage.set_trial_state_values(link._trial_id, TrialState.RUNNING)
    waiting = Lease(storage, "s", storage.get_study_id_from_name("s"))
    polls = iter(range(3))
    assert waiting.acquire(give_up=lambda: next(polls, None) is None) is False
    after = storage.get_trial(link._trial_id)
    assert after.state == TrialState.RUNNING and after.system_attrs[BUDGETED_LEASE_KEY]["holder"] is None
    assert len(waiting._links()) == 1  # no second link: nobody took over


class _HeldReads:
    """The reads of the storage made by the process holding a sweep's lease, one list per hold: ``(method, trial
    id or None)`` for each outermost call (a call the storage makes to itself belongs to the outer one)."""

    def __init__(self, monkeypatch) -> None:
        self.holds: list[list[tuple[str, int | None]]] = []
        self._held = False
        acquire, release = Lease.acquire, Lease.release

        def counted_acquire(lease, *args, **kwargs):
            held = acquire(lease, *args, **kwargs)
            if held:
                self.holds.append([])
                self._held = True
            return held

        def counted_release(lease, *args, **kwargs):
            try:
                release(lease, *args, **kwargs)
            finally:
                self._held = False

        monkeypatch.setattr(Lease, "acquire", counted_acquire)
        monkeypatch.setattr(Lease, "release", counted_release)

    def storage(self) -> optuna.storages.InMemoryStorage:
        storage = optuna.storages.InMemoryStorage()
        depth = [0]
        for name in [n for n in dir(optuna.storages.BaseStorage) if n.startswith("get_")]:
            real = getattr(storage, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                if self._held and depth[0] == 0:
                    trial_id = args[0] if _name in ("get_trial", "get_trial_system_attrs") else None
                    self.holds[-1].append((_name, trial_id))
                depth[0] += 1
                try:
                    return _real(*args, **kwargs)
                finally:
                    depth[0] -= 1

            setattr(storage, name, counted)
        return storage


def _worked_sweep(reads: _HeldReads, n: int, folder) -> list[int]:
    """A sweep of ``n`` replayed candidates in two rounds (``n`` then 2), worked by one worker in this process;
    the ids of its candidates' trials."""
    curve = [(float(c), 10.0 / c**0.1) for c in range(1, 21)]

    def train(config, from_checkpoint, until):
        return [(c, y + config["i"] / 10) for c, y in curve if c <= until], b"checkpoint"

    sweep = sh_scaling.BudgetedHalving(
        [{"i": i} for i in range(n)], 0.4 * n * 20, max_compute=20.0, reduction_factor=n / 2,
        storage=reads.storage(), study_name="reads", artifact_store=FileSystemArtifactStore(str(folder)))
    sweep.work(train)
    assert sweep.survivors_ == [list(range(n)), [0, 1]]
    return [t._trial_id for t in sweep.study_.get_trials()]


def test_the_lease_holder_reads_the_candidates_at_once_however_many_they_are(tmp_path, monkeypatch):
    # Every other worker waits while one holds the sweep's lease, and each read is a round trip to a shared
    # database: the steps under the lease (opening a round, closing it, the final close that settles every
    # candidate and cleans checkpoints) read all the candidates in one call, not each one apart.
    reads = _HeldReads(monkeypatch)
    by_n = {}
    for n in (8, 48):
        del reads.holds[:]
        (tmp_path / str(n)).mkdir()
        candidates = set(_worked_sweep(reads, n, tmp_path / str(n)))
        one_by_one = [(h, name) for h, hold in enumerate(reads.holds, start=1) for name, tid in hold
                      if tid in candidates]
        assert one_by_one == [], f"{n} candidates: candidates read one by one under the lease: {one_by_one[:5]}"
        by_n[n] = [len(hold) for hold in reads.holds]
    # The same rounds, the same holds: each makes as many reads with 48 candidates as with 8.
    assert by_n[48] == by_n[8]
