"""``sh_scaling.integrations`` when this package is imported from a checkout's source folder.

The repository keeps the framework glue in a top-level ``integrations/`` folder, which installations place at
``sh_scaling/integrations`` (``package-dir`` in pyproject.toml). With the checkout's root first on ``sys.path``
(``python -m pytest`` or ``python -c ...`` run from the root, a script kept there), Python imports the source
folder ``sh_scaling/`` instead of the installation, and that folder has no ``integrations``. A finder that
answers for that one name, with the folder beside the package, makes a checkout import the way an installation
does. Installations (wheels, editable installs of either mode) hold ``sh_scaling/integrations`` themselves or
have no ``integrations/`` beside the package, and get no finder.

Extending ``sh_scaling.__path__`` with the checkout's root would also resolve the name, but it would make every
folder of the root (``tests``, ``examples``, ``sh_scaling`` itself) a subpackage of ``sh_scaling``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

NAME = "sh_scaling.integrations"


class IntegrationsFinder(importlib.abc.MetaPathFinder):
    """Finds ``sh_scaling.integrations`` in ``folder`` (its submodules are then found through its ``__path__``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != NAME:
            return None
        return importlib.util.spec_from_file_location(
            NAME, self.folder / "__init__.py", submodule_search_locations=[str(self.folder)]
        )


def checkout_integrations(package_dir: Path) -> Path | None:
    """The checkout's ``integrations/`` folder if ``package_dir`` is a checkout's source folder, else None."""
    folder = package_dir.parent / "integrations"
    if (package_dir / "integrations").exists() or not (package_dir.parent / "pyproject.toml").is_file():
        return None
    return folder if (folder / "__init__.py").is_file() else None


def add_integrations_finder(package_dir: Path) -> None:
    """Lets ``sh_scaling.integrations`` import from a checkout's source folder (once; nothing elsewhere)."""
    folder = checkout_integrations(package_dir)
    if folder is not None and not any(isinstance(f, IntegrationsFinder) for f in sys.meta_path):
        # After the standard finders, so that anything they find comes first.
        sys.meta_path.append(IntegrationsFinder(folder))
