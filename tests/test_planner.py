from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest

from sh_scaling.cli import main
from sh_scaling.laws import TransformerConfig, compute_optimal_allocation, fit_step_time, optimal_vocabulary
from sh_scaling.sampling import PLAN_COLUMNS, enqueue, plan_sweep

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def calibration():
    """A synthetic calibration: step time = 1e-11 s per byte of memory traffic + 1 ms."""
    cfgs = [
        TransformerConfig(n_layers=L, d_model=d, n_heads=d // 64, vocab_size=32000, seq_len=512, batch_size=8)
        for L, d in [(2, 128), (4, 256), (8, 512), (4, 1024), (12, 768)]
    ]
    seconds = [c.memory_copies_per_step() * 1e-11 + 1e-3 for c in cfgs]
    seconds[0] *= 1.05
    return fit_step_time(cfgs, seconds)


@pytest.fixture(scope="module")
def plan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return plan_sweep(1e20)


def test_plan_has_three_budgets_of_five_sizes(plan):
    assert list(plan.columns) == list(PLAN_COLUMNS)
    assert len(plan) == 15
    np.testing.assert_allclose(sorted(plan["budget_flops"].unique()), [1e18, 1e19, 1e20])
    assert plan["budget_hours"].isna().all()
    assert plan.attrs["total_flops"] == pytest.approx(5 * (1e18 + 1e19 + 1e20))


def test_each_row_spends_its_budget(plan):
    np.testing.assert_allclose(plan["flops"], plan["budget_flops"], rtol=1e-12)
    np.testing.assert_allclose(plan["tokens"], plan["budget_flops"] / (6 * plan["n_params"]), rtol=1e-12)
    # Whole steps: within one step of the tokens.
    assert (abs(plan["steps"] * plan["batch_size"] * plan["seq_len"] - plan["tokens"])
            <= plan["batch_size"] * plan["seq_len"]).all()


def test_sizes_straddle_the_compute_optimum(plan):
    for budget, rows in plan.groupby("budget_flops"):
        n_opt = compute_optimal_allocation(budget).n_params
        np.testing.assert_allclose(rows["n_params"] / n_opt, rows["size_factor"], rtol=1e-9)
        # Rounding to whole layers and head-size multiples keeps each size within 30 % of its target.
        np.testing.assert_allclose(rows["size_factor"], [0.25, 0.5, 1, 2, 4], rtol=0.3)
        losses = rows["predicted_loss"].to_numpy()
        assert np.argmin(losses) == 2  # the centre of each IsoFLOP profile is its best


def test_vocabulary_comes_from_the_law(plan):
    for _, r in plan.iterrows():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nv = optimal_vocabulary(r["non_vocab_params"], approach=3, flops=r["budget_flops"]).n_vocab_params
        assert r["vocab_size"] % 64 == 0
        # V = Nv / d_model rounded to 64; Nnv moved a little between the law's call and the final shape.
        assert abs(r["vocab_size"] - nv / r["d_model"]) <= 0.1 * nv / r["d_model"] + 64
    # Larger budgets deserve larger vocabularies (Tao et al. 2024).
    by_budget = plan.groupby("budget_flops")["vocab_size"].median()
    assert by_budget.is_monotonic_increasing


def test_aspect_ratio_rule_without_calibration(plan):
    aspect = plan["d_model"] / plan["n_layers"]
    assert ((aspect > 128 / 1.6) & (aspect < 128 * 1.6)).all()
    assert (plan["d_model"] % 64 == 0).all() and (plan["n_heads"] * 64 == plan["d_model"]).all()


def test_fixed_vocabulary_and_explicit_budgets():
    plan = plan_sweep([3e18, 1e18], vocab_size=32000, size_factors=(0.5, 1, 2))
    assert (plan["vocab_size"] == 32000).all()
    np.testing.assert_allclose(sorted(plan["budget_flops"].unique()), [1e18, 3e18])
    assert len(plan) == 6


def test_calibration_picks_wider_shapes_at_the_same_budget(calibration, plan):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wide = plan_sweep(1e20, calibration=calibration, n_budgets=1)
    np.testing.assert_allclose(wide["flops"], 1e20, rtol=1e-12)
    narrow = plan[plan["budget_flops"] == 1e20]
    # Memory traffic per parameter falls with width: the wall-clock model prefers wider, shallower shapes.
    assert (wide["d_model"].to_numpy() / wide["n_layers"].to_numpy()
            >= narrow["d_model"].to_numpy() / narrow["n_layers"].to_numpy()).all()
    assert wide["predicted_hours"].notna().all()
    assert ((wide["d_model"] / wide["n_layers"]) <= 256).all()


def test_time_budget_rows_fill_their_hours(calibration):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_sweep(hours=24, calibration=calibration, n_budgets=2)
    assert len(plan) == 10 and plan["budget_flops"].isna().all()
    np.testing.assert_allclose(sorted(plan["budget_hours"].unique()), [2.4, 24])
    np.testing.assert_allclose(plan["predicted_hours"], plan["budget_hours"], rtol=0.02)
    for _, rows in plan.groupby("budget_hours"):
        assert np.argmin(rows["predicted_loss"].to_numpy()) in (1, 2, 3)  # the optimum is near the centre


def test_time_budget_accepts_a_calibration_file(calibration, tmp_path):
    path = calibration.save(tmp_path / "cal.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_sweep(hours=1, calibration=str(path), n_budgets=1, size_factors=(1,))
    assert len(plan) == 1 and plan["predicted_hours"].iloc[0] == pytest.approx(1, rel=0.02)


@pytest.mark.parametrize("bad", [0, -1e20, float("nan"), float("inf"), [1e18, -1.0], []])
def test_bad_flops_budget_names_the_value(bad):
    with pytest.raises(ValueError, match="flops"):
        plan_sweep(bad)


def test_bad_input():
    with pytest.raises(ValueError, match="hours must be a positive finite number, got 0"):
        plan_sweep(hours=0, calibration=None)
    with pytest.raises(ValueError, match="sh-scaling calibrate"):
        plan_sweep(hours=24)
    with pytest.raises(ValueError, match="exactly one budget"):
        plan_sweep(1e20, hours=1)
    with pytest.raises(ValueError, match="exactly one budget"):
        plan_sweep()
    with pytest.raises(ValueError, match="size_factors"):
        plan_sweep(1e20, size_factors=(1, 0))
    with pytest.raises(ValueError, match="n_budgets"):
        plan_sweep(1e20, n_budgets=0)
    with pytest.raises(ValueError, match="budget_ratio"):
        plan_sweep(1e20, budget_ratio=1.0)
    with pytest.raises(ValueError, match="aspect_range"):
        plan_sweep(1e20, aspect_range=(100, 10))
    with pytest.raises(ValueError, match="vocab_size"):
        plan_sweep(1e20, vocab_size=0)


def test_enqueue_runs_the_plan_in_a_study(plan):
    study = optuna.create_study()
    n = enqueue(study, plan.head(4), params={"n_layers": "layers", "d_model": "width", "vocab_size": "vocab"})
    assert n == 4
    seen = []

    def objective(trial):
        shape = (trial.suggest_int("layers", 1, 200), trial.suggest_int("width", 64, 32768),
                 trial.suggest_int("vocab", 1000, 10**6))
        seen.append((shape, trial.user_attrs["sh_scaling:plan:steps"]))
        return trial.user_attrs["sh_scaling:plan:predicted_loss"]

    study.optimize(objective, n_trials=4)
    expected = [
        ((int(r.n_layers), int(r.d_model), int(r.vocab_size)), int(r.steps)) for r in plan.head(4).itertuples()
    ]
    assert seen == expected
    assert "sh_scaling:plan:budget_hours" not in study.trials[0].user_attrs  # NaN columns are left out


def test_enqueue_unknown_column():
    study = optuna.create_study()
    with pytest.raises(ValueError, match="unknown plan column.*n_layer\\b"):
        enqueue(study, plan_sweep(1e18, n_budgets=1), params={"n_layer": "L"})


def test_cli_prints_the_plan(capsys):
    rc = main(["plan", "--flops", "1e20", "--budgets", "2", "--sizes", "0.5,1,2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "6 runs, total compute 3.300e+20 FLOPs" in out
    assert out.count("1.00e+20") >= 3


def test_cli_enqueues_into_a_study(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    csv = tmp_path / "plan.csv"
    rc = main(["plan", "--flops", "1e19", "--budgets", "1", "--study-name", "s", "--storage", storage,
               "--csv", str(csv)])
    assert rc == 0
    assert "enqueued 5 trials" in capsys.readouterr().out
    study = optuna.load_study(study_name="s", storage=storage)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 5
    assert csv.read_text().startswith("budget,budget_flops")


def test_cli_errors(capsys, calibration, tmp_path):
    assert main(["plan", "--hours", "24"]) == 2
    assert "sh-scaling calibrate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", "--flops", "0"])
    assert "argument --flops: expected positive numbers, got '0'" in capsys.readouterr().err
    assert main(["plan", "--flops", "1e20", "--study-name", "s"]) == 2
    assert "--storage" in capsys.readouterr().err
    path = calibration.save(tmp_path / "cal.json")
    assert main(["plan", "--hours", "1", "--calibration", str(path), "--budgets", "1", "--sizes", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("1 h ")]
    assert len(rows) == 1 and math.isfinite(float(rows[0].split()[-1]))
