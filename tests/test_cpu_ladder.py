"""The CPU ladder shipped with the package: its runs, schedules, compute, crossings, and the loader's errors."""

from __future__ import annotations

import gzip
import itertools
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sh_scaling.curves import CPU_LADDER_LOSSES, CurveSet, load_cpu_ladder
from sh_scaling.schedules import WSD, Constant, Cosine

SHIPPED = Path(str(resources.files("sh_scaling.curves").joinpath("cpu_ladder", "curves.csv")))
SIZES = ("d32", "d48", "d64", "d96")
KINDS = ("cosine", "wsd", "constant")
#: Every size runs 1x and 2.5x its token budget; the two smallest also 10x.
LENGTHS = {"d32": ("1x", "2.5x", "10x"), "d48": ("1x", "2.5x", "10x"), "d64": ("1x", "2.5x"), "d96": ("1x", "2.5x")}
RUNS = [(size, kind, length) for size in SIZES for kind in KINDS for length in LENGTHS[size]]


@pytest.fixture(scope="module")
def ladder() -> CurveSet:
    return load_cpu_ladder()


def test_every_size_runs_every_schedule_at_every_length(ladder):
    assert len(ladder) == len(RUNS) == 30
    assert ladder.name == "cpu_ladder"
    got = [(c.meta["size"], c.meta["schedule_kind"], c.meta["length"]) for c in ladder]
    assert got == RUNS
    for c in ladder:
        assert c.id == f"{c.meta['size']}/{c.meta['schedule_name']}"
        assert 25 <= len(c) <= 40
        assert c.unit == "FLOPs"


def test_runs_of_one_size_form_a_family(ladder):
    by_size = {s: [c for c in ladder if c.meta["size"] == s] for s in SIZES}
    params = []
    for size, runs in by_size.items():
        assert len(runs) == 3 * len(LENGTHS[size])
        assert len({(c.meta["n_params"], c.meta["d_model"], c.meta["n_layers"], c.meta["seed"]) for c in runs}) == 1
        params.append(runs[0].meta["n_params"])
        assert runs[0].meta["n_params_non_embedding"] < runs[0].meta["n_params"]
    assert params == sorted(params) and len(set(params)) == 4


def test_schedule_objects_match_the_kind(ladder):
    types = {"cosine": Cosine, "wsd": WSD, "constant": Constant}
    for c in ladder:
        s = c.meta["schedule"]
        assert type(s) is types[c.meta["schedule_kind"]]
        assert s.peak_lr == pytest.approx(c.meta["peak_lr"])
        if isinstance(s, WSD):
            assert s.decay == "linear" and s.final_ratio == 0.0 and 0.8 <= s.decay_start < 0.9


def test_schedule_at_each_point_is_the_recorded_learning_rate(ladder):
    for c in ladder:
        fraction = c.compute / c.meta["max_compute"]
        expected = c.meta["schedule"](fraction)
        recorded = np.asarray(c.meta["lr"])
        peak = c.meta["peak_lr"]
        # Relative error below 1e-6 where the rate is not 0 (the last update of a WSD run is at rate 0).
        assert np.all(np.abs(expected - recorded) <= 1e-6 * np.maximum(recorded, 1e-12 * peak)), c.id
        assert np.allclose(c.meta["schedule"].relative(fraction), recorded / peak, rtol=1e-6, atol=1e-12)


def test_the_schedules_differ_where_they_should(ladder):
    for size, length in {(size, length) for size, _, length in RUNS}:
        runs = {k: ladder.get(f"{size}/{k}_{length}") for k in KINDS}
        end = {k: float(r.meta["lr"][-1]) / r.meta["peak_lr"] for k, r in runs.items()}
        assert end["constant"] == 1.0 and end["wsd"] == 0.0 and end["cosine"] == pytest.approx(0.1, abs=1e-3)
        # Before its cooldown a WSD run is the constant run: same seed, same data, same rates.
        start = runs["wsd"].meta["schedule"].decay_start * runs["wsd"].meta["max_compute"]
        before = runs["wsd"].compute <= start
        shared = np.isin(runs["constant"].compute, runs["wsd"].compute[before])
        np.testing.assert_array_equal(runs["wsd"].loss[before], runs["constant"].loss[shared])


def test_constant_runs_of_one_model_agree_where_they_overlap(ladder):
    # The longer constant run continues the shorter: same seed, same batches, same rates (record.py's shared
    # prefixes; the 10x runs were recorded in other processes than the 1x and 2.5x ones).
    for size in SIZES:
        runs = [ladder.get(f"{size}/constant_{length}") for length in LENGTHS[size]]
        for short, long in itertools.combinations(runs, 2):
            shared, i, j = np.intersect1d(short.compute, long.compute, return_indices=True)
            assert shared.size >= 1, (short.id, long.id)
            np.testing.assert_array_equal(short.loss[i], long.loss[j])


def test_compute_increases_and_is_six_n_d(ladder):
    for c in ladder:
        assert np.all(np.diff(c.compute) > 0), c.id
        np.testing.assert_array_equal(c.compute, 6.0 * c.meta["n_params"] * np.asarray(c.meta["tokens"]))
        assert c.compute[-1] == pytest.approx(c.meta["max_compute"])  # every run reached its planned end
        assert np.asarray(c.meta["steps"])[-1] == c.meta["total_steps"]
        assert c.compute[0] <= 0.02 * c.meta["max_compute"]
    long, short = ladder.get("d64/cosine_2.5x"), ladder.get("d64/cosine_1x")
    assert long.meta["max_compute"] == pytest.approx(2.5 * short.meta["max_compute"], rel=1e-3)


def _crosses(small, large) -> bool:
    """Whether ``small`` is better than ``large`` at low compute and worse at high compute (both recorded)."""
    lo, hi = max(small.compute[0], large.compute[0]), min(small.compute[-1], large.compute[-1])
    if hi <= lo:
        return False
    grid = np.geomspace(lo, hi, 64)
    diff = np.interp(np.log(grid), np.log(small.compute), small.loss) - np.interp(
        np.log(grid), np.log(large.compute), large.loss)
    return bool(diff[0] < 0 and diff[-1] > 0)


def test_curves_cross(ladder):
    pairs = [(a, b) for a, b in itertools.permutations(ladder, 2) if a.meta["n_params"] < b.meta["n_params"]]
    crossing = [(a.id, b.id) for a, b in pairs if _crosses(a, b)]
    assert crossing
    # Crossings between runs of the same schedule and length, not only between a cooled and a hot run.
    assert any(a.split("/")[1] == b.split("/")[1] for a, b in crossing)


def test_larger_models_end_lower_after_equal_tokens(ladder):
    for length in ("2.5x", "10x"):
        for kind in KINDS:
            runs = sorted((c for c in ladder if c.meta["length"] == length and c.meta["schedule_kind"] == kind),
                          key=lambda c: c.meta["n_params"])
            final = [c.loss[-1] for c in runs]
            assert final == sorted(final, reverse=True), (length, kind, final)
    # The lowest loss of the ladder is not the smallest model's: the frontier moves to larger models late.
    assert min(ladder, key=lambda c: c.loss[-1]).meta["size"] != SIZES[0]


def test_losses_are_finite_and_fall(ladder):
    for c in ladder:
        assert np.all(np.isfinite(c.loss)) and np.all(c.loss > 0)
        assert c.loss[-1] < 0.7 * c.loss[0], c.id
    assert np.log(256) > max(c.loss[0] for c in ladder)


def test_training_loss_column():
    train = load_cpu_ladder(loss="train_loss")
    assert len(train) == 30
    with pytest.raises(ValueError, match="not a loss column"):
        load_cpu_ladder(loss="test_loss")
    assert set(CPU_LADDER_LOSSES) == {"val_loss", "train_loss"}


def test_shipped_file_is_small():
    assert SHIPPED.is_file()
    assert SHIPPED.stat().st_size < 2 * 1024 * 1024


def test_reads_a_given_path_and_gzip(tmp_path, ladder):
    plain = load_cpu_ladder(SHIPPED)
    packed = tmp_path / "curves.csv.gz"
    packed.write_bytes(gzip.compress(SHIPPED.read_bytes()))
    for other in (plain, load_cpu_ladder(packed)):
        assert other.ids == ladder.ids
        np.testing.assert_array_equal(other[5].loss, ladder[5].loss)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        load_cpu_ladder(tmp_path / "nowhere.csv")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(SHIPPED.read_bytes())[:500])
    with pytest.raises(ValueError, match="not a readable CSV"):
        load_cpu_ladder(broken)
    frame = pd.read_csv(SHIPPED)
    frame.drop(columns="lr").to_csv(tmp_path / "no_lr.csv", index=False)
    with pytest.raises(ValueError, match=r"missing columns \['lr'\]"):
        load_cpu_ladder(tmp_path / "no_lr.csv")
    bad = frame.astype({"val_loss": object})
    bad.loc[3, "val_loss"] = "oops"
    bad.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(ValueError, match="'val_loss' row 5 is not a finite number"):
        load_cpu_ladder(tmp_path / "text.csv")
    mixed = frame.copy()
    mixed.loc[0, "planned_steps"] += 1
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(ValueError, match="several values of 'planned_steps'"):
        load_cpu_ladder(tmp_path / "mixed.csv")
    frame.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(ValueError, match="no rows"):
        load_cpu_ladder(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(ValueError, match="not a readable CSV"):
        load_cpu_ladder(tmp_path / "blank.csv")
