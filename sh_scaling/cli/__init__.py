"""The ``sh-scaling`` command line.

Each sub-command lives in its own module of this package and defines ``register(subparsers)``, which adds its
parser and sets ``func`` (called with the parsed arguments, returning an exit status). Modules are found at
start-up, so a command is added by adding a module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sh-scaling",
        description="Cheap scaling-law sweeps: simulate budget allocation, plan sweeps, calibrate step time, "
        "report on a study.",
    )
    from sh_scaling import __version__

    parser.add_argument("--version", action="version", version=f"sh-scaling {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # bad input, an unreadable file, no network: one line, no traceback
        print(f"sh-scaling {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
