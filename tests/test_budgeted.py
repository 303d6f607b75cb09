"""Budget-limited successive halving on real training (sh_scaling.BudgetedHalving) and ComputeBudget.

The driver must make exactly the fixed-budget simulator's decisions when it replays recorded curves, keep its
budget, survive bad input, killed workers and a killed driver, and leave no trial RUNNING.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import uuid
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import sh_scaling
from sh_scaling.budgeted import BudgetedHalving, CheckpointError, ComputeBudget, ledger, round_share, segments
from sh_scaling.curves import from_study, generate_synthetic, load_cpu_ladder, load_multipowerlaw, load_routing
from sh_scaling.keys import BUDGETED_FAILED_KEY, BUDGETED_LEDGER_KEY, BUDGETED_PLAN_KEY, PRUNED_KEY, budgeted_round_key
from sh_scaling.schedules import Cosine
from sh_scaling.simulation import STRATEGIES, allocate

optuna.logging.set_verbosity(optuna.logging.ERROR)

POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")


# ------------------------------------------------------------------------------------------------ helpers
@lru_cache(maxsize=None)
def _synthetic(n: int, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(generate_synthetic(n, seed=seed))


def _checkpoint(i: int, until: float) -> bytes:
    return json.dumps({"i": i, "until": until}).encode()


def _read_checkpoint(path: str | None) -> dict | None:
    return None if path is None else json.loads(Path(path).read_text())


def _reveal(curve, i: int, from_checkpoint: str | None, until: float):
    """A trainer that resumes where its checkpoint says and 'trains' by revealing the recorded points."""
    ckpt = _read_checkpoint(from_checkpoint)
    if ckpt is not None:
        assert ckpt["i"] == i, "handed another candidate's checkpoint"
    start = 0.0 if ckpt is None else ckpt["until"]
    seen = curve.observed_until(until)
    points = [(c, y) for c, y in zip(seen.compute, seen.loss) if c > start * (1 + 1e-9)]
    return points, _checkpoint(i, until)


def _study_attrs(study):
    return study._storage.get_study_system_attrs(study._study_id)


def _no_trial_left_running(study):
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states


def _replay(curves, budget, strategy, **kw):
    by_id = {c.id: (i, c) for i, c in enumerate(curves)}

    def train_fn(config, from_checkpoint, until):
        i, c = by_id[config["run"]]
        return _reveal(c, i, from_checkpoint, until)

    sweep = BudgetedHalving([{"run": c.id} for c in curves], budget, strategy=strategy,
                            max_compute=lambda cfg: by_id[cfg["run"]][1].final_compute, **kw)
    return sweep.run(train_fn)


def _same_as_simulator(curves, budget, strategy, sweep):
    sim = allocate(curves, budget, strategy, rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-12)
    assert sweep.spent_ == pytest.approx(sim.spent, rel=1e-12) and sweep.spent_ <= budget
    # NaN on both sides when the budget ends before any candidate's first evaluation.
    assert sweep.best_loss_ == sim.best_loss or (np.isnan(sweep.best_loss_) and np.isnan(sim.best_loss))
    return sim


# ------------------------------------------------------------------ the simulator's decisions, on replay
#: Random candidate sets of 5-20 curves, budgets from 1 % to 30 % of exhaustive, every ranking the driver
#: supports and two reduction factors; in-memory studies, about half a second per set.
N_SETS = 20
_STRATEGIES = ["SH+FA", "SH", "SH+PL", "SH+GP"]


def _random_set(curves_or_n, k):
    rng = np.random.default_rng(5000 + k)
    n = int(rng.integers(5, 21))
    if isinstance(curves_or_n, list):
        curves = [curves_or_n[int(j)] for j in rng.choice(len(curves_or_n), size=n, replace=False)]
    else:
        curves = _synthetic(n, 5000 + k)
    budget = float(rng.choice([0.01, 0.03, 0.1, 0.3])) * sum(c.final_compute for c in curves)
    return curves, budget, _STRATEGIES[k % 4], [2, 3][(k // 4) % 2]


def _check_replay(curves, budget, strategy, eta, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # surrogate fits that fall back, on both sides alike
        sweep = _replay(curves, budget, strategy, reduction_factor=eta, **kw)
        sim = allocate(curves, budget, strategy, reduction_factor=eta, rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-12)
    assert sweep.spent_ == pytest.approx(sim.spent, rel=1e-12) and sweep.spent_ <= budget
    # NaN on both sides when the budget ends before any candidate's first evaluation.
    assert sweep.best_loss_ == sim.best_loss or (np.isnan(sweep.best_loss_) and np.isnan(sim.best_loss))
    # What the study says agrees: survivors of the last round complete, every other candidate was pruned by a
    # decision (or finished its curve first), and the ledger is what the simulator spent.
    trials = sweep.study_.trials
    for i, t in enumerate(trials):
        if t.state == TrialState.PRUNED and i not in sweep.survivors_[-1]:
            assert "ranked" in t.system_attrs[PRUNED_KEY]
        if i in sweep.survivors_[-1]:  # complete, or never evaluated within the budget
            assert t.state == TrialState.COMPLETE or "before it reported" in t.system_attrs[PRUNED_KEY]
    _no_trial_left_running(sweep.study_)


@lru_cache(maxsize=None)
def _routing(path):
    return list(load_routing(path))


@pytest.mark.parametrize("k", range(N_SETS))
def test_replaying_routing_curves_makes_the_simulators_decisions(routing_csv, k):
    _check_replay(*_random_set(_routing(str(routing_csv)), k))


@pytest.mark.parametrize("k", range(N_SETS))
def test_replaying_synthetic_curves_makes_the_simulators_decisions(k):
    _check_replay(*_random_set(None, k))


@pytest.mark.parametrize("k", range(8))
def test_replaying_with_an_unseen_rule_makes_the_simulators_decisions(routing_csv, k):
    """Routing runs are evaluated from 4 % of their runs on, so small budgets leave candidates unseen at the first
    cut; both sides score them by the strategy's ``unseen`` rule."""
    import dataclasses

    from sh_scaling.simulation import STRATEGIES

    curves, _, name, eta = _random_set(_routing(str(routing_csv)), k)
    budget = [0.01, 0.03][k % 2] * sum(c.final_compute for c in curves)
    strategy = dataclasses.replace(STRATEGIES[name], unseen=["reach", "median", "prior"][(k // 2) % 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = allocate(curves, budget, strategy, reduction_factor=eta, rng=np.random.default_rng(0))
    assert np.isnan(sim.rounds[0].loss).any()  # the rule has someone to score
    _check_replay(curves, budget, strategy, eta)


@pytest.mark.parametrize("k", range(6))
def test_replaying_with_a_few_rule_makes_the_simulators_decisions(routing_csv, k):
    """At 3-10 % of exhaustive compute, some routing runs have one or two evaluations when a round ends, too few to
    forecast; both sides score them by the strategy's ``few`` rule."""
    import dataclasses

    from sh_scaling.simulation import STRATEGIES

    curves, _, _, eta = _random_set(_routing(str(routing_csv)), k + 40)
    budget = [0.03, 0.1][k % 2] * sum(c.final_compute for c in curves)
    strategy = dataclasses.replace(STRATEGIES[["SH+FA", "SH+PL"][k % 2]], few=["stage", "slope", "median"][k // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = allocate(curves, budget, strategy, reduction_factor=eta, rng=np.random.default_rng(0))
    by_id = {c.id: c for c in curves}
    few = [len(by_id[i].observed_until(t)) in (1, 2) for r in sim.rounds[:-1] for i, t in zip(r.ids, r.trained)]
    assert any(few)  # the rule has someone to score
    _check_replay(curves, budget, strategy, eta)


@pytest.mark.parametrize("key, value", [("unseen", "prior"), ("few", "stage")])
def test_a_strategys_rule_is_part_of_the_stored_plan(tmp_path, key, value):
    import dataclasses

    from sh_scaling.simulation import STRATEGIES

    curves = _synthetic(6, 3)
    budget = 0.1 * sum(c.final_compute for c in curves)
    storage = f"sqlite:///{tmp_path / 'plan.db'}"
    sweep = _replay(curves, budget, dataclasses.replace(STRATEGIES["SH+FA"], **{key: value}), storage=storage,
                    study_name="s")
    assert _study_attrs(sweep.study_)[BUDGETED_PLAN_KEY]["strategy"][key] == value
    with pytest.raises(ValueError, match="strategy differ"):
        _replay(curves, budget, "SH+FA", storage=storage, study_name="s")


def test_a_plan_names_the_few_rule_only_where_it_is_set():
    from sh_scaling.budgeted._driver import _describe
    from sh_scaling.simulation import STRATEGIES

    assert "few" not in _describe(STRATEGIES["SH+FA"])  # plans stored before the rule existed still match


@pytest.mark.parametrize("k", range(12))
def test_replaying_with_replan_makes_the_simulators_decisions(routing_csv, k):
    """Every round's share of what the budget has left, the targets that count it, the last round water-filled:
    the driver grants and decides as the simulator does, on routing and synthetic sets."""
    curves, budget, name, eta = _random_set(_routing(str(routing_csv)) if k % 2 else None, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep = _replay(curves, budget, name, reduction_factor=eta, replan=True)
        sim = allocate(curves, budget, name, reduction_factor=eta, replan=True, rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-9)
    assert sweep.spent_ == pytest.approx(sim.spent, rel=1e-9) and sweep.spent_ <= budget * (1 + 1e-12)
    assert sweep.best_loss_ == sim.best_loss or (np.isnan(sweep.best_loss_) and np.isnan(sim.best_loss))
    _no_trial_left_running(sweep.study_)


def test_replan_is_part_of_the_stored_plan(tmp_path):
    curves = _synthetic(6, 3)
    budget = 0.3 * sum(c.final_compute for c in curves)
    storage = f"sqlite:///{tmp_path / 'plan.db'}"
    sweep = _replay(curves, budget, "SH+FA", storage=storage, study_name="s", replan=True)
    assert _study_attrs(sweep.study_)[BUDGETED_PLAN_KEY]["replan"] is True
    assert _study_attrs(_replay(curves, budget, "SH+FA").study_)[BUDGETED_PLAN_KEY]["replan"] is False
    with pytest.raises(ValueError, match="replan differ"):
        _replay(curves, budget, "SH+FA", storage=storage, study_name="s")
    with pytest.raises(ValueError, match="replan must be True or False"):
        _replay(curves, budget, "SH+FA", replan="yes")


_MULTIPOWERLAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "multipowerlaw"


@lru_cache(maxsize=None)
def _schedule_curves(path):
    return list(load_multipowerlaw(path))


@pytest.mark.parametrize("k", range(10))
def test_replaying_schedule_curves_makes_the_simulators_decisions(k):
    """The 27 runs of Luo et al. (ICLR 2025) under nine learning-rate schedules."""
    path = os.environ.get("SH_SCALING_MULTIPOWERLAW_PATH") or str(_MULTIPOWERLAW)
    if not (Path(path) / "loss_curve_repo").is_dir():
        pytest.skip("multipowerlaw curves not found: set SH_SCALING_MULTIPOWERLAW_PATH or place ../shared/data")
    _check_replay(*_random_set(_schedule_curves(path), k))


@lru_cache(maxsize=None)
def _cpu_ladder():
    return list(load_cpu_ladder())


_SCHEDULE_AWARE = [dataclasses.replace(STRATEGIES["SH+MPL"], unseen="reach"),
                   dataclasses.replace(STRATEGIES["SH+FA-MPL"], unseen="reach"),
                   dataclasses.replace(STRATEGIES["SH+MPL-SE"], unseen="reach"), "SH+FA-MPL"]


@pytest.mark.parametrize("k", range(8))
def test_replaying_with_schedules_makes_the_simulators_decisions(k):
    """The recorded CPU ladder (cosine, WSD and constant schedules): candidates that state their schedule are
    forecast under it, as the simulator forecasts each curve under its ``meta["schedule"]``."""
    curves, budget, _, eta = _random_set(_cpu_ladder(), k)
    by_id = {c.id: c for c in curves}
    _check_replay(curves, budget, _SCHEDULE_AWARE[k % 4], eta,
                  schedule=lambda cfg: by_id[cfg["run"]].meta["schedule"])


def test_candidates_without_a_schedule_are_forecast_at_a_constant_rate_as_in_the_simulator():
    """Some candidates state a schedule, others none (``schedule(config)`` returns ``None``): the simulator's
    curves without ``meta["schedule"]``."""
    curves, budget, _, eta = _random_set(_cpu_ladder(), 3)
    stated = {c.id for c in curves[::2]}
    plain = [c if c.id in stated else dataclasses.replace(c, meta={k: v for k, v in c.meta.items()
                                                                   if k != "schedule"}) for c in curves]
    by_id = {c.id: c for c in curves}
    _check_replay(plain, budget, "SH+FA-MPL", eta,
                  schedule=lambda cfg: by_id[cfg["run"]].meta["schedule"] if cfg["run"] in stated else None)


def test_schedules_are_stored_in_the_plan_and_a_restart_with_others_is_refused(tmp_path):
    curves = _cpu_ladder()[:6]
    budget = 0.1 * sum(c.final_compute for c in curves)
    storage = _journal(tmp_path / "sweep.journal")
    by_id = {c.id: c for c in curves}
    schedule = lambda cfg: by_id[cfg["run"]].meta["schedule"]  # noqa: E731
    sweep = _replay(curves, budget, "SH+MPL", storage=storage, study_name="s", schedule=schedule)
    plan = _study_attrs(sweep.study_)[BUDGETED_PLAN_KEY]
    assert plan["schedules"] == [c.meta["schedule"].to_dict() for c in curves]
    # Each trial states its schedule where from_study reads it.
    assert [c.meta["schedule"] for c in from_study(sweep.study_)] == [c.meta["schedule"] for c in curves]
    # The same sweep again (the to_dict() form) is the same sweep; another schedule, or none, is refused.
    _replay(curves, budget, "SH+MPL", storage=storage, study_name="s",
            schedule=lambda cfg: by_id[cfg["run"]].meta["schedule"].to_dict())
    with pytest.raises(ValueError, match="schedules differ"):
        _replay(curves, budget, "SH+MPL", storage=storage, study_name="s", schedule=Cosine())
    with pytest.raises(ValueError, match="schedules differ"):
        _replay(curves, budget, "SH+MPL", storage=storage, study_name="s",
                schedule=lambda cfg: None if cfg["run"] == curves[0].id else schedule(cfg))
    # Without schedules the plan says so, as plans stored before schedules existed do.
    assert _study_attrs(_replay(curves, budget, "SH+FA").study_)[BUDGETED_PLAN_KEY]["schedules"] is None


@pytest.mark.parametrize("schedule, match", [
    ("cosine", "pass a Schedule"),
    ({"kind": "nope"}, "not a learning-rate schedule"),
    (lambda c: "cosine", "schedule of candidate 0 is 'cosine'"),
    (lambda c: 1 / 0, "schedule raised ZeroDivisionError"),
])
def test_a_schedule_that_is_not_one_is_refused_before_training(schedule, match):
    curves = _synthetic(4, 17)
    calls = []
    with pytest.raises(ValueError, match=match):
        _sweep(curves, 0.3 * sum(c.final_compute for c in curves), strategy="SH+MPL",
               schedule=schedule).run(_trainer(curves, calls))
    assert calls == []


def test_the_default_strategy_forecasts_from_the_curve_alone_whether_or_not_schedules_are_stated():
    """Stating schedules changes nothing under the default SH+FA: the same decisions, the schedules only stored."""
    curves = _synthetic(6, 18)
    budget = 0.3 * sum(c.final_compute for c in curves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = _sweep(curves, budget).run(_trainer(curves))
        stated = _sweep(curves, budget, schedule=lambda c: curves[c["i"]].meta["schedule"]).run(_trainer(curves))
    plans = [_study_attrs(s.study_)[BUDGETED_PLAN_KEY] for s in (plain, stated)]
    assert plans[0]["strategy"] == plans[1]["strategy"] and plans[1]["strategy"]["name"] == "SH+FA"
    assert plans[0]["schedules"] is None and plans[1]["schedules"] is not None
    assert stated.survivors_ == plain.survivors_ and stated.trained_ == plain.trained_


# ------------------------------------------------------------------ worker processes, one of them killed
def _train_in_worker(config, from_checkpoint, until):
    """Module level, so that spawned workers can unpickle it. Logs every call; SIGKILLs its own process in the
    middle of the second segment of candidate ``config["kill"]``, once."""
    import time

    curves = _synthetic(config["n"], config["seed"])
    i = config["i"]
    log = Path(os.environ["SH_SCALING_TEST_BUDGETED_LOG"])
    ckpt = _read_checkpoint(from_checkpoint)
    call = {"i": i, "from": None if ckpt is None else ckpt["until"], "until": until, "pid": os.getpid()}
    (log / f"call-{uuid.uuid4().hex}.json").write_text(json.dumps(call))
    if i == config["kill"] and ckpt is not None:
        marker = log / "killed"
        if not marker.exists():  # only one process trains a candidate at a time, so this is race-free
            marker.write_text(str(os.getpid()))
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.3)  # training takes time, so the segments of a round overlap in the workers
    return _reveal(curves[i], i, from_checkpoint, until)


N_MP, SEED_MP = 8, 7


def _killed_worker_sweep(storage, study_name, tmp_path, monkeypatch):
    curves = _synthetic(N_MP, SEED_MP)
    budget = 0.2 * sum(c.final_compute for c in curves)
    sim = allocate(curves, budget, "SH+FA", rng=np.random.default_rng(0))
    kill = int(sim.survivors[1][0][len("syn-"):])  # a candidate that has a second segment to be killed in
    assert curves[kill].id == sim.survivors[1][0]
    log = tmp_path / "calls"
    log.mkdir()
    monkeypatch.setenv("SH_SCALING_TEST_BUDGETED_LOG", str(log))
    configs = [{"n": N_MP, "seed": SEED_MP, "i": i, "kill": kill} for i in range(N_MP)]
    sweep = BudgetedHalving(configs, budget, max_compute=lambda c: curves[c["i"]].final_compute, storage=storage,
                            study_name=study_name, artifact_store=optuna.artifacts.FileSystemArtifactStore(
                                str(_mkdir(tmp_path / "checkpoints"))))
    sweep.run(_train_in_worker, n_workers=4)

    assert (log / "killed").exists()
    _same_as_simulator(curves, budget, "SH+FA", sweep)  # the kill changed no decision
    study = sweep.study_
    _no_trial_left_running(study)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    every = [s for t in trials for s in segments(t)]
    assert every and all(s["status"] == "done" for s in every)  # every segment accounted for
    # Nothing counted twice: the ledger is the sum of the compute each candidate was trained to.
    book = ledger(trials, budget)
    assert book["total"] == pytest.approx(sum(sweep.trained_), rel=1e-12) and book["total"] <= budget
    assert book["retries"] == 1 and book["restarts"] == 0 and book["reserved"] == 0
    assert _study_attrs(study)[BUDGETED_LEDGER_KEY]["total"] == pytest.approx(book["total"])
    # The killed segment: two attempts, both resumed from the checkpoint the candidate's first segment left.
    segs = segments(trials[kill])
    second = segs[1]
    assert second["attempts"] == 2 and any("died" in n for n in second["notes"])
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    tries = [c for c in calls if c["i"] == kill and c["until"] == second["until"]]
    assert len(tries) == 2 and all(c["from"] == segs[0]["until"] for c in tries)
    assert tries[0]["pid"] != tries[1]["pid"]
    assert len(calls) == len(every) + 1  # one call per segment, plus the killed attempt
    assert len({s["worker"] for s in every}) >= 2  # segments really ran in several processes
    return sweep


def _mkdir(p):
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_four_workers_on_a_journal_file_one_killed_mid_segment(tmp_path, monkeypatch):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "sweep.journal")))
    _killed_worker_sweep(storage, "killed-worker", tmp_path, monkeypatch)


@pytest.mark.postgres
def test_four_workers_on_postgres_one_killed_mid_segment(tmp_path, monkeypatch):
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name = f"budgeted-{uuid.uuid4().hex[:8]}"
    try:
        _killed_worker_sweep(POSTGRES_URL, name, tmp_path, monkeypatch)
    finally:
        optuna.delete_study(study_name=name, storage=POSTGRES_URL)


# ------------------------------------------------------------------------------------------------ bad input
def _sweep(curves, budget, **kw):
    return BudgetedHalving([{"i": i} for i in range(len(curves))], budget,
                           max_compute=lambda c: curves[c["i"]].final_compute, **kw)


def _trainer(curves, calls=None, hook=None):
    def train_fn(config, from_checkpoint, until):
        i = config["i"]
        if calls is not None:
            calls.append((i, _read_checkpoint(from_checkpoint), until))
        if hook is not None:
            out = hook(i, from_checkpoint, until)
            if out is not None:
                return out
        return _reveal(curves[i], i, from_checkpoint, until)

    return train_fn


def test_a_train_fn_that_raises_fails_its_candidate_and_the_round_goes_on():
    curves = _synthetic(8, 11)
    budget = 0.2 * sum(c.final_compute for c in curves)

    def hook(i, ckpt, until):
        if i == 2:
            raise RuntimeError("CUDA out of memory")

    sweep = _sweep(curves, budget).run(_trainer(curves, hook=hook))
    trials = sweep.study_.trials
    failed = trials[2]
    assert failed.state == TrialState.FAIL
    assert "RuntimeError: CUDA out of memory" in failed.system_attrs[BUDGETED_FAILED_KEY]["reason"]
    assert "CUDA out of memory" in failed.system_attrs[BUDGETED_FAILED_KEY]["traceback"]
    assert segments(failed)[0]["status"] == "failed"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials if t.number != 2)
    assert 2 in sweep.survivors_[0] and all(2 not in alive for alive in sweep.survivors_[1:])
    assert len(sweep.survivors_[1]) == 4  # the round went on with the others: ceil(8 / 2) survive
    assert sweep.spent_ <= budget
    _no_trial_left_running(sweep.study_)


def test_points_past_the_grant_are_clipped_and_a_short_segment_is_recorded():
    curves = _synthetic(6, 12)
    budget = 0.02 * sum(c.final_compute for c in curves)  # no candidate reaches its end in the first round

    def hook(i, ckpt, until):
        if i == 0:  # trains past what it was granted
            seen = curves[0].observed_until(until * 1.5)
            return list(zip(seen.compute, seen.loss)), _checkpoint(0, until)
        if i == 1:  # returns nothing: fewer points than asked
            return [], _checkpoint(1, until)
        return None

    sweep = _sweep(curves, budget).run(_trainer(curves, hook=hook))
    over = sweep.study_.trials[0]
    segs = segments(over)
    assert segs[0]["overshoot"] > 0 and any("clipped" in n for n in segs[0]["notes"])
    assert max(sh_scaling.pruning.reported_compute(over).values()) <= segs[-1]["until"] * (1 + 1e-9)
    short = segments(sweep.study_.trials[1])[0]
    assert short["short"] and short["n_points"] == 0
    assert sweep.study_.trials[1].state == TrialState.PRUNED  # no loss: ranked last
    book = sweep.ledger_
    assert book["overshoot"] > 0 and book["total"] == pytest.approx(sum(sweep.trained_)) and book["total"] <= budget


class _ForgetfulStore(optuna.artifacts.FileSystemArtifactStore):
    """Loses the first checkpoint it is asked for (a wiped disk, an expired object)."""

    def __init__(self, base_path):
        super().__init__(base_path)
        self.lost = []

    def open_reader(self, artifact_id):
        if not self.lost:
            self.lost.append(artifact_id)
            raise FileNotFoundError(f"{artifact_id} is gone")
        return super().open_reader(artifact_id)


@pytest.mark.parametrize("how", ["train_fn cannot load it", "the store lost it"])
def test_a_checkpoint_that_cannot_be_loaded_restarts_its_segment_from_scratch(tmp_path, how):
    curves = _synthetic(8, 13)
    budget = 0.2 * sum(c.final_compute for c in curves)
    calls = []
    store = _ForgetfulStore(str(tmp_path)) if how == "the store lost it" else None
    refused = []

    def hook(i, ckpt, until):
        if how == "train_fn cannot load it" and ckpt is not None and not refused:
            refused.append(i)
            raise CheckpointError("unexpected key 'blocks.0.attn' in state dict")

    sweep = _sweep(curves, budget, artifact_store=store).run(_trainer(curves, calls, hook))
    restarted = [(t, s) for t in sweep.study_.trials for s in segments(t) if s["from_scratch"]]
    assert len(restarted) == 1
    t, seg = restarted[0]
    assert seg["from"] == 0.0 and seg["charge"] == seg["until"] and seg["attempts"] == 2 and seg["status"] == "done"
    assert any("could not be loaded" in n and "restarted from scratch" in n for n in seg["notes"])
    i = t.number
    tries = [c for c in calls if c[0] == i and c[2] == seg["until"]]
    if how == "train_fn cannot load it":
        assert [c[1] is None for c in tries] == [False, True]  # handed the checkpoint, then nothing
    else:
        assert [c[1] is None for c in tries] == [True]  # the download failed before train_fn was called
    book = sweep.ledger_
    assert book["restarts"] == 1 and book["total"] <= budget * (1 + 1e-12)
    assert book["total"] == pytest.approx(sum(s["charge"] for t in sweep.study_.trials for s in segments(t)))
    _no_trial_left_running(sweep.study_)


def test_a_budget_below_one_evaluation_of_every_candidate_fails_before_training():
    curves = _synthetic(8, 14)
    calls = []
    first = lambda c: curves[c["i"]].compute[0]  # noqa: E731
    too_small = 0.5 * max(c.compute[0] for c in curves) * 8 * 3  # half of what round 1 needs
    with pytest.raises(ValueError, match=r"first evaluation of candidate.*smallest budget that evaluates every"):
        _sweep(curves, too_small, first_eval_compute=first).run(_trainer(curves, calls))
    assert calls == []
    enough = max(c.compute[0] for c in curves) * 8 * 3
    _sweep(curves, enough, first_eval_compute=first).run(_trainer(curves, calls))
    assert calls


def _late_curves(n: int, first_from: float):
    """Curves of planned compute 100 evaluated only from ``first_from`` on (a warm-up without evaluations)."""
    from sh_scaling.curves import Curve

    c = np.geomspace(1.0, 100.0, 20)
    keep = c >= first_from
    return [Curve.from_arrays(str(i), c[keep], (2.0 + 0.1 * i + 3.0 * c ** -0.3)[keep]) for i in range(n)]


def test_a_first_round_that_evaluates_no_candidate_is_decided_by_the_seeded_tie_break():
    curves = _late_curves(8, 10.0)
    # Rounds of 8, 4, 2 share 200 as 8.3, 16.7 and 33.3 each: no first evaluation (11.3) in the first round.
    for strategy in ("SH+FA", "SH"):
        sweep = _replay(curves, 200.0, strategy)
        _same_as_simulator(curves, 200.0, strategy, sweep)
        first = _study_attrs(sweep.study_)[budgeted_round_key(0)]
        assert first["n_ranked"] == 8 and all(s is None for s in first["scores"])  # no score: nothing to rank
        pruned = [t for t in sweep.study_.trials if t.number not in first["survivors"]]
        assert all("ranked" in t.system_attrs[PRUNED_KEY] for t in pruned)
        assert np.isfinite(sweep.best_loss_)
        _no_trial_left_running(sweep.study_)


def test_a_budget_that_evaluates_no_candidate_prunes_every_one_with_the_reason():
    curves = _late_curves(6, 30.0)
    # Without first_eval_compute the driver cannot know the budget is too small: it runs the schedule, nothing is
    # ever evaluated, and every candidate ends PRUNED with the reason; the result is NaN, as the simulator's.
    sweep = _replay(curves, 60.0, "SH+FA")
    _same_as_simulator(curves, 60.0, "SH+FA", sweep)
    assert np.isnan(sweep.best_loss_) and sweep.best_index_ is None
    trials = sweep.study_.trials
    assert all(t.state == TrialState.PRUNED for t in trials)
    last = [t for t in trials if t.number in sweep.survivors_[-1]]
    assert all("before it reported" in t.system_attrs[PRUNED_KEY] for t in last)
    _no_trial_left_running(sweep.study_)
    # With first_eval_compute it is refused before any training.
    with pytest.raises(ValueError, match="smallest budget that evaluates every candidate"):
        _replay(curves, 60.0, "SH+FA", first_eval_compute=lambda c: 37.9)


@pytest.mark.parametrize("strategy", ["SH+MPL", "SH+FA-MPL", "SH+MPL-SE"])
@pytest.mark.parametrize("schedule", [None, lambda c: None])
def test_a_schedule_aware_strategy_without_schedules_is_refused_before_training(strategy, schedule):
    curves = _synthetic(4, 17)
    calls = []
    with pytest.raises(ValueError, match=r"no candidate states one.*schedule=.*SH\+FA"):
        _sweep(curves, 0.3 * sum(c.final_compute for c in curves), strategy=strategy,
               schedule=schedule).run(_trainer(curves, calls))
    assert calls == []


def test_duplicate_candidates_are_refused():
    with pytest.raises(ValueError, match=r"candidates 0 and 2 are the same configuration"):
        BudgetedHalving([{"d": 64, "n": 2}, {"d": 128, "n": 2}, {"n": 2, "d": 64}], 1e18).run(lambda *a: ([], None))


def test_an_artifact_store_that_cannot_be_written_fails_before_training(tmp_path):
    curves = _synthetic(4, 15)
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    calls = []
    store = optuna.artifacts.FileSystemArtifactStore(str(not_a_folder))
    with pytest.raises(ValueError, match="not writable"):
        _sweep(curves, 1e18, artifact_store=store).run(_trainer(curves, calls))
    assert calls == []


def _unpicklable_train_fn():
    return lambda config, ckpt, until: ([], None)


@pytest.mark.parametrize("change, match", [
    (dict(budget=0.0), "budget must be a positive"),
    (dict(budget=float("nan")), "budget must be a positive"),
    (dict(candidates=[]), "candidates is empty"),
    (dict(candidates=[{"a": 1}, 3]), "candidate 1 is a int"),
    (dict(candidates=[{"a": object()}]), "cannot be stored as JSON"),
    (dict(strategy="SH+oracle"), "replay-only"),
    (dict(strategy="nope"), "unknown strategy 'nope'; choose from"),
    (dict(reduction_factor=1), "reduction_factor"),
    (dict(max_compute=-1.0), "max_compute of candidate 0"),
    (dict(n_workers=2), "storage the worker processes share"),
    (dict(n_workers=2, storage="journal"), "picklable"),
    (dict(n_workers=0), "n_workers"),
])
def test_bad_arguments_are_refused_before_training(tmp_path, change, match):
    args = dict(candidates=[{"a": 1}, {"a": 2}], budget=1e18, strategy="SH", reduction_factor=2, max_compute=None,
                storage=None, n_workers=1)
    args.update(change)
    if args["storage"] == "journal":
        from optuna.storages.journal import JournalFileBackend

        args["storage"] = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    n_workers = args.pop("n_workers")
    with pytest.raises(ValueError, match=match):
        BudgetedHalving(**args).run(_unpicklable_train_fn(), n_workers=n_workers)


# -------------------------------------------------------------------------------------------------- restarts
def _journal(path):
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def test_an_interrupted_run_leaves_nothing_running_and_a_restart_continues(tmp_path):
    curves = _synthetic(8, 16)
    budget = 0.2 * sum(c.final_compute for c in curves)
    calls = []
    interrupted = []

    def hook(i, ckpt, until):
        if ckpt is not None and not interrupted:  # Ctrl-C in the second round
            interrupted.append((i, until))
            raise KeyboardInterrupt

    storage = _journal(tmp_path / "sweep.journal")
    with pytest.raises(KeyboardInterrupt):
        _sweep(curves, budget, storage=storage, study_name="s").run(_trainer(curves, calls, hook))
    study = optuna.load_study(study_name="s", storage=storage)
    assert TrialState.RUNNING not in [t.state for t in study.trials]
    i, until = interrupted[0]
    seg = [s for s in segments(study.trials[i]) if s["until"] == until][0]
    # An interruption of the driver is noted, and not counted as a death of the segment's worker.
    assert seg["status"] == "reserved" and seg["attempts"] == 1 and seg["interruptions"] == 1
    assert "interrupted" in seg["notes"][-1] and "deaths" not in seg
    n_before = len(calls)

    sweep = _sweep(curves, budget, storage=_journal(tmp_path / "sweep.journal"), study_name="s")
    sweep.run(_trainer(curves, calls, hook))
    _same_as_simulator(curves, budget, "SH+FA", sweep)
    _no_trial_left_running(sweep.study_)
    every = [s for t in sweep.study_.trials for s in segments(t)]
    assert len(calls) == len(every) + 1  # no segment trained twice, but the interrupted one
    assert calls[n_before][:3:2] == (i, until)  # the restart began with the interrupted segment
    assert sweep.ledger_["total"] == pytest.approx(sum(sweep.trained_)) and sweep.ledger_["total"] <= budget
    with pytest.raises(ValueError, match="budget.* differ"):
        _sweep(curves, budget * 2, storage=_journal(tmp_path / "sweep.journal"), study_name="s").run(
            _trainer(curves))


def _driver_that_dies(journal, log):
    """A driver process killed outright (SIGKILL, no cleanup) in the middle of a segment of its second round."""
    curves = _synthetic(8, 17)
    budget = 0.2 * sum(c.final_compute for c in curves)

    def hook(i, ckpt, until):
        Path(log, f"call-{uuid.uuid4().hex}").write_text(json.dumps([i, until]))
        if ckpt is not None:
            os.kill(os.getpid(), signal.SIGKILL)

    _sweep(curves, budget, storage=_journal(journal), study_name="s").run(_trainer(curves, hook=hook))


def test_a_driver_killed_outright_is_taken_over_by_a_restart(tmp_path):
    journal = tmp_path / "sweep.journal"
    proc = multiprocessing.get_context("fork").Process(target=_driver_that_dies, args=(str(journal), str(tmp_path)))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    study = optuna.load_study(study_name="s", storage=_journal(journal))
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 1  # what a killed driver leaves
    curves = _synthetic(8, 17)
    budget = 0.2 * sum(c.final_compute for c in curves)
    sweep = _sweep(curves, budget, storage=_journal(journal), study_name="s").run(_trainer(curves))
    _same_as_simulator(curves, budget, "SH+FA", sweep)
    _no_trial_left_running(sweep.study_)
    retried = [s for t in sweep.study_.trials for s in segments(t) if s.get("interruptions")]
    assert len(retried) == 1 and "stopped while it ran" in retried[0]["notes"][-1]
    assert retried[0]["attempts"] == 1 and "deaths" not in retried[0]
    assert sweep.ledger_["total"] == pytest.approx(sum(sweep.trained_)) and sweep.ledger_["total"] <= budget


# ---------------------------------------------------------------------------------------------- the budget
def test_round_share_is_the_schedules_until_the_budget_runs_short():
    sizes, shares = [8, 4, 2], [10.0, 20.0, 40.0]
    assert round_share(shares, sizes, 1, 160.0) == 20.0  # 4 * 20 + 2 * 40 = 160 left: the schedule's share
    assert round_share(shares, sizes, 1, 80.0) == pytest.approx(10.0)  # half left: every later round halves
    assert round_share(shares, sizes, 1, -5.0) == 0.0


def _compute_objective(planned, n_points=10, prune_after=None):
    def objective(trial):
        for k in range(1, n_points + 1):
            sh_scaling.report(trial, 1.0 / k, compute=planned * k / n_points, max_compute=planned)
            if prune_after is not None and k == prune_after:
                raise optuna.TrialPruned()
        return 1.0 / n_points

    return objective


def test_compute_budget_stops_optimize_before_the_budget_would_pass():
    study = optuna.create_study()
    budget = ComputeBudget(35.0)
    study.optimize(_compute_objective(10.0), n_trials=100, callbacks=[budget])
    assert len(study.trials) == 3  # 30 spent; one more trial of 10 would pass 35
    status = budget.status(study)
    assert status["spent"] == pytest.approx(30.0) and status["committed"] == 0 and status["next"] == 10.0


def test_compute_budget_counts_a_running_trials_plan_and_pruned_trials_spend():
    study = optuna.create_study()
    study.optimize(_compute_objective(10.0, prune_after=2), n_trials=2)  # two pruned trials: 2 each
    running = study.ask()
    sh_scaling.report(running, 1.0, compute=1.0, max_compute=10.0)
    status = ComputeBudget(100.0).status(study)
    assert status["spent"] == pytest.approx(4.0) and status["committed"] == pytest.approx(10.0)
    assert ComputeBudget(100.0, max_compute=lambda p: 50.0).status(study)["next"] == 10.0  # the largest known plan
    assert ComputeBudget(23.0).would_pass(study) and not ComputeBudget(24.0).would_pass(study)


def test_compute_budget_with_the_asynchronous_pruner_keeps_the_budget():
    curves = _synthetic(30, 18)
    planned = [c.final_compute for c in curves]
    flops = 0.3 * sum(planned)
    # No stage margin: with it the few trials this budget pays for all go on (their forecasts are too early to
    # trust), and the test needs pruned trials, whose spend the budget must count.
    pruner = sh_scaling.SurrogateHalvingPruner(max_compute=lambda p: planned[p["i"]], margin=None)
    study = optuna.create_study(pruner=pruner)
    for i in range(len(curves)):
        study.enqueue_trial({"i": i})

    def objective(trial):
        c = curves[trial.suggest_int("i", 0, len(curves) - 1)]
        for x, y in zip(c.compute, c.loss):
            sh_scaling.report(trial, float(y), compute=float(x))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(c.loss[-1])

    budget = ComputeBudget(flops, max_compute=lambda p: planned[p["i"]])
    study.optimize(objective, n_trials=len(curves), callbacks=[budget])
    spent = budget.status(study)["spent"]
    started = [t for t in study.trials if t.state != TrialState.WAITING]
    assert spent <= flops and len(started) < len(curves)  # stopped early, within the budget
    assert TrialState.PRUNED in [t.state for t in study.trials]


@pytest.mark.parametrize("args", [dict(flops=0), dict(flops=float("inf")), dict(flops="1e21"),
                                  dict(flops=1e21, max_compute=-1)])
def test_compute_budget_refuses_bad_arguments(args):
    with pytest.raises(ValueError):
        ComputeBudget(**args)
