"""The `lhubic` command.

Each subcommand lives in the module that implements it and is imported only
when it runs, so `lhubic --help` works without the `server` extra.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

# Subcommand name -> (module, help text). Each module has main(argv) -> int.
SUBCOMMANDS = {
    "walkthrough": (
        "lhubic.walkthrough",
        "start the local service and run a guided session against it",
    ),
    "server": (
        "lhubic.server.command",
        "run the local hubiC-compatible service in the foreground",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lhubic",
        description="Client and local service for hubiC-style object storage.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named in ``argv`` and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args or args[0] not in SUBCOMMANDS:
        # argparse prints the usage and exits 2 for an unknown subcommand.
        parsed = parser.parse_args(args)
        if parsed.command is None:
            parser.print_help()
            return 2
    module_name, _ = SUBCOMMANDS[args[0]]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        print(
            f"lhubic {args[0]}: missing dependency {error.name!r}; "
            "install it with: pip install 'lhubic[server]'",
            file=sys.stderr,
        )
        return 2
    subcommand_main = cast(Callable[[list[str]], int], module.main)
    return subcommand_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
