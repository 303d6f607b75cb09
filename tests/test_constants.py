"""Numbers from papers, against the papers' own examples."""

import pytest

from sh_scaling.constants import (
    CHINCHILLA_TOKENS_PER_PARAM,
    FLOPS_PER_PARAM_TOKEN,
    GPT3_ASPECT_RATIO,
    GPT_HEAD_DIM,
)


def test_chinchilla_tokens_per_parameter():
    # Hoffmann et al. 2022: Chinchilla, 70B parameters trained on 1.4T tokens.
    assert 1.4e12 / 70e9 == pytest.approx(CHINCHILLA_TOKENS_PER_PARAM)


def test_six_n_d_matches_chinchilla_budget():
    # Hoffmann et al. 2022, Table 3: a 67B model at 1.5T tokens needs 5.76e23 FLOPs; 6ND gives 6.0e23 (4 %).
    assert FLOPS_PER_PARAM_TOKEN * 67e9 * 1.5e12 == pytest.approx(5.76e23, rel=0.05)


def test_gpt3_shape():
    # Brown et al. 2020, Table 2.1: GPT-3 175B has d_model 12288, 96 layers, 96 heads of 128; GPT-3 Small has
    # d_model 768, 12 heads of 64.
    assert 12288 / 96 == GPT3_ASPECT_RATIO
    assert 768 / 12 == GPT_HEAD_DIM
