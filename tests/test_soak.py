"""Soak test of lhubic.Hubic under injected faults, and tests of the fault proxy."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from tcp_proxy import FaultProxy

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


def test_proxy_rejects_remote_upstream() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        FaultProxy(80, upstream_host="192.0.2.1")
