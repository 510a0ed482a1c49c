"""A TCP proxy on 127.0.0.1 that breaks HTTP connections on purpose.

`FaultProxy` forwards every connection it accepts to one upstream port on the
loopback interface. It follows HTTP/1.1 message framing in both directions:
``Content-Length``, chunked transfer encoding, and bodies that end when the
connection closes. So it can drop a connection in the middle of a request or
response body, where a client must notice that the transfer did not finish.

Faults are armed with a count and fire on the next matching messages:

- `cut_request_bodies`: forward part of a request body, then reset both sides.
- `cut_response_bodies`: forward part of a response body, then reset both sides.
- `reset_connections`: reset new connections before forwarding any byte.
- `intercept_requests`: respond to requests with a status of the proxy's
  choosing (429 or 509, say) instead of forwarding them, then close the
  connection.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http
import ipaddress
import logging
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["FaultProxy", "ProxyStats"]

logger = logging.getLogger(__name__)

_RECEIVE_SIZE = 65536
_MAX_HEAD_SIZE = 65536
_DEFAULT_CHUNKED_CUT = 32768
# How long an intercepted request's body is read and discarded, so that the
# client can finish sending it and then read the response.
_DRAIN_SECONDS = 5.0
# Reason phrases of statuses that http.HTTPStatus does not list.
_EXTRA_REASONS = {498: "Rate Limited", 509: "Bandwidth Limit Exceeded"}

# Parser states for one direction of a connection.
_HEAD = "head"
_LENGTH_BODY = "length body"
_CHUNK_SIZE = "chunk size"
_CHUNK_DATA = "chunk data"
_TRAILER = "trailer"
_BODY_TO_CLOSE = "body to close"
_PASSTHROUGH = "passthrough"


@dataclasses.dataclass(frozen=True)
class ProxyStats:
    """Counts of what a `FaultProxy` forwarded and broke since it started."""

    connections: int
    requests: int
    responses: int
    request_bodies_cut: int
    response_bodies_cut: int
    connections_reset: int
    requests_intercepted: int


class _Faults:
    """Armed fault counts, shared by every connection of one proxy."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.request_cuts = 0
        self.request_fraction = 0.5
        self.response_cuts = 0
        self.response_fraction = 0.5
        self.resets = 0
        self.interceptions = 0
        self.intercept_response = b""
        self.connections = 0
        self.requests = 0
        self.responses = 0
        self.request_bodies_cut = 0
        self.response_bodies_cut = 0
        self.connections_reset = 0
        self.requests_intercepted = 0

    def take_interception(self) -> bytes | None:
        """Return the response to send instead of forwarding the next request,
        or None to forward it."""
        with self.lock:
            if self.interceptions <= 0:
                return None
            self.interceptions -= 1
            self.requests_intercepted += 1
            return self.intercept_response

    def take_body_cut(self, is_request: bool, body_size: int | None) -> int | None:
        """Count one message and return how many body bytes to forward before
        cutting it, or None to forward it whole."""
        with self.lock:
            if is_request:
                self.requests += 1
                if self.request_cuts <= 0 or body_size == 0:
                    return None
                self.request_cuts -= 1
                self.request_bodies_cut += 1
                fraction = self.request_fraction
            else:
                self.responses += 1
                if self.response_cuts <= 0 or body_size == 0:
                    return None
                self.response_cuts -= 1
                self.response_bodies_cut += 1
                fraction = self.response_fraction

        if body_size is None:
            return _DEFAULT_CHUNKED_CUT
        # Forward at most body_size - 1 bytes so the body never arrives whole.
        return min(body_size - 1, int(body_size * fraction))

    def take_reset(self) -> bool:
        with self.lock:
            self.connections += 1
            if self.resets <= 0:
                return False
            self.resets -= 1
            self.connections_reset += 1
            return True


class _HttpFramer:
    """Follows HTTP/1.1 message boundaries in one direction of a connection.

    `feed` returns the offset in the given data at which the connection must
    be cut, or None when all of it may be forwarded. When `response` is
    set after a cut, the request that starts at the offset is to get that
    response instead of being forwarded.
    """

    def __init__(
        self,
        is_request: bool,
        methods: collections.deque[str],
        faults: _Faults,
    ) -> None:
        self._is_request = is_request
        self._methods = methods
        self._faults = faults
        self._state = _HEAD
        self._buffer = b""
        self._remaining = 0
        self._cut_after: int | None = None
        self.response: bytes | None = None

    def feed(self, data: bytes) -> int | None:
        position = 0
        while position < len(data):
            if self._state == _PASSTHROUGH:
                return None
            if self._state in (_HEAD, _CHUNK_SIZE, _TRAILER):
                line_start = position
                position, line = self._take_line(data, position)
                if line is None:
                    return None
                cut = self._handle_line(line, line_start)
                if cut is not None:
                    return cut
            else:
                position, cut = self._take_body(data, position)
                if cut is not None:
                    return cut
        return None

    def _take_line(self, data: bytes, position: int) -> tuple[int, bytes | None]:
        # A head is taken whole because it ends with an empty line. Chunk sizes
        # and trailer lines are taken one line at a time.
        terminator = b"\r\n\r\n" if self._state == _HEAD else b"\r\n"
        previous = len(self._buffer)
        self._buffer += data[position:]
        end = self._buffer.find(terminator)
        if end < 0:
            if len(self._buffer) > _MAX_HEAD_SIZE:
                logger.warning(
                    "proxy found no end of an HTTP head within %d bytes; "
                    "forwarding the rest of the connection without faults",
                    _MAX_HEAD_SIZE,
                )
                self._state = _PASSTHROUGH
            return len(data), None

        line = self._buffer[: end + len(terminator)]
        self._buffer = b""
        return position + len(line) - previous, line

    def _handle_line(self, line: bytes, line_start: int) -> int | None:
        if self._state == _HEAD:
            if self._is_request:
                self.response = self._faults.take_interception()
                if self.response is not None:
                    return line_start
            self._start_message(line)
            return None

        if self._state == _TRAILER:
            if line == b"\r\n":
                self._state = _HEAD
            return None

        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            self._state = _TRAILER
            # The terminating chunk must not reach the peer when a cut is armed,
            # else the body would arrive whole.
            if self._cut_after is not None:
                return line_start
            return None

        self._state = _CHUNK_DATA
        self._remaining = size + 2
        return None

    def _start_message(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        first_line = lines[0]
        headers: dict[str, str] = {}
        for header_line in lines[1:]:
            name, _, value = header_line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()

        body_size = self._body_size(first_line, headers)
        if body_size == -1:
            return

        self._cut_after = self._faults.take_body_cut(self._is_request, body_size)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif body_size is None:
            self._state = _BODY_TO_CLOSE
        elif body_size > 0:
            self._state = _LENGTH_BODY
            self._remaining = body_size
        else:
            self._state = _HEAD

    def _body_size(self, first_line: str, headers: dict[str, str]) -> int | None:
        """Return the body size, None when it is unknown, or -1 for an interim
        response that another response follows."""
        if self._is_request:
            self._methods.append(first_line.split(" ", 1)[0].upper())
        else:
            status = int(first_line.split(" ", 2)[1])
            if 100 <= status < 200:
                return -1
            method = self._methods.popleft() if self._methods else "GET"
            if method == "HEAD" or status in (204, 304):
                return 0

        if "chunked" in headers.get("transfer-encoding", "").lower():
            return None
        if "content-length" in headers:
            return int(headers["content-length"])
        return 0 if self._is_request else None

    def _take_body(self, data: bytes, position: int) -> tuple[int, int | None]:
        available = len(data) - position
        if self._state == _BODY_TO_CLOSE:
            take = available
        else:
            take = min(self._remaining, available)

        if self._cut_after is not None:
            if self._cut_after <= take:
                return position, position + self._cut_after
            self._cut_after -= take

        position += take
        if self._state != _BODY_TO_CLOSE:
            self._remaining -= take
            if self._remaining == 0:
                self._state = _CHUNK_SIZE if self._state == _CHUNK_DATA else _HEAD
                if self._state == _HEAD:
                    self._cut_after = None
        return position, None


class _ProxiedConnection:
    """One client connection and its upstream connection, pumped by two threads.

    Each socket is read by one pump thread only. Closing a socket does not wake
    a thread blocked in ``recv`` on Linux, so `reset` and `close` first shut
    down the reading side, which does.
    """

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self._lock = threading.Lock()
        self._closed = False
        self._pumps_running = 2

    def reset(self) -> None:
        """Close both sockets with a TCP reset, so each peer sees an abrupt end."""
        self._close(abort=True)

    def close(self) -> None:
        """Close both sockets with a normal TCP close."""
        self._close(abort=False)

    def finish_pump(self) -> bool:
        """Record that one pump ended; return True when both have ended."""
        with self._lock:
            self._pumps_running -= 1
            return self._pumps_running == 0

    def _close(self, abort: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True

        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                if abort:
                    # A zero linger time makes close() send RST instead of FIN.
                    linger = struct.pack("ii", 1, 0)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """A TCP proxy from a free port on 127.0.0.1 to a loopback upstream port."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(upstream_host).is_loopback:
            raise ValueError(
                f"upstream host {upstream_host!r} is not a loopback address; "
                "the proxy only forwards to 127.0.0.1 or ::1"
            )
        self._upstream = (upstream_host, upstream_port)
        self._faults = _Faults()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[_ProxiedConnection] = set()
        self._connections_lock = threading.Lock()
        self.port = 0

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the proxy, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Bind a free port on 127.0.0.1 and start accepting connections."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._start_thread(self._accept_loop, "proxy-accept")
        logger.info("fault proxy on port %d forwards to %s", self.port, self._upstream)
        return self

    def stop(self) -> None:
        """Stop accepting, close every open connection and join the threads."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        for thread in self._threads:
            thread.join(timeout=5)
        logger.info("fault proxy on port %d stopped", self.port)

    def cut_request_bodies(self, count: int, fraction: float = 0.5) -> None:
        """Cut the next ``count`` non-empty request bodies after ``fraction`` of
        their bytes (32 KiB for chunked bodies, whose size is unknown)."""
        _check_fault_arguments(count, fraction)
        with self._faults.lock:
            self._faults.request_cuts = count
            self._faults.request_fraction = fraction

    def cut_response_bodies(self, count: int, fraction: float = 0.5) -> None:
        """Cut the next ``count`` non-empty response bodies after ``fraction``
        of their bytes."""
        _check_fault_arguments(count, fraction)
        with self._faults.lock:
            self._faults.response_cuts = count
            self._faults.response_fraction = fraction

    def intercept_requests(
        self,
        count: int,
        status: int = 429,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Respond to the next ``count`` requests with ``status`` and ``headers``
        (such as ``{"Retry-After": "2"}``) without forwarding them.

        The proxy reads and discards the request body, sends the response with
        ``Connection: close`` and closes the connection, so the upstream
        server never receives the whole request.
        """
        _check_fault_arguments(count, 0.5)
        response = _build_response(status, headers or {})
        with self._faults.lock:
            self._faults.interceptions = count
            self._faults.intercept_response = response

    def reset_connections(self, count: int) -> None:
        """Reset the next ``count`` accepted connections before any byte passes."""
        _check_fault_arguments(count, 0.5)
        with self._faults.lock:
            self._faults.resets = count

    def clear_faults(self) -> None:
        """Disarm every fault that has not fired yet."""
        with self._faults.lock:
            self._faults.request_cuts = 0
            self._faults.response_cuts = 0
            self._faults.resets = 0
            self._faults.interceptions = 0

    def stats(self) -> ProxyStats:
        """Return the counts since the proxy started."""
        faults = self._faults
        with faults.lock:
            return ProxyStats(
                connections=faults.connections,
                requests=faults.requests,
                responses=faults.responses,
                request_bodies_cut=faults.request_bodies_cut,
                response_bodies_cut=faults.response_bodies_cut,
                connections_reset=faults.connections_reset,
                requests_intercepted=faults.requests_intercepted,
            )

    def _start_thread(
        self, target: Callable[..., None], name: str, *args: object
    ) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [alive for alive in self._threads if alive.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stopping.is_set():
                    logger.warning("fault proxy stopped accepting: %s", exc)
                return
            self._open_connection(client)

    def _open_connection(self, client: socket.socket) -> None:
        client.settimeout(None)
        if self._faults.take_reset():
            client.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            client.close()
            return

        try:
            upstream = socket.create_connection(self._upstream, timeout=10)
        except OSError as exc:
            logger.warning("proxy failed to reach %s: %s", self._upstream, exc)
            client.close()
            return

        upstream.settimeout(None)
        connection = _ProxiedConnection(client, upstream)
        with self._connections_lock:
            self._connections.add(connection)

        methods: collections.deque[str] = collections.deque()
        request_framer = _HttpFramer(True, methods, self._faults)
        response_framer = _HttpFramer(False, methods, self._faults)
        self._start_thread(
            self._pump, "proxy-request", connection, client, upstream, request_framer
        )
        self._start_thread(
            self._pump, "proxy-response", connection, upstream, client, response_framer
        )

    def _pump(
        self,
        connection: _ProxiedConnection,
        source: socket.socket,
        destination: socket.socket,
        framer: _HttpFramer,
    ) -> None:
        try:
            while True:
                data = source.recv(_RECEIVE_SIZE)
                if not data:
                    destination.shutdown(socket.SHUT_WR)
                    return

                cut = framer.feed(data)
                if cut is None:
                    destination.sendall(data)
                    continue

                destination.sendall(data[:cut])
                if framer.response is not None:
                    _respond_and_close(connection, source, framer.response)
                else:
                    connection.reset()
                return
        except OSError:
            connection.close()
        finally:
            if connection.finish_pump():
                connection.close()
                with self._connections_lock:
                    self._connections.discard(connection)


def _check_fault_arguments(count: int, fraction: float) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")


def _build_response(status: int, headers: dict[str, str]) -> bytes:
    if isinstance(status, bool) or not isinstance(status, int):
        raise ValueError(f"status must be an integer, got {status!r}")
    if not 200 <= status <= 599:
        raise ValueError(f"status must be from 200 to 599, got {status}")
    for name, value in headers.items():
        if not name or ":" in name or any(c in name + value for c in "\r\n"):
            raise ValueError(f"invalid header {name!r}: {value!r}")

    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = _EXTRA_REASONS.get(status, "Error")
    body = f"{status} {reason}\n".encode("ascii")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _respond_and_close(
    connection: _ProxiedConnection, client: socket.socket, response: bytes
) -> None:
    """Send ``response`` to the client, discard what it still sends, and close.

    Closing at once could reset the connection while the client is still
    sending its request body, and the client would then see a connection
    error instead of the response.
    """
    try:
        client.sendall(response)
        client.shutdown(socket.SHUT_WR)
        client.settimeout(_DRAIN_SECONDS)
        while client.recv(_RECEIVE_SIZE):
            pass
    except OSError:
        pass
    finally:
        connection.close()
