import io
import warnings

import numpy as np
import pandas as pd
import pytest

from sh_scaling.curves import CurveWarning, generate_synthetic, load_csv

SWEEP = """run_id,compute,loss,n_params,lr,step
small,1e15,4.10,1.2e7,3e-4,1
small,2e15,3.85,1.2e7,3e-4,2
small,4e15,3.70,1.2e7,3e-4,3
large,1e15,4.60,1.1e8,1e-4,1
large,4e15,3.60,1.1e8,1e-4,2
"""


def test_long_format_to_curves_with_metadata(tmp_path):
    path = tmp_path / "sweep.csv"
    path.write_text(SWEEP)
    curves = load_csv(path)
    assert curves.ids == ["small", "large"] and curves.name == "sweep.csv"
    small = curves.get("small")
    np.testing.assert_allclose(small.compute, [1e15, 2e15, 4e15])
    np.testing.assert_allclose(small.loss, [4.10, 3.85, 3.70])
    # Constant within each run -> metadata; "step" varies within a run -> left out.
    assert small.meta == {"n_params": 1.2e7, "lr": 3e-4}
    assert curves.get("large").meta == {"n_params": 1.1e8, "lr": 1e-4}
    assert type(small.meta["n_params"]) is float  # plain Python values, not numpy scalars


def test_custom_columns_unit_and_stream():
    text = "trial,pf_days,val_loss\n3,0.5,3.0\n3,1.0,2.5\n10,0.5,3.1\n"
    curves = load_csv(io.StringIO(text), run_col="trial", compute_col="pf_days", loss_col="val_loss",
                      unit="PF-days")
    assert curves.ids == ["3", "10"]  # run ids become strings, first-appearance order
    assert all(c.unit == "PF-days" for c in curves)
    assert curves.get("3").final_loss == 2.5


def test_missing_columns_lists_every_missing_one_and_the_columns_found():
    text = "run,flops,loss\na,1,2.0\n"
    with pytest.raises(ValueError) as err:
        load_csv(io.StringIO(text))
    msg = str(err.value)
    assert "missing column(s) ['run_id', 'compute']" in msg
    assert "columns found: ['run', 'flops', 'loss']" in msg


def test_bad_rows_follow_curve_semantics():
    text = "run_id,compute,loss\na,0,10.9\na,2,\na,3,2.0\na,1,3.0\na,3,2.2\nb,1,3.0\nb,2,2.5\n"
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        curves = load_csv(io.StringIO(text))
    msgs = " ".join(str(w.message) for w in rec if issubclass(w.category, CurveWarning))
    assert "curve 'a': dropped 1 non-finite" in msgs and "sorted" in msgs and "averaged" in msgs
    a = curves.get("a")
    np.testing.assert_allclose(a.compute, [1, 3])  # zero compute dropped, NaN dropped, duplicates averaged
    np.testing.assert_allclose(a.loss, [3.0, 2.1])
    with pytest.raises(ValueError, match="curve 'x'.*negative compute"):
        load_csv(io.StringIO("run_id,compute,loss\nx,-1,2.0\nx,1,1.0\n"))
    with pytest.raises(ValueError, match="curve 'x'.*loss must be > 0"):
        load_csv(io.StringIO("run_id,compute,loss\nx,1,0.0\n"))


def test_non_numeric_values_and_empty_tables_are_errors():
    with pytest.raises(ValueError, match="column 'loss' has a non-numeric value 'oops' in data row 2"):
        load_csv(io.StringIO("run_id,compute,loss\na,1,3.0\na,2,oops\n"))
    with pytest.raises(ValueError, match="no rows"):
        load_csv(io.StringIO("run_id,compute,loss\n"))
    with pytest.raises(ValueError, match="empty 'run_id' in data row 2"):
        load_csv(io.StringIO("run_id,compute,loss\na,1,3.0\n,2,2.0\n"))
    with pytest.raises(ValueError, match="unit"):
        load_csv(io.StringIO("run_id,compute,loss\na,1,3.0\n"), unit="")


def test_round_trip_through_to_frame_and_gzip(tmp_path):
    original = generate_synthetic(5, seed=0)
    frame = original.to_frame()
    path = tmp_path / "synthetic.csv.gz"
    frame.to_csv(path, index=False)
    loaded = load_csv(path)
    assert loaded.ids == original.ids
    for a, b in zip(original, loaded):
        np.testing.assert_allclose(a.compute, b.compute)
        np.testing.assert_allclose(a.loss, b.loss)
        assert b.meta["n_params"] == pytest.approx(a.meta["n_params"])
    # A DataFrame is accepted as it is.
    assert load_csv(pd.DataFrame(frame), name="mine").name == "mine"
