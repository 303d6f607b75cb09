"""``sh-scaling start`` with a strategy spec (``--strategy NAME[:KEY=VALUE...]``) and learning-rate schedules
(``--schedule FIELD|JSON``), and workers that join such a sweep from the storage alone (``BudgetedHalving.join``,
``sh-scaling work``)."""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

import _workers_train
from sh_scaling.budgeted import BudgetedHalving
from sh_scaling.cli import main
from sh_scaling.curves import load_cpu_ladder
from sh_scaling.keys import BUDGETED_PLAN_KEY
from sh_scaling.simulation import STRATEGIES, allocate, parse_strategy

optuna.logging.set_verbosity(optuna.logging.ERROR)

N, SEED = 8, 7
COSINE = {"kind": "cosine", "peak_lr": 1.0, "warmup": 0.05, "final_ratio": 0.1}


def _journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _plan(journal: Path, study: str = "s") -> dict:
    storage = _journal(journal)
    study_id = storage.get_study_id_from_name(study)
    return storage.get_study_system_attrs(study_id)[BUDGETED_PLAN_KEY]


def _rows(**extra) -> list[dict]:
    """The synthetic worker curves as candidates: each one's planned end in ``flops``, its schedule in
    ``lr_schedule`` (``Schedule.to_dict()``)."""
    curves = _workers_train.curves(N, SEED)
    return [{"n": N, "seed": SEED, "i": i, "sleep": 0.0, "flops": c.final_compute,
             "lr_schedule": c.meta["schedule"].to_dict(), **extra} for i, c in enumerate(curves)]


def _budget() -> float:
    return 0.2 * sum(c.final_compute for c in _workers_train.curves(N, SEED))


def _json_file(folder: Path, rows: list[dict], name: str = "candidates.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(rows))
    return path


def _argv(tmp_path: Path, candidates: Path, *extra: str) -> list[str]:
    return ["start", "--storage", str(tmp_path / "sweep.journal"), "--study", "s", "--candidates", str(candidates),
            "--budget", repr(_budget()), "--max-compute", "flops", "--artifacts", str(tmp_path / "ckpt"), *extra]


def _nothing_created(tmp_path: Path) -> bool:
    return not (tmp_path / "sweep.journal").exists() and not (tmp_path / "ckpt").exists()


# ------------------------------------------------------------------------------ join: a spec-named strategy
def _started(tmp_path: Path, strategy, **kw) -> BudgetedHalving:
    curves = _workers_train.curves(N, SEED)
    return BudgetedHalving(_rows(), _budget(), max_compute=lambda c: c["flops"], strategy=strategy,
                           schedule=lambda c: curves[c["i"]].meta["schedule"], storage=_journal(tmp_path / "w.journal"),
                           study_name="w",
                           artifact_store=optuna.artifacts.FileSystemArtifactStore(str(tmp_path)), **kw).start()


@pytest.mark.parametrize("spec", ["SH+MPL-SE:unseen=reach", "SH+FA:unseen=last:few=stage", "SH+MPL:few=slope"])
def test_a_sweep_started_with_a_strategy_spec_is_joined_with_that_strategy(tmp_path, spec):
    _started(tmp_path, parse_strategy(spec))
    again = BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w")
    assert again.strategy == parse_strategy(spec)
    again.start()  # the same settings: the stored plan matches


@pytest.mark.parametrize("changes", [{"name": "mine"}, {"name": "SH+FA:few=stage", "optimism": 0.1}])
def test_a_sweep_started_with_a_custom_strategy_is_still_refused_by_join(tmp_path, changes):
    """A strategy a name or spec does not describe (its own name; a spec's name with another optimism)."""
    _started(tmp_path, dataclasses.replace(STRATEGIES["SH+FA"], **changes))
    with pytest.raises(ValueError, match="custom strategy"):
        BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w")


# ------------------------------------------------------------------------------------ --strategy NAME:K=V
@pytest.mark.parametrize("spec, message", [
    ("SH+NOPE", "unknown strategy 'SH+NOPE'"),
    ("SH+FA:unseen", "'unseen' is not a setting"),
    ("SH+FA:unseen=soon", "unseen='soon'; choose one of"),
    ("SH+FA:few=last:few=stage", "few given twice"),
    ("SH:few=stage", "few='stage' stands in for forecasts"),
])
def test_start_refuses_a_bad_strategy_spec_in_one_line_and_creates_nothing(tmp_path, capsys, spec, message):
    with pytest.raises(SystemExit) as exc:
        main(_argv(tmp_path, _json_file(tmp_path, _rows()), "--strategy", spec))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err
    assert "argument --strategy" in err.splitlines()[-1] and _nothing_created(tmp_path)


def test_start_stores_a_strategy_spec_and_joins_or_refuses_as_settings_match(tmp_path, capsys):
    argv = _argv(tmp_path, _json_file(tmp_path, _rows()), "--schedule", "lr_schedule")
    assert main([*argv, "--strategy", "SH+MPL-SE:unseen=reach"]) == 0
    assert main([*argv, "--strategy", "SH+MPL-SE:unseen=reach"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.count("ranked by SH+MPL-SE:unseen=reach") == 2
    stored = _plan(tmp_path / "sweep.journal")["strategy"]
    assert stored["name"] == "SH+MPL-SE:unseen=reach" and stored["unseen"] == "reach"
    for other in ("SH+MPL-SE", "SH+MPL-SE:unseen=median", "SH+MPL-SE:unseen=reach:few=stage"):
        assert main([*argv, "--strategy", other]) == 2
        assert "strategy differ" in capsys.readouterr().err
    assert BudgetedHalving.join(_journal(tmp_path / "sweep.journal"), "s").strategy == parse_strategy(
        "SH+MPL-SE:unseen=reach")


# ---------------------------------------------------------------------------------------------- --schedule
def test_start_with_one_json_schedule_gives_it_to_every_candidate(tmp_path, capsys):
    rows = _rows()
    argv = _argv(tmp_path, _json_file(tmp_path, rows), "--strategy", "SH+MPL")
    assert main([*argv, "--schedule", json.dumps({"kind": "cosine", "warmup": 0.05, "final_ratio": 0.1})]) == 0
    assert f"{N} with a schedule" in capsys.readouterr().out
    assert _plan(tmp_path / "sweep.journal")["schedules"] == [COSINE] * N
    # The same schedule written otherwise (its full to_dict()) is the same sweep; another one is refused.
    assert main([*argv, "--schedule", json.dumps(COSINE)]) == 0, capsys.readouterr().err
    assert main([*argv, "--schedule", json.dumps({**COSINE, "final_ratio": 0.0})]) == 2
    assert "schedules differ" in capsys.readouterr().err
    assert main([*argv, "--schedule", "lr_schedule"]) == 2
    assert "schedules differ" in capsys.readouterr().err
    assert main([*argv[:-2], "--strategy", "SH+FA"]) == 2  # no schedule, with a strategy that reads none
    assert "differ" in capsys.readouterr().err


def test_start_reads_each_candidates_schedule_from_a_json_field_null_for_none(tmp_path):
    rows = _rows()
    rows[2]["lr_schedule"] = None
    assert main(_argv(tmp_path, _json_file(tmp_path, rows), "--strategy", "SH+FA-MPL", "--schedule",
                      "lr_schedule")) == 0
    expected = [r["lr_schedule"] for r in rows]
    assert _plan(tmp_path / "sweep.journal")["schedules"] == expected and expected[2] is None
    joined = BudgetedHalving.join(_journal(tmp_path / "sweep.journal"), "s")
    assert [joined.schedule(c) for c in joined.candidates] == expected


def test_start_reads_each_candidates_schedule_from_a_csv_cell_of_json_empty_for_none(tmp_path):
    rows = _rows()
    path = tmp_path / "candidates.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for i, r in enumerate(rows):
            writer.writerow({**r, "lr_schedule": "" if i == 5 else json.dumps(r["lr_schedule"])})
    assert main(_argv(tmp_path, path, "--strategy", "SH+MPL", "--schedule", "lr_schedule")) == 0
    assert _plan(tmp_path / "sweep.journal")["schedules"] == [None if i == 5 else r["lr_schedule"]
                                                              for i, r in enumerate(rows)]


@pytest.mark.parametrize("value, schedule, message", [
    (None, "lr", "--schedule 'lr' is neither a JSON object nor a field of every candidate (candidate 3 has"),
    # Whether a value is a schedule is the driver's check (BudgetedHalving.check), as in Python.
    ({"kind": "cosine", "warmup": 2.0}, "lr_schedule", "schedule of candidate 3, {'kind': 'cosine', 'warmup': 2.0}, "
                                                       "is not a learning-rate schedule: Cosine: warmup"),
    ({"kind": "cosin"}, "lr_schedule", "schedule of candidate 3, {'kind': 'cosin'}, is not a learning-rate schedule"),
    ("{not json", "lr_schedule", "--schedule 'lr_schedule': candidate 3's value '{not json' is not valid JSON"),
    (0.1, "lr_schedule", "schedule of candidate 3 is 0.1, not a Schedule"),
    (None, '{"kind": "cosin"}', "is not a learning-rate schedule: unknown schedule kind 'cosin'"),
    (None, '{"kind": "cosine"', "is not valid JSON"),
])
def test_start_names_the_candidate_whose_schedule_is_missing_or_wrong_and_creates_nothing(
        tmp_path, capsys, value, schedule, message):
    rows = _rows()
    if schedule == "lr":
        rows = [{**r, "lr": r["lr_schedule"]} for r in rows]
        del rows[3]["lr"]
    elif value is not None:
        rows[3]["lr_schedule"] = value
    assert main(_argv(tmp_path, _json_file(tmp_path, rows), "--strategy", "SH+MPL", "--schedule", schedule)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and _nothing_created(tmp_path)


@pytest.mark.parametrize("strategy", ["SH+MPL", "SH+FA-MPL", "SH+MPL-SE:unseen=reach"])
@pytest.mark.parametrize("schedule", [None, "lr_schedule"])
def test_a_schedule_aware_strategy_without_schedules_is_refused_in_one_line_and_creates_nothing(
        tmp_path, capsys, strategy, schedule):
    """No ``--schedule``, or a field that is empty for every candidate."""
    rows = [{**r, "lr_schedule": None} for r in _rows()]
    extra = [] if schedule is None else ["--schedule", schedule]
    assert main(_argv(tmp_path, _json_file(tmp_path, rows), "--strategy", strategy, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sh-scaling start: error: strategy") and "no candidate states one" in err
    assert "--schedule" in err and len(err.strip().splitlines()) == 1 and _nothing_created(tmp_path)


# ---------------------------------------------------------------------------------------------- end to end
@lru_cache(maxsize=None)
def _ladder() -> list:
    """Eight runs of the recorded CPU ladder (cosine, WSD and constant schedules), chosen so that the schedules
    and the spec's ``unseen`` rule both change the simulator's decisions at 3 % of the exhaustive compute."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = list(load_cpu_ladder())
    return [curves[int(i)] for i in np.random.default_rng(5).choice(len(curves), size=8, replace=False)]


def _ladder_train(config, from_checkpoint, until):
    """``sh-scaling work --train test_cli_start_schedule:_ladder_train``: reveals the recorded points of the
    candidate's run from where its checkpoint says up to ``until``."""
    start = 0.0 if from_checkpoint is None else json.loads(Path(from_checkpoint).read_text())["until"]
    seen = {c.id: c for c in _ladder()}[config["run"]].observed_until(until)
    points = [(c, y) for c, y in zip(seen.compute, seen.loss) if c > start * (1 + 1e-9)]
    return points, json.dumps({"run": config["run"], "until": until}).encode()


def _simulated(curves, budget, strategy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return allocate(curves, budget, strategy, rng=np.random.default_rng(0))


def test_workers_finish_a_sweep_started_with_schedules_and_a_spec_as_the_simulator_decides(tmp_path, capsys):
    """``sh-scaling start --schedule FIELD --strategy SH+MPL-SE:unseen=reach``, then ``sh-scaling work`` (twice:
    the second finds the sweep finished): the rounds are the fixed-budget simulator's on the same curves, which
    differ from its rounds without the schedules and without the spec's rule."""
    curves, spec = _ladder(), "SH+MPL-SE:unseen=reach"
    budget = 0.03 * sum(c.final_compute for c in curves)
    rows = [{"run": c.id, "flops": c.final_compute, "lr_schedule": c.meta["schedule"].to_dict()} for c in curves]
    start = ["start", "--storage", str(tmp_path / "sweep.journal"), "--study", "s", "--candidates",
             str(_json_file(tmp_path, rows)), "--budget", repr(budget), "--max-compute", "flops",
             "--strategy", spec, "--schedule", "lr_schedule"]
    assert main(start) == 0
    work = ["work", "--storage", str(tmp_path / "sweep.journal"), "--study", "s",
            "--train", "test_cli_start_schedule:_ladder_train"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # surrogate fits that fall back, on both sides alike
        assert main(work) == 0 and main(work) == 0, capsys.readouterr().err
        assert capsys.readouterr().out.count("sweep 's' finished") == 2
        sweep = BudgetedHalving.join(_journal(tmp_path / "sweep.journal"), "s").work(_ladder_train)  # finished
    sim = _simulated(curves, budget, parse_strategy(spec))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-12)
    assert sweep.spent_ == pytest.approx(sim.spent, rel=1e-12) and sweep.spent_ <= budget
    assert sweep.best_loss_ == sim.best_loss
    # Both options reached the workers' decisions: without either the simulator keeps other candidates.
    unscheduled = [dataclasses.replace(c, meta={k: v for k, v in c.meta.items() if k != "schedule"}) for c in curves]
    for other in (_simulated(unscheduled, budget, parse_strategy(spec)), _simulated(curves, budget, "SH+MPL-SE")):
        assert [sorted(alive) for alive in other.survivors] != [sorted(alive) for alive in sim.survivors]
