"""A calibration JSON with a field of the wrong type is refused on load, naming the file and the field."""

from __future__ import annotations

import json
import re

import pytest

from sh_scaling.cli import main
from sh_scaling.laws import StepTimeCalibration, TransformerConfig, fit_step_time


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfgs = [
        TransformerConfig(n_layers=L, d_model=d, n_heads=d // 64, vocab_size=32000, seq_len=512, batch_size=8)
        for L, d in [(2, 128), (4, 256), (8, 512), (4, 1024), (12, 768)]
    ]
    seconds = [c.memory_copies_per_step() * 1e-11 + 1e-3 for c in cfgs]
    seconds[0] *= 1.05
    path = fit_step_time(cfgs, seconds).save(tmp_path_factory.mktemp("cal") / "cal.json")
    return json.loads(path.read_text())


def _set(data, dotted, value):
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value


_DELETE = object()

CASES = [
    ("copies.slope", "1e-11", "field 'copies.slope' must be a number, got '1e-11'"),
    ("flops.r2", None, "field 'flops.r2' must be a number, got None"),
    ("copies.intercept", True, "field 'copies.intercept' must be a number, got True"),
    ("copies.r2", _DELETE, "field 'copies.r2' is missing"),
    ("measured_seconds.2", "0.01", "field 'measured_seconds[2]' must be a number, got '0.01'"),
    ("measured_seconds.0", -1.0, "field 'measured_seconds[0]' must be a positive finite number, got -1.0"),
    ("bytes_per_element", "4", "field 'bytes_per_element' must be a number, got '4'"),
    ("param_bytes_per_element", "4", "field 'param_bytes_per_element' must be a number, got '4'"),
    ("configs.1.d_model", "256", "field 'configs[1]': d_model must be a positive integer, got '256'"),
    ("configs.1.n_layers", _DELETE, "field 'configs[1]'"),
    ("configs", {"a": 1}, "field 'configs' must be a list"),
    ("optimizer", "lion", "field 'optimizer' must be one of"),
    ("device", 3, "field 'device' must be a string, got 3"),
    ("metadata", [1], "field 'metadata' must be an object, got [1]"),
    ("measured_seconds", [0.1, 0.2], "field 'measured_seconds' has 2 values for 5 configs"),
]


@pytest.mark.parametrize(("field", "value", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_field_of_the_wrong_type_is_refused_naming_the_file_and_the_field(saved, tmp_path, field, value, message):
    data = json.loads(json.dumps(saved))
    _set(data, field, value)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=re.escape(f"{path}: corrupt step-time calibration: {message}")):
        StepTimeCalibration.load(path)


def test_plan_with_a_string_in_the_calibration_is_a_one_line_error(saved, tmp_path, capsys):
    data = json.loads(json.dumps(saved))
    data["copies"]["slope"] = str(data["copies"]["slope"])
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    assert main(["plan", "--hours", "1", "--calibration", str(path), "--budgets", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sh-scaling plan: error:") and len(err.splitlines()) == 1
    assert str(path) in err and "'copies.slope' must be a number" in err
