"""A storage that rides out a dropped connection: each call is retried with backoff for a while.

A worker whose database restarts, or whose network blips, must not give up a segment it is training, nor
leave its trial RUNNING because the write that gives the trial back failed once. Every call of the wrapped
storage that fails with an error of the connection (SQLAlchemy's ``OperationalError``, ``InterfaceError``,
``DisconnectionError``; ``OSError`` such as ``ConnectionError`` or a journal file on a network file system
that is briefly away; gRPC's ``UNAVAILABLE`` from Optuna's gRPC storage proxy that is restarting) is retried
after 0.25 s, then twice as long each time (at most 30 s between tries), for up to :data:`RETRY_FOR_S`
seconds; then the error is raised. Errors of the request itself (a finished trial, a missing key) are raised
at once. Opening the storage is retried with the same backoff when the server is there but takes no new
connection now (:func:`is_server_busy`: PostgreSQL at ``max_connections`` says ``FATAL: sorry, too many
clients already``); see :func:`sh_scaling.budgeted._driver._connect`.

Every write a segment makes can be repeated without harm (records are rewritten whole, points are reported
only where missing), with one exception handled where it happens: a claim (WAITING to RUNNING) whose
acknowledgement was lost. That trial is RUNNING with nobody's heartbeat in it, and is taken back like the
trial of a worker that died (see :meth:`sh_scaling.BudgetedHalving.work`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from optuna.storages import BaseStorage

__all__ = ["RETRY_FOR_S", "RetryingStorage", "backoff", "is_connection_error", "is_server_busy"]

#: Seconds a storage call is retried before its error is raised: long enough for a database server to
#: restart or fail over.
RETRY_FOR_S = 300.0
_FIRST_WAIT_S = 0.25
_MAX_WAIT_S = 30.0

#: What a database server that is up says when it takes no new connection now: PostgreSQL at
#: ``max_connections`` ("sorry, too many clients already"), at a role's or database's connection limit, with
#: only the slots reserved for superusers left, or starting up; MySQL at ``max_connections`` ("Too many
#: connections").
_SERVER_BUSY = ("too many clients", "too many connections", "remaining connection slots are reserved",
                "the database system is starting up")


def backoff(retry_for: float) -> Iterator[float]:
    """The waits between the tries of a call retried for up to ``retry_for`` seconds from now: 0.25 s, then
    twice as long each time (at most 30 s), while the next try would start within ``retry_for`` seconds."""
    deadline = time.monotonic() + retry_for

    def waits() -> Iterator[float]:
        wait = _FIRST_WAIT_S
        while time.monotonic() + wait <= deadline:
            yield wait
            wait = min(2 * wait, _MAX_WAIT_S)

    return waits()


def is_connection_error(exc: BaseException) -> bool:
    """An error of the connection to the storage (worth retrying), not of the request."""
    from sqlalchemy import exc as sa  # optuna requires sqlalchemy

    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)):
        return True
    return isinstance(exc, OSError) or _is_proxy_unavailable(exc)


def is_server_busy(exc: BaseException) -> bool:
    """A connection error of a database server that is there but takes no new connection now (see
    ``_SERVER_BUSY``): worth waiting for when a process connects, unlike a server it cannot reach at all (a
    wrong host or port, a refused connection, a wrong password), whose URL is more likely wrong."""
    cause: BaseException | None = exc
    while cause is not None:  # Optuna wraps some errors (StorageInternalError)
        if is_connection_error(cause) and any(m in str(cause).lower() for m in _SERVER_BUSY):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _is_proxy_unavailable(exc: BaseException) -> bool:
    """Optuna's gRPC storage proxy cannot be reached (stopped, restarting, the network between): gRPC's
    ``UNAVAILABLE``, which :class:`optuna.storages.GrpcStorageProxy` raises as it is."""
    grpc = sys.modules.get("grpc")  # an RpcError exists only where grpc was imported
    if grpc is None or not isinstance(exc, grpc.RpcError):
        return False
    code = getattr(exc, "code", None)
    return callable(code) and code() == grpc.StatusCode.UNAVAILABLE


class RetryingStorage(BaseStorage):
    """Wraps an Optuna storage; every call is retried on connection errors (see the module docstring)."""

    def __init__(self, storage: BaseStorage, retry_for: float = RETRY_FOR_S) -> None:
        self._inner = storage
        self._retry_for = float(retry_for)
        #: Calls that failed and were tried again (for tests and logs).
        self.retries = 0

    @property
    def inner(self) -> BaseStorage:
        return self._inner

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        waits = backoff(self._retry_for)
        while True:
            try:
                return getattr(self._inner, name)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - sorted just below
                wait = next(waits, None) if is_connection_error(exc) else None
                if wait is None:
                    raise
            self.retries += 1
            time.sleep(wait)

    # Optuna's abstract methods, forwarded (the rest of BaseStorage's public methods are forwarded below).
    def create_new_study(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('create_new_study', *args, **kwargs)

    def create_new_trial(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('create_new_trial', *args, **kwargs)

    def delete_study(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('delete_study', *args, **kwargs)

    def get_all_studies(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_all_studies', *args, **kwargs)

    def get_all_trials(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_all_trials', *args, **kwargs)

    def get_study_directions(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_study_directions', *args, **kwargs)

    def get_study_id_from_name(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_study_id_from_name', *args, **kwargs)

    def get_study_name_from_id(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_study_name_from_id', *args, **kwargs)

    def get_study_system_attrs(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_study_system_attrs', *args, **kwargs)

    def get_study_user_attrs(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_study_user_attrs', *args, **kwargs)

    def get_trial(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('get_trial', *args, **kwargs)

    def set_study_system_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('set_study_system_attr', *args, **kwargs)

    def set_study_user_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('set_study_user_attr', *args, **kwargs)

    def set_trial_intermediate_value(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('set_trial_intermediate_value', *args, **kwargs)

    def set_trial_param(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('set_trial_param', *args, **kwargs)

    def set_trial_state_values(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('set_trial_state_values', *args, **kwargs)

    def set_trial_system_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('set_trial_system_attr', *args, **kwargs)

    def set_trial_user_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call('set_trial_user_attr', *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Storage-specific extras (an RDB storage's engine, a journal's backend) are reached as they are.
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"_inner": self._inner, "_retry_for": self._retry_for, "retries": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _forward(name: str) -> Any:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    return method


for _name in [n for n in dir(BaseStorage) if not n.startswith("_") and callable(getattr(BaseStorage, n))]:
    if _name not in vars(RetryingStorage):
        setattr(RetryingStorage, _name, _forward(_name))
