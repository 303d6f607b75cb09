"""Downloads into the cache, shared by the data loaders: verified, atomic, and leaving nothing half-written.

A file is streamed into a locked ``.part`` file beside its target, checked (sha256, and whatever the loader
adds), then renamed into place. The lock tells a live download from one whose process was killed (the kernel
releases it however the process dies); :func:`remove_abandoned_parts` removes the unlocked ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: abandoned partial downloads are recognised by their age alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["cache_root", "download", "remove_abandoned_parts"]

#: Without file locks (Windows), a temporary download file untouched for this long was left by a killed process.
STALE_PART_SECONDS = 3600.0


def cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The library's cache directory: ``cache_dir``, else ``$SH_SCALING_CACHE``, else ``$XDG_CACHE_HOME`` (or
    ``~/.cache``) ``/sh_scaling``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("SH_SCALING_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sh_scaling"


# Why not a download library such as pooch (sha256 checks, a rename once complete): it would bring requests and
# two more packages into the core dependencies for one file, it reads no file:// URLs (mirrors, the tests), and
# its temporary file too stays behind when its process is killed, which is what the lock is for.
def download(
    url: str,
    target: Path,
    *,
    sha256: str | None,
    timeout: float,
    what: str,
    by_hand: str,
    unwritable: Callable[[Path, OSError], OSError],
    check: Callable[[Path], None] | None = None,
) -> None:
    """Stream ``url`` into a locked temporary file beside ``target``, verify it, then rename it atomically.

    Args:
        what: The data, for messages ("the routing curves").
        by_hand: What to do instead, appended to a failed download's message.
        unwritable: Builds the error for a cache directory that cannot be written.
        check: A further check of the complete file (e.g. that a gzip stream is whole), raising on failure.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_locked_part(target)
    except OSError as err:
        raise unwritable(target.parent, err) from None
    try:
        # The file stays open, so locked, until it is in place: a cleaner must never take it for abandoned.
        with os.fdopen(fd, "wb") as out:
            digest = hashlib.sha256()
            received = 0
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    declared = response.headers.get("Content-Length")
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                # A connection closed early ends the read loop quietly; the declared length tells.
                if declared is not None and declared.isdigit() and received != int(declared):
                    raise OSError(f"connection closed after {received} of {declared} bytes")
            except (OSError, http.client.HTTPException) as err:
                raise OSError(f"could not download {what} from {url}: {err}. {by_hand}") from err
            out.flush()
            if sha256 is not None and digest.hexdigest() != sha256:
                raise ValueError(
                    f"download from {url} is corrupt or incomplete: sha256 {digest.hexdigest()} "
                    f"({received} bytes), expected {sha256}; nothing was cached"
                )
            if check is not None:
                check(tmp)
            if fcntl is not None:
                os.replace(tmp, target)  # POSIX renames an open file
        if fcntl is None:
            os.replace(tmp, target)  # Windows cannot, and has no lock to keep
    finally:
        tmp.unlink(missing_ok=True)


def _new_locked_part(target: Path) -> tuple[int, Path]:
    """A new ``.part`` file beside ``target``: its descriptor, holding a lock until it is closed, and its path."""
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        part = Path(name)
        if fcntl is None:
            return fd, part
        fcntl.flock(fd, fcntl.LOCK_EX)
        # Between mkstemp and flock the file was unlocked, and a cleaner may have removed it: then start again.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(part).st_ino == os.fstat(fd).st_ino:
                return fd, part
        os.close(fd)


def remove_abandoned_parts(target: Path) -> None:
    """Remove the ``.part`` files of downloads of ``target`` that were killed (their lock is free); live
    downloads keep theirs."""
    for part in target.parent.glob(f".{target.name}.*.part"):
        with contextlib.suppress(OSError):  # gone meanwhile, locked by a live download, or a read-only cache
            if fcntl is None:
                if part.stat().st_mtime < time.time() - STALE_PART_SECONDS:
                    part.unlink()
                continue
            fd = os.open(part, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink()
            finally:
                os.close(fd)
