"""Public names of a package imported on first use (PEP 562 module ``__getattr__``).

``import sh_scaling`` should cost little more than ``import optuna``: a worker process, ``sh-scaling --help``
or a script that only reports compute should not wait for scikit-learn, SciPy's statistics or plotting
libraries. A package built on this helper lists its names with the module that defines each; the first access
imports that module and caches the value on the package, so later accesses are plain attribute reads. The
package's ``if TYPE_CHECKING:`` block imports the same names, so that type checkers and editors see the real
objects (tests/test_import_time.py checks that the two lists and ``__all__`` agree).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], *, submodules: bool = False
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public name ``n`` lives in module ``exports[n]``.

    With ``submodules=True`` any other public name is tried as a submodule (``sh_scaling.curves`` after
    ``import sh_scaling``), as when the package imported its subpackages eagerly. ``dir()`` lists the public
    names (and public submodules), not the helpers the package's ``__init__`` imports to set this up.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
            setattr(sys.modules[package], name, value)
            return value
        if submodules and not name.startswith("_"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise  # the submodule exists but something it imports is missing: say so
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        module = sys.modules[package]
        names = {name for name in vars(module) if name.startswith("__")} | set(exports)
        if submodules:
            names |= {m.name for m in pkgutil.iter_modules(module.__path__) if not m.name.startswith("_")}
        return sorted(names)

    return __getattr__, __dir__
