"""``BudgetedHalving``'s settings: strategy specs, the complete strategy description stored in the plan (its
``margin``, a surrogate prototype's settings; plans stored without them still joined), ``check()`` (every refusal
that needs no storage) and ``sh-scaling start`` calling it before anything is created."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

import _workers_train
from sh_scaling.budgeted import BudgetedHalving
from sh_scaling.cli import main
from sh_scaling.keys import BUDGETED_PLAN_KEY, budgeted_round_key
from sh_scaling.simulation import STRATEGIES, Strategy, parse_strategy
from sh_scaling.surrogates import PowerLawSurrogate

optuna.logging.set_verbosity(optuna.logging.ERROR)

N, SEED = 8, 7


def _journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _rows() -> list[dict]:
    curves = _workers_train.curves(N, SEED)
    return [{"n": N, "seed": SEED, "i": i, "sleep": 0.0, "flops": c.final_compute,
             "lr_schedule": c.meta["schedule"].to_dict()} for i, c in enumerate(curves)]


def _budget() -> float:
    return 0.2 * sum(c.final_compute for c in _workers_train.curves(N, SEED))


def _sweep(tmp_path: Path, strategy, **kw) -> BudgetedHalving:
    args = dict(max_compute=lambda c: c["flops"], strategy=strategy, schedule=lambda c: c["lr_schedule"],
                storage=_journal(tmp_path / "w.journal"), study_name="w",
                artifact_store=optuna.artifacts.FileSystemArtifactStore(str(tmp_path)))
    return BudgetedHalving(_rows(), kw.pop("budget", _budget()), **{**args, **kw})


def _stored_plan(tmp_path: Path) -> dict:
    storage = _journal(tmp_path / "w.journal")
    return storage.get_study_system_attrs(storage.get_study_id_from_name("w"))[BUDGETED_PLAN_KEY]


def _store_plan(tmp_path: Path, plan: dict) -> None:
    storage = _journal(tmp_path / "w.journal")
    storage.set_study_system_attr(storage.get_study_id_from_name("w"), BUDGETED_PLAN_KEY, plan)


# --------------------------------------------------------------------------------------- strategy= spec
@pytest.mark.parametrize("spec", ["SH+MPL-SE:unseen=reach", "SH+FA", "SH+FA:unseen=last:few=stage"])
def test_a_strategy_spec_string_is_read_as_parse_strategy_reads_it_and_joined(tmp_path, spec):
    sweep = _sweep(tmp_path, spec).start()
    assert sweep.strategy == spec  # the argument as given; the plan holds what it stands for
    assert _stored_plan(tmp_path)["strategy"]["name"] == spec
    joined = BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w")
    assert joined.strategy == parse_strategy(spec)
    joined.start()  # the same settings
    _sweep(tmp_path, parse_strategy(spec)).start()  # the object and its spec are the same sweep


@pytest.mark.parametrize("spec, message", [
    ("SH+NOPE:unseen=reach", "strategy 'SH+NOPE:unseen=reach': unknown strategy 'SH+NOPE'"),
    ("SH+FA:unseen", "strategy 'SH+FA:unseen': 'unseen' is not a setting"),
    ("SH+FA:unseen=soon", "strategy 'SH+FA:unseen=soon': unseen='soon'; choose one of"),
    ("SH:few=stage", "strategy 'SH:few=stage': few='stage' stands in for forecasts"),
])
def test_a_bad_strategy_spec_is_refused_naming_it_before_anything_is_stored(tmp_path, spec, message):
    sweep = _sweep(tmp_path, spec, artifact_store=None)
    with pytest.raises(ValueError, match=message.replace("+", r"\+").replace("(", r"\(")):
        sweep.start()
    assert _journal(tmp_path / "w.journal").get_all_studies() == []
    assert not (tmp_path / "w.journal.checkpoints").exists()
    with pytest.raises(ValueError, match="strategy 'SH\\+NOPE:unseen=reach'"):
        parse_strategy("SH+NOPE:unseen=reach")  # the same one-line error in sh-scaling simulate --strategies


# ------------------------------------------------------------------------ the stored strategy description
def test_sweeps_differing_only_in_the_margin_are_different_settings(tmp_path):
    widened = dataclasses.replace(STRATEGIES["SH+MPL"], margin=0.9)
    _sweep(tmp_path, widened).start()
    assert _stored_plan(tmp_path)["strategy"]["margin"] == 0.9
    _sweep(tmp_path, widened).start()  # the same margin joins
    with pytest.raises(ValueError, match="strategy differ"):
        _sweep(tmp_path, "SH+MPL").start()
    with pytest.raises(ValueError, match="strategy differ"):
        _sweep(tmp_path, dataclasses.replace(widened, margin=0.8)).start()
    # Its name is SH+MPL's but it is not SH+MPL: join cannot rebuild it from the name.
    with pytest.raises(ValueError, match="custom strategy"):
        BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w")


def test_sweeps_differing_only_in_a_surrogate_prototypes_settings_are_different_settings(tmp_path):
    mine = Strategy("mine", "forecast", PowerLawSurrogate(f_scale=0.05))
    _sweep(tmp_path, mine).start()
    assert _stored_plan(tmp_path)["strategy"]["surrogate"]["class"] == "PowerLawSurrogate"
    _sweep(tmp_path, Strategy("mine", "forecast", PowerLawSurrogate(f_scale=0.05))).start()
    with pytest.raises(ValueError, match="strategy differ"):
        _sweep(tmp_path, Strategy("mine", "forecast", PowerLawSurrogate(f_scale=0.01))).start()


def _as_stored_before(description: dict) -> dict:
    """A strategy description as releases that left out the margin and a prototype's settings stored it."""
    old = {k: v for k, v in description.items() if k != "margin"}
    if isinstance(old["surrogate"], dict):
        old["surrogate"] = old["surrogate"]["class"]
    return old


@pytest.mark.parametrize("strategy", ["SH+MPL-SE", "SH+MPL-SE:unseen=reach", "SH+FA",
                                      Strategy("mine", "forecast", PowerLawSurrogate(f_scale=0.05), margin=0.9)])
def test_a_plan_stored_without_the_margin_is_still_joined(tmp_path, strategy):
    _sweep(tmp_path, strategy).start()
    plan = _stored_plan(tmp_path)
    _store_plan(tmp_path, {**plan, "strategy": _as_stored_before(plan["strategy"])})
    _sweep(tmp_path, strategy).start()  # a restart with the same settings joins, as before
    if isinstance(strategy, str):  # workers rebuild the named strategy, its margin included
        assert BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w").strategy == parse_strategy(strategy)
    else:
        with pytest.raises(ValueError, match="custom strategy"):
            BudgetedHalving.join(_journal(tmp_path / "w.journal"), "w")
    with pytest.raises(ValueError, match="strategy differ"):
        _sweep(tmp_path, "SH+PL").start()


# ------------------------------------------------------------------------------------------------ check()
@pytest.mark.parametrize("changes, message", [
    ({"candidates": [{"a": 1}, {"a": 1}]}, "candidates 0 and 1 are the same configuration"),
    ({"candidates": []}, "candidates is empty"),
    ({"budget": -1.0}, "budget must be a positive finite number"),
    ({"reduction_factor": 1}, "reduction_factor must be a number > 1"),
    ({"strategy": "SH+FA:few=soon"}, "strategy 'SH+FA:few=soon'"),
    ({"strategy": "SH+oracle"}, "replay-only bound"),
    ({"strategy": "SH+MPL", "schedule": None}, "no candidate states one"),
    ({"schedule": lambda c: "cosine"}, "schedule of candidate 0 is 'cosine', not a Schedule"),
    ({"first_eval_compute": 1e30}, "less than the first evaluation of candidate"),
    ({"max_compute": lambda c: c["nope"]}, "max_compute raised KeyError"),
    ({"keep_checkpoints": "some"}, "keep_checkpoints must be"),
    ({"replan": 1}, "replan must be True or False"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": 1.5}, "seed must be a non-negative integer"),
])
def test_check_makes_every_refusal_that_needs_no_storage_and_touches_none(tmp_path, changes, message):
    kw = {"storage": _journal(tmp_path / "w.journal"), **changes}
    candidates = kw.pop("candidates", None)
    sweep = _sweep(tmp_path, kw.pop("strategy", "SH+FA"), **kw)
    if candidates is not None:
        sweep.candidates = candidates
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        sweep.check()
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        sweep.start()  # start and run begin with the same checks
    assert _journal(tmp_path / "w.journal").get_all_studies() == []


def test_check_returns_the_sweep_and_leaves_its_settings_alone(tmp_path):
    sweep = _sweep(tmp_path, "SH+MPL-SE:unseen=reach", storage=str(tmp_path / "nowhere" / "x.db"))
    assert sweep.check() is sweep and sweep.strategy == "SH+MPL-SE:unseen=reach"
    assert not (tmp_path / "nowhere").exists()  # the storage is not opened


# ------------------------------------------------------------------------------ sh-scaling start
def _files(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "candidates.json"
    path.write_text(json.dumps(rows))
    return path


def _argv(tmp_path: Path, candidates: Path, *extra: str, artifacts: str = "ckpt") -> list[str]:
    return ["start", "--storage", str(tmp_path / "sweep.journal"), "--study", "s", "--candidates", str(candidates),
            "--budget", repr(_budget()), "--max-compute", "flops", "--artifacts", str(tmp_path / artifacts), *extra]


@pytest.mark.parametrize("rows, extra, message", [
    ("duplicate", [], "candidates 0 and 1 are the same configuration"),
    ("ok", ["--first-eval-compute", "1e30"], "less than the first evaluation of candidate(s)"),
    ("ok", ["--strategy", "SH+oracle"], "replay-only bound"),
    ("ok", ["--strategy", "SH+MPL"], "no candidate states one"),
    ("bad schedule", ["--strategy", "SH+MPL", "--schedule", "lr_schedule"], "schedule of candidate 0, "),
    ("ok", ["--max-compute", "-1"], "max_compute of candidate 0 must be a positive finite number"),
])
def test_start_refuses_bad_input_in_one_line_before_the_storage_or_the_checkpoint_folder(
        tmp_path, capsys, rows, extra, message):
    cands = _rows()
    if rows == "duplicate":
        cands[1] = cands[0]
    elif rows == "bad schedule":
        cands = [{**c, "lr_schedule": {"kind": "cosin"}} for c in cands]
    assert main(_argv(tmp_path, _files(tmp_path, cands), *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sh-scaling start: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sweep.journal").exists() and not (tmp_path / "ckpt").exists()


def test_a_start_with_other_settings_changes_nothing_stored_and_creates_no_checkpoint_folder(tmp_path, capsys):
    candidates = _files(tmp_path, _rows())
    assert main(_argv(tmp_path, candidates)) == 0
    assert (tmp_path / "ckpt").is_dir()
    before = (tmp_path / "sweep.journal").read_bytes()
    for extra in (["--seed", "3"], ["--strategy", "SH+FA:few=stage"], ["--reduction-factor", "3"]):
        assert main(_argv(tmp_path, candidates, *extra, artifacts="elsewhere")) == 2
        err = capsys.readouterr().err
        assert "differ" in err and len(err.strip().splitlines()) == 1
        assert (tmp_path / "sweep.journal").read_bytes() == before and not (tmp_path / "elsewhere").exists()
    # Without --artifacts the default folder next to the journal file is not created either.
    no_artifacts = [a for a in _argv(tmp_path, candidates, "--seed", "3") if a not in ("--artifacts",
                                                                                      str(tmp_path / "ckpt"))]
    assert main(no_artifacts) == 2 and "--artifacts" not in no_artifacts
    assert not (tmp_path / "sweep.journal.checkpoints").exists()
    assert main(_argv(tmp_path, candidates, artifacts="elsewhere")) == 0  # the same settings: joined
    assert (tmp_path / "elsewhere").is_dir()


# ----------------------------------------------------------------------------------- round records
def test_the_driver_round_record_names_what_each_candidate_was_ranked_by(tmp_path):
    sweep = _sweep(tmp_path, "SH+FA", budget=0.05 * sum(c.final_compute for c in _workers_train.curves(N, SEED)))
    sweep.run(_train)
    storage = _journal(tmp_path / "w.journal")
    rec = storage.get_study_system_attrs(storage.get_study_id_from_name("w"))[budgeted_round_key(0)]
    assert len(rec["ranked_by"]) == len(rec["ranked"]) == N
    assert set(rec["ranked_by"]) <= {"forecast", "observed", "few:last", "unseen:last", "unseen:reach"}


def _train(config, from_checkpoint, until):
    start = 0.0 if from_checkpoint is None else json.loads(Path(from_checkpoint).read_text())["until"]
    seen = _workers_train.curves(N, SEED)[config["i"]].observed_until(until)
    points = [(c, y) for c, y in zip(seen.compute, seen.loss) if c > start * (1 + 1e-9)]
    return points, json.dumps({"until": until}).encode()


def test_a_seed_given_as_a_whole_float_or_numpy_integer_is_still_taken(tmp_path):
    for seed in (2.0, np.int64(2)):
        assert _sweep(tmp_path, "SH+FA", seed=seed).check().seed == seed
