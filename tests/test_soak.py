"""Soak test of lhubic.Hubic under injected faults, and tests of the fault proxy."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import http.server
import io
import json
import logging
import os
import pathlib
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from helpers import port_of
from swiftclient.client import Connection
from swiftclient.exceptions import ClientException
from tcp_proxy import FaultProxy

from lhubic import Hubic, HubicError, HubicObjectNotFound
from lhubic.listing import iter_objects
from lhubic.server.pytest_plugin import HubicTestServer

# The proxy's own tests run against a small HTTP server on 127.0.0.1 that
# records every body it receives, so a cut shows up as an incomplete body.


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_HEAD(self) -> None:
        self._send_headers(len(self.server.payload))

    def do_GET(self) -> None:
        self._send_headers(len(self.server.payload))
        self.wfile.write(self.server.payload)

    def do_PUT(self) -> None:
        try:
            body, complete = self._read_body()
        except (OSError, ValueError):
            body, complete = b"", False
        self.server.received.append((self.path, len(body), complete))
        if not complete:
            self.close_connection = True
            return
        self._send_headers(2)
        self.wfile.write(b"ok")

    def _send_headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _read_body(self) -> tuple[bytes, bool]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        return body, len(body) == length

    def _read_chunked(self) -> tuple[bytes, bool]:
        body = b""
        while True:
            line = self.rfile.readline()
            if not line.endswith(b"\r\n"):
                return body, False
            size = int(line.split(b";")[0], 16)
            if size == 0:
                return body, self.rfile.readline() == b"\r\n"
            chunk = self.rfile.read(size + 2)
            body += chunk[:size]
            if len(chunk) != size + 2:
                return body, False


class _RecordingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.received: list[tuple[str, int, bool]] = []
        self.payload = bytes(range(256)) * 400

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The proxy resets connections on purpose; only other errors matter.
        if not isinstance(sys.exc_info()[1], ConnectionResetError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def recording_server() -> Iterator[_RecordingServer]:
    server = _RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def proxy(recording_server: _RecordingServer) -> Iterator[FaultProxy]:
    recording_server.received.clear()
    with FaultProxy(recording_server.server_address[1]) as running:
        yield running


def _wait_for_received(server: _RecordingServer, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(server.received) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_proxy_forwards_keep_alive_requests(
    proxy: FaultProxy, recording_server: _RecordingServer
) -> None:
    body = b"x" * 50000

    with requests.Session() as session:
        head = session.head(proxy.url + "/a", timeout=10)
        got = session.get(proxy.url + "/b", timeout=10)
        put = session.put(proxy.url + "/c", data=body, timeout=10)

    assert head.status_code == 200
    assert got.content == recording_server.payload
    assert put.content == b"ok"
    assert recording_server.received == [("/c", 50000, True)]
    stats = proxy.stats()
    assert stats.connections == 1
    assert stats.requests == 3
    assert stats.responses == 3


def test_proxy_cuts_length_request_body(
    proxy: FaultProxy, recording_server: _RecordingServer
) -> None:
    proxy.cut_request_bodies(1, fraction=0.4)

    with pytest.raises(requests.ConnectionError):
        requests.put(proxy.url + "/cut", data=b"y" * 300000, timeout=10)
    _wait_for_received(recording_server, 1)
    after = requests.put(proxy.url + "/whole", data=b"z" * 1000, timeout=10)

    assert after.content == b"ok"
    assert recording_server.received[0][0] == "/cut"
    assert recording_server.received[0][1] < 300000
    assert recording_server.received[0][2] is False
    assert recording_server.received[1] == ("/whole", 1000, True)
    assert proxy.stats().request_bodies_cut == 1


def test_proxy_cuts_chunked_request_body(
    proxy: FaultProxy, recording_server: _RecordingServer
) -> None:
    proxy.cut_request_bodies(1)

    def pieces() -> Iterator[bytes]:
        for _ in range(10):
            yield b"c" * 10000

    with pytest.raises(requests.ConnectionError):
        requests.put(proxy.url + "/chunked", data=pieces(), timeout=10)
    _wait_for_received(recording_server, 1)

    assert recording_server.received[0][0] == "/chunked"
    assert recording_server.received[0][1] < 100000
    assert recording_server.received[0][2] is False


def test_proxy_cuts_short_chunked_body_before_end(
    proxy: FaultProxy, recording_server: _RecordingServer
) -> None:
    # A chunked body smaller than the 32 KiB cut point still must not arrive
    # whole: the terminating chunk is held back.
    proxy.cut_request_bodies(1)

    with pytest.raises(requests.ConnectionError):
        requests.put(proxy.url + "/short", data=iter([b"s" * 100]), timeout=10)
    _wait_for_received(recording_server, 1)

    assert recording_server.received[0][2] is False


def test_proxy_cuts_response_body(proxy: FaultProxy) -> None:
    proxy.cut_response_bodies(1, fraction=0.5)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(proxy.url + "/big", timeout=10)

    assert proxy.stats().response_bodies_cut == 1


def test_proxy_resets_new_connection(proxy: FaultProxy) -> None:
    proxy.reset_connections(1)

    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url + "/reset", timeout=10)
    after = requests.get(proxy.url + "/after", timeout=10)

    assert after.status_code == 200
    assert proxy.stats().connections_reset == 1


def test_proxy_cuts_only_armed_count(
    proxy: FaultProxy, recording_server: _RecordingServer
) -> None:
    with requests.Session() as session:
        session.put(proxy.url + "/1", data=b"a" * 100, timeout=10)
        proxy.cut_request_bodies(1)
        with pytest.raises(requests.ConnectionError):
            session.put(proxy.url + "/2", data=b"b" * 100, timeout=10)
        session.put(proxy.url + "/3", data=b"c" * 100, timeout=10)
    _wait_for_received(recording_server, 3)

    assert [entry[2] for entry in recording_server.received] == [True, False, True]


def test_proxy_intercepts_requests_unforwarded(
    proxy: FaultProxy, recording_server: _RecordingServer
) -> None:
    proxy.intercept_requests(2, status=509, headers={"Retry-After": "7"})

    with requests.Session() as session:
        limited_put = session.put(proxy.url + "/limited", data=b"p" * 300000)
        limited_get = session.get(proxy.url + "/limited", timeout=10)
        forwarded = session.put(proxy.url + "/after", data=b"q" * 10, timeout=10)
    _wait_for_received(recording_server, 1)

    assert limited_put.status_code == 509
    assert limited_put.headers["Retry-After"] == "7"
    assert limited_put.headers["Connection"] == "close"
    assert limited_get.status_code == 509
    assert forwarded.content == b"ok"
    assert recording_server.received == [("/after", 10, True)]
    stats = proxy.stats()
    assert stats.requests_intercepted == 2
    assert stats.requests == 1


def test_proxy_intercepts_after_keep_alive(
    proxy: FaultProxy, recording_server: _RecordingServer
) -> None:
    with requests.Session() as session:
        first = session.put(proxy.url + "/first", data=b"a" * 100, timeout=10)
        proxy.intercept_requests(1, status=429)
        limited = session.put(proxy.url + "/second", data=b"b" * 100, timeout=10)
    _wait_for_received(recording_server, 1)

    assert first.content == b"ok"
    assert limited.status_code == 429
    assert limited.reason == "Too Many Requests"
    assert recording_server.received == [("/first", 100, True)]


@pytest.mark.parametrize(
    ("status", "headers"),
    [(99, {}), (600, {}), (True, {}), (429, {"Retry-After": "1\r\nX: y"})],
)
def test_proxy_rejects_bad_interception(
    proxy: FaultProxy, status: Any, headers: dict[str, str]
) -> None:
    with pytest.raises(ValueError):
        proxy.intercept_requests(1, status=status, headers=headers)


def test_proxy_rejects_remote_upstream() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        FaultProxy(80, upstream_host="192.0.2.1")


# The soak test: one Hubic shared by worker threads while a chaos thread
# expires and revokes tokens, sets the service's fault switches and arms the
# proxies' cuts.

SOAK_CONTAINER = "soak"
NAMES_PER_WORKER = 6
WORKERS = 4
KiB = 1024
OPERATION_WEIGHTS = {
    "put": 30,
    "get": 25,
    "get streamed": 10,
    "head": 10,
    "delete": 8,
    "list": 7,
    "upload file": 4,
    "rest": 6,
}
ABSENT = "absent"
# Seconds between two chaos events of each kind; each wait is scaled by a
# random factor in [0.5, 1.5], and the first comes one whole period in.
CHAOS_PERIODS = {
    "expire storage tokens": 3.0,
    "expire access tokens": 5.0,
    "revoke tokens": 8.0,
    "api 509 burst": 2.5,
    "token 429 burst": 4.0,
    "storage 503 burst": 2.0,
    "storage 429 or 509 burst": 2.5,
    "cut storage request body": 0.7,
    "cut storage response body": 1.5,
    "reset storage connection": 2.0,
    "cut api request body": 3.0,
    "cut api response body": 4.0,
}


def _soak_seconds() -> float:
    text = os.environ.get("LHUBIC_SOAK_SECONDS", "20")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86400:
        raise ValueError(
            f"invalid LHUBIC_SOAK_SECONDS {text!r}: pass a number of seconds "
            "between 0 and 86400, such as 20"
        )
    return seconds


@dataclasses.dataclass
class SoakRig:
    server: HubicTestServer
    storage_proxy: FaultProxy
    api_proxy: FaultProxy


@pytest.fixture(scope="module")
def soak_rig() -> Iterator[SoakRig]:
    with (
        HubicTestServer() as server,
        FaultProxy(port_of(server.swift_url)) as storage_proxy,
        FaultProxy(port_of(server.api_url)) as api_proxy,
    ):
        # The service hands out the storage proxy as the storage endpoint, as
        # hubiC handed out a load balancer in front of Swift.
        server.public_storage_url = storage_proxy.url
        yield SoakRig(server, storage_proxy, api_proxy)


class SoakCounters:
    """Thread-safe counts of what the soak did, and every violation it saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.operations: collections.Counter[str] = collections.Counter()
        self.successes: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()
        self.chaos: collections.Counter[str] = collections.Counter()
        self.unclear: collections.Counter[str] = collections.Counter()
        self.not_found: collections.Counter[str] = collections.Counter()
        self.storage_retries = 0
        self.violations: list[str] = []
        self.error_messages: list[str] = []
        self.first_messages: dict[str, str] = {}
        self.secrets: set[str] = set()

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


class RetryLogCounter(logging.Handler):
    """Counts the retry warnings of lhubic's retry policy and keeps every
    formatted log line, to search them for secrets."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.retries = 0
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        with self._lines_lock:
            self.lines.append(message)
            if record.name.startswith("lhubic") and "; retry " in message:
                self.retries += 1


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - Swift's ETag is an MD5


def _random_data(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.75:
        return rng.randbytes(rng.randint(0, 64 * KiB))
    if roll < 0.95:
        return rng.randbytes(rng.randint(64 * KiB, 600 * KiB))
    return rng.randbytes(rng.randint(1100 * KiB, 2048 * KiB))


def _random_source(rng: random.Random, data: bytes) -> Any:
    roll = rng.random()
    if roll < 0.5:
        return data
    if roll < 0.8:
        return io.BytesIO(data)
    # An iterator cannot be rewound, so a retried upload of it must raise
    # HubicSourceNotRewindable rather than resend part of it.
    step = rng.randint(1, 64 * KiB)
    return iter([data[start : start + step] for start in range(0, len(data), step)])


class SoakWorker:
    """One thread's operations on its own object names, with the set of states
    each name may be in.

    A name's candidates are the MD5s it may hold, and ``ABSENT``. A successful
    put or delete leaves one candidate. A failed one adds its outcome to the
    candidates, since the request may or may not have been applied.
    """

    def __init__(
        self,
        number: int,
        hubic: Hubic,
        counters: SoakCounters,
        folder: pathlib.Path,
        login: str,
    ) -> None:
        self.hubic = hubic
        self.counters = counters
        self.rng = random.Random(number)
        self.prefix = f"w{number}/"
        self.names = [f"{self.prefix}{index}" for index in range(NAMES_PER_WORKER)]
        self.candidates: dict[str, set[str]] = {name: {ABSENT} for name in self.names}
        self.folder = folder
        self.login = login
        # The state that the running put, upload or delete would leave.
        self._pending: str | None = None

    def run(self, deadline: float) -> None:
        kinds = list(OPERATION_WEIGHTS)
        weights = list(OPERATION_WEIGHTS.values())
        while time.monotonic() < deadline:
            kind = self.rng.choices(kinds, weights)[0]
            self._run_one(kind)

    def _run_one(self, kind: str) -> None:
        name = self.rng.choice(self.names)
        with self.counters.lock:
            self.counters.operations[kind] += 1

        try:
            self._operate(kind, name)
        except (HubicError, ClientException) as error:
            self._record_failure(kind, name, error)
        except Exception as error:  # noqa: BLE001 - every other type is a violation
            error_type = f"{type(error).__module__}.{type(error).__name__}"
            with self.counters.lock:
                self.counters.unclear[f"{kind}: {error_type}"] += 1
            self.counters.violation(
                f"{kind} {name}: unclear error {error_type}: {error}"
            )
            self._mark_uncertain(kind, name)
        else:
            with self.counters.lock:
                self.counters.successes[kind] += 1
        finally:
            self._count_storage_retries(kind)

    def _operate(self, kind: str, name: str) -> None:
        if kind == "put":
            self._put(name)
        elif kind in ("get", "get streamed"):
            self._get(name, streamed=kind == "get streamed")
        elif kind == "head":
            self._head(name)
        elif kind == "delete":
            self._delete(name)
        elif kind == "list":
            self._list()
        elif kind == "upload file":
            self._upload_file(name)
        else:
            self._rest()

    def _put(self, name: str) -> None:
        data = _random_data(self.rng)
        md5 = _md5(data)
        self._pending = md5
        etag = self.hubic.put_object(
            SOAK_CONTAINER, name, _random_source(self.rng, data)
        )
        if etag != md5:
            self.counters.violation(f"put {name}: returned ETag {etag}, sent {md5}")
        self.candidates[name] = {md5}

    def _delete(self, name: str) -> None:
        self._pending = ABSENT
        try:
            self.hubic.delete_object(SOAK_CONTAINER, name)
        except HubicObjectNotFound:
            # Also the outcome of a retry after a cut response, when the first
            # DELETE already removed the object.
            with self.counters.lock:
                self.counters.not_found[name] += 1
        self.candidates[name] = {ABSENT}

    def _upload_file(self, name: str) -> None:
        data = _random_data(self.rng)
        path = self.folder / "upload.bin"
        path.write_bytes(data)
        self._pending = _md5(data)
        self.hubic.upload_file(SOAK_CONTAINER, name, path)
        self.candidates[name] = {self._pending}

    def _get(self, name: str, streamed: bool) -> None:
        self._pending = None
        try:
            if streamed:
                _, chunks = self.hubic.get_object(
                    SOAK_CONTAINER, name, resp_chunk_size=32 * KiB
                )
                body = b"".join(chunks)
            else:
                _, body = self.hubic.get_object(SOAK_CONTAINER, name)
        except HubicObjectNotFound:
            self._check_state(name, ABSENT, "get")
            return
        self._check_state(name, _md5(body), "get")

    def _head(self, name: str) -> None:
        self._pending = None
        try:
            headers = self.hubic.head_object(SOAK_CONTAINER, name)
        except HubicObjectNotFound:
            self._check_state(name, ABSENT, "head")
            return
        self._check_state(name, headers["etag"], "head")

    def _list(self) -> None:
        self._pending = None
        listed = [
            entry["name"]
            for entry in iter_objects(
                self.hubic, SOAK_CONTAINER, prefix=self.prefix, page_size=3
            )
        ]
        unknown = sorted(set(listed) - set(self.names))
        if unknown:
            self.counters.violation(f"list: names never written: {unknown}")

    def _rest(self) -> None:
        self._pending = None
        account = self.hubic.hubic_get("/account").json()
        usage = self.hubic.hubic_get("/account/usage").json()
        if account.get("email") != self.login:
            self.counters.violation(f"rest: /account returned {account!r}")
        if not isinstance(usage.get("used"), int):
            self.counters.violation(f"rest: /account/usage returned {usage!r}")

    def _check_state(self, name: str, state: str, kind: str) -> None:
        if state not in self.candidates[name]:
            self.counters.violation(
                f"{kind} {name}: found {state}, expected one of "
                f"{sorted(self.candidates[name])}"
            )

    def _record_failure(self, kind: str, name: str, error: BaseException) -> None:
        message = str(error)
        key = f"{kind}: {type(error).__name__}"
        with self.counters.lock:
            self.counters.failures[key] += 1
            self.counters.error_messages.append(message)
            self.counters.first_messages.setdefault(key, message[:300])
        if not message.strip():
            self.counters.violation(f"{kind} {name}: {type(error).__name__} is empty")
        self._mark_uncertain(kind, name)

    def _mark_uncertain(self, kind: str, name: str) -> None:
        # A failed put, upload or delete may or may not have been applied.
        if kind in ("put", "delete", "upload file") and self._pending is not None:
            self.candidates[name].add(self._pending)

    def _count_storage_retries(self, kind: str) -> None:
        if kind == "rest":
            return
        retries = max(0, self.hubic.attempts - 1)
        with self.counters.lock:
            self.counters.storage_retries += retries


class Chaos:
    """Breaks things on a schedule until stopped: token expiry and revocation,
    rate-limit and 503 bursts, and cut connections."""

    def __init__(
        self, rig: SoakRig, login: str, hubic: Hubic, counters: SoakCounters
    ) -> None:
        self.rig = rig
        self.login = login
        self.hubic = hubic
        self.counters = counters
        self.rng = random.Random(1234)
        self.stop = threading.Event()

    def run(self) -> None:
        periods = CHAOS_PERIODS
        next_at = {
            event: time.monotonic() + period for event, period in periods.items()
        }
        while not self.stop.wait(0.1):
            self._collect_secrets()
            now = time.monotonic()
            for event, when in next_at.items():
                if now >= when:
                    self._fire(event)
                    self.counters.chaos[event] += 1
                    next_at[event] = now + periods[event] * self.rng.uniform(0.5, 1.5)

    def _fire(self, event: str) -> None:
        server = self.rig.server
        if event == "expire storage tokens":
            server.expire_storage_tokens()
        elif event == "expire access tokens":
            server.expire_access_tokens(self.login)
        elif event == "revoke tokens":
            server.revoke_tokens(self.login)
        elif event == "api 509 burst":
            server.faults.api_rate_limited(self.rng.randint(1, 3))
        elif event == "token 429 burst":
            server.faults.token_rate_limited(self.rng.randint(1, 2), status=429)
        elif event == "storage 503 burst":
            server.faults.storage_unavailable(self.rng.randint(1, 3))
        elif event == "storage 429 or 509 burst":
            self.rig.storage_proxy.intercept_requests(
                self.rng.randint(1, 3), status=self.rng.choice([429, 509])
            )
        elif event == "cut storage request body":
            self.rig.storage_proxy.cut_request_bodies(1, self.rng.uniform(0.05, 0.95))
        elif event == "cut storage response body":
            self.rig.storage_proxy.cut_response_bodies(1, self.rng.uniform(0.05, 0.95))
        elif event == "reset storage connection":
            self.rig.storage_proxy.reset_connections(1)
        elif event == "cut api request body":
            self.rig.api_proxy.cut_request_bodies(1)
        else:
            self.rig.api_proxy.cut_response_bodies(1, self.rng.uniform(0.05, 0.95))

    def _collect_secrets(self) -> None:
        for secret in (
            self.hubic.access_token,
            self.hubic.os_auth_token,
            self.hubic.refresh_token,
        ):
            if secret:
                self.counters.secrets.add(secret)


def _verify_final_states(
    rig: SoakRig, workers: list[SoakWorker], counters: SoakCounters
) -> collections.Counter[str]:
    """Read every name straight from Swift, bypassing the proxy, and check that
    it contains one of its candidate states."""
    clean = Hubic(
        rig.server.app.client_id,
        rig.server.app.client_secret,
        rig.server.user.login,
        rig.server.user.password,
        api_url=rig.server.api_url,
        redirect_uri=rig.server.app.redirect_uri,
    )
    storage_url, token = clean.get_auth()
    direct = Connection(
        preauthurl=rig.server.swift_url + urlsplit(storage_url).path,
        preauthtoken=token,
        retries=0,
    )
    checked: collections.Counter[str] = collections.Counter()
    for worker in workers:
        for name, candidates in worker.candidates.items():
            try:
                _, body = direct.get_object(SOAK_CONTAINER, name)
                state = _md5(body)
            except ClientException as error:
                if error.http_status != 404:
                    raise
                state = ABSENT
            if state not in candidates:
                counters.violation(
                    f"final {name}: Swift holds {state}, expected one of "
                    f"{sorted(candidates)}"
                )
            checked["certain" if len(candidates) == 1 else "uncertain"] += 1
    direct.close()
    clean.close()
    return checked


@pytest.mark.soak
def test_soak_mixed_faults(
    soak_rig: SoakRig,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seconds = _soak_seconds()
    server = soak_rig.server
    counters = SoakCounters()
    counters.secrets.update({server.user.password, server.app.client_secret})
    log_counter = RetryLogCounter()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(log_counter)
    root.setLevel(logging.DEBUG)

    hubic = Hubic(
        server.app.client_id,
        server.app.client_secret,
        server.user.login,
        server.user.password,
        api_url=soak_rig.api_proxy.url,
        redirect_uri=server.app.redirect_uri,
        timeout=15,
        retries=6,
        starting_backoff=0.05,
        max_backoff=0.5,
    )
    started = time.monotonic()
    try:
        hubic.put_container(SOAK_CONTAINER)
        workers = [
            SoakWorker(
                number,
                hubic,
                counters,
                _worker_folder(tmp_path, number),
                server.user.login,
            )
            for number in range(WORKERS)
        ]
        chaos = Chaos(soak_rig, server.user.login, hubic, counters)
        deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(target=worker.run, args=(deadline,), name=f"soak-{index}")
            for index, worker in enumerate(workers)
        ]
        chaos_thread = threading.Thread(target=chaos.run, name="soak-chaos")
        chaos_thread.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 120)
        chaos.stop.set()
        chaos_thread.join(timeout=30)
        stuck = [thread.name for thread in threads if thread.is_alive()]

        server.faults.clear()
        soak_rig.storage_proxy.clear_faults()
        soak_rig.api_proxy.clear_faults()
        checked = _verify_final_states(soak_rig, workers, counters)
    finally:
        root.removeHandler(log_counter)
        root.setLevel(previous_level)
    elapsed = time.monotonic() - started

    summary = {
        "seconds": round(elapsed, 1),
        "operations": sum(counters.operations.values()),
        "successes": sum(counters.successes.values()),
        "failures": sum(counters.failures.values()),
        "retries": log_counter.retries + counters.storage_retries,
        "service retries (logged)": log_counter.retries,
        "storage retries (attempt counters)": counters.storage_retries,
        "operations by kind": dict(sorted(counters.operations.items())),
        "failures by kind and error": dict(sorted(counters.failures.items())),
        "first message of each failure": dict(sorted(counters.first_messages.items())),
        "deletes of absent objects": sum(counters.not_found.values()),
        "unclear errors by kind and type": dict(sorted(counters.unclear.items())),
        "chaos events": dict(sorted(counters.chaos.items())),
        "storage proxy": dataclasses.asdict(soak_rig.storage_proxy.stats()),
        "api proxy": dataclasses.asdict(soak_rig.api_proxy.stats()),
        "final states checked": dict(checked),
        "violations": len(counters.violations),
    }
    with capsys.disabled():
        print("\nlhubic soak summary:\n" + json.dumps(summary, indent=2))
        for violation in counters.violations[:30]:
            print("violation:", violation)

    assert stuck == []
    assert counters.violations == []
    assert counters.successes["put"] > 0
    assert counters.successes["get"] + counters.successes["get streamed"] > 0
    assert soak_rig.storage_proxy.stats().request_bodies_cut > 0
    if seconds > max(CHAOS_PERIODS.values()) + 1:
        # Long enough for every kind of chaos event to have fired.
        assert sorted(set(CHAOS_PERIODS) - set(counters.chaos)) == []
        assert soak_rig.storage_proxy.stats().requests_intercepted > 0
    assert elapsed < seconds + 180
    _assert_no_secrets(counters, log_counter)


def _worker_folder(tmp_path: pathlib.Path, number: int) -> pathlib.Path:
    folder = tmp_path / f"worker-{number}"
    folder.mkdir()
    return folder


def _assert_no_secrets(counters: SoakCounters, log_counter: RetryLogCounter) -> None:
    texts = log_counter.lines + counters.error_messages
    for secret in counters.secrets:
        # python-swiftclient 4.11 logs the first 16 characters of a token
        # (logger_settings["reveal_sensitive_prefix"]), so prefixes count too.
        leaked = [text for text in texts if secret in text or secret[:16] in text]
        assert leaked == [], f"a secret of {len(secret)} characters reached a log line"
