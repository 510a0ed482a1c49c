"""URL checks, redirect guards and redaction of secrets in logs.

Every URL that lhubic sends a credential to goes through `check_url`: HTTPS is
required, except to loopback hosts (127.0.0.0/8, ::1 and ``localhost``), where
the local service runs. The sessions defined here check each redirect target
the same way and drop credential headers when a redirect leaves the origin.
`SecretFilter` scrubs token header values and registered secrets from the log
records of python-swiftclient, which logs request headers at DEBUG.
"""

from __future__ import annotations

import collections
import hashlib
import ipaddress
import logging
import re
import threading
from collections.abc import Hashable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from swiftclient.requests_compat import SwiftClientRequestsSession

from .exceptions import HubicConfigError, HubicInsecureURL

__all__ = [
    "CREDENTIAL_HEADERS",
    "MIN_SECRET_LENGTH",
    "GuardedSession",
    "GuardedStorageSession",
    "SecretFilter",
    "check_url",
    "fingerprint",
    "install_secret_filter",
    "is_loopback_host",
    "log_exchange",
    "log_response",
    "redact_text",
    "redact_url",
]

logger = logging.getLogger(__name__)

# Headers that carry a credential and must not follow a redirect to another origin.
CREDENTIAL_HEADERS = (
    "Authorization",
    "X-Auth-Token",
    "X-Storage-Token",
    "X-Service-Token",
)

# Query parameters whose values are replaced by "***" in logged URLs.
SENSITIVE_QUERY_KEYS = frozenset(
    {
        "access_token",
        "client_secret",
        "code",
        "password",
        "refresh_token",
        "state",
        "temp_url_sig",
        "token",
        "user_pwd",
    }
)

_DEFAULT_PORTS = {"http": 80, "https": 443}

MIN_SECRET_LENGTH = 8

# A header name followed by its value, in the forms swiftclient logs them:
# `-H "X-Auth-Token: value"` in a curl line and `'X-Auth-Token': 'value'` in a dict.
_HEADER_VALUE = re.compile(
    r"(?P<name>authorization|x-auth-token|x-storage-token|x-service-token"
    r"|x-subject-token|x-auth-key)"
    r"(?P<separator>['\"]?\s*[:=]\s*['\"]?)"
    r"(?P<scheme>(?:bearer|basic)\s+)?"
    r"(?P<value>[^\s'\",}]+)",
    re.IGNORECASE,
)


def is_loopback_host(host: str | None) -> bool:
    """Tell whether ``host`` is ``localhost`` or an address in 127.0.0.0/8 or ::1."""
    if not host:
        return False

    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_url(url: object, *, name: str, fix: str) -> str:
    """Validate a URL that credentials will be sent to, and return it.

    ``name`` identifies the URL in error messages, and ``fix`` is the
    correction they suggest for a wrong scheme or host. Raises
    `HubicConfigError` when ``url`` is not an absolute http(s) URL, embeds a
    user name or password, contains whitespace or a control character, or
    has an invalid port. Raises `HubicInsecureURL` when it uses plain HTTP to
    a host that is not loopback.
    """
    if not isinstance(url, str) or not url.strip():
        raise HubicConfigError(f"{name} must be a non-empty URL, got {url!r}; {fix}")

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HubicConfigError(
            f"{name} {_shown(url)!r} is not an absolute http or https URL; {fix}"
        )

    if parts.username is not None or parts.password is not None:
        raise HubicConfigError(
            f"{name} must not contain a user name or password; remove the part "
            f"before '@' from {_shown(url)!r}"
        )

    stripped = url.strip()
    if any(character.isspace() or ord(character) < 32 for character in stripped):
        raise HubicConfigError(
            f"{name} {_shown(url)!r} contains whitespace or a control character; "
            "remove it or percent-encode it"
        )

    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise HubicConfigError(
            f"{name} {_shown(url)!r} has an invalid port; use a number from 1 to 65535"
        )

    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise HubicInsecureURL(
            f"{name} {_shown(url)!r} uses plain HTTP to {parts.hostname}, which is "
            f"not a loopback address, so credentials would travel unencrypted; {fix}"
        )
    return stripped


def origin(url: str) -> tuple[str, str, int]:
    """Return the (scheme, host, port) that two URLs must share to be one origin."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port


def redact_url(url: str) -> str:
    """Return ``url`` with sensitive query parameter values replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url

    pairs = [
        (key, "***" if key.lower() in SENSITIVE_QUERY_KEYS else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    query = urlencode(pairs, safe="*,/")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def fingerprint(secret: str) -> str:
    """Return a short SHA-256 digest of ``secret`` so that logs can match tokens.

    The digest does not reveal the token, but two log lines about the same
    token show the same fingerprint.
    """
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
    return f"sha256:{digest[:12]}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace credential header values and every string in ``secrets`` in ``text``."""
    redacted = _HEADER_VALUE.sub(_redact_header_match, text)
    # Longest first, so that a secret contained in another does not leave
    # the rest of the longer one behind.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in redacted:
            redacted = redacted.replace(secret, "<redacted>")
    return redacted


def _redact_header_match(match: re.Match[str]) -> str:
    scheme = match.group("scheme") or ""
    return f"{match.group('name')}{match.group('separator')}{scheme}<redacted>"


def _shown(url: str) -> str:
    # The URL goes into an error message: drop a user:password part and the
    # query, which may carry a secret.
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class SecretFilter(logging.Filter):
    """A logging filter that scrubs credentials from log records.

    It replaces the values of credential headers (see `redact_text`) and every
    secret registered with `add`. It keeps the most recent ``capacity``
    secrets, so a long-running process does not grow without bound.
    """

    def __init__(self, capacity: int = 1024) -> None:
        super().__init__()
        self._secrets: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        """Register ``secret`` so that it is replaced wherever it appears.

        Strings shorter than `MIN_SECRET_LENGTH` are ignored: replacing them
        would garble unrelated text, and hubiC's tokens are much longer.
        """
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return

        with self._lock:
            self._secrets[secret] = None
            self._secrets.move_to_end(secret)
            while len(self._secrets) > self._capacity:
                self._secrets.popitem(last=False)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without secrets; never drop the record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True

        with self._lock:
            secrets = list(self._secrets)
        redacted = redact_text(message, secrets)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_FILTER = SecretFilter()
_FILTERED_LOGGERS = ("swiftclient", "swiftclient.service")
_install_lock = threading.Lock()


def install_secret_filter(*secrets: str | None) -> SecretFilter:
    """Attach the shared `SecretFilter` to swiftclient's loggers and register secrets.

    A filter on a logger applies only to the records created by that logger,
    which is why each swiftclient logger gets it. Calling this again only registers
    the new secrets.
    """
    with _install_lock:
        for name in _FILTERED_LOGGERS:
            target = logging.getLogger(name)
            if _FILTER not in target.filters:
                target.addFilter(_FILTER)

    for secret in secrets:
        _FILTER.add(secret)
    return _FILTER


def log_response(log: logging.Logger, response: requests.Response) -> None:
    """Log a request's method, URL without secrets, status and duration at DEBUG."""
    request = response.request
    log_exchange(
        log,
        request.method or "",
        request.url or "",
        response.status_code,
        response.elapsed.total_seconds(),
    )


def log_exchange(
    log: logging.Logger, method: str, url: str, status: int, seconds: float
) -> None:
    """Log a request's method, URL without secrets, status and duration at DEBUG."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s -> %s in %.3f s", method, redact_url(url), status, seconds)


class _RedirectGuard:
    """Redirect handling shared by the sessions below (a mixin for requests.Session).

    A redirect target must pass `check_url`, and credential headers are dropped
    whenever the scheme, host or port changes. requests itself drops only
    ``Authorization``, and keeps it on an upgrade from http to https.
    """

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        return origin(old_url) != origin(new_url)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target: str | None = super().get_redirect_target(resp)  # type: ignore[misc]
        if target is not None:
            absolute = urljoin(resp.url, target)
            check_url(
                absolute, name="redirect target", fix="the redirect was not followed"
            )
        return target

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        previous_url = response.request.url or ""
        if self.should_strip_auth(previous_url, prepared_request.url or ""):
            for header in CREDENTIAL_HEADERS:
                prepared_request.headers.pop(header, None)
        super().rebuild_auth(prepared_request, response)  # type: ignore[misc]

    def resolve_redirects(
        self,
        resp: requests.Response,
        req: requests.PreparedRequest,
        *args: Any,
        yield_requests: bool = False,
        **kwargs: Any,
    ) -> Iterator[Any]:
        # With allow_redirects=False, requests still prepares the next request
        # to fill Response.next; lhubic never reads it, and preparing it would
        # check a Location (such as the OAuth redirect URI) that is never
        # followed.
        if yield_requests:
            return iter(())
        parent: Iterator[Any] = super().resolve_redirects(  # type: ignore[misc]
            resp, req, *args, **kwargs
        )
        return parent


class GuardedSession(_RedirectGuard, requests.Session):
    """A requests session for the OAuth and REST calls, with guarded redirects.

    It logs nothing itself: `lhubic.oauth.send_request` logs each request to
    the logger of the module that sends it.
    """


# The maximum number of (origin, arguments) keys a storage session caches.
_MAX_CACHED_SETTINGS = 16


def _frozen(value: Any) -> Hashable:
    """Return a hashable stand-in for a requests argument (a dict, list or value)."""
    if isinstance(value, dict):
        return tuple(sorted((str(key), _frozen(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value if isinstance(value, Hashable) else repr(value)


class GuardedStorageSession(_RedirectGuard, SwiftClientRequestsSession):
    """swiftclient's requests session for storage calls, with guarded redirects.

    Each response is logged at DEBUG to ``request_logger``.
    """

    def __init__(self, request_logger: logging.Logger) -> None:
        super().__init__()
        # swiftclient sends no default headers (requests would add its own
        # User-Agent, Accept and Accept-Encoding); keep it that way.
        self.headers = None
        self._request_logger = request_logger
        self.hooks["response"].append(self._log_response)
        self._environment_settings: dict[Hashable, dict[str, Any]] = {}

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> dict[str, Any]:
        """Return requests' settings for ``url``, reading the environment once.

        requests scans the environment for proxy and CA bundle variables on
        every request: about 0.1 ms of CPU with 35 variables, a tenth of the
        client's CPU for a small upload. A storage session talks to one
        origin, so the settings are cached per origin and arguments for the life
        of the session. Variables changed later reach the connections opened
        after the change (`close` drops the calling thread's connection).
        """
        target = url.decode() if isinstance(url, bytes) else url or ""
        key = (origin(target), _frozen(proxies), stream, _frozen(verify), _frozen(cert))
        settings = self._environment_settings.get(key)
        if settings is None:
            settings = super().merge_environment_settings(
                url, proxies, stream, verify, cert
            )
            if len(self._environment_settings) >= _MAX_CACHED_SETTINGS:
                self._environment_settings.clear()
            self._environment_settings[key] = settings

        # requests passes the proxies mapping on to the adapter; hand out a copy
        # so nothing can change the cached one.
        return {**settings, "proxies": dict(settings["proxies"] or {})}

    def _log_response(
        self, response: requests.Response, *args: Any, **kwargs: Any
    ) -> None:
        log_response(self._request_logger, response)
