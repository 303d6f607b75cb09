"""Downloads and the cache: nothing half-written survives, and every failure is one clear line on the CLI."""

from __future__ import annotations

import http.server
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from sh_scaling.cli import main
from sh_scaling.curves import fetch_routing, load_routing
from sh_scaling.curves._routing import _CACHE_NAME


def _parts(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.part"))


@pytest.fixture
def stalling_server(routing_csv):
    """Sends the first 100 kB of the file, then nothing until the test ends (a download to kill midway)."""
    data = routing_csv.read_bytes()
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:100_000])
            self.wfile.flush()
            release.wait(30)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/curves.csv.gz"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_killed_download_leaves_no_part_file_once_the_next_load_succeeds(stalling_server, routing_csv, tmp_path):
    cache = tmp_path / "cache"
    code = "import sys; from sh_scaling.curves import fetch_routing as f; f(cache_dir=sys.argv[1], url=sys.argv[2])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(cache), stalling_server])
    try:
        deadline = time.monotonic() + 60
        while not (cache.exists() and any(p.stat().st_size > 0 for p in _parts(cache))):
            assert proc.poll() is None and time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert len(_parts(cache)) == 1  # what the killed download left
    curves = load_routing(cache_dir=cache, url=routing_csv.resolve().as_uri())
    assert len(curves) == 223
    assert sorted(p.name for p in cache.iterdir()) == [_CACHE_NAME]


def test_a_cache_hit_removes_parts_left_by_killed_downloads(routing_csv, tmp_path):
    url = routing_csv.resolve().as_uri()
    fetch_routing(cache_dir=tmp_path, url=url)
    left = tmp_path / f".{_CACHE_NAME}.k1ll3d.part"
    left.write_bytes(b"half a download, seconds old")
    fetch_routing(cache_dir=tmp_path, url=url)  # from the cache: nothing is downloaded
    assert sorted(p.name for p in tmp_path.iterdir()) == [_CACHE_NAME]


def test_offline_is_one_line_naming_the_command_line_option(monkeypatch, tmp_path, capsys):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    monkeypatch.setenv("SH_SCALING_CACHE", str(tmp_path / "cache"))
    assert main(["simulate", "--curves", "routing", "--quiet", "--repeats", "1", "--candidates", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("sh-scaling simulate: error: could not download the routing curves from https://")
    assert "--routing-path" in err and "name resolution" in err
    assert _parts(tmp_path / "cache") == []


def test_a_read_only_cache_directory_is_a_clear_error(monkeypatch, tmp_path, capsys):
    # As root a chmod does not stop writes, so the refusal is what the operating system would say.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    cache = tmp_path / "ro"
    cache.mkdir()
    with pytest.raises(PermissionError, match=rf"cannot write to the routing curves cache directory {cache} "
                                              r"\(Permission denied\): choose another with cache_dir=.*--routing-path"):
        fetch_routing(cache_dir=cache, url="http://127.0.0.1:9/never.csv.gz")
    monkeypatch.setenv("SH_SCALING_CACHE", str(cache))
    assert main(["simulate", "--curves", "routing", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cache directory {cache}" in err and "SH_SCALING_CACHE" in err


def test_a_cache_path_that_is_a_file_is_a_clear_error(tmp_path, capsys, monkeypatch):
    file = tmp_path / "cache"
    file.write_text("not a directory")
    with pytest.raises(NotADirectoryError, match=f"cache directory {file} is a file: choose another with cache_dir="):
        fetch_routing(cache_dir=file, url="http://127.0.0.1:9/never.csv.gz")
    with pytest.raises(NotADirectoryError, match=f"cannot write to the routing curves cache directory {file}/sub"):
        fetch_routing(cache_dir=file / "sub", url="http://127.0.0.1:9/never.csv.gz")
    monkeypatch.setenv("SH_SCALING_CACHE", str(file))
    assert main(["simulate", "--curves", "routing", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{file} is a file" in err


def test_cli_checksum_error_suggests_what_the_cli_can_do(routing_csv, tmp_path, capsys):
    bad = tmp_path / "curves.csv.gz"
    bad.write_bytes(routing_csv.read_bytes()[:1000])
    assert main(["simulate", "--curves", "routing", "--routing-path", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bad}: sha256" in err
    assert "leave out path= (--routing-path) to download it" in err
    assert main(["simulate", "--curves", "routing", "--routing-path", str(tmp_path / "nope.gz"), "--quiet"]) == 2
    assert "(--routing-path) is not a file" in capsys.readouterr().err


def test_without_file_locks_old_parts_are_removed_and_downloads_still_work(routing_csv, tmp_path, monkeypatch):
    import os

    monkeypatch.setattr("sh_scaling.curves._download.fcntl", None)  # as on Windows
    old = tmp_path / f".{_CACHE_NAME}.old.part"
    recent = tmp_path / f".{_CACHE_NAME}.recent.part"
    old.write_bytes(b"killed two hours ago")
    recent.write_bytes(b"perhaps a live download")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert fetch_routing(cache_dir=tmp_path, url=routing_csv.resolve().as_uri()).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([recent.name, _CACHE_NAME])
