"""Calibration on real hardware: time tiny PyTorch transformers on the CPU (--quick) and fit both proxies."""

from __future__ import annotations

import json

import pytest

from sh_scaling.cli import main
from sh_scaling.laws import StepTimeCalibration, calibrate, calibration_configs, time_training_step

torch = pytest.importorskip("torch")


def test_families_vary_every_dimension() -> None:
    for preset in ("quick", "cpu", "cuda"):
        cfgs = calibration_configs(preset)
        assert len(cfgs) >= 12
        for attr in ("n_layers", "d_model", "n_heads", "seq_len", "batch_size", "vocab_size"):
            assert len({getattr(c, attr) for c in cfgs}) >= 3, (preset, attr)
    with pytest.raises(ValueError, match="preset"):
        calibration_configs("tpu")


def test_time_training_step_is_positive_and_model_matches_the_count() -> None:
    from sh_scaling.laws._calibration import _build_model

    cfg = calibration_configs("quick")[0]
    assert time_training_step(cfg, n_warmup=1, n_repeats=2) > 0
    model = _build_model(cfg, torch)
    weights = {id(p): p for p in model.parameters()}.values()  # tied weights once
    matrices = sum(p.numel() for p in weights if p.ndim == 2)
    # The count leaves out biases, layer norms and positional embeddings (Kaplan et al. 2020).
    assert matrices == cfg.n_params + cfg.seq_len * cfg.d_model
    with pytest.raises(ValueError, match="n_repeats"):
        time_training_step(cfg, n_repeats=0)
    with pytest.raises(ValueError, match="dtype"):
        time_training_step(cfg, dtype="float8")


def test_quick_calibration_fits_both_proxies() -> None:
    seen = []
    cal = calibrate(quick=True, n_repeats=2, progress=lambda i, c, s: seen.append((i, s)))
    assert len(seen) == len(cal.configs) >= 12
    assert all(s > 0 for s in cal.measured_seconds)
    for fit in (cal.copies, cal.flops):
        assert fit.r2 <= 1.0
    assert cal.best_proxy in ("copies", "flops")
    assert "CPU" in cal.device and cal.metadata["quick"] is True


def test_cli_quick_writes_json_and_prints_table(tmp_path, capsys) -> None:
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--quick", "--repeats", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "R^2 memory copies" in text and "R^2 FLOPs" in text
    # Quick timings on a busy machine may predict nothing: the verdict then says so instead of naming a winner.
    assert "better predictor" in text or "neither memory copies nor FLOPs predicts step time well" in text
    assert len([ln for ln in text.splitlines() if ln[:2].strip().isdigit()]) >= 12
    cal = StepTimeCalibration.load(out)
    assert len(cal.configs) >= 12
    assert json.loads(out.read_text())["format"] == "sh_scaling.step_time_calibration"


def test_cuda_without_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["calibrate", "--quick", "--device", "cuda"]) == 2
