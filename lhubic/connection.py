"""`Hubic`: a python-swiftclient `Connection` that logs in through hubiC's OAuth2.

Every `Connection` method (``get_account``, ``put_object``, ...) works as
usual. The storage URL and token come from ``/1.0/account/credentials``, and
`Hubic.get_auth` fetches them on first use and whenever they expire or Swift
rejects them. The REST helpers `Hubic.hubic_get`, `Hubic.hubic_post` and
`Hubic.hubic_delete` call the API under ``/1.0`` with the access token.

One `Hubic` can be shared between threads. swiftclient keeps the storage URL,
the token and the HTTP connection in instance attributes that it changes in
the middle of a request. `Hubic` turns those attributes into per-thread
values, so each thread has its own HTTP connection. The credentials are
shared, and one thread at a time renews them.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from swiftclient.client import Connection
from swiftclient.exceptions import ClientException

from .credentials import (
    AccessToken,
    Clock,
    CredentialsCache,
    StorageCredentials,
    invalid_token_character,
    parse_expiry,
)
from .exceptions import (
    HubicAccessFailure,
    HubicConfigError,
    HubicError,
    HubicInputError,
    HubicInsufficientScope,
    HubicObjectNotFound,
    HubicServiceUnavailable,
    HubicTokenExpired,
    HubicTokenFailure,
    HubicTokenRevoked,
)
from .headers import StorageTarget, validate_headers
from .names import validate_container_name, validate_object_name
from .oauth import (
    DEFAULT_API_URL,
    DEFAULT_REDIRECT_URI,
    DEFAULT_SCOPE,
    REDIRECT_STATUSES,
    OAuthClient,
    RetryPolicy,
    TokenGrant,
    TransientError,
    error_fields,
    json_object,
    parse_scope,
    raise_for_transient_status,
    retry_after_seconds,
    scope_allows,
    send_request,
)
from .security import (
    GuardedSession,
    check_url,
    fingerprint,
    install_secret_filter,
)
from .storage_http import StorageConnection
from .store import RECORD_VERSION, TokenStore, make_token_store
from .transfers import TransferMixin

__all__ = ["Hubic"]

logger = logging.getLogger(__name__)

# Connection arguments that Hubic sets itself from the OAuth login.
_FIXED_OPTIONS = frozenset(
    {
        "authurl",
        "user",
        "key",
        "preauthurl",
        "preauthtoken",
        "auth_version",
        "tenant_name",
        "session",
    }
)
_FIXED_OS_OPTIONS = frozenset(
    {
        "auth_token",
        "object_storage_url",
        "service_username",
        "service_key",
        "service_project_name",
    }
)

# swiftclient fetches new credentials after a storage 401 only when authurl,
# user and key are all set (Connection._retry, python-swiftclient 4.x). Hubic
# sets key to this marker, which get_auth never reads, rather than a secret.
_KEY_MARKER = "hubic-oauth2"

_REVOKED_DESCRIPTIONS = frozenset({"revoked", "deleted"})


# Path segments that lhubic appends to api_url itself.
_API_PATH_SEGMENTS = frozenset({"1.0", "oauth"})

# Storage calls whose 404 means a missing container or object, and which of
# the positional arguments name them.
_CONTAINER_CALLS = frozenset(
    {"head_container", "get_container", "post_container", "delete_container"}
)
_OBJECT_CALLS = frozenset(
    {"head_object", "get_object", "post_object", "copy_object", "delete_object"}
)
_PUT_CALLS = frozenset({"put_container", "put_object"})

# The item each storage call is about, and where Connection passes its headers
# to _retry: an index into the positional arguments, or None for the
# ``headers`` keyword (python-swiftclient 4.11).
_HEADER_ARGUMENTS: dict[str, tuple[StorageTarget, int | None]] = {
    "head_account": ("account", None),
    "get_account": ("account", None),
    "post_account": ("account", 0),
    "head_container": ("container", None),
    "get_container": ("container", None),
    "put_container": ("container", None),
    "post_container": ("container", 1),
    "delete_container": ("container", None),
    "head_object": ("object", None),
    "get_object": ("object", None),
    "put_object": ("object", None),
    "post_object": ("object", 2),
    "copy_object": ("object", 3),
    "delete_object": ("object", None),
}

# Storage statuses that Hubic retries with its own RetryPolicy instead of
# swiftclient's loop: rate limits from HTTP (429), Swift's ratelimit
# middleware (498) and hubiC's load balancer (509), and 503. swiftclient still
# retries the other 5xx statuses, without jitter.
_STORAGE_RATE_LIMIT_STATUSES = frozenset({429, 498, 509})
_STORAGE_TRANSIENT_STATUSES = _STORAGE_RATE_LIMIT_STATUSES | {503}

# Network failures that swiftclient raises once its retries are used up.
_NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)

Timeout = float | tuple[float, float]

_FORM_VALUE_TYPES = (str, bytes, int, float)


@dataclass(repr=False)
class _Settings:
    """The configuration of a `Hubic`, from arguments and environment variables."""

    client_id: str
    client_secret: str
    username: str | None
    password: str | None
    refresh_token: str | None
    api_url: str
    redirect_uri: str
    scope: str
    timeout: Timeout | None

    def __repr__(self) -> str:
        return f"_Settings(api_url={self.api_url!r}, client_id={self.client_id!r})"


def _string_setting(
    value: object,
    argument: str,
    variable: str | None,
    *,
    secret: bool = False,
    token: bool = False,
) -> str | None:
    """Return a setting from ``value`` or the environment ``variable``.

    An empty string counts as missing. A ``secret`` is never shown in the
    error message, and a ``token`` must be printable ASCII without spaces.
    """
    if value is None and variable is not None:
        value = os.environ.get(variable)
    if value is None or value == "":
        return None

    if not isinstance(value, str):
        described = type(value).__name__ if secret else repr(value)
        raise HubicConfigError(f"{argument} must be a string, got {described}")

    index = invalid_token_character(value) if token else None
    if index is not None:
        source = f"{argument} (or {variable})" if variable else argument
        raise HubicConfigError(
            f"{source} contains a space, a control character or a non-ASCII "
            f"character at index {index}; pass the value exactly as hubiC issued it"
        )
    return value


def _seconds_setting(value: object, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise HubicConfigError(
            f"{argument} must be a number of seconds, 0 or more, got {value!r}"
        )
    return float(value)


def _check_timeout(timeout: object) -> Timeout | None:
    if timeout is None:
        return None

    values = timeout if isinstance(timeout, tuple) else (timeout,)
    numbers_ok = all(
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 < value < math.inf
        for value in values
    )
    if not numbers_ok or len(values) not in (1, 2):
        raise HubicConfigError(
            f"timeout must be a positive number of seconds, or a (connect, read) "
            f"pair of them, got {timeout!r}"
        )
    return timeout  # type: ignore[return-value]


def _check_scope(scope: str) -> str:
    try:
        parse_scope(scope)
    except ValueError as error:
        raise HubicConfigError(
            f"invalid scope {scope!r}: {error}; the default is {DEFAULT_SCOPE!r}"
        ) from None
    return scope


def _check_redirect_uri(uri: str) -> str:
    # The redirect URI is only compared by the service, never contacted, so
    # plain HTTP is fine here.
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HubicConfigError(
            f"redirect_uri (or HUBIC_REDIRECT_URI) {uri!r} is not an absolute http "
            "or https URL; pass the redirect URI registered for the application, "
            f"such as {DEFAULT_REDIRECT_URI!r}"
        )
    return uri


def _how_to_set(argument: str, variable: str, command_line: bool) -> str:
    return f"set {variable}" if command_line else f"pass {argument}= or set {variable}"


def _read_settings(
    client_id: object,
    client_secret: object,
    username: object,
    password: object,
    refresh_token: object,
    api_url: object,
    redirect_uri: object,
    scope: object,
    timeout: object,
    command_line: bool = False,
) -> _Settings:
    """Return the settings from the arguments, or else the environment.

    With ``command_line``, an error about a missing client id or secret names
    only the environment variable, because the commands have no option for it.
    """
    found_id = _string_setting(client_id, "client_id", "HUBIC_CLIENT_ID", token=True)
    found_secret = _string_setting(
        client_secret, "client_secret", "HUBIC_CLIENT_SECRET", secret=True, token=True
    )
    missing = []
    if found_id is None:
        fix = _how_to_set("client_id", "HUBIC_CLIENT_ID", command_line)
        missing.append(f"the client id ({fix})")
    if found_secret is None:
        fix = _how_to_set("client_secret", "HUBIC_CLIENT_SECRET", command_line)
        missing.append(f"the client secret ({fix})")
    if missing:
        raise HubicConfigError(
            "missing " + " and ".join(missing) + "; both come from the "
            "application registered with hubiC"
        )
    assert found_id is not None and found_secret is not None

    base = _string_setting(api_url, "api_url", "HUBIC_API_URL") or DEFAULT_API_URL
    base = check_url(
        base,
        name="api_url (HUBIC_API_URL)",
        fix="use https://, or http:// only for a service on this machine",
    ).rstrip("/")
    if "?" in base or "#" in base:
        raise HubicConfigError(
            f"api_url {base!r} must not have a query or fragment; pass the base "
            f"URL only, such as {DEFAULT_API_URL!r}"
        )
    segments = _API_PATH_SEGMENTS.intersection(urlsplit(base).path.split("/"))
    if segments:
        raise HubicConfigError(
            f"api_url {base!r} contains /{min(segments)}; pass the base URL only, "
            f"such as {DEFAULT_API_URL!r}, because lhubic adds /1.0 and /oauth itself"
        )

    uri = (
        _string_setting(redirect_uri, "redirect_uri", "HUBIC_REDIRECT_URI")
        or DEFAULT_REDIRECT_URI
    )
    return _Settings(
        client_id=found_id,
        client_secret=found_secret,
        username=_string_setting(username, "username", "HUBIC_USERNAME"),
        password=_string_setting(password, "password", "HUBIC_PASSWORD", secret=True),
        refresh_token=_string_setting(
            refresh_token,
            "refresh_token",
            "HUBIC_REFRESH_TOKEN",
            secret=True,
            token=True,
        ),
        api_url=base,
        redirect_uri=_check_redirect_uri(uri),
        scope=_check_scope(_string_setting(scope, "scope", None) or DEFAULT_SCOPE),
        timeout=_check_timeout(timeout),
    )


def _require_login_material(settings: _Settings) -> None:
    if settings.refresh_token or (settings.username and settings.password):
        return

    if settings.username:
        problem = "a password for " + repr(settings.username)
        fix = "pass password= or set HUBIC_PASSWORD"
    elif settings.password:
        problem = "the login that goes with the password"
        fix = "pass username= or set HUBIC_USERNAME"
    else:
        problem = "a way to log in"
        fix = "pass username= and password= (or set HUBIC_USERNAME and HUBIC_PASSWORD)"
    raise HubicConfigError(
        f"missing {problem}: {fix}, or pass a saved refresh token with "
        "refresh_token= (or set HUBIC_REFRESH_TOKEN)"
    )


def _check_connection_options(options: Mapping[str, Any]) -> None:
    for name in sorted(_FIXED_OPTIONS.intersection(options)):
        raise HubicConfigError(
            f"Hubic sets the Connection option {name!r} itself from the hubiC "
            f"login; remove {name}= from the arguments"
        )

    os_options = options.get("os_options") or {}
    if not isinstance(os_options, Mapping):
        raise HubicConfigError(
            f"os_options must be a dict, got {type(os_options).__name__}"
        )
    for name in sorted(_FIXED_OS_OPTIONS.intersection(os_options)):
        raise HubicConfigError(
            f"Hubic gets the storage URL and token from hubiC; remove {name!r} "
            "from os_options"
        )


def _check_clock(clock: object) -> Clock:
    if clock is None:
        return Clock()
    if not (
        callable(getattr(clock, "now", None))
        and callable(getattr(clock, "sleep", None))
    ):
        raise HubicConfigError(
            "clock must be an lhubic.Clock, or an object with now() and sleep() "
            f"methods like it, got {type(clock).__name__}"
        )
    return cast(Clock, clock)


def _not_found(
    func: Callable[..., Any], args: Sequence[Any], error: ClientException
) -> HubicObjectNotFound:
    name = getattr(func, "__name__", "")
    container = args[0] if args and isinstance(args[0], str) else None
    obj = None
    if name in _OBJECT_CALLS and len(args) > 1 and isinstance(args[1], str):
        obj = args[1]

    return HubicObjectNotFound(
        container=container,
        obj=obj,
        http_scheme=error.http_scheme,
        http_host=error.http_host,
        http_port=error.http_port,
        http_path=error.http_path,
        http_query=error.http_query,
        http_status=404,
        http_reason=error.http_reason,
        http_response_content=error.http_response_content,
        http_response_headers=error.http_response_headers,
    )


def _broken_reads_as_connection_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a swiftclient request function so a broken response body is retried.

    urllib3 raises its own errors (such as ProtocolError on a connection
    reset) while swiftclient reads a body, and Connection._retry retries only
    socket and requests errors, so they are re-raised as the latter.
    """

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except urllib3.exceptions.HTTPError as error:
            raise requests.exceptions.ConnectionError(
                f"the response broke off: {type(error).__name__}"
            ) from error

    return call


def _storage_transient_error(error: ClientException, clock: Clock) -> TransientError:
    status = error.http_status
    assert status is not None
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(error.http_response_headers or {})
    retry_after = retry_after_seconds(response, clock)
    if status in _STORAGE_RATE_LIMIT_STATUSES:
        return TransientError(
            f"HTTP {status} rate limit from the storage",
            status=status,
            rate_limited=True,
            retry_after=retry_after,
        )
    return TransientError(
        f"HTTP {status} from the storage", status=status, retry_after=retry_after
    )


def _storage_cause(error: HubicServiceUnavailable) -> BaseException | None:
    """Return the storage's `ClientException` behind ``error``, if there is one.

    `RetryPolicy.run` chains its error from the last `TransientError`, which
    `Hubic._storage_request` chained from the storage's ClientException.
    """
    transient = error.__cause__
    if isinstance(transient, TransientError) and isinstance(
        transient.__cause__, ClientException
    ):
        return cast(BaseException, transient.__cause__)
    return transient


def _validate_storage_arguments(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """Raise `HubicInputError` for a bad argument before a storage call is sent."""
    if name in _CONTAINER_CALLS or name in _OBJECT_CALLS or name in _PUT_CALLS:
        validate_container_name(args[0] if args else None)
    if name in _OBJECT_CALLS or name == "put_object":
        validate_object_name(args[1] if len(args) > 1 else None)
    if name == "copy_object" and len(args) > 2 and args[2] is not None:
        _validate_copy_destination(args[2])
    if name == "get_object":
        _validate_chunk_size(kwargs.get("resp_chunk_size"))

    if name in _HEADER_ARGUMENTS:
        target, index = _HEADER_ARGUMENTS[name]
        if index is None:
            headers = kwargs.get("headers")
        else:
            headers = args[index] if len(args) > index else kwargs.get("headers")
        validate_headers(headers, target)


def _validate_chunk_size(chunk_size: object) -> None:
    # python-swiftclient reads the whole body when resp_chunk_size is falsy,
    # so 0 keeps that meaning.
    if chunk_size is None or (type(chunk_size) is int and chunk_size >= 0):
        return
    raise HubicInputError(
        f"invalid resp_chunk_size {chunk_size!r}: pass a number of bytes as an "
        "int of 1 or more, or None to read the whole body at once"
    )


def _validate_copy_destination(destination: object) -> None:
    expected = "expected '/<container>/<object>'"
    if not isinstance(destination, str) or not destination.startswith("/"):
        raise HubicInputError(f"invalid copy destination {destination!r}: {expected}")

    container, _, obj = destination[1:].partition("/")
    if not obj:
        raise HubicInputError(
            f"invalid copy destination {destination!r}: it names no object; {expected}"
        )
    validate_container_name(container)
    validate_object_name(obj)


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


class Hubic(TransferMixin, Connection):
    """A swiftclient `Connection` to hubiC storage, authenticated with OAuth2.

    ``client_id`` and ``client_secret`` identify the application; the account
    logs in with ``username`` and ``password`` or with a saved
    ``refresh_token``. Each value missing from the arguments is read from
    ``HUBIC_CLIENT_ID``, ``HUBIC_CLIENT_SECRET``, ``HUBIC_USERNAME``,
    ``HUBIC_PASSWORD`` and ``HUBIC_REFRESH_TOKEN``, and ``api_url`` from
    ``HUBIC_API_URL`` (default ``https://api.hubic.com``).

    ``timeout`` (seconds) applies to every request, OAuth ones included.
    ``token_store`` is a file path or an object with ``load()`` and
    ``save(record)``: tokens are read from it at construction and written
    after each renewal. ``clock`` is the source of time for expiry checks.
    ``retries``, ``starting_backoff`` and ``max_backoff`` apply to the OAuth
    and REST calls as well as to storage calls; the other keyword arguments
    go to `swiftclient.client.Connection`.

    Constructing a `Hubic` sends nothing. It raises `HubicConfigError` when
    the client id or secret is missing, or when neither a refresh token nor a
    username and password are known.

    Storage calls differ from swiftclient's in four ways. Container and
    object names (`HubicObjectNameError`), headers (see `lhubic.headers`) and
    ``resp_chunk_size`` are validated before sending (`HubicInputError`). A 404
    on a container or object raises `HubicObjectNotFound`, which is still a
    ``ClientException``. A network failure that outlasts the retries raises
    `HubicServiceUnavailable` instead of a requests exception. Rate limits
    (429, 498, 509) and 503 are retried with the backoff, jitter and
    Retry-After handling of the OAuth and REST calls, and past the retries
    raise `HubicRateLimited` or `HubicServiceUnavailable`, chained from the
    ``ClientException``.
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
        refresh_token: str | None = None,
        *,
        api_url: str | None = None,
        redirect_uri: str | None = None,
        scope: str | None = None,
        timeout: Timeout | None = None,
        token_store: str | os.PathLike[str] | TokenStore | None = None,
        clock: Clock | None = None,
        **connection_kwargs: Any,
    ) -> None:
        settings = _read_settings(
            client_id,
            client_secret,
            username,
            password,
            refresh_token,
            api_url,
            redirect_uri,
            scope,
            timeout,
        )
        _check_connection_options(connection_kwargs)
        self._clock = _check_clock(clock)
        self._store = make_token_store(token_store)
        record = self._load_record(settings)
        if settings.refresh_token is None and record is not None:
            settings.refresh_token = _stored_refresh_token(record)
        _require_login_material(settings)

        # Connection.__init__ assigns url, token, http_conn, attempts and the
        # backoff settings, which are properties here: their storage must exist.
        self._local = threading.local()
        self._opened_lock = threading.Lock()
        self._opened: dict[tuple[threading.Thread, str], Any] = {}
        self._retry_policy = RetryPolicy(clock=self._clock)
        super().__init__(
            authurl=f"{settings.api_url}/1.0/account/credentials",
            user=settings.client_id,
            key=_KEY_MARKER,
            timeout=settings.timeout,
            **connection_kwargs,
        )

        self._api_url = settings.api_url
        self._client_id = settings.client_id
        self._username = settings.username
        self._password = settings.password
        self._refresh_token = settings.refresh_token
        self._access: CredentialsCache[AccessToken] = CredentialsCache()
        self._storage: CredentialsCache[StorageCredentials] = CredentialsCache()
        self._oauth = OAuthClient(
            api_url=settings.api_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            redirect_uri=settings.redirect_uri,
            scope=settings.scope,
            timeout=settings.timeout,
            retry=self._retry_policy,
            session=self._session,
        )
        install_secret_filter(
            settings.client_secret, settings.password, settings.refresh_token
        )
        if record is not None:
            self._restore_record(record)

    def __repr__(self) -> str:
        access = self._access.current
        storage = self._storage.current
        return (
            f"Hubic(api_url={self._api_url!r}, client_id={self._client_id!r}, "
            f"username={self._username!r}, "
            f"access_token={fingerprint(access.token) if access else None}, "
            f"storage_url={storage.endpoint if storage else None!r})"
        )

    # swiftclient's per-request state, kept per thread.

    @property
    def url(self) -> str | None:
        """The storage URL this thread sends requests to, or None before login."""
        return getattr(self._local, "url", None)

    @url.setter
    def url(self, value: str | None) -> None:
        self._local.url = value

    @property
    def token(self) -> str | None:
        """The storage token this thread sends, or None before login."""
        return getattr(self._local, "token", None)

    @token.setter
    def token(self, value: str | None) -> None:
        # swiftclient clears the token after a storage 401. Remember which token
        # failed, so that get_auth fetches new credentials unless another
        # thread already did.
        previous = getattr(self._local, "token", None)
        if value is None and previous is not None:
            self._local.rejected_token = previous
        self._local.token = value

    @property
    def http_conn(self) -> Any:
        """This thread's swiftclient HTTP connection: (parsed URL, HTTPConnection)."""
        return getattr(self._local, "http_conn", None)

    @http_conn.setter
    def http_conn(self, value: Any) -> None:
        self._local.http_conn = value
        self._track("storage", value)

    @property
    def attempts(self) -> int:
        """The number of attempts of this thread's last storage request."""
        return int(getattr(self._local, "attempts", 0))

    @attempts.setter
    def attempts(self, value: int) -> None:
        self._local.attempts = value

    # Retry settings, shared with the OAuth and REST calls.

    @property
    def retries(self) -> int:
        """The number of retries after a failed request."""
        return self._retry_policy.retries

    @retries.setter
    def retries(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise HubicConfigError(f"retries must be an integer >= 0, got {value!r}")
        self._retry_policy.retries = value

    @property
    def starting_backoff(self) -> float:
        """The delay before the first retry, in seconds."""
        return self._retry_policy.initial_backoff

    @starting_backoff.setter
    def starting_backoff(self, value: float) -> None:
        self._retry_policy.initial_backoff = _seconds_setting(value, "starting_backoff")

    @property
    def max_backoff(self) -> float:
        """The maximum delay between two retries, in seconds."""
        return self._retry_policy.max_backoff

    @max_backoff.setter
    def max_backoff(self, value: float) -> None:
        self._retry_policy.max_backoff = _seconds_setting(value, "max_backoff")

    # The original lhubic's attributes.

    @property
    def client_id(self) -> str:
        """The application's client id."""
        return self._client_id

    @property
    def username(self) -> str | None:
        """The account's login, when the password login is configured."""
        return self._username

    @property
    def api_url(self) -> str:
        """The base URL of the hubiC service, without a trailing slash."""
        return self._api_url

    @property
    def refresh_token(self) -> str | None:
        """The refresh token; set after a password login. Save it to log in later."""
        return self._refresh_token

    @refresh_token.setter
    def refresh_token(self, value: str | None) -> None:
        self._refresh_token = _string_setting(
            value, "refresh_token", None, secret=True, token=True
        )
        install_secret_filter(self._refresh_token)

    @property
    def access_credentials(self) -> AccessToken | None:
        """The current access token object, or None before login."""
        return self._access.current

    @property
    def storage_credentials(self) -> StorageCredentials | None:
        """The current storage credentials, or None before the first fetch."""
        return self._storage.current

    @property
    def access_token(self) -> str | None:
        """The current OAuth access token, or None before login."""
        access = self._access.current
        return access.token if access else None

    @property
    def token_expire(self) -> float | None:
        """When the access token expires, in seconds since the epoch."""
        access = self._access.current
        return _timestamp(access.expires_at if access else None)

    @property
    def token_type(self) -> str | None:
        """The access token's type, ``Bearer``."""
        access = self._access.current
        return access.token_type if access else None

    @property
    def os_auth_token(self) -> str | None:
        """The current Swift storage token, or None before the first fetch."""
        storage = self._storage.current
        return storage.token if storage else None

    @property
    def os_storage_url(self) -> str | None:
        """The Swift storage URL, or None before the first fetch."""
        storage = self._storage.current
        return storage.endpoint if storage else None

    @property
    def os_token_expire(self) -> float | None:
        """When the storage token expires, in seconds since the epoch."""
        storage = self._storage.current
        return _timestamp(storage.expires_at if storage else None)

    # Authentication.

    def os_auth(self) -> None:
        """Log in if needed and fetch fresh storage credentials for every thread."""
        current = self._storage.current
        rejected = current.token if current is not None else None
        credentials = self._storage.get(
            self._fetch_storage_credentials, rejected=rejected
        )
        if credentials.endpoint != self.url:
            self._close_storage_connection()
        self._local.url = credentials.endpoint
        self._local.token = credentials.token

    def auth(self) -> None:
        """Log in unless a valid access token is held.

        The original lhubic's name for the login step. It uses the refresh
        token when one is known, and the username and password otherwise.
        """
        self._access_token()

    def refresh(self) -> None:
        """Get a new access token now, even if the current one is still valid.

        The original lhubic's name for a refresh-token grant. Without a refresh
        token, or when hubiC rejects it and a password is set, this logs in
        with the password.
        """
        current = self._access.current
        rejected = current.token if current is not None else None
        self._access.get(self._renew_access_token, rejected=rejected)

    def get_auth(self) -> tuple[str, str]:
        """Return the storage URL and token, logging in or renewing as needed.

        swiftclient calls this before the first storage request of a thread,
        and again after a storage 401.
        """
        rejected = getattr(self._local, "rejected_token", None)
        self._local.rejected_token = None
        if rejected is not None:
            logger.info(
                "hubiC storage rejected token %s; getting new credentials",
                fingerprint(rejected),
            )

        credentials = self._storage.get(
            self._fetch_storage_credentials, rejected=rejected
        )
        return credentials.endpoint, credentials.token

    def _retry(
        self,
        reset_func: Callable[..., Any] | None,
        func: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        name = getattr(func, "__name__", "")
        _validate_storage_arguments(name, args, kwargs)
        request = self._storage_request(func, kwargs.get("response_dict"))
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            # swiftclient resets the body before each of its own retries, and
            # the policy's retries do the same. A partly sent stream is then
            # rewound, or rejected with HubicSourceNotRewindable, never resent.
            if attempts and reset_func is not None:
                reset_func(func, *args, **kwargs)
            attempts += 1
            self._use_current_storage_credentials()
            return super(Hubic, self)._retry(reset_func, request, *args, **kwargs)

        try:
            return self._retry_policy.run(f"storage call {name}", attempt)
        except HubicServiceUnavailable as error:
            raise error from _storage_cause(error)
        except ClientException as error:
            if error.http_status != 404 or isinstance(error, HubicObjectNotFound):
                raise
            if name not in _CONTAINER_CALLS | _OBJECT_CALLS | {"put_object"}:
                raise
            raise _not_found(func, args, error) from error
        except _NETWORK_ERRORS as error:
            raise self._storage_unavailable(name, error) from error

    def _storage_request(
        self, func: Callable[..., Any], caller_response_dict: dict[str, Any] | None
    ) -> Callable[..., Any]:
        """Wrap a swiftclient request function for `Hubic._retry`.

        A broken response body becomes a connection error, which swiftclient
        retries. A status in `_STORAGE_TRANSIENT_STATUSES` becomes a
        `TransientError`, which swiftclient does not catch, so the retry
        policy handles it.
        """
        request = _broken_reads_as_connection_errors(func)

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return request(*args, **kwargs)
            except ClientException as error:
                if error.http_status not in _STORAGE_TRANSIENT_STATUSES:
                    raise
                # swiftclient copies the attempt's status to the caller's
                # response_dict only for the errors it catches itself.
                self._add_response_dict(caller_response_dict, kwargs)
                raise _storage_transient_error(error, self._clock) from error

        return call

    def _storage_unavailable(self, name: str, error: BaseException) -> HubicError:
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        if isinstance(error, requests.exceptions.SSLError):
            reason = "the TLS connection failed; check the cacert and insecure options"
        elif isinstance(error, (requests.Timeout, TimeoutError)):
            reason = f"the storage did not respond within {self.timeout} s"
        else:
            reason = f"the connection failed ({type(error).__name__})"
        # The raised error carries the same text, so the log line is only INFO.
        logger.info("storage call %s failed after %s: %s", name, tries, reason)
        return HubicServiceUnavailable(
            f"storage call {name} failed after {tries}: {reason}; wait a few "
            "minutes and try again"
        )

    def _use_current_storage_credentials(self) -> None:
        # Before each storage call: drop expired credentials so that _retry
        # calls get_auth, and pick up credentials another thread renewed.
        shared = self._storage.current
        if shared is None or shared.expired:
            self._local.url = None
            self._local.token = None
        elif shared.token != getattr(self._local, "token", None):
            if shared.endpoint != getattr(self._local, "url", None):
                self._close_storage_connection()
            self._local.url = shared.endpoint
            self._local.token = shared.token

    def http_connection(self, url: str | None = None) -> Any:
        """Open an HTTP connection to the storage URL, after checking it.

        Raises `HubicInsecureURL` for plain HTTP to a host that is not loopback.
        """
        target = check_url(
            url or self.url,
            name="storage URL",
            fix="lhubic does not send the storage token to it",
        )
        connection = StorageConnection(
            target,
            request_logger=logger,
            cacert=self.cacert,
            insecure=self.insecure,
            cert=self.cert,
            cert_key=self.cert_key,
            timeout=self.timeout,
        )
        return connection.parsed_url, connection

    def close(self) -> None:
        """Close this thread's connections, and those of threads that ended.

        Connections of other threads that still run stay open: closing them
        would break a request in progress.
        """
        self._close_storage_connection()
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None
            self._track("rest", None)
        self._close_ended_thread_connections()

    def _close_storage_connection(self) -> None:
        super().close()

    def _track(self, kind: str, value: Any) -> None:
        key = (threading.current_thread(), kind)
        with self._opened_lock:
            if value is None:
                self._opened.pop(key, None)
            else:
                self._opened[key] = value

    def _close_ended_thread_connections(self) -> None:
        with self._opened_lock:
            finished = [
                (kind, value)
                for (thread, kind), value in self._opened.items()
                if not thread.is_alive()
            ]
            self._opened = {
                key: value for key, value in self._opened.items() if key[0].is_alive()
            }

        for kind, value in finished:
            if kind == "storage":
                value[1].close()
            else:
                value.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = GuardedSession()
            session.verify = False if self.insecure else (self.cacert or True)
            if self.cert:
                session.cert = (
                    (self.cert, self.cert_key) if self.cert_key else self.cert
                )
            self._local.session = session
            self._track("rest", session)
        return session

    def _access_token(self) -> AccessToken:
        return self._access.get(self._renew_access_token)

    def _renew_access_token(self) -> AccessToken:
        if self._refresh_token is None:
            return self._password_login()

        try:
            grant = self._oauth.refresh(self._refresh_token)
        except HubicTokenFailure as error:
            if error.status in REDIRECT_STATUSES:
                raise self._token_endpoint_redirected(error) from error
            if not self._can_log_in_with_password():
                raise self._refresh_rejected(error) from error

            logger.warning(
                "hubiC rejected the refresh token (%s: %s); logging in with the "
                "password instead",
                error.error,
                error.error_description,
            )
            return self._password_login()
        return self._apply_grant(grant)

    def _password_login(self) -> AccessToken:
        assert self._username is not None and self._password is not None
        return self._apply_grant(
            self._oauth.password_login(self._username, self._password)
        )

    def _can_log_in_with_password(self) -> bool:
        return bool(self._username and self._password)

    def _token_endpoint_redirected(self, error: HubicTokenFailure) -> HubicError:
        # A redirect does not mean the refresh token is invalid. Logging in
        # again would not help either, because the password login exchanges
        # its code at the same endpoint.
        return HubicTokenFailure(
            f"the token endpoint {self._api_url}/oauth/token/ redirected the "
            f"refresh token request [HTTP {error.status}], and lhubic does not "
            "follow it so the token is not sent elsewhere; check that api_url "
            "(or HUBIC_API_URL) is the base URL of the hubiC service",
            status=error.status,
        )

    @staticmethod
    def _refresh_rejected(error: HubicTokenFailure) -> HubicError:
        detail = f" ({error.error}: {error.error_description})" if error.error else ""
        fix = (
            "log in again with username= and password= (or HUBIC_USERNAME and "
            "HUBIC_PASSWORD) to get a new refresh token"
        )
        if error.error_description in _REVOKED_DESCRIPTIONS:
            return HubicTokenRevoked(
                f"hubiC {error.error_description} the refresh token{detail}; {fix}",
                status=error.status,
                error=error.error,
                error_description=error.error_description,
            )
        return HubicTokenFailure(
            f"hubiC rejected the refresh token{detail} [HTTP {error.status}]; {fix}",
            status=error.status,
            error=error.error,
            error_description=error.error_description,
        )

    def _apply_grant(self, grant: TokenGrant) -> AccessToken:
        install_secret_filter(grant.access.token, grant.refresh_token)
        if grant.refresh_token is not None:
            self._refresh_token = grant.refresh_token
        elif self._refresh_token is None:
            logger.warning(
                "hubiC sent no refresh token; the next login will need the password"
            )
        self._save_tokens(access=grant.access)
        return grant.access

    def _fetch_storage_credentials(self) -> StorageCredentials:
        access = self._access_token()
        if access.scope is not None and not scope_allows(
            access.scope, "credentials", "r"
        ):
            raise HubicInsufficientScope(
                f"hubiC granted the scope {access.scope!r}, which lacks "
                "credentials.r, so the storage cannot be used; add credentials.r "
                "to scope= and log in again"
            )

        credentials = self._retry_policy.run(
            "hubiC storage credentials request", self._fetch_storage_once
        )
        check_url(
            credentials.endpoint,
            name="storage URL returned by hubiC",
            fix="lhubic does not send the storage token to it",
        )
        install_secret_filter(credentials.token)
        logger.info(
            "got hubiC storage credentials for %s; token %s expires at %s",
            credentials.endpoint,
            fingerprint(credentials.token),
            credentials.expires_at.isoformat(),
        )
        if credentials.expires_at <= credentials.fetched_at:
            logger.warning(
                "hubiC sent a storage token that expired at %s by this machine's "
                "clock; using it anyway, and checking the clock is advised",
                credentials.expires_at.isoformat(),
            )
        self._save_tokens(storage=credentials)
        return credentials

    def _fetch_storage_once(self) -> StorageCredentials:
        url = self._api_endpoint("/account/credentials")
        response = self._api_attempt("GET", url, None)
        payload = json_object(response, "the storage credentials response")
        current = self._storage.current
        previous_token = current.token if current is not None else None
        try:
            return StorageCredentials.from_response(
                payload, self._clock, previous_token
            )
        except ValueError as error:
            raise TransientError(
                f"the storage credentials response was invalid: {error}"
            ) from None

    # The REST API.

    def hubic_get(self, path: str) -> requests.Response:
        """Send ``GET`` to a REST API path such as ``"/account/usage"``.

        ``path`` is relative to ``/1.0`` (a leading ``/1.0`` is accepted too).
        Returns the `requests.Response`. Raises a `HubicAccessFailure`
        subclass carrying the service's ``error`` and ``error_description``.
        """
        return self._call_api("GET", path, None)

    def hubic_post(
        self, path: str, data: Mapping[str, Any] | Sequence[Any] | str | None = None
    ) -> requests.Response:
        """Send ``POST`` with ``data`` form-encoded to a REST API path.

        ``data`` is a dict of form fields, a list of (name, value) pairs, or
        an already encoded str or bytes body.
        """
        _check_form_data(data)
        return self._call_api("POST", path, data)

    def hubic_delete(self, path: str) -> requests.Response:
        """Send ``DELETE`` to a REST API path."""
        return self._call_api("DELETE", path, None)

    def _api_endpoint(self, path: object) -> str:
        if not isinstance(path, str) or not path.strip():
            raise HubicInputError(
                f"path must be a REST API path such as '/account/usage', got {path!r}"
            )
        if "://" in path or path.startswith("//"):
            raise HubicInputError(
                f"path {path!r} must be relative to /1.0, such as '/account/usage', "
                "not a URL: the access token goes only to the configured api_url"
            )
        if any(character.isspace() or ord(character) < 32 for character in path):
            raise HubicInputError(
                f"path {path!r} contains whitespace or a control character; "
                "percent-encode it"
            )

        normalized = path if path.startswith("/") else "/" + path
        if ".." in normalized.split("?", 1)[0].split("/"):
            raise HubicInputError(f"path {path!r} must not contain '..' segments")
        if normalized != "/1.0" and not normalized.startswith(("/1.0/", "/1.0?")):
            normalized = "/1.0" + normalized
        return self._api_url + normalized

    def _api_path(self, url: str) -> str:
        # The path without the query, for log lines and error messages.
        return url[len(self._api_url) :].split("?", 1)[0]

    def _call_api(self, method: str, path: str, data: Any) -> requests.Response:
        url = self._api_endpoint(path)
        step = f"hubiC API call {method} {self._api_path(url)}"
        return self._retry_policy.run(
            step, lambda: self._api_attempt(method, url, data)
        )

    def _api_attempt(self, method: str, url: str, data: Any) -> requests.Response:
        access = self._access_token()
        response = self._send_api(method, url, access, data)
        error, description = _api_error(response)

        if response.status_code == 401 and error == "invalid_token":
            logger.info(
                "hubiC returned 401 %s for access token %s; renewing it",
                description,
                fingerprint(access.token),
            )
            access = self._access.get(self._renew_access_token, rejected=access.token)
            response = self._send_api(method, url, access, data)
        elif response.status_code == 403 and description in _REVOKED_DESCRIPTIONS:
            access = self._log_in_again(access, description)
            response = self._send_api(method, url, access, data)

        return self._check_api_response(method, url, response)

    def _log_in_again(
        self, access: AccessToken, description: str | None
    ) -> AccessToken:
        if not self._can_log_in_with_password():
            raise HubicTokenRevoked(
                f"hubiC {description} the access token; log in again: pass "
                "username= and password= (or set HUBIC_USERNAME and HUBIC_PASSWORD) "
                "to get a new refresh token",
                status=403,
                error="invalid_token",
                error_description=description,
            )

        logger.warning(
            "hubiC %s the access token %s; logging in again with the password",
            description,
            fingerprint(access.token),
        )
        return self._access.get(self._password_login, rejected=access.token)

    def _send_api(
        self, method: str, url: str, access: AccessToken, data: Any
    ) -> requests.Response:
        return send_request(
            self._session(),
            method,
            url,
            timeout=self.timeout,
            log=logger,
            headers={"Authorization": access.authorization},
            data=data,
        )

    def _check_api_response(
        self, method: str, url: str, response: requests.Response
    ) -> requests.Response:
        raise_for_transient_status(response, self._clock)
        status = response.status_code
        path = self._api_path(url)
        if 200 <= status < 300:
            _check_json_body(response, method, path)
            return response

        error, description = _api_error(response)
        detail = f" ({error}: {description})" if error else ""
        if error == "insufficient_scope":
            raise HubicInsufficientScope(
                f"the access token's scope does not allow {method} {path}{detail}; "
                "add the entry point to scope= and log in again",
                status=status,
                error=error,
                error_description=description,
            )
        if status == 401:
            raise HubicTokenExpired(
                f"hubiC rejected the access token for {method} {path} even after "
                f"renewing it{detail}",
                status=status,
                error=error,
                error_description=description,
            )
        if status == 403 and description in _REVOKED_DESCRIPTIONS:
            raise HubicTokenRevoked(
                f"hubiC {description} the access token again after a new login"
                f"{detail}; check the account",
                status=status,
                error=error,
                error_description=description,
            )
        raise HubicAccessFailure(
            f"hubiC API call {method} {path} failed{detail} [HTTP {status}]",
            status=status,
            error=error,
            error_description=description,
        )

    # The token store.

    def _load_record(self, settings: _Settings) -> dict[str, Any] | None:
        if self._store is None:
            return None

        record = self._store.load()
        if not record:
            return None
        if (
            record.get("api_url") != settings.api_url
            or record.get("client_id") != settings.client_id
        ):
            logger.info(
                "ignoring the token store record: it was saved for another "
                "api_url or client_id"
            )
            return None
        stored_refresh = record.get("refresh_token")
        if (
            settings.refresh_token is not None
            and stored_refresh != settings.refresh_token
        ):
            # The stored tokens belong to another refresh token, and maybe to
            # another account; keep only the configured one.
            return {key: value for key, value in record.items() if "token" not in key}
        return record

    def _restore_record(self, record: Mapping[str, Any]) -> None:
        now = self._clock.now()
        try:
            access = _stored_access(record, now, self._clock)
        except (TypeError, ValueError) as error:
            logger.warning("ignoring the access token in the token store: %s", error)
            access = None
        try:
            storage = _stored_storage(record, self._clock)
        except (TypeError, ValueError) as error:
            logger.warning("ignoring the storage token in the token store: %s", error)
            storage = None

        if access is not None and not access.expired:
            install_secret_filter(access.token)
            self._access.set(access)
        if storage is not None and not storage.expired:
            install_secret_filter(storage.token)
            self._storage.set(storage)

    def _save_tokens(
        self,
        *,
        access: AccessToken | None = None,
        storage: StorageCredentials | None = None,
    ) -> None:
        if self._store is None:
            return

        access = access or self._access.current
        storage = storage or self._storage.current
        record: dict[str, Any] = {
            "version": RECORD_VERSION,
            "api_url": self._api_url,
            "client_id": self._client_id,
            "refresh_token": self._refresh_token,
        }
        if access is not None:
            record["access_token"] = access.token
            record["access_token_expires"] = access.expires_at.isoformat()
        if storage is not None:
            record["storage_token"] = storage.token
            record["storage_url"] = storage.endpoint
            record["storage_token_expires"] = storage.expires_at.isoformat()

        try:
            self._store.save(record)
        except (HubicError, OSError) as error:
            logger.warning(
                "could not save tokens to the token store %r: %s", self._store, error
            )


def _check_form_data(data: object) -> None:
    if data is None or isinstance(data, (str, bytes)):
        return

    if isinstance(data, Mapping):
        for name, value in data.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                _check_form_field(name, item)
        return

    if isinstance(data, (list, tuple)) and all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in data
    ):
        for name, value in data:
            _check_form_field(name, value)
        return

    raise HubicInputError(
        "data must be a dict of form fields, a list of (name, value) pairs, str "
        f"or bytes, got {type(data).__name__}"
    )


def _check_form_field(name: object, value: object) -> None:
    # requests silently drops a None value and sends str() of any other
    # object, so both would reach hubiC as something the caller did not mean.
    if not isinstance(name, str) or not name:
        raise HubicInputError(f"form field name {name!r} must be a non-empty string")
    if isinstance(value, bool) or not isinstance(value, _FORM_VALUE_TYPES):
        raise HubicInputError(
            f"form field {name!r} has the value {value!r}; pass a string or a "
            "number, or leave the field out"
        )


def _api_error(response: requests.Response) -> tuple[str | None, str | None]:
    if response.status_code < 400:
        return None, None
    return error_fields(response)


def _check_json_body(response: requests.Response, method: str, path: str) -> None:
    # hubiC sometimes responded 200 with an empty body or an HTML page, and
    # the same request sent again worked.
    subject = f"the response to {method} {path}"
    if not response.content.strip():
        if method == "GET":
            raise TransientError(
                f"{subject} came back empty", status=response.status_code
            )
        return

    try:
        json.loads(response.content)
    except ValueError:
        content_type = response.headers.get("Content-Type", "no Content-Type")
        raise TransientError(
            f"{subject} was not JSON ({content_type})", status=response.status_code
        ) from None


def _stored_refresh_token(record: Mapping[str, Any]) -> str | None:
    token = record.get("refresh_token")
    if isinstance(token, str) and token and invalid_token_character(token) is None:
        return token
    if token:
        logger.warning(
            "ignoring the refresh token in the token store: it is not a string of "
            "printable ASCII characters"
        )
    return None


def _stored_access(
    record: Mapping[str, Any], now: datetime, clock: Clock
) -> AccessToken | None:
    token = record.get("access_token")
    expires = record.get("access_token_expires")
    if not isinstance(token, str) or not token or not isinstance(expires, str):
        return None
    if invalid_token_character(token) is not None:
        raise ValueError("access_token contains a character outside printable ASCII")
    return AccessToken(
        token=token, expires_at=parse_expiry(expires), issued_at=now, clock=clock
    )


def _stored_storage(
    record: Mapping[str, Any], clock: Clock
) -> StorageCredentials | None:
    token = record.get("storage_token")
    endpoint = record.get("storage_url")
    expires = record.get("storage_token_expires")
    if not (isinstance(token, str) and token and isinstance(endpoint, str)):
        return None
    if not isinstance(expires, str):
        return None
    if invalid_token_character(token) is not None:
        raise ValueError("storage_token contains a character outside printable ASCII")

    check_url(
        endpoint,
        name="storage URL in the token store",
        fix="delete the token store to log in again",
    )
    # A stored token gets no minimum reuse time: an expired one is dropped.
    return StorageCredentials.create(
        token, endpoint, parse_expiry(expires), clock, min_reuse=timedelta(0)
    )
