"""The plain-PyTorch helper (TrialReporter), schedules derived from torch LR schedulers, tell_on_error, and the
torch-free import of sh_scaling."""

from __future__ import annotations

import copy
import math
import re
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from sh_scaling import schedules
from sh_scaling.integrations import schedule_from_scheduler, tell_on_error, tokens_in_batch
from sh_scaling.keys import MAX_COMPUTE_KEY, SCHEDULE_KEY, SCHEDULE_NOTE_KEY
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


# --- schedules derived from torch LR schedulers ---------------------------------------------------------------

LRS = torch.optim.lr_scheduler
PEAK, STEPS = 0.1, 120


def _sgd(lr=PEAK):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _warmup_cosine(step: int) -> float:
    """Warm-up from 0 over 12 steps, then a cosine to 0 at step 120 (the Hugging Face "cosine" lambda)."""
    if step < 12:
        return step / 12
    return 0.5 * (1 + math.cos(math.pi * (step - 12) / (STEPS - 12)))


def _warmup_cosine_to_a_tenth(step: int) -> float:
    """The tiny LM example's lambda: a warm-up that starts above 0, a cosine to a tenth under it."""
    return min(1.0, (step + 1) / 12) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, STEPS) / STEPS)))


SCHEDULERS = {
    "cosine_annealing": (lambda o: LRS.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.01), "cosine"),
    "cosine_annealing_to_0": (lambda o: LRS.CosineAnnealingLR(o, T_max=STEPS), "cosine"),
    "cosine_annealing_longer_than_the_run": (lambda o: LRS.CosineAnnealingLR(o, T_max=200), "table"),
    "linear_warmup_then_cosine": (lambda o: LRS.SequentialLR(o, [
        LRS.LinearLR(o, start_factor=0.01, total_iters=10),
        LRS.CosineAnnealingLR(o, T_max=STEPS - 10, eta_min=1e-3)], milestones=[10]), "table"),
    "constant_warmup_then_linear": (lambda o: LRS.SequentialLR(o, [
        LRS.ConstantLR(o, factor=0.1, total_iters=20),
        LRS.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=STEPS - 20)], milestones=[20]), "table"),
    "lambda_cosine": (lambda o: LRS.LambdaLR(o, _warmup_cosine), "cosine"),
    "lambda_cosine_to_a_tenth": (lambda o: LRS.LambdaLR(o, _warmup_cosine_to_a_tenth), "table"),
    "linear_decay": (lambda o: LRS.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=STEPS), "linear"),
    "constant": (lambda o: LRS.ConstantLR(o, factor=0.25, total_iters=30), "table"),
    "step": (lambda o: LRS.StepLR(o, step_size=25, gamma=0.5), "table"),
    "multistep": (lambda o: LRS.MultiStepLR(o, milestones=[40, 80, 80], gamma=0.5), "table"),
    "exponential": (lambda o: LRS.ExponentialLR(o, gamma=0.98), "table"),
    "polynomial": (lambda o: LRS.PolynomialLR(o, total_iters=100, power=2.0), "table"),
    "multiplicative": (lambda o: LRS.MultiplicativeLR(o, lambda k: 0.99 if k % 2 else 0.97), "table"),
}


def _rates_by_stepping(optimizer, scheduler, n_steps):
    """The optimizer's rate after 0, 1, ..., n_steps scheduler steps, the way a training loop steps it."""
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(n_steps):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_derived_schedule_gives_the_optimizer_lr_at_every_step(name):
    make, kind = SCHEDULERS[name]
    opt = _sgd()
    scheduler = make(opt)
    before = (copy.deepcopy(opt.state_dict()), {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"})
    schedule, note = schedule_from_scheduler(scheduler, STEPS)
    assert note is None and schedule is not None and schedule.kind == kind
    # Read off the settings: neither the scheduler nor the optimizer moved.
    after = (opt.state_dict(), {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"})
    assert after == before
    rates = _rates_by_stepping(opt, scheduler, STEPS)
    for k, lr in enumerate(rates):
        assert float(schedule(k / STEPS)) == pytest.approx(lr, rel=1e-6, abs=1e-15), f"step {k}"
    assert schedules.schedule_from_dict(schedule.to_dict()) == schedule  # storable as it is


def test_closed_forms_are_recognised():
    for scheduler, expected in [
        (LRS.CosineAnnealingLR(_sgd(), T_max=STEPS, eta_min=0.01), schedules.Cosine(peak_lr=PEAK, final_ratio=0.1)),
        (LRS.LambdaLR(_sgd(), _warmup_cosine), schedules.Cosine(peak_lr=PEAK, warmup=0.1, final_ratio=0.0)),
        (LRS.LambdaLR(_sgd(), lambda k: min(1.0, k / 30)), schedules.Constant(peak_lr=PEAK, warmup=0.25)),
        (LRS.LinearLR(_sgd(), start_factor=1.0, end_factor=0.5, total_iters=2 * STEPS),
         schedules.Linear(peak_lr=PEAK, final_ratio=0.75)),  # the run ends halfway through the decay
    ]:
        schedule, _ = schedule_from_scheduler(scheduler, STEPS)
        got, want = schedule.to_dict(), expected.to_dict()
        text = {k for k, v in want.items() if isinstance(v, str)}  # pytest.approx compares numbers only
        assert got.keys() == want.keys() and {k: got[k] for k in text} == {k: want[k] for k in text}
        assert {k: got[k] for k in got if k not in text} == pytest.approx(
            {k: want[k] for k in want if k not in text}, rel=1e-12, abs=1e-12)


def test_long_run_is_thinned_into_a_small_table():
    steps = 200_000
    scheduler = LRS.LambdaLR(
        _sgd(), lambda k: min(1.0, (k + 1) / 2000) * (0.1 + 0.45 * (1 + math.cos(math.pi * k / steps))))
    schedule, note = schedule_from_scheduler(scheduler, steps)
    assert note is None and schedule.kind == "table" and len(schedule.fractions) <= 513
    # Sampled every 2 steps (100,001 samples at most): the end of warm-up, at step 1999, lies between samples.
    at = list(range(0, steps + 1, 998)) + [1998, 2000, steps]
    exact = [PEAK * scheduler.lr_lambdas[0](k) for k in at]
    assert [float(schedule(k / steps)) for k in at] == pytest.approx(exact, rel=2e-5)


class _MyLambdaLR(LRS.LambdaLR):
    def get_lr(self):
        return [2 * lr for lr in super().get_lr()]


def _raises_at_50(k):
    if k == 50:
        raise RuntimeError("boom")
    return 1.0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda o: LRS.ReduceLROnPlateau(o), "monitored metric"),
        (lambda o: LRS.OneCycleLR(o, max_lr=1.0, total_steps=STEPS + 1), "no closed form"),
        (lambda o: LRS.CyclicLR(o, base_lr=0.01, max_lr=0.1), "no closed form"),
        (lambda o: _MyLambdaLR(o, lambda k: 1.0), "a subclass of LambdaLR"),
        (lambda o: LRS.LambdaLR(o, _raises_at_50), r"raised RuntimeError \(boom\) at step 50"),
        (lambda o: LRS.LambdaLR(o, lambda k: 1.0 - k / 60), "at step 61 is -"),
        (lambda o: LRS.LambdaLR(o, lambda k: float("nan") if k > 100 else 1.0), "at step 101 is nan"),
        (lambda o: LRS.LambdaLR(o, lambda k: math.inf if k > 10 else 1.0), "at step 11 is inf"),
        (lambda o: LRS.LambdaLR(o, lambda k: 0.0), "0 at every step"),
        (lambda o: LRS.LambdaLR(o, lambda k: "fast" if k > 10 else 1.0), "raised ValueError .* at step 11"),
        (lambda o: LRS.SequentialLR(o, [LRS.LinearLR(o, start_factor=0.1, total_iters=5),
                                        LRS.MultiplicativeLR(o, lambda k: 0.99)], milestones=[5]),
         "MultiplicativeLR after the first milestone"),
    ],
)
def test_scheduler_without_a_schedule_gives_the_reason(make, reason):
    opt = _sgd()
    scheduler = make(opt)
    schedule, note = schedule_from_scheduler(scheduler, STEPS)
    assert schedule is None and note.startswith(type(scheduler).__name__)
    assert re.search(reason, note), note


def test_total_steps_must_be_a_positive_integer():
    for bad in (0, -5, 2.5, True, None):
        with pytest.raises(ValueError, match="total_steps must be a positive integer"):
            schedule_from_scheduler(LRS.ConstantLR(_sgd()), bad)


def _train_with_scheduler(trial, make_scheduler, n_steps=STEPS, every=10, seen=None):
    """A real training loop with TrialReporter(scheduler=..., total_steps=...); compute = optimizer steps."""
    torch.manual_seed(0)
    model = _TinyLM()
    opt = torch.optim.SGD(model.parameters(), lr=PEAK)
    scheduler = make_scheduler(opt)
    rep = TrialReporter(trial, compute_fn=lambda tokens: tokens / (BATCH * SEQ), max_compute=n_steps,
                        optimizer=opt, scheduler=scheduler, total_steps=n_steps)
    g, val = torch.Generator().manual_seed(0), _batch(torch.Generator().manual_seed(1))
    for i in range(n_steps):
        ids = _batch(g)
        opt.zero_grad()
        _loss(model, ids).backward()
        opt.step()
        scheduler.step()
        rep.step(ids)
        if (i + 1) % every == 0:
            if seen is not None:
                seen[i + 1] = opt.param_groups[0]["lr"]
            with torch.no_grad():
                rep.report(float(_loss(model, val)))
    return rep


@pytest.mark.parametrize("name", ["cosine_annealing", "linear_warmup_then_cosine", "lambda_cosine",
                                  "lambda_cosine_to_a_tenth"])
def test_trial_reporter_stores_the_scheduler_schedule(name):
    from sh_scaling.pruning import SurrogateHalvingPruner

    # The pruner's own schedule= is written only where none is stored: the loop's scheduler comes first.
    study = optuna.create_study(pruner=SurrogateHalvingPruner(max_compute=STEPS, schedule=schedules.Constant()))
    seen: dict[int, float] = {}
    holder = {}

    def objective(trial):
        holder["rep"] = rep = _train_with_scheduler(trial, SCHEDULERS[name][0], seen=seen)
        return rep.last_loss

    study.optimize(objective, n_trials=1)
    t, rep = study.trials[0], holder["rep"]
    assert t.state == TrialState.COMPLETE and rep.schedule_note is None
    stored = schedules.schedule_from_dict(t.system_attrs[SCHEDULE_KEY])
    assert stored == rep.schedule and stored.kind == SCHEDULERS[name][1]
    compute, lrs = reported_compute(t), reported_lr(t)
    assert {round(compute[s]): lr for s, lr in lrs.items()} == pytest.approx(seen, rel=1e-12)
    for s, lr in lrs.items():  # the stored schedule gives the rate the optimizer had at each report
        assert float(stored(compute[s] / STEPS)) == pytest.approx(lr, rel=1e-6)
    assert SCHEDULE_NOTE_KEY not in t.system_attrs


def test_trial_reporter_records_why_a_scheduler_has_no_schedule_and_trains_on():
    study = optuna.create_study()

    def objective(trial):
        one_cycle = lambda o: LRS.OneCycleLR(o, max_lr=PEAK, total_steps=STEPS + 1)  # noqa: E731
        return _train_with_scheduler(trial, one_cycle).last_loss

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE and len(t.intermediate_values) == STEPS // 10
    assert SCHEDULE_KEY not in t.system_attrs
    assert t.system_attrs[SCHEDULE_NOTE_KEY].startswith("OneCycleLR: no closed form derived for it")
    assert len(reported_lr(t)) == STEPS // 10  # the rates still go with the reports


def test_trial_reporter_keeps_the_first_schedule_of_a_trial():
    study = optuna.create_study()
    trial = study.ask()
    first = TrialReporter(trial, flops_per_token=1.0, scheduler=LRS.CosineAnnealingLR(_sgd(), T_max=10),
                          total_steps=10)
    TrialReporter(trial, flops_per_token=1.0, scheduler=LRS.ConstantLR(_sgd()), total_steps=10)
    stored = study._storage.get_trial(trial._trial_id).system_attrs[SCHEDULE_KEY]
    assert schedules.schedule_from_dict(stored) == first.schedule


def test_trial_reporter_scheduler_needs_total_steps():
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="scheduler= and total_steps= go together"):
        TrialReporter(trial, flops_per_token=1.0, scheduler=LRS.ConstantLR(_sgd()))
    with pytest.raises(ValueError, match="scheduler= and total_steps= go together"):
        TrialReporter(trial, flops_per_token=1.0, total_steps=100)
    with pytest.raises(ValueError, match="total_steps must be a positive integer"):
        TrialReporter(trial, flops_per_token=1.0, scheduler=LRS.ConstantLR(_sgd()), total_steps=0)
    assert SCHEDULE_KEY not in study._storage.get_trial(trial._trial_id).system_attrs


def test_trial_reporter_reserves_the_trials_plan_in_a_budget_before_training():
    import sh_scaling

    budget = sh_scaling.ComputeBudget(30.0)
    study = optuna.create_study()
    fits, too_big = study.ask(), study.ask()
    tracker = TrialReporter(fits, flops_per_token=1.0, max_compute=20.0, budget=budget)
    assert study._storage.get_trial(fits._trial_id).system_attrs[MAX_COMPUTE_KEY] == 20.0
    with pytest.raises(optuna.TrialPruned, match="would take the sweep to 40 of the 30 budget"):
        TrialReporter(too_big, flops_per_token=1.0, max_compute=20.0, budget=budget)
    tracker.step(tokens=10)
    tracker.report(1.0)
    assert reported_compute(study._storage.get_trial(fits._trial_id)) == {0: 10.0}
