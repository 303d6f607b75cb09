"""Wall-clock loss model: step-time fits, JSON round trip, time-budget loss and the wider-vs-deeper table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sh_scaling.constants import EPOCH_2024, HOFFMANN_2022
from sh_scaling.laws import (
    ProxyFit,
    StepTimeCalibration,
    TransformerConfig,
    chinchilla_loss,
    fit_step_time,
    time_budget_loss,
    tokens_in_time,
    wider_or_deeper,
)


def _family() -> list[TransformerConfig]:
    out = []
    for L, d, S, B in [(2, 64, 64, 4), (4, 64, 64, 4), (2, 128, 64, 4), (2, 64, 128, 4), (2, 64, 64, 8),
                       (6, 128, 128, 2), (1, 256, 32, 8), (8, 32, 256, 2)]:
        out.append(TransformerConfig(n_layers=L, d_model=d, n_heads=4, vocab_size=512, seq_len=S, batch_size=B))
    return out


def _copies_calibration(a: float = 2e-11, b: float = 1e-3, noise: float = 0.0) -> StepTimeCalibration:
    cfgs = _family()
    t = np.array([a * c.memory_copies_per_step() + b for c in cfgs])
    t *= 1 + noise * np.random.default_rng(0).standard_normal(len(t))
    return fit_step_time(cfgs, t, device="synthetic")


def test_exact_copies_times_recovered_and_copies_win() -> None:
    cal = _copies_calibration()
    assert cal.copies.slope == pytest.approx(2e-11, rel=1e-8)
    assert cal.copies.intercept == pytest.approx(1e-3, rel=1e-6)
    assert cal.copies.r2 == pytest.approx(1.0)
    assert cal.flops.r2 < 0.999
    assert cal.best_proxy == "copies"
    cfg = _family()[3]
    assert cal.predict_step_time(cfg) == pytest.approx(2e-11 * cfg.memory_copies_per_step() + 1e-3)


def test_flops_times_make_flops_win() -> None:
    cfgs = _family()
    t = [1e-12 * c.training_flops_per_step() + 5e-4 for c in cfgs]
    cal = fit_step_time(cfgs, t)
    assert cal.flops.r2 == pytest.approx(1.0)
    assert cal.best_proxy == "flops"


def test_r2_matches_numpy_definition() -> None:
    cal = _copies_calibration(noise=0.1)
    x = np.array([c.memory_copies_per_step() for c in cal.configs])
    y = np.array(cal.measured_seconds)
    pred = cal.copies.slope * x + cal.copies.intercept
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert cal.copies.r2 == pytest.approx(r2)
    assert 0 < cal.copies.r2 < 1


def test_json_round_trip(tmp_path) -> None:
    cal = _copies_calibration(noise=0.05)
    cal.param_bytes_per_element = 4.0
    cal.bytes_per_element = 2.0
    path = cal.save(tmp_path / "cal.json")
    back = StepTimeCalibration.load(path)
    assert back.copies == cal.copies and back.flops == cal.flops
    assert back.configs == cal.configs
    assert back.measured_seconds == pytest.approx(cal.measured_seconds)
    assert back.device == "synthetic" and back.param_bytes_per_element == 4.0 and back.bytes_per_element == 2.0
    assert json.loads(path.read_text())["format_version"] == 1


def test_load_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="sh-scaling calibrate"):
        StepTimeCalibration.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        StepTimeCalibration.load(bad)
    data = _copies_calibration().to_dict()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        StepTimeCalibration.load(other)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="format"):
        StepTimeCalibration.load(wrong)
    missing = dict(data)
    del missing["copies"]
    trunc = tmp_path / "trunc.json"
    trunc.write_text(json.dumps(missing))
    with pytest.raises(ValueError, match="corrupt"):
        StepTimeCalibration.load(trunc)


def test_fit_validation() -> None:
    cfgs = _family()
    with pytest.raises(ValueError, match="length"):
        fit_step_time(cfgs, [1.0] * 3)
    with pytest.raises(ValueError, match="at least 3"):
        fit_step_time(cfgs[:2], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        fit_step_time(cfgs[:3], [1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="all equal"):
        fit_step_time(cfgs[:3], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="TransformerConfig"):
        fit_step_time([1, 2, 3], [1.0, 2.0, 3.0])


def test_time_budget_loss_is_chinchilla_at_tokens_in_time() -> None:
    cal = _copies_calibration()
    cfg = _family()[0]
    step = cal.predict_step_time(cfg)
    tokens = tokens_in_time(3600.0, cfg, cal)
    assert tokens == pytest.approx(3600.0 * cfg.tokens_per_step / step)
    assert time_budget_loss(3600.0, cfg, cal) == pytest.approx(chinchilla_loss(cfg.n_params, tokens))
    assert time_budget_loss(3600.0, cfg, cal, EPOCH_2024) == pytest.approx(
        chinchilla_loss(cfg.n_params, tokens, EPOCH_2024)
    )
    assert time_budget_loss(7200.0, cfg, cal) < time_budget_loss(3600.0, cfg, cal, HOFFMANN_2022)


def test_time_budget_without_calibration_says_how_to_calibrate() -> None:
    with pytest.raises(ValueError, match="sh-scaling calibrate"):
        time_budget_loss(3600.0, _family()[0], None)
    with pytest.raises(ValueError, match="time_budget"):
        tokens_in_time(-1.0, _family()[0], _copies_calibration())


def test_non_positive_predicted_step_time_is_an_error() -> None:
    cal = _copies_calibration()
    # A large negative intercept (extrapolating a line fitted on big models) gives small models negative time.
    cal.copies = ProxyFit(slope=cal.copies.slope, intercept=-1.0, r2=cal.copies.r2)
    with pytest.raises(ValueError, match="outside the calibrated range"):
        time_budget_loss(10.0, _family()[0], cal)


def test_wider_rather_than_deeper_under_memory_copies() -> None:
    cal = _copies_calibration()
    table = wider_or_deeper(3600.0, 50e6, cal, vocab_size=8192, seq_len=512, batch_size=8)
    assert len(table) >= 5
    assert np.allclose(table["non_vocab_params"], 50e6, rtol=1e-3)
    # Step time under the copies model grows with depth at fixed Nnv, so the shallowest (widest) shape wins.
    assert np.all(np.diff(table["step_s_copies"]) > 0)
    winner = table.loc[table["best_copies"]].iloc[0]
    assert winner["n_layers"] == table["n_layers"].min()
    assert winner["aspect_ratio"] == table["aspect_ratio"].max()
    assert table["best_flops"].sum() >= 1


def test_wider_or_deeper_validation() -> None:
    cal = _copies_calibration()
    with pytest.raises(ValueError, match="sh-scaling calibrate"):
        wider_or_deeper(3600.0, 50e6, None)
    with pytest.raises(ValueError, match="no depth"):
        wider_or_deeper(3600.0, 1e3, cal, n_layers=(48,))
    with pytest.raises(ValueError, match="time_budget"):
        wider_or_deeper(0.0, 50e6, cal)
