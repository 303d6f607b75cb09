"""sh-scaling report --out: written completely or not at all, user strings shown as written, matplotlib enough."""

from __future__ import annotations

import io
import json
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pytest  # noqa: E402

import sh_scaling  # noqa: E402
import sh_scaling.visualization.matplotlib as viz_mpl  # noqa: E402
from sh_scaling.cli import main  # noqa: E402
from sh_scaling.cli.report import HTML_OUTPUTS, OUTPUTS, markdown_text  # noqa: E402
from sh_scaling.curves import Curve  # noqa: E402
from sh_scaling.laws import fit_scaling_law  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
#: Not valid mathtext (matplotlib raised on it), HTML markup, and a Markdown table's cell separator.
NAME = r"<b>lr</b> $\frac{$ sweep | 2"
BOOT = ["--bootstrap", "40"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Three trials, one below the others everywhere, in SQLite: (url, study name)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 's.db'}"
    study = optuna.create_study(study_name=NAME, storage=url)
    for i in range(3):
        t = study.ask()
        for k in range(1, 6):
            sh_scaling.report(t, 3 + (i + 1) / k, compute=10.0 * k, max_compute=50.0)
        study.tell(t, 3.0 + i)
    return url, NAME


def report(url: str, name: str, out, *extra: str) -> int:
    return main(["report", "--storage", url, "--study", name, "--out", str(out), *BOOT, *extra])


def test_a_study_name_that_is_no_mathtext_nor_html_nor_markdown_is_shown_as_written(small, tmp_path, capsys):
    url, name = small
    out = tmp_path / "rep"
    assert report(url, name, out) == 0, capsys.readouterr().err
    assert (out / "curves.png").stat().st_size > 0 and (out / "decisions.png").stat().st_size > 0
    md = (out / "report.md").read_text()
    assert md.splitlines()[0] == r"# sh-scaling report: &lt;b&gt;lr&lt;/b&gt; \$\\frac{\$ sweep \| 2"
    assert "<b>" not in md
    # Every row of the table has its two cells: the name's "|" does not open a third.
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows and all(line.replace(r"\|", "").count("|") == 3 for line in rows)


def test_markdown_text_escapes_markup_and_keeps_one_line():
    assert markdown_text("a_b *c* [d](e) `f` #g ~h~ $i$ <j> & k\nl") == (
        r"a\_b \*c\* [d]\(e) \`f\` \#g \~h\~ \$i\$ &lt;j&gt; &amp; k l"
    )


def test_plot_titles_escape_the_study_name(small):
    url, name = small
    study = optuna.load_study(study_name=name, storage=url)
    with pytest.warns(UserWarning, match="no pruning decision"):
        fig = viz_mpl.plot_decisions(study)
    assert fig._suptitle.get_text().startswith(r"<b>lr</b> \$\frac{\$ sweep | 2")
    fig.savefig(io.BytesIO(), format="png")  # drawing the title raised on the mathtext
    plt.close(fig)
    plotly = pytest.importorskip("plotly")  # noqa: F841
    import sh_scaling.visualization as viz

    with pytest.warns(UserWarning, match="no pruning decision"):
        title = viz.plot_decisions(study).layout.title.text
    assert title.startswith(r"&lt;b&gt;lr&lt;/b&gt; $\frac{$ sweep | 2")


def test_a_report_that_fails_half_way_leaves_out_as_it_was(small, tmp_path, capsys, monkeypatch):
    url, name = small

    def broken(*args, **kwargs):
        raise ValueError("drawing failed")

    monkeypatch.setattr(viz_mpl, "plot_decisions", broken)
    new = tmp_path / "new" / "rep"
    assert report(url, name, new) == 2
    assert "drawing failed" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    # Over an earlier report (--force): that report stays whole, and no staging folder is left beside it.
    old = tmp_path / "old"
    old.mkdir()
    for n in OUTPUTS:
        (old / n).write_text("earlier")
    assert report(url, name, old, "--force") == 2
    assert sorted(p.name for p in old.iterdir()) == sorted(OUTPUTS)
    assert all((old / n).read_text() == "earlier" for n in OUTPUTS)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_matplotlib_is_enough_for_a_report_and_plotly_only_adds_html(small, tmp_path, capsys, monkeypatch):
    url, name = small
    monkeypatch.setitem(sys.modules, "plotly", None)  # as if not installed
    out = tmp_path / "rep"
    out.mkdir()
    (out / "curves.html").write_text("an earlier report's")
    assert report(url, name, out, "--force") == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(n for n in OUTPUTS if n not in HTML_OUTPUTS)
    assert "note: no HTML pages (curves.html, decisions.html): they need plotly, which is not installed" in text
    assert "removed the earlier report's curves.html" in text and "pip install" not in text
    # Without --force an earlier report's page is kept, and the report refused.
    (out / "curves.html").write_text("an earlier report's")
    for n in written:
        (out / n).unlink()
    assert report(url, name, out) == 2
    assert "already holds curves.html; pass --force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["curves.html"]
    # --dashboard shows plotly figures: there it is needed, and the message says how to install it.
    assert main(["report", "--storage", url, "--study", name, "--dashboard", *BOOT]) == 2
    assert "pip install 'sh_scaling[" in capsys.readouterr().err


def test_the_report_says_the_sweep_cannot_pin_its_law(small, tmp_path, capsys):
    url, name = small
    out = tmp_path / "rep"
    assert report(url, name, out) == 0
    text = capsys.readouterr().out
    assert "not pinned by this sweep, see the note" in text
    assert "note: this sweep cannot pin the law: " in text and "only 1 of its 3 runs make the frontier" in text
    summary = json.loads((out / "summary.json").read_text())
    assert any("only 1 of its 3 runs" in c for c in summary["law"]["caveats"])
    low, high = summary["prediction"]["low"], summary["prediction"]["high"]
    assert low <= summary["prediction"]["loss"] <= high


def test_an_interval_that_ends_at_the_prediction_draws_without_a_negative_error_bar():
    # One run under the others everywhere: the prediction's lower bound is the prediction itself, which came back
    # 1e-16 above it and made matplotlib refuse the error bar ("'yerr' must not contain negative values").
    c = np.geomspace(10, 1000, 8)
    curves = [Curve.from_arrays("0", c, 2.0 * c**-0.11), Curve.from_arrays("1", c, 4.0 * c**-0.1),
              Curve.from_arrays("2", c, 5.0 * c**-0.2)]
    law = fit_scaling_law(curves, n_bootstrap=50, seed=0)
    fig = viz_mpl.plot_curves(curves, law=law, predict_at=1e4)
    plt.close(fig)


@pytest.mark.parametrize("value", ["-1", "x"])
def test_bootstrap_out_of_range_is_refused_by_the_parser(small, capsys, value):
    url, name = small
    with pytest.raises(SystemExit) as exc:
        main(["report", "--storage", url, "--study", name, "--bootstrap", value])
    assert exc.value.code == 2
    assert "argument --bootstrap: " in capsys.readouterr().err.strip().splitlines()[-1]
