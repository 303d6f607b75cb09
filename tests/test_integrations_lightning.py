"""The PyTorch Lightning callback, with a tiny GPT-style LightningModule really trained on CPU."""

from __future__ import annotations

import logging
import signal
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from sh_scaling import schedules  # noqa: E402
from sh_scaling.integrations import SHScalingLightningCallback  # noqa: E402
from sh_scaling.keys import SCHEDULE_KEY, SCHEDULE_NOTE_KEY  # noqa: E402
from sh_scaling.pruning import reported_compute, reported_lr  # noqa: E402

# Lightning's own use of a deprecated torch pytree API; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*")

VOCAB, SEQ, D = 64, 16, 32


@pytest.fixture(autouse=True)
def _quiet_one_thread(one_torch_thread):
    level = logging.getLogger("lightning.pytorch").level
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    yield
    logging.getLogger("lightning.pytorch").setLevel(level)


def _sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    stride = torch.randint(1, 4, (n, 1), generator=g)
    return (start + stride * torch.arange(SEQ)) % VOCAB


class TinyGPT(pl.LightningModule):
    """Two pre-norm causal transformer layers, width 32, tied embeddings."""

    def __init__(self, lr=3e-3, log_name="val_loss", decay=False, scheduler=None):
        super().__init__()
        self.lr, self.log_name, self.decay, self.scheduler = lr, log_name, decay, scheduler
        self.tok = torch.nn.Embedding(VOCAB, D)
        self.pos = torch.nn.Embedding(SEQ, D)
        layer = torch.nn.TransformerEncoderLayer(D, 2, 4 * D, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(D, VOCAB, bias=False)
        self.head.weight = self.tok.weight

    def loss(self, ids):
        mask = torch.nn.Transformer.generate_square_subsequent_mask(SEQ)
        h = self.blocks(self.tok(ids) + self.pos(torch.arange(SEQ)), mask=mask, is_causal=True)
        logits = self.head(h)[:, :-1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))

    def training_step(self, batch, batch_idx):
        return self.loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log(self.log_name, self.loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr)
        if self.scheduler is not None:  # scheduler(opt, planned steps) -> Lightning's lr_scheduler config
            return {"optimizer": opt, "lr_scheduler": self.scheduler(opt, int(self.trainer.estimated_stepping_batches))}
        if not self.decay:
            return opt
        decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1.0 + k))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def _fit(module, callback, max_steps=30, extra=()):
    train = torch.utils.data.DataLoader(_sequences(512, 0), batch_size=8)
    val = torch.utils.data.DataLoader(_sequences(64, 1), batch_size=64)
    trainer = pl.Trainer(max_steps=max_steps, val_check_interval=5, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[callback, *extra])
    torch.manual_seed(0)
    trainer.fit(module, train, val)
    return trainer


def _compute(trial):
    compute = reported_compute(trial)
    return [compute[s] for s in sorted(trial.intermediate_values)]


def test_reports_with_compute_reach_the_study():
    study = optuna.create_study()
    holder = {}

    def objective(trial):
        cb = SHScalingLightningCallback(trial, max_compute=1e9)
        holder["trainer"], holder["cb"] = _fit(TinyGPT(), cb), cb
        cb.check_pruned()
        return cb.last_loss

    study.optimize(objective, n_trials=1)
    t, cb = study.trials[0], holder["cb"]
    assert t.state == TrialState.COMPLETE
    assert sorted(t.intermediate_values) == list(range(6))  # sanity-check validation not reported
    # 6N: two layers of 12 d^2 weights plus biases and norms, the tied embedding once, no position embedding.
    per_layer = 12 * D * D + (3 * D + D + 4 * D + D) + 4 * D
    assert cb.flops_per_token == 6 * (2 * per_layer + VOCAB * D)
    assert _compute(t) == pytest.approx([cb.flops_per_token * 8 * SEQ * 5 * (k + 1) for k in range(6)])
    assert t.intermediate_values[5] < t.intermediate_values[0] - 0.5  # it really trained
    assert t.system_attrs["sh_scaling:max_compute"] == 1e9


def test_pruned_run_stops():
    class PruneAfterTwo(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return len(trial.intermediate_values) >= 2

    study = optuna.create_study(pruner=PruneAfterTwo())
    holder = {}

    def objective(trial):
        cb = SHScalingLightningCallback(trial)
        holder["trainer"] = _fit(TinyGPT(), cb)
        cb.check_pruned()
        return cb.last_loss

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED
    assert len(t.intermediate_values) == 2
    assert holder["trainer"].global_step == 10  # stopped at the second validation, not at 30


def test_bad_input():
    with pytest.raises(ValueError, match="running optuna.trial.Trial"):
        SHScalingLightningCallback(None)
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="tokens_per_batch must be a positive"):
        SHScalingLightningCallback(trial, tokens_per_batch=0)
    # The validation loss logged under another name: the message lists what was logged.
    with pytest.raises(ValueError, match=r"no 'val_loss' among the logged metrics \['valid/loss'\]"):
        _fit(TinyGPT(log_name="valid/loss"), SHScalingLightningCallback(trial), max_steps=5)


def test_ctrl_c_fails_the_trial():
    class Interrupt(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 7:
                raise KeyboardInterrupt

    study = optuna.create_study()

    def objective(trial):
        _fit(TinyGPT(), SHScalingLightningCallback(trial), extra=[Interrupt()])
        return 0.0

    # Lightning handles Ctrl-C itself: it stops fit() gracefully (and, in Lightning >= 2.1, exits the process
    # with SystemExit). Either way optuna records the trial as failed rather than leaving it RUNNING.
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            study.optimize(objective, n_trials=2)
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C after the first
    (t,) = study.trials
    assert t.state == TrialState.FAIL
    assert len(t.intermediate_values) == 1


class _OptimizerLr(pl.Callback):
    """The optimizer's learning rate at each validation, read independently of the callback."""

    def __init__(self) -> None:
        self.lr: list[float] = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.lr.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_reports_carry_the_optimizer_lr():
    study = optuna.create_study()
    seen = _OptimizerLr()

    def objective(trial):
        _fit(TinyGPT(decay=True), SHScalingLightningCallback(trial), extra=[seen])
        return 0.0

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    lrs = reported_lr(t)
    assert [lrs[s] for s in sorted(lrs)] == pytest.approx(seen.lr, rel=1e-12)
    # The step scheduler ran between reports: after 5 k steps the rate is lr / (1 + 5 k).
    assert seen.lr == pytest.approx([3e-3 / (1 + 5 * (k + 1)) for k in range(6)])
    # The LambdaLR's planned rates, sampled at every step of the 30 planned: lr / (1 + k) at f = k / 30.
    stored = schedules.schedule_from_dict(t.system_attrs[SCHEDULE_KEY])
    assert stored.kind == "table"
    assert [float(stored(k / 30)) for k in range(31)] == pytest.approx([3e-3 / (1 + k) for k in range(31)], rel=1e-6)


def test_unreadable_optimizer_reports_without_a_rate():
    study = optuna.create_study()
    trial = study.ask()
    cb = SHScalingLightningCallback(trial, flops_per_token=1.0)
    trainers = [
        SimpleNamespace(optimizers=[object()]),  # no param_groups
        SimpleNamespace(optimizers=[]),
        SimpleNamespace(),
        SimpleNamespace(optimizers=[SimpleNamespace(param_groups=[{"lr": float("nan")}])]),
        SimpleNamespace(optimizers=[SimpleNamespace(param_groups=[{"lr": 0.25}])]),
    ]
    for trainer in trainers:
        trainer.sanity_checking, trainer.should_stop = False, False
        trainer.callback_metrics = {"val_loss": torch.tensor(1.0)}
        cb.tokens_seen += 10
        cb.on_validation_end(trainer, None)
    frozen = study._storage.get_trial(trial._trial_id)
    assert len(frozen.intermediate_values) == 5
    assert reported_lr(frozen) == {4: 0.25}


LRS = torch.optim.lr_scheduler


def _warmup_then_cosine(opt, steps):
    warmup = LRS.LinearLR(opt, start_factor=0.01, total_iters=6)
    cosine = LRS.CosineAnnealingLR(opt, T_max=steps - 6, eta_min=3e-4)
    return {"scheduler": LRS.SequentialLR(opt, [warmup, cosine], milestones=[6]), "interval": "step"}


@pytest.mark.parametrize(
    ("scheduler", "kind"),
    [
        (lambda opt, steps: {"scheduler": LRS.CosineAnnealingLR(opt, T_max=steps, eta_min=3e-4), "interval": "step"},
         "cosine"),
        (_warmup_then_cosine, "table"),
    ],
)
def test_stored_schedule_is_the_scheduler_one_and_gives_the_reported_rates(scheduler, kind):
    study = optuna.create_study()
    seen = _OptimizerLr()
    holder = {}

    def objective(trial):
        # Compute = optimizer steps (8 sequences of SEQ tokens each), so a report's fraction is step / 30.
        cb = SHScalingLightningCallback(trial, compute_fn=lambda trainer, module, tokens: tokens / (8 * SEQ))
        _fit(TinyGPT(scheduler=scheduler), cb, extra=[seen])
        holder["cb"] = cb
        return 0.0

    study.optimize(objective, n_trials=1)
    t, cb = study.trials[0], holder["cb"]
    stored = schedules.schedule_from_dict(t.system_attrs[SCHEDULE_KEY])
    assert stored == cb.schedule and stored.kind == kind and cb.schedule_note is None
    compute, lrs = reported_compute(t), reported_lr(t)
    assert [lrs[s] for s in sorted(lrs)] == pytest.approx(seen.lr, rel=1e-12)
    assert [float(stored(compute[s] / 30)) for s in sorted(lrs)] == pytest.approx(seen.lr, rel=1e-6)
    assert float(stored(1.0)) == pytest.approx(3e-4)  # the plan reaches eta_min at the 30th step


@pytest.mark.parametrize(
    ("scheduler", "reason"),
    [
        (lambda opt, steps: {"scheduler": LRS.StepLR(opt, step_size=1, gamma=0.9), "interval": "epoch"},
         "steps every 1 epoch"),
        (lambda opt, steps: {"scheduler": LRS.OneCycleLR(opt, max_lr=3e-3, total_steps=steps + 1),
                             "interval": "step"}, "OneCycleLR: no closed form"),
    ],
)
def test_scheduler_without_a_schedule_records_why_and_trains_on(scheduler, reason):
    study = optuna.create_study()

    def objective(trial):
        cb = SHScalingLightningCallback(trial)
        _fit(TinyGPT(scheduler=scheduler), cb)
        assert cb.schedule is None
        return cb.last_loss

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE and len(t.intermediate_values) == 6
    assert SCHEDULE_KEY not in t.system_attrs
    assert reason in t.system_attrs[SCHEDULE_NOTE_KEY]


def test_no_scheduler_and_derive_schedule_false_store_nothing():
    study = optuna.create_study()

    def objective(trial):
        decay = trial.number == 1  # a scheduler, but the callback is told not to derive its schedule
        _fit(TinyGPT(decay=decay), SHScalingLightningCallback(trial, derive_schedule=not decay), max_steps=10)
        return 0.0

    study.optimize(objective, n_trials=2)
    for t in study.trials:
        assert SCHEDULE_KEY not in t.system_attrs and SCHEDULE_NOTE_KEY not in t.system_attrs
