"""Tests for lhubic.transfers over the local service and a real Swift.

Most tests go through `lhubic.Hubic`. Tests that need Swift to receive or send
altered bytes use a plain swiftclient connection with `TransferMixin`, aimed
at `AlteringProxy`, a small HTTP-aware TCP proxy on 127.0.0.1 that flips one
byte of a chosen request or response body.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from helpers import CountingHubic, hubic_settings, run_in_threads
from swiftclient.client import Connection
from swiftclient.exceptions import ClientException

from lhubic import Hubic
from lhubic.exceptions import (
    HubicChecksumMismatch,
    HubicInputError,
    HubicObjectNameError,
    HubicObjectNotFound,
    HubicSourceNotRewindable,
    HubicTransferError,
)
from lhubic.large_objects import MAX_MANIFEST_SEGMENTS, _choose_segment_size
from lhubic.server.pytest_plugin import HubicTestServer
from lhubic.transfers import TransferMixin, file_md5, slo_etag

MiB = 1024 * 1024


# Fixtures and helpers.


@pytest.fixture(scope="module")
def server() -> Iterator[HubicTestServer]:
    # Its own server: these tests expire every storage token and inject faults.
    with HubicTestServer() as running:
        yield running


@pytest.fixture
def hubic(server: HubicTestServer) -> Iterator[CountingHubic]:
    connection = CountingHubic(**hubic_settings(server))
    yield connection
    connection.close()


@pytest.fixture
def container(hubic: CountingHubic) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    hubic.put_container(name)
    return name


class PlainConnection(TransferMixin, Connection):
    """A plain swiftclient connection with lhubic's transfer overrides."""


def plain_connection(url: str, token: str, retries: int = 2) -> PlainConnection:
    return PlainConnection(
        preauthurl=url, preauthtoken=token, retries=retries, starting_backoff=0.01
    )


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324


def segment_names(hubic: Hubic, container: str) -> list[str]:
    try:
        _, listing = hubic.get_container(f"{container}_segments")
    except ClientException as error:
        if error.http_status == 404:
            return []
        raise
    return [entry["name"] for entry in listing]


# The altering proxy.


class AlteringProxy:
    """Forward connections to a loopback port; flip a byte of chosen bodies.

    It follows ``Content-Length`` framing in both directions to find where
    each body starts. A chunked message switches its direction to plain
    forwarding, which is enough for these tests. Each request head is kept in
    ``request_heads``.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.request_heads: list[str] = []
        self.put_bodies_to_alter = 0
        self.get_bodies_to_alter = 0
        self.lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url_for(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def close(self) -> None:
        self._listener.close()
        for sock in list(self._sockets):
            sock.close()

    def take(self, kind: str) -> bool:
        with self.lock:
            remaining = getattr(self, kind)
            if remaining <= 0:
                return False
            setattr(self, kind, remaining - 1)
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            methods: collections.deque[str] = collections.deque()
            for source, target, is_request in (
                (client, upstream, True),
                (upstream, client, False),
            ):
                framing = _Framing(self, is_request, methods)
                threading.Thread(
                    target=_pump, args=(source, target, framing), daemon=True
                ).start()


class _Framing:
    """Finds message bodies in one direction of a connection and alters one."""

    def __init__(
        self, proxy: AlteringProxy, is_request: bool, methods: collections.deque[str]
    ) -> None:
        self.proxy = proxy
        self.is_request = is_request
        self.methods = methods
        self.head = b""
        self.body_left = 0
        self.flip_at: int | None = None
        self.passthrough = False

    def feed(self, data: bytes) -> bytes:
        output = bytearray()
        while data and not self.passthrough:
            if self.body_left:
                part = bytearray(data[: self.body_left])
                if self.flip_at is not None and self.flip_at < len(part):
                    part[self.flip_at] ^= 0xFF
                    self.flip_at = None
                elif self.flip_at is not None:
                    self.flip_at -= len(part)
                output += part
                self.body_left -= len(part)
                data = data[len(part) :]
                continue

            self.head += data
            data = b""
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                break
            head, data = self.head[: end + 4], self.head[end + 4 :]
            self.head = b""
            output += head
            self._start_message(head.decode("latin-1"))
        return bytes(output + data)

    def _start_message(self, head: str) -> None:
        lines = head.split("\r\n")
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        if self.is_request:
            method = lines[0].split(" ")[0]
            self.methods.append(method)
            self.proxy.request_heads.append(head)
            kind = "put_bodies_to_alter" if method == "PUT" else None
        else:
            method = self.methods.popleft() if self.methods else "GET"
            if method == "HEAD" or lines[0].split(" ")[1] in ("204", "304"):
                return
            kind = "get_bodies_to_alter" if method == "GET" else None

        if "chunked" in fields.get("transfer-encoding", ""):
            self.passthrough = True
            return
        self.body_left = int(fields.get("content-length", "0"))
        if self.body_left and kind is not None and self.proxy.take(kind):
            self.flip_at = self.body_left // 2


def _pump(source: socket.socket, target: socket.socket, framing: _Framing) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(framing.feed(data) if not framing.passthrough else data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def proxy(server: HubicTestServer) -> Iterator[AlteringProxy]:
    port = urlsplit(server.swift_url).port
    assert port is not None
    running = AlteringProxy(port)
    yield running
    running.close()


@pytest.fixture
def proxied(hubic: CountingHubic, proxy: AlteringProxy) -> Iterator[PlainConnection]:
    url, token = hubic.get_auth()
    connection = plain_connection(proxy.url_for(url), token)
    yield connection
    connection.close()


# Put_object.


def test_put_bytes_returns_md5(hubic: Hubic, container: str) -> None:
    etag = hubic.put_object(container, "hello.txt", b"hello")

    assert etag == md5(b"hello")
    assert hubic.get_object(container, "hello.txt")[1] == b"hello"


def test_put_str_is_sent_as_utf8(hubic: Hubic, container: str) -> None:
    etag = hubic.put_object(container, "text", "héllo")

    assert etag == md5("héllo".encode())
    assert hubic.get_object(container, "text")[1] == "héllo".encode()


def test_put_empty_contents(hubic: Hubic, container: str) -> None:
    empty: list[Any] = [b"", None, iter([]), io.BytesIO()]
    for contents in empty:
        etag = hubic.put_object(container, "empty", contents)

        assert etag == md5(b"")
        assert hubic.head_object(container, "empty")["content-length"] == "0"


def test_put_file_from_offset(hubic: Hubic, container: str) -> None:
    data = os.urandom(3 * MiB + 5)
    source = io.BytesIO(data)
    source.seek(1000)

    etag = hubic.put_object(container, "offset", source)

    assert etag == md5(data[1000:])
    assert hubic.get_object(container, "offset")[1] == data[1000:]


def test_put_iterator_with_content_length(hubic: Hubic, container: str) -> None:
    chunks = [b"abc", b"", b"defg", bytearray(b"hi")]

    etag = hubic.put_object(container, "iter", iter(chunks), content_length=7)

    assert etag == md5(b"abcdefg")
    assert hubic.get_object(container, "iter")[1] == b"abcdefg"


def test_put_iterator_short_of_content_length(hubic: Hubic, container: str) -> None:
    with pytest.raises(HubicInputError, match="ended after 3 of the 10 bytes"):
        hubic.put_object(container, "short", iter([b"abc"]), content_length=10)


def test_put_text_file_is_rejected(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    path = tmp_path / "text.txt"
    path.write_text("hello")

    with path.open() as handle, pytest.raises(HubicInputError, match="binary mode"):
        hubic.put_object(container, "text", handle)


def test_put_rejects_bad_content_length(hubic: Hubic, container: str) -> None:
    for length, message in ((-1, "negative"), ("5", "an int"), (6 * 1024**3, "5")):
        with pytest.raises(HubicInputError, match=message):
            hubic.put_object(container, "x", b"data", content_length=length)  # type: ignore[arg-type]


def test_put_sends_content_length_when_known(
    proxied: PlainConnection, proxy: AlteringProxy, container: str, tmp_path: Path
) -> None:
    path = tmp_path / "file"
    write_random(path, 70_000)
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("bytes", lambda: b"x" * 1234, "1234"),
        ("file", lambda: path.open("rb"), "70000"),
        ("sized iterator", lambda: iter([b"ab", b"cd"]), "4"),
    ]

    for name, make, length in cases:
        proxy.request_heads.clear()
        contents: Any = make()
        proxied.put_object(
            container, name, contents, content_length=4 if "iter" in name else None
        )
        head = proxy.request_heads[-1].lower()

        assert f"content-length: {length}\r\n" in head, name
        assert "transfer-encoding" not in head, name
        if hasattr(contents, "close"):
            contents.close()


def test_put_unsized_iterator_is_chunked(
    proxied: PlainConnection, proxy: AlteringProxy, container: str
) -> None:
    etag = proxied.put_object(container, "chunked", iter([b"ab", b"cd"]))
    head = proxy.request_heads[-1].lower()

    assert etag == md5(b"abcd")
    assert "transfer-encoding: chunked" in head
    assert "content-length" not in head


def test_put_sends_etag_of_bytes(
    proxied: PlainConnection, proxy: AlteringProxy, container: str
) -> None:
    proxied.put_object(container, "tagged", b"payload")
    head = proxy.request_heads[-1].lower()

    assert f"etag: {md5(b'payload')}" in head


# Checksums.


def test_put_mismatch_of_bytes_keeps_old_object(
    proxied: PlainConnection, proxy: AlteringProxy, container: str
) -> None:
    proxied.put_object(container, "doc", b"version one")
    proxy.put_bodies_to_alter = 1

    with pytest.raises(HubicChecksumMismatch) as caught:
        proxied.put_object(container, "doc", b"version two, altered on the way")

    assert caught.value.status == 422
    assert proxied.get_object(container, "doc")[1] == b"version one"


def test_put_mismatch_of_stream_removes_corrupt_object(
    proxied: PlainConnection, proxy: AlteringProxy, container: str
) -> None:
    data = os.urandom(MiB)
    proxied.put_object(container, "neighbour", b"untouched")
    proxy.put_bodies_to_alter = 1

    with pytest.raises(HubicChecksumMismatch, match="corrupted object was removed"):
        proxied.put_object(container, "stream", io.BytesIO(data))

    with pytest.raises(ClientException) as missing:
        proxied.head_object(container, "stream")
    assert missing.value.http_status == 404
    assert proxied.get_object(container, "neighbour")[1] == b"untouched"


def test_get_mismatch_raises_at_end_of_stream(
    hubic: Hubic, proxied: PlainConnection, proxy: AlteringProxy, container: str
) -> None:
    data = os.urandom(2 * MiB)
    hubic.put_object(container, "blob", data)
    proxy.get_bodies_to_alter = 1

    _, body = proxied.get_object(container, "blob", resp_chunk_size=65536)
    received = bytearray()
    with pytest.raises(HubicChecksumMismatch, match="corrupt"):
        for chunk in body:
            received += chunk

    assert len(received) == len(data)


def test_get_mismatch_without_chunks_raises(
    hubic: Hubic, proxied: PlainConnection, proxy: AlteringProxy, container: str
) -> None:
    hubic.put_object(container, "blob", b"0123456789")
    proxy.get_bodies_to_alter = 1

    with pytest.raises(HubicChecksumMismatch):
        proxied.get_object(container, "blob")


def test_get_read_checks_md5(hubic: Hubic, container: str) -> None:
    data = os.urandom(300_000)
    hubic.put_object(container, "blob", data)

    _, body = hubic.get_object(container, "blob", resp_chunk_size=4096)
    received = b""
    while chunk := body.read(100_000):
        received += chunk

    assert received == data


def test_download_mismatch_leaves_target_alone(
    hubic: Hubic,
    proxied: PlainConnection,
    proxy: AlteringProxy,
    container: str,
    tmp_path: Path,
) -> None:
    hubic.put_object(container, "blob", os.urandom(MiB))
    target = tmp_path / "blob"
    target.write_bytes(b"previous content")
    proxy.get_bodies_to_alter = 1

    with pytest.raises(HubicChecksumMismatch):
        proxied.download_file(container, "blob", target)

    assert target.read_bytes() == b"previous content"
    assert sorted(os.listdir(tmp_path)) == ["blob"]


# Retries.


def test_retry_rewinds_seekable_source(
    server: HubicTestServer,
    hubic: CountingHubic,
    container: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = os.urandom(2 * MiB)
    source = io.BytesIO(data)
    source.seek(10)
    hubic.head_account()
    server.faults.storage_unavailable(1)

    with caplog.at_level("INFO", logger="lhubic.bodies"):
        etag = hubic.put_object(container, "retried", source)

    assert "retrying upload of" in caplog.text
    assert etag == md5(data[10:])
    assert hubic.get_object(container, "retried")[1] == data[10:]


def test_retry_of_iterator_is_refused(
    server: HubicTestServer, hubic: CountingHubic, container: str
) -> None:
    hubic.head_account()
    server.faults.storage_unavailable(1)
    chunks = iter([b"a" * 65536] * 4)

    with pytest.raises(HubicSourceNotRewindable, match="HTTP 503") as caught:
        hubic.put_object(container, "once", chunks)

    assert "cannot be rewound" in str(caught.value)
    with pytest.raises(HubicObjectNotFound):
        hubic.head_object(container, "once")


def test_retry_of_list_resends_it(
    server: HubicTestServer, hubic: CountingHubic, container: str
) -> None:
    hubic.head_account()
    server.faults.storage_unavailable(1)

    etag = hubic.put_object(container, "listed", [b"ab", b"cd"])

    assert etag == md5(b"abcd")
    assert hubic.get_object(container, "listed")[1] == b"abcd"


# Large objects.


def small_segments(hubic: Hubic) -> None:
    hubic.large_object_threshold = 3 * MiB
    hubic.segment_size = MiB


def upload_slo(hubic: Hubic, container: str, path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path``, upload them as the object "big"
    with `small_segments`, and return them."""
    small_segments(hubic)
    data = write_random(path, size)
    hubic.upload_file(container, "big", path)
    return data


@pytest.fixture
def four_segment_slo(hubic: CountingHubic, container: str, tmp_path: Path) -> Path:
    """Return the file of 4 MiB that `upload_slo` stored as "big" in the
    container, in four segments."""
    path = tmp_path / "big"
    upload_slo(hubic, container, path, 4 * MiB)
    return path


def test_upload_below_threshold_is_plain(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    small_segments(hubic)
    path = tmp_path / "plain"
    data = write_random(path, 3 * MiB)

    etag = hubic.upload_file(container, "plain", path)

    headers = hubic.head_object(container, "plain")
    assert etag == md5(data)
    assert "x-static-large-object" not in headers
    assert segment_names(hubic, container) == []


def test_upload_above_threshold_is_slo(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    small_segments(hubic)
    path = tmp_path / "big"
    data = write_random(path, 5 * MiB + 17)

    etag = hubic.upload_file(container, "big", path)

    headers = hubic.head_object(container, "big")
    names = segment_names(hubic, container)
    stat = path.stat()
    prefix = f"big/slo/{stat.st_mtime:.6f}/{stat.st_size}/{MiB}/"
    assert headers["x-static-large-object"].lower() == "true"
    assert int(headers["content-length"]) == len(data)
    assert names == [f"{prefix}{index:08d}" for index in range(6)]
    pieces = [data[offset : offset + MiB] for offset in range(0, len(data), MiB)]
    assert etag == slo_etag([md5(piece) for piece in pieces])


def test_slo_streams_as_one_object(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    path = tmp_path / "big"
    data = upload_slo(hubic, container, path, 4 * MiB + 3)

    _, body = hubic.get_object(container, "big", resp_chunk_size=65536)
    streamed = b"".join(body)
    _, whole = hubic.get_object(container, "big")

    assert streamed == data
    assert whole == data


def test_slo_download_file(hubic: Hubic, container: str, tmp_path: Path) -> None:
    path = tmp_path / "big"
    data = upload_slo(hubic, container, path, 7 * MiB + 1)
    target = tmp_path / "copy"

    hubic.download_file(container, "big", target)

    assert target.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["big", "copy"]


def test_dlo_downloads_as_one_stream(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    parts = [os.urandom(100_000) for _ in range(3)]
    for index, part in enumerate(parts):
        hubic.put_object(container, f"parts/{index:03d}", part)
    hubic.put_object(
        container, "joined", b"", headers={"X-Object-Manifest": f"{container}/parts/"}
    )
    target = tmp_path / "joined"

    _, body = hubic.get_object(container, "joined", resp_chunk_size=65536)
    streamed = b"".join(body)
    hubic.download_file(container, "joined", target)

    assert streamed == b"".join(parts)
    assert target.read_bytes() == b"".join(parts)


def test_interrupted_upload_resumes(
    server: HubicTestServer, container: str, tmp_path: Path
) -> None:
    hubic = CountingHubic(**hubic_settings(server))
    small_segments(hubic)
    path = tmp_path / "big"
    data = write_random(path, 6 * MiB)

    class Interrupted(Exception):
        pass

    def stop_after_two_segments(done: int, total: int, files: int, all: int) -> None:
        if done > 2 * MiB:
            raise Interrupted

    with pytest.raises(Interrupted):
        hubic.upload_file(
            container, "big", path, workers=1, progress=stop_after_two_segments
        )
    stored = len(segment_names(hubic, container))

    resumed = CountingHubic(**hubic_settings(server))
    small_segments(resumed)
    resumed.upload_file(container, "big", path, workers=2)

    assert stored == 2
    assert resumed.count("put_object", f"{container}_segments") == 6 - stored
    assert resumed.count("put_object", container) == 1
    assert resumed.get_object(container, "big")[1] == data
    hubic.close()
    resumed.close()


def test_changed_file_does_not_reuse_segments(
    hubic: CountingHubic, container: str, four_segment_slo: Path
) -> None:
    data = write_random(four_segment_slo, 4 * MiB)
    os.utime(four_segment_slo, (1_000_000_000, 1_000_000_000))
    hubic.requests.clear()

    hubic.upload_file(container, "big", four_segment_slo)

    assert hubic.count("put_object", f"{container}_segments") == 4
    assert hubic.get_object(container, "big")[1] == data


def test_storage_token_expires_mid_upload(
    server: HubicTestServer, hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    small_segments(hubic)
    path = tmp_path / "big"
    data = write_random(path, 8 * MiB)
    first_token = hubic.get_auth()[1]
    expired: list[int] = []

    def expire_once(done: int, total: int, files: int, all: int) -> None:
        if done >= 2 * MiB and not expired:
            expired.append(done)
            server.expire_storage_tokens()

    hubic.upload_file(container, "big", path, workers=4, progress=expire_once)

    assert expired
    assert hubic.os_auth_token != first_token
    assert hubic.get_object(container, "big")[1] == data


def test_corrupt_segment_is_resent(
    hubic: Hubic,
    proxied: PlainConnection,
    proxy: AlteringProxy,
    container: str,
    tmp_path: Path,
) -> None:
    small_segments(proxied)
    path = tmp_path / "big"
    data = write_random(path, 4 * MiB)
    proxy.put_bodies_to_alter = 1

    proxied.upload_file(container, "big", path, workers=1)

    puts = [head for head in proxy.request_heads if head.startswith("PUT ")]
    assert len(puts) == 4 + 1 + 1 + 1  # segments, one resent, container, manifest
    assert hubic.get_object(container, "big")[1] == data


def test_overwrite_slo_removes_old_segments(
    hubic: Hubic, container: str, four_segment_slo: Path
) -> None:
    old = set(segment_names(hubic, container))
    data = write_random(four_segment_slo, 5 * MiB)
    os.utime(four_segment_slo, (1_000_000_000, 1_000_000_000))

    hubic.upload_file(container, "big", four_segment_slo)

    new = set(segment_names(hubic, container))
    assert len(old) == 4
    assert len(new) == 5
    assert not old & new
    assert hubic.get_object(container, "big")[1] == data


def test_overwrite_slo_with_small_file(
    hubic: Hubic, container: str, four_segment_slo: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"small now")

    hubic.upload_file(container, "big", small)

    assert segment_names(hubic, container) == []
    assert hubic.get_object(container, "big")[1] == b"small now"


def test_delete_slo_removes_segments(
    hubic: Hubic, container: str, four_segment_slo: Path
) -> None:
    hubic.put_object(container, "other", b"stays")

    hubic.delete_object(container, "big")

    assert segment_names(hubic, container) == []
    assert [entry["name"] for entry in hubic.get_container(container)[1]] == ["other"]


def test_delete_plain_object(hubic: Hubic, container: str) -> None:
    hubic.put_object(container, "plain", b"x")

    hubic.delete_object(container, "plain")

    with pytest.raises(HubicObjectNotFound):
        hubic.head_object(container, "plain")


def test_segment_size_grows_past_limit() -> None:
    size = 2000 * MiB + 1

    grown = _choose_segment_size(size, MiB)

    assert _choose_segment_size(10 * MiB, MiB) == MiB
    assert grown == 3 * MiB
    assert -(-size // grown) <= MAX_MANIFEST_SEGMENTS


def test_upload_options_rejected_before_sending(
    server: HubicTestServer, tmp_path: Path
) -> None:
    hubic = CountingHubic(**hubic_settings(server))
    path = tmp_path / "file"
    path.write_bytes(b"x")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"segment_size": 1000}, "segment_size"),
        ({"segment_size": 6 * 1024**3}, "segment_size"),
        ({"workers": 0}, "workers"),
        ({"large_object_threshold": -1}, "large_object_threshold"),
    ]

    for options, message in cases:
        with pytest.raises(HubicInputError, match=message):
            hubic.upload_file("default", "x", path, **options)
    with pytest.raises(HubicInputError, match="not a regular file"):
        hubic.upload_file("default", "x", tmp_path)

    assert hubic.requests == []


def test_long_name_segments_use_digest(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    small_segments(hubic)
    name = "n" * 1000
    path = tmp_path / "big"
    data = write_random(path, 4 * MiB)

    hubic.upload_file(container, name, path)

    names = segment_names(hubic, container)
    assert all(item.startswith("lhubic-long-name/") for item in names)
    assert hubic.get_object(container, name)[1] == data


# Whole files.


def test_upload_file_progress(hubic: Hubic, container: str, tmp_path: Path) -> None:
    small_segments(hubic)
    path = tmp_path / "big"
    write_random(path, 5 * MiB)
    calls: list[tuple[int, int, int, int]] = []

    hubic.upload_file(
        container, "big", path, progress=lambda *values: calls.append(values)
    )

    assert calls[-1] == (5 * MiB, 5 * MiB, 1, 1)
    assert all(call[1] == 5 * MiB for call in calls)
    assert all(call[2] == 0 for call in calls[:-1])
    assert len(calls) > 5


def test_upload_mid_size_file_sends_etag(
    proxied: PlainConnection, proxy: AlteringProxy, container: str, tmp_path: Path
) -> None:
    path = tmp_path / "mid"
    data = write_random(path, 6 * MiB)
    proxied.put_object(container, "mid", b"old")
    proxy.put_bodies_to_alter = 1

    with pytest.raises(HubicChecksumMismatch):
        proxied.upload_file(container, "mid", path)

    assert proxied.get_object(container, "mid")[1] == b"old"
    proxied.upload_file(container, "mid", path)
    assert proxied.get_object(container, "mid")[1] == data
    assert file_md5(path) == md5(data)


def test_download_file_plain(hubic: Hubic, container: str, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 1)
    hubic.put_object(container, "plain", data)
    calls: list[tuple[int, int, int, int]] = []
    target = tmp_path / "plain"

    headers = hubic.download_file(
        container, "plain", target, progress=lambda *values: calls.append(values)
    )

    assert target.read_bytes() == data
    assert headers["etag"] == md5(data)
    assert calls[-1] == (len(data), len(data), 1, 1)


def test_download_missing_object_leaves_nothing(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    with pytest.raises(HubicObjectNotFound):
        hubic.download_file(container, "absent", tmp_path / "absent")

    assert os.listdir(tmp_path) == []


def test_download_into_missing_folder(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    hubic.put_object(container, "x", b"x")

    with pytest.raises(HubicInputError, match="does not exist"):
        hubic.download_file(container, "x", tmp_path / "nowhere" / "x")


def test_invalid_name_rejected_before_sending(
    server: HubicTestServer, tmp_path: Path
) -> None:
    hubic = CountingHubic(**hubic_settings(server))
    path = tmp_path / "file"
    path.write_bytes(b"x")
    before = server.request_count("/")
    calls: list[Callable[[], object]] = [
        lambda: hubic.put_object("default", "", b"x"),
        lambda: hubic.get_object("default", "a\x00b"),
        lambda: hubic.delete_object("a/b", "x"),
        lambda: hubic.upload_file("default", "a/../b", path),
        lambda: hubic.download_file("default", "\ud800", tmp_path / "out"),
    ]

    for call in calls:
        with pytest.raises(HubicObjectNameError):
            call()

    assert server.request_count("/") == before
    assert hubic.requests == []


def test_threads_share_one_hubic(hubic: CountingHubic, container: str) -> None:
    def work(index: int) -> None:
        for round_number in range(5):
            data = f"{index}-{round_number}".encode() * 1000
            hubic.put_object(container, f"obj-{index}", data)
            assert hubic.get_object(container, f"obj-{index}")[1] == data

    errors = run_in_threads(6, work)

    assert errors == []


def test_put_manifest_by_hand(hubic: Hubic, container: str) -> None:
    parts = [os.urandom(MiB), os.urandom(100)]
    segments = f"{container}_segments"
    hubic.put_container(segments)
    manifest = []
    for index, part in enumerate(parts):
        hubic.put_object(segments, f"part/{index}", part)
        manifest.append(
            {
                "path": f"/{segments}/part/{index}",
                "etag": md5(part),
                "size_bytes": len(part),
            }
        )

    etag = hubic.put_object(
        container,
        "manual",
        json.dumps(manifest),
        query_string="multipart-manifest=put",
    )

    assert etag == slo_etag([md5(part) for part in parts])
    assert hubic.get_object(container, "manual")[1] == b"".join(parts)


# Parallel ranged downloads.


def test_plain_download_in_ranged_parts(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    data = os.urandom(5 * MiB + 3)
    hubic.put_object(container, "plain", data)
    hubic.download_part_size = MiB
    hubic.requests.clear()
    target = tmp_path / "plain"

    hubic.download_file(container, "plain", target, workers=3)

    assert target.read_bytes() == data
    assert hubic.count("get_object") == 6
    assert os.listdir(tmp_path) == ["plain"]


def test_slo_download_in_ranged_parts(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    path = tmp_path / "big"
    data = upload_slo(hubic, container, path, 4 * MiB + 10)
    hubic.download_part_size = 512 * 1024
    hubic.requests.clear()
    target = tmp_path / "copy"

    hubic.download_file(container, "big", target, workers=4)

    assert target.read_bytes() == data
    assert hubic.count("get_object") == 1 + 4 * 2 + 1


def test_ranged_part_corruption_detected(
    hubic: Hubic,
    proxied: PlainConnection,
    proxy: AlteringProxy,
    container: str,
    tmp_path: Path,
) -> None:
    hubic.put_object(container, "plain", os.urandom(4 * MiB))
    proxied.download_part_size = MiB
    target = tmp_path / "plain"
    target.write_bytes(b"before")
    proxy.get_bodies_to_alter = 2

    with pytest.raises(HubicChecksumMismatch):
        proxied.download_file(container, "plain", target, workers=2)

    assert target.read_bytes() == b"before"
    assert os.listdir(tmp_path) == ["plain"]


def test_object_replaced_during_download(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    hubic.put_object(container, "plain", os.urandom(6 * MiB))
    hubic.download_part_size = MiB
    replaced: list[bool] = []

    def replace_once(done: int, total: int, files: int, all: int) -> None:
        if not replaced:
            replaced.append(True)
            hubic.put_object(container, "plain", os.urandom(6 * MiB))

    with pytest.raises(
        HubicTransferError, match="changed during the download"
    ) as caught:
        hubic.download_file(
            container, "plain", tmp_path / "plain", workers=2, progress=replace_once
        )

    assert caught.value.status == 412
    assert os.listdir(tmp_path) == []
