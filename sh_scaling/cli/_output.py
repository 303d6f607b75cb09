"""Checks of the files a command will write, made before the command does its (possibly long) work.

A command that runs for minutes and then cannot write its result has wasted those minutes, and one that
silently replaces last week's result has destroyed it; so every output path is checked first, and an existing
file is replaced only with ``--force``. Each refusal is a ``ValueError`` naming the option and the path, which
:func:`sh_scaling.cli.main` prints as one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["check_output_file", "check_output_dir", "write_results"]


def check_output_file(path: str | os.PathLike[str], *, option: str, force: bool) -> Path:
    """``path`` as a :class:`Path` if the command may write a file there.

    Raises:
        ValueError: ``path`` is a directory, exists and ``force`` is false, or its folder cannot be created or
            written to.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {str(p)!r} is a directory; give the name of a file")
    if p.exists() and not force:
        raise ValueError(f"{option} {str(p)!r} already exists; pass --force to overwrite it")
    _check_folder_can_be_written(p.parent, option, p)
    return p


def check_output_dir(
    path: str | os.PathLike[str], names: Iterable[str], *, option: str, force: bool
) -> Path:
    """``path`` as a :class:`Path` if the command may write the files ``names`` into that directory.

    Raises:
        ValueError: ``path`` is a file, already holds some of ``names`` and ``force`` is false, or cannot be
            created or written to.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option} {str(p)!r} is a file, not a directory")
    if p.is_dir():
        clashes = [n for n in names if (p / n).exists()]
        if clashes and not force:
            raise ValueError(
                f"{option} {str(p)!r} already holds {', '.join(clashes)}; pass --force to overwrite, or choose "
                "another directory"
            )
        taken = [n for n in clashes if (p / n).is_dir()]
        if taken:
            raise ValueError(f"{option} {str(p)!r}: {', '.join(taken)} is a directory, where a file is written")
    _check_folder_can_be_written(p, option, p)
    return p


def _check_folder_can_be_written(folder: Path, option: str, given: Path) -> None:
    """The nearest existing ancestor of ``folder`` must be a writable directory (the rest is created later)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {str(given)!r}: {str(existing)!r} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(given)!r}: the directory {str(existing)!r} is not writable")


def write_results(out: str | os.PathLike[str], runs: Any, summary: Any, meta: Mapping[str, Any]) -> Path:
    """``runs.csv``, ``summary.csv`` and ``summary.json`` (``meta`` plus the summary's rows) in ``out``, which
    :func:`check_output_dir` has cleared before the work."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if "rungs" in getattr(runs, "columns", ()):
        # Decision records as JSON text, one cell per trial, so that the CSV reads back as it was written.
        runs = runs.assign(rungs=runs["rungs"].map(lambda r: json.dumps(r, default=str)))
    runs.to_csv(folder / "runs.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)
    record = {**meta, "summary": json.loads(summary.to_json(orient="records"))}
    (folder / "summary.json").write_text(json.dumps(record, indent=2))
    return folder
