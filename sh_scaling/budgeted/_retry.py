"""A storage that rides out a dropped connection: each call is retried with backoff for a while.

A worker whose database restarts, or whose network blips, must not give up a segment it is training, nor
leave its trial RUNNING because the write that gives the trial back failed once. Every call of the wrapped
storage that fails with an error of the connection (SQLAlchemy's ``OperationalError``, ``InterfaceError``,
``DisconnectionError``; ``OSError`` such as ``ConnectionError`` or a journal file on a network file system
that is briefly away; gRPC's ``UNAVAILABLE`` from Optuna's gRPC storage proxy that is restarting) is retried
after 0.25 s, then twice as long each time (at most 30 s between tries), for up to :data:`RETRY_FOR_S`
seconds; then the error is raised. Errors of the request itself (a finished trial, a missing key) are raised
at once.

Every write a segment makes can be repeated without harm (records are rewritten whole, points are reported
only where missing), with one exception handled where it happens: a claim (WAITING to RUNNING) whose
acknowledgement was lost. That trial is RUNNING with nobody's heartbeat in it, and is taken back like the
trial of a worker that died (see :meth:`sh_scaling.BudgetedHalving.work`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from optuna.storages import BaseStorage

__all__ = ["RETRY_FOR_S", "RetryingStorage", "is_connection_error"]

#: Seconds a storage call is retried before its error is raised: long enough for a database server to
#: restart or fail over.
RETRY_FOR_S = 300.0
_FIRST_WAIT_S = 0.25
_MAX_WAIT_S = 30.0


def is_connection_error(exc: BaseException) -> bool:
    """An error of the connection to the storage (worth retrying), not of the request."""
    from sqlalchemy import exc as sa  # optuna requires sqlalchemy

    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)):
        return True
    return isinstance(exc, OSError) or _is_proxy_unavailable(exc)


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
        deadline = time.monotonic() + self._retry_for
        wait = _FIRST_WAIT_S
        while True:
            try:
                return getattr(self._inner, name)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - sorted just below
                if not is_connection_error(exc) or time.monotonic() + wait > deadline:
                    raise
            self.retries += 1
            time.sleep(wait)
            wait = min(2 * wait, _MAX_WAIT_S)

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
