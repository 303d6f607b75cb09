"""sh-scaling report: the table, the files, the figures attached for optuna-dashboard, and every bad input."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from test_from_study import replay_into_study

import sh_scaling
from sh_scaling.cli import main
from sh_scaling.cli.report import DASHBOARD_IDS, OUTPUTS
from sh_scaling.curves import Curve, CurveSet, generate_synthetic, load_csv

pytest.importorskip("plotly")
BOOT = ["--bootstrap", "100"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A replayed synthetic sweep of 10 runs in a SQLite storage: (url, study name)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'sweep.db'}"
    # Every fourth evaluation: the same sweep, with a quarter of the writes to SQLite.
    thin = CurveSet([Curve.from_arrays(c.id, c.compute[::4], c.loss[::4], c.meta)
                     for c in generate_synthetic(10, seed=3)])
    replay_into_study(thin, storage=url, study_name="sweep", seed=2)
    return url, "sweep"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def system_attrs(study: optuna.Study) -> dict:
    return study._storage.get_study_system_attrs(study._study_id)


def dashboard_figure(study: optuna.Study, graph_id: str) -> dict:
    """The figure optuna-dashboard shows: the JSON split over the study's system attrs, put back together."""
    prefix = f"dashboard:plot_data:{graph_id}:"
    parts = {int(k[len(prefix):]): v for k, v in system_attrs(study).items() if k.startswith(prefix)}
    return json.loads("".join(parts[i] for i in sorted(parts)))


def test_report_prints_the_table_writes_the_files_and_attaches_the_figures(sweep, tmp_path, capsys):
    url, name = sweep
    out = tmp_path / "report"
    assert main(["report", "--storage", url, "--study", name, "--out", str(out), "--dashboard", *BOOT]) == 0
    text = capsys.readouterr().out
    study = optuna.load_study(study_name=name, storage=url)
    states = [t.state.name for t in study.trials]
    assert f"{states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned" in text
    for row in ("compute spent", "projected exhaustive compute", "saved", "best loss", "law",
                "prediction at 10x the largest compute"):
        assert row in text
    assert "95 % percentile bootstrap over 10 runs" in text
    for name_ in OUTPUTS:
        assert (out / name_).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    spent = sum(max(sh_scaling.pruning.reported_compute(t).values()) for t in study.trials)
    assert summary["compute_spent"] == pytest.approx(spent)
    assert 0 < summary["saved_fraction"] < 1 and summary["best_loss"] == pytest.approx(study.best_value)
    low, high = summary["law"]["intervals"]["gamma"]
    assert low < summary["law"]["params"]["gamma"] < high
    assert summary["prediction"]["low"] < summary["prediction"]["loss"] < summary["prediction"]["high"]
    assert f"gamma = {summary['law']['params']['gamma']:.4g} [{low:.4g}, {high:.4g}]" in (out / "report.md").read_text()
    assert len(load_csv(out / "curves.csv")) == len(study.trials)
    # The figures are stored in the study, where optuna-dashboard reads them.
    curves = dashboard_figure(study, DASHBOARD_IDS["curves"])
    names = [t.get("name") for t in curves["data"]]
    assert "observed frontier" in names and any(str(n).startswith("law's band: 95 % percentile") for n in names)
    assert dashboard_figure(study, DASHBOARD_IDS["decisions"])["data"]
    # A second report replaces the figures rather than adding copies, and keeps the files without --force.
    before = {k for k in system_attrs(study) if k.startswith("dashboard:plot_data:")}
    assert main(["report", "--storage", url, "--study", name, "--dashboard", *BOOT]) == 0
    after = {k for k in system_attrs(optuna.load_study(study_name=name, storage=url))
             if k.startswith("dashboard:plot_data:")}
    assert after == before
    capsys.readouterr()
    assert main(["report", "--storage", url, "--study", name, "--out", str(out)]) == 2
    assert "already holds report.md" in one_line_error(capsys)


def _study(tmp_path, name="s", direction="minimize"):
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    return url, optuna.create_study(storage=url, study_name=name, direction=direction)


def _curve_trial(study, scale=1.0, prune=False, with_compute=True):
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    for step, c in enumerate([1e15, 2e15, 4e15, 8e15]):
        loss = scale * 3.0 * (c / 1e15) ** -0.1
        if with_compute:
            sh_scaling.report(trial, loss, compute=c * scale, step=step, max_compute=1.6e16 * scale)
        else:
            trial.report(loss, step)
    if prune:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, loss)


def test_a_study_without_compute(tmp_path, capsys):
    url, study = _study(tmp_path)
    _curve_trial(study, with_compute=False)
    assert main(["report", "--storage", url, "--study", "s"]) == 2
    err = one_line_error(capsys)
    assert "reported losses but no compute" in err and "sh_scaling.report(trial, loss, compute=...)" in err


def test_a_study_without_any_report(tmp_path, capsys):
    url, study = _study(tmp_path)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert main(["report", "--storage", url, "--study", "s"]) == 2
    assert "no trial in any state reported a loss" in one_line_error(capsys)


def test_a_study_with_one_trial_is_reported_without_an_interval(tmp_path, capsys):
    url, study = _study(tmp_path)
    _curve_trial(study)
    out = tmp_path / "one"
    assert main(["report", "--storage", url, "--study", "s", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no interval: intervals over runs need at least 2 runs, the study has 1" in text
    assert "(no interval: the law has none)" in text and (out / "curves.png").exists()


def test_a_study_with_only_pruned_trials(tmp_path, capsys):
    url, study = _study(tmp_path)
    _curve_trial(study, prune=True)
    _curve_trial(study, scale=2.0, prune=True)
    assert main(["report", "--storage", url, "--study", "s", *BOOT]) == 0
    text = capsys.readouterr().out
    assert "no complete trial; lowest loss observed" in text
    assert "note: every reported trial was pruned" in text


def test_a_maximize_study(tmp_path, capsys):
    url, study = _study(tmp_path, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert main(["report", "--storage", url, "--study", "s"]) == 2
    assert "study 's' maximizes its objective" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sweep.db", "is neither a database URL"),
        ("{tmp}/text.db", "does not open as an Optuna storage"),
        ("sqlite:///{tmp}/missing.db", "no such file"),
        ("sqlite:///{tmp}/text.db", "does not open as an Optuna storage"),
        ("postgresql+psycopg2://nobody@127.0.0.1:1/none", "does not open as an Optuna storage"),
        ("nosuchdriver://host/db", "does not open as an Optuna storage"),
    ],
    ids=["not-a-url", "not-a-journal", "missing-file", "not-a-database", "refused", "unknown-driver"],
)
def test_a_storage_that_does_not_open(tmp_path, capsys, url, message):
    (tmp_path / "text.db").write_text("not a database\n" * 100)
    assert main(["report", "--storage", url.format(tmp=tmp_path), "--study", "s"]) == 2
    err = one_line_error(capsys)
    assert err.startswith("sh-scaling report: error: --storage") and message in err


def test_a_study_name_that_does_not_exist_lists_the_names(tmp_path, capsys):
    url, _ = _study(tmp_path, name="alpha")
    optuna.create_study(storage=url, study_name="beta")
    assert main(["report", "--storage", url, "--study", "gamma"]) == 2
    assert "--study 'gamma': no such study" in (err := one_line_error(capsys)) and "'alpha', 'beta'" in err
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.storages.RDBStorage(empty)
    assert main(["report", "--storage", empty, "--study", "gamma"]) == 2
    assert "it holds no study" in one_line_error(capsys)


def test_curves_csv_round_trips(sweep, tmp_path, capsys):
    url, name = sweep
    out = tmp_path / "csv"
    assert main(["report", "--storage", url, "--study", name, "--out", str(out), *BOOT]) == 0
    frame = pd.read_csv(out / "curves.csv")
    assert {"run_id", "compute", "loss", "trial", "state", "max_compute"} <= set(frame.columns)


# --- sh-scaling simulate on a past study, and a CSV's own column names -------------------------------------------


def test_simulate_replays_a_past_study_with_notes(sweep, capsys):
    url, name = sweep
    study = optuna.load_study(study_name=name, storage=url)
    n_complete = sum(t.state.name == "COMPLETE" for t in study.trials)
    n_pruned = len(study.trials) - n_complete
    assert main(["simulate", "--storage", url, "--study", name, "--repeats", "2", "--budgets", "0.3",
                 "--strategies", "SH", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"{n_pruned} pruned trial(s) left out" in captured.err
    dropped = [k for k in (5, 10, 20) if k > n_complete]
    expected = f"candidate-set sizes {dropped} are above the number of runs ({n_complete})"
    expected += f"; using {n_complete}" if len(dropped) == 3 else " and were dropped"
    assert expected in captured.err
    assert f"{name}: {n_complete} curves" in captured.out
    assert main(["simulate", "--storage", url, "--study", name, "--pruners", "ours,nop", "--repeats", "1",
                 "--quiet"]) == 0
    assert "as trials of Optuna studies" in capsys.readouterr().out


def test_simulate_maps_a_csvs_own_columns_and_drops_sizes_above_the_runs(tmp_path, capsys):
    rows = [(f"r{i}", 1e15 * (i + 1) * k, 2 + (i + 1) * k ** -0.3) for i in range(6) for k in (1, 2, 4, 8, 16)]
    path = tmp_path / "mine.csv"
    pd.DataFrame(rows, columns=["name", "flops", "val_loss"]).to_csv(path, index=False)
    assert main(["simulate", "--curves", str(path), "--run-col", "name", "--compute-col", "flops", "--loss-col",
                 "val_loss", "--repeats", "2", "--budgets", "0.3", "--strategies", "SH", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "candidate-set sizes [10, 20] are above the number of runs (6) and were dropped" in captured.err
    assert "mine.csv: 6 curves" in captured.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compute-col", "loss", "--loss-col", "loss"], "--compute-col and --loss-col both name the column 'loss'"),
        (["--loss-col", "val_loss"], "--loss-col name columns of a CSV file; give the file with --curves"),
        (["--storage", "sqlite:///x.db"], "--storage and --study go together"),
    ],
    ids=["same-column-twice", "mapping-without-csv", "storage-without-study"],
)
def test_simulate_bad_column_and_study_options(args, message, capsys):
    assert main(["simulate", *args, "--quiet"]) == 2
    assert message in one_line_error(capsys)


def test_simulate_a_csv_whose_header_names_a_column_twice(tmp_path, capsys):
    path = tmp_path / "twice.csv"
    path.write_text("run_id,compute,loss,loss\na,1,3.0,2.9\na,2,2.5,2.4\n")
    assert main(["simulate", "--curves", str(path), "--quiet"]) == 2
    assert f"{path}: the header names the column(s) 'loss' more than once" in one_line_error(capsys)


def test_a_journal_file_storage(tmp_path, capsys):
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "sweep.journal"
    study = optuna.create_study(storage=optuna.storages.JournalStorage(JournalFileBackend(str(path))),
                                study_name="j")
    _curve_trial(study)
    _curve_trial(study, scale=2.0)
    assert main(["report", "--storage", str(path), "--study", "j", *BOOT]) == 0
    assert "j (2 trials: 2 complete)" in capsys.readouterr().out
