"""PyTorch Lightning: a ``Callback`` that reports validation losses with their compute.

Install with ``pip install "sh_scaling[lightning]"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import optuna
from optuna.trial import TrialState

from sh_scaling.schedules import Schedule

from ._common import (
    PruningStatus,
    EvaluationReporter,
    check_trial,
    count_flops_per_token,
    optimizer_lr,
    positive_or_none,
    store_planned_schedule,
    tokens_in_batch,
)
from ._schedulers import schedule_from_scheduler

__all__ = ["SHScalingLightningCallback", "planned_schedule"]


def planned_schedule(trainer: pl.Trainer) -> tuple[Schedule | None, str | None]:
    """The schedule the LR scheduler of ``trainer.optimizers[0]`` will follow over the planned run, or ``None``
    and why not (``None, None`` when that optimizer has no scheduler: nothing is planned beyond its rate).

    The scheduler must step after every optimizer step (``"interval": "step"``, ``"frequency": 1``, as
    step-based schedules such as a warm-up and a cosine are configured); the run is
    ``trainer.estimated_stepping_batches`` optimizer steps (``max_steps``, or the epochs' batches over
    gradient accumulation), and the schedule is read off the scheduler by
    :func:`~sh_scaling.integrations.schedule_from_scheduler`. Call it once the optimizers are set up (from
    ``on_train_start`` on).
    """
    optimizers = getattr(trainer, "optimizers", None) or []
    if not optimizers:
        return None, None
    configs = [c for c in trainer.lr_scheduler_configs if getattr(c.scheduler, "optimizer", None) is optimizers[0]]
    if not configs:
        return None, None
    config = configs[0]
    name = type(config.scheduler).__name__
    if config.interval != "step" or config.frequency != 1:
        return None, (
            f"{name} steps every {config.frequency} {config.interval}(s); a schedule is derived only for a "
            "scheduler stepped after every optimizer step (interval='step', frequency=1); forecasts follow the "
            "reported learning rates"
        )
    total = float(trainer.estimated_stepping_batches)
    if not (math.isfinite(total) and total >= 1):
        return None, f"{name}: the planned number of training steps is unknown (set max_steps or max_epochs)"
    return schedule_from_scheduler(config.scheduler, int(total))


class SHScalingLightningCallback(PruningStatus, pl.Callback):
    """Report each validation loss to an Optuna trial with the training compute spent, and stop the run
    cleanly when the pruner says so.

    The callback counts the tokens of every training batch (``batch`` of token ids, a dict with
    ``"input_ids"``, or a tuple starting with them; or ``tokens_per_batch``) and, at the end of each
    validation, reports ``trainer.callback_metrics[monitor]`` with compute ``flops_per_token * tokens seen``
    through :func:`sh_scaling.report`. When the pruner stops the trial it sets ``trainer.should_stop``, so
    ``fit()`` returns normally; call :meth:`check_pruned` afterwards to raise :class:`optuna.TrialPruned`.
    Lightning's sanity-check validation, before any training, is not reported. Each report carries the
    learning rate of the first optimizer's first parameter group (``trainer.optimizers[0]``), the rate the next
    step uses; when it cannot be read (no optimizer, a wrapper without ``param_groups``) the report goes
    without it.

    Args:
        trial: The running trial.
        monitor: Logged validation metric to report (a loss). Default ``"val_loss"`` (``self.log("val_loss",
            ...)`` in ``validation_step``).
        flops_per_token: Training FLOPs per token. Default: counted from the LightningModule, ``6 N``
            (:func:`~sh_scaling.integrations.count_flops_per_token`); give
            ``TransformerConfig(...).training_flops_per_token()`` for the detailed count.
        tokens_per_batch: Tokens per training batch, when batches are not token ids.
        compute_fn: ``compute_fn(trainer, pl_module, tokens_seen) -> cumulative compute``; overrides the above
            (any unit).
        max_compute: Compute this trial is meant to reach if never pruned (overrides the pruner's).
        derive_schedule: When training starts, store the schedule the first optimizer's LR scheduler will
            follow over ``trainer.estimated_stepping_batches`` steps (:func:`planned_schedule`, read off the
            scheduler without stepping it) as the trial's schedule, so the pruner forecasts each run to its
            own end; a scheduler it cannot state (``ReduceLROnPlateau``, one stepped per epoch, a lambda that
            fails) leaves the reason in the trial (:data:`~sh_scaling.keys.SCHEDULE_NOTE_KEY`) and training goes
            on. Without a scheduler nothing is stored (the pruner's ``schedule=``, if any, applies). The
            schedule is a function of the fraction of the run: it lines up with compute when ``max_compute``
            is the compute of the planned steps. Default ``True``.

    Raises:
        ValueError: at construction, without a running trial or with invalid numbers; during ``fit`` (the
            trial then fails with the message): a missing metric (the message lists the logged ones), a
            module whose FLOPs cannot be counted, or batches whose tokens cannot be counted (each message
            names the argument to pass).

    Ctrl-C: Lightning stops ``fit()`` gracefully and leaves the process with ``SystemExit``, which
    ``study.optimize`` does not catch; the callback marks the trial failed first, so it is not left running.

    Counts are per process: with data parallelism, multiply by the number of processes in ``compute_fn``.

    Example::

        def objective(trial):
            module = MyLM(width=trial.suggest_int("width", 32, 256, log=True))
            callback = SHScalingLightningCallback(trial)
            pl.Trainer(max_steps=2000, val_check_interval=100, callbacks=[callback]).fit(module, train, val)
            callback.check_pruned()
            return callback.last_loss
    """

    def __init__(
        self,
        trial: optuna.trial.Trial,
        *,
        monitor: str = "val_loss",
        flops_per_token: float | None = None,
        tokens_per_batch: int | None = None,
        compute_fn: Callable[[pl.Trainer, pl.LightningModule, int], float] | None = None,
        max_compute: float | None = None,
        derive_schedule: bool = True,
    ) -> None:
        super().__init__()
        self.trial = check_trial(trial, "SHScalingLightningCallback")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged metric, got {monitor!r}")
        if compute_fn is not None and not callable(compute_fn):
            raise ValueError(f"compute_fn must be callable as compute_fn(trainer, module, tokens), got {compute_fn!r}")
        self.monitor = monitor
        self.flops_per_token = positive_or_none("flops_per_token", flops_per_token)
        tpb = positive_or_none("tokens_per_batch", tokens_per_batch)
        self.tokens_per_batch = None if tpb is None else int(tpb)
        self.compute_fn = compute_fn
        self.tokens_seen = 0
        self.last_loss = float("nan")
        self.derive_schedule = bool(derive_schedule)
        #: The schedule derived when training started (``None`` before, or when none could be).
        self.schedule: Schedule | None = None
        #: Why no schedule was derived (``None`` when one was, without a scheduler, or before training).
        self.schedule_note: str | None = None
        self._reports = EvaluationReporter(self.trial, positive_or_none("max_compute", max_compute))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.flops_per_token is None and self.compute_fn is None:
            self.flops_per_token = count_flops_per_token(pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.derive_schedule:
            # Here: the optimizers and schedulers are configured and the planned steps known, and no
            # validation has been reported yet, so the pruner finds the schedule at its first decision.
            self.schedule, self.schedule_note = planned_schedule(trainer)
            store_planned_schedule(self.trial, self.schedule, self.schedule_note)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.tokens_seen += self.tokens_per_batch if self.tokens_per_batch is not None else tokens_in_batch(batch)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            raise ValueError(
                f"SHScalingLightningCallback: no {self.monitor!r} among the logged metrics {sorted(metrics)}; "
                f"log the validation loss (self.log({self.monitor!r}, loss) in validation_step) or pass "
                f"monitor=... naming it"
            )
        self.last_loss = float(metrics[self.monitor])
        if self.tokens_seen == 0:  # validation before any training step: nothing spent yet
            return
        if self.compute_fn is not None:
            compute = float(self.compute_fn(trainer, pl_module, self.tokens_seen))
        else:
            assert self.flops_per_token is not None
            compute = self.flops_per_token * self.tokens_seen
        optimizers = getattr(trainer, "optimizers", None) or [None]
        if self._reports(self.last_loss, compute, optimizer_lr(optimizers[0])):
            trainer.should_stop = True

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt):
            return  # Lightning re-raises it and study.optimize fails the trial with it
        # Lightning answers Ctrl-C with sys.exit(1) after its graceful shutdown; study.optimize does not catch
        # SystemExit, so the trial would stay RUNNING for ever: fail it here.
        storage, tid = self.trial.storage, self.trial._trial_id
        if storage.get_trial(tid).state == TrialState.RUNNING:
            storage.set_trial_system_attr(tid, "fail_reason", "KeyboardInterrupt during Lightning fit()")
            self.trial.study.tell(self.trial, state=TrialState.FAIL)

