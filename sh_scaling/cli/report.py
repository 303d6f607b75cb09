"""``sh-scaling report``: what a finished (or running) sweep found, read from its Optuna storage.

A table (trials by state, compute spent against training every trial to its ``max_compute``, best loss, the
law fitted to the observed frontier with its intervals over runs, and its prediction at ten times the largest
compute), the plots as PNG (matplotlib) and, when plotly is installed, as HTML, the curves as CSV, and
optionally the figures attached to the study for optuna-dashboard.

``--out`` is written completely or not at all: every file is written into a temporary folder beside it and
moved into place only once all of them are written, so a report that fails half-way leaves ``--out`` as it
was.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from sh_scaling.cli._output import check_output_dir, count_at_least, staged_dir
from sh_scaling.curves import CurveSet, from_study
from sh_scaling.laws import ScalingLaw, fit_scaling_law

__all__ = ["register", "open_study", "check_study", "Report", "build_report", "format_table", "markdown_text"]

#: How far past the largest compute of the sweep the law is asked to predict: one decade, the usual next step
#: of a scaling ladder (and far enough for the interval's growth with extrapolation to show).
PREDICT_FACTOR = 10.0
#: Bootstrap replicates of the law (the 2.5 % tails of a 95 % interval rest on 25 replicates each).
N_BOOTSTRAP = 1000
#: Files written into ``--out``; the HTML ones only when plotly is installed.
OUTPUTS = ("report.md", "summary.json", "curves.csv", "curves.png", "curves.html", "decisions.png",
           "decisions.html", "plotly.min.js")
#: The files of ``OUTPUTS`` that plotly writes.
HTML_OUTPUTS = ("curves.html", "decisions.html", "plotly.min.js")
#: Ids of the figures attached to the study: a second report replaces them instead of adding copies.
DASHBOARD_IDS = {"curves": "sh-scaling-curves", "decisions": "sh-scaling-decisions"}
#: Height of optuna-dashboard's cards for user figures (0.21: a fixed 450 px, the overflow clipped).
DASHBOARD_CARD_HEIGHT = 450


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="what a sweep found: compute spent and saved, best loss, the law with intervals, plots",
        description="Read a study from its Optuna storage and report its trials by state, the compute spent "
        "against training every trial to its max_compute, the best loss, the law fitted to the observed "
        "frontier with intervals over runs and its prediction at 10x the largest compute; with --out, the "
        "plots (PNG; HTML too when plotly is installed) and the curves (CSV); with --dashboard, the figures "
        "attached to the study for optuna-dashboard.",
    )
    p.add_argument("--storage", required=True,
                   help="Optuna storage: a database URL (e.g. sqlite:///sweep.db) or a journal file")
    p.add_argument("--study", "--study-name", dest="study", required=True, help="name of the study")
    p.add_argument("--out", default=None, help=f"directory for {', '.join(OUTPUTS)}")
    p.add_argument("--force", action="store_true", help="overwrite those files if --out already holds them")
    p.add_argument("--dashboard", action="store_true",
                   help="attach the curves and decisions figures to the study, for optuna-dashboard")
    p.add_argument("--unit", default="FLOPs", help="unit compute was reported in, for labels (default FLOPs)")
    p.add_argument("--bootstrap", type=count_at_least(0), default=N_BOOTSTRAP,
                   help=f"bootstrap replicates of the law over runs (default {N_BOOTSTRAP}; 0: no intervals)")
    p.set_defaults(func=run)


# --- the storage and the study ---------------------------------------------------------------------------------


def open_study(url: str, name: str) -> optuna.study.Study:
    """The study ``name`` in the storage at ``url``, or a ``ValueError`` saying what is wrong, in one line.

    ``url`` is a database URL (RDB storage) or the path of a journal file (``JournalStorage``, as
    optuna-dashboard accepts). A database is opened without creating tables, so that a report never writes to
    a database that is not an Optuna storage; a SQLite file that does not exist is refused rather than created
    empty.
    """
    parsed = urlparse(url)
    if "://" not in url or not parsed.scheme:
        if not Path(url).is_file():
            raise ValueError(f"--storage {url!r} is neither a database URL (e.g. sqlite:///sweep.db or "
                             "postgresql://user@host/db) nor an existing journal file")
    elif parsed.scheme == "sqlite":
        path = url.split("://", 1)[1][1:]  # sqlite:///relative.db and sqlite:////absolute.db
        if path and path != ":memory:" and not Path(path).is_file():
            raise ValueError(f"--storage {url!r}: no such file {path!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage: optuna.storages.BaseStorage
    try:
        if "://" in url:
            storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        else:
            from optuna.storages.journal import JournalFileBackend

            storage = optuna.storages.JournalStorage(JournalFileBackend(url))
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    except Exception as exc:  # noqa: BLE001 - drivers raise many types; one line says which and why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"--storage {url!r} does not open as an Optuna storage: {type(exc).__name__}: {first}") \
            from None
    names = [s.study_name for s in summaries]
    if name not in names:
        there = f"studies there: {', '.join(repr(n) for n in names)}" if names else "it holds no study"
        raise ValueError(f"--study {name!r}: no such study in {url}; {there}")
    return optuna.load_study(study_name=name, storage=storage)


def check_study(study: optuna.study.Study) -> None:
    """A study sh-scaling can read: one objective, a loss to minimise."""
    if len(study.directions) > 1:
        raise ValueError(f"study {study.study_name!r} has {len(study.directions)} objectives; sh-scaling reads "
                         "single-objective studies of a loss")
    if study.direction != StudyDirection.MINIMIZE:
        raise ValueError(f"study {study.study_name!r} maximizes its objective; sh-scaling reads a loss to "
                         "minimise (a study created with direction='minimize')")


# --- the report ------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What ``sh-scaling report`` prints and writes.

    ``rows`` are ``(quantity, value)`` pairs of the table, ``notes`` what the reader must know to read it
    (missing data, estimates), ``summary`` the same numbers for ``summary.json``.
    """

    study: str
    rows: list[tuple[str, str]]
    notes: list[str]
    summary: dict[str, Any]
    curves: CurveSet
    law: ScalingLaw | None
    predict_at: float | None


def build_report(study: optuna.study.Study, *, unit: str = "FLOPs", n_bootstrap: int = N_BOOTSTRAP) -> Report:
    """The table of a study (see the module). Raises ``ValueError`` for a study that cannot be reported."""
    check_study(study)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        curves = from_study(study, states=None, unit=unit)
    notes += [str(w.message) for w in caught]
    trials = study.get_trials(deepcopy=False)
    by_state = {s: sum(t.state == s for t in trials) for s in TrialState}
    finished = CurveSet([c for c in curves if c.meta["state"] in ("COMPLETE", "PRUNED")], name=curves.name)
    if not len(finished):
        raise ValueError(f"study {study.study_name!r}: no complete or pruned trial reported compute yet")

    spent = curves.exhaustive_compute  # compute of every trial's last report, whatever its state
    projected, unknown = 0.0, []
    for c in curves:
        target = c.meta.get("max_compute")
        if target is None:
            unknown.append(c.id)
            target = c.final_compute
        projected += max(float(target), c.final_compute)
    if unknown:
        notes.append(f"{len(unknown)} trial(s) without a known max_compute (trials {', '.join(unknown[:10])}) "
                     "count at their last compute: the projected exhaustive compute is a lower bound")

    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if complete:
        best = min(complete, key=lambda t: t.value)  # type: ignore[arg-type, return-value]
        best_text = f"{best.value:.6g} (trial {best.number}, complete)"
        best_value: float | None = best.value
    else:
        lowest = min(finished, key=lambda c: c.min_loss)
        best_text = f"no complete trial; lowest loss observed: {lowest.min_loss:.6g} (trial {lowest.id}, pruned)"
        best_value = None
        notes.append("every reported trial was pruned: the law below rests on curves that stopped early")

    law, law_text, law_note = _law(finished, n_bootstrap)
    if law_note:
        notes.append(law_note)
    predict_at = PREDICT_FACTOR * max(c.final_compute for c in finished)
    prediction_text, prediction = _prediction(law, predict_at)

    states = ", ".join(f"{n} {s.name.lower()}" for s, n in by_state.items() if n)
    rows = [
        ("study", f"{study.study_name} ({len(trials)} trials: {states})"),
        ("compute spent", f"{spent:.4g} {unit}"),
        ("projected exhaustive compute", f"{projected:.4g} {unit} (every trial to its max_compute)"),
        ("saved", f"{projected - spent:.4g} {unit} ({100 * (1 - spent / projected):.1f} % of exhaustive)"),
        ("best loss", best_text),
        ("law", law_text),
        (f"prediction at {PREDICT_FACTOR:g}x the largest compute", prediction_text),
    ]
    summary = {
        "study": study.study_name,
        "trials": {s.name: n for s, n in by_state.items()},
        "unit": unit,
        "compute_spent": spent,
        "projected_exhaustive_compute": projected,
        "saved_fraction": 1 - spent / projected,
        "best_loss": best_value,
        "law": None if law is None else {
            "form": law.form,
            "params": law.params,
            "intervals": {k: list(v) for k, v in law.intervals.items()},
            "interval": _interval_name(law) if law.intervals else None,
            "c_min": law.c_min,
            "c_max": law.c_max,
            "caveats": law.caveats(),
        },
        "prediction": prediction,
        "notes": notes,
    }
    return Report(study.study_name, rows, notes, summary, curves, law, predict_at if law is not None else None)


def _interval_name(law: ScalingLaw) -> str:
    over = f"{law.n_runs} runs" if law.resampling == "runs" else f"{law.n_points} frontier points"
    return f"{100 * law.confidence:g} % {law.interval_method} bootstrap over {over}"


def _law(curves: CurveSet, n_bootstrap: int) -> tuple[ScalingLaw | None, str, str]:
    """The law fitted to the observed frontier, its text for the table, and a note on what is missing or why
    its intervals cannot be trusted (:meth:`ScalingLaw.caveats`)."""
    runs = list(curves)
    boot = n_bootstrap if len(runs) >= 2 else 0
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            law = fit_scaling_law(runs, n_bootstrap=boot, seed=0)
    except ValueError as exc:
        return None, f"not fitted: {exc}", ""
    notes = [str(w.message) for w in caught]
    caveats = law.caveats()
    if caveats:
        notes.append("this sweep cannot pin the law: " + "; ".join(caveats))
    params = ", ".join(
        f"{k} = {v:.4g}" + (" [{:.4g}, {:.4g}]".format(*law.intervals[k]) if k in law.intervals else "")
        for k, v in law.params.items()
    )
    formula = "L = a * C^-gamma" if law.form == "power" else "L = E + A * C^-gamma"
    span = f"fitted over C = {law.c_min:.3g} to {law.c_max:.3g}"
    pinned = "; not pinned by this sweep, see the note" if caveats else ""
    if law.intervals:
        return law, f"{formula}: {params} ({_interval_name(law)}; {span}{pinned})", "; ".join(notes)
    why = f"intervals over runs need at least 2 runs, the study has {len(runs)}" if boot == 0 else \
        "every bootstrap refit failed"
    return law, f"{formula}: {params} (no interval: {why}; {span}{pinned})", "; ".join(notes) or f"no interval: {why}"


def _prediction(law: ScalingLaw | None, at: float) -> tuple[str, dict[str, Any] | None]:
    if law is None:
        return "missing: no law", None
    if not law.replicates.size:
        return f"{float(law.predict(at)):.5g} at C = {at:.4g} (no interval: the law has none)", None
    p = law.predict_interval(at)
    widened = p.widened is not None and bool(p.widened[0])
    text = (f"{p.loss[0]:.5g} [{p.low[0]:.5g}, {p.high[0]:.5g}] at C = {at:.4g} "
            f"({100 * p.confidence:g} % {law.interval_method} bootstrap over {law.n_runs} runs"
            + ("; the bootstrap replicates lie on one side of the point estimate, a biased bootstrap: the "
               "interval was widened to reach it" if widened else "") + ")")
    return text, {"compute": at, "loss": float(p.loss[0]), "low": float(p.low[0]), "high": float(p.high[0]),
                  "confidence": p.confidence, "widened": widened}


def format_table(report: Report, markdown: bool = False) -> str:
    """The table as aligned text, or as a Markdown table (for report.md and a README), every cell escaped."""
    if markdown:
        lines = ["| quantity | value |", "| --- | --- |"]
        lines += [f"| {markdown_text(k)} | {markdown_text(v)} |" for k, v in report.rows]
        lines += [""] + [f"- note: {markdown_text(n)}" for n in report.notes]
        return "\n".join(lines).rstrip() + "\n"
    width = max(len(k) for k, _ in report.rows)
    lines = [f"{k:<{width}}  {v}" for k, v in report.rows]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


#: Characters Markdown (CommonMark, GitHub's tables and math) may read as markup. Brackets stay as they are, so
#: that intervals read as intervals: a link needs "](" or a reference definition, and "](" is broken below.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_#|$~])")


def markdown_text(text: str) -> str:
    """``text`` as it reads, in Markdown: markup characters backslash-escaped, HTML as entities, one line.

    A study name such as ``<b>lr</b> $x$ | 2`` or ``[a](b)`` must show as written, not as bold text, math, a
    new table cell or a link.
    """
    one_line = " ".join(str(text).split())
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", one_line).replace("](", "]\\(")
    return html.escape(escaped, quote=False)


# --- the command -----------------------------------------------------------------------------------------------


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that does not import, or a module without a spec
        return False


def _check_extras(out: bool, dashboard: bool) -> None:
    """Every optional package the command cannot do without, checked before any work, with the extra that
    installs it. plotly is optional for ``--out`` (it adds the HTML pages) and needed for ``--dashboard``."""
    needed = []
    if out:
        needed += [("matplotlib", "plot")]
    if dashboard:
        needed += [("plotly", "plotly"), ("optuna_dashboard", "dashboard")]
    missing = sorted({extra for module, extra in needed if not _installed(module)})
    if missing:
        raise ValueError(f"this needs more packages: pip install 'sh_scaling[{','.join(missing)}]'")


def run(args: argparse.Namespace) -> int:
    with_html = _installed("plotly")
    if args.out:  # before the work, which may take a while on a large study
        # Every name, HTML included even without plotly: an earlier report's pages are replaced (removed, without
        # plotly) only with --force.
        check_output_dir(args.out, OUTPUTS, option="--out", force=args.force)
    _check_extras(bool(args.out), args.dashboard)
    study = open_study(args.storage, args.study)
    report = build_report(study, unit=args.unit, n_bootstrap=args.bootstrap)
    print(format_table(report))
    figures: dict[str, Any] = {}
    if (args.out and with_html) or args.dashboard:
        from sh_scaling.visualization import plot_curves, plot_decisions

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a study without decisions gets a figure saying so
            figures["curves"] = plot_curves(report.curves, law=report.law or False, predict_at=report.predict_at)
            figures["decisions"] = plot_decisions(study)
    if args.out:
        _write(Path(args.out), report, study, figures)
    if args.dashboard:
        from optuna_dashboard import save_plotly_graph_object

        for key, fig in figures.items():
            save_plotly_graph_object(study, _for_dashboard_card(fig), graph_object_id=DASHBOARD_IDS[key])
        print(f"attached the curves and decisions figures to study {study.study_name!r}; see them with "
              f"`optuna-dashboard {args.storage}`")
    return 0


def _without(names: tuple[str, ...], left_out: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if n not in left_out)


def _for_dashboard_card(fig: Any) -> Any:
    """A copy of ``fig`` laid out for optuna-dashboard's cards (half the page wide, 450 px high, clipped): a
    legend right of the axes would leave the data a sliver of the card, so it goes below them, off the data."""
    card = type(fig)(fig)
    card.update_layout(
        height=DASHBOARD_CARD_HEIGHT,
        legend=dict(orientation="h", x=0.0, xanchor="left", y=-0.3, yanchor="top", font=dict(size=9)),
        title=dict(font=dict(size=13)),
        margin=dict(l=55, r=15, t=45, b=150),
    )
    return card


def _write(out: Path, report: Report, study: optuna.study.Study, figures: dict[str, Any]) -> None:
    """Every file of ``--out``, or none: written into a temporary folder and moved into ``out`` at the end.

    ``figures`` are the plotly figures (empty without plotly: then no HTML, and a note says so). HTML files an
    earlier report left in ``out`` are removed when this one writes none, so that the folder holds one report.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sh_scaling.visualization import matplotlib as viz_mpl

    written = OUTPUTS if figures else _without(OUTPUTS, HTML_OUTPUTS)
    with staged_dir(out) as folder:
        (folder / "report.md").write_text(
            f"# sh-scaling report: {markdown_text(report.study)}\n\n" + format_table(report, markdown=True)
        )
        (folder / "summary.json").write_text(json.dumps(report.summary, indent=2, default=_json_default))
        report.curves.to_csv(folder / "curves.csv")
        for key, fig in figures.items():
            # plotly.js once beside the pages, not inside each (4.6 MB) nor from a CDN (a report is read offline).
            fig.write_html(folder / f"{key}.html", include_plotlyjs="directory")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pngs = {
                "curves": viz_mpl.plot_curves(report.curves, law=report.law or False, predict_at=report.predict_at),
                "decisions": viz_mpl.plot_decisions(study),
            }
        try:
            for key, fig in pngs.items():
                fig.savefig(folder / f"{key}.png", dpi=130)
        finally:
            for fig in pngs.values():
                plt.close(fig)
    stale = [n for n in HTML_OUTPUTS if n not in written and (out / n).is_file()]
    for name in stale:
        (out / name).unlink()
    print(f"wrote {out}/: {', '.join(written)}")
    if not figures:
        print("note: no HTML pages (curves.html, decisions.html): they need plotly, which is not installed"
              + (f"; removed the earlier report's {', '.join(stale)}" if stale else ""))


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
