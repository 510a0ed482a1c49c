"""The `lhubic` command.

Each subcommand is a function in the module that implements it, and that
module is imported only when the subcommand runs. So `lhubic --help` imports
neither OpenStack Swift (the `server` extra) nor the storage commands, and one
module can hold several related subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple, cast


class Subcommand(NamedTuple):
    """The module, function and help text of one subcommand.

    ``function`` takes the arguments after the subcommand's name and returns
    the exit status. ``extra`` is the optional dependency group that the module
    needs, named in the error when an import fails.
    """

    module: str
    function: str
    help: str
    extra: str | None = None


_STORAGE = "lhubic.storage_commands"

SUBCOMMANDS = {
    "ls": Subcommand(_STORAGE, "ls_main", "list containers, or the objects of one"),
    "upload": Subcommand(
        _STORAGE, "upload_main", "upload a file or a folder to a container"
    ),
    "download": Subcommand(
        _STORAGE, "download_main", "download a container's objects, or one object"
    ),
    "usage": Subcommand(_STORAGE, "usage_main", "print the quota and the bytes used"),
    "walkthrough": Subcommand(
        "lhubic.walkthrough",
        "main",
        "start the local service and run a guided session against it",
        extra="server",
    ),
    "server": Subcommand(
        "lhubic.server.command",
        "main",
        "run the local hubiC-compatible service in the foreground",
        extra="server",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lhubic",
        description="Client and local service for hubiC-style object storage.",
        epilog="Run 'lhubic COMMAND --help' for a command's options and an example.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, subcommand in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=subcommand.help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named in ``argv`` and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args or args[0] not in SUBCOMMANDS:
        try:
            parsed = parser.parse_args(args)
        except SystemExit as exit_request:
            # argparse exits 0 after --help and 2 for an unknown subcommand.
            code = exit_request.code
            return code if isinstance(code, int) else 2
        if parsed.command is None:
            parser.print_help()
            return 2

    subcommand = SUBCOMMANDS[args[0]]
    try:
        module = importlib.import_module(subcommand.module)
    except ModuleNotFoundError as error:
        package = f"lhubic[{subcommand.extra}]" if subcommand.extra else "lhubic"
        print(
            f"lhubic {args[0]}: missing dependency {error.name!r}; "
            f"install it with: pip install '{package}'",
            file=sys.stderr,
        )
        return 2
    function = cast(Callable[[list[str]], int], getattr(module, subcommand.function))
    return function(args[1:])


if __name__ == "__main__":
    sys.exit(main())
