"""The Hugging Face TrainerCallback, with a tiny GPT-2 really trained by ``Trainer`` on CPU."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sh_scaling.integrations import SHScalingCallback, count_flops_per_token  # noqa: E402
from sh_scaling.pruning import reported_compute  # noqa: E402

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
