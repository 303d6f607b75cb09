"""``sh-scaling start`` with a strategy spec (``--strategy NAME[:KEY=VALUE...]``) and learning-rate schedules
(``--schedule FIELD|JSON``), and workers that join such a sweep from the storage alone (``BudgetedHalving.join``,
``sh-scaling work``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

import _workers_train
from sh_scaling.budgeted import BudgetedHalving
from sh_scaling.keys import BUDGETED_PLAN_KEY
from sh_scaling.simulation import STRATEGIES, parse_strategy

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
