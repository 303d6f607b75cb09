"""Parameter, FLOP and memory-traffic accounting for a decoder-only (GPT-style) transformer.

The counts follow the usual published conventions, term by term, so each number can be checked by hand:

* parameters: Kaplan et al., "Scaling Laws for Neural Language Models" (2020), Table 1: a layer holds
  ``4 d**2`` attention weights (query, key, value, output projections) and ``2 d d_ff`` feed-forward weights;
  biases and layer norms (``O(d)`` per layer) are left out, as there. Vocabulary parameters (the paper's
  ``Nv``, Tao et al. 2024) are ``V d`` for tied input/output embeddings and ``2 V d`` for untied ones.
* FLOPs: the 6N approximation (Kaplan et al. 2020, Section 2.1: forward ``2N`` plus backward ``4N`` per
  token, plus ``2 n_layers seq d`` per token forward for attention) and the detailed count of Hoffmann et al.,
  "Training Compute-Optimal Large Language Models" (2022), Appendix F, with the backward pass at twice the
  forward.
* memory traffic: a first-principles count of bytes read and written by one training step (Section 1.6 of
  the project specification, after Inbar & Sernau, "Time Matters: Scaling Laws for Any Budget", 2024); see
  :meth:`TransformerConfig.memory_traffic_terms`.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sh_scaling.constants import FLOPS_PER_PARAM_TOKEN

__all__ = ["TransformerConfig", "OPTIMIZER_STATES"]

#: Optimizer state tensors kept per parameter: Adam/AdamW keep first and second moments, momentum SGD one
#: buffer, plain SGD none.
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd_momentum": 1, "sgd": 0}

# Activation tensors written per layer in the forward pass, by shape (see memory_traffic_terms):
# batch x seq x d_model: layer-norm 1 output, query, key, value, attention context (heads merged), attention
# projection output, residual sum 1, layer-norm 2 output, feed-forward output, residual sum 2.
_D_MODEL_TENSORS_PER_LAYER = 10
# batch x seq x d_ff: feed-forward hidden pre-activation and post-activation.
_D_FF_TENSORS_PER_LAYER = 2
# batch x heads x seq x seq: attention scores before and after the softmax (the causal mask is applied in place).
_SCORE_TENSORS_PER_LAYER = 2
# Each activation tensor moves four times per step: written once and read once in the forward pass, and its
# gradient written once and read once in the backward pass.
_ACTIVATION_PASSES = 4


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of a decoder-only transformer and of its training step.

    Args:
        n_layers: Number of transformer blocks.
        d_model: Width (residual stream size); must be divisible by ``n_heads``.
        n_heads: Attention heads.
        vocab_size: Vocabulary size ``V`` (at least 1).
        seq_len: Tokens per sequence (context length).
        batch_size: Sequences per training step.
        d_ff: Feed-forward hidden size; ``None`` (default) means ``4 * d_model`` (the GPT convention).
        tied_embeddings: Whether the output projection shares the input embedding matrix (default ``True``).

    Raises:
        ValueError: a non-positive or non-integer size, or ``d_model`` not divisible by ``n_heads``.

    Example:
        >>> cfg = TransformerConfig(n_layers=12, d_model=768, n_heads=12, vocab_size=50257, seq_len=1024,
        ...                         batch_size=8)
        >>> cfg.non_vocab_params  # 12 * 12 * 768**2
        84934656
    """

    n_layers: int
    d_model: int
    n_heads: int
    vocab_size: int
    seq_len: int
    batch_size: int
    d_ff: int | None = None
    tied_embeddings: bool = True
    _resolved_d_ff: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Integral types other than int (numpy integers from a sweep grid) are stored as plain ints.
        for name in ("n_layers", "d_model", "n_heads", "vocab_size", "seq_len", "batch_size"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if self.d_ff is not None:
            object.__setattr__(self, "d_ff", _positive_int("d_ff", self.d_ff))
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model} and n_heads={self.n_heads}"
            )
        if not isinstance(self.tied_embeddings, bool):
            raise ValueError(f"tied_embeddings must be a bool, got {self.tied_embeddings!r}")
        object.__setattr__(self, "_resolved_d_ff", self.d_ff if self.d_ff is not None else 4 * self.d_model)

    # --- sizes ------------------------------------------------------------------------------------------------

    @property
    def ffn_dim(self) -> int:
        """The feed-forward hidden size actually used (``d_ff`` or ``4 * d_model``)."""
        return self._resolved_d_ff

    @property
    def head_dim(self) -> int:
        """``d_model // n_heads``."""
        return self.d_model // self.n_heads

    @property
    def tokens_per_step(self) -> int:
        """``batch_size * seq_len``."""
        return self.batch_size * self.seq_len

    @property
    def non_vocab_params(self) -> int:
        """``Nnv = n_layers (4 d**2 + 2 d d_ff)``: attention and feed-forward weights (Kaplan et al. 2020)."""
        d = self.d_model
        return self.n_layers * (4 * d * d + 2 * d * self.ffn_dim)

    @property
    def vocab_params(self) -> int:
        """``Nv``: ``V d`` with tied embeddings, ``2 V d`` with separate input and output matrices."""
        per_matrix = self.vocab_size * self.d_model
        return per_matrix if self.tied_embeddings else 2 * per_matrix

    @property
    def n_params(self) -> int:
        """All trained parameters counted here: ``Nnv + Nv``."""
        return self.non_vocab_params + self.vocab_params

    # --- FLOPs ------------------------------------------------------------------------------------------------

    def training_flops_per_token(
        self, *, method: Literal["6N", "detailed"] = "detailed", attention: bool = True
    ) -> float:
        """Training (forward + backward) FLOPs per token.

        Args:
            method: ``"6N"``: ``6 N`` with ``N = n_params`` (Kaplan et al. 2020; Hoffmann et al. 2022 use the
                same with all parameters), plus ``6 n_layers seq_len d_model`` for attention when
                ``attention`` is true (Kaplan's ``2 n_layer n_ctx d_attn`` forward, times three).
                ``"detailed"``: Hoffmann et al. (2022), Appendix F, per sequence of length ``S`` in the
                forward pass, with ``H`` heads, ``d`` width, ``f`` = ``d_ff``, ``V`` vocabulary:

                - embeddings: ``2 S V d``;
                - per layer, key/query/value projections: ``2 S 3 d d``;
                - per layer, query-key logits: ``2 S S d`` (attention);
                - per layer, softmax: ``3 H S S`` (attention);
                - per layer, softmax-weighted values: ``2 S S d`` (attention);
                - per layer, output projection: ``2 S d d``;
                - per layer, feed-forward: ``2 S (d f + f d)``;
                - final logits: ``2 S d V``;

                and backward = 2 x forward, so training = 3 x forward, divided by ``S``.
            attention: Whether to include the terms quadratic in sequence length (marked above).
        """
        if method == "6N":
            flops = FLOPS_PER_PARAM_TOKEN * self.n_params
            if attention:
                flops += FLOPS_PER_PARAM_TOKEN * self.n_layers * self.seq_len * self.d_model
            return flops
        if method != "detailed":
            raise ValueError(f"method must be '6N' or 'detailed', got {method!r}")
        S, d, f, V, H = self.seq_len, self.d_model, self.ffn_dim, self.vocab_size, self.n_heads
        per_layer = 2 * S * 3 * d * d + 2 * S * d * d + 2 * S * (d * f + f * d)
        if attention:
            per_layer += 2 * S * S * d + 3 * H * S * S + 2 * S * S * d
        forward = 2 * S * V * d + self.n_layers * per_layer + 2 * S * d * V
        return 3.0 * forward / S

    def training_flops_per_step(
        self, *, method: Literal["6N", "detailed"] = "detailed", attention: bool = True
    ) -> float:
        """:meth:`training_flops_per_token` times ``batch_size * seq_len``."""
        return self.training_flops_per_token(method=method, attention=attention) * self.tokens_per_step

    # --- memory traffic ---------------------------------------------------------------------------------------

    def memory_traffic_terms(
        self, bytes_per_element: float = 4.0, optimizer: str = "adam", param_bytes_per_element: float | None = None
    ) -> dict[str, float]:
        """Bytes read and written by one training step, term by term.

        A first-principles count (no caches, no fusion, attention scores materialised), in the spirit of
        Inbar & Sernau (2024), who found such a count predicts step time better than FLOPs:

        * ``weights``: the ``P = n_params`` weights are read in the forward pass and again in the backward
          pass: ``2 P``.
        * ``gradients``: the gradient of every weight is written in the backward pass and read by the
          optimizer: ``2 P``.
        * ``optimizer``: the update reads each weight and its ``s`` state tensors and writes them back
          (``s = 2`` for Adam): ``2 (1 + s) P``.
        * ``activations_d_model``: ``10`` tensors of ``batch * seq * d_model`` per layer (layer-norm outputs,
          query, key, value, attention context and projection, two residual sums, feed-forward output), plus
          two more outside the layers (embedding output, final layer norm).
        * ``activations_d_ff``: ``2`` tensors of ``batch * seq * d_ff`` per layer (feed-forward hidden state
          before and after the non-linearity).
        * ``attention_scores``: ``2`` tensors of ``batch * heads * seq**2`` per layer (scores and softmax).
        * ``logits``: the ``batch * seq * V`` logits and their softmax.

        Every activation term moves ``4`` times: written and read in the forward pass, its gradient written
        and read in the backward pass.

        Args:
            bytes_per_element: Bytes per stored activation (4 for float32, 2 for bf16/fp16).
            optimizer: One of :data:`OPTIMIZER_STATES` (default ``"adam"``).
            param_bytes_per_element: Bytes per weight, gradient and optimizer-state number; ``None`` (default)
                means ``bytes_per_element``. Mixed-precision training keeps these in float32 (4) while
                activations are bf16 (2).

        Returns:
            ``{term: bytes}`` with the keys above.
        """
        if not bytes_per_element > 0:
            raise ValueError(f"bytes_per_element must be positive, got {bytes_per_element!r}")
        param_bytes = bytes_per_element if param_bytes_per_element is None else param_bytes_per_element
        if not param_bytes > 0:
            raise ValueError(f"param_bytes_per_element must be positive, got {param_bytes_per_element!r}")
        if optimizer not in OPTIMIZER_STATES:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_STATES)}, got {optimizer!r}")
        s = OPTIMIZER_STATES[optimizer]
        P = self.n_params
        B, S, L = self.batch_size, self.seq_len, self.n_layers
        elements = {
            "weights": 2.0 * P,
            "gradients": 2.0 * P,
            "optimizer": 2.0 * (1 + s) * P,
            "activations_d_model": _ACTIVATION_PASSES
            * (_D_MODEL_TENSORS_PER_LAYER * L + 2)
            * B
            * S
            * self.d_model,
            "activations_d_ff": _ACTIVATION_PASSES * _D_FF_TENSORS_PER_LAYER * L * B * S * self.ffn_dim,
            "attention_scores": _ACTIVATION_PASSES * _SCORE_TENSORS_PER_LAYER * L * B * self.n_heads * S * S,
            "logits": _ACTIVATION_PASSES * 2 * B * S * self.vocab_size,
        }
        parameter_terms = ("weights", "gradients", "optimizer")
        return {
            k: float(v) * (param_bytes if k in parameter_terms else bytes_per_element) for k, v in elements.items()
        }

    def memory_copies_per_step(
        self, bytes_per_element: float = 4.0, optimizer: str = "adam", param_bytes_per_element: float | None = None
    ) -> float:
        """Total bytes moved by one training step: the sum of :meth:`memory_traffic_terms`."""
        return float(sum(self.memory_traffic_terms(bytes_per_element, optimizer, param_bytes_per_element).values()))

    # --- serialisation ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments, as a JSON-ready dict."""
        out = asdict(self)
        out.pop("_resolved_d_ff", None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerConfig:
        """Inverse of :meth:`to_dict`."""
        known = {
            "n_layers", "d_model", "n_heads", "vocab_size", "seq_len", "batch_size", "d_ff", "tied_embeddings"
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TransformerConfig fields: {sorted(unknown)}")
        return cls(**data)
