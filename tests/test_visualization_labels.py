"""The decisions plot's trial labels do not overlap, and the plots count pruned runs and forecasts alike."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pytest  # noqa: E402

import sh_scaling.visualization.matplotlib as viz_mpl  # noqa: E402
from sh_scaling.curves import Curve, CurveSet  # noqa: E402
from sh_scaling.keys import DECISION_KEY, PRUNED_KEY, rung_key  # noqa: E402
from sh_scaling.visualization._data import curves_data, decision_points, decisions_title  # noqa: E402
from sh_scaling.visualization.matplotlib._axes import place_labels  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
NAN_PRUNE = "pruned: non-finite loss nan at step 2"


def _trial(number: int, compute: float, loss: float, promoted: bool, **attrs) -> optuna.trial.FrozenTrial:
    record = dict(compute=compute, loss=loss, target=1e4, forecast=loss * 0.8, std=0.05, promoted=promoted,
                  rule="rank", n_competitors=8, rank=1, quota=4)
    system = {rung_key(0): record} if attrs.pop("decided", True) else {}
    system.update(attrs.pop("system", {}))
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE if promoted else optuna.trial.TrialState.PRUNED,
        value=loss if promoted else None, params={"x": number},
        distributions={"x": optuna.distributions.IntDistribution(0, 100)}, intermediate_values={0: loss},
        system_attrs=system, user_attrs=attrs.pop("user", {}),
    )


@pytest.fixture(scope="module")
def crowded() -> optuna.Study:
    """Eight pruned trials decided at two points (four on each, the points close), promoted trials among them,
    and one trial pruned for a NaN loss, with no rung decision."""
    study = optuna.create_study(study_name="crowded")
    for i in range(8):
        study.add_trial(_trial(i, 100.0 if i < 4 else 110.0, 3.0 if i < 4 else 2.95, promoted=False))
    for i in range(8, 20):
        study.add_trial(_trial(i, 100.0 * 1.1 ** (i - 8), 3.1 - 0.02 * (i - 8), promoted=True))
    study.add_trial(_trial(20, 50.0, 3.3, promoted=False, decided=False, system={PRUNED_KEY: NAN_PRUNE},
                           user={DECISION_KEY: NAN_PRUNE}))
    return study


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_trial_labels_of_the_decisions_plot_do_not_overlap(crowded, tmp_path):
    fig = viz_mpl.plot_decisions(crowded)
    fig.savefig(tmp_path / "decisions.png", dpi=130)  # the boxes are read as saved
    renderer = fig.canvas.get_renderer()
    left = fig.axes[0]
    labels = [t for t in left.texts if t.get_text().isdigit()]
    assert sorted(int(t.get_text()) for t in labels) == list(range(8))
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not [(a, b) for (a, b) in itertools.combinations(range(len(boxes)), 2) if _overlap(boxes[a], boxes[b])]
    # And none covers a labelled point.
    points = left.transData.transform([(p.compute, p.loss) for p in decision_points(crowded) if not p.promoted])
    assert not [b for b in boxes for x, y in points if b.x0 < x < b.x1 and b.y0 < y < b.y1]
    plt.close(fig)


def test_place_labels_keeps_boxes_of_coincident_points_apart():
    anchors = np.array([[100.0, 100.0]] * 6 + [[104.0, 98.0]] * 3)
    sizes = np.array([[8.0, 7.0]] * 9)
    obstacles = np.array([[112.0, 100.0], [100.0, 112.0]])
    offsets = place_labels(anchors, sizes, obstacles)
    boxes = [(x + dx, y + dy, x + dx + w, y + dy + h) for (x, y), (dx, dy), (w, h) in zip(anchors, offsets, sizes)]
    for a, b in itertools.combinations(boxes, 2):
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    for box in boxes:
        for x, y in np.vstack([anchors, obstacles]):
            assert not (box[0] < x + 4 and x - 4 < box[2] and box[1] < y + 4 and y - 4 < box[3])


def test_the_decisions_title_names_pruned_trials_without_a_decision(crowded):
    points = decision_points(crowded)
    title, note = decisions_title(crowded, points)
    assert title == f"crowded: {len(points)} pruning decisions"
    assert note == f"1 pruned trial(s) without a pruning decision (trial 20: {NAN_PRUNE})"
    fig = viz_mpl.plot_decisions(crowded)
    assert NAN_PRUNE in fig._suptitle.get_text()
    plt.close(fig)


def test_forecasts_are_counted_against_pruned_runs_and_the_missing_one_is_explained():
    c = np.geomspace(10.0, 100.0, 5)
    runs = CurveSet([
        Curve.from_arrays("0", c, 3 * c**-0.1, {"state": "COMPLETE"}),
        Curve.from_arrays("1", c[:3], 4 * c[:3] ** -0.1, {"state": "PRUNED", "max_compute": 100.0, "forecast": 2.5}),
        # Pruned for a NaN loss: the pruner made no forecast of it.
        Curve.from_arrays("2", c[:2], 5 * c[:2] ** -0.1, {"state": "PRUNED", "max_compute": 100.0,
                                                         "decision": NAN_PRUNE}),
    ])
    data = curves_data(runs, law=False)
    assert len(data.forecasts) == 1 and len(data.groups["pruned"]) == 2
    assert data.forecast_label == "pruner's forecast at max_compute (1 of 2 pruned runs)"
    assert data.forecast_note == f"1 pruned run(s) without a forecast (2: {NAN_PRUNE})"
    fig = viz_mpl.plot_curves(runs, law=False)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert data.forecast_label in labels and "pruned runs (2)" in labels
    assert NAN_PRUNE in fig.axes[0].get_title(loc="left")
    plt.close(fig)
