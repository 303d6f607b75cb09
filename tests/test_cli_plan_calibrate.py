"""sh-scaling plan and calibrate say what their output means, warn when it cannot be trusted, and refuse options
out of range with one line."""

from __future__ import annotations

import logging

import numpy as np
import optuna
import pytest

from sh_scaling.cli import main
from sh_scaling.cli.calibrate import verdict
from sh_scaling.laws import TransformerConfig, fit_step_time

CONFIGS = [TransformerConfig(n_layers=L, d_model=d, n_heads=d // 32, vocab_size=256, seq_len=32, batch_size=4)
           for L, d in [(2, 32), (2, 64), (4, 32), (1, 32), (2, 128), (4, 64), (1, 64), (3, 96)]]


@pytest.fixture(scope="module")
def poor(tmp_path_factory):
    """A calibration as `calibrate --quick` makes on a busy machine: step times that neither proxy explains,
    and long (0.2-2 s for models of a few thousand parameters)."""
    seconds = np.random.default_rng(0).uniform(0.2, 2.0, len(CONFIGS))
    cal = fit_step_time(CONFIGS, list(seconds))
    assert cal.copies.r2 < 0.5 and cal.flops.r2 < 0.5
    return cal, cal.save(tmp_path_factory.mktemp("cal") / "poor.json")


def test_calibrate_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["calibrate", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":func:" not in text
    assert "Time training steps of small transformers on this machine" in text


def test_neither_proxy_is_named_the_better_predictor_when_both_predict_poorly(poor):
    cal, _ = poor
    assert verdict(cal).startswith("neither memory copies nor FLOPs predicts step time well on this machine")
    good = fit_step_time(CONFIGS, [c.memory_copies_per_step() * 1e-11 + 1e-3 for c in CONFIGS])
    assert verdict(good) == "better predictor of step time here: memory copies"


def test_plan_explains_its_columns(capsys):
    assert main(["plan", "--flops", "1e20", "--budgets", "1"]) == 0
    out = capsys.readouterr().out
    assert "L = layers; d = width (d_model); H = attention heads" in out and "V = vocabulary size" in out
    assert "warning" not in out


def test_plan_warns_of_runs_too_short_to_train_and_of_a_poor_calibration(poor, capsys):
    _, path = poor
    assert main(["plan", "--hours", "0.01", "--calibration", str(path), "--budgets", "1"]) == 0
    out = capsys.readouterr().out
    assert "warning: 5 of the 5 planned runs train for fewer than 100 steps" in out
    assert "warning: 5 of the 5 planned runs are predicted to take over 1.5 times their time budget" in out
    assert "warning: the calibration predicts step time poorly (R^2 " in out


def test_plan_enqueues_without_announcing_a_study_in_memory(tmp_path, capsys):
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        storage = f"sqlite:///{tmp_path / 'sweep.db'}"
        assert main(["plan", "--flops", "1e19", "--budgets", "1", "--study-name", "s", "--storage", storage]) == 0
    finally:
        optuna.logging.set_verbosity(verbosity)
        logger.removeHandler(handler)
    assert "enqueued 5 trials" in capsys.readouterr().out
    assert not [m for m in records if "in memory" in m], records
    assert optuna.logging.get_verbosity() == verbosity


@pytest.mark.parametrize(
    "args, message",
    [
        (["plan", "--flops", "0"], "argument --flops: expected positive numbers, got '0'"),
        (["plan", "--hours", "1,-2"], "argument --hours: expected positive numbers, got '1,-2'"),
        (["plan", "--flops", "1e20", "--sizes", "0.5,0"], "argument --sizes: expected positive numbers"),
        (["plan", "--flops", "1e20", "--budgets", "0"], "argument --budgets: must be at least 1, got 0"),
        (["plan", "--flops", "1e20", "--budget-ratio", "1"], "argument --budget-ratio: must be in (1, inf), got 1"),
        (["plan", "--flops", "1e20", "--budget-ratio", "nan"], "argument --budget-ratio: must be in (1, inf)"),
        (["plan", "--flops", "1e20", "--seq-len", "0"], "argument --seq-len: must be at least 1, got 0"),
        (["plan", "--flops", "1e20", "--batch-size", "-4"], "argument --batch-size: must be at least 1, got -4"),
        (["plan", "--flops", "1e20", "--head-dim", "0"], "argument --head-dim: must be at least 1"),
        (["plan", "--flops", "1e20", "--vocab-size", "0"], "argument --vocab-size: must be at least 1"),
        (["plan", "--flops", "1e20", "--aspect-ratio", "0"], "argument --aspect-ratio: must be in (0, inf), got 0"),
        (["plan", "--flops", "1e20", "--budgets", "2.5"], "argument --budgets: expected a whole number, got '2.5'"),
        (["calibrate", "--threads", "0"], "argument --threads: must be at least 1, got 0"),
        (["calibrate", "--warmup", "-1"], "argument --warmup: must be at least 0, got -1"),
        (["calibrate", "--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
        (["report", "--storage", "x", "--study", "s", "--bootstrap", "-5"],
         "argument --bootstrap: must be at least 0, got -5"),
    ],
)
def test_options_out_of_range_are_refused_in_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"sh-scaling {args[0]}: error: ") and message in err[-1], err
