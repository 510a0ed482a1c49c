"""The WSGI router, JSON and error responses, and the threaded HTTP server.

The server is the standard library's `wsgiref` server with one thread per
request, bound to 127.0.0.1. Every exception a handler lets through becomes the
protocol's 500 server_error/please retry response, so a client never sees a
traceback.
"""

from __future__ import annotations

import collections
import errno
import json
import logging
import re
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from lhubic.exceptions import HubicConfigError

from .state import ProtocolError

__all__ = [
    "JSON_CONTENT_TYPE",
    "HttpService",
    "Request",
    "Response",
    "Route",
    "WsgiApp",
    "html_response",
    "json_error",
    "json_response",
    "parse_form",
    "redirect",
    "repeated_field",
    "text_response",
]

logger = logging.getLogger(__name__)

# hubiC's exact header value; "utf8" without the dash is what it sent.
JSON_CONTENT_TYPE = "application/json; charset=utf8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

# Forms and token requests are small; anything larger is a mistake or abuse.
MAX_BODY_BYTES = 1024 * 1024

# Seconds a connection may stay silent before its thread gives up on it.
SOCKET_TIMEOUT = 30

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]


@dataclass
class Request:
    """One HTTP request, decoded from the WSGI environment.

    The repr leaves out the headers and the body, which carry tokens, client
    secrets and passwords.
    """

    method: str
    path: str
    query: dict[str, list[str]] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """The media type without parameters, in lower case."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def form(self) -> dict[str, list[str]]:
        """Parse a form-encoded body; other bodies give no fields.

        Raises ValueError when the body is not valid UTF-8.
        """
        if self.content_type != FORM_CONTENT_TYPE:
            return {}
        return parse_form(self.body.decode("utf-8"))

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


def parse_form(text: str) -> dict[str, list[str]]:
    """Parse form-encoded text as UTF-8; raise ValueError on invalid escapes."""
    return parse_qs(text, keep_blank_values=True, encoding="utf-8", errors="strict")


def repeated_field(
    fields: Mapping[str, Sequence[str]], names: Iterable[str]
) -> str | None:
    """Return the first of ``names`` that appears more than once, else None.

    OAuth2 (RFC 6749, section 3.1) forbids repeating a parameter, and taking
    the first or the last value silently could hide a client's mistake.
    """
    for name in names:
        if len(fields.get(name, ())) > 1:
            return name
    return None


@dataclass
class Response:
    """An HTTP response: status, headers and body.

    The repr leaves out the headers and the body, which may carry codes and
    tokens.
    """

    status: int
    headers: list[tuple[str, str]] = field(repr=False)
    body: bytes | Iterable[bytes] = field(default=b"", repr=False)


def json_response(
    status: int, payload: object, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    body = json.dumps(payload).encode("utf-8")
    return Response(status, [("Content-Type", JSON_CONTENT_TYPE), *headers], body)


def json_error(
    status: int,
    error: str,
    description: str,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Return the protocol's error response: ``{"error", "error_description"}``."""
    payload = {"error": error, "error_description": description}
    return json_response(status, payload, headers)


def html_response(status: int, page: str) -> Response:
    return Response(status, [("Content-Type", HTML_CONTENT_TYPE)], page.encode())


def redirect(location: str) -> Response:
    return Response(302, [("Location", location), ("Content-Length", "0")])


def text_response(status: int, text: str) -> Response:
    return Response(
        status, [("Content-Type", "text/plain; charset=utf-8")], text.encode()
    )


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A path pattern (a regular expression matched in full) and its handlers."""

    pattern: str
    handlers: Mapping[str, Handler]


_REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    509: "Bandwidth Limit Exceeded",
}


class WsgiApp:
    """Route requests to handlers and count them by path."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = [(re.compile(route.pattern), route) for route in routes]
        self._lock = threading.Lock()
        self._paths: collections.Counter[str] = collections.Counter()

    def request_count(self, path_prefix: str = "/") -> int:
        """Return how many requests had a path starting with ``path_prefix``."""
        with self._lock:
            return sum(
                count
                for path, count in self._paths.items()
                if path.startswith(path_prefix)
            )

    def __call__(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        response = self._respond(environ)
        reason = _REASONS.get(response.status, "Unknown")
        headers = list(response.headers)
        body = response.body
        if isinstance(body, bytes):
            if not any(name.lower() == "content-length" for name, _ in headers):
                headers.append(("Content-Length", str(len(body))))
            body = [body]
        start_response(f"{response.status} {reason}", headers)
        return body

    def _respond(self, environ: Environ) -> Response:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            path = _decode_path(environ)
        except UnicodeDecodeError:
            return json_error(400, "invalid_request", "the path is not valid UTF-8")

        with self._lock:
            self._paths[path] += 1

        try:
            request = _read_request(environ, method, path)
            response = self._dispatch(request)
        except ProtocolError as error:
            logger.info(
                "%s %s rejected: %s/%s",
                method,
                path,
                error.error,
                error.error_description,
            )
            response = json_error(
                error.status or 400,
                error.error or "invalid_request",
                error.error_description or "",
            )
        except Exception:
            logger.exception("request %s %s failed", method, path)
            response = json_error(500, "server_error", "please retry")

        logger.debug("%s %s -> %d", method, path, response.status)
        return response

    def _dispatch(self, request: Request) -> Response:
        for pattern, route in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            handler = route.handlers.get(request.method)
            if handler is None:
                allowed = ", ".join(sorted(route.handlers))
                return json_error(
                    405,
                    "invalid_request",
                    f"method {request.method} not allowed here; use {allowed}",
                    [("Allow", allowed)],
                )
            request.params = match.groupdict()
            return handler(request)
        # NOTE: hubiC's 404 body is not on record; this pair follows the
        # shape of its other errors.
        return json_error(404, "not_found", f"no endpoint at {request.path}")


def _decode_path(environ: Environ) -> str:
    # PEP 3333 passes the path as bytes decoded as latin-1; URLs carry UTF-8.
    raw = str(environ.get("PATH_INFO", "/"))
    return raw.encode("latin-1").decode("utf-8")


def _read_request(environ: Environ, method: str, path: str) -> Request:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])

    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ProtocolError(
            400, "invalid_request", "Content-Length is not a number"
        ) from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise ProtocolError(
            413, "invalid_request", f"the body must be at most {MAX_BODY_BYTES} bytes"
        )
    body = environ["wsgi.input"].read(length) if length else b""

    try:
        query = parse_form(str(environ.get("QUERY_STRING", "")))
    except UnicodeDecodeError:
        raise ProtocolError(
            400, "invalid_request", "the query string is not valid UTF-8"
        ) from None
    return Request(method, path, query, headers, body)


class _RequestHandler(WSGIRequestHandler):
    """wsgiref's handler with a socket timeout and logging instead of stderr."""

    timeout = SOCKET_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        # WsgiApp logs each request without its query string, which may carry
        # an OAuth state; wsgiref's own access log would print it.
        return

    def log_error(self, format: str, *args: Any) -> None:
        logger.warning(
            "malformed HTTP request from %s: %s", self.client_address[0], format % args
        )


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    # Non-daemon threads, joined by server_close(), so stopping the service
    # leaves no request thread behind.
    daemon_threads = False
    block_on_close = True


class HttpService:
    """The threaded HTTP server running a WSGI app on 127.0.0.1."""

    host = "127.0.0.1"

    def __init__(self, app: WsgiApp, port: int = 0) -> None:
        self.app = app
        self.requested_port = port
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the HTTP service is not running")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind the port and serve in a background thread.

        Raises HubicConfigError when the port is already in use or cannot be
        bound.
        """
        try:
            server = _ThreadingServer((self.host, self.requested_port), _RequestHandler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise HubicConfigError(
                    f"port {self.requested_port} on {self.host} is already in use; "
                    "stop what listens there, pick another port, or use port 0 "
                    "for a free one"
                ) from error
            raise HubicConfigError(
                f"cannot listen on port {self.requested_port} on {self.host}: "
                f"{error.strerror or error}; pick another port, or use port 0 "
                "for a free one"
            ) from error
        server.set_app(self.app)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"lhubic-http-{self.port}",
            # stop() joins the request threads. This thread only accepts
            # connections, and must not keep the interpreter alive when
            # stop() is never called.
            daemon=True,
        )
        self._thread.start()
        logger.info("HTTP service listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop accepting requests, wait for those in progress, close the port."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        port = self.port
        server.shutdown()
        thread.join()
        server.server_close()
        self._server = None
        self._thread = None
        logger.info("HTTP service on %s:%d stopped", self.host, port)
