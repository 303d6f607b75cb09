"""A small helper for a plain PyTorch training loop: count tokens, report each evaluation with its compute,
and state the run's learning-rate schedule from its scheduler.

Needs nothing beyond what the loop already has (torch is imported only to count a model's parameters and to
recognise a scheduler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

from sh_scaling.schedules import Schedule

from ._common import (
    EvaluationReporter,
    check_trial,
    count_flops_per_token,
    optimizer_lr,
    positive_or_none,
    store_planned_schedule,
    tokens_in_batch,
)
from ._schedulers import schedule_from_scheduler

if TYPE_CHECKING:
    from sh_scaling.budgeted import ComputeBudget

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
            failing the trial. Default ``None``: no rate (or the scheduler's last rate, with ``scheduler``).
        scheduler: The loop's ``torch.optim.lr_scheduler`` scheduler, stepped once per optimizer step. With
            ``total_steps``, the schedule it will follow over the run
            (:func:`~sh_scaling.integrations.schedule_from_scheduler`, read from its settings without stepping
            it) is stored as the trial's schedule at construction, before any report, so the pruner forecasts
            each run to its own end; a scheduler it cannot state leaves the reason in the trial
            (:data:`~sh_scaling.keys.SCHEDULE_NOTE_KEY`) and training goes on. A schedule already stored for the
            trial is kept. The schedule is a function of the fraction of the run: it lines up with compute when
            ``max_compute`` (or the pruner's) is the compute of ``total_steps`` steps. Default ``None``.
        total_steps: Planned number of ``scheduler.step()`` calls in the run; needed with ``scheduler``.
        budget: A :class:`sh_scaling.ComputeBudget` the sweep runs under (also passed to ``study.optimize`` as a
            callback): the reporter reserves the trial's planned compute in it when it is made, before any
            training (``max_compute``, else the budget's own plan; :meth:`sh_scaling.ComputeBudget.reserve`).
            Default ``None``: nothing reserved.

    Raises:
        optuna.TrialPruned: with ``budget``, when the trial's planned compute would pass it; nothing has been
            trained, and ``study.optimize`` stops.
        ValueError: no trial; none of ``model``, ``flops_per_token``, ``compute_fn``; a model whose FLOPs
            cannot be counted (the message says what to pass instead); a non-positive number; ``scheduler``
            without ``total_steps`` (or the reverse), or a ``total_steps`` that is not a positive integer.

    Example::

        def objective(trial):
            model = build(trial.params)
            opt = torch.optim.AdamW(model.parameters(), lr=trial.suggest_float("lr", 1e-4, 1e-2, log=True))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_steps, eta_min=1e-5)
            tracker = TrialReporter(trial, model, max_compute=budget, optimizer=opt, scheduler=sched,
                                    total_steps=n_steps)  # stores Cosine(final_ratio=1e-5 / lr) as the schedule
            for i, batch in zip(range(n_steps), loader):
                train_step(model, opt, batch)
                sched.step()
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
        scheduler: Any = None,
        total_steps: int | None = None,
        budget: ComputeBudget | None = None,
    ) -> None:
        self.trial = check_trial(trial, "TrialReporter")
        if compute_fn is not None and not callable(compute_fn):
            raise ValueError(f"compute_fn must be callable as compute_fn(tokens_seen), got {compute_fn!r}")
        self.flops_per_token = positive_or_none("flops_per_token", flops_per_token)
        self.compute_fn = compute_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        if (scheduler is None) != (total_steps is None):
            raise ValueError(
                "TrialReporter: scheduler= and total_steps= go together (the schedule is the scheduler's over the "
                f"planned steps); got scheduler={scheduler!r}, total_steps={total_steps!r}"
            )
        if self.flops_per_token is None and compute_fn is None:
            if model is None:
                raise ValueError(
                    "TrialReporter: give the model (its FLOPs per token are counted), flops_per_token=..., "
                    "or compute_fn=..."
                )
            self.flops_per_token = count_flops_per_token(model)
        self.tokens_seen = 0
        self.last_loss = float("nan")
        planned = positive_or_none("max_compute", max_compute)
        self._reports = EvaluationReporter(self.trial, planned)
        #: The schedule derived from ``scheduler`` (``None`` without one, or when none could be derived).
        self.schedule: Schedule | None = None
        #: Why no schedule was derived from ``scheduler`` (``None`` when one was, or without a scheduler).
        self.schedule_note: str | None = None
        if scheduler is not None:
            assert total_steps is not None
            self.schedule, self.schedule_note = schedule_from_scheduler(scheduler, total_steps)
            store_planned_schedule(self.trial, self.schedule, self.schedule_note)
        if budget is not None:
            budget.reserve(self.trial, max_compute=planned)

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
        lr = optimizer_lr(self.optimizer, self.scheduler)
        if self._reports(loss, self.compute, lr):
            self._reports.raise_if_pruned()

    @property
    def n_reports(self) -> int:
        """Evaluations reported to the trial so far."""
        return self._reports.n_reports
