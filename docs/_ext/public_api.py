"""Sphinx extension: API pages made from each module's ``__all__``, and a check that nothing public is missing.

``.. public-module:: sh_scaling.curves`` documents every name in the module's ``__all__``, in that order, with
autodoc. A name the module imports from another documented module (``sh_scaling.SurrogateHalvingPruner`` comes
from ``sh_scaling.pruning``) is documented once, in its home module, and listed on the importing module's page
as a link to it.

When the build has read every page, each name in the ``__all__`` of every module in ``public_api_modules``
(conf.py) must have been documented in its home module, and every public module of the package that has an
``__all__`` must be in that list; anything else is a warning, so ``sphinx -W`` fails.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def _source_module_of_imports(module_name: str) -> dict[str, str]:
    """Name -> absolute module it is imported from, for the ``from X import name`` statements of a module."""
    module = importlib.import_module(module_name)
    path = inspect.getsourcefile(module)
    if path is None:
        return {}
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    package = module_name if Path(path).name == "__init__.py" else module_name.rpartition(".")[0]
    found: dict[str, str] = {}
    # Imports under `if TYPE_CHECKING:` count too: a package that loads its names lazily (PEP 562 __getattr__)
    # states where they come from there.
    statements = []
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            statements.extend(node.body)
        else:
            statements.append(node)
    for node in statements:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                found[alias.asname or alias.name] = source
    return found


def home_module(module_name: str, name: str, documented: list[str]) -> str:
    """The documented module a public name of ``module_name`` belongs to (itself unless imported from another)."""
    source = _source_module_of_imports(module_name).get(name)
    if source is None:
        return module_name
    owners = [m for m in documented if source == m or source.startswith(m + ".")]
    return max(owners, key=len) if owners else module_name


def public_names(module_name: str) -> list[str]:
    names = getattr(importlib.import_module(module_name), "__all__", None)
    if names is None:
        raise ValueError(f"public_api_modules lists {module_name}, which has no __all__")
    return list(names)


class PublicModule(SphinxDirective):
    """``.. public-module:: NAME``: the module's docstring, then every name of its ``__all__``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        documented = self.config.public_api_modules
        if module_name not in documented:
            raise self.error(f"{module_name} is not in public_api_modules (conf.py)")
        own: list[str] = []
        elsewhere: list[tuple[str, str]] = []
        for name in public_names(module_name):
            home = home_module(module_name, name, documented)
            (own.append(name) if home == module_name else elsewhere.append((name, home)))
        lines = [f".. automodule:: {module_name}", "   :no-members:", ""]
        if elsewhere:
            lines += ["Also here, documented where they are defined:", ""]
            lines += [f"* ``{module_name}.{name}``: :py:obj:`{home}.{name}`" for name, home in elsewhere]
            lines += [""]
        module = importlib.import_module(module_name)
        for name in own:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                lines += [f".. autoclass:: {name}", "   :members:", ""]
            elif callable(obj):
                lines += [f".. autofunction:: {name}", ""]
            else:
                lines += [f".. autodata:: {name}", ""]
        content = StringList(lines, source=f"<public-module {module_name}>")
        container = nodes.container()
        self.state.nested_parse(content, self.content_offset, container)
        return container.children


def _check_complete(app: Sphinx, env: BuildEnvironment) -> None:
    documented: list[str] = app.config.public_api_modules
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    for module_name in documented:
        for name in public_names(module_name):
            home = home_module(module_name, name, documented)
            if f"{home}.{name}" not in objects:
                logger.warning(f"public name {module_name}.{name} is not documented (expected {home}.{name})")
    # Every public name of any other public module is one of the documented objects, or documented on its own.
    known = {id(getattr(importlib.import_module(m), n)) for m in documented for n in public_names(m)}
    package = importlib.import_module(app.config.public_api_package)
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        if (any(part.startswith("_") for part in info.name.split(".")) or info.name in documented
                or any(info.name.startswith(m + ".") for m in app.config.public_api_excluded)):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            if id(getattr(module, name)) not in known and f"{info.name}.{name}" not in objects:
                logger.warning(f"public name {info.name}.{name} is not documented")


def _skip_foreign_member(app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Leave out class members made by other libraries: scikit-learn's ``set_*_request`` methods, and a named
    tuple's field accessors (the class docstring's ``Attributes:`` says what each field is)."""
    if what == "class" and (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    module = getattr(obj, "__module__", None)
    if what == "class" and isinstance(module, str) and not module.startswith(app.config.public_api_package):
        return True
    return None


def _drop_type_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """A constant without a docstring of its own would show its type's (``dict``'s, ``tuple``'s): drop it."""
    if what in ("data", "attribute") and not inspect.isclass(obj) and not callable(obj):
        type_doc = type(obj).__doc__
        if isinstance(type_doc, str) and "\n".join(lines).strip() == inspect.cleandoc(type_doc).strip():
            lines.clear()


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("public_api_modules", [], "env")
    app.add_config_value("public_api_package", "sh_scaling", "env")
    app.add_config_value("public_api_excluded", [], "env")
    app.add_directive("public-module", PublicModule)
    app.connect("env-check-consistency", _check_complete)
    app.connect("autodoc-process-docstring", _drop_type_docstring)
    app.connect("autodoc-skip-member", _skip_foreign_member)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
