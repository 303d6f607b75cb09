"""``python examples/cluster_sweep.py --quick`` runs, kills and preempts its workers, and passes its checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cluster_sweep.py"


def test_cluster_sweep_quick_passes_its_checks(tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLE), "--quick"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SIGKILL worker" in out.stdout and "exit status 0; requeued" in out.stdout
    for check in ("budget kept", "every segment done exactly once", "no trial left running",
                  "decisions equal to the simulator's", "checkpoint folder = wanted checkpoints only"):
        assert f"ok   {check}" in out.stdout, out.stdout
    assert "FAIL" not in out.stdout
