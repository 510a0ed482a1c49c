"""``lhubic ls``, ``upload``, ``download`` and ``usage``: storage from the shell.

Each command logs in the way `lhubic.Hubic` does, from the ``HUBIC_*``
environment variables, with ``--api-url`` and ``--token-store`` on top. No
option takes a password or a secret, because other users can read a
command line in ``ps``. When the password is missing and stdin is a
terminal, the command prompts for it.

Exit status: 0 on success, 1 when a file or a call failed, 2 for usage and
configuration errors (argparse's own included), and 130 when interrupted.
Expected errors print one line ``lhubic <command>: <message>`` on stderr,
without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import requests
from swiftclient.exceptions import ClientException

from .bulk import FileResult, FileStatus, _unchanged_local, download_tree, upload_tree
from .command_login import connect
from .connection import Hubic
from .exceptions import (
    HubicAccessFailure,
    HubicConfigError,
    HubicError,
    HubicInputError,
    HubicObjectNotFound,
)
from .large_objects import MAX_OBJECT_SIZE, MIN_SEGMENT_SIZE
from .listing import iter_containers, iter_objects
from .names import validate_container_name, validate_object_name
from .progress_line import ProgressLine, format_size, format_summary
from .security import install_secret_filter

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_download_parser",
    "build_ls_parser",
    "build_upload_parser",
    "build_usage_parser",
    "download_main",
    "ls_main",
    "parse_size",
    "upload_main",
    "usage_main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Errors found before anything is sent: a bad option value, a missing setting
# or a missing local path.
_USAGE_ERRORS = (HubicConfigError, HubicInputError)
# Errors of a call or a transfer, which exit with EXIT_FAILED.
_CALL_ERRORS = (HubicError, ClientException, OSError, requests.RequestException)

# The width of the help text's description, which RawDescriptionHelpFormatter
# would not wrap.
_HELP_WIDTH = 79

_LOGGED_PACKAGES = ("lhubic", "swiftclient")

_SIZE_PATTERN = re.compile(r"\s*(\d+)\s*([A-Za-z]*)\s*")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
}

_ENVIRONMENT_HELP = """\
settings, read from the environment as lhubic.Hubic reads them:
  HUBIC_CLIENT_ID, HUBIC_CLIENT_SECRET  the application (required)
  HUBIC_USERNAME, HUBIC_PASSWORD        the account's login and password; a
                                        terminal prompts for the missing ones
  HUBIC_REFRESH_TOKEN                   a saved refresh token, instead of them
  HUBIC_API_URL                         the service (default https://api.hubic.com)
  HUBIC_REDIRECT_URI                    the application's redirect URI

exit status: 0 success, 1 a file or call failed, 2 usage or configuration error
"""


# Parsers.


def build_ls_parser() -> argparse.ArgumentParser:
    """Return the parser of ``lhubic ls``."""
    parser = _new_parser(
        "ls",
        "List the containers of the account, or the objects of CONTAINER, one "
        "name a line on stdout. Listings of any length are read 10,000 names a "
        "page.",
        "lhubic ls default --prefix photos/ --long",
    )
    parser.add_argument(
        "container",
        nargs="?",
        metavar="CONTAINER",
        help="the container whose objects to list (default: list the containers)",
    )
    parser.add_argument(
        "--prefix",
        default="",
        metavar="P",
        help="list only the names that start with P",
    )
    parser.add_argument(
        "-l",
        "--long",
        action="store_true",
        help="for containers, also print the object count and the bytes used; "
        "for objects, the size in bytes, the last-modified time (UTC) and "
        "the ETag. The name comes last",
    )
    return parser


def build_upload_parser() -> argparse.ArgumentParser:
    """Return the parser of ``lhubic upload``."""
    parser = _new_parser(
        "upload",
        "Upload a file or a folder to CONTAINER, creating the container if it "
        "is missing. A file becomes the object P + its base name. Every file "
        "under a folder becomes P + its path inside the folder, so the "
        "folder's own name is not part of the object names. Files whose size "
        "and MD5 match the stored object are skipped; a large object matches "
        "only when it was stored with the same segment size.",
        "lhubic upload ~/photos default --prefix photos/ --workers 8",
    )
    parser.add_argument("path", metavar="PATH", help="the local file or folder")
    parser.add_argument("container", metavar="CONTAINER", help="the container")
    parser.add_argument(
        "--prefix",
        default="",
        metavar="P",
        help="text put before every object name, usually ending with / (default: none)",
    )
    _add_transfer_options(parser)
    parser.add_argument(
        "--segment-size",
        type=_segment_size,
        metavar="SIZE",
        help="size of the segments of a large file, in bytes or with a unit "
        "K, M or G (powers of 1024), from 1M to 5G (default: 256M)",
    )
    parser.add_argument(
        "--large-object-threshold",
        type=_threshold,
        metavar="SIZE",
        help="files larger than SIZE are uploaded in segments, as static large "
        "objects; in bytes or with a unit K, M or G, up to 5G (default: 256M)",
    )
    return parser


def build_download_parser() -> argparse.ArgumentParser:
    """Return the parser of ``lhubic download``."""
    parser = _new_parser(
        "download",
        "Download every object of CONTAINER whose name starts with P into the "
        "folder DEST, created if missing. The object P + 'a/b.jpg' becomes "
        "DEST/a/b.jpg. Files that already match the stored object are "
        "skipped, and other existing files are replaced. With --object NAME, "
        "only that object is downloaded, to the file DEST (replaced if it "
        "exists), or under its base name into DEST when DEST is a folder or "
        "ends with /.",
        "lhubic download default ~/restore --prefix photos/\n"
        "  lhubic download default notes.txt --object documents/notes.txt",
    )
    parser.add_argument("container", metavar="CONTAINER", help="the container")
    parser.add_argument(
        "dest", metavar="DEST", help="the local folder, or the file with --object"
    )
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument(
        "--prefix",
        default="",
        metavar="P",
        help="download only the objects whose names start with P, and leave P "
        "out of the local paths (default: every object)",
    )
    selection.add_argument(
        "--object",
        metavar="NAME",
        help="download the one object NAME, given in full, to a file",
    )
    _add_transfer_options(parser)
    return parser


def build_usage_parser() -> argparse.ArgumentParser:
    """Return the parser of ``lhubic usage``."""
    return _new_parser(
        "usage",
        "Print the bytes used, the quota and the bytes free, from the hubiC "
        "REST API (/1.0/account/usage).",
        "lhubic usage --token-store ~/.config/lhubic/tokens.json",
    )


def _new_parser(
    command: str, description: str, example: str
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"lhubic {command}",
        description=textwrap.fill(description, _HELP_WIDTH),
        epilog=f"example:\n  {example}\n\n{_ENVIRONMENT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--api-url",
        metavar="URL",
        help="base URL of the hubiC service, without /1.0 (default: "
        "HUBIC_API_URL, else https://api.hubic.com)",
    )
    parser.add_argument(
        "--token-store",
        metavar="PATH",
        help="JSON file, written with mode 0600, that keeps the tokens between "
        "runs, so that later runs log in without the password",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr: -v at INFO, -vv at DEBUG (no secrets are logged)",
    )
    return parser


def _add_transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="number of files, or parts of a large file, moved at once (default: 4)",
    )
    display = parser.add_mutually_exclusive_group()
    display.add_argument(
        "--progress",
        action="store_true",
        help="draw the progress line even when stderr is not a terminal",
    )
    display.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print neither the progress line nor the summary; failures are "
        "still printed",
    )


def parse_size(text: str) -> int:
    """Parse a size such as ``"1048576"``, ``"512K"``, ``"256M"`` or ``"1GiB"``.

    Units are powers of 1,024 and case-insensitive. Raises
    `argparse.ArgumentTypeError` for anything else.
    """
    match = _SIZE_PATTERN.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: expected a whole number of bytes, optionally "
            "followed by K, M or G (powers of 1024), such as 256M"
        )
    return int(match.group(1)) * _SIZE_UNITS[unit]


def _segment_size(text: str) -> int:
    size = parse_size(text)
    if not MIN_SEGMENT_SIZE <= size <= MAX_OBJECT_SIZE:
        raise argparse.ArgumentTypeError(
            f"invalid segment size {text!r}: Swift needs segments from 1M to 5G"
        )
    return size


def _threshold(text: str) -> int:
    size = parse_size(text)
    if size > MAX_OBJECT_SIZE:
        raise argparse.ArgumentTypeError(
            f"invalid threshold {text!r}: Swift stores at most 5G in one object, "
            "so larger files must be segmented; pass 5G or less"
        )
    return size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"invalid count {text!r}: pass a whole number of 1 or more"
        )
    return value


# Entry points, called by lhubic.cli with the arguments after the command name.


def ls_main(argv: Sequence[str]) -> int:
    """Run ``lhubic ls`` and return its exit status."""
    return _run(build_ls_parser(), _list, argv)


def upload_main(argv: Sequence[str]) -> int:
    """Run ``lhubic upload`` and return its exit status."""
    return _run(build_upload_parser(), _upload, argv)


def download_main(argv: Sequence[str]) -> int:
    """Run ``lhubic download`` and return its exit status."""
    return _run(build_download_parser(), _download, argv)


def usage_main(argv: Sequence[str]) -> int:
    """Run ``lhubic usage`` and return its exit status."""
    return _run(build_usage_parser(), _usage, argv)


def _run(
    parser: argparse.ArgumentParser,
    command: Callable[[argparse.Namespace], int],
    argv: Sequence[str],
) -> int:
    """Parse ``argv``, run ``command`` and turn expected errors into exit codes."""
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_request:
        # argparse exits 0 after --help and 2 after a usage error.
        code = exit_request.code
        return code if isinstance(code, int) else EXIT_USAGE

    with _stderr_logging(args.verbose, parser.prog):
        try:
            return command(args)
        except _USAGE_ERRORS as error:
            _print_error(parser.prog, error)
            return EXIT_USAGE
        except BrokenPipeError:
            # The reader of stdout went away, as with `lhubic ls | head`.
            _discard_stdout()
            return EXIT_FAILED
        except _CALL_ERRORS as error:
            _print_error(parser.prog, error)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(f"{parser.prog}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED


def _print_error(prog: str, error: BaseException) -> None:
    print(f"{prog}: {_one_line(error)}", file=sys.stderr)


def _one_line(error: BaseException | None) -> str:
    # swiftclient's messages can carry a response body with line breaks.
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _discard_stdout() -> None:
    # Python flushes stdout at exit, which would raise into the closed pipe
    # again and print a traceback.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@contextmanager
def _stderr_logging(verbosity: int, prog: str) -> Iterator[None]:
    """Send lhubic's and swiftclient's log records to stderr while the block runs.

    Without ``-v``, lhubic's warnings still go to stderr, one line each
    prefixed with ``prog``: a rejected saved refresh token or a retry in
    progress would otherwise pass unnoticed.
    """
    if verbosity <= 0:
        with _warnings_to_stderr(prog):
            yield
        return

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # The shared secret filter also covers records from other libraries, such
    # as urllib3, that reach this handler.
    handler.addFilter(install_secret_filter())
    level = logging.INFO if verbosity == 1 else logging.DEBUG
    loggers = [logging.getLogger(name) for name in _LOGGED_PACKAGES]
    previous_levels = [logger.level for logger in loggers]
    root = logging.getLogger()
    root.addHandler(handler)
    for logger in loggers:
        logger.setLevel(level)

    try:
        yield
    finally:
        root.removeHandler(handler)
        for logger, previous in zip(loggers, previous_levels, strict=True):
            logger.setLevel(previous)


@contextmanager
def _warnings_to_stderr(prog: str) -> Iterator[None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"{prog}: warning: %(message)s"))
    handler.addFilter(install_secret_filter())
    # A failed file of a bulk transfer gets its own line from _report.
    handler.addFilter(lambda record: not record.name.startswith("lhubic.bulk"))
    package_logger = logging.getLogger("lhubic")
    package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)


# ls


def _list(args: argparse.Namespace) -> int:
    if args.container is not None:
        validate_container_name(args.container)
    prefix = args.prefix or None
    hubic = connect(args.api_url, args.token_store)

    try:
        if args.container is None:
            for entry in iter_containers(hubic, prefix=prefix):
                print(_container_line(entry, args.long))
        else:
            for entry in iter_objects(hubic, args.container, prefix=prefix):
                print(_object_line(entry, args.long))
    finally:
        hubic.close()
    return EXIT_OK


# NOTE: a name that contains a line break takes more than one line of output.
def _container_line(entry: dict[str, Any], long: bool) -> str:
    name = str(entry["name"])
    if not long:
        return name
    # Swift's account listing counts lag behind until its container updater
    # has run, so a container written to seconds ago may show 0.
    return f"{int(entry.get('count', 0)):>10}  {int(entry.get('bytes', 0)):>14}  {name}"


def _object_line(entry: dict[str, Any], long: bool) -> str:
    name = str(entry["name"])
    if not long:
        return name
    # A static large object's "hash" is the MD5 of its manifest, and its
    # ETag is "slo_etag".
    etag = str(entry.get("slo_etag") or entry.get("hash") or "").strip('"')
    modified = _utc_time(entry.get("last_modified"))
    return f"{int(entry.get('bytes', 0)):>14}  {modified}  {etag:<32}  {name}"


def _utc_time(value: object) -> str:
    # Swift lists last_modified in UTC, without a zone and with microseconds.
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# upload


def _upload(args: argparse.Namespace) -> int:
    validate_container_name(args.container)
    source = args.path
    name = None
    if os.path.isfile(source):
        name = args.prefix + os.path.basename(source)
        validate_object_name(name)
    elif not os.path.isdir(source):
        raise HubicInputError(
            f"local path {source!r} does not exist or is not a file or a folder; "
            "pass an existing file or folder"
        )
    hubic = connect(args.api_url, args.token_store)
    if args.segment_size is not None:
        hubic.segment_size = args.segment_size
    if args.large_object_threshold is not None:
        hubic.large_object_threshold = args.large_object_threshold

    progress = _progress_line(args)
    started = time.monotonic()
    try:
        if name is None:
            results = upload_tree(
                hubic,
                source,
                args.container,
                prefix=args.prefix,
                workers=args.workers,
                progress=progress,
            )
        else:
            results = [
                _upload_file(hubic, source, args.container, name, args, progress)
            ]
    finally:
        _finish(progress)
        hubic.close()
    return _report(args, "upload", results, time.monotonic() - started)


def _upload_file(
    hubic: Hubic,
    path: str,
    container: str,
    name: str,
    args: argparse.Namespace,
    progress: ProgressLine | None,
) -> FileResult:
    """Upload one file unless the stored object has the same size and ETag."""
    size = os.path.getsize(path)
    stored = _stored_entry(hubic, container, name)
    if stored is not None and _unchanged_local(hubic, path, size, stored):
        if progress is not None:
            progress(size, size, 1, 1)
        return FileResult(path, name, FileStatus.SKIPPED, size)

    hubic.upload_file(container, name, path, workers=args.workers, progress=progress)
    return FileResult(path, name, FileStatus.UPLOADED, size)


def _stored_entry(hubic: Hubic, container: str, name: str) -> dict[str, Any] | None:
    """Return the listing entry of ``name``; create ``container`` if it is missing."""
    try:
        # The name itself sorts first among the names that start with it.
        _, page = hubic.get_container(container, prefix=name, limit=1)
    except HubicObjectNotFound:
        hubic.put_container(container)
        return None

    if page and page[0].get("name") == name:
        entry: dict[str, Any] = page[0]
        return entry
    return None


# download


def _download(args: argparse.Namespace) -> int:
    validate_container_name(args.container)
    if args.object is not None:
        validate_object_name(args.object)
    elif os.path.exists(args.dest) and not os.path.isdir(args.dest):
        raise HubicInputError(
            f"destination {args.dest!r} is a file; pass a folder, or --object "
            "NAME to download one object to a file"
        )
    hubic = connect(args.api_url, args.token_store)

    progress = _progress_line(args)
    started = time.monotonic()
    try:
        if args.object is not None:
            target = _object_target(args.dest, args.object)
            results = [
                _download_file(
                    hubic, args.container, args.object, target, args, progress
                )
            ]
        else:
            # A missing container fails here, before DEST is created.
            hubic.head_container(args.container)
            created = not os.path.isdir(args.dest)
            os.makedirs(args.dest, exist_ok=True)
            results = download_tree(
                hubic,
                args.container,
                args.dest,
                prefix=args.prefix,
                workers=args.workers,
                progress=progress,
            )
            if not results:
                _note_nothing_to_download(args, created)
    finally:
        _finish(progress)
        hubic.close()
    return _report(args, "download", results, time.monotonic() - started)


def _note_nothing_to_download(args: argparse.Namespace, created: bool) -> None:
    """Report that no object matched, and remove DEST if this run created it."""
    if created:
        os.rmdir(args.dest)
    if args.quiet:
        return
    if args.prefix:
        finding = (
            f"no object in container {args.container!r} starts with {args.prefix!r}"
        )
    else:
        finding = f"container {args.container!r} is empty"
    print(f"lhubic download: {finding}; nothing was downloaded", file=sys.stderr)


def _object_target(dest: str, name: str) -> str:
    """Return the file path that ``--object NAME`` downloads to."""
    if not (os.path.isdir(dest) or dest.endswith(("/", os.sep))):
        return dest

    base = name.rstrip("/").rsplit("/", 1)[-1]
    os.makedirs(dest, exist_ok=True)
    return os.path.join(dest, base)


def _download_file(
    hubic: Hubic,
    container: str,
    name: str,
    target: str,
    args: argparse.Namespace,
    progress: ProgressLine | None,
) -> FileResult:
    hubic.download_file(
        container, name, target, workers=args.workers, progress=progress
    )
    return FileResult(target, name, FileStatus.DOWNLOADED, os.path.getsize(target))


# Progress and the summary.


def _progress_line(args: argparse.Namespace) -> ProgressLine | None:
    if args.quiet:
        return None
    if args.progress or sys.stderr.isatty():
        return ProgressLine(sys.stderr)
    return None


def _finish(progress: ProgressLine | None) -> None:
    if progress is not None:
        progress.finish()


def _report(
    args: argparse.Namespace, command: str, results: list[FileResult], seconds: float
) -> int:
    """Print a line per failed file and the summary; return the exit status.

    ``command`` is "upload" or "download". A failed upload is named by its
    local path, a failed download by its object name.
    """
    failed = [result for result in results if result.status is FileStatus.FAILED]
    for result in failed:
        subject = result.path if command == "upload" else result.name
        print(
            f"lhubic {command}: failed to {command} {subject}: "
            f"{_one_line(result.error)}",
            file=sys.stderr,
        )

    if not args.quiet:
        summary = format_summary(f"{command}ed", results, seconds)
        print(f"lhubic {command}: {summary}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


# usage


def _usage(args: argparse.Namespace) -> int:
    hubic = connect(args.api_url, args.token_store)
    try:
        payload = hubic.hubic_get("/account/usage").json()
    finally:
        hubic.close()

    quota = payload.get("quota") if isinstance(payload, dict) else None
    used = payload.get("used") if isinstance(payload, dict) else None
    if not (_is_count(quota) and _is_count(used)):
        raise HubicAccessFailure(
            f"GET /1.0/account/usage returned {payload!r}, not a JSON object "
            "with the integers quota and used"
        )
    assert isinstance(quota, int) and isinstance(used, int)

    share = f", {used / quota:.1%} of the quota" if quota > 0 else ""
    print(f"used   {format_size(used)} ({used:,} bytes){share}")
    print(f"quota  {format_size(quota)} ({quota:,} bytes)")
    free = max(quota - used, 0)
    print(f"free   {format_size(free)} ({free:,} bytes)")
    return EXIT_OK


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
