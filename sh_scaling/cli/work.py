"""``sh-scaling work``: one worker of a budgeted sweep (:meth:`sh_scaling.BudgetedHalving.work`).

Start the sweep once, from any process, with ``sh-scaling start`` (or ``BudgetedHalving(candidates, budget,
..., storage=URL, study_name=NAME).start()``); then run this command on as many machines as you like, each with
the same storage, study and artifact directory. It exits 0 when the sweep is finished; when the process is told
to stop (SIGTERM: the segment it trains is finished within the grace, or put back) it exits with
``--stopped-exit-code`` (default 0, so that Slurm's ``--requeue`` requeues it; Kubernetes needs a non-zero
code, see the option); 2 with a one-line error when it cannot work: a storage it cannot reach, a study with no
sweep, a train function it cannot import, another release of sh_scaling than the sweep's, an artifact store
that lacks a checkpoint another worker recorded (the last three are also recorded in the study, under
:data:`~sh_scaling.keys.BUDGETED_WORKER_ERRORS_KEY`, and leave no segment claimed).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from sh_scaling.cli._output import count_at_least

__all__ = ["register", "load_train_fn", "storage_from_arg"]

DESCRIPTION = (
    "Work on a budgeted sweep as one of any number of workers: claim a granted segment, train it with the "
    "train function, report it, upload its checkpoint; close rounds; exit 0 when the sweep is finished or "
    "when told to stop (SIGTERM). Start the sweep first with BudgetedHalving(...).start()."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("work", help="work on a budgeted sweep as one of many workers", description=DESCRIPTION)
    p.add_argument("--storage", required=True,
                   help="the sweep's storage: an RDB URL (postgresql://..., mysql://..., sqlite:///...) or the "
                   "path of a journal file")
    p.add_argument("--study", required=True, help="the sweep's study name")
    p.add_argument("--train", required=True, metavar="MODULE:FUNCTION",
                   help="train_fn(config, from_checkpoint, until_compute) -> (points, checkpoint), importable here")
    p.add_argument("--artifacts", default=None, metavar="DIR",
                   help="the shared checkpoint folder (default: <file>.checkpoints next to a journal file or "
                   "SQLite database; required with a database server)")
    p.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                   help="seconds train_fn may go on after SIGTERM before its segment is put back (default 20)")
    p.add_argument("--stopped-exit-code", type=count_at_least(0), default=0, metavar="CODE",
                   help="exit status when told to stop (SIGTERM) before the sweep is finished (default 0, for "
                   "Slurm's --requeue). On Kubernetes give 143: a pod whose container exits 0 is Succeeded and a "
                   "Job does not replace it, while a podFailurePolicy rule can ignore 143 and replace the pod")
    p.set_defaults(func=_run)


def storage_from_arg(spec: str, *, create: bool = False) -> Any:
    """An RDB URL as it is, a journal file path as a ``JournalStorage``: the file must exist unless ``create``
    (a worker given a mistyped path should say so, not start an empty sweep of its own)."""
    if "://" in spec:
        return spec
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if create and not os.path.exists(spec):
        folder = os.path.dirname(os.path.abspath(spec))
        if not os.path.isdir(folder):
            raise ValueError(f"--storage {spec!r}: no folder {folder!r} to create the journal file in")
    elif not os.path.isfile(spec):
        raise ValueError(f"--storage {spec!r}: no such journal file (and not a URL such as postgresql://...)")
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def load_train_fn(spec: str) -> Callable[..., Any]:
    """``module:function`` imported here, or ``ValueError`` naming why it cannot be."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--train {spec!r}: expected MODULE:FUNCTION, e.g. mypackage.train:train_fn")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure means the same to the user
        raise ValueError(f"cannot import train function {spec!r}: {type(exc).__name__}: {exc} "
                         f"(sys.path starts {sys.path[:3]})") from exc
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"cannot import train function {spec!r}: module {module_name!r} has no {attr!r}")
    if not callable(fn):
        raise ValueError(f"train function {spec!r} is a {type(fn).__name__}, not callable")
    return fn


def _record_error(sweep: Any, message: str) -> None:
    """Keep a worker's error in the study, where whoever watches the sweep sees it."""
    import optuna

    from sh_scaling.budgeted import record_worker_error

    try:
        study = optuna.load_study(storage=sweep.storage, study_name=sweep.study_name)
    except Exception:  # noqa: BLE001 - the error is printed anyway
        return
    record_worker_error(study._storage, study._study_id, message)


def _run(args: argparse.Namespace) -> int:
    import optuna

    from sh_scaling.budgeted import BudgetedHalving, Preempted

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    artifact_store = None
    if args.artifacts is not None:
        if not os.path.isdir(args.artifacts):
            raise ValueError(f"--artifacts {args.artifacts!r} is not a folder")
        artifact_store = optuna.artifacts.FileSystemArtifactStore(args.artifacts)
    sweep = BudgetedHalving.join(storage_from_arg(args.storage), args.study, artifact_store=artifact_store)
    try:
        train_fn = load_train_fn(args.train)
    except ValueError as exc:
        _record_error(sweep, f"sh-scaling work: {exc}")
        raise
    kw = {} if args.grace is None else {"preempt_grace": args.grace}
    try:
        sweep.work(train_fn, **kw)
    except Preempted as exc:
        print(f"sh-scaling work: {exc}", file=sys.stderr)
        return int(args.stopped_exit_code)
    book = sweep.ledger_
    print(f"sweep {args.study!r} finished: {book['total']:.6g} of {book['budget']:.6g} spent in "
          f"{book['segments']} segments; best loss {sweep.best_loss_:.6g} (candidate {sweep.best_index_})")
    return 0
