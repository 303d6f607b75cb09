"""Sphinx configuration: the API reference comes from the docstrings, the guides are MyST Markdown.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import sh_scaling  # noqa: E402  (installed; the build documents the installed package)

try:
    import sh_scaling.integrations  # noqa: E402,F401
except ModuleNotFoundError as exc:
    # From the checkout's root, plain ``python`` imports the source folder sh_scaling/, which lacks the
    # integrations subpackage that the install maps in from integrations/.
    raise RuntimeError(
        f"sh_scaling.integrations cannot be imported from {Path(sh_scaling.__file__).parent}: install the "
        "project (pip install -e \".[docs]\" --config-settings editable_mode=strict) and build with python -P "
        "-m sphinx, which keeps the checkout's source folder off sys.path"
    ) from exc

project = "sh_scaling"
author = "sh_scaling authors"
copyright = "sh_scaling authors, Apache-2.0"
release = version = sh_scaling.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
    "public_api",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# Docstrings are Google style (``Args:``, ``Returns:``, ``Raises:``).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_class_signature = "mixed"
autodoc_default_options = {"show-inheritance": True}
# Long reprs of default values (constants, dataclass instances) stay readable.
autodoc_preserve_defaults = True

# Every module whose ``__all__`` the reference documents (``public_api`` warns about a public name, or a public
# module with ``__all__``, that no page documents).
public_api_modules = [
    "sh_scaling",
    "sh_scaling.curves",
    "sh_scaling.schedules",
    "sh_scaling.surrogates",
    "sh_scaling.halving",
    "sh_scaling.pruning",
    "sh_scaling.simulation",
    "sh_scaling.laws",
    "sh_scaling.sampling",
    "sh_scaling.budgeted",
    "sh_scaling.visualization",
    "sh_scaling.visualization.matplotlib",
    "sh_scaling.keys",
    "sh_scaling.integrations",
    "sh_scaling.constants",
    "sh_scaling.benchmarking",
    "sh_scaling.cli",
]
# Packages whose submodules' names are not API: the subcommands of ``sh-scaling``, used through the command line.
public_api_excluded = ["sh_scaling.cli"]

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"sh_scaling {release}"
html_static_path = ["_static"]
html_css_files = ["wide.css"]

# The page's table of contents names a method by itself (``prune()``), not by its class as well.
toc_object_entries_show_parents = "hide"
