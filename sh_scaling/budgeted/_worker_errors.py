"""Errors of processes that could not work on a sweep, kept in its study where whoever watches the sweep sees
them (:data:`~sh_scaling.keys.BUDGETED_WORKER_ERRORS_KEY`): a train function it could not import, another
release of sh_scaling, an artifact store that is not the one the other workers share."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone
from typing import Any

from sh_scaling.keys import BUDGETED_WORKER_ERRORS_KEY

__all__ = ["KEEP_ERRORS", "record_worker_error"]

#: How many of the latest worker errors the study keeps (a crash-looping pod must not grow the study forever).
KEEP_ERRORS = 20


def record_worker_error(storage: Any, study_id: int, message: str) -> None:
    """Append ``{host, pid, error, at}`` to the study's worker errors; never raises (the worker prints the error
    anyway, and a storage that refuses this write must not hide it)."""
    try:
        errors = list(storage.get_study_system_attrs(study_id).get(BUDGETED_WORKER_ERRORS_KEY) or [])
        errors.append({"host": socket.gethostname(), "pid": os.getpid(), "error": message,
                       "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        storage.set_study_system_attr(study_id, BUDGETED_WORKER_ERRORS_KEY, errors[-KEEP_ERRORS:])
    except Exception:  # noqa: BLE001 - see above
        pass
