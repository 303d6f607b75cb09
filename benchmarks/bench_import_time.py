"""Import cost: ``import sh_scaling`` and ``sh-scaling --help`` against ``import optuna``, side by side.

Each command runs in a fresh interpreter under ``python -X importtime``; its import time is the sum of the
cumulative times of the top-level imports it triggers (Python's own start-up imports excluded, as they are the
same for every command). Runs interleave the commands so a busy machine slows them alike; the table gives the
median over ``--repeats`` runs and its ratio to ``import optuna``. It also lists the heavy modules each command
left in ``sys.modules`` (none is the goal: they are imported where used).

    python benchmarks/bench_import_time.py              # 5 runs each
    python benchmarks/bench_import_time.py --repeats 11
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile

HEAVY = ("sklearn", "scipy.stats", "matplotlib", "plotly", "torch")

COMMANDS = {
    "import optuna": "import optuna",
    "import sh_scaling": "import sh_scaling",
    # What a study that uses the pruner imports (the surrogate's scikit-learn waits for the first decision).
    "import the pruner": "from sh_scaling import SurrogateHalvingPruner, report",
    "sh-scaling --help": (
        "import contextlib, io\n"
        "from sh_scaling.cli import main\n"
        "try:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(['--help'])\n"
        "except SystemExit:\n"
        "    pass"
    ),
}


def _baseline_modules() -> set[str]:
    """Modules the interpreter imports before running any command (site, encodings, ...)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True,
                         check=True).stderr
    return {line.rsplit("|", 1)[1].strip() for line in out.splitlines() if line.startswith("import time:")
            and "|" in line}


def import_time_us(code: str, baseline: set[str], cwd: str) -> int:
    """Microseconds spent importing, by ``python -X importtime -c code``: the top-level imports' cumulative times."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{code!r} failed:\n{proc.stderr[-2000:]}")
    total = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if cumulative.strip().isdigit() and not name.startswith("  ") and name.strip() not in baseline:
            total += int(cumulative)
    return total


def heavy_modules(code: str, cwd: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd)
    return proc.stdout.split()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    baseline = _baseline_modules()
    times: dict[str, list[int]] = {name: [] for name in COMMANDS}
    # A directory outside any checkout, so the installed package is what gets imported.
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.repeats):
            for name, code in COMMANDS.items():
                times[name].append(import_time_us(code, baseline, cwd))
        heavy = {name: heavy_modules(code, cwd) for name, code in COMMANDS.items()}
    optuna_ms = statistics.median(times["import optuna"]) / 1000
    print(f"python {sys.version.split()[0]}, {args.repeats} runs each, median of -X importtime")
    print(f"{'command':<20} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'x optuna':>9}  heavy modules loaded")
    for name, values in times.items():
        median = statistics.median(values) / 1000
        print(f"{name:<20} {median:>10.0f} {min(values) / 1000:>8.0f} {max(values) / 1000:>8.0f} "
              f"{median / optuna_ms:>9.2f}  {' '.join(heavy[name]) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
