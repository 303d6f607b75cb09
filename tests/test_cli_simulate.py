import json

import numpy as np
import pandas as pd
import pytest

from sh_scaling.cli import main


def test_simulate_synthetic_writes_tables_and_plots(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", "--curves", "synthetic", "--n-curves", "20", "--repeats", "2", "--candidates", "4",
               "--budgets", "0.1,0.3", "--strategies", "UA,SH,SH+PL", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Relative improvement of the best loss over SH" in text and "SH+PL" in text
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * 2 * 3 and set(runs.strategy) == {"UA", "SH", "SH+PL"}
    meta = json.loads((out / "summary.json").read_text())
    assert meta["repeats"] == 2 and meta["carry_over"] is False and len(meta["summary"]) == 6
    assert meta["keep_unseen"] is False
    assert (out / "ri_by_budget.png").stat().st_size > 0 and (out / "frontiers.png").stat().st_size > 0
    assert main(["simulate", "--curves", "synthetic", "--n-curves", "8", "--repeats", "1", "--candidates", "4",
                 "--budgets", "0.1", "--strategies", "SH", "--keep-unseen", "--out", str(tmp_path / "k"),
                 "--quiet", "--no-plots"]) == 0
    assert json.loads((tmp_path / "k" / "summary.json").read_text())["keep_unseen"] is True


def test_simulate_routing_and_csv(routing_csv, tmp_path, capsys):
    assert main(["simulate", "--curves", "routing", "--routing-path", str(routing_csv), "--repeats", "2",
                 "--candidates", "5", "--budgets", "0.3", "--strategies", "SH,SH+FA", "--quiet"]) == 0
    assert "routing" in capsys.readouterr().out
    c = np.geomspace(1, 100, 10)
    frame = pd.concat([pd.DataFrame({"run_id": f"r{i}", "compute": c * (i + 1), "loss": 2 + (i + 1) * c ** -0.3})
                       for i in range(6)])
    path = tmp_path / "sweep.csv"
    frame.to_csv(path, index=False)
    assert main(["simulate", "--curves", str(path), "--repeats", "2", "--candidates", "3", "--budgets", "0.3",
                 "--strategies", "UA,SH", "--quiet"]) == 0


def test_simulate_bad_arguments(capsys):
    assert main(["simulate", "--curves", "nowhere.csv", "--quiet"]) == 2
    assert "neither 'synthetic', 'routing' nor an existing file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--strategies", "SH,XYZ"])
    assert "unknown strategies" in capsys.readouterr().err


def test_simulate_replays_real_optuna_studies_under_pruners(tmp_path, capsys):
    out = tmp_path / "replay"
    assert main(["simulate", "--curves", "synthetic", "--n-curves", "10", "--pruners", "ours,sha,nop",
                 "--repeats", "2", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "as trials of Optuna studies" in text and "ours" in text and "sha" in text
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.pruner) == {"ours", "sha", "nop"} and len(runs) == 3 * 2 * 10
    records = runs[runs.pruner == "ours"].rungs.map(json.loads)  # decision records, as JSON text
    assert records.map(len).sum() > 0 and all(r["rule"] for rs in records for r in rs)
    summary = pd.read_csv(out / "summary.csv").set_index("pruner")
    assert summary.at["nop", "compute_frac"] == pytest.approx(1.0)
    assert (out / "tradeoff.png").stat().st_size > 0
    meta = json.loads((out / "summary.json").read_text())
    assert meta["pruners"] == ["ours", "sha", "nop"] and meta["seeds"] == [0, 1]
    assert 0 < meta["hindsight_compute_frac"] <= meta["clairvoyant_compute_frac"] <= 1
    assert "least compute_frac for zero regret" in text
    with pytest.raises(SystemExit):
        main(["simulate", "--pruners", "ours,bogus"])
    assert "unknown pruners" in capsys.readouterr().err
