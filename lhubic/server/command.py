"""``lhubic server``: run the local hubiC service in the foreground.

The command prints the API URL and a line starting with ``ready`` once the
service responds, then runs until SIGINT (Ctrl-C) or SIGTERM, and stops Swift
and the HTTP service before it exits with status 0. Without ``--config`` it
registers a demonstration application and user, whose credentials
``lhubic server --help`` prints.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from lhubic.exceptions import HubicConfigError, HubicError, HubicInputError

from .service import HubicServer
from .swift_launcher import OBJECT_SERVER_KINDS

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_LOGIN",
    "DEMO_PASSWORD",
    "DEMO_REDIRECT_URI",
    "build_parser",
    "main",
]

logger = logging.getLogger(__name__)

# Published demonstration values, not secrets: the service listens on
# 127.0.0.1 only.
DEMO_CLIENT_ID = "api_hubic_demo"
DEMO_CLIENT_SECRET = "demo-secret"  # noqa: S105
# The redirect URI that lhubic.Hubic uses by default, so it needs no setting.
DEMO_REDIRECT_URI = "http://localhost:8080/"
DEMO_LOGIN = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


DEMO_HELP = f"""\
Without --config, the service registers a demonstration application and user
(local-only values, not secrets):
  client id      {DEMO_CLIENT_ID}
  client secret  {DEMO_CLIENT_SECRET}
  redirect URI   {DEMO_REDIRECT_URI}
  login          {DEMO_LOGIN}
  password       {DEMO_PASSWORD}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lhubic server",
        description=(
            "Run the local hubiC-compatible service (OAuth2, REST API and "
            "OpenStack Swift) on 127.0.0.1 until Ctrl-C or SIGTERM."
        ),
        epilog=DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with the users, applications and lifetimes "
        "(default: a demonstration user and application)",
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="N",
        help="TCP port of the API on 127.0.0.1 (default: the configuration "
        "file's, else a free port)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="folder for Swift's data, kept after the service stops "
        "(default: a temporary folder, removed on stop)",
    )
    parser.add_argument(
        "--object-server",
        choices=OBJECT_SERVER_KINDS,
        default="auto",
        help="Swift object server: disk, memory, or auto (disk when the data "
        "folder takes large extended attributes; default)",
    )
    parser.add_argument(
        "--object-workers",
        type=int,
        metavar="N",
        help="processes that serve objects with the disk object server "
        "(default: one per core; 0 serves them from the Swift process)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every request (DEBUG level)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the service until SIGINT or SIGTERM and return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    stop_requested = threading.Event()
    with _stop_on_signals(stop_requested):
        try:
            server = _create_server(args)
            server.start()
        except (HubicConfigError, HubicInputError) as error:
            print(f"lhubic server: {error}", file=sys.stderr)
            return EXIT_USAGE
        except HubicError as error:
            print(f"lhubic server: failed to start: {error}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED

        try:
            _print_banner(server, demo=args.config is None)
            while not stop_requested.wait(0.5):
                pass
        finally:
            server.stop()

    print("lhubic server stopped", flush=True)
    return EXIT_OK


def _create_server(args: argparse.Namespace) -> HubicServer:
    server = HubicServer(
        data_dir=args.data_dir,
        config=args.config,
        port=args.port,
        object_server=args.object_server,
        object_workers=args.object_workers,
    )
    if args.config is None:
        server.add_app(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI)
        server.add_user(DEMO_LOGIN, DEMO_PASSWORD, firstname="Demo", lastname="User")
    return server


def _print_banner(server: HubicServer, *, demo: bool) -> None:
    print(f"API URL: {server.api_url}", flush=True)
    print(f"Swift URL: {server.swift_url}", flush=True)
    print(f"data folder: {server.data_dir} ({_storage_note(server)})", flush=True)
    if demo:
        print(
            f"demonstration application {DEMO_CLIENT_ID} and user {DEMO_LOGIN} "
            "registered; `lhubic server --help` shows their credentials",
            flush=True,
        )
    seconds = server.start_seconds or 0.0
    print(f"ready in {seconds:.2f} s; press Ctrl-C to stop", flush=True)


def _storage_note(server: HubicServer) -> str:
    cluster = server.cluster
    if cluster.object_server_kind == "memory":
        return "in-memory object server: objects are lost on stop"
    workers = cluster.object_worker_count or 0
    if workers == 0:
        return "disk object server"
    noun = "process" if workers == 1 else "processes"
    return f"disk object server in {workers} worker {noun}"


@contextmanager
def _stop_on_signals(stop_requested: threading.Event) -> Iterator[None]:
    """Set ``stop_requested`` on SIGINT and SIGTERM while the block runs.

    Signal handlers can only be installed from the main thread, so elsewhere
    (for example a test calling main() in a thread) the defaults stay.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop_requested.set()

    previous = {
        signum: signal.signal(signum, request_stop)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
