"""``benchmarks/bench_cluster_chaos.py --rounds 2``: six workers, a SIGKILL or SIGTERM twice, every check passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cluster_chaos.py"


def test_cluster_chaos_two_rounds_passes_its_checks(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH), "--rounds", "2", "--deadline", "240"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(re.findall(r"round +\d+: SIG(?:KILL|TERM) worker", out.stdout)) == 2, out.stdout
    for check in ("budget never overdrawn", "every segment done exactly once", "decisions equal to the simulator's",
                  "no trial left RUNNING", "checkpoint folder = wanted checkpoints only", "workers exited 0",
                  "2 rounds of chaos"):
        assert f"| {check} | ok |" in out.stdout, out.stdout
    assert "| FAIL |" not in out.stdout, out.stdout
