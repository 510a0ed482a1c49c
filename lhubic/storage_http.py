"""The HTTP connection behind `Hubic`'s storage calls.

python-swiftclient sends every storage request through a requests session and
reads the response through an adapter with the `http.client` interface
(``status``, ``getheader``, ``read``). On small requests most of the client's
CPU goes to the requests layers around urllib3: preparing the request, cookies,
hooks and building the Response. `StorageConnection` keeps the same interface
and the same settings, but sends each request straight to the urllib3
connection pool that requests would use: the pool, its TLS setup and its
proxy come from requests' own adapter, read once per connection. Redirects,
which Swift does not send, are handed back to requests and lhubic's redirect
guard. When the session's adapter is not requests' own (a test double such as
the ``responses`` or ``requests-mock`` packages, or a mounted adapter), every
request goes through requests as before.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlparse

import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    check_header_validity,
    get_encoding_from_headers,
    select_proxy,
    super_len,
)
from swiftclient import version as swiftclient_version
from swiftclient.client import encode_meta_headers
from swiftclient.exceptions import ClientException
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import InvalidHeader as _InvalidHeader
from urllib3.exceptions import ProxyError as _ProxyError
from urllib3.exceptions import SSLError as _SSLError

from .security import GuardedStorageSession, log_exchange

__all__ = ["StorageConnection", "StorageResponse"]

# requests' own methods, taken at import: an adapter whose class has others
# (a subclass, or a test double patched in) gets every request through them.
_HTTP_ADAPTER_SEND = HTTPAdapter.send
_HTTP_ADAPTER_CONNECTION = HTTPAdapter.get_connection_with_tls_context

# Status codes after which requests follows the Location header.
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Timeout = float | tuple[float | None, float | None] | None


def _decode_header(text: str) -> str:
    # http.client reads header bytes as ISO-8859-1; Swift sends UTF-8.
    return text.encode("iso-8859-1").decode("utf-8")


def _encode_header(text: str) -> str:
    return text.encode("utf-8").decode("iso-8859-1")


class StorageResponse:
    """A storage response, read through the `http.client` interface.

    ``raw`` is the urllib3 response and ``request`` the requests
    ``PreparedRequest`` that was sent. Any other attribute of a requests
    ``Response`` (``headers``, ``content``, ``iter_content``, ``json``,
    ``elapsed``, ...) is there too, for code written against the Response that
    swiftclient's own connection returns, such as
    ``ClientException.from_response``: the first use builds that Response
    around the same ``raw``.
    """

    def __init__(
        self,
        raw: urllib3.BaseHTTPResponse,
        url: str,
        elapsed: float,
        request: requests.PreparedRequest | Callable[[], requests.PreparedRequest],
        response: requests.Response | None = None,
    ) -> None:
        self.raw = raw
        self.url = url
        self.status = raw.status
        self.status_code = raw.status
        self.reason = raw.reason
        self._elapsed = elapsed
        self._request = request
        self._response = response

    @property
    def request(self) -> requests.PreparedRequest:
        """The request that was sent, built on first use."""
        if not isinstance(self._request, requests.PreparedRequest):
            self._request = self._request()
        return self._request

    def __repr__(self) -> str:
        return f"<StorageResponse {self.status} {self.reason}>"

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set in __init__; private and special
        # names stay missing, so copying or pickling cannot recurse here.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._requests_response(), name)

    def getheaders(self) -> list[tuple[str, str]]:
        """Return every header as a (name, value) pair; repeated ones joined."""
        headers = self.raw.headers
        return [
            (_decode_header(name), _decode_header(headers[name])) for name in headers
        ]

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """Return the value of header ``name`` (any case), or ``default``."""
        value = self.raw.headers.get(_encode_header(name.lower()))
        if value is None:
            return default
        return _decode_header(value)

    def read(self, amt: int | None = None) -> bytes:
        """Read up to ``amt`` bytes of the body, all of it if ``amt`` is None.

        The connection goes back to the pool once the body has been read.
        """
        chunk = self.raw.read(amt)
        if not chunk:
            self.close()
        return chunk

    def close(self) -> None:
        """Release the connection; one whose body was not read to the end is closed."""
        self.raw.close()
        self.raw.release_conn()

    def _requests_response(self) -> requests.Response:
        # The fields HTTPAdapter.build_response fills, without its cookie jar:
        # swiftclient's session never stores cookies.
        if self._response is None:
            response = requests.Response()
            response.status_code = self.status
            response.headers = CaseInsensitiveDict(self.raw.headers)
            response.encoding = get_encoding_from_headers(response.headers)
            response.raw = self.raw
            response.reason = self.reason or ""
            response.url = self.url or ""
            response.request = self.request
            response.elapsed = timedelta(seconds=self._elapsed)
            self._response = response
        return self._response


class StorageConnection:
    """An HTTP connection to one storage URL, as swiftclient's `http_connection`.

    Takes the arguments of swiftclient's ``HTTPConnection`` and offers its
    methods: `request`, `putrequest`, `getresponse` and `close`. Proxy and CA
    bundle variables of the environment (``HTTPS_PROXY``, ``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE``, ...) are read as requests reads them, once, at the
    first request. Each response is logged at DEBUG to ``request_logger``
    without its URL's secrets.
    """

    def __init__(
        self,
        url: str,
        *,
        request_logger: logging.Logger,
        cacert: str | None = None,
        insecure: bool = False,
        cert: str | None = None,
        cert_key: str | None = None,
        timeout: Timeout = None,
        default_user_agent: str | None = None,
    ) -> None:
        self.url = url
        self.parsed_url = urlparse(url)
        if self.parsed_url.scheme not in ("http", "https"):
            raise ClientException(
                f"unsupported scheme {self.parsed_url.scheme!r} in storage URL "
                f"{self.parsed_url.scheme}://{self.parsed_url.hostname}; "
                "use http or https"
            )
        self.host = self.parsed_url.netloc
        self.port = self.parsed_url.port
        self.default_user_agent = (
            default_user_agent
            or f"python-swiftclient-{swiftclient_version.version_string}"
        )

        # The arguments swiftclient's HTTPConnection passes to requests.
        verify: bool | str = not insecure
        if cacert and not insecure:
            verify = cacert
        self.requests_args: dict[str, Any] = {"verify": verify, "stream": True}
        if cert:
            self.requests_args["cert"] = (cert, cert_key) if cert_key else cert
        if timeout:
            self.requests_args["timeout"] = timeout

        self.request_session = GuardedStorageSession(request_logger)
        self.resp: StorageResponse | None = None
        self._logger = request_logger
        self._timeout = _urllib3_timeout(timeout or None)
        self._route: _Route | None = None

    def request(
        self,
        method: str,
        full_path: str,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        files: Any = None,
    ) -> StorageResponse:
        """Send a request for ``full_path`` and return its response."""
        encoded = encode_meta_headers(headers) if headers else {}
        if "user-agent" not in encoded:
            encoded["user-agent"] = self.default_user_agent
        for header in encoded.items():
            _check_header(header)
        url = f"{self.parsed_url.scheme}://{self.parsed_url.netloc}{full_path}"

        route = self._route or self._open_route(url)
        if files is not None or not route.direct():
            # Multipart uploads (swiftclient never sends them) and adapters
            # other than requests' own go through requests.
            self.resp = self._send_with_requests(method, url, data, encoded, files)
            return self.resp

        body, chunked = _frame_body(method, data, encoded)
        self.resp = self._send(route, method, url, full_path, body, encoded, chunked)
        return self.resp

    def putrequest(
        self,
        full_path: str,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        files: Any = None,
    ) -> StorageResponse:
        """Send a PUT request for ``full_path`` and return its response."""
        return self.request("PUT", full_path, data, headers, files)

    def getresponse(self) -> StorageResponse:
        """Return the response to the last request."""
        if self.resp is None:
            raise ClientException("getresponse() called before any request")
        return self.resp

    def close(self) -> None:
        """Close the last response and every pooled connection."""
        if self.resp is not None:
            self.resp.close()
        self._route = None
        self.request_session.close()

    def _send(
        self,
        route: _Route,
        method: str,
        url: str,
        full_path: str,
        body: Any,
        headers: dict[str, Any],
        chunked: bool,
    ) -> StorageResponse:
        # Built only when a response, an error or a redirect needs it.
        prepare = functools.partial(
            _prepared_request, method, url, headers, body, _body_position(body)
        )

        assert route.pool is not None
        started = time.perf_counter()
        try:
            raw = route.pool.urlopen(
                method,
                url if route.absolute_target else full_path,
                body=body,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=cast(HTTPAdapter, route.adapter).max_retries,
                timeout=self._timeout,
                chunked=chunked,
            )
        except ClosedPoolError as error:
            # close() dropped the pool, so the next request opens a new one.
            self._route = None
            raise requests.exceptions.ConnectionError(
                error, request=prepare()
            ) from error
        except Exception as error:
            mapped = _requests_error(error, prepare())
            if mapped is error:
                raise
            raise mapped from error
        elapsed = time.perf_counter() - started

        if raw.status in _REDIRECT_STATUSES and "location" in raw.headers:
            return self._follow_redirects(route, prepare(), raw, elapsed)
        log_exchange(self._logger, method, url, raw.status, elapsed)
        return StorageResponse(raw, url, elapsed, prepare)

    def _send_with_requests(
        self,
        method: str,
        url: str,
        data: Any,
        headers: dict[str, Any],
        files: Any,
    ) -> StorageResponse:
        response = self.request_session.request(
            method, url, headers=headers, data=data, files=files, **self.requests_args
        )
        return StorageResponse(
            response.raw,
            response.url,
            response.elapsed.total_seconds(),
            response.request,
            response,
        )

    def _open_route(self, url: str) -> _Route:
        session = self.request_session
        settings = session.merge_environment_settings(
            url,
            {},
            True,
            self.requests_args["verify"],
            self.requests_args.get("cert"),
        )
        adapter = session.get_adapter(url)
        if not isinstance(adapter, HTTPAdapter) or not _sends_as_requests(adapter):
            self._route = _Route(adapter, None, settings, False)
            return self._route

        stub = requests.PreparedRequest()
        stub.url = url
        verify = settings["verify"]
        cert = settings["cert"]
        proxies = settings["proxies"]
        try:
            pool = adapter.get_connection_with_tls_context(
                stub, verify, proxies=proxies, cert=cert
            )
        except urllib3.exceptions.LocationValueError as error:
            raise requests.exceptions.InvalidURL(error) from error
        adapter.cert_verify(pool, url, verify, cert)  # type: ignore[no-untyped-call]

        # Through a plain-HTTP proxy the request line carries the whole URL,
        # as requests' HTTPAdapter.request_url builds it.
        proxy = select_proxy(url, proxies)
        absolute = bool(
            proxy
            and self.parsed_url.scheme != "https"
            and not urlparse(proxy).scheme.lower().startswith("socks")
        )
        self._route = _Route(
            adapter, cast(urllib3.HTTPConnectionPool, pool), settings, absolute
        )
        return self._route

    def _follow_redirects(
        self,
        route: _Route,
        prepared: requests.PreparedRequest,
        raw: urllib3.BaseHTTPResponse,
        elapsed: float,
    ) -> StorageResponse:
        # Complete what requests would have sent, so its redirect logic (and
        # the guard in GuardedStorageSession) handles the rest of the chain.
        session = self.request_session
        prepared.hooks = {"response": list(session.hooks["response"])}
        prepared._cookies = RequestsCookieJar()  # type: ignore[attr-defined]
        adapter = cast(HTTPAdapter, route.adapter)
        first = adapter.build_response(prepared, raw)
        first.elapsed = timedelta(seconds=elapsed)
        log_exchange(
            self._logger, prepared.method or "", prepared.url or "", raw.status, elapsed
        )

        settings = route.settings
        hops = list(
            session.resolve_redirects(
                first,
                prepared,
                stream=True,
                timeout=self.requests_args.get("timeout"),
                verify=settings["verify"],
                cert=settings["cert"],
                proxies=dict(settings["proxies"] or {}),
            )
        )
        final = hops[-1] if hops else first
        return StorageResponse(
            final.raw, final.url, final.elapsed.total_seconds(), final.request, final
        )


class _Route:
    """The adapter, pool, settings and request-line form for one storage origin.

    ``pool`` is None when requests must send every request itself.
    """

    __slots__ = ("absolute_target", "adapter", "pool", "settings")

    def __init__(
        self,
        adapter: BaseAdapter,
        pool: urllib3.HTTPConnectionPool | None,
        settings: dict[str, Any],
        absolute_target: bool,
    ) -> None:
        self.adapter = adapter
        self.pool = pool
        self.settings = settings
        self.absolute_target = absolute_target

    def direct(self) -> bool:
        """Return whether requests may skip the adapter and use the pool."""
        # A double patched into HTTPAdapter.send after the route was opened
        # must still see the requests.
        return self.pool is not None and _sends_as_requests(self.adapter)


def _sends_as_requests(adapter: BaseAdapter) -> bool:
    kind = type(adapter)
    return (
        kind.send is _HTTP_ADAPTER_SEND
        and getattr(kind, "get_connection_with_tls_context", None)
        is _HTTP_ADAPTER_CONNECTION
    )


def _check_header(header: tuple[Any, Any]) -> None:
    """Raise InvalidHeader as requests does when preparing a request.

    The message names the header but not its value, which may be a token.
    """
    try:
        check_header_validity(header)
    except requests.exceptions.InvalidHeader:
        pass
    else:
        return

    name, value = header
    header_name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
    if not isinstance(value, (str, bytes)):
        problem = f"a {type(value).__name__} value; pass a string"
    else:
        problem = "a line break or leading white space in its value; remove it"
    raise requests.exceptions.InvalidHeader(f"header {header_name!r} has {problem}")


def _prepared_request(
    method: str, url: str, headers: dict[Any, Any], body: Any, position: object
) -> requests.PreparedRequest:
    prepared = requests.PreparedRequest()
    prepared.method = method
    prepared.url = url
    prepared.headers = CaseInsensitiveDict(headers)
    prepared.body = body
    prepared._body_position = position  # type: ignore[attr-defined]
    return prepared


def _urllib3_timeout(timeout: Timeout) -> urllib3.Timeout:
    if isinstance(timeout, tuple):
        connect, read = timeout
        return urllib3.Timeout(connect=connect, read=read)
    return urllib3.Timeout(connect=timeout, read=timeout)


def _frame_body(method: str, data: Any, headers: dict[Any, Any]) -> tuple[Any, bool]:
    """Return the body to send and whether it goes chunked, as requests frames it.

    When the body's length is known (bytes, text, a sized object, or a file from
    its current position), ``Content-Length`` is set to it and replaces the
    caller's. A shorter value would leave bytes on the connection, which the
    server would read as the next request. A body of unknown length keeps the
    caller's ``Content-Length`` or else goes chunked. A caller's
    ``Transfer-Encoding`` is kept.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray)) and not data:
        # requests sends no body for an empty one, so a GET gets no length.
        data = None
    names = {_header_name(name): name for name in headers}

    if data is None:
        framed = "content-length" in names or "transfer-encoding" in names
        if not framed and method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        return None, False
    if "transfer-encoding" in names:
        return data, True
    if isinstance(data, (Mapping, list, tuple)):
        raise TypeError(
            "storage request body must be bytes, a file or an iterable of "
            f"bytes, got {type(data).__name__}"
        )

    if isinstance(data, (bytes, bytearray, memoryview)):
        length = len(data)
    else:
        length = super_len(data)  # type: ignore[no-untyped-call]
    if length:
        headers.pop(names.get("content-length"), None)
        headers["Content-Length"] = str(length)
        return data, False
    if "content-length" in names:
        return data, False
    # requests rewinds a body before following a redirect only when this
    # header or Content-Length is set, so it is set here as requests sets it.
    headers["Transfer-Encoding"] = "chunked"
    return data, True


def _header_name(name: str | bytes) -> str:
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return text.lower()


def _body_position(body: Any) -> object:
    """Return where ``body`` starts, for a rewind before a redirected request.

    A file whose position cannot be read gets an object that is not an int,
    as requests records it: a redirect then raises UnrewindableBodyError
    instead of sending an empty body.
    """
    tell = getattr(body, "tell", None)
    if tell is None:
        return None
    try:
        position: int = tell()
    except OSError:
        return object()
    return position


def _requests_error(error: Exception, request: requests.PreparedRequest) -> Exception:
    """Return the requests exception that requests' HTTPAdapter raises for ``error``.

    swiftclient retries requests and socket errors, and lhubic's messages
    name the requests classes, so the mapping follows requests 2.x exactly.
    """
    exceptions = requests.exceptions
    if isinstance(error, (ProtocolError, OSError)):
        return exceptions.ConnectionError(error, request=request)
    if isinstance(error, MaxRetryError):
        reason = error.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(
            reason, NewConnectionError
        ):
            return exceptions.ConnectTimeout(error, request=request)
        if isinstance(reason, ResponseError):
            return exceptions.RetryError(error, request=request)
        if isinstance(reason, _ProxyError):
            return exceptions.ProxyError(error, request=request)
        if isinstance(reason, _SSLError):
            return exceptions.SSLError(error, request=request)
        return exceptions.ConnectionError(error, request=request)
    if isinstance(error, _ProxyError):
        return exceptions.ProxyError(error)
    if isinstance(error, _SSLError):
        return exceptions.SSLError(error, request=request)
    if isinstance(error, ReadTimeoutError):
        return exceptions.ReadTimeout(error, request=request)
    if isinstance(error, _InvalidHeader):
        return exceptions.InvalidHeader(error, request=request)
    return error
