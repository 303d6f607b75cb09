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
