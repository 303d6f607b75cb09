"""Checkpoints in memory, for a sweep whose study is in memory too (one process, gone when it ends)."""

from __future__ import annotations

import threading
from io import BytesIO
from typing import BinaryIO

from optuna.artifacts.exceptions import ArtifactNotFound

__all__ = ["MemoryArtifactStore"]


class MemoryArtifactStore:
    """An Optuna artifact store (``open_reader``, ``write``, ``remove``) that keeps each artifact as bytes.

    The default of :class:`~sh_scaling.BudgetedHalving` with an in-memory study: the checkpoints live and die with
    the study, and nothing is left on disk. ``nbytes`` is what it holds.
    """

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def open_reader(self, artifact_id: str) -> BinaryIO:
        with self._lock:
            if artifact_id not in self._blobs:
                raise ArtifactNotFound(f"artifact {artifact_id} is not in this in-memory store")
            return BytesIO(self._blobs[artifact_id])

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        data = content_body.read()
        with self._lock:
            self._blobs[artifact_id] = data

    def remove(self, artifact_id: str) -> None:
        with self._lock:
            if artifact_id not in self._blobs:
                raise ArtifactNotFound(f"artifact {artifact_id} is not in this in-memory store")
            del self._blobs[artifact_id]

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._blobs.values())
