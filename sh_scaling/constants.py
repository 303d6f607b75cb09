"""Every number that comes from a paper, in one place, cited next to where it is defined.

Tests in ``tests/test_constants.py`` (and the tests of each law) check these against the papers' own examples.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChinchillaConstants", "HOFFMANN_2022", "EPOCH_2024"]


@dataclass(frozen=True)
class ChinchillaConstants:
    """Constants of L(N, D) = E + A / N**alpha + B / D**beta (N parameters, D training tokens)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str = ""


#: Hoffmann et al., "Training Compute-Optimal Large Language Models" (2022), Approach 3, eq. (10).
HOFFMANN_2022 = ChinchillaConstants(
    E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, source="Hoffmann et al. 2022, Approach 3"
)

#: Besiroglu et al. (Epoch AI), "Chinchilla Scaling: A replication attempt" (2024): refit of Approach 3.
EPOCH_2024 = ChinchillaConstants(
    E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658, source="Besiroglu et al. 2024 (Epoch AI refit)"
)
