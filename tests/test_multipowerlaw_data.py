"""The loss curves of Luo et al. (2025): loading, schedules, checksums, cache (never the network)."""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sh_scaling.curves import (
    MULTIPOWERLAW_SHA256,
    MULTIPOWERLAW_SIZES,
    fetch_multipowerlaw,
    load_multipowerlaw,
)
from sh_scaling.schedules import WSD, Constant, Cosine, TwoStage, schedule_from_dict

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "multipowerlaw"


def multipowerlaw_path() -> Path | None:
    """``SH_SCALING_MULTIPOWERLAW_PATH`` or the shared copy beside the repository."""
    env = os.environ.get("SH_SCALING_MULTIPOWERLAW_PATH")
    for p in ([Path(env)] if env else []) + [_SHARED]:
        if (p / "loss_curve_repo").is_dir():
            return p
    return None


@pytest.fixture(scope="module")
def data_dir() -> Path:
    p = multipowerlaw_path()
    if p is None:
        pytest.skip("multipowerlaw curves not found: set SH_SCALING_MULTIPOWERLAW_PATH or place ../shared/data")
    return p


@pytest.fixture(scope="module")
def curves(data_dir):
    return load_multipowerlaw(data_dir)


def _mirror(data_dir: Path, root: Path) -> Path:
    """A copy laid out like the repository, served by ``file://`` URLs."""
    shutil.copytree(data_dir / "loss_curve_repo", root / "loss_curve_repo")
    shutil.copy(data_dir / "LICENSE-MIT.txt", root / "LICENSE")
    return root


# --- the files, as SUMMARY.md describes them ------------------------------------------------------------


def test_27_curves_nine_schedules_three_sizes(curves):
    assert len(curves) == 27
    assert collections.Counter(c.meta["size"] for c in curves) == {"25M": 9, "100M": 9, "400M": 9}
    assert curves.ids[:2] == ["25M/constant_24000", "25M/constant_72000"]
    kinds = collections.Counter(c.meta["schedule_kind"] for c in curves)
    assert kinds == {"constant": 6, "cosine": 6, "wsd": 6, "two_stage": 9}


def test_point_counts_and_last_steps(curves):
    n = {c.id: len(c) for c in curves}
    assert n["100M/constant_72000"] == 546 and n["100M/cosine_24000"] == 171
    assert n["25M/wsdcon_3"] == 95 and n["400M/wsdcon_3"] == 109
    assert n["25M/wsd_20000_24000"] == 170 and n["100M/wsd_20000_24000"] == 171
    last = {c.id: c.meta["steps"][-1] for c in curves}
    assert last["25M/wsdcon_9"] == 14144 and last["400M/cosine_72000"] == 71936
    assert min(len(c) for c in curves) == 95 and max(len(c) for c in curves) == 546


def test_losses_match_the_summary(curves):
    best = min(curves, key=lambda c: c.final_loss)
    assert best.id == "400M/cosine_72000" and best.final_loss == pytest.approx(2.6154)
    for size, (first, low, high) in {"25M": (4.10, 3.20, 3.40), "100M": (3.77, 2.86, 3.07),
                                     "400M": (3.56, 2.62, 2.85)}.items():
        fam = [c for c in curves if c.meta["size"] == size]
        assert max(c.loss[0] for c in fam) == pytest.approx(first, abs=0.02)
        assert all(low - 0.01 <= c.final_loss <= high + 0.01 for c in fam)


def test_compute_is_parameters_times_steps(curves):
    for c in curves:
        n = MULTIPOWERLAW_SIZES[c.meta["size"]]
        np.testing.assert_allclose(c.compute, n * c.meta["steps"])
        assert c.meta["max_compute"] == n * c.meta["total_steps"] and c.unit == "N x steps"
        assert c.meta["n_params"] == n


def test_each_schedule_reproduces_the_recorded_learning_rates(curves):
    for c in curves:
        f = c.compute / c.meta["max_compute"]
        np.testing.assert_allclose(c.meta["schedule"](f), c.meta["lr"], rtol=1e-9, err_msg=c.id)


def test_schedules_are_the_documented_ones(curves):
    assert curves.get("100M/cosine_72000").meta["schedule"] == Cosine(peak_lr=3e-4, warmup=2160 / 72000,
                                                                       final_ratio=0.1)
    assert curves.get("25M/constant_24000").meta["schedule"] == Constant(peak_lr=3e-4, warmup=0.09)
    wsd = curves.get("400M/wsdld_20000_24000").meta["schedule"]
    assert isinstance(wsd, WSD) and wsd.decay == "linear" and wsd.decay_start == pytest.approx(20000 / 24000)
    two = curves.get("100M/wsdcon_18").meta["schedule"]
    assert isinstance(two, TwoStage) and two.ratio == pytest.approx(0.6) and two.switch == 0.5
    assert curves.get("100M/wsdcon_18").meta["total_steps"] == 16000
    for c in curves:
        assert schedule_from_dict(c.meta["schedule"].to_dict()) == c.meta["schedule"]


def test_sizes_filter(data_dir):
    small = load_multipowerlaw(data_dir, sizes=["400M", "25M"])
    assert len(small) == 18 and {c.meta["size"] for c in small} == {"25M", "400M"}
    assert len(load_multipowerlaw(data_dir, sizes="100M")) == 9
    with pytest.raises(ValueError, match=r"unknown \['1B'\]"):
        load_multipowerlaw(data_dir, sizes=["1B"])


def test_path_may_be_the_folder_or_its_parent(data_dir):
    a = load_multipowerlaw(data_dir / "loss_curve_repo", sizes="25M")
    b = load_multipowerlaw(data_dir, sizes="25M")
    assert a.ids == b.ids and np.array_equal(a[3].loss, b[3].loss)


# --- checksums, local copies and the cache --------------------------------------------------------------


def test_a_modified_copy_fails_its_checksum(data_dir, tmp_path):
    root = _mirror(data_dir, tmp_path / "copy")
    file = root / "loss_curve_repo" / "csv_100" / "cosine_24000.csv"
    file.write_text(file.read_text().replace("2.9791", "2.9790"))
    with pytest.raises(ValueError, match="sha256 .* does not match .*cosine_24000.csv"):
        load_multipowerlaw(root, sizes="100M")
    edited = load_multipowerlaw(root, sizes="100M", verify=False)
    assert edited.get("100M/cosine_24000").final_loss == pytest.approx(2.9790)


def test_missing_folder_or_file_is_a_clear_error(data_dir, tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        load_multipowerlaw(tmp_path / "nowhere")
    root = _mirror(data_dir, tmp_path / "copy")
    (root / "loss_curve_repo" / "csv_25" / "wsdcon_9.csv").unlink()
    with pytest.raises(ValueError, match="missing loss_curve_repo/csv_25/wsdcon_9.csv"):
        load_multipowerlaw(root)


def test_bad_header_is_reported(data_dir, tmp_path):
    root = _mirror(data_dir, tmp_path / "copy")
    file = root / "loss_curve_repo" / "csv_25" / "cosine_24000.csv"
    file.write_text("step;lr;loss\n1;2;3\n")
    with pytest.raises(ValueError, match="header"):
        load_multipowerlaw(root, sizes="25M", verify=False)


def test_download_once_then_read_from_the_cache(data_dir, tmp_path):
    mirror = _mirror(data_dir, tmp_path / "mirror")
    cache = tmp_path / "cache"
    curves = load_multipowerlaw(cache_dir=cache, url=mirror.as_uri() + "/")
    assert len(curves) == 27
    cached = cache / "multipowerlaw_luo2025"
    assert (cached / "LICENSE").read_bytes() == (data_dir / "LICENSE-MIT.txt").read_bytes()
    assert not list(cached.rglob("*.part"))
    shutil.rmtree(mirror)  # the cache is enough from now on
    again = load_multipowerlaw(cache_dir=cache, url=mirror.as_uri() + "/")
    assert again.ids == curves.ids
    assert fetch_multipowerlaw(cache_dir=cache, url="file:///nowhere/") == cached / "loss_curve_repo"


def test_a_corrupt_cached_file_is_downloaded_again(data_dir, tmp_path):
    mirror = _mirror(data_dir, tmp_path / "mirror")
    cache = tmp_path / "cache"
    url = mirror.as_uri() + "/"
    fetch_multipowerlaw(cache_dir=cache, url=url)
    victim = cache / "multipowerlaw_luo2025" / "loss_curve_repo" / "csv_400" / "wsdcon_3.csv"
    victim.write_text("step,lr,loss\n")
    fetch_multipowerlaw(cache_dir=cache, url=url)
    assert victim.read_bytes() == (data_dir / "loss_curve_repo" / "csv_400" / "wsdcon_3.csv").read_bytes()


def test_a_corrupt_download_is_not_cached(data_dir, tmp_path):
    mirror = _mirror(data_dir, tmp_path / "mirror")
    (mirror / "loss_curve_repo" / "csv_25" / "cosine_72000.csv").write_text("step,lr,loss\n1,1,1\n")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        fetch_multipowerlaw(cache_dir=cache, url=mirror.as_uri() + "/")
    assert not (cache / "multipowerlaw_luo2025" / "loss_curve_repo" / "csv_25" / "cosine_72000.csv").exists()
    assert not list((cache / "multipowerlaw_luo2025").rglob("*.part"))


def test_a_failed_download_says_how_to_provide_the_files(tmp_path):
    with pytest.raises(OSError, match="pass path="):
        fetch_multipowerlaw(cache_dir=tmp_path, url=(tmp_path / "absent").as_uri() + "/")


def test_cache_directory_from_the_environment(data_dir, tmp_path, monkeypatch):
    mirror = _mirror(data_dir, tmp_path / "mirror")
    monkeypatch.setenv("SH_SCALING_CACHE", str(tmp_path / "env-cache"))
    root = fetch_multipowerlaw(url=mirror.as_uri() + "/")
    assert root == tmp_path / "env-cache" / "multipowerlaw_luo2025" / "loss_curve_repo"


def test_every_file_has_a_checksum():
    assert len(MULTIPOWERLAW_SHA256) == 28 and "LICENSE" in MULTIPOWERLAW_SHA256
    assert all(len(v) == 64 for v in MULTIPOWERLAW_SHA256.values())
