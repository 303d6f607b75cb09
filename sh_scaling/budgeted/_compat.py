"""Which processes may work on a sweep: the version of sh_scaling that started it, recorded in its plan.

Every process of a sweep reads and writes the same records and makes decisions that must agree, so a worker
or driver of another release must not join silently. The plan records the release that started the sweep
(:data:`VERSION_FIELD`) and the format of the records (:data:`FORMAT_FIELD`, :data:`RECORDS_FORMAT`). A
process joins when its records format is the same and its release has the same major and minor version:
a patch-level difference (0.1.0 and 0.1.3) is allowed, so that a fix can be rolled out to the workers of a
running sweep. A release that changes what a sweep records or how it decides raises at least the minor
version (and the records format when the records change). Anything else is refused with
:class:`VersionMismatch`, naming both versions.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FORMAT_FIELD", "RECORDS_FORMAT", "VERSION_FIELD", "VersionMismatch", "check_joinable", "this_version"]

#: Format of the records a sweep keeps in its study (plan, rounds, segments); raised when they change.
RECORDS_FORMAT = 2
#: The plan's field holding :data:`RECORDS_FORMAT` as the sweep's creator wrote it.
FORMAT_FIELD = "version"
#: The plan's field holding the sh_scaling release that started the sweep.
VERSION_FIELD = "sh_scaling_version"


class VersionMismatch(ValueError):
    """A process of another sh_scaling release (or records format) tried to work on a sweep."""


def this_version() -> str:
    """The release of sh_scaling running here (read at call time)."""
    import sh_scaling

    return str(sh_scaling.__version__)


def _major_minor(version: str) -> tuple[str, ...]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return match.groups() if match else (version,)


def check_joinable(plan: dict[str, Any], study_name: str) -> None:
    """Raise :class:`VersionMismatch` unless this process may work on the sweep whose stored plan is ``plan``.

    A plan without :data:`VERSION_FIELD` was written before releases were recorded: only its records format is
    checked.
    """
    mine = this_version()
    stored_format = plan.get(FORMAT_FIELD)
    theirs = plan.get(VERSION_FIELD)
    started = f"sh_scaling {theirs}" if theirs is not None else "an sh_scaling release that did not record itself"
    if stored_format != RECORDS_FORMAT:
        raise VersionMismatch(
            f"study {study_name!r} holds a budgeted sweep started by {started} (records format {stored_format}); "
            f"this process runs sh_scaling {mine} (records format {RECORDS_FORMAT}), which cannot read its records: "
            "install the release that started the sweep on every worker")
    if theirs is not None and _major_minor(str(theirs)) != _major_minor(mine):
        raise VersionMismatch(
            f"study {study_name!r} holds a budgeted sweep started by sh_scaling {theirs}; this process runs "
            f"sh_scaling {mine}: every worker of a sweep must run the same major.minor release (a patch-level "
            f"difference is allowed), so install sh_scaling {'.'.join(_major_minor(str(theirs)))}.x here")
