"""A fast import: ``import sh_scaling``, the pruner's import and ``sh-scaling --help`` leave scikit-learn, SciPy's
statistics, the plotting libraries and torch unimported (each is imported where it is used), while every public
name stays importable as before. Timings are in benchmarks/bench_import_time.py."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sklearn", "scipy.stats", "matplotlib", "plotly", "torch")
# Packages whose public names are imported on first use (sh_scaling._lazy).
LAZY = ("sh_scaling", "sh_scaling.surrogates")


def heavy_modules_after(code: str, cwd: Path) -> tuple[list[str], str]:
    """The heavy modules a fresh interpreter holds after running ``code`` (from ``cwd``), and its stdout."""
    probe = (
        "import contextlib, io, sys\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        + "".join(f"        {line}\n" for line in code.splitlines())
        + "    except SystemExit:\n"
        "        pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print(out.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    first, _, rest = result.stdout.partition("\n")
    return first.split(), rest


@pytest.mark.parametrize("code", [
    "import sh_scaling",
    "from sh_scaling import SurrogateHalvingPruner, report",
    "import sh_scaling.surrogates, sh_scaling.pruning, sh_scaling.halving, sh_scaling.keys",
])
def test_import_leaves_heavy_modules_alone(code, tmp_path):
    heavy, _ = heavy_modules_after(code, tmp_path)
    assert heavy == [], f"{code!r} imported {heavy}: import them inside the functions that use them"


def test_cli_help_leaves_heavy_modules_alone(tmp_path):
    heavy, out = heavy_modules_after("from sh_scaling.cli import main\nmain(['--help'])", tmp_path)
    assert "simulate" in out and "report" in out, out  # the sub-commands were all registered
    assert heavy == [], f"sh-scaling --help imported {heavy}: import them inside the command's run function"


def test_first_use_imports_what_it_needs(tmp_path):
    """The lazy names are the real objects, and a subpackage is reachable as an attribute after ``import
    sh_scaling`` (as when the package imported its subpackages eagerly)."""
    code = (
        "import sys, sh_scaling\n"
        "from sh_scaling.surrogates import GPSurrogate, PowerLawSurrogate\n"
        "from sh_scaling.surrogates._gp import GPSurrogate as defined\n"
        "assert GPSurrogate is defined and 'sklearn' in sys.modules\n"
        "assert sh_scaling.curves.generate_synthetic is not None\n"
        "assert sh_scaling.SurrogateHalvingPruner is sh_scaling.pruning.SurrogateHalvingPruner\n"
        "assert 'SurrogateHalvingPruner' in vars(sh_scaling)  # cached after the first access\n"
        "names = set(dir(sh_scaling))\n"
        "assert {'curves', 'pruning', 'surrogates', 'laws', 'keys', 'schedules', 'halving', '__version__'} <= names\n"
        "assert not names & {'Path', 'TYPE_CHECKING', 'lazy_exports', 'add_integrations_finder'}, names\n"
        "try:\n"
        "    sh_scaling.no_such_name\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_name' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('sh_scaling.no_such_name resolved')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _type_checking_imports(package: str) -> dict[str, str]:
    """name -> module imported under ``if TYPE_CHECKING:`` in the package's ``__init__.py`` (what type checkers
    see)."""
    tree = ast.parse(Path(importlib.import_module(package).__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    return {alias.asname or alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
            for alias in node.names}


@pytest.mark.parametrize("package", LAZY)
def test_lazy_names_agree_with_what_type_checkers_see(package):
    """``__all__``, the names imported for type checkers and the lazy names are one list, each resolving to the
    object its module defines; ``dir()`` lists them all."""
    module = importlib.import_module(package)
    typed = _type_checking_imports(package)
    assert sorted(typed) == sorted(set(module.__all__) - {"__version__"})
    for name, source in typed.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name), name
    assert set(module.__all__) <= set(dir(module))

