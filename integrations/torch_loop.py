"""A small helper for a plain PyTorch training loop: count tokens, report each evaluation with its compute.

Needs nothing beyond what the loop already has (torch is imported only to count a model's parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from ._common import (
    EvaluationReporter,
    check_trial,
    count_flops_per_token,
    optimizer_lr,
    positive_or_none,
    tokens_in_batch,
)

__all__ = ["TrialReporter"]


class TrialReporter:
    """Keeps the compute a plain training loop has spent and reports evaluations to the trial with it.

    Call :meth:`step` after each optimizer step (with the batch, or the number of tokens in it) and
    :meth:`report` after each evaluation: the loss goes to the trial with the cumulative training compute
    ``flops_per_token * tokens_seen`` through :func:`sh_scaling.report`, and :meth:`report` raises
    :class:`optuna.TrialPruned` when the pruner stops the trial.

    Args:
        trial: The running trial.
        model: The torch model, used only to count ``flops_per_token`` when it is not given
            (:func:`~sh_scaling.integrations.count_flops_per_token`: ``6 N``, embeddings excluded unless tied).
        flops_per_token: Training FLOPs per token. Give it for an exact count, e.g.
            ``TransformerConfig(...).training_flops_per_token()`` (Hoffmann et al. 2022, Appendix F).
        compute_fn: Instead of FLOPs per token, ``compute_fn(tokens_seen) -> cumulative compute`` in any unit
            (GPU-hours, PF-days, ...).
        max_compute: Compute this trial is meant to reach if it is never pruned (stored with the first
            report; overrides the pruner's ``max_compute`` for this trial).
        optimizer: The loop's optimizer: each report then carries the learning rate of its first parameter
            group (after ``scheduler.step()``, the rate of the next step), which the pruner checks against the
            trial's schedule, or uses as the schedule so far when none is stated. When it cannot be read (no
            ``param_groups``, a rate that is not a finite number >= 0) the report goes without it, rather than
            failing the trial. Default ``None``: no rate.

    Raises:
        ValueError: no trial; none of ``model``, ``flops_per_token``, ``compute_fn``; a model whose FLOPs
            cannot be counted (the message says what to pass instead); a non-positive number.

    Example::

        def objective(trial):
            model = build(trial.params)
            opt = torch.optim.AdamW(model.parameters(), lr=trial.suggest_float("lr", 1e-4, 1e-2, log=True))
            tracker = TrialReporter(trial, model, max_compute=budget, optimizer=opt)
            for i, batch in enumerate(loader):
                train_step(model, opt, batch)
                tracker.step(batch)                    # counts batch["input_ids"].numel() tokens
                if i % 100 == 99:
                    tracker.report(evaluate(model))    # raises optuna.TrialPruned when pruned
            return tracker.last_loss
    """

    def __init__(
        self,
        trial: optuna.trial.Trial,
        model: Any = None,
        *,
        flops_per_token: float | None = None,
        compute_fn: Callable[[float], float] | None = None,
        max_compute: float | None = None,
        optimizer: Any = None,
    ) -> None:
        self.trial = check_trial(trial, "TrialReporter")
        if compute_fn is not None and not callable(compute_fn):
            raise ValueError(f"compute_fn must be callable as compute_fn(tokens_seen), got {compute_fn!r}")
        self.flops_per_token = positive_or_none("flops_per_token", flops_per_token)
        self.compute_fn = compute_fn
        self.optimizer = optimizer
        if self.flops_per_token is None and compute_fn is None:
            if model is None:
                raise ValueError(
                    "TrialReporter: give the model (its FLOPs per token are counted), flops_per_token=..., "
                    "or compute_fn=..."
                )
            self.flops_per_token = count_flops_per_token(model)
        self.tokens_seen = 0
        self.last_loss = float("nan")
        self._reports = EvaluationReporter(self.trial, positive_or_none("max_compute", max_compute))

    @property
    def compute(self) -> float:
        """Cumulative training compute so far."""
        if self.compute_fn is not None:
            return float(self.compute_fn(self.tokens_seen))
        assert self.flops_per_token is not None
        return self.flops_per_token * self.tokens_seen

    def step(self, batch: Any = None, *, tokens: int | None = None) -> None:
        """Count one training step: the tokens in ``batch`` (token ids), or ``tokens`` given directly."""
        if tokens is None:
            if batch is None:
                raise ValueError("TrialReporter.step: give the batch (token ids) or tokens=...")
            tokens = tokens_in_batch(batch)
        if int(tokens) < 0:
            raise ValueError(f"TrialReporter.step: tokens must be >= 0, got {tokens!r}")
        self.tokens_seen += int(tokens)

    def report(self, loss: float) -> None:
        """Report an evaluation; raise :class:`optuna.TrialPruned` when the pruner stops the trial.

        An evaluation before any training step (nothing spent yet) is not reported: compute must be positive.
        """
        self.last_loss = float(loss)
        if self.tokens_seen == 0:
            return
        lr = None if self.optimizer is None else optimizer_lr(self.optimizer)
        if self._reports(loss, self.compute, lr):
            self._reports.raise_if_pruned()

    @property
    def n_reports(self) -> int:
        """Evaluations reported to the trial so far."""
        return self._reports.n_reports
