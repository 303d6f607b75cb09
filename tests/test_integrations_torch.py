"""The plain-PyTorch helper (TrialReporter), tell_on_error, and the torch-free import of sh_scaling."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from sh_scaling.integrations import tell_on_error, tokens_in_batch
from sh_scaling.keys import MAX_COMPUTE_KEY
from sh_scaling.pruning import reported_compute, reported_lr

torch = pytest.importorskip("torch")

from sh_scaling.integrations import TrialReporter  # noqa: E402

VOCAB, SEQ, BATCH = 48, 16, 8


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


class _TinyLM(torch.nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, d)
        self.mix = torch.nn.Linear(2 * d, d)
        self.out = torch.nn.Linear(d, VOCAB, bias=False)
        self.out.weight = self.emb.weight  # tied: counted once, as a matrix product

    def forward(self, ids):
        h = self.emb(ids)
        prev = torch.nn.functional.pad(h, (0, 0, 1, 0))[:, :-1]
        return self.out(torch.tanh(self.mix(torch.cat([h, prev], -1))))


def _batch(g):
    start = torch.randint(0, VOCAB, (BATCH, 1), generator=g)
    return (start + 3 * torch.arange(SEQ)) % VOCAB


def _loss(model, ids):
    logits = model(ids)[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))


def _train(trial, n_steps=40, every=5, **kwargs):
    torch.manual_seed(0)
    model = _TinyLM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rep = TrialReporter(trial, model, **kwargs)
    g, val = torch.Generator().manual_seed(0), _batch(torch.Generator().manual_seed(1))
    with torch.no_grad():
        rep.report(float(_loss(model, val)))  # before training: not reported (nothing spent)
    for i in range(n_steps):
        ids = _batch(g)
        opt.zero_grad()
        _loss(model, ids).backward()
        opt.step()
        rep.step(ids)
        if (i + 1) % every == 0:
            with torch.no_grad():
                rep.report(float(_loss(model, val)))
    return rep


def test_reports_reach_the_study_with_compute():
    study = optuna.create_study()
    holder = {}

    def objective(trial):
        holder["rep"] = rep = _train(trial)
        return rep.last_loss

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    rep = holder["rep"]
    # Tied embedding counted once (it is the output projection), plus the mixing layer: 6N per token.
    assert rep.flops_per_token == 6 * (VOCAB * 32 + 2 * 32 * 32 + 32)
    assert sorted(t.intermediate_values) == list(range(8))
    compute = [reported_compute(t)[s] for s in range(8)]
    assert compute == pytest.approx([rep.flops_per_token * BATCH * SEQ * 5 * (k + 1) for k in range(8)])
    assert t.intermediate_values[7] < t.intermediate_values[0]
    assert rep.tokens_seen == 40 * BATCH * SEQ


def test_pruned_loop_raises_trial_pruned():
    class PruneAfterThree(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return len(trial.intermediate_values) >= 3

    study = optuna.create_study(pruner=PruneAfterThree())
    study.optimize(lambda trial: _train(trial).last_loss, n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED
    assert len(t.intermediate_values) == 3


def test_compute_fn_and_max_compute():
    study = optuna.create_study()
    trial = study.ask()
    rep = _train(trial, n_steps=10, compute_fn=lambda tokens: tokens / 1e6, max_compute=10.0)
    frozen = study._storage.get_trial(trial._trial_id)
    assert reported_compute(frozen)[1] == pytest.approx(10 * BATCH * SEQ / 1e6)
    assert frozen.system_attrs[MAX_COMPUTE_KEY] == 10.0
    assert rep.n_reports == 2


def test_reports_carry_the_optimizer_lr():
    study = optuna.create_study()
    trial = study.ask()
    torch.manual_seed(0)
    model = _TinyLM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1.0 + k))
    rep = TrialReporter(trial, model, optimizer=opt)
    g, val, seen = torch.Generator().manual_seed(0), _batch(torch.Generator().manual_seed(1)), []
    for i in range(20):
        ids = _batch(g)
        opt.zero_grad()
        _loss(model, ids).backward()
        opt.step()
        decay.step()
        rep.step(ids)
        if (i + 1) % 5 == 0:
            seen.append(opt.param_groups[0]["lr"])
            with torch.no_grad():
                rep.report(float(_loss(model, val)))
    lrs = reported_lr(study._storage.get_trial(trial._trial_id))
    assert [lrs[s] for s in sorted(lrs)] == pytest.approx(seen, rel=1e-12)
    assert seen == pytest.approx([1e-2 / (1 + 5 * (k + 1)) for k in range(4)])


def test_unreadable_optimizer_reports_without_a_rate():
    study = optuna.create_study()
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    nan = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    nan.param_groups[0]["lr"] = float("nan")
    for optimizer, expected in [(None, {}), (object(), {}), (nan, {}), (sgd, {0: 0.5})]:
        trial = study.ask()
        rep = TrialReporter(trial, flops_per_token=1.0, optimizer=optimizer)
        rep.step(tokens=10)
        rep.report(1.0)
        frozen = study._storage.get_trial(trial._trial_id)
        assert len(frozen.intermediate_values) == 1
        assert reported_lr(frozen) == expected


def test_bad_input():
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="running optuna.trial.Trial"):
        TrialReporter(None, _TinyLM())
    with pytest.raises(ValueError, match="give the model"):
        TrialReporter(trial)
    with pytest.raises(ValueError, match="not a torch.nn.Module.*pass flops_per_token"):
        TrialReporter(trial, model=lambda x: x)
    with pytest.raises(ValueError, match="flops_per_token must be a positive"):
        TrialReporter(trial, flops_per_token=float("nan"))
    rep = TrialReporter(trial, flops_per_token=100.0)
    with pytest.raises(ValueError, match="tokens_per_batch"):
        rep.step(torch.randn(4, 3))  # features, not token ids
    with pytest.raises(ValueError, match="tokens"):
        rep.step()
    assert tokens_in_batch({"input_ids": torch.zeros(2, 5, dtype=torch.long)}) == 10
    assert tokens_in_batch((torch.zeros(3, 4, dtype=torch.long), None)) == 12


def test_tell_on_error_with_ask_and_tell():
    study = optuna.create_study()
    # Ctrl-C in the middle of a trial: failed, and the interrupt goes on.
    trial = study.ask()
    with pytest.raises(KeyboardInterrupt), tell_on_error(study, trial):
        rep = TrialReporter(trial, flops_per_token=10.0)
        rep.step(tokens=5)
        rep.report(1.0)
        raise KeyboardInterrupt
    # A pruned trial is told so; the exception ends there.
    trial = study.ask()
    with tell_on_error(study, trial):
        raise optuna.TrialPruned()
    # A finished trial told inside the block is left alone.
    trial = study.ask()
    with tell_on_error(study, trial):
        study.tell(trial, 0.5)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[0].intermediate_values == {0: 1.0}


def test_import_sh_scaling_never_imports_torch(tmp_path):
    code = (
        "import sys, sh_scaling, sh_scaling.integrations, sh_scaling.pruning, sh_scaling.sampling;"
        "bad = [m for m in ('torch', 'transformers', 'lightning') if m in sys.modules];"
        "assert not bad, bad"
    )
    # Run outside the checkout: from its root, `python -c` would import the source folder `sh_scaling/`, which
    # lacks `sh_scaling.integrations` (installed from the top-level `integrations/`).
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_missing_framework_names_the_extra(monkeypatch):
    import sh_scaling.integrations as integrations

    monkeypatch.setitem(sys.modules, "lightning", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "sh_scaling.integrations.lightning", raising=False)
    with pytest.raises(ImportError, match=r"sh_scaling\[lightning\]"):
        integrations.SHScalingLightningCallback  # noqa: B018
