"""Checks of the command line's inputs and of the files a command will write, made before the (possibly long)
work; and a folder written completely or not at all.

A command that runs for minutes and then cannot write its result has wasted those minutes, and one that
silently replaces last week's result has destroyed it; so every output path is checked first, and an existing
file is replaced only with ``--force``. Each refusal is a ``ValueError`` naming the option and the path, which
:func:`sh_scaling.cli.main` prints as one line. Options with a range are checked by argparse ``type=``
validators (:func:`count_at_least`, :func:`number_in`), which argparse reports as one line naming the option.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["check_output_file", "check_output_dir", "count_at_least", "number_in", "staged_dir", "write_results"]


def count_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type=``: an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def number_in(
    low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number in the range from ``low`` to ``high`` (each end included unless
    ``low_open``/``high_open``)."""
    left, right = "(" if low_open else "[", ")" if high_open or math.isinf(high) else "]"
    span = f"{left}{low:g}, {high:g}{right}" if math.isfinite(high) else f"{left}{low:g}, inf)"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be in {span}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; its files move into ``out`` when the block ends
    without an error. On an error the folder is removed, with the folders made for it, and ``out`` is left as
    it was.

    A new ``out`` is the temporary folder renamed, in one step. Into an existing ``out`` (``--force``) each
    file moves by an atomic rename, after all of them were written.
    """
    made = []
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        made.append(parent)
        parent = parent.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkdtemp: its folder is private (0700), and a new ``out`` would keep that mode.
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            for path in sorted(staging.iterdir()):
                os.replace(path, out / path.name)
            staging.rmdir()
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise


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
