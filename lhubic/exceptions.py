"""The exception tree of lhubic.

Every exception the library raises on purpose derives from `HubicError`. The
names `HubicAuthFailure`, `HubicTokenFailure`, `HubicAccessFailure` and
`HubicObjectNotFound` come from the original lhubic and keep their meaning, so
``except`` clauses written for it still catch the same failures.

Messages never contain a password, client secret or token: callers pass the
service's ``error`` and ``error_description`` fields, which carry none.
"""

from __future__ import annotations

from typing import Any

from swiftclient.exceptions import ClientException

__all__ = [
    "HubicAccessDenied",
    "HubicAccessFailure",
    "HubicAuthFailure",
    "HubicChecksumMismatch",
    "HubicClientRejected",
    "HubicConfigError",
    "HubicError",
    "HubicInputError",
    "HubicInsecureURL",
    "HubicInsufficientScope",
    "HubicInvalidLogin",
    "HubicObjectNameError",
    "HubicObjectNotFound",
    "HubicRateLimited",
    "HubicServerError",
    "HubicServiceUnavailable",
    "HubicSourceNotRewindable",
    "HubicTokenExpired",
    "HubicTokenFailure",
    "HubicTokenRevoked",
    "HubicTransferError",
]


class HubicError(Exception):
    """Root of every error lhubic raises.

    ``status`` is the HTTP status of the response that caused the error, and
    ``error`` and ``error_description`` are the service's own fields, when the
    service sent them.
    """

    default_message = "hubiC request failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.error_description = error_description
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        parts = [self.default_message]
        if self.error:
            detail = self.error
            if self.error_description:
                detail += f": {self.error_description}"
            parts.append(f"(service said {detail})")
        if self.status is not None:
            parts.append(f"[HTTP {self.status}]")
        return " ".join(parts)


class HubicConfigError(HubicError, ValueError):
    """A setting is missing or invalid; raised before anything is sent."""

    default_message = "lhubic is not configured correctly"


class HubicInsecureURL(HubicConfigError):
    """A URL uses plain HTTP to a host that is not a loopback address."""

    default_message = "plain HTTP is only allowed to loopback addresses; use https"


class HubicInputError(HubicError, ValueError):
    """An argument has the wrong type or value; raised before anything is sent."""

    default_message = "invalid argument"


class HubicObjectNameError(HubicInputError):
    """A container or object name cannot be stored by Swift."""

    default_message = "invalid container or object name"


class HubicAuthFailure(HubicError):
    """Logging in to hubiC failed."""

    default_message = "hubiC login failed"


class HubicInvalidLogin(HubicAuthFailure):
    """The service rejected the user's login or password."""

    default_message = (
        "hubiC rejected the login or password; check HUBIC_USERNAME and HUBIC_PASSWORD"
    )


class HubicClientRejected(HubicAuthFailure):
    """The service rejected the application: client id, secret or redirect URI."""

    default_message = (
        "hubiC rejected the application; check the client id, client secret "
        "and redirect URI registered for it"
    )


class HubicAccessDenied(HubicAuthFailure):
    """The user refused to grant the application access."""

    default_message = "the user denied the application access (access_denied)"


class HubicTokenFailure(HubicError):
    """Getting or refreshing an OAuth token failed."""

    default_message = "hubiC token request failed"


class HubicAccessFailure(HubicError):
    """A call to the hubiC REST API failed."""

    default_message = "hubiC API call failed"


class HubicInsufficientScope(HubicAccessFailure):
    """The access token lacks the scope that a call needs."""

    default_message = "the access token's scope does not allow this call"


class HubicTokenExpired(HubicAccessFailure):
    """The access token expired and could not be renewed."""

    default_message = "the hubiC access token expired"


class HubicTokenRevoked(HubicAccessFailure):
    """The access token was revoked or its user deleted; log in again."""

    default_message = "the hubiC access token was revoked; log in again"


class HubicServiceUnavailable(HubicError):
    """The service kept returning errors or malformed bodies past the retries."""

    default_message = "hubiC kept failing; try again later"


class HubicRateLimited(HubicServiceUnavailable):
    """The service kept returning 509 or 429 past the retry budget.

    ``retry_after`` is the number of seconds the service asked to wait, when it
    sent a ``Retry-After`` header.
    """

    default_message = "hubiC is rate limiting requests; wait before retrying"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class HubicServerError(HubicError):
    """The local hubiC-compatible service or its Swift cluster failed to run."""

    default_message = "the local hubiC service failed"


class HubicTransferError(HubicError):
    """An upload or download did not complete with correct data."""

    default_message = "transfer failed"


class HubicChecksumMismatch(HubicTransferError):
    """The MD5 computed locally differs from the ETag that Swift returned."""

    default_message = "checksum mismatch between the local data and the stored object"


class HubicSourceNotRewindable(HubicTransferError):
    """A retry needed to resend data from a source that cannot seek back."""

    default_message = (
        "the upload failed and its source cannot be rewound to retry; "
        "pass a seekable file or bytes"
    )


class HubicObjectNotFound(HubicError, ClientException):
    """A container or object does not exist.

    It is also a `swiftclient.exceptions.ClientException` with ``http_status``
    404, so code that catches either keeps working.
    """

    default_message = "object or container not found"

    def __init__(
        self,
        message: str | None = None,
        *,
        container: str | None = None,
        obj: str | None = None,
        **client_kwargs: Any,
    ) -> None:
        self.container = container
        self.obj = obj
        text = message or self._describe_target(container, obj)
        client_kwargs.setdefault("http_status", 404)
        ClientException.__init__(self, text, **client_kwargs)
        self.status = 404
        self.error = None
        self.error_description = None

    def __str__(self) -> str:
        return str(self.msg)

    @staticmethod
    def _describe_target(container: str | None, obj: str | None) -> str:
        if container is not None and obj is not None:
            return f"object {obj!r} not found in container {container!r}"
        if container is not None:
            return f"container {container!r} not found"
        return HubicObjectNotFound.default_message
