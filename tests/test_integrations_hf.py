"""The Hugging Face TrainerCallback, with a tiny GPT-2 really trained by ``Trainer`` on CPU."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sh_scaling import schedules  # noqa: E402
from sh_scaling.integrations import SHScalingCallback, count_flops_per_token  # noqa: E402
from sh_scaling.integrations.huggingface import planned_schedule  # noqa: E402
from sh_scaling.keys import SCHEDULE_KEY, SCHEDULE_NOTE_KEY  # noqa: E402
from sh_scaling.pruning import SurrogateHalvingPruner, reported_compute, reported_lr  # noqa: E402

VOCAB, SEQ = 64, 16


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


class _Sequences(torch.utils.data.Dataset):
    """Arithmetic sequences modulo VOCAB: learnable, so the loss falls within a few dozen steps."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(0, VOCAB, (n, 1), generator=g)
        stride = torch.randint(1, 4, (n, 1), generator=g)
        self.ids = (start + stride * torch.arange(SEQ)) % VOCAB

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class _PruneAfter(optuna.pruners.BasePruner):
    """Prunes a trial once it has reported ``n`` values."""

    def __init__(self, n: int) -> None:
        self.n = n

    def prune(self, study, trial) -> bool:
        return len(trial.intermediate_values) >= self.n


def _gpt2():
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg)


def _trainer(model, callbacks, tmp_path, max_steps=30, eval_steps=5, **args):
    kwargs = dict(
        output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=8,
        per_device_eval_batch_size=32, eval_strategy="steps", eval_steps=eval_steps, logging_steps=1000,
        save_strategy="no", report_to="none", use_cpu=True, learning_rate=3e-3, disable_tqdm=True, seed=0,
    )
    targs = transformers.TrainingArguments(**{**kwargs, **args})
    return transformers.Trainer(model=model, args=targs, train_dataset=_Sequences(512, 0),
                                eval_dataset=_Sequences(64, 1), callbacks=callbacks)


def _objective(tmp_path, holder, **cb_kwargs):
    def objective(trial):
        cb = SHScalingCallback(trial, **cb_kwargs)
        trainer = _trainer(_gpt2(), [cb], tmp_path)
        trainer.train()
        holder["trainer"], holder["callback"] = trainer, cb
        cb.check_pruned()
        return trainer.evaluate()["eval_loss"]

    return objective


def _compute(trial):
    steps = sorted(trial.intermediate_values)
    compute = reported_compute(trial)
    return [compute[s] for s in steps]


def test_trainer_reports_loss_with_trainer_flops(tmp_path):
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    holder = {}
    study.optimize(_objective(tmp_path, holder), n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE
    # 30 steps, evaluated every 5: six reports; the final trainer.evaluate() repeats step 30 and is skipped.
    assert sorted(t.intermediate_values) == list(range(6))
    compute = _compute(t)
    assert all(b > a for a, b in zip(compute, compute[1:]))
    # The Trainer's own count, kept current at each evaluation: equal FLOPs per step, 6N per token.
    state = holder["trainer"].state
    assert compute[-1] == pytest.approx(state.total_flos)
    assert compute[0] == pytest.approx(state.total_flos / 6)
    model = holder["trainer"].model
    per_token = 6 * model.num_parameters(exclude_embeddings=True)
    assert compute[-1] == pytest.approx(per_token * 30 * 8 * SEQ)
    losses = [t.intermediate_values[s] for s in range(6)]
    assert losses[-1] < losses[0] - 0.5  # it really trained


def test_flops_per_token_and_tokens_seen(tmp_path):
    study = optuna.create_study()
    holder = {}

    def objective(trial):
        cb = SHScalingCallback(trial, flops_per_token="count", max_compute=1e12)
        trainer = _trainer(_gpt2(), [cb], tmp_path, max_steps=10, include_num_input_tokens_seen=True)
        trainer.train()
        holder["cb"] = cb
        return 0.0

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    fpt = holder["cb"].flops_per_token
    # GPT-2 ties the input embedding to the output projection: it is counted; the position embedding is not.
    blocks = 2 * (12 * 32 * 32 + 9 * 32 + 4 * 32) + 2 * 32  # weights, biases, layer norms; final norm
    assert fpt == pytest.approx(6 * (blocks + VOCAB * 32))
    assert _compute(t) == pytest.approx([fpt * 5 * 8 * SEQ, fpt * 10 * 8 * SEQ])
    assert t.system_attrs["sh_scaling:max_compute"] == 1e12


def test_pruned_run_stops_cleanly(tmp_path):
    study = optuna.create_study(pruner=_PruneAfter(2))
    holder = {}
    study.optimize(_objective(tmp_path, holder), n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED
    assert len(t.intermediate_values) == 2
    assert holder["trainer"].state.global_step == 10  # stopped at the second evaluation, not at 30
    assert holder["callback"].pruned


def test_surrogate_halving_pruner_prunes_real_runs(tmp_path):
    """Several real runs under the library's pruner: reports with compute reach it, and it stops some."""
    import sh_scaling

    full = 6 * _gpt2().num_parameters(exclude_embeddings=True) * 30 * 8 * SEQ  # the Trainer's count at step 30
    pruner = sh_scaling.SurrogateHalvingPruner(max_compute=full, n_startup_trials=1, reduction_factor=2,
                                               rung_factor=1.3, warmup_fraction=0.0)
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        cb = SHScalingCallback(trial)
        trainer = _trainer(_gpt2(), [cb], tmp_path, max_steps=30, eval_steps=3, learning_rate=lr)
        trainer.train()
        cb.check_pruned()
        return trainer.evaluate()["eval_loss"]

    study.optimize(objective, n_trials=5)
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states, [t.user_attrs for t in study.trials]
    for t in study.trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        if t.state == TrialState.PRUNED:
            assert len(t.intermediate_values) < 10
            assert "sh_scaling:decision" in t.user_attrs


def test_missing_metric_fails_the_trial_with_a_clear_message(tmp_path):
    study = optuna.create_study()
    # The message names the metric asked for and lists the ones the evaluation returned.
    with pytest.raises(ValueError, match=r"no 'eval_bleu'; metrics were \[.*'eval_loss'"):
        study.optimize(_objective(tmp_path, {}, metric="eval_bleu"), n_trials=1)
    assert study.trials[0].state == TrialState.FAIL


class _PlainLM(torch.nn.Module):
    """A torch module the Trainer cannot count FLOPs for (no ``floating_point_ops``)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, 16)
        self.out = torch.nn.Linear(16, VOCAB)

    def forward(self, input_ids, labels=None):
        logits = self.out(self.emb(input_ids))
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        return {"loss": loss, "logits": logits}


def test_model_without_flops_count_names_what_to_pass(tmp_path):
    study = optuna.create_study()

    def objective(trial):
        cb = SHScalingCallback(trial)
        _trainer(_PlainLM(), [cb], tmp_path, max_steps=5).train()
        return 0.0

    with pytest.raises(ValueError, match="total_flos is 0.*pass flops_per_token"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.FAIL

    # Counting the plain module's FLOPs works: the untied input embedding is excluded.
    assert count_flops_per_token(_PlainLM()) == 6 * (16 * VOCAB + VOCAB)
    with pytest.raises(ValueError, match="flops_per_token"):
        count_flops_per_token(object())


def test_callback_without_a_trial():
    with pytest.raises(ValueError, match="running optuna.trial.Trial"):
        SHScalingCallback(None)
    study = optuna.create_study()
    study.optimize(lambda t: 0.0, n_trials=1)
    with pytest.raises(ValueError, match="FrozenTrial"):
        SHScalingCallback(study.trials[0])
    trial = study.ask()
    with pytest.raises(ValueError, match="flops_per_token"):
        SHScalingCallback(trial, flops_per_token=-1)


class _Interrupt(transformers.TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 7:
            raise KeyboardInterrupt


def test_ctrl_c_fails_the_trial(tmp_path):
    study = optuna.create_study()

    def objective(trial):
        _trainer(_gpt2(), [SHScalingCallback(trial), _Interrupt()], tmp_path).train()
        return 0.0

    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=3)
    (t,) = study.trials
    assert t.state == TrialState.FAIL  # not stuck RUNNING
    assert len(t.intermediate_values) == 1  # the evaluation at step 5 was reported before the interruption


class _OptimizerLr(transformers.TrainerCallback):
    """What the optimizer's learning rate was at each evaluation, read independently of the callback."""

    def __init__(self) -> None:
        self.lr: dict[int, float] = {}

    def on_evaluate(self, args, state, control, optimizer=None, **kw):
        self.lr[state.global_step] = optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize(
    ("kind", "warmup", "expected"),
    [
        ("cosine", 5, schedules.Cosine(peak_lr=3e-3, warmup=5 / 30, final_ratio=0.0)),
        ("linear", 0.2, schedules.Linear(peak_lr=3e-3, warmup=6 / 30, final_ratio=0.0)),  # a ratio: 6 steps
        ("constant_with_warmup", 8, schedules.Constant(peak_lr=3e-3, warmup=8 / 30)),
        ("constant", 5, schedules.Constant(peak_lr=3e-3)),  # get_scheduler ignores its warm-up
    ],
)
def test_reports_the_optimizer_lr_and_stores_the_planned_schedule(tmp_path, kind, warmup, expected):
    # Compute = optimizer steps, so each report's fraction of the run is global_step / max_steps.
    study = optuna.create_study(pruner=SurrogateHalvingPruner(max_compute=30))
    seen = _OptimizerLr()

    def objective(trial):
        cb = SHScalingCallback(trial, compute_fn=lambda state: state.global_step)
        _trainer(_gpt2(), [cb, seen], tmp_path, lr_scheduler_type=kind, warmup_steps=warmup).train()
        assert cb.schedule == expected and cb.schedule_note is None
        return 0.0

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    steps = reported_compute(t)
    lrs = reported_lr(t)
    assert sorted(lrs) == sorted(steps) and len(lrs) == 6
    # The stored rates are the optimizer's, report by report ...
    assert {int(steps[s]): lrs[s] for s in lrs} == pytest.approx(seen.lr, rel=1e-12)
    # ... and the derived schedule is the one the Trainer ran: it gives those rates at those fractions.
    stored = schedules.schedule_from_dict(t.system_attrs[SCHEDULE_KEY])
    assert stored == expected
    for s, lr in lrs.items():
        assert float(stored(steps[s] / 30)) == pytest.approx(lr, rel=1e-9, abs=1e-12)
    assert any(lr < 0.99 * 3e-3 for lr in lrs.values()) == (kind != "constant")  # the shape was exercised


def test_schedule_stored_by_the_callback_is_the_one_the_pruner_forecasts_with(tmp_path):
    # The pruner writes its own schedule= only where none is stored: the Trainer's plan comes first.
    study = optuna.create_study(pruner=SurrogateHalvingPruner(max_compute=30, schedule=schedules.Constant()))

    def objective(trial):
        cb = SHScalingCallback(trial, compute_fn=lambda state: state.global_step)
        _trainer(_gpt2(), [cb], tmp_path, lr_scheduler_type="cosine", warmup_steps=0).train()
        return 0.0

    study.optimize(objective, n_trials=1)
    assert study.trials[0].system_attrs[SCHEDULE_KEY]["kind"] == "cosine"


def _args(tmp_path, **kw):
    return transformers.TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, report_to="none",
                                          use_cpu=True, **kw)


@pytest.mark.parametrize(
    ("kind", "kwargs", "expected_kind"),
    [
        ("cosine_with_restarts", {"num_cycles": 2}, "table"),
        ("polynomial", {"power": 2.0, "lr_end": 1e-4}, "table"),
        ("polynomial", {}, "linear"),  # power 1: a linear decay to lr_end (1e-7)
        ("inverse_sqrt", {}, "table"),
        ("warmup_stable_decay", {"num_decay_steps": 10, "decay_type": "cosine"}, "table"),
        ("cosine_with_min_lr", {"min_lr_rate": 0.1}, "cosine"),
        ("cosine", {"num_cycles": 0.25}, "table"),
    ],
)
def test_lambda_scheduler_types_are_sampled_into_the_schedule_the_trainer_runs(tmp_path, kind, kwargs,
                                                                                   expected_kind):
    study = optuna.create_study(pruner=SurrogateHalvingPruner(max_compute=30))
    seen = _OptimizerLr()
    eval_every_step = dict(eval_steps=1, per_device_eval_batch_size=64)

    def objective(trial):
        cb = SHScalingCallback(trial, compute_fn=lambda state: state.global_step)
        _trainer(_gpt2(), [cb, seen], tmp_path, lr_scheduler_type=kind, warmup_steps=4, lr_scheduler_kwargs=kwargs,
                 **eval_every_step).train()
        assert cb.schedule_note is None and cb.schedule.kind == expected_kind
        return 0.0

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    steps, lrs = reported_compute(t), reported_lr(t)
    assert len(lrs) == 30 and {int(steps[s]): lrs[s] for s in lrs} == pytest.approx(seen.lr, rel=1e-12)
    stored = schedules.schedule_from_dict(t.system_attrs[SCHEDULE_KEY])
    for s, lr in lrs.items():  # the rate the Trainer's scheduler gave after every step
        assert float(stored(steps[s] / 30)) == pytest.approx(lr, rel=1e-6, abs=1e-15)


def test_planned_schedule_of_types_it_cannot_state(tmp_path):
    schedule, note = planned_schedule(_args(tmp_path, lr_scheduler_type="reduce_lr_on_plateau",
                                            eval_strategy="steps"), 100)
    assert schedule is None and "ReduceLROnPlateau" in note and "monitored metric" in note
    # Arguments get_scheduler itself rejects: the reason, not an exception.
    schedule, note = planned_schedule(_args(tmp_path, lr_scheduler_type="cosine_with_min_lr"), 100)
    assert schedule is None and "get_scheduler failed" in note and "min_lr" in note
    schedule, _ = planned_schedule(
        _args(tmp_path, lr_scheduler_type="cosine", lr_scheduler_kwargs={"num_cycles": 0.5}), 100)
    assert schedule == schedules.Cosine(peak_lr=1e-3, final_ratio=0.0)
    schedule, note = planned_schedule(_args(tmp_path, lr_scheduler_type="linear", warmup_steps=100), 100)
    assert schedule is None and "warm-up" in note
    schedule, note = planned_schedule(_args(tmp_path), 0)
    assert schedule is None and "max_steps" in note


def test_unstated_schedule_is_recorded_and_rates_still_reported(tmp_path):
    study = optuna.create_study()

    def objective(trial):
        cb = SHScalingCallback(trial, compute_fn=lambda state: state.global_step)
        _trainer(_gpt2(), [cb], tmp_path, max_steps=10, lr_scheduler_type="reduce_lr_on_plateau").train()
        return 0.0

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    assert SCHEDULE_KEY not in t.system_attrs
    assert "reduce_lr_on_plateau" in t.system_attrs[SCHEDULE_NOTE_KEY]
    assert len(reported_lr(t)) == 2


def test_unreadable_optimizer_reports_without_a_rate(tmp_path):
    study = optuna.create_study()
    trial = study.ask()
    cb = SHScalingCallback(trial, compute_fn=lambda state: state.global_step, derive_schedule=False)
    args, control = _args(tmp_path), transformers.TrainerControl()

    class _Broken:
        def get_last_lr(self):
            raise RuntimeError("no rate yet")

    for step, optimizer, scheduler in [(1, object(), _Broken()), (2, None, None), (3, object(), None)]:
        state = transformers.TrainerState(global_step=step)
        cb.on_evaluate(args, state, control, metrics={"eval_loss": 1.0}, optimizer=optimizer,
                       lr_scheduler=scheduler)
    # Where the optimizer cannot be read, the scheduler's last rate serves; else no rate.
    cb.on_evaluate(args, transformers.TrainerState(global_step=4), control, metrics={"eval_loss": 1.0},
                   optimizer=object(), lr_scheduler=torch.optim.lr_scheduler.ConstantLR(
                       torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5), factor=1.0))
    frozen = study._storage.get_trial(trial._trial_id)
    assert len(frozen.intermediate_values) == 4
    assert reported_lr(frozen) == {3: 0.5}
    assert SCHEDULE_KEY not in frozen.system_attrs
