"""Output paths are checked before the work, and existing files are replaced only with --force."""

from __future__ import annotations

from sh_scaling.cli import main
from sh_scaling.laws import StepTimeCalibration

SIMULATE = ["simulate", "--curves", "synthetic", "--n-curves", "12", "--repeats", "1", "--candidates", "4",
            "--budgets", "0.3", "--strategies", "UA,SH", "--quiet", "--no-plots"]
PLAN = ["plan", "--flops", "1e19", "--budgets", "1", "--sizes", "1"]


def _one_line_error(capsys, command: str) -> str:
    out, err = capsys.readouterr()
    assert out == ""  # nothing ran: no table printed
    err = err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"sh-scaling {command}: error: ")
    return err


def test_simulate_out_that_is_a_file_is_refused_before_simulating(tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("an existing file")
    assert main([*SIMULATE, "--out", str(out)]) == 2
    assert f"--out '{out}' is a file, not a directory" in _one_line_error(capsys, "simulate")
    assert out.read_text() == "an existing file"


def test_simulate_out_under_a_file_is_refused_before_simulating(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main([*SIMULATE, "--out", str(tmp_path / "file" / "results")]) == 2
    assert "is a file, not a directory" in _one_line_error(capsys, "simulate")


def test_simulate_does_not_overwrite_results_without_force(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "summary.json").write_text("last week's results")
    assert main([*SIMULATE, "--out", str(out)]) == 2
    err = _one_line_error(capsys, "simulate")
    assert f"--out '{out}' already holds summary.json; pass --force" in err
    assert (out / "summary.json").read_text() == "last week's results"
    assert main([*SIMULATE, "--out", str(out), "--force"]) == 0
    assert (out / "summary.json").read_text().startswith("{") and (out / "runs.csv").is_file()


def test_plan_csv_is_not_overwritten_without_force(tmp_path, capsys):
    csv = tmp_path / "plan.csv"
    csv.write_text("keep me")
    assert main([*PLAN, "--csv", str(csv)]) == 2
    assert f"--csv '{csv}' already exists; pass --force to overwrite it" in _one_line_error(capsys, "plan")
    assert csv.read_text() == "keep me"
    assert main([*PLAN, "--csv", str(csv), "--force"]) == 0
    assert csv.read_text().startswith("budget,budget_flops")
    capsys.readouterr()
    assert main([*PLAN, "--csv", str(tmp_path)]) == 2
    assert "is a directory; give the name of a file" in _one_line_error(capsys, "plan")


def test_calibrate_out_is_checked_before_timing(tmp_path, capsys):
    out = tmp_path / "cal.json"
    out.write_text("{}")
    assert main(["calibrate", "--quick", "--out", str(out)]) == 2
    assert f"--out '{out}' already exists; pass --force to overwrite it" in _one_line_error(capsys, "calibrate")
    assert out.read_text() == "{}"
    (tmp_path / "file").write_text("x")
    assert main(["calibrate", "--quick", "--out", str(tmp_path / "file" / "cal.json")]) == 2
    assert "is a file, not a directory" in _one_line_error(capsys, "calibrate")


def test_calibrate_force_overwrites(tmp_path, one_torch_thread):
    out = tmp_path / "cal.json"
    out.write_text("last week's calibration")
    assert main(["calibrate", "--quick", "--repeats", "1", "--warmup", "0", "--out", str(out), "--force"]) == 0
    assert StepTimeCalibration.load(out).configs
