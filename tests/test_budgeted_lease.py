"""The lease of a budgeted sweep (``sh_scaling.budgeted._lease``): one holder at a time, also while it changes hands."""

from __future__ import annotations

import multiprocessing

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

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
