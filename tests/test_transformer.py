"""Parameter, FLOP and memory-traffic accounting of TransformerConfig, checked against hand counts."""

from __future__ import annotations

import pytest

from sh_scaling.laws import TransformerConfig


def _gpt2_small(**kw) -> TransformerConfig:
    base = dict(n_layers=12, d_model=768, n_heads=12, vocab_size=50257, seq_len=1024, batch_size=8)
    base.update(kw)
    return TransformerConfig(**base)


def test_parameter_counts_match_kaplan() -> None:
    cfg = _gpt2_small()
    assert cfg.ffn_dim == 4 * 768
    assert cfg.head_dim == 64
    assert cfg.non_vocab_params == 12 * 12 * 768**2  # Kaplan et al. 2020: N = 12 n_layer d_model**2
    assert cfg.vocab_params == 50257 * 768
    untied = _gpt2_small(tied_embeddings=False)
    assert untied.vocab_params == 2 * 50257 * 768
    assert untied.n_params == untied.non_vocab_params + 2 * 50257 * 768


def test_custom_d_ff() -> None:
    cfg = TransformerConfig(n_layers=2, d_model=8, n_heads=2, vocab_size=10, seq_len=4, batch_size=1, d_ff=16)
    assert cfg.non_vocab_params == 2 * (4 * 64 + 2 * 8 * 16)


def test_flops_6n_approximation() -> None:
    cfg = _gpt2_small()
    assert cfg.training_flops_per_token(method="6N", attention=False) == 6 * cfg.n_params
    assert cfg.training_flops_per_token(method="6N") == 6 * cfg.n_params + 6 * 12 * 1024 * 768
    assert cfg.training_flops_per_step(method="6N") == cfg.training_flops_per_token(method="6N") * 8 * 1024


def test_flops_detailed_by_hand() -> None:
    # Hoffmann et al. 2022, Appendix F, evaluated by hand for a tiny model.
    L, d, H, V, S, f = 2, 8, 2, 10, 4, 32
    cfg = TransformerConfig(n_layers=L, d_model=d, n_heads=H, vocab_size=V, seq_len=S, batch_size=3)
    embed = 2 * S * V * d
    qkv = 2 * S * 3 * d * d
    logits_att = 2 * S * S * d
    softmax = 3 * H * S * S
    reduce = 2 * S * S * d
    proj = 2 * S * d * d
    ffn = 2 * S * (d * f + f * d)
    head = 2 * S * d * V
    forward = embed + L * (qkv + logits_att + softmax + reduce + proj + ffn) + head
    assert cfg.training_flops_per_token() == pytest.approx(3 * forward / S)
    forward_no_attn = embed + L * (qkv + proj + ffn) + head
    assert cfg.training_flops_per_token(attention=False) == pytest.approx(3 * forward_no_attn / S)
    assert cfg.training_flops_per_step() == pytest.approx(3 * forward / S * 3 * S)


def test_detailed_is_close_to_6n_for_a_large_model() -> None:
    # For large models the non-attention part of the detailed count is 6N (+ one extra 6Vd for the embedding
    # product that Hoffmann et al. count): within a few percent.
    cfg = TransformerConfig(n_layers=48, d_model=6144, n_heads=48, vocab_size=32000, seq_len=2048, batch_size=1)
    ratio = cfg.training_flops_per_token(attention=False) / cfg.training_flops_per_token(method="6N", attention=False)
    assert 1.0 < ratio < 1.02


def test_memory_traffic_terms_by_hand() -> None:
    L, d, H, V, S, B = 2, 8, 2, 10, 4, 3
    cfg = TransformerConfig(n_layers=L, d_model=d, n_heads=H, vocab_size=V, seq_len=S, batch_size=B)
    P = cfg.n_params
    terms = cfg.memory_traffic_terms(bytes_per_element=2)
    assert terms["weights"] == 2 * 2 * P
    assert terms["gradients"] == 2 * 2 * P
    assert terms["optimizer"] == 2 * 2 * 3 * P  # Adam: read and write weight + two moments
    assert terms["activations_d_model"] == 2 * 4 * (10 * L + 2) * B * S * d
    assert terms["activations_d_ff"] == 2 * 4 * 2 * L * B * S * 4 * d
    assert terms["attention_scores"] == 2 * 4 * 2 * L * B * H * S * S
    assert terms["logits"] == 2 * 4 * 2 * B * S * V
    assert cfg.memory_copies_per_step(bytes_per_element=2) == sum(terms.values())
    assert cfg.memory_copies_per_step(bytes_per_element=4) == 2 * cfg.memory_copies_per_step(bytes_per_element=2)
    sgd = cfg.memory_traffic_terms(optimizer="sgd")
    assert sgd["optimizer"] == 4 * 2 * P


def test_memory_traffic_grows_with_sequence_quadratically_in_scores() -> None:
    a = _gpt2_small(seq_len=512).memory_traffic_terms()["attention_scores"]
    b = _gpt2_small(seq_len=1024).memory_traffic_terms()["attention_scores"]
    assert b == 4 * a


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(d_model=770), "divisible"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(n_layers=-1), "n_layers"),
        (dict(batch_size=1.5), "batch_size"),
        (dict(seq_len=True), "seq_len"),
        (dict(d_ff=0), "d_ff"),
        (dict(tied_embeddings="yes"), "tied_embeddings"),
    ],
)
def test_validation(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        _gpt2_small(**kw)


def test_bad_options() -> None:
    cfg = _gpt2_small()
    with pytest.raises(ValueError, match="method"):
        cfg.training_flops_per_token(method="8N")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optimizer"):
        cfg.memory_traffic_terms(optimizer="lion")
    with pytest.raises(ValueError, match="bytes_per_element"):
        cfg.memory_traffic_terms(bytes_per_element=0)


def test_dict_round_trip() -> None:
    cfg = _gpt2_small(d_ff=1000, tied_embeddings=False)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        TransformerConfig.from_dict({**cfg.to_dict(), "dropout": 0.1})


def test_numpy_integers_are_accepted_and_stored_as_int() -> None:
    import json

    import numpy as np

    cfg = _gpt2_small(n_layers=np.int64(6), d_ff=np.int32(1000))
    assert type(cfg.n_layers) is int and type(cfg.d_ff) is int
    json.dumps(cfg.to_dict())  # JSON-ready
