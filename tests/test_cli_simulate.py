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
    # SH+oracle is always replayed: the share of the oracle's gain is measured against it.
    assert len(runs) == 2 * 2 * 4 and set(runs.strategy) == {"UA", "SH", "SH+PL", "SH+oracle"}
    meta = json.loads((out / "summary.json").read_text())
    assert meta["repeats"] == 2 and meta["carry_over"] is False and len(meta["summary"]) == 8
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


def _crossing_csv(path, n=10):
    """Curves that cross: larger models start higher and end lower, so an oracle gains over SH."""
    c = np.geomspace(1, 1000, 30)
    rng = np.random.default_rng(0)
    frame = pd.concat([pd.DataFrame({"run_id": f"r{i}", "compute": c,
                                     "loss": (2 - 0.1 * i + (1 + 0.8 * i) * c ** -0.5)
                                     * np.exp(rng.normal(0, 0.003, c.size))}) for i in range(n)])
    frame.to_csv(path, index=False)
    return path


def test_simulate_prints_the_share_of_the_oracle_gain_beside_ri(tmp_path, capsys):
    path = _crossing_csv(tmp_path / "crossing.csv")
    out = tmp_path / "share"
    assert main(["simulate", "--curves", str(path), "--repeats", "4", "--candidates", "4,8", "--budgets", "0.1",
                 "--strategies", "UA,SH+PL", "--out", str(out), "--quiet", "--no-plots"]) == 0
    text = capsys.readouterr().out
    ri_at = text.index("Relative improvement of the best loss over SH")
    share_at = text.index("Share of the oracle's gain reached: mean RI / mean RI of SH+oracle")
    assert ri_at < share_at < text.index("Regret vs exhaustive best")
    runs = pd.read_csv(out / "runs.csv")
    summary = pd.read_csv(out / "summary.csv").set_index(["n_candidates", "strategy"])
    table = text[share_at:text.index("Regret vs exhaustive best")]
    printed = 0
    for k in (4, 8):
        ri = runs[runs.n_candidates == k].pivot_table(index="repeat", columns="strategy", values="ri_vs_sh")
        for name in ("UA", "SH+PL"):
            share = summary.at[(k, name), "oracle_share"]
            if ri["SH+oracle"].mean() < 0.005:
                assert np.isnan(share)
                continue
            assert share == pytest.approx(ri[name].mean() / ri["SH+oracle"].mean())
            lo, hi = summary.at[(k, name), "oracle_share_lo"], summary.at[(k, name), "oracle_share_hi"]
            assert f"{share:+.2f} [{lo:+.2f}, {hi:+.2f}]" in table
            printed += 1
    assert printed >= 2  # the crossing curves leave the oracle a gain to share
    # The references are no columns of the share table: SH shares nothing and the oracle all.
    header = table.splitlines()[1]
    assert "UA" in header and "SH+PL" in header and "SH+oracle" not in header


def test_simulate_leaves_the_share_out_where_the_oracle_gains_too_little(tmp_path, capsys):
    # Curves that never cross: SH keeps the best, the oracle gains nothing, and there is no gain to share.
    c = np.geomspace(1, 100, 10)
    frame = pd.concat([pd.DataFrame({"run_id": f"r{i}", "compute": c, "loss": 2 + 0.1 * i + c ** -0.3})
                       for i in range(6)])
    frame.to_csv(tmp_path / "parallel.csv", index=False)
    assert main(["simulate", "--curves", str(tmp_path / "parallel.csv"), "--repeats", "2", "--candidates", "4",
                 "--budgets", "0.3", "--strategies", "SH,SH+PL", "--quiet"]) == 0
    text = capsys.readouterr().out
    table = text[text.index("Share of the oracle's gain"):text.index("Regret vs exhaustive best")]
    row = [line for line in table.splitlines() if line.lstrip().startswith("4")][0]
    assert row.split()[-1] == "-"


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


def test_simulate_replays_on_many_workers_and_prints_makespan(tmp_path, capsys):
    out = tmp_path / "parallel"
    assert main(["simulate", "--curves", "synthetic", "--n-curves", "8", "--pruners", "sha,nop", "--repeats", "2",
                 "--workers", "3", "--out", str(out), "--quiet", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "on 3 workers" in text and "makespan_frac" in text and "least makespan_frac" in text
    runs = pd.read_csv(out / "runs.csv")
    assert (runs.n_workers == 3).all() and (runs.groupby(["pruner", "seed"]).start_time.min() == 0).all()
    summary = pd.read_csv(out / "summary.csv").set_index("pruner")
    assert summary.at["nop", "makespan_frac"] == pytest.approx(1.0) and summary.at["sha", "makespan_frac"] < 1
    meta = json.loads((out / "summary.json").read_text())
    assert meta["workers"] == 3 and 0 < meta["clairvoyant_makespan_frac"] <= 1


@pytest.mark.parametrize("argv, message", [
    (["--budgets", "2"], "--budgets 2: each budget is a fraction of exhaustive compute, in (0, 1]"),
    (["--budgets", "0.1,0"], "--budgets 0: each budget"),
    (["--budgets", ","], "--budgets '': give at least one value"),
    (["--candidates", "0,5"], "--candidates 0: each candidate-set size must be >= 1"),
    (["--n-curves", "0"], "--n-curves 0: must be >= 1"),
    (["--repeats", "0"], "--repeats 0: must be >= 1"),
    (["--pruners", "nop", "--workers", "0"], "--workers 0: must be >= 1"),
    (["--workers", "4"], "--workers 4: applies to replays under --pruners"),
    (["--seed", "-1"], "--seed -1: must be >= 0"),
    (["--reduction-factor", "1"], "--reduction-factor 1: must be > 1"),
    (["--jobs", "0"], "--jobs 0: must be >= 1, or -1 for all cores"),
])
def test_simulate_rejects_values_out_of_range_in_one_line(argv, message, tmp_path, capsys):
    assert main(["simulate", "--quiet", "--out", str(tmp_path / "never"), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"sh-scaling simulate: error: {message}") and captured.err.count("\n") == 1
    assert not (tmp_path / "never").exists()


def test_simulate_help_shows_every_default(capsys):
    from sh_scaling.cli import build_parser

    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default white)" in text and "--seed SEED seed, >= 0" in text and "(default 0)" in text
    parser = build_parser()
    simulate = parser._subparsers._group_actions[0].choices["simulate"]
    for action in simulate._actions:
        if action.option_strings and action.nargs != 0:  # every option that takes a value
            assert "default" in action.help, action.option_strings


def test_simulate_takes_strategy_settings_and_replan(tmp_path, capsys):
    out = tmp_path / "spec"
    grid = ["--curves", "synthetic", "--n-curves", "20", "--repeats", "3", "--candidates", "4", "--budgets", "0.3"]
    assert main(["simulate", *grid, "--strategies", "SH+FA,SH+FA:unseen=last:few=stage", "--replan", "--out",
                 str(out), "--quiet", "--no-plots"]) == 0
    assert "SH+FA:unseen=last:few=stage" in capsys.readouterr().out
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.strategy) == {"SH", "SH+oracle", "SH+FA", "SH+FA:unseen=last:few=stage"}
    assert json.loads((out / "summary.json").read_text())["replan"] is True
    # Replanned, SH and SH+FA spend what runs that reached their end leave, which the planned shares do not.
    assert main(["simulate", *grid, "--strategies", "SH+FA", "--out", str(tmp_path / "plain"), "--quiet",
                 "--no-plots"]) == 0
    plain = pd.read_csv(tmp_path / "plain" / "runs.csv").set_index(["strategy", "repeat"]).savings
    replanned = runs.set_index(["strategy", "repeat"]).savings
    assert (replanned.loc[["SH", "SH+FA"]] <= plain.loc[["SH", "SH+FA"]] + 1e-12).all()
    assert (replanned.loc[["SH", "SH+FA"]] < plain.loc[["SH", "SH+FA"]]).any()


@pytest.mark.parametrize("spec, message", [
    ("SH+FA:few=bogus", "strategy 'SH+FA:few=bogus': few='bogus'; choose one of ['last', 'median', 'slope', 'stage']"),
    ("SH+FA:unseen=first", "unseen='first'; choose one of ['last', 'median', 'prior', 'reach']"),
    ("SH+FA:keep", "'keep' is not a setting; write KEY=VALUE with KEY one of ['few', 'unseen']"),
    ("SH:few=stage", "few='stage' stands in for forecasts; ranking 'observed' has none"),
])
def test_simulate_refuses_a_bad_strategy_setting(spec, message, capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--strategies", f"SH,{spec}"])
    assert message in capsys.readouterr().err


def test_simulate_refuses_replan_with_carry_over(tmp_path, capsys):
    assert main(["simulate", "--quiet", "--replan", "--carry-over", "--out", str(tmp_path / "never")]) == 2
    assert capsys.readouterr().err == ("sh-scaling simulate: error: --replan and --carry-over are two ways to spend "
                                       "what finished curves leave; choose one\n")
    assert not (tmp_path / "never").exists()
