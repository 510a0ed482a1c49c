"""Helpers that several test modules share.

- Hubic connections for the local service's registered application and user,
  with quick retries, and users of one test;
- `StandIn`, an HTTP server on 127.0.0.1 for what the local service cannot
  be made to do, and `QuietHandler`, a request handler base for it;
- clocks that tests control: `RecordingClock` for the client and
  `SettableClock` for the service;
- `CountingHubic`, which records every storage request, and
  `run_in_threads`, which calls a function from several threads at once;
- a Swift cluster in a temporary folder, with users and connections for it;
- static and dynamic large objects uploaded by hand, as Swift clients do.

Test modules import it as ``from helpers import ...``. This works because
tests/ has no ``__init__.py``, so pytest's default import mode ("prepend")
puts the folder on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from swiftclient.client import Connection

from lhubic import Clock, Hubic
from lhubic.server.pytest_plugin import HubicTestServer
from lhubic.server.storage_auth import StorageToken, new_account
from lhubic.server.swift_launcher import SwiftCluster, default_data_parent

# Retries that start after 20 ms and wait at most 100 ms, so that tests of
# service hiccups finish quickly.
FAST_RETRIES: dict[str, Any] = {"starting_backoff": 0.02, "max_backoff": 0.1}


# Hubic connections and users.


def hubic_settings(server: HubicTestServer, **options: Any) -> dict[str, Any]:
    """Return the Hubic keyword arguments for the server's test application
    and user, with `FAST_RETRIES` and the scope `server.scope`.

    ``options`` add to the settings or replace them.
    """
    settings: dict[str, Any] = {
        "client_id": server.app.client_id,
        "client_secret": server.app.client_secret,
        "username": server.user.login,
        "password": server.user.password,
        "api_url": server.api_url,
        "redirect_uri": server.app.redirect_uri,
        "scope": server.scope,
        **FAST_RETRIES,
    }
    settings.update(options)
    return settings


def make_hubic(server: HubicTestServer, **options: Any) -> Hubic:
    """Return a Hubic built from `hubic_settings`. It sends nothing yet."""
    return Hubic(**hubic_settings(server, **options))


def hubic_without_login(server: HubicTestServer, **options: Any) -> Hubic:
    """Return a Hubic with the server's test application but no user name or
    password, so it gets tokens only from the ``refresh_token`` or the
    ``token_store`` in ``options``."""
    settings: dict[str, Any] = {
        "client_id": server.app.client_id,
        "client_secret": server.app.client_secret,
        "api_url": server.api_url,
        **FAST_RETRIES,
    }
    settings.update(options)
    return Hubic(**settings)


def new_user(server: HubicTestServer, prefix: str = "user") -> tuple[str, str]:
    """Register a user for one test and return its login and password.

    Tests that expire or revoke tokens need a user of their own, because the
    service gives every client of an account the same storage token. The
    password contains a space, an accent, ``&``, ``%`` and ``+``, so a client
    that skips form encoding fails to log in.
    """
    login = f"{prefix}-{secrets.token_hex(6)}@example.com"
    password = f"pw {secrets.token_urlsafe(8)} é&%+"
    server.add_user(login, password)
    return login, password


@contextlib.contextmanager
def new_user_hubic(
    server: HubicTestServer, prefix: str, container: str
) -> Iterator[Hubic]:
    """Yield a Hubic of a new user (see `new_user`) that has created
    ``container``, and close its connections on exit."""
    login, password = new_user(server, prefix)
    hubic = make_hubic(server, username=login, password=password)
    try:
        hubic.put_container(container)
        yield hubic
    finally:
        hubic.close()


def port_of(url: str) -> int:
    """Return the port of ``url``, which must name one."""
    port = urlsplit(url).port
    assert port is not None, f"{url} names no port"
    return port


class CountingHubic(Hubic):
    """A Hubic that records the name, container and object of every storage
    request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[tuple[str, str, str | None]] = []
        self._requests_lock = threading.Lock()

    def _retry(self, reset_func: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        container = args[0] if args else ""
        obj = args[1] if len(args) > 1 else None
        with self._requests_lock:
            self.requests.append((func.__name__, container, obj))
        return super()._retry(reset_func, func, *args, **kwargs)

    def request_names(self) -> list[str]:
        """Return the swiftclient function name of each request, in order."""
        return [name for name, _, _ in self.requests]

    def count(self, name: str, container: str | None = None) -> int:
        """Count the requests to ``name``, only those to ``container`` if set."""
        return sum(
            1
            for request, target, _ in self.requests
            if request == name and (container is None or target == container)
        )


def run_in_threads(count: int, work: Callable[[int], object]) -> list[BaseException]:
    """Call ``work(index)`` in ``count`` threads that start together, wait for
    them all, and return the exceptions that they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as error:  # noqa: BLE001 - returned to the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


# Clocks.


class RecordingClock(Clock):
    """A `Clock` whose `sleep` records the delay and returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []
        self._sleeps_lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._sleeps_lock:
            self.sleeps.append(seconds)


class SettableClock:
    """A service clock, in seconds since the epoch, that tests move forward
    instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


# Stand-in HTTP servers on 127.0.0.1.


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that writes no access log and can read a request
    body and send a JSON response."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length)

    def send_json(self, payload: Any) -> None:
        """Send ``payload`` as a 200 JSON response.

        If the client has already closed the connection, for example after
        its own timeout, the response is dropped without an error.
        """
        body = json.dumps(payload).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            return


_StandInT = TypeVar("_StandInT", bound="StandIn")


class StandIn:
    """An HTTP server on 127.0.0.1, in a thread, that serves requests with
    ``handler``. Stop it with `stop` or by leaving a ``with`` block."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self: _StandInT) -> _StandInT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# A Swift cluster of one test module, without the hubiC service.


@contextlib.contextmanager
def running_swift(prefix: str, **options: Any) -> Iterator[SwiftCluster]:
    """Start a `SwiftCluster` in a new folder under `default_data_parent`,
    and on exit stop it and remove the folder.

    ``prefix`` starts the folder's name, and ``options`` go to `SwiftCluster`.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=default_data_parent()))
    swift = SwiftCluster(folder, **options)
    try:
        swift.start()
        yield swift
    finally:
        swift.stop()
        shutil.rmtree(folder, ignore_errors=True)


def new_storage_user(cluster: SwiftCluster, quota: int) -> StorageToken:
    """Create an account with a quota of ``quota`` bytes, and return a
    storage token for it that is valid for 1 hour."""
    account = new_account()
    cluster.ensure_account(account, quota)
    return cluster.tokens.issue(account, 3600)


def storage_connection(cluster: SwiftCluster, token: StorageToken) -> Connection:
    """Return a swiftclient connection with ``token`` that never retries."""
    return Connection(
        preauthurl=cluster.storage_url(token.account),
        preauthtoken=token.token,
        retries=0,
    )


# Large objects uploaded by hand.


def put_static_large_object(
    connection: Connection, container: str, name: str, segments: list[bytes]
) -> None:
    """Upload ``segments`` to "<container>_segments", then a static large
    object manifest for them as ``name`` in ``container``."""
    segment_container = f"{container}_segments"
    connection.put_container(segment_container)
    manifest = []
    for index, segment in enumerate(segments):
        path = f"{name}/{index:08d}"
        etag = connection.put_object(segment_container, path, segment)
        manifest.append(
            {
                "path": f"/{segment_container}/{path}",
                "etag": etag,
                "size_bytes": len(segment),
            }
        )
    connection.put_object(
        container,
        name,
        json.dumps(manifest),
        query_string="multipart-manifest=put",
    )


def put_dynamic_large_object(
    connection: Connection, container: str, name: str, segments: list[bytes]
) -> None:
    """Upload ``segments`` to "<container>_segments" under the prefix
    "<name>/part/", then a dynamic large object manifest with that prefix as
    ``name`` in ``container``."""
    segment_container = f"{container}_segments"
    connection.put_container(segment_container)
    for index, segment in enumerate(segments):
        connection.put_object(segment_container, f"{name}/part/{index:04d}", segment)
    manifest = f"{segment_container}/{name}/part/"
    connection.put_object(container, name, b"", headers={"X-Object-Manifest": manifest})
