"""Tests for StorageConnection, the HTTP connection behind storage calls.

The round trips run against the local Swift. Connection reuse, body framing,
timeouts and redirects need a server that records or misbehaves on request,
so a small HTTP/1.1 server on 127.0.0.1 serves as the storage there.
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from helpers import QuietHandler, StandIn, make_hubic
from requests.adapters import HTTPAdapter
from swiftclient.exceptions import ClientException

from lhubic import HubicInsecureURL
from lhubic.storage_http import StorageConnection

LOGGER = logging.getLogger("lhubic.connection")


class StorageStandIn(StandIn):
    """An HTTP/1.1 server on 127.0.0.1 that records each request.

    Each record contains the method, path, headers (names in lower case), body
    and the client's port, which shows whether a connection was reused. A path
    starting with ``/redirect/`` returns 307 to ``redirect_to``, and ``/slow``
    waits one second before it responds.
    """

    def __init__(self, redirect_to: str = "/") -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class RequestHandler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self) -> None:
                body = self._read_request_body()
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {
                            name.lower(): value for name, value in self.headers.items()
                        },
                        "body": body,
                        "port": self.client_address[1],
                    }
                )
                if self.path.startswith("/redirect/"):
                    self.send_response(307)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/slow":
                    time.sleep(1.0)
                try:
                    self._answer()
                except (BrokenPipeError, ConnectionResetError):
                    # The client timed out and closed the connection.
                    return

            def _answer(self) -> None:
                answer = b"stored" if self.command != "HEAD" else b""
                self.send_response(201 if self.command == "PUT" else 200)
                self.send_header(
                    "X-Object-Meta-Name", "caf\u00e9".encode().decode("latin-1")
                )
                self.send_header("X-Trans-Id", "tx1")
                self.send_header("X-Trans-Id", "tx2")
                self.send_header("Content-Length", str(len(answer) or 6))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            def _read_request_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding") == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        chunk = self.rfile.read(size + 2)[:size]
                        if size == 0:
                            return b"".join(chunks)
                        chunks.append(chunk)
                return self.read_body()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any

        super().__init__(RequestHandler)


@pytest.fixture
def stand_in() -> Iterator[StorageStandIn]:
    with StorageStandIn() as server:
        yield server


def _connect(url: str, **options: Any) -> StorageConnection:
    return StorageConnection(url, request_logger=LOGGER, **options)


def _exchange(
    connection: StorageConnection,
    method: str,
    path: str,
    data: Any = None,
    headers: dict[str, Any] | None = None,
) -> tuple[int, bytes]:
    connection.request(method, path, data, headers)
    response = connection.getresponse()
    return response.status, response.read()


# Round trips through the local Swift.


@pytest.fixture
def storage(hubic_server: Any) -> Iterator[tuple[StorageConnection, str, str]]:
    hubic = make_hubic(hubic_server)
    hubic.put_container("storage-http")
    url, token = hubic.get_auth()
    connection = _connect(url)
    yield connection, f"{connection.parsed_url.path}/storage-http", token
    connection.close()


def _store_and_read(
    storage: tuple[StorageConnection, str, str], data: Any
) -> tuple[int, bytes]:
    connection, base, token = storage
    put_status, _ = _exchange(
        connection, "PUT", f"{base}/object", data, {"X-Auth-Token": token}
    )
    assert put_status == 201
    return _exchange(connection, "GET", f"{base}/object", None, {"X-Auth-Token": token})


def test_bytes_body_round_trips(storage: tuple[StorageConnection, str, str]) -> None:
    assert _store_and_read(storage, b"some bytes") == (200, b"some bytes")


def test_generator_body_round_trips(
    storage: tuple[StorageConnection, str, str],
) -> None:
    pieces = (piece for piece in [b"first ", b"", b"second"])

    assert _store_and_read(storage, pieces) == (200, b"first second")


def test_file_body_sent_from_position(
    storage: tuple[StorageConnection, str, str],
) -> None:
    source = io.BytesIO(b"skip:the rest")
    source.seek(5)

    assert _store_and_read(storage, source) == (200, b"the rest")


def test_text_body_sent_as_utf8(storage: tuple[StorageConnection, str, str]) -> None:
    assert _store_and_read(storage, "caf\u00e9") == (200, "caf\u00e9".encode())


def test_metadata_header_round_trips(
    storage: tuple[StorageConnection, str, str],
) -> None:
    connection, base, token = storage
    headers = {"X-Auth-Token": token, "X-Object-Meta-Place": "K\u00f8benhavn"}
    _exchange(connection, "PUT", f"{base}/meta", b"x", headers)

    connection.request("HEAD", f"{base}/meta", None, {"X-Auth-Token": token})
    response = connection.getresponse()
    response.read()

    assert response.getheader("x-object-meta-place") == "K\u00f8benhavn"
    assert response.getheader("X-OBJECT-META-PLACE") == "K\u00f8benhavn"
    assert ("X-Object-Meta-Place", "K\u00f8benhavn") in response.getheaders()
    assert response.getheader("x-missing", "default") == "default"


def test_missing_object_error_from_response(
    storage: tuple[StorageConnection, str, str],
) -> None:
    connection, base, token = storage
    connection.request("HEAD", f"{base}/missing", None, {"X-Auth-Token": token})
    response = connection.getresponse()
    body = response.read()

    error = ClientException.from_response(response, "Object HEAD failed", body)

    assert error.http_status == 404
    assert error.http_path == f"{base}/missing"
    assert error.transaction_id is not None


def test_hubic_storage_calls_use_storage_connection(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    hubic.head_account()

    assert isinstance(hubic.http_conn[1], StorageConnection)


# Connection reuse and body framing, through the stand-in.


def test_connection_reused_after_body_read(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    _exchange(connection, "GET", "/one")
    _exchange(connection, "GET", "/two")
    connection.close()

    ports = [record["port"] for record in stand_in.requests]
    assert ports[0] == ports[1]


def test_unread_response_not_reused(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    connection.request("GET", "/one")
    connection.getresponse().close()
    _exchange(connection, "GET", "/two")
    connection.close()

    ports = [record["port"] for record in stand_in.requests]
    assert ports[0] != ports[1]


@pytest.mark.parametrize(
    ("method", "data", "length", "chunked"),
    [
        ("PUT", None, "0", False),
        ("DELETE", None, "0", False),
        ("GET", None, None, False),
        ("HEAD", None, None, False),
        ("PUT", b"", "0", False),
        ("GET", b"", None, False),
        ("PUT", b"12345", "5", False),
        ("PUT", bytearray(b"123"), "3", False),
        ("PUT", iter([b"12", b"345"]), None, True),
        ("PUT", io.BytesIO(b""), None, True),
    ],
)
def test_body_framing(
    stand_in: StorageStandIn, method: str, data: Any, length: str | None, chunked: bool
) -> None:
    connection = _connect(stand_in.url)
    _exchange(connection, method, "/framed", data)
    connection.close()

    headers = stand_in.requests[0]["headers"]
    assert headers.get("content-length") == length
    assert ("transfer-encoding" in headers) is chunked


def test_known_length_replaces_given_one(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    _exchange(connection, "PUT", "/framed", b"hello", {"Content-Length": "3"})
    _exchange(connection, "GET", "/next")
    connection.close()

    first, second = stand_in.requests
    assert first["headers"]["content-length"] == "5"
    assert first["body"] == b"hello"
    assert second["path"] == "/next"
    assert second["port"] == first["port"]


def test_given_length_kept_for_unsized_body(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    pieces = iter([b"12", b"345"])
    _exchange(connection, "PUT", "/framed", pieces, {"Content-Length": "5"})
    connection.close()

    headers = stand_in.requests[0]["headers"]
    assert headers["content-length"] == "5"
    assert "transfer-encoding" not in headers
    assert stand_in.requests[0]["body"] == b"12345"


def test_given_chunked_encoding_kept(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    source = io.BytesIO(b"0123456789")
    _exchange(connection, "PUT", "/framed", source, {"Transfer-Encoding": "chunked"})
    connection.close()

    assert "content-length" not in stand_in.requests[0]["headers"]
    assert stand_in.requests[0]["body"] == b"0123456789"


def test_user_agent_default_and_override(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url, default_user_agent="lhubic-test")
    _exchange(connection, "GET", "/default")
    _exchange(connection, "GET", "/given", None, {"User-Agent": "mine"})
    connection.close()

    assert stand_in.requests[0]["headers"]["user-agent"] == "lhubic-test"
    assert stand_in.requests[1]["headers"]["user-agent"] == "mine"


def test_repeated_headers_joined(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    connection.request("GET", "/any")
    response = connection.getresponse()
    response.read()
    connection.close()

    assert response.getheader("x-trans-id") == "tx1, tx2"
    assert response.headers["X-Trans-Id"] == "tx1, tx2"
    assert response.getheader("x-object-meta-name") == "caf\u00e9"


def test_response_offers_requests_attributes(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    connection.request("GET", "/any")
    response = connection.getresponse()

    assert response.ok
    assert response.text == "stored"
    assert response.elapsed.total_seconds() >= 0
    assert response.request.method == "GET"
    assert response.url == f"{stand_in.url}/any"
    connection.close()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "a NoneType value"),
        ("secret-token\r\nX-Injected: 1", "a line break"),
        (" secret-token", "leading white space"),
    ],
)
def test_invalid_header_value_rejected(
    stand_in: StorageStandIn, value: Any, problem: str
) -> None:
    connection = _connect(stand_in.url)

    with pytest.raises(requests.exceptions.InvalidHeader) as caught:
        connection.request("GET", "/x", None, {"X-Auth-Token": value})

    assert "'x-auth-token'" in str(caught.value)
    assert problem in str(caught.value)
    assert "secret-token" not in str(caught.value)
    assert caught.value.__context__ is None
    assert stand_in.requests == []


def test_form_body_rejected(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)

    with pytest.raises(TypeError) as caught:
        connection.request("PUT", "/x", [b"a", b"b"])

    assert "got list" in str(caught.value)
    assert stand_in.requests == []


def test_unsupported_scheme_rejected() -> None:
    with pytest.raises(ClientException) as caught:
        _connect("ftp://127.0.0.1/v1/AUTH_x")

    assert "'ftp'" in str(caught.value)


def test_getresponse_before_request() -> None:
    connection = _connect("http://127.0.0.1:1/v1/AUTH_x")

    with pytest.raises(ClientException) as caught:
        connection.getresponse()

    assert "before any request" in str(caught.value)


def test_response_logged_without_secret_query(
    stand_in: StorageStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    connection = _connect(stand_in.url)
    with caplog.at_level(logging.DEBUG, logger=LOGGER.name):
        _exchange(connection, "GET", "/object?temp_url_sig=secret-signature")
    connection.close()

    assert "GET http://127.0.0.1:" in caplog.text
    assert "temp_url_sig=***" in caplog.text
    assert "-> 200 in" in caplog.text
    assert "secret-signature" not in caplog.text


# Errors, raised as the requests exceptions that swiftclient retries.


def test_refused_connection_raises_connection_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    connection = _connect(f"http://127.0.0.1:{port}/v1/AUTH_x")

    with pytest.raises(requests.exceptions.ConnectionError):
        connection.request("HEAD", "/v1/AUTH_x")


def test_slow_response_raises_read_timeout(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url, timeout=0.2)

    with pytest.raises(requests.exceptions.ReadTimeout):
        connection.request("GET", "/slow")


# Redirects, which go through requests and lhubic's redirect guard.


def test_same_origin_redirect_keeps_token(stand_in: StorageStandIn) -> None:
    connection = _connect(stand_in.url)
    status, body = _exchange(
        connection, "PUT", "/redirect/a", b"data", {"X-Auth-Token": "storage-token"}
    )
    connection.close()

    assert status == 201
    assert body == b"stored"
    assert [record["path"] for record in stand_in.requests] == ["/redirect/a", "/"]
    assert stand_in.requests[1]["headers"]["x-auth-token"] == "storage-token"
    assert stand_in.requests[1]["body"] == b"data"


def test_other_origin_redirect_drops_token(stand_in: StorageStandIn) -> None:
    # "localhost" and "127.0.0.1" name the same machine but are other origins.
    target = f"http://localhost:{stand_in.port}/elsewhere"
    with StorageStandIn(redirect_to=target) as first:
        connection = _connect(first.url)
        status, _ = _exchange(
            connection, "GET", "/redirect/a", None, {"X-Auth-Token": "storage-token"}
        )
        connection.close()

    assert status == 200
    assert first.requests[0]["headers"]["x-auth-token"] == "storage-token"
    assert "x-auth-token" not in stand_in.requests[0]["headers"]


def test_redirect_to_plain_http_host_rejected() -> None:
    with StorageStandIn(redirect_to="http://elsewhere.example/collect") as server:
        connection = _connect(server.url)
        with pytest.raises(HubicInsecureURL) as caught:
            connection.request("GET", "/redirect/a", None, {"X-Auth-Token": "t"})
        connection.close()

    assert "elsewhere.example" in str(caught.value)


def test_unrewindable_body_not_resent_empty(stand_in: StorageStandIn) -> None:
    class Unseekable(io.BytesIO):
        def tell(self) -> int:
            raise OSError("not seekable")

    connection = _connect(stand_in.url)

    with pytest.raises(requests.exceptions.UnrewindableBodyError):
        connection.request("PUT", "/redirect/a", Unseekable(b"data"))

    assert [record["path"] for record in stand_in.requests] == ["/redirect/a"]


# Adapters other than requests' own see every request.


def test_patched_adapter_send_sees_requests(
    stand_in: StorageStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = HTTPAdapter.send

    def recording_send(self: HTTPAdapter, request: Any, **options: Any) -> Any:
        seen.append(request.url)
        return original(self, request, **options)

    connection = _connect(stand_in.url)
    _exchange(connection, "GET", "/before")
    monkeypatch.setattr(HTTPAdapter, "send", recording_send)
    status, body = _exchange(connection, "GET", "/patched")
    connection.close()

    assert seen == [f"{stand_in.url}/patched"]
    assert (status, body) == (200, b"stored")


def test_mounted_adapter_sees_requests(stand_in: StorageStandIn) -> None:
    class CountingAdapter(HTTPAdapter):
        count = 0

        def send(self, request: Any, *args: Any, **options: Any) -> Any:
            CountingAdapter.count += 1
            return super().send(request, *args, **options)

    connection = _connect(stand_in.url)
    connection.request_session.mount("http://", CountingAdapter())
    status, _ = _exchange(connection, "PUT", "/mounted", b"data")
    connection.close()

    assert CountingAdapter.count == 1
    assert status == 201
    assert stand_in.requests[0]["body"] == b"data"
