"""Measure training-step times of small GPT-style transformers on this machine and fit the step-time models.

PyTorch is imported inside the functions that need it, so the rest of the library works without it
(``pip install sh_scaling[torch]``). The models are deliberately plain: learned positional embeddings,
pre-layer-norm blocks, attention computed explicitly (the ``batch x heads x seq x seq`` scores are materialised,
as the memory-traffic count of :meth:`TransformerConfig.memory_traffic_terms` assumes), GELU feed-forward,
tied output embedding, AdamW, float32 weights; activations in float32 (default) or bfloat16 under autocast
(mixed precision). A step is forward, cross-entropy, backward and optimizer update on random
tokens; warm-up steps are excluded, the configurations are timed in interleaved rounds (one step of each per
round, so that a slow spell of a shared machine does not land on one configuration) and the median over rounds
is kept; on CUDA the device is synchronised before the clock is read.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from sh_scaling.laws._transformer import TransformerConfig
from sh_scaling.laws._wallclock import StepTimeCalibration, fit_step_time

__all__ = ["calibration_configs", "time_training_step", "calibrate"]

#: Bytes per activation element of each supported training dtype.
_DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0}


# Each family varies one or two things at a time around a base shape: width, depth, heads (head size), sequence
# length, batch and vocabulary, plus wide-shallow and narrow-deep shapes of similar size, so that FLOPs and
# memory traffic are not proportional to each other across the family.
_VARIATIONS: list[dict[str, int]] = [
    {},
    {"d_model": 2},  # width x2 (values are multipliers, see _scaled)
    {"d_model": -2},  # width /2
    {"n_layers": 2},
    {"n_layers": -2},
    {"n_heads": 4},  # small heads
    {"n_heads": -4},  # one big head
    {"seq_len": 2},
    {"seq_len": -2},
    {"batch_size": 2},
    {"batch_size": -2},
    {"vocab_size": 4},
    {"vocab_size": -4},
    {"d_model": 2, "n_layers": -2},  # wide and shallow
    {"d_model": -2, "n_layers": 4},  # narrow and deep
    {"seq_len": 4, "batch_size": -4},  # same tokens per step, long sequences
]

_BASES = {
    # Tiny: for tests and --quick (a few milliseconds per step on a laptop CPU).
    "quick": {"n_layers": 2, "d_model": 32, "n_heads": 4, "vocab_size": 256, "seq_len": 32, "batch_size": 4},
    # Small enough for a 2-core CPU to time the whole family in about a minute.
    "cpu": {"n_layers": 2, "d_model": 128, "n_heads": 4, "vocab_size": 2048, "seq_len": 128, "batch_size": 8},
    # Large enough that an accelerator is not only launching kernels.
    "cuda": {"n_layers": 4, "d_model": 512, "n_heads": 8, "vocab_size": 8192, "seq_len": 512, "batch_size": 16},
}


def _scaled(base: dict[str, int], variation: dict[str, int]) -> TransformerConfig:
    def size(key: str) -> int:
        factor = variation.get(key, 1)
        return base[key] * factor if factor > 0 else max(1, base[key] // -factor)

    # Each field by name: a TransformerConfig(**shape) call cannot be type-checked against its bool field.
    return TransformerConfig(n_layers=size("n_layers"), d_model=size("d_model"), n_heads=size("n_heads"),
                             vocab_size=size("vocab_size"), seq_len=size("seq_len"), batch_size=size("batch_size"))


def calibration_configs(preset: str = "cpu") -> list[TransformerConfig]:
    """The family of 16 configurations timed by :func:`calibrate`.

    Args:
        preset: ``"quick"`` (tiny models, for tests), ``"cpu"`` (default) or ``"cuda"`` (larger models).
    """
    if preset not in _BASES:
        raise ValueError(f"preset must be one of {sorted(_BASES)}, got {preset!r}")
    base = _BASES[preset]
    return [_scaled(base, v) for v in _VARIATIONS]


def _build_model(cfg: TransformerConfig, torch: Any) -> Any:
    # Annotated: mypy accepts a base class of declared type Any (nn.Module below), not of inferred type.
    nn: Any = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.d_model
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, cfg.ffn_dim)
            self.fc2 = nn.Linear(cfg.ffn_dim, d)

        def forward(self, x: Any, mask: Any) -> Any:
            B, S, d = x.shape
            H, hd = cfg.n_heads, cfg.head_dim
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            q = q.view(B, S, H, hd).transpose(1, 2)
            k = k.view(B, S, H, hd).transpose(1, 2)
            v = v.view(B, S, H, hd).transpose(1, 2)
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            att = F.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).reshape(B, S, d)
            x = x + self.proj(y)
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.pos = nn.Embedding(cfg.seq_len, cfg.d_model)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.n_layers))
            self.ln_f = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
            if cfg.tied_embeddings:
                self.head.weight = self.tok.weight
            mask = torch.triu(torch.ones(cfg.seq_len, cfg.seq_len, dtype=torch.bool), diagonal=1)
            self.register_buffer("mask", mask, persistent=False)

        def forward(self, idx: Any) -> Any:
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.tok(idx) + self.pos(pos)
            for block in self.blocks:
                x = block(x, self.mask)
            return self.head(self.ln_f(x))

    return GPT()


def _make_step(config: TransformerConfig, device: str, seed: int, dtype: str) -> tuple[Callable[[], None], Any]:
    """A closure running one training step of ``config`` on ``device``, and the device."""
    import contextlib

    import torch

    if dtype not in _DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPE_BYTES)}, got {dtype!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for, but PyTorch sees no CUDA device")
    torch.manual_seed(seed)
    model = _build_model(config, torch).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shape = (config.batch_size, config.seq_len)
    x = torch.randint(0, config.vocab_size, shape, generator=gen).to(dev)
    y = torch.randint(0, config.vocab_size, shape, generator=gen).to(dev)

    def autocast() -> Any:
        if dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, config.vocab_size).float(), y.view(-1))
        loss.backward()
        opt.step()

    return step, dev


def _median_step_times(steps: Sequence[Callable[[], None]], dev: Any, n_warmup: int, n_repeats: int) -> list[float]:
    """Warm each step up, then time them in interleaved rounds (one step of each per round).

    Interleaving spreads slow spells of a shared machine over all configurations instead of letting one
    configuration absorb them; the median over rounds discards the remaining outliers.
    """
    import torch

    if n_warmup < 0 or n_repeats < 1:
        raise ValueError(f"need n_warmup >= 0 and n_repeats >= 1, got {n_warmup}, {n_repeats}")

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for step in steps:
        for _ in range(n_warmup):
            step()
    sync()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(n_repeats):
        for i, step in enumerate(steps):
            start = time.perf_counter()
            step()
            sync()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def time_training_step(
    config: TransformerConfig,
    *,
    device: str = "cpu",
    n_warmup: int = 2,
    n_repeats: int = 5,
    seed: int = 0,
    dtype: str = "float32",
) -> float:
    """Median wall-clock seconds of one training step of ``config`` on ``device``.

    Args:
        config: The model and step shape to time.
        device: A PyTorch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        n_warmup: Untimed steps first (allocator warm-up, kernel selection).
        n_repeats: Timed steps; the median is returned.
        seed: Seed of the weights and of the random tokens.
        dtype: ``"float32"`` (default) or ``"bfloat16"`` (forward pass and loss under ``torch.autocast``;
            weights, gradients and AdamW state stay float32).

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: bad counts or dtype, or a CUDA device asked for but not available.
    """
    if n_warmup < 0 or n_repeats < 1:
        raise ValueError(f"need n_warmup >= 0 and n_repeats >= 1, got {n_warmup}, {n_repeats}")
    step, dev = _make_step(config, device, seed, dtype)
    return _median_step_times([step], dev, n_warmup, n_repeats)[0]


def _device_description(device: str) -> str:
    import platform

    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def calibrate(
    configs: Sequence[TransformerConfig] | None = None,
    *,
    device: str = "cpu",
    quick: bool = False,
    n_warmup: int | None = None,
    n_repeats: int | None = None,
    seed: int = 0,
    dtype: str = "float32",
    threads: int | None = None,
    progress: Callable[[int, TransformerConfig, float], None] | None = None,
) -> StepTimeCalibration:
    """Time real training steps of a family of small transformers and fit both step-time models.

    Args:
        configs: Configurations to time (default: :func:`calibration_configs` for ``"quick"`` when ``quick``,
            else for ``"cuda"`` on a CUDA device and ``"cpu"`` otherwise).
        device: PyTorch device string.
        quick: Tiny models and few steps (seconds on a CPU; for tests and smoke checks).
        n_warmup: Untimed steps per configuration (default 1 with ``quick``, else 3).
        n_repeats: Timed steps per configuration, median kept (default 3 with ``quick``, else 7).
        seed: Seed of weights and data.
        dtype: ``"float32"`` or ``"bfloat16"`` (mixed precision; the memory count then uses 2 bytes per
            activation and 4 per weight, gradient and optimizer-state number).
        threads: CPU threads PyTorch may use while timing (``None``: its default). On a machine shared with
            other jobs, ``1`` avoids the thread oversubscription that otherwise makes CPU timings erratic.
        progress: Called as ``progress(index, config, seconds)`` for each configuration once all are timed.

    Returns:
        A :class:`StepTimeCalibration` (save it with ``.save(path)``).

    Example:
        >>> cal = calibrate(quick=True)  # doctest: +SKIP
        >>> cal.copies.r2, cal.flops.r2, cal.best_proxy  # doctest: +SKIP
    """
    if dtype not in _DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPE_BYTES)}, got {dtype!r}")
    is_cuda = device.startswith("cuda")
    if configs is None:
        configs = calibration_configs("quick" if quick else ("cuda" if is_cuda else "cpu"))
    cfgs = list(configs)
    warm = (1 if quick else 3) if n_warmup is None else n_warmup
    reps = (3 if quick else 7) if n_repeats is None else n_repeats
    if warm < 0 or reps < 1:
        raise ValueError(f"need n_warmup >= 0 and n_repeats >= 1, got {warm}, {reps}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    import torch

    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        built = [_make_step(cfg, device, seed, dtype) for cfg in cfgs]
        seconds = _median_step_times([step for step, _ in built], built[0][1], warm, reps)
        description = _device_description(device)
    finally:
        torch.set_num_threads(default_threads)
    del built
    if is_cuda:
        torch.cuda.empty_cache()
    if progress is not None:
        for i, (cfg, sec) in enumerate(zip(cfgs, seconds)):
            progress(i, cfg, sec)
    return fit_step_time(
        cfgs,
        seconds,
        bytes_per_element=_DTYPE_BYTES[dtype],
        param_bytes_per_element=4.0,
        optimizer="adamw",
        device=description,
        metadata={
            "torch": torch.__version__,
            "n_warmup": warm,
            "n_repeats": reps,
            "quick": quick,
            "dtype": dtype,
            "seed": seed,
            "threads": threads,
        },
    )
