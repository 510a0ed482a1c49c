"""Tests for lhubic.oauth: password login, refresh, failures and retries.

Most tests run against the local hubiC service. A small HTTP server on
127.0.0.1 replaces it only where the service cannot be made to behave that
way: a user refusing consent, a redirect with a foreign state, and a service
that never responds.
"""

from __future__ import annotations

import http.server
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from helpers import (
    FAST_RETRIES,
    QuietHandler,
    RecordingClock,
    StandIn,
    hubic_without_login,
    make_hubic,
)

from lhubic import (
    Hubic,
    HubicAccessDenied,
    HubicAuthFailure,
    HubicClientRejected,
    HubicInsufficientScope,
    HubicInvalidLogin,
    HubicRateLimited,
    HubicServiceUnavailable,
)
from lhubic.credentials import Clock
from lhubic.oauth import (
    RetryPolicy,
    TransientError,
    parse_scope,
    retry_after_seconds,
    scope_allows,
)
from lhubic.server.faults import Faults

# Scope parsing and retry arithmetic.


def test_parse_scope_one_pair_per_letter() -> None:
    pairs = parse_scope("usage.r,links.drw")

    assert pairs == [("usage", "r"), ("links", "d"), ("links", "r"), ("links", "w")]


@pytest.mark.parametrize("scope", ["usage", "usage.x", "usage.r,,links.r", ".r"])
def test_parse_scope_rejects_bad_item(scope: str) -> None:
    with pytest.raises(ValueError):
        parse_scope(scope)


def test_scope_allows_checks_letter() -> None:
    assert scope_allows("usage.r,credentials.r", "credentials", "r")
    assert not scope_allows("usage.r,links.dw", "links", "r")
    assert not scope_allows("usage.r", "credentials", "r")


def _response_with(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 509
    response.headers.update(headers)
    return response


def test_retry_after_seconds_number() -> None:
    response = _response_with({"Retry-After": "7"})

    assert retry_after_seconds(response, Clock()) == 7.0


def test_retry_after_seconds_http_date() -> None:
    clock = Clock()
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    response = _response_with({"Retry-After": format_datetime(later, usegmt=True)})

    seconds = retry_after_seconds(response, clock)

    assert seconds is not None
    assert 25 <= seconds <= 31


def test_retry_after_seconds_missing_or_garbage() -> None:
    assert retry_after_seconds(_response_with({}), Clock()) is None
    assert retry_after_seconds(_response_with({"Retry-After": "soon"}), Clock()) is None


def test_retry_delay_is_capped_with_jitter() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=4.0)

    for retry_number in range(8):
        delay = policy.delay(retry_number, None)
        backoff = min(2**retry_number, 4.0)
        assert backoff * 0.5 <= delay <= backoff


def test_retry_delay_uses_retry_after() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=4.0)

    assert policy.delay(0, 9.0) == 9.0


def test_retry_run_stops_after_budget() -> None:
    clock = RecordingClock()
    policy = RetryPolicy(retries=3, initial_backoff=0.5, max_backoff=1.0, clock=clock)
    calls = []

    def attempt() -> str:
        calls.append(1)
        raise TransientError("HTTP 509 rate limit", status=509, rate_limited=True)

    with pytest.raises(HubicRateLimited) as caught:
        policy.run("test step", attempt)

    assert len(calls) == 4
    assert len(clock.sleeps) == 3
    assert max(clock.sleeps) <= 1.0
    assert "test step" in str(caught.value)
    assert isinstance(caught.value.__cause__, TransientError)


def test_retry_run_returns_after_recovery() -> None:
    clock = RecordingClock()
    policy = RetryPolicy(retries=3, clock=clock)
    outcomes: list[Callable[[], str]] = [
        lambda: (_ for _ in ()).throw(TransientError("empty body")),
        lambda: "done",
    ]

    result = policy.run("test step", lambda: outcomes.pop(0)())

    assert result == "done"
    assert len(clock.sleeps) == 1


def test_retry_run_gives_up_on_long_retry_after() -> None:
    clock = RecordingClock()
    policy = RetryPolicy(retries=5, max_retry_after=60, clock=clock)

    def attempt() -> str:
        raise TransientError("HTTP 429", status=429, rate_limited=True, retry_after=600)

    with pytest.raises(HubicRateLimited) as caught:
        policy.run("test step", attempt)

    assert clock.sleeps == []
    assert caught.value.retry_after == 600
    assert "600 s" in str(caught.value)


def test_retry_run_unavailable_message() -> None:
    policy = RetryPolicy(retries=0, clock=RecordingClock())

    def attempt() -> str:
        raise TransientError("the token response came back empty", status=200)

    with pytest.raises(HubicServiceUnavailable) as caught:
        policy.run("hubiC token refresh", attempt)

    assert not isinstance(caught.value, HubicRateLimited)
    assert "came back empty" in str(caught.value)
    assert "wait a few minutes" in str(caught.value)


# Logins against the local service.


def test_password_login_sets_tokens(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    before = time.time()

    hubic.os_auth()

    assert hubic.refresh_token
    assert hubic.access_token
    assert hubic.token_type == "Bearer"
    assert hubic.token_expire is not None
    assert 21000 < hubic.token_expire - before < 21700
    assert hubic.os_auth_token
    assert hubic.os_storage_url is not None
    assert hubic.os_storage_url.startswith(hubic_server.swift_url)


def test_password_with_form_characters(hubic_server: Any) -> None:
    # The test user's password contains %, &, +, a space and an accent.
    password = hubic_server.user.password
    assert {"%", "&", "+", " ", "é"} <= set(password)

    hubic = make_hubic(hubic_server)
    hubic.os_auth()

    assert hubic.os_auth_token


def test_login_sends_nothing_at_construction(hubic_server: Any) -> None:
    before = hubic_server.request_count("/")

    make_hubic(hubic_server)

    assert hubic_server.request_count("/") == before


def test_refresh_token_login(hubic_server: Any) -> None:
    first = make_hubic(hubic_server)
    first.os_auth()
    auth_pages = hubic_server.request_count("/oauth/auth")

    second = hubic_without_login(hubic_server, refresh_token=first.refresh_token)
    second.os_auth()

    assert second.os_auth_token
    assert second.access_token != first.access_token
    assert hubic_server.request_count("/oauth/auth") == auth_pages


def test_refresh_keeps_saved_refresh_token(hubic_server: Any) -> None:
    first = make_hubic(hubic_server)
    first.os_auth()
    saved = first.refresh_token

    second = hubic_without_login(hubic_server, refresh_token=saved)
    second.os_auth()

    assert second.refresh_token == saved


def test_wrong_password_invalid_login(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, password="wrong password")

    with pytest.raises(HubicInvalidLogin) as caught:
        hubic.os_auth()

    assert "Authentication failed" in str(caught.value)
    assert "wrong password" not in str(caught.value)
    assert caught.value.status == 200


def test_wrong_password_not_retried(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, password="wrong password")
    before = hubic_server.request_count("/oauth/auth")

    with pytest.raises(HubicInvalidLogin):
        hubic.os_auth()

    assert hubic_server.request_count("/oauth/auth") - before == 2


def test_unknown_client_rejected(hubic_server: Any) -> None:
    hubic = make_hubic(
        hubic_server, client_id="api_hubic_unknown", client_secret="secret"
    )

    with pytest.raises(HubicClientRejected) as caught:
        hubic.os_auth()

    assert caught.value.error == "unauthorized_client"
    assert "api_hubic_unknown" in str(caught.value)


def test_bad_redirect_uri_rejected(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, redirect_uri="http://localhost:9/elsewhere")

    with pytest.raises(HubicClientRejected) as caught:
        hubic.os_auth()

    assert caught.value.error == "invalid_request"
    assert caught.value.error_description == "please verify redirect uri"
    assert "'http://localhost:9/elsewhere'" in str(caught.value)
    assert "HUBIC_REDIRECT_URI" in str(caught.value)


def test_api_url_without_service_names_setting(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, api_url=hubic_server.api_url + "/v2")

    with pytest.raises(HubicAuthFailure) as caught:
        hubic.os_auth()

    assert caught.value.status == 404
    assert f"{hubic_server.api_url}/v2/oauth/auth/" in str(caught.value)
    assert "HUBIC_API_URL" in str(caught.value)


def test_wrong_client_secret_rejected(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, client_secret="not-the-secret")

    with pytest.raises(HubicClientRejected) as caught:
        hubic.os_auth()

    assert caught.value.status == 401
    assert "not-the-secret" not in str(caught.value)


def test_scope_without_credentials_insufficient(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, scope="usage.r,account.r")
    hubic.hubic_get("/account/usage")
    fetches = hubic_server.request_count("/1.0/account/credentials")

    with pytest.raises(HubicInsufficientScope) as caught:
        hubic.get_account()

    assert "credentials.r" in str(caught.value)
    assert hubic_server.request_count("/1.0/account/credentials") == fetches


# Service hiccups, switched on through the fault switches.


# Each case is a fault switch and the number of requests that it makes fail.
# The login succeeds after that many retries.
@pytest.mark.parametrize(
    ("switch", "count"),
    [
        ("auth_rate_limited", 2),
        ("token_empty_body", 2),
        ("token_server_error", 1),
        ("auth_server_error", 1),
        ("auth_post_no_location", 3),
    ],
)
def test_login_hiccup_retried(
    hubic_server: Any, hubic_faults: Faults, switch: str, count: int
) -> None:
    getattr(hubic_faults, switch)(count)

    hubic = make_hubic(hubic_server)
    hubic.os_auth()

    assert hubic.access_token
    assert hubic.refresh_token


def test_token_rate_limit_honours_retry_after(
    hubic_server: Any, hubic_faults: Faults
) -> None:
    hubic_faults.token_rate_limited(1, status=429, retry_after=1)
    hubic = make_hubic(hubic_server)
    started = time.monotonic()

    hubic.os_auth()

    assert time.monotonic() - started >= 1.0


def test_credentials_html_retried(hubic_server: Any, hubic_faults: Faults) -> None:
    hubic = make_hubic(hubic_server)
    hubic.hubic_get("/account")
    hubic_faults.credentials_html(2)
    before = hubic_server.request_count("/1.0/account/credentials")

    hubic.os_auth()

    assert hubic.os_auth_token
    assert hubic_server.request_count("/1.0/account/credentials") - before == 3


def test_rate_limit_past_budget(hubic_server: Any, hubic_faults: Faults) -> None:
    hubic_faults.token_rate_limited(50)
    hubic = make_hubic(hubic_server, retries=2)
    before = hubic_server.request_count("/oauth/token")

    with pytest.raises(HubicRateLimited) as caught:
        hubic.os_auth()

    assert hubic_server.request_count("/oauth/token") - before == 3
    assert caught.value.status == 509
    assert "wait" in str(caught.value)
    assert hubic.access_token is None


def test_long_retry_after_fails_fast(hubic_server: Any, hubic_faults: Faults) -> None:
    hubic_faults.token_rate_limited(5, status=429, retry_after=3600)
    hubic = make_hubic(hubic_server, retries=5)
    started = time.monotonic()

    with pytest.raises(HubicRateLimited) as caught:
        hubic.os_auth()

    assert time.monotonic() - started < 5
    assert caught.value.retry_after == 3600
    assert "3600 s" in str(caught.value)


@pytest.mark.parametrize(
    ("switch", "fragment"),
    [("auth_post_no_location", "without a redirect"), ("token_empty_body", "empty")],
)
def test_login_hiccup_past_budget(
    hubic_server: Any, hubic_faults: Faults, switch: str, fragment: str
) -> None:
    getattr(hubic_faults, switch)(50)
    hubic = make_hubic(hubic_server, retries=1)

    with pytest.raises(HubicServiceUnavailable) as caught:
        hubic.os_auth()

    assert not isinstance(caught.value, HubicRateLimited)
    assert fragment in str(caught.value)
    assert hubic.access_token is None


# What the local service cannot be made to do: a stand-in on 127.0.0.1.

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


def _stand_in(handle: Handler) -> StandIn:
    """Start a stand-in whose GET and POST requests call ``handle``."""

    class RequestHandler(QuietHandler):
        def do_GET(self) -> None:
            handle(self)

        def do_POST(self) -> None:
            handle(self)

    return StandIn(RequestHandler)


def _login_page_or_redirect(
    location: Callable[[dict[str, list[str]]], str],
) -> Handler:
    """Serve a login form on GET and redirect the POST to ``location(query)``."""
    forms: dict[str, dict[str, list[str]]] = {}

    def handle(request: http.server.BaseHTTPRequestHandler) -> None:
        if request.command == "GET":
            number = str(secrets.randbelow(10**9))
            forms[number] = parse_qs(urlsplit(request.path).query)
            body = f'<form><input type="hidden" name="oauth" value="{number}"></form>'
            request.send_response(200)
            request.send_header("Content-Type", "text/html")
            request.end_headers()
            request.wfile.write(body.encode())
            return

        length = int(request.headers.get("Content-Length", "0"))
        fields = parse_qs(request.rfile.read(length).decode())
        query = forms[fields["oauth"][0]]
        request.send_response(302)
        request.send_header("Location", location(query))
        request.send_header("Content-Length", "0")
        request.end_headers()

    return handle


@pytest.fixture
def refusing_service() -> Iterator[StandIn]:
    def refuse(query: dict[str, list[str]]) -> str:
        fields = {
            "error": "access_denied",
            "error_description": "the user refused access",
            "state": query["state"][0],
        }
        return f"{query['redirect_uri'][0]}?{urlencode(fields)}"

    with _stand_in(_login_page_or_redirect(refuse)) as stand_in:
        yield stand_in


@pytest.fixture
def foreign_state_service() -> Iterator[StandIn]:
    def foreign_state(query: dict[str, list[str]]) -> str:
        fields = {"code": "abc", "scope": "credentials.r", "state": "someone-else"}
        return f"{query['redirect_uri'][0]}?{urlencode(fields)}"

    with _stand_in(_login_page_or_redirect(foreign_state)) as stand_in:
        yield stand_in


def _stand_in_hubic(url: str, **options: Any) -> Hubic:
    return Hubic("client", "secret", "user@example.com", "pw", api_url=url, **options)


def test_user_refusal_access_denied(refusing_service: StandIn) -> None:
    hubic = _stand_in_hubic(refusing_service.url, **FAST_RETRIES)

    with pytest.raises(HubicAccessDenied) as caught:
        hubic.os_auth()

    assert caught.value.error == "access_denied"


def test_foreign_state_rejected(foreign_state_service: StandIn) -> None:
    hubic = _stand_in_hubic(foreign_state_service.url, **FAST_RETRIES)

    with pytest.raises(HubicAuthFailure) as caught:
        hubic.os_auth()

    assert "state" in str(caught.value)
    assert hubic.access_token is None


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never responds."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_timeout_applies_to_login(silent_port: int) -> None:
    hubic = _stand_in_hubic(
        f"http://127.0.0.1:{silent_port}", timeout=0.3, retries=1, **FAST_RETRIES
    )
    started = time.monotonic()

    with pytest.raises(HubicServiceUnavailable) as caught:
        hubic.os_auth()

    assert time.monotonic() - started < 3
    assert "timed out" in str(caught.value)


def test_timeout_applies_to_refresh(silent_port: int) -> None:
    hubic = Hubic(
        "client",
        "secret",
        refresh_token="saved",
        api_url=f"http://127.0.0.1:{silent_port}",
        timeout=0.3,
        retries=0,
    )
    started = time.monotonic()

    with pytest.raises(HubicServiceUnavailable):
        hubic.hubic_get("/account")

    assert time.monotonic() - started < 3


def test_default_scope_and_redirect_uri(hubic_server: Any) -> None:
    secret = secrets.token_urlsafe(16)
    hubic_server.add_app("api_hubic_defaults", secret, "http://localhost:8080/")
    hubic = Hubic(
        "api_hubic_defaults",
        secret,
        hubic_server.user.login,
        hubic_server.user.password,
        api_url=hubic_server.api_url,
        **FAST_RETRIES,
    )

    hubic.os_auth()

    assert hubic.access_credentials is not None
    assert hubic.access_credentials.scope is not None
    assert scope_allows(hubic.access_credentials.scope, "links", "d")


def test_closed_port_names_api_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hubic = Hubic(
        "api_hubic_closed",
        "a-client-secret",
        refresh_token="a-refresh-token",
        api_url=f"http://127.0.0.1:{port}",
        **FAST_RETRIES,
    )

    with pytest.raises(HubicServiceUnavailable) as caught:
        hubic.get_auth()

    message = str(caught.value)
    assert f"cannot connect to 127.0.0.1:{port}" in message
    assert "check that api_url (or HUBIC_API_URL" in message
    assert "wait a few minutes" not in message
