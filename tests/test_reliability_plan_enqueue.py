"""`sh-scaling plan --study-name ... --storage ...` enqueues each planned run once, however often it is run."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from sh_scaling.cli import main

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _plan(storage: str, *extra: str) -> list[str]:
    return ["plan", "--flops", "1e20", "--study-name", "sweep", "--storage", storage, *extra]


def test_running_plan_twice_enqueues_the_plan_once(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    assert main(_plan(storage)) == 0
    assert "enqueued 15 trials" in capsys.readouterr().out
    assert main(_plan(storage)) == 0
    assert "enqueued 0 trials into study 'sweep'" in capsys.readouterr().out
    study = optuna.load_study(study_name="sweep", storage=storage)
    assert len(study.trials) == 15


def test_runs_already_trained_are_not_enqueued_again(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    assert main(_plan(storage)) == 0
    study = optuna.load_study(study_name="sweep", storage=storage)
    study.optimize(lambda t: t.suggest_int("n_layers", 1, 200) + t.suggest_int("d_model", 1, 10**5), n_trials=2)
    assert main(_plan(storage)) == 0
    assert "enqueued 0 trials" in capsys.readouterr().out.splitlines()[-1]
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 13 and len(study.trials) == 15


def test_runs_sharing_a_shape_at_two_budgets_are_both_enqueued(tmp_path, capsys):
    # Budgets 4x apart with a fixed vocabulary: twice the optimal size at 6.25e18 FLOPs is the optimal size at
    # 2.5e19 (9 layers, width 1152), trained for different numbers of steps. Comparing shapes alone, as
    # enqueue_trial(skip_if_exists=True) does, would drop one of them.
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    args = _plan(storage, "--budget-ratio", "4", "--vocab-size", "32000")
    assert main(args) == 0 and main(args) == 0
    study = optuna.load_study(study_name="sweep", storage=storage)
    assert len(study.trials) == 15
    shapes = [(t.system_attrs["fixed_params"]["n_layers"], t.system_attrs["fixed_params"]["d_model"])
              for t in study.trials]
    assert shapes.count((9, 1152)) == 2
    assert "14 of the plan's runs were already in it" not in capsys.readouterr().out
