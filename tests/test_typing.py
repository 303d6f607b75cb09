"""A user's type checker resolves the installed package: mypy on a user's script types `sh_scaling` and
`sh_scaling.integrations` from the installation, not from this checkout.

setuptools' default editable install of this project is an import hook (``integrations/`` is installed as
``sh_scaling.integrations``), which no type checker follows; the README installs with
``--config-settings editable_mode=strict`` (a link tree on ``sys.path``) so that they can.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USER_SCRIPT = """\
import sh_scaling
from sh_scaling.integrations import TrialReporter, tell_on_error

reveal_type(sh_scaling.SurrogateHalvingPruner)
reveal_type(tell_on_error)
"""


def _on_sys_path(module: str) -> bool:
    """Whether a directory on ``sys.path`` holds ``module`` as files, which is where a type checker looks."""
    package = Path(*module.split(".")) / "__init__.py"
    return any((Path(entry) / package).is_file() for entry in sys.path if entry)


@pytest.mark.slow
def test_user_mypy_resolves_the_installed_package(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (it is in the `test` extra)")
    if not _on_sys_path("sh_scaling.integrations"):
        pytest.skip(
            "sh_scaling is installed through setuptools' import hook, which type checkers cannot follow; "
            "reinstall with the README's command: "
            'pip install -e ".[test]" --config-settings editable_mode=strict'
        )
    (tmp_path / "user_script.py").write_text(USER_SCRIPT)
    # Run from the user's directory: mypy also searches the current directory, which must not be this checkout.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / ".mypy_cache"), "user_script.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "import-not-found" not in out
    revealed = [line.split("Revealed type is ", 1)[1] for line in out.splitlines() if "Revealed type is" in line]
    assert len(revealed) == 2, out
    pruner, tell = revealed
    # Real types from the installed sources, not Any: the package and its integrations were found and read.
    assert "sh_scaling.pruning._pruner.SurrogateHalvingPruner" in pruner, pruner
    assert "optuna.study.study.Study" in tell, tell
