"""Run from the checkout's root, Python imports the source folder ``sh_scaling/``, not the installation; the
package then finds ``sh_scaling.integrations`` in the top-level ``integrations/`` folder (sh_scaling._source_tree),
so ``python -m pytest`` and ``python -c "import sh_scaling.integrations"`` work there as they do elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sh_scaling._source_tree import checkout_integrations

ROOT = Path(__file__).resolve().parents[1]


def test_integrations_import_from_the_checkout_root():
    code = (
        "import sh_scaling, sh_scaling.integrations, sh_scaling.integrations.torch_loop\n"
        "from sh_scaling.integrations import tell_on_error\n"
        "print(sh_scaling.__file__)\n"
        "print(sh_scaling.integrations.__file__)\n"
        "print(sh_scaling.integrations.torch_loop.__name__)\n"
    )
    # Without -P the current directory comes first on sys.path, as for `python -m pytest` from the root.
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    package, integrations, submodule = result.stdout.split()
    assert Path(package) == ROOT / "sh_scaling" / "__init__.py"  # the source folder, which has no integrations/
    assert Path(integrations) == ROOT / "integrations" / "__init__.py"
    assert submodule == "sh_scaling.integrations.torch_loop"


def _tree(root: Path, files: list[str]) -> Path:
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("")
    return root / "sh_scaling"


def test_only_a_checkout_gets_the_finder(tmp_path):
    checkout = _tree(tmp_path / "checkout", ["pyproject.toml", "sh_scaling/__init__.py", "integrations/__init__.py"])
    assert checkout_integrations(checkout) == tmp_path / "checkout" / "integrations"
    # An installation holds sh_scaling/integrations itself (a wheel, a strict editable install's link tree).
    installed = _tree(tmp_path / "site", ["sh_scaling/__init__.py", "sh_scaling/integrations/__init__.py",
                                         "integrations/__init__.py", "pyproject.toml"])
    assert checkout_integrations(installed) is None
    # Some other `integrations` package beside an installed sh_scaling, with no checkout around it.
    beside = _tree(tmp_path / "other", ["sh_scaling/__init__.py", "integrations/__init__.py"])
    assert checkout_integrations(beside) is None


def test_pytest_without_an_installation_stops_with_the_command_to_run(tmp_path):
    """From the root, the source folder imports without any installation, but the tests need one (the metadata,
    the `sh-scaling` command): tests/conftest.py stops at once with the install command. Simulated with an
    interpreter that sees pytest and nothing else installed (no site-packages)."""
    import importlib.util

    only_pytest = tmp_path / "only_pytest"
    only_pytest.mkdir()
    for name in ("pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "pygments"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue  # not every pytest release needs each of them
        source = Path(spec.origin)
        source = source.parent if source.name == "__init__.py" else source
        (only_pytest / source.name).symlink_to(source)
    result = subprocess.run(
        [sys.executable, "-S", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_curve.py"],
        cwd=ROOT, env={"PYTHONPATH": str(only_pytest), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "sh_scaling is not installed" in result.stdout + result.stderr
    assert "pip install -e" in result.stdout + result.stderr
