"""Glue between :mod:`sh_scaling` and training frameworks.

Each integration imports its framework lazily, so ``import sh_scaling`` never imports torch.

* :class:`SHScalingCallback` (``sh_scaling.integrations.huggingface``): a Hugging Face ``TrainerCallback``;
  ``pip install "sh_scaling[hf]"``.
* :class:`SHScalingLightningCallback` (``sh_scaling.integrations.lightning``): a PyTorch Lightning
  ``Callback``; ``pip install "sh_scaling[lightning]"``.
* :class:`TrialReporter` (``sh_scaling.integrations.torch_loop``): a plain PyTorch training loop.
* :func:`tell_on_error`: with ``study.ask()``, an interrupted or crashed trial is failed, not left running.
* :func:`count_flops_per_token`, :func:`tokens_in_batch`: what the integrations count with.
* :func:`schedule_from_scheduler`: the :mod:`sh_scaling.schedules` schedule a PyTorch LR scheduler will follow
  over a run, which :class:`TrialReporter` and the Lightning callback store as the trial's schedule.

Every integration reports through :func:`sh_scaling.report`, so compute goes to the trial's attributes and
the pruner decides at compute rungs.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._common import count_flops_per_token, tell_on_error, tokens_in_batch
from ._schedulers import schedule_from_scheduler

__all__ = [
    "SHScalingCallback",
    "SHScalingLightningCallback",
    "TrialReporter",
    "count_flops_per_token",
    "schedule_from_scheduler",
    "tell_on_error",
    "tokens_in_batch",
]

# Public name -> (module, extra that installs its framework). Imported on first access only.
_LAZY = {
    "SHScalingCallback": ("sh_scaling.integrations.huggingface", "hf"),
    "SHScalingLightningCallback": ("sh_scaling.integrations.lightning", "lightning"),
    "TrialReporter": ("sh_scaling.integrations.torch_loop", "torch"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sh_scaling.integrations' has no attribute {name!r}")
    module, extra = _LAZY[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{name} needs a framework that is not installed ({exc.name}): pip install \"sh_scaling[{extra}]\""
        ) from exc
    return getattr(mod, name)
