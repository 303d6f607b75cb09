"""What every framework integration shares: the trial check, FLOPs per token of a model, token counting, the
learning rate an optimizer is at, the report-and-decide step, storing a trial's planned schedule, and failing a
trial cleanly when a run is interrupted.

Nothing here imports torch at module level: ``import sh_scaling.integrations`` stays light, and torch is
imported only by the functions that inspect a torch model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from sh_scaling._checks import positive_finite
from sh_scaling.pruning import report
from sh_scaling.keys import DECISION_KEY, SCHEDULE_KEY, SCHEDULE_NOTE_KEY
from sh_scaling.schedules import Schedule

__all__ = [
    "EvaluationReporter",
    "check_trial",
    "count_flops_per_token",
    "optimizer_lr",
    "positive_or_none",
    "store_planned_schedule",
    "tell_on_error",
    "tokens_in_batch",
]

_HOW_TO_GIVE_FLOPS = (
    "pass flops_per_token=... (training FLOPs per token, e.g. "
    "sh_scaling.laws.TransformerConfig(...).training_flops_per_token()) or compute_fn=... (a function returning "
    "the cumulative training compute)"
)


def check_trial(trial: Any, owner: str) -> optuna.trial.Trial:
    """``trial`` if it is a running :class:`optuna.trial.Trial`, else a ``ValueError`` saying what to pass."""
    if isinstance(trial, optuna.trial.Trial):
        return trial
    if isinstance(trial, optuna.trial.FrozenTrial):
        raise ValueError(
            f"{owner}: got a FrozenTrial (a read-only copy); pass the running trial that the objective receives"
        )
    raise ValueError(
        f"{owner}: trial must be the running optuna.trial.Trial given to your objective (or returned by "
        f"study.ask()), got {trial!r}; create the callback inside the objective: {owner}(trial, ...)"
    )


def count_flops_per_token(model: Any) -> float:
    """Training FLOPs per token of a torch model: ``6 N`` (Kaplan et al., *Scaling Laws for Neural Language
    Models*, 2020, Section 2.1: forward ``2 N`` and backward ``4 N`` per token).

    ``N`` counts every distinct trainable parameter once, except the weights of embedding modules
    (``torch.nn.Embedding``) that no other module uses: a lookup costs no multiply-adds, but an input
    embedding tied to the output projection (GPT-2) is a matrix product of ``V d`` weights per token and is
    counted. The attention term quadratic in sequence length (``6 n_layers seq d_model``, Kaplan et al.) is
    left out; for the detailed count of Hoffmann et al. (2022, Appendix F) pass
    ``flops_per_token=TransformerConfig(...).training_flops_per_token()`` to the integration instead.

    Raises:
        ValueError: when ``model`` is not a torch module (nothing to count) or has no trainable parameter,
            naming what to pass instead.
    """
    if not (hasattr(model, "named_modules") and hasattr(model, "parameters")):
        raise ValueError(
            f"cannot count the FLOPs of {type(model).__name__!s} (not a torch.nn.Module); {_HOW_TO_GIVE_FLOPS}"
        )
    import torch  # only reached with a torch model

    embedding_only: dict[int, Any] = {}
    used_elsewhere: set[int] = set()
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if isinstance(module, torch.nn.Embedding):
            embedding_only.update((id(p), p) for p in own)
        else:
            used_elsewhere.update(id(p) for p in own)
    unique = {id(p): p for p in model.parameters() if p.requires_grad}
    n = sum(p.numel() for k, p in unique.items() if k not in embedding_only or k in used_elsewhere)
    if n == 0:
        raise ValueError(
            f"cannot count the FLOPs of {type(model).__name__}: it has no trainable non-embedding parameter; "
            f"{_HOW_TO_GIVE_FLOPS}"
        )
    return 6.0 * float(n)


def tokens_in_batch(batch: Any) -> int:
    """Number of tokens in a language-model batch: the size of its input ids.

    A tensor of token ids (``batch x seq``), a mapping with ``"input_ids"``, or a tuple/list whose first
    element is one of these. Raises ``ValueError`` otherwise, naming ``tokens_per_batch=``.
    """
    if isinstance(batch, Mapping):
        if "input_ids" in batch:
            return tokens_in_batch(batch["input_ids"])
    elif isinstance(batch, (tuple, list)) and batch:
        return tokens_in_batch(batch[0])
    elif hasattr(batch, "numel") and hasattr(batch, "dtype"):
        if getattr(batch.dtype, "is_floating_point", False):
            raise ValueError(
                "cannot count tokens: the batch holds floating-point features, not token ids; "
                "pass tokens_per_batch=... (or compute_fn=...)"
            )
        return int(batch.numel())
    raise ValueError(
        f"cannot count tokens in a batch of type {type(batch).__name__} (expected token ids: a tensor, a dict "
        f"with 'input_ids', or a tuple starting with one); pass tokens_per_batch=... (or compute_fn=...)"
    )


def optimizer_lr(optimizer: Any = None, scheduler: Any = None) -> float | None:
    """The learning rate of the first parameter group of ``optimizer`` (else ``scheduler.get_last_lr()[0]``),
    or ``None`` when neither can be read.

    ``None`` rather than an error: the rate only sharpens the forecasts (the pruner works without it), so an
    optimizer this cannot read (a wrapper without ``param_groups``, a rate that is a tensor of several values,
    a negative or non-finite number, which :func:`sh_scaling.report` would reject) must not fail the study.
    """
    for read in (lambda: optimizer.param_groups[0]["lr"], lambda: scheduler.get_last_lr()[0]):
        try:
            lr = float(read())
        except Exception:  # noqa: BLE001 - anything unreadable means "no rate", never a failed trial
            continue
        if math.isfinite(lr) and lr >= 0:
            return lr
    return None


def store_planned_schedule(trial: optuna.trial.Trial, schedule: Schedule | None, note: str | None) -> None:
    """Store the trial's planned schedule (``schedule.to_dict()`` under :data:`~sh_scaling.keys.SCHEDULE_KEY`)
    once, or, without one, why (:data:`~sh_scaling.keys.SCHEDULE_NOTE_KEY`).

    :class:`~sh_scaling.pruning.SurrogateHalvingPruner` reads a trial's schedule from that key and writes its
    own ``schedule=`` there only when the key is absent: a schedule the training framework states, written
    before the first report, is the one the pruner forecasts with. A schedule already stored (a second
    ``train()`` call on the same trial) is kept, so the trial keeps one schedule.
    """
    attrs = trial._cached_frozen_trial.system_attrs
    if SCHEDULE_KEY in attrs or trial.storage.get_trial_system_attrs(trial._trial_id).get(SCHEDULE_KEY):
        return
    key, value = (SCHEDULE_KEY, schedule.to_dict()) if schedule is not None else (SCHEDULE_NOTE_KEY, note)
    if value is None:
        return
    trial.storage.set_trial_system_attr(trial._trial_id, key, value)
    attrs[key] = value


class EvaluationReporter:
    """Report ``(loss, compute)`` pairs of one trial and remember whether the pruner stopped it.

    Skips a report whose compute does not exceed the previous one (the same evaluation seen twice, as when
    ``Trainer.evaluate()`` is called again after training ended): it carries no new information, and
    :func:`sh_scaling.report` rejects compute that does not increase.
    """

    def __init__(self, trial: optuna.trial.Trial, max_compute: float | None) -> None:
        self.trial = trial
        self.max_compute = max_compute
        self.last_compute = 0.0
        self.pruned_reason: str | None = None
        self.n_reports = 0

    def __call__(self, loss: float, compute: float, lr: float | None = None) -> bool:
        """Report (with the learning rate in effect, when known); return ``True`` when the trial should stop
        (and record why)."""
        compute = float(compute)
        if not compute > self.last_compute:
            return self.pruned_reason is not None
        report(self.trial, float(loss), compute=compute, max_compute=self.max_compute, lr=lr)
        self.last_compute = compute
        self.n_reports += 1
        if self.trial.should_prune():
            # Written by the pruner straight to storage (the trial's cached copy does not have it).
            decision = self.trial.storage.get_trial_user_attrs(self.trial._trial_id).get(DECISION_KEY)
            self.pruned_reason = (
                f"pruned at compute {compute:.4g} (loss {loss:.4g})" + (f": {decision}" if decision else "")
            )
            return True
        return False

    def raise_if_pruned(self) -> None:
        if self.pruned_reason is not None:
            raise optuna.TrialPruned(self.pruned_reason)


class PruningStatus:
    """What the framework callbacks tell their user after ``fit``/``train``: read off ``self._reports``."""

    _reports: EvaluationReporter

    @property
    def pruned(self) -> bool:
        """Whether the pruner stopped the trial."""
        return self._reports.pruned_reason is not None

    @property
    def n_reports(self) -> int:
        """Evaluations reported to the trial so far."""
        return self._reports.n_reports

    def check_pruned(self) -> None:
        """Raise :class:`optuna.TrialPruned` (with the pruner's reason) if the pruner stopped the trial."""
        self._reports.raise_if_pruned()


def positive_or_none(name: str, value: object) -> float | None:
    return None if value is None else positive_finite(name, value)


@contextlib.contextmanager
def tell_on_error(study: optuna.Study, trial: optuna.trial.Trial) -> Iterator[optuna.trial.Trial]:
    """Leave the study consistent when a trial run with ``study.ask()`` stops early.

    ``study.optimize`` already marks a trial failed when the objective raises, Ctrl-C (``KeyboardInterrupt``)
    included. With the ask-and-tell interface nothing does, and an interrupted trial stays ``RUNNING`` for
    ever (or until a heartbeat notices, with RDB storages). Inside this context:

    * :class:`optuna.TrialPruned` tells the study the trial was pruned (the exception is swallowed);
    * any other exception, ``KeyboardInterrupt`` included, tells the study the trial failed, and is re-raised.

    Example::

        trial = study.ask()
        with tell_on_error(study, trial):
            loss = train(trial)            # may raise TrialPruned, or be interrupted with Ctrl-C
            study.tell(trial, loss)
    """
    try:
        yield trial
    except optuna.TrialPruned:
        if _is_running(study, trial):
            study.tell(trial, state=TrialState.PRUNED)
    except BaseException:
        if _is_running(study, trial):
            study.tell(trial, state=TrialState.FAIL)
        raise


def _is_running(study: optuna.Study, trial: optuna.trial.Trial) -> bool:
    return trial.storage.get_trial(trial._trial_id).state == TrialState.RUNNING
