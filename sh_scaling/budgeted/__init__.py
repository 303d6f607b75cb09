"""sh_scaling.budgeted: budget-limited sweeps.

* :class:`BudgetedHalving`: the paper's fixed-budget successive halving executed on real training, with
  candidates paused and resumed from checkpoints, under a total compute budget, on one or many processes.
* :class:`ComputeBudget`: keeps any Optuna study within a compute budget (for the asynchronous pruner, or any
  study that reports compute): each trial reserves its planned compute in the storage before it trains
  (:meth:`ComputeBudget.reserve`), and the callback stops ``study.optimize`` when no further trial fits.
* :class:`Preempted`: what :meth:`BudgetedHalving.run` and :meth:`BudgetedHalving.work` raise when the process
  was told to stop (SIGTERM): a ``SystemExit`` with status 0, after the running segments were done or put back.
* :class:`CheckpointError`: what a ``train_fn`` raises when it cannot load the checkpoint it was handed.
* :class:`VersionMismatch`, :class:`ArtifactStoreNotShared`: the ``ValueError`` a worker raises when it runs
  another release of sh_scaling than the one that started the sweep, or when its artifact store lacks a
  checkpoint another worker recorded; each is also kept in the study by :func:`record_worker_error`.
* :func:`segments`, :func:`ledger`, :func:`round_share`: the records a sweep leaves in its study, the budget
  they add up to, and how a round's share shrinks when the budget runs short.
"""

from sh_scaling.budgeted._budget import ComputeBudget, ledger, round_share
from sh_scaling.budgeted._compat import VersionMismatch
from sh_scaling.budgeted._driver import ArtifactStoreNotShared, BudgetedHalving
from sh_scaling.budgeted._preempt import PREEMPT_GRACE_S, Preempted
from sh_scaling.budgeted._records import segments
from sh_scaling.budgeted._segment import CheckpointError
from sh_scaling.budgeted._worker_errors import record_worker_error

__all__ = [
    "PREEMPT_GRACE_S", "ArtifactStoreNotShared", "BudgetedHalving", "CheckpointError", "ComputeBudget", "Preempted",
    "VersionMismatch", "ledger", "record_worker_error", "round_share", "segments",
]
