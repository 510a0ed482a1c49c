"""The hubiC OAuth2 flows: password login, code exchange and refresh.

hubiC had no password grant, so `OAuthClient.password_login` fills in the
login and consent form that a browser would show. It sends
``GET /oauth/auth/`` and scrapes the hidden numeric ``oauth`` field. It then
posts the form with the login, the password and the requested rights, and
reads the authorization code from the ``Location`` of the response without
following it. The code is exchanged at ``/oauth/token/`` with HTTP Basic
client authentication.

The service misbehaved now and then: 509 or 429 under load, a 200 without
``Location``, an empty 200, HTML instead of JSON. `RetryPolicy` retries those
a bounded number of times with capped exponential backoff, jitter and any
``Retry-After`` the service sends, then raises `HubicRateLimited` or
`HubicServiceUnavailable`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from .credentials import AccessToken, Clock
from .exceptions import (
    HubicAccessDenied,
    HubicAuthFailure,
    HubicClientRejected,
    HubicError,
    HubicInvalidLogin,
    HubicRateLimited,
    HubicServiceUnavailable,
    HubicTokenFailure,
)
from .security import fingerprint, log_response

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_SCOPE",
    "REDIRECT_STATUSES",
    "OAuthClient",
    "RetryPolicy",
    "TokenGrant",
    "TransientError",
    "error_fields",
    "json_object",
    "parse_scope",
    "raise_for_transient_status",
    "retry_after_seconds",
    "scope_allows",
    "send_request",
]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.hubic.com"
DEFAULT_REDIRECT_URI = "http://localhost:8080/"
DEFAULT_SCOPE = "usage.r,account.r,getAllLinks.r,credentials.r,activate.w,links.drw"

RATE_LIMIT_STATUSES = frozenset({429, 509})
# Statuses that may come with a Location, which lhubic never follows.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SCOPE_ITEM = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([rwd]+)$")
_TRANSIENT_OAUTH_ERRORS = frozenset({"server_error", "temporarily_unavailable"})
_MAX_SHOWN_TEXT = 200

ResultT = TypeVar("ResultT")


class TransientError(Exception):
    """A failure that may pass if the request is sent again.

    `RetryPolicy.run` catches it; it never reaches the caller of lhubic.
    ``reason`` describes the failure without any secret.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        rate_limited: bool = False,
        retry_after: float | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        # What the caller should do once the retries run out, when waiting
        # is not the likely fix.
        self.fix = fix


@dataclass
class RetryPolicy:
    """How often and how long to retry transient failures of the hubiC service.

    The delay before retry ``n`` (from 0) is ``initial_backoff * 2**n``,
    capped at ``max_backoff`` and multiplied by a random factor between 0.5
    and 1. A ``Retry-After`` from the service replaces that delay, and one
    longer than ``max_retry_after`` seconds ends the retries at once.
    """

    retries: int = 5
    initial_backoff: float = 1.0
    max_backoff: float = 64.0
    max_retry_after: float = 120.0
    clock: Clock = field(default_factory=Clock)

    def delay(self, retry_number: int, retry_after: float | None) -> float:
        """Return the number of seconds to wait before retry ``retry_number``."""
        if retry_after is not None:
            return max(retry_after, 0.0)

        backoff: float = min(self.initial_backoff * 2**retry_number, self.max_backoff)
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    def run(self, step: str, attempt: Callable[[], ResultT]) -> ResultT:
        """Call ``attempt`` until it returns, retrying on `TransientError`.

        ``step`` names the operation in log lines and in the final error.
        Raises `HubicRateLimited` or `HubicServiceUnavailable`, chained from
        the last failure, once the retries are used up.
        """
        attempts = 0
        while True:
            attempts += 1
            try:
                return attempt()
            except TransientError as error:
                wait = self.delay(attempts - 1, error.retry_after)
                if attempts > self.retries or wait > self.max_retry_after:
                    raise self._give_up(step, error, attempts) from error

                logger.warning(
                    "%s failed (%s); retry %d of %d in %.2f s",
                    step,
                    error.reason,
                    attempts,
                    self.retries,
                    wait,
                )
                self.clock.sleep(wait)

    def _give_up(self, step: str, error: TransientError, attempts: int) -> HubicError:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        if error.rate_limited:
            if error.retry_after is not None:
                wait = f"wait {error.retry_after:.0f} s, as the service asked,"
            else:
                wait = "wait a few minutes"
            return HubicRateLimited(
                f"{step} failed: hubiC kept rate limiting requests ({error.reason}) "
                f"after {tries}; {wait} before trying again",
                retry_after=error.retry_after,
                status=error.status,
            )

        fix = error.fix or "wait a few minutes and try again"
        return HubicServiceUnavailable(
            f"{step} failed: {error.reason} after {tries}; {fix}",
            status=error.status,
        )


@dataclass(frozen=True, repr=False)
class TokenGrant:
    """The tokens from one token endpoint response.

    ``refresh_token`` is None when the response had none. hubiC's refresh
    responses do not include one, because its refresh tokens do not rotate.
    """

    access: AccessToken
    refresh_token: str | None

    def __repr__(self) -> str:
        refresh = fingerprint(self.refresh_token) if self.refresh_token else None
        return f"TokenGrant(access={self.access!r}, refresh_token={refresh})"


def parse_scope(scope: str) -> list[tuple[str, str]]:
    """Split a scope such as ``"usage.r,links.drw"`` into (entry point, right) pairs.

    Each rights letter gives one pair, so ``links.drw`` yields three. Raises
    ValueError naming the item that is not ``<entry point>.<letters r, w, d>``.
    """
    pairs: list[tuple[str, str]] = []
    for item in scope.split(","):
        match = _SCOPE_ITEM.match(item.strip())
        if match is None:
            raise ValueError(
                f"scope item {item.strip()!r} is not <entry point>.<rights>, "
                "where rights are letters among r, w and d (as in 'credentials.r')"
            )
        entry_point, rights = match.groups()
        pairs.extend((entry_point, letter) for letter in rights)
    return pairs


def scope_allows(scope: str, entry_point: str, right: str) -> bool:
    """Tell whether ``scope`` grants ``right`` on ``entry_point``.

    An item that does not parse grants nothing.
    """
    for item in scope.split(","):
        match = _SCOPE_ITEM.match(item.strip())
        if match is not None and match.group(1) == entry_point:
            if right in match.group(2):
                return True
    return False


def retry_after_seconds(response: requests.Response, clock: Clock) -> float | None:
    """Return the delay that a ``Retry-After`` header requests, in seconds.

    The header contains either a number of seconds or an HTTP date. Returns None
    when it is missing or unreadable.
    """
    value = response.headers.get("Retry-After")
    if value is None:
        return None

    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass

    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max((moment - clock.now()).total_seconds(), 0.0)


def error_fields(response: requests.Response) -> tuple[str | None, str | None]:
    """Return the ``error`` and ``error_description`` of a JSON error response."""
    try:
        payload = response.json()
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None

    error = payload.get("error")
    description = payload.get("error_description")
    return (
        str(error) if error is not None else None,
        str(description) if description is not None else None,
    )


def json_object(response: requests.Response, subject: str) -> dict[str, Any]:
    """Parse a JSON object body; raise `TransientError` for an empty or non-JSON one.

    hubiC sometimes responded 200 with an empty body or an HTML page, and the
    same request sent again worked.
    """
    if not response.content.strip():
        raise TransientError(f"{subject} came back empty", status=response.status_code)

    try:
        payload = json.loads(response.content)
    except ValueError:
        content_type = response.headers.get("Content-Type", "no Content-Type")
        raise TransientError(
            f"{subject} was not JSON ({content_type})", status=response.status_code
        ) from None

    if not isinstance(payload, dict):
        raise TransientError(
            f"{subject} was a JSON {type(payload).__name__}, not an object",
            status=response.status_code,
        )
    return payload


def raise_for_transient_status(response: requests.Response, clock: Clock) -> None:
    """Raise `TransientError` for a rate limit (509, 429) or a 5xx response."""
    status = response.status_code
    if status in RATE_LIMIT_STATUSES:
        raise TransientError(
            f"HTTP {status} rate limit",
            status=status,
            rate_limited=True,
            retry_after=retry_after_seconds(response, clock),
        )

    if status >= 500:
        error, description = error_fields(response)
        detail = f" {error}: {description}" if error else ""
        raise TransientError(
            f"HTTP {status}{detail}",
            status=status,
            retry_after=retry_after_seconds(response, clock),
        )


def send_request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float | tuple[float, float] | None,
    log: logging.Logger = logger,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; a timeout or a connection failure becomes `TransientError`.

    The response is logged at DEBUG to ``log``, with secrets in the query
    replaced by ``***``. The reason of a `TransientError` names the host and
    the timeout but not the URL, whose query may carry an OAuth ``state`` or
    ``code``.
    """
    host = urlsplit(url).netloc
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
        log_response(log, response)
        return response
    except requests.Timeout as error:
        raise TransientError(
            f"request to {host} timed out after {timeout} s"
        ) from error
    except requests.ConnectionError as error:
        # A refused or unresolved connection often means a wrong URL rather than
        # a service that is down, so the final error names both causes.
        raise TransientError(
            f"cannot connect to {host}",
            fix=(
                "check that api_url (or HUBIC_API_URL, or --api-url on the command "
                "line) names a running hubiC service, then try again"
            ),
        ) from error
    except requests.RequestException as error:
        raise TransientError(
            f"request to {host} failed ({type(error).__name__})"
        ) from error


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _MAX_SHOWN_TEXT:
        return flat[: _MAX_SHOWN_TEXT - 3] + "..."
    return flat


class _LoginPageParser(HTMLParser):
    """Find the hidden ``oauth`` field and the ``text-error`` messages of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.oauth: str | None = None
        self.errors: list[str] = []
        self._error_tag: str | None = None
        self._error_depth = 0
        self._error_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "input" and attributes.get("name") == "oauth":
            value = attributes.get("value", "").strip()
            if value.isdigit():
                self.oauth = value

        if self._error_tag is not None:
            if tag == self._error_tag:
                self._error_depth += 1
            return

        if "text-error" in attributes.get("class", "").split():
            self._error_tag = tag
            self._error_depth = 1
            self._error_text = []

    def handle_endtag(self, tag: str) -> None:
        if self._error_tag != tag:
            return

        self._error_depth -= 1
        if self._error_depth == 0:
            message = _shorten("".join(self._error_text))
            self.errors.append(message or "authentication failed")
            self._error_tag = None

    def handle_data(self, data: str) -> None:
        if self._error_tag is not None:
            self._error_text.append(data)


def _parse_login_page(html: str) -> _LoginPageParser:
    parser = _LoginPageParser()
    parser.feed(html)
    parser.close()
    return parser


class OAuthClient:
    """Obtains and refreshes hubiC access tokens for one application.

    ``session`` returns the requests session to use; `Hubic` passes one per
    thread. ``timeout`` applies to every request, in seconds.
    """

    def __init__(
        self,
        *,
        api_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scope: str,
        timeout: float | tuple[float, float] | None,
        retry: RetryPolicy,
        session: Callable[[], requests.Session],
    ) -> None:
        self._auth_url = f"{api_url}/oauth/auth/"
        self._token_url = f"{api_url}/oauth/token/"
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._scope = scope
        self._timeout = timeout
        self._retry = retry
        self._session = session

    def __repr__(self) -> str:
        return (
            f"OAuthClient(token_url={self._token_url!r}, client_id={self._client_id!r})"
        )

    @property
    def clock(self) -> Clock:
        """The clock that token expiries are computed with."""
        return self._retry.clock

    def password_login(self, username: str, password: str) -> TokenGrant:
        """Log in with the account's login and password through the consent form.

        Raises `HubicInvalidLogin`, `HubicClientRejected`, `HubicAccessDenied`,
        `HubicTokenFailure`, or `HubicRateLimited` / `HubicServiceUnavailable`
        when the service kept failing. A transient failure at any step starts
        the login again from the form, so an authorization code is never
        exchanged twice.
        """
        grant = self._retry.run(
            "hubiC password login",
            lambda: self._password_login_once(username, password),
        )
        logger.info(
            "logged in to hubiC as %s; access token %s expires at %s",
            username,
            fingerprint(grant.access.token),
            grant.access.expires_at.isoformat(),
        )
        return grant

    def refresh(self, refresh_token: str) -> TokenGrant:
        """Get a new access token with a refresh token.

        Raises `HubicTokenFailure` (with the service's ``error`` fields) when
        the service rejects the refresh token, and `HubicClientRejected` when
        it rejects the application.
        """
        fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        grant = self._retry.run(
            "hubiC token refresh", lambda: self._token_request(fields, None)
        )
        logger.info(
            "refreshed the hubiC access token; %s expires at %s",
            fingerprint(grant.access.token),
            grant.access.expires_at.isoformat(),
        )
        return grant

    def _password_login_once(self, username: str, password: str) -> TokenGrant:
        code, granted_scope = self._authorize(username, password)
        fields = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri,
        }
        return self._token_request(fields, granted_scope)

    def _authorize(self, username: str, password: str) -> tuple[str, str | None]:
        state = secrets.token_urlsafe(24)
        query = {
            "client_id": self._client_id,
            "redirect_uri": self._redirect_uri,
            "scope": self._scope,
            "response_type": "code",
            "state": state,
        }
        page = self._send("GET", self._auth_url, params=query)
        if _is_redirect(page):
            return self._read_redirect(page, state)
        if page.status_code != 200:
            raise HubicAuthFailure(
                f"hubiC login page {self._auth_url} returned HTTP "
                f"{page.status_code}; check that api_url (or HUBIC_API_URL) is "
                "the base URL of a hubiC service",
                status=page.status_code,
            )

        form = _parse_login_page(page.text)
        if form.oauth is None:
            raise TransientError("the login page had no oauth field", status=200)

        submitted = self._send(
            "POST",
            self._auth_url,
            data=self._form_body(form.oauth, username, password),
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"
            },
        )
        if _is_redirect(submitted):
            return self._read_redirect(submitted, state)
        if submitted.status_code != 200:
            raise HubicAuthFailure(
                f"hubiC login form returned HTTP {submitted.status_code}",
                status=submitted.status_code,
            )

        errors = _parse_login_page(submitted.text).errors
        if errors:
            raise HubicInvalidLogin(
                f"hubiC rejected the login or password for {username!r} "
                f"({errors[0]}); check HUBIC_USERNAME and HUBIC_PASSWORD",
                status=200,
            )
        raise TransientError(
            "the login form returned 200 without a redirect", status=200
        )

    def _form_body(self, oauth: str, username: str, password: str) -> str:
        fields = [
            ("oauth", oauth),
            ("action", "accepted"),
            ("login", username),
            ("user_pwd", password),
        ]
        fields.extend(parse_scope(self._scope))
        # Encode every field as UTF-8 ourselves: passwords with '%', '&', '+',
        # spaces or accents must arrive unchanged.
        return urlencode(fields, encoding="utf-8")

    def _read_redirect(
        self, response: requests.Response, state: str
    ) -> tuple[str, str | None]:
        location = response.headers.get("Location", "")
        query = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
        if "error" in query:
            self._raise_redirect_error(query["error"], query.get("error_description"))

        code = query.get("code")
        if not code:
            raise TransientError(
                "the login redirect carried neither a code nor an error",
                status=response.status_code,
            )
        if query.get("state") != state:
            raise HubicAuthFailure(
                "hubiC login redirect carried a state that does not match the one "
                "sent, so its code was discarded; log in again"
            )
        return code, query.get("scope") or None

    def _raise_redirect_error(self, error: str, description: str | None) -> None:
        if error in _TRANSIENT_OAUTH_ERRORS:
            raise TransientError(f"the login redirect carried {error}: {description}")

        if error == "access_denied":
            raise HubicAccessDenied(error=error, error_description=description)

        detail = f"{error}: {description}" if description else error
        raise HubicClientRejected(
            f"hubiC rejected the application ({detail}); check that the client id "
            f"{self._client_id!r}, the redirect URI {self._redirect_uri!r} "
            "(redirect_uri= or HUBIC_REDIRECT_URI) and the scope "
            f"{self._scope!r} (scope=) match the application registered with hubiC",
            error=error,
            error_description=description,
        )

    def _token_request(
        self, fields: Mapping[str, str], granted_scope: str | None
    ) -> TokenGrant:
        response = self._send(
            "POST",
            self._token_url,
            data=dict(fields),
            auth=(self._client_id, self._client_secret),
        )
        if response.status_code != 200:
            self._raise_token_error(response, fields["grant_type"])

        payload = json_object(response, "the token response")
        try:
            access = AccessToken.from_response(payload, self.clock, granted_scope)
        except ValueError as error:
            raise TransientError(f"the token response was invalid: {error}") from None

        refresh_token = payload.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            refresh_token = None
        return TokenGrant(access=access, refresh_token=refresh_token)

    def _raise_token_error(self, response: requests.Response, grant_type: str) -> None:
        status = response.status_code
        error, description = error_fields(response)
        if status == 401 or error in ("unauthorized_client", "invalid_client"):
            detail = f" ({error}: {description})" if error else ""
            raise HubicClientRejected(
                f"hubiC rejected the application's credentials{detail}; check the "
                f"client id {self._client_id!r} and HUBIC_CLIENT_SECRET",
                status=status,
                error=error,
                error_description=description,
            )

        if _is_redirect(response):
            raise HubicTokenFailure(
                f"the token endpoint returned a redirect (HTTP {status}); "
                "check HUBIC_API_URL",
                status=status,
            )

        grant = grant_type.replace("_", " ")
        raise HubicTokenFailure(
            f"hubiC rejected the {grant} grant"
            + (f" ({error}: {description})" if error else "")
            + f" [HTTP {status}]",
            status=status,
            error=error,
            error_description=description,
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        response = send_request(
            self._session(),
            method,
            url,
            timeout=self._timeout,
            allow_redirects=False,
            **kwargs,
        )
        raise_for_transient_status(response, self.clock)
        return response


def _is_redirect(response: requests.Response) -> bool:
    return response.status_code in REDIRECT_STATUSES and bool(
        response.headers.get("Location")
    )
