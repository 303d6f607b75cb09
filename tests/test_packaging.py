"""The package list in pyproject.toml names every package, since it cannot be discovered: `integrations/` is
installed as `sh_scaling.integrations`. A package left out is missing from wheels and from the README's
(strict) editable install, though it still imports from a checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "sh_scaling").rglob("__init__.py")
    } | {"sh_scaling.integrations"}
    listed = set(setuptools["packages"])
    assert not on_disk - listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"listed in pyproject.toml but not on disk: {sorted(listed - on_disk)}"
    assert setuptools["package-dir"]["sh_scaling.integrations"] == "integrations"
    assert (ROOT / "integrations" / "__init__.py").is_file()


CORE = ("optuna", "numpy", "scipy", "scikit-learn", "pandas")


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            package, version = line.split("==", 1)
            pins[package.strip().lower()] = version.strip()
    return pins


def test_supported_ranges_are_the_tested_ones():
    """The lower bound of each core dependency is the version CI pins as the oldest, and the newest tested pin
    lies inside the declared range: the claim in pyproject.toml is what .ci/run runs."""
    from packaging.requirements import Requirement

    deps = {Requirement(d).name.lower(): Requirement(d) for d in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    oldest, newest = _pins("constraints-oldest.txt"), _pins("constraints-newest.txt")
    for name in CORE:
        spec = deps[name].specifier
        lower = [s.version for s in spec if s.operator == ">="]
        assert lower == [oldest[name]], f"{name}: pyproject says {spec}, .ci/constraints-oldest.txt pins {oldest[name]}"
        assert spec.contains(newest[name]), f"{name}: the newest tested {newest[name]} is outside {spec}"
        assert any(s.operator == "<" for s in spec), f"{name}: declare an upper bound ({spec})"


def test_one_place_for_the_version():
    """pyproject.toml reads the version from ``sh_scaling.__version__``; the installed metadata agrees (a stale
    install shows here) and CHANGELOG.md has an entry for it below its Unreleased section."""
    import importlib.metadata
    import re

    import sh_scaling

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sh_scaling.__version__"}
    assert importlib.metadata.version("sh_scaling") == sh_scaling.__version__
    sections = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert sections[:2] == ["Unreleased", sh_scaling.__version__], sections
