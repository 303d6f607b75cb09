"""Hugging Face ``transformers``: a ``TrainerCallback`` that reports evaluations with their compute.

Install with ``pip install "sh_scaling[hf]"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from sh_scaling.schedules import Constant, Cosine, Linear, Schedule

from ._common import (
    PruningStatus,
    EvaluationReporter,
    check_trial,
    count_flops_per_token,
    optimizer_lr,
    positive_or_none,
    store_planned_schedule,
)
from ._schedulers import schedule_from_scheduler

__all__ = ["SHScalingCallback", "planned_schedule"]


def planned_schedule(args: TrainingArguments, total_steps: int) -> tuple[Schedule | None, str | None]:
    """The learning-rate schedule the ``Trainer`` builds from ``args`` for a run of ``total_steps`` optimizer
    steps, as a :mod:`sh_scaling.schedules` schedule of the fraction of the run, or ``None`` and why not.

    Follows ``transformers.get_scheduler`` exactly: after ``k`` steps the rate is ``learning_rate *
    lambda(k)``, with ``W = args.get_warmup_steps(total_steps)`` (``warmup_steps``, or a ratio of the run when
    below 1) and ``T = total_steps``:

    * ``"linear"``: ``(T - k) / (T - W)`` after warm-up (``k / W`` during it): ``Linear(final_ratio=0,
      warmup=W / T)``;
    * ``"cosine"``: ``(1 + cos(pi (k - W) / (T - W))) / 2``: ``Cosine(final_ratio=0, warmup=W / T)``;
    * ``"constant_with_warmup"``: ``1``: ``Constant(warmup=W / T)``;
    * ``"constant"``: ``1`` from the first step (``get_scheduler`` ignores the warm-up): ``Constant()``;

    so the schedule at ``f = k / T`` is the rate after ``k`` steps. Every other type (``polynomial``,
    ``cosine_with_restarts``, ``inverse_sqrt``, ``warmup_stable_decay``, ``cosine_with_min_lr``, ...), and the
    types above with ``lr_scheduler_kwargs`` (a ``cosine`` with ``num_cycles`` other than 0.5), is the
    ``LambdaLR`` that ``get_scheduler`` builds with the ``Trainer``'s arguments, on a throwaway optimizer over
    one dummy parameter (the real optimizer is not touched), read by
    :func:`~sh_scaling.integrations.schedule_from_scheduler`: its lambda sampled at every step into a
    :class:`~sh_scaling.schedules.Table` (or the closed form it turns out to be). ``reduce_lr_on_plateau``
    (its rate follows the metric), arguments ``get_scheduler`` rejects, a lambda that fails, or a warm-up as
    long as the run give ``None`` with the reason.
    """
    kind = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    peak = float(args.learning_rate)
    if not (math.isfinite(peak) and peak > 0):
        return None, f"learning_rate={args.learning_rate!r} states no schedule"
    if total_steps <= 0:
        return None, "the planned number of training steps is unknown (set max_steps)"
    if kind == "constant":  # get_scheduler passes it neither the warm-up nor lr_scheduler_kwargs
        return Constant(peak_lr=peak), None
    extra = dict(getattr(args, "lr_scheduler_kwargs", None) or {})
    if kind == "cosine" and extra.get("num_cycles", 0.5) == 0.5:
        extra.pop("num_cycles", None)
    warmup_steps = args.get_warmup_steps(total_steps)
    if warmup_steps >= total_steps:
        return None, f"the warm-up ({warmup_steps} steps) lasts the whole run ({total_steps} steps)"
    warmup = warmup_steps / total_steps
    if not extra and kind == "linear":
        return Linear(peak_lr=peak, warmup=warmup, final_ratio=0.0), None
    if not extra and kind == "cosine":
        return Cosine(peak_lr=peak, warmup=warmup, final_ratio=0.0), None
    if not extra and kind == "constant_with_warmup":
        return Constant(peak_lr=peak, warmup=warmup), None
    return _sampled_schedule(kind, peak, warmup_steps, total_steps, getattr(args, "lr_scheduler_kwargs", None))


def _sampled_schedule(
    kind: str, peak: float, warmup_steps: int, total_steps: int, kwargs: dict[str, Any] | None
) -> tuple[Schedule | None, str | None]:
    """The schedule of the scheduler ``get_scheduler`` builds for ``kind`` with the ``Trainer``'s arguments,
    built on a throwaway optimizer (one dummy parameter at ``peak``) so the run's own optimizer is untouched."""
    import torch
    from transformers import get_scheduler

    throwaway = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    try:
        scheduler = get_scheduler(kind, optimizer=throwaway, num_warmup_steps=warmup_steps,
                                  num_training_steps=total_steps, scheduler_specific_kwargs=kwargs)
    except Exception as exc:  # noqa: BLE001 - arguments the Trainer will reject itself; here only a reason
        return None, (
            f"lr_scheduler_type={kind!r}: transformers.get_scheduler failed ({type(exc).__name__}: {exc}); "
            "forecasts follow the reported learning rates"
        )
    schedule, note = schedule_from_scheduler(scheduler, total_steps)
    return schedule, None if note is None else f"lr_scheduler_type={kind!r}: {note}"


class SHScalingCallback(PruningStatus, TrainerCallback):
    """Report each evaluation's loss to an Optuna trial with the training compute spent, and stop the run
    cleanly when the pruner says so.

    At every evaluation the metric (``eval_loss`` by default) goes to the trial through
    :func:`sh_scaling.report` with the cumulative training compute. Where the compute comes from, in order:

    1. ``compute_fn(state)``, when given (any unit: ``state`` is the ``TrainerState``).
    2. ``flops_per_token * tokens seen``, when ``flops_per_token`` is given (or ``flops_per_token="count"``:
       counted from the model, :func:`~sh_scaling.integrations.count_flops_per_token`). Tokens seen are
       ``state.num_input_tokens_seen`` (set ``TrainingArguments(include_num_input_tokens_seen=True)``), or
       ``tokens_per_step * state.global_step``.
    3. Otherwise the ``Trainer``'s own count, ``state.total_flos`` (``6 N`` per token with ``N`` the
       non-embedding parameters, from ``PreTrainedModel.floating_point_ops``). The Trainer folds its FLOPs
       into ``state`` only when it logs, so the callback asks for a log at each evaluation step to keep the
       count current.

    When the pruner stops the trial the callback sets ``control.should_training_stop``: the ``Trainer``
    finishes the step, saves nothing extra and returns from ``train()`` normally. Call :meth:`check_pruned`
    after ``train()`` to raise :class:`optuna.TrialPruned`, so the study records the trial as pruned.

    Args:
        trial: The running trial.
        metric: Evaluation metric to report (a loss: lower is better). Default ``"eval_loss"``.
        flops_per_token: Training FLOPs per token, or ``"count"`` to count them from the model.
        tokens_per_step: Tokens per optimizer step (all devices, all accumulation steps), used when the
            Trainer does not count input tokens.
        compute_fn: ``compute_fn(state) -> cumulative compute``; overrides the above.
        max_compute: Compute this trial is meant to reach if never pruned (overrides the pruner's).
        derive_schedule: Store the schedule the ``TrainingArguments`` plan (:func:`planned_schedule`, over
            ``state.max_steps``, the planned total steps) as the trial's schedule when training begins, so the
            pruner forecasts each run to its own end; when the arguments state no schedule it supports, the
            reason goes to the trial (:data:`~sh_scaling.keys.SCHEDULE_NOTE_KEY`). Default ``True``; pass
            ``False`` when the ``Trainer`` is given its own scheduler (``optimizers=(opt, scheduler)``), whose
            schedule the arguments do not describe. The schedule is a function of the fraction of the run: it
            lines up with compute when ``max_compute`` is the compute of the planned steps.

    Every report also carries the learning rate the optimizer is at (its first parameter group, else the
    scheduler's last rate): the rate of the next step, the one the schedule gives after ``global_step`` steps.
    When neither can be read, the report goes without it (the pruner then relies on the stated schedule).

    Raises:
        ValueError: at construction, without a running trial or with invalid numbers; at an evaluation
            (so ``train()`` stops and the trial fails with the message), when the metric is missing (the
            message lists the metrics there are) or when no compute can be had (a model the Trainer cannot
            count FLOPs for; the message names what to pass).

    Example::

        def objective(trial):
            model = GPT2LMHeadModel(GPT2Config(n_layer=trial.suggest_int("n_layer", 2, 12), ...))
            callback = SHScalingCallback(trial)
            trainer = Trainer(model=model, args=TrainingArguments(eval_strategy="steps", eval_steps=50, ...),
                              train_dataset=train, eval_dataset=val, callbacks=[callback])
            trainer.train()
            callback.check_pruned()                       # raises optuna.TrialPruned
            return trainer.evaluate()["eval_loss"]
    """

    def __init__(
        self,
        trial: optuna.trial.Trial,
        *,
        metric: str = "eval_loss",
        flops_per_token: float | str | None = None,
        tokens_per_step: int | None = None,
        compute_fn: Callable[[TrainerState], float] | None = None,
        max_compute: float | None = None,
        derive_schedule: bool = True,
    ) -> None:
        self.trial = check_trial(trial, "SHScalingCallback")
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be the name of an evaluation metric, got {metric!r}")
        if compute_fn is not None and not callable(compute_fn):
            raise ValueError(f"compute_fn must be callable as compute_fn(state), got {compute_fn!r}")
        self.metric = metric
        self._count = flops_per_token == "count"
        self.flops_per_token = None if self._count else positive_or_none("flops_per_token", flops_per_token)
        tps = positive_or_none("tokens_per_step", tokens_per_step)
        self.tokens_per_step = None if tps is None else int(tps)
        self.compute_fn = compute_fn
        self.derive_schedule = bool(derive_schedule)
        #: The schedule derived at the start of training (``None`` before, or when none could be).
        self.schedule: Schedule | None = None
        #: Why no schedule was derived (``None`` when one was, or before training).
        self.schedule_note: str | None = None
        self._reports = EvaluationReporter(self.trial, positive_or_none("max_compute", max_compute))

    # --- Trainer events ---------------------------------------------------------------------------------------

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kw: Any
    ) -> None:
        if self._count and self.flops_per_token is None:
            self.flops_per_token = count_flops_per_token(model)
        if self.derive_schedule:
            # Here, not at construction: the Trainer has resolved the planned steps (max_steps, or epochs x
            # batches per epoch) into state.max_steps, and no evaluation has been reported yet, so the pruner
            # finds the schedule at its first decision.
            self.schedule, self.schedule_note = planned_schedule(args, int(state.max_steps or 0))
            store_planned_schedule(self.trial, self.schedule, self.schedule_note)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> TrainerControl:
        if control.should_evaluate and self._uses_total_flos:
            # The Trainer adds its per-step FLOPs to state.total_flos only when it logs; logging is done before
            # evaluating in the same step, so this keeps total_flos exact at the evaluation.
            control.should_log = True
        return control

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> TrainerControl:
        metrics = metrics or {}
        if self.metric not in metrics:
            raise ValueError(
                f"SHScalingCallback: evaluation returned no {self.metric!r}; metrics were {sorted(metrics)}. "
                f"Give the eval dataset labels (so the Trainer computes a loss) or pass metric=... naming a "
                f"loss-like metric (lower is better)"
            )
        compute = self._compute(state)
        if compute is None:  # evaluation before any training step: nothing spent yet
            return control
        lr = optimizer_lr(kw.get("optimizer"), kw.get("lr_scheduler"))
        if self._reports(float(metrics[self.metric]), compute, lr):
            control.should_training_stop = True
        return control


    # --- compute ----------------------------------------------------------------------------------------------

    @property
    def _uses_total_flos(self) -> bool:
        return self.compute_fn is None and self.flops_per_token is None and not self._count

    def _compute(self, state: TrainerState) -> float | None:
        if self.compute_fn is not None:
            return float(self.compute_fn(state)) if state.global_step > 0 else None
        if self.flops_per_token is not None:
            tokens = float(getattr(state, "num_input_tokens_seen", 0) or 0)
            if tokens <= 0 and self.tokens_per_step is not None:
                tokens = float(self.tokens_per_step * state.global_step)
            if tokens <= 0:
                if state.global_step > 0:
                    raise ValueError(
                        "SHScalingCallback: tokens seen are unknown; set "
                        "TrainingArguments(include_num_input_tokens_seen=True) or pass tokens_per_step=..."
                    )
                return None
            return self.flops_per_token * tokens
        if state.global_step == 0:
            return None
        flos = float(state.total_flos or 0.0)
        if flos <= 0:
            raise ValueError(
                "SHScalingCallback: the Trainer counted no FLOPs (state.total_flos is 0: the model is not a "
                "transformers PreTrainedModel, or its inputs have no 'input_ids'); pass flops_per_token=... "
                "(e.g. TransformerConfig(...).training_flops_per_token(), or 'count' to count 6N from the "
                "model) with include_num_input_tokens_seen=True or tokens_per_step=..., or compute_fn=..."
            )
        return flos
