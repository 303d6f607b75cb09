from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]

# The tests need the installed distribution (its metadata, the `sh-scaling` command), not only the source
# folder that a run from the checkout's root can import: say so at once rather than in many failures. (The
# root itself is not searched: a build leaves sh_scaling.egg-info there.)
_ELSEWHERE = [p for p in sys.path if Path(p or ".").resolve() != _REPO]
if not any(True for _ in importlib.metadata.distributions(name="sh_scaling", path=_ELSEWHERE)):
    pytest.exit("sh_scaling is not installed; from the checkout's root run: "
                'pip install -e ".[test]" -c .ci/constraints-newest.txt --config-settings editable_mode=strict',
                returncode=4)


def routing_path() -> Path | None:
    """The routing curves: ``SH_SCALING_ROUTING_PATH`` or the shared copy beside the repository."""
    env = os.environ.get("SH_SCALING_ROUTING_PATH")
    candidates = [Path(env)] if env else []
    candidates.append(_REPO.parent / "shared" / "data" / "routing" / "curves.csv.gz")
    for p in candidates:
        if p.is_file():
            return p
    return None


@pytest.fixture(scope="session")
def routing_csv() -> Path:
    p = routing_path()
    if p is None:
        pytest.skip("routing curves not found: set SH_SCALING_ROUTING_PATH or place ../shared/data/routing")
    return p


@pytest.fixture
def one_torch_thread():
    """Tiny models train as fast on one thread, and several threads spin against each other on a busy machine."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
