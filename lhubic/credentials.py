"""Access tokens and storage credentials with their expiry.

`AccessToken` is the OAuth2 bearer token for the REST API and
`StorageCredentials` the Swift token and storage URL from
``/1.0/account/credentials``. Both are immutable values with a timezone-aware
expiry and an `expired` check. Both count as expired a little before the
service stops accepting them: a tenth of their lifetime early, and at most
`MAX_REFRESH_MARGIN` early. hubiC could hand back the current storage token,
with less time left, when asked for new credentials. When an early renewal
gets the same token back, asking again before it dies is pointless, so those
credentials count as expired only once the token is surely dead.

`CredentialsCache` contains the current value of one of them for every thread of
a `Hubic`. When it must be renewed, one thread renews it under a lock while
the others wait and then reuse the new value. `Clock` is the source of time,
and tests move it forward with `Clock.advance`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Protocol, TypeVar

from .security import fingerprint

__all__ = [
    "EXPIRES_PRECISION",
    "MAX_REFRESH_MARGIN",
    "MIN_REUSE",
    "AccessToken",
    "Clock",
    "CredentialsCache",
    "StorageCredentials",
    "invalid_token_character",
    "parse_expiry",
]

MAX_REFRESH_MARGIN = timedelta(minutes=5)
_MARGIN_FRACTION = 0.1

# hubiC's ``expires`` has whole seconds, so a storage token may outlive it by
# up to one second.
EXPIRES_PRECISION = timedelta(seconds=1)
MIN_REUSE = timedelta(seconds=1)

# "+0200" and "Z" offsets, which datetime.fromisoformat reads only from 3.11 on.
_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


class Clock:
    """The wall clock that expiry checks and retry delays use.

    `now` is the current UTC time plus an offset that `advance` moves, so a
    test can make tokens look expired without waiting. `sleep` waits for real.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the current time, timezone-aware in UTC."""
        with self._lock:
            offset = self._offset
        return datetime.now(timezone.utc) + timedelta(seconds=offset)

    def time(self) -> float:
        """Return the current time as seconds since the epoch."""
        return self.now().timestamp()

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (backward when negative)."""
        with self._lock:
            self._offset += seconds

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        if seconds > 0:
            time.sleep(seconds)


def _refresh_margin(issued_at: datetime, expires_at: datetime) -> timedelta:
    lifetime = max(expires_at - issued_at, timedelta(0))
    return min(lifetime * _MARGIN_FRACTION, MAX_REFRESH_MARGIN)


def invalid_token_character(token: str) -> int | None:
    """Return the index of the first character a token may not contain, or None.

    OAuth2 and Swift tokens are printable ASCII (RFC 6749, appendix A), and a
    space, line break or other control character would break the HTTP header
    that carries the token.
    """
    for index, character in enumerate(token):
        if not "!" <= character <= "~":
            return index
    return None


def parse_expiry(text: str) -> datetime:
    """Parse an ISO 8601 time with a UTC offset, as hubiC sends in ``expires``.

    Raises ValueError when ``text`` is not ISO 8601 or has no offset, because
    a time without one cannot be placed: hubiC sends Paris time.
    """
    normalized = text.strip()
    if normalized.endswith(("Z", "z")):
        normalized = normalized[:-1] + "+00:00"
    normalized = _COMPACT_OFFSET.sub(r"\1:\2", normalized)

    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return moment


class _Expiring(Protocol):
    @property
    def token(self) -> str: ...

    @property
    def expired(self) -> bool: ...


@dataclass(frozen=True, repr=False)
class AccessToken:
    """An OAuth2 access token for the hubiC REST API.

    ``scope`` is the scope the service granted, or None when it is unknown
    (a refresh response does not repeat it).
    """

    token: str
    expires_at: datetime
    issued_at: datetime
    token_type: str = "Bearer"  # noqa: S105 - an HTTP auth scheme, not a secret
    scope: str | None = None
    clock: Clock = field(default_factory=Clock, compare=False)

    @classmethod
    def from_response(
        cls, payload: Mapping[str, Any], clock: Clock, scope: str | None = None
    ) -> AccessToken:
        """Build a token from a token endpoint response.

        Raises ValueError naming the field when ``access_token`` is missing or
        empty, or ``expires_in`` is not a positive number of seconds.
        """
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("access_token is missing or empty")
        if invalid_token_character(token) is not None:
            raise ValueError(
                "access_token contains a character outside printable ASCII"
            )

        expires_in = payload.get("expires_in")
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            raise ValueError(f"expires_in is {expires_in!r}, not a number of seconds")
        if expires_in <= 0:
            raise ValueError(f"expires_in is {expires_in!r}, not a positive number")

        token_type = payload.get("token_type") or "Bearer"
        granted = payload.get("scope")
        issued_at = clock.now()
        return cls(
            token=token,
            expires_at=issued_at + timedelta(seconds=expires_in),
            issued_at=issued_at,
            token_type=str(token_type),
            scope=granted if isinstance(granted, str) and granted else scope,
            clock=clock,
        )

    @property
    def expired(self) -> bool:
        """True once the token is within its refresh margin of expiry."""
        margin = _refresh_margin(self.issued_at, self.expires_at)
        return self.clock.now() >= self.expires_at - margin

    @property
    def authorization(self) -> str:
        """The value of the ``Authorization`` header, such as ``Bearer <token>``."""
        scheme = "Bearer" if self.token_type.lower() == "bearer" else self.token_type
        return f"{scheme} {self.token}"

    def __repr__(self) -> str:
        return (
            f"AccessToken(token={fingerprint(self.token)}, "
            f"expires_at={self.expires_at.isoformat()}, scope={self.scope!r})"
        )


@dataclass(frozen=True, repr=False)
class StorageCredentials:
    """A Swift storage token and the storage URL it is valid for.

    ``expires_at`` keeps the UTC offset that the service sent, and
    `expired` turns true at ``renew_at``. Use `create` or `from_response`,
    which compute ``renew_at``.
    """

    token: str
    endpoint: str
    expires_at: datetime
    fetched_at: datetime
    renew_at: datetime
    clock: Clock = field(default_factory=Clock, compare=False)

    @classmethod
    def create(
        cls,
        token: str,
        endpoint: str,
        expires_at: datetime,
        clock: Clock,
        *,
        min_reuse: timedelta = MIN_REUSE,
        previous_token: str | None = None,
    ) -> StorageCredentials:
        """Build credentials fetched now.

        They are renewed a little before ``expires_at``, like an access token.
        But when ``token`` equals ``previous_token``, the service handed back
        the token it had already issued, so they are renewed only once that
        token is surely gone: `EXPIRES_PRECISION` after its stated expiry,
        because ``expires`` has whole seconds. A storage 401 renews them
        earlier. They are kept at least ``min_reuse``, which bounds how often
        a client whose clock runs ahead of the service's fetches credentials.
        """
        fetched_at = clock.now()
        if token == previous_token:
            renew_at = expires_at + EXPIRES_PRECISION
        else:
            renew_at = expires_at - _refresh_margin(fetched_at, expires_at)
        return cls(
            token=token,
            endpoint=endpoint.rstrip("/"),
            expires_at=expires_at,
            fetched_at=fetched_at,
            renew_at=max(renew_at, fetched_at + min_reuse),
            clock=clock,
        )

    @classmethod
    def from_response(
        cls,
        payload: Mapping[str, Any],
        clock: Clock,
        previous_token: str | None = None,
    ) -> StorageCredentials:
        """Build credentials from a ``/1.0/account/credentials`` response.

        Raises ValueError naming the field when ``token``, ``endpoint`` or
        ``expires`` is missing, empty or malformed.
        """
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise ValueError("token is missing or empty")
        if invalid_token_character(token) is not None:
            raise ValueError("token contains a character outside printable ASCII")

        endpoint = payload.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise ValueError("endpoint is missing or empty")

        expires = payload.get("expires")
        if not isinstance(expires, str):
            raise ValueError(f"expires is {expires!r}, not an ISO 8601 time")

        return cls.create(
            token, endpoint, parse_expiry(expires), clock, previous_token=previous_token
        )

    @property
    def expired(self) -> bool:
        """True once the credentials should be renewed (at ``renew_at``)."""
        return self.clock.now() >= self.renew_at

    def __repr__(self) -> str:
        return (
            f"StorageCredentials(token={fingerprint(self.token)}, "
            f"endpoint={self.endpoint!r}, expires_at={self.expires_at.isoformat()})"
        )


CredentialsT = TypeVar("CredentialsT", bound=_Expiring)


class CredentialsCache(Generic[CredentialsT]):
    """The current credentials of one kind, shared by every thread of a `Hubic`.

    `get` returns the current value while it is usable. Otherwise the first
    thread to take the lock renews it, and threads that were waiting on the
    lock find the new value and return it without renewing again.
    """

    def __init__(self, initial: CredentialsT | None = None) -> None:
        self._value = initial
        self._lock = threading.Lock()

    @property
    def current(self) -> CredentialsT | None:
        """The value held now, possibly expired, or None."""
        return self._value

    def get(
        self, renew: Callable[[], CredentialsT], *, rejected: str | None = None
    ) -> CredentialsT:
        """Return usable credentials, calling ``renew`` under the lock if needed.

        ``rejected`` is a token that the service just rejected. A value with
        that token counts as unusable even before its expiry.
        """
        value = self._value
        if self._usable(value, rejected):
            assert value is not None
            return value

        with self._lock:
            value = self._value
            if self._usable(value, rejected):
                assert value is not None
                return value

            value = renew()
            self._value = value
            return value

    def set(self, value: CredentialsT | None) -> None:
        """Replace the held value."""
        with self._lock:
            self._value = value

    @staticmethod
    def _usable(value: CredentialsT | None, rejected: str | None) -> bool:
        if value is None or value.expired:
            return False
        return rejected is None or value.token != rejected
