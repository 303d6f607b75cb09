import collections
import http.server
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from sh_scaling.curves import ROUTER_TYPES, CurveWarning, fetch_routing, load_routing
from sh_scaling.curves._routing import _CACHE_NAME

# ---------------------------------------------------------------------------------------------------------
# The real file (SUMMARY.md beside it lists the facts checked here).


@pytest.fixture(scope="module")
def routing(routing_csv):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loss_validation loads without a single warning
        return load_routing(routing_csv)


def _steps(curve):
    return curve.compute / (3 * curve.meta["flops_per_step"])


def test_counts_match_the_summary(routing):
    assert len(routing) == 223 and routing.ids == [str(i) for i in range(223)]
    types = collections.Counter(c.meta["router_type"] for c in routing)
    assert types == {"Dense": 13, "Hash": 69, "RL-R": 54, "S-Base": 87}
    sizes = collections.Counter(c.meta["model_size_label"] for c in routing)
    assert sizes == {"15M": 28, "25M": 57, "55M": 29, "130M": 27, "370M": 54, "1.3B": 28}
    # 5,799 rows - 223 step-0 rows - 8 split final evaluations merged.
    assert sum(len(c) for c in routing) == 5568


def test_compute_is_training_flops_and_step_zero_is_dropped(routing, routing_csv):
    forward = load_routing(routing_csv, flops="forward")
    for c, f in zip(routing, forward):
        np.testing.assert_allclose(c.compute, 3 * f.compute)
        assert c.meta["flops"] == "training" and f.meta["flops"] == "forward"
    c = routing.get("0")
    assert _steps(c)[0] == pytest.approx(10_000)
    assert 4.46e17 * 3 * 0.99 < min(c.compute[0] for c in routing)
    assert max(c.final_compute for c in routing) < 4.43e20 * 3 * 1.01


def test_final_evaluations(routing):
    last = collections.Counter(round(_steps(c)[-1]) for c in routing)
    assert last == {249_000: 221, 250_000: 1, 248_000: 1}
    assert round(_steps(routing.get("17"))[-1]) == 250_000
    assert round(_steps(routing.get("112"))[-1]) == 248_000
    for c in routing:
        # Exactly one final evaluation: no 248k point left beside a 249k one.
        assert round(_steps(c)[-2]) == 240_000


def test_split_final_evaluation_is_merged_for_the_chosen_column(routing, routing_csv):
    # hyper_id 82: loss_validation only on the 249k row, loss_pile only on the 248k row.
    assert routing.get("82").final_loss == pytest.approx(2.295804, abs=1e-6)
    with pytest.warns(CurveWarning):
        pile = load_routing(routing_csv, loss="loss_pile")
    c = pile.get("82")
    assert round(_steps(c)[-1]) == 249_000 and c.final_loss == pytest.approx(2.020050, abs=1e-6)
    # hyper_id 128: the reverse (validation at 249k only), still one point at 249k.
    assert round(_steps(routing.get("128"))[-1]) == 249_000
    assert routing.get("128").final_loss == pytest.approx(3.162017, abs=1e-6)


def test_skipped_points_are_kept_as_gaps(routing):
    steps = set(np.round(_steps(routing.get("32"))).astype(int))
    assert 40_000 not in steps and 190_000 not in steps and 50_000 in steps


def test_missing_losses_give_one_warning(routing_csv):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        pile = load_routing(routing_csv, loss="pile")
    msgs = [str(w.message) for w in rec if issubclass(w.category, CurveWarning)]
    assert msgs == ["routing curves: dropped 7 missing loss_pile value(s) in 6 curve(s)"]
    assert len(pile) == 223 and sum(len(c) for c in pile) == 5561
    assert all(c.meta["loss_column"] == "loss_pile" for c in pile)


def test_loss_column_choice(routing, routing_csv):
    with pytest.warns(CurveWarning, match="dropped 1 missing loss_c4"):
        c4 = load_routing(routing_csv, loss="c4")
    assert c4.name == "routing:loss_c4" and len(c4) == 223
    assert c4.get("0").final_loss != routing.get("0").final_loss
    with pytest.raises(ValueError, match="loss='loss_bogus' is not a loss column") as err:
        load_routing(routing_csv, loss="loss_bogus")
    for column in ("validation", "c4", "curation_corpus", "lambada", "pile", "wikitext103"):
        assert f"'loss_{column}'" in str(err.value)


def test_metadata(routing):
    m = routing.get("5").meta
    assert m["router_type"] == "Dense" and m["model_size_label"] == "1.3B" and m["num_experts"] == 1
    assert m["dense_parameter_count"] == 1_308_819_456 == m["n_params"]
    assert (m["d_model"], m["num_blocks"], m["num_heads"], m["kqv_size"]) == (2048, 24, 16, 128)
    assert m["hyper_id"] == 5 and isinstance(m["flops_per_step"], float)
    for key in ("total_parameter_count", "k", "routing_frequency", "flop_increase", "seed"):
        assert key in m
    assert all(c.meta["total_parameter_count"] >= c.meta["dense_parameter_count"] for c in routing)


def test_router_type_filter(routing_csv):
    dense = load_routing(routing_csv, router_types=["Dense"])
    assert len(dense) == 13 and {c.meta["router_type"] for c in dense} == {"Dense"}
    both = load_routing(routing_csv, router_types=("Hash", "RL-R"))
    assert len(both) == 69 + 54
    assert len(load_routing(routing_csv, router_types="S-Base")) == 87
    with pytest.raises(ValueError, match=r"unknown \['MoE'\].*" + ".*".join(ROUTER_TYPES)):
        load_routing(routing_csv, router_types=["Dense", "MoE"])


def test_bad_flops_argument(routing_csv):
    with pytest.raises(ValueError, match="flops='backward'.*training.*forward"):
        load_routing(routing_csv, flops="backward")


# ---------------------------------------------------------------------------------------------------------
# Local copies: checksum and integrity.


def test_local_copy_is_checksum_verified(routing_csv, tmp_path):
    bad = tmp_path / "curves.csv.gz"
    data = routing_csv.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{bad}: sha256 .* does not match.*verify=False"):
        load_routing(bad)
    # Without the checksum the truncated gzip stream is still caught, naming the file.
    with pytest.raises(ValueError, match=f"{bad}: not a complete gzip file"):
        load_routing(bad, verify=False)
    with pytest.raises(ValueError, match="is not a file"):
        load_routing(tmp_path / "nope.csv.gz")


def test_modified_copy_loads_with_verify_false(routing_csv, tmp_path):
    import pandas as pd

    frame = pd.read_csv(routing_csv)
    frame = frame[frame["hyper_id"] < 5]
    copy = tmp_path / "small.csv.gz"
    frame.to_csv(copy, index=False, compression="gzip")
    with pytest.raises(ValueError, match="sha256"):
        load_routing(copy)
    assert len(load_routing(copy, verify=False)) == 5


# ---------------------------------------------------------------------------------------------------------
# Download and cache (file:// URLs and a local HTTP server; the network is never used).


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``routes[path] = (body, declared_length)``; a declared length above the body cuts the transfer."""

    routes: dict = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, length = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(routing_csv):
    data = routing_csv.read_bytes()
    _Handler.routes = {
        "/good.csv.gz": (data, len(data)),
        "/truncated.csv.gz": (data[:100_000], 100_000),
        "/cut.csv.gz": (data[:100_000], len(data)),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _cache_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_over_http_then_cache_hit(server, tmp_path, routing):
    cache = tmp_path / "cache"
    curves = load_routing(cache_dir=cache, url=f"{server}/good.csv.gz")
    assert len(curves) == 223 and _cache_files(cache) == [_CACHE_NAME]
    np.testing.assert_array_equal(curves.get("7").loss, routing.get("7").loss)
    # Second use reads the cache: a URL that would fail is never fetched.
    again = load_routing(cache_dir=cache, url=f"{server}/missing.csv.gz")
    assert len(again) == 223


def test_download_from_file_url(routing_csv, tmp_path):
    path = fetch_routing(cache_dir=tmp_path, url=routing_csv.resolve().as_uri())
    assert path == tmp_path / _CACHE_NAME and path.read_bytes() == routing_csv.read_bytes()


def test_truncated_download_is_rejected_and_not_cached(server, tmp_path):
    with pytest.raises(ValueError, match=r"/truncated\.csv\.gz is corrupt or incomplete: sha256"):
        load_routing(cache_dir=tmp_path, url=f"{server}/truncated.csv.gz")
    assert _cache_files(tmp_path) == []
    # Without the checksum the incomplete gzip stream is caught instead.
    with pytest.raises(ValueError, match=r"/truncated\.csv\.gz: not a complete gzip file"):
        load_routing(cache_dir=tmp_path, url=f"{server}/truncated.csv.gz", verify=False)
    assert _cache_files(tmp_path) == []


def test_connection_cut_mid_transfer(server, tmp_path):
    with pytest.raises(OSError, match=r"could not download .*cut\.csv\.gz.*path="):
        load_routing(cache_dir=tmp_path, url=f"{server}/cut.csv.gz")
    assert _cache_files(tmp_path) == []


def test_unreachable_source_names_url_and_workaround(server, tmp_path):
    url = (tmp_path / "absent.csv.gz").as_uri()
    with pytest.raises(OSError, match="could not download the routing curves from file://.*pass path="):
        load_routing(cache_dir=tmp_path / "cache", url=url)
    with pytest.raises(OSError, match=r"missing\.csv\.gz: HTTP Error 404"):
        load_routing(cache_dir=tmp_path / "cache", url=f"{server}/missing.csv.gz")
    assert _cache_files(tmp_path / "cache") == []


def test_corrupt_cache_is_removed_and_downloaded_again(server, tmp_path, routing_csv):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / _CACHE_NAME).write_bytes(routing_csv.read_bytes()[:5000])
    with pytest.warns(CurveWarning, match=f"removing corrupt cached file: {cache / _CACHE_NAME}: sha256"):
        curves = load_routing(cache_dir=cache, url=f"{server}/good.csv.gz")
    assert len(curves) == 223
    assert (cache / _CACHE_NAME).read_bytes() == routing_csv.read_bytes()
    # A corrupt cache and a bad download: error, and nothing (neither the old nor the new file) stays.
    (cache / _CACHE_NAME).write_bytes(b"not gzip at all")
    with pytest.warns(CurveWarning, match="removing corrupt cached file"):
        with pytest.raises(ValueError, match="corrupt or incomplete"):
            load_routing(cache_dir=cache, url=f"{server}/truncated.csv.gz")
    assert _cache_files(cache) == []


def test_cache_directory_from_environment(routing_csv, tmp_path, monkeypatch):
    url = routing_csv.resolve().as_uri()
    monkeypatch.setenv("SH_SCALING_CACHE", str(tmp_path / "env"))
    assert fetch_routing(url=url) == tmp_path / "env" / _CACHE_NAME
    monkeypatch.delenv("SH_SCALING_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fetch_routing(url=url) == tmp_path / "xdg" / "sh_scaling" / _CACHE_NAME
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fetch_routing(url=url) == tmp_path / "home" / ".cache" / "sh_scaling" / _CACHE_NAME
    shutil.rmtree(tmp_path / "home")


def test_stale_partial_downloads_are_cleaned(routing_csv, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    stale = tmp_path / f".{_CACHE_NAME}.abc123.part"
    live = tmp_path / f".{_CACHE_NAME}.def456.part"
    stale.write_bytes(b"half")
    live.write_bytes(b"in progress elsewhere")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a live download holds its file
        fetch_routing(cache_dir=tmp_path, url=routing_csv.resolve().as_uri())
    assert _cache_files(tmp_path) == sorted([live.name, _CACHE_NAME])
