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


# --- Vocabulary scaling law ---------------------------------------------------------------------------------
# Tao et al., "Scaling Laws with Vocabulary: Larger Models Deserve Larger Vocabularies", NeurIPS 2024, and the
# reference implementation published with the paper (the numbers below are copied from it to full precision).


@dataclass(frozen=True)
class VocabularyLawConstants:
    """Fitted constants of the three vocabulary-law approaches of Tao et al. (NeurIPS 2024).

    Units: ``nnv_coef``/``nnv_exponent`` map a budget C in FLOPs to compute-optimal non-vocabulary parameters
    (Nnv = exp(nnv_log_coef) * C**nnv_exponent). Approach 1: Nv = exp(a1_log_coef) * C**a1_exponent (Nv
    parameters, C FLOPs). Approach 2: Nv = a2_nv0 * (Nnv / a2_nnv0)**a2_exponent. Approach 3 (parametric loss)
    L = -E + A1/Nnv**alpha1 + A2/Nv**alpha2 + B/D**beta in normalised units: Nnv and Nv in millions,
    C in units of 1e15 FLOPs and therefore D = C / (6 (Nnv + Nv)) in billions of tokens.
    """

    nnv_log_coef: float
    nnv_exponent: float
    a1_log_coef: float
    a1_exponent: float
    a2_nv0: float
    a2_nnv0: float
    a2_exponent: float
    A1: float
    A2: float
    B: float
    E: float
    alpha1: float
    alpha2: float
    beta: float
    source: str = ""


#: Tao et al. 2024 (NeurIPS), Sections 4.1-4.3, and their reference code's constants.
TAO_2024 = VocabularyLawConstants(
    nnv_log_coef=-2.4846510161625193,
    nnv_exponent=0.5,
    a1_log_coef=-1.589031299255507,
    a1_exponent=0.4163622634135234,
    a2_nv0=3_145_728.0,
    a2_nnv0=33_000_000.0,
    a2_exponent=0.8353974035228025,
    A1=1.8313851559554126,
    A2=0.19584238398665638,
    B=2.1241123120064955,
    E=5.5327846803337435,
    alpha1=0.44660634152009615,
    alpha2=0.6707374679896795,
    beta=0.44660634152009615,
    source="Tao et al. 2024 (NeurIPS), Scaling Laws with Vocabulary",
)

#: Width table of Tao et al. 2024 (reference code): (upper bound of Nnv, inclusive; model width d). Models
#: with more non-vocabulary parameters than the last bound use :data:`TAO_2024_WIDTH_ABOVE`.
TAO_2024_WIDTH_TABLE: tuple[tuple[float, int], ...] = (
    (50e6, 512),
    (200e6, 768),
    (500e6, 1024),
    (1e9, 1536),
    (2e9, 2048),
    (5e9, 3200),
    (10e9, 4096),
    (20e9, 5120),
    (50e9, 6048),
    (100e9, 8192),
    (200e9, 12288),
    (500e9, 16384),
    (1e12, 20480),
)
TAO_2024_WIDTH_ABOVE = 24576

#: Range the vocabulary law was fitted on (Tao et al. 2024, Section 4): Nnv 33M-1.13B, V 4K-96K,
#: budgets up to 4.4e20 FLOPs.
TAO_2024_FITTED_NNV = (33e6, 1.13e9)
TAO_2024_FITTED_VOCAB = (4_000, 96_000)
TAO_2024_FITTED_MAX_FLOPS = 4.4e20

__all__ += [
    "VocabularyLawConstants",
    "TAO_2024",
    "TAO_2024_WIDTH_TABLE",
    "TAO_2024_WIDTH_ABOVE",
    "TAO_2024_FITTED_NNV",
    "TAO_2024_FITTED_VOCAB",
    "TAO_2024_FITTED_MAX_FLOPS",
]


# --- Transformer accounting -------------------------------------------------------------------------------------
#: Training FLOPs per parameter per token: a forward pass costs about 2 N FLOPs per token and the backward pass
#: twice that, so C = 6 N D (Kaplan et al., "Scaling Laws for Neural Language Models", 2020, Section 2.1).
FLOPS_PER_PARAM_TOKEN = 6.0

#: Compute-optimal tokens per parameter, about 20 (Hoffmann et al. 2022, Table 3: 1.4T tokens for Chinchilla's
#: 70B parameters).
CHINCHILLA_TOKENS_PER_PARAM = 20.0

#: d_model / n_layers of GPT-3 175B: d_model = 12288, 96 layers (Brown et al., "Language Models are Few-Shot
#: Learners", 2020, Table 2.1).
GPT3_ASPECT_RATIO = 128.0

#: Width of one attention head in GPT-2 and in all but the largest GPT-3 models (Radford et al. 2019;
#: Brown et al. 2020, Table 2.1: d_head = 64 up to 2.7B parameters).
GPT_HEAD_DIM = 64

__all__ += ["FLOPS_PER_PARAM_TOKEN", "CHINCHILLA_TOKENS_PER_PARAM", "GPT3_ASPECT_RATIO", "GPT_HEAD_DIM"]
