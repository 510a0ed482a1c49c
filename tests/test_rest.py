"""Tests for the REST helpers hubic_get, hubic_post and hubic_delete.

They run against the local hubiC service, except the redirect tests: the
service never redirects an API call, so two small HTTP servers on 127.0.0.1
stand in for an API that redirects and for the host it redirects to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import (
    QuietHandler,
    StandIn,
    hubic_without_login,
    make_hubic,
    new_user,
)

from lhubic import (
    Hubic,
    HubicAccessFailure,
    HubicInputError,
    HubicInsecureURL,
    HubicInsufficientScope,
    HubicRateLimited,
    HubicServiceUnavailable,
    HubicTokenFailure,
    HubicTokenRevoked,
)
from lhubic.security import GuardedStorageSession
from lhubic.server.faults import Faults


@pytest.fixture(scope="module")
def shared_hubic(hubic_server: Any) -> Hubic:
    """One logged-in Hubic for the read-only tests of this module."""
    hubic = make_hubic(hubic_server)
    hubic.hubic_get("/account")
    return hubic


# Calls that work.


def test_get_account(hubic_server: Any, shared_hubic: Hubic) -> None:
    response = shared_hubic.hubic_get("/account")

    assert response.status_code == 200
    assert response.json()["email"] == hubic_server.user.login


@pytest.mark.parametrize(
    "path", ["/account/usage", "/1.0/account/usage", "account/usage"]
)
def test_path_forms_reach_same_call(shared_hubic: Hubic, path: str) -> None:
    response = shared_hubic.hubic_get(path)

    assert response.url.endswith("/1.0/account/usage")
    assert set(response.json()) == {"quota", "used"}


def test_credentials_like_original(shared_hubic: Hubic) -> None:
    result = shared_hubic.hubic_get("/account/credentials").json()

    assert result["endpoint"].startswith("http://127.0.0.1:")
    assert result["token"]


def test_links_post_list_delete(hubic_server: Any) -> None:
    login, password = new_user(hubic_server, "rest")
    hubic = make_hubic(hubic_server, username=login, password=password)
    hubic.put_object("default", "shared/report.txt", b"quarterly figures")
    link = {
        "comment": "for the team",
        "container": "default",
        "mode": "ro",
        "ttl": "5",
        "type": "file",
        "uri": "/shared/report.txt",
    }

    created = hubic.hubic_post("/account/links", link)
    listed = hubic.hubic_get("/account/getAllLinks").json()
    deleted = hubic.hubic_delete("/account/links/shared/report.txt")
    after = hubic.hubic_get("/account/getAllLinks").json()

    assert created.status_code in (200, 201)
    assert created.json()["indirectUrl"]
    assert [entry["uri"] for entry in listed] == ["/shared/report.txt"]
    assert 200 <= deleted.status_code < 300
    assert after == []


# Bad input, rejected before anything is sent.


@pytest.mark.parametrize(
    "path",
    [
        "",
        "   ",
        "https://elsewhere.example/1.0/account",
        "//elsewhere.example/account",
        "/account/../../oauth/token",
        "/account\r\nX-Injected: 1",
        "/account usage",
        None,
        42,
    ],
)
def test_bad_path_rejected_before_sending(
    hubic_server: Any, shared_hubic: Hubic, path: Any
) -> None:
    before = hubic_server.request_count("/")

    with pytest.raises(HubicInputError) as caught:
        shared_hubic.hubic_get(path)

    assert repr(path) in str(caught.value)
    assert hubic_server.request_count("/") == before


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (5, "data must be"),
        (object(), "data must be"),
        (["comment=x"], "data must be"),
        ([("a", "b", "c")], "data must be"),
        ({"comment": None}, "form field 'comment' has the value None"),
        ({"ttl": True}, "form field 'ttl' has the value True"),
        ({"uri": ["/a", object()]}, "form field 'uri' has the value <object"),
        ([("mode", b"ro"), ("type", None)], "form field 'type' has the value None"),
        ({"": "x"}, "form field name '' must be"),
        ([(5, "x")], "form field name 5 must be"),
    ],
)
def test_bad_post_data_rejected(
    hubic_server: Any, shared_hubic: Hubic, data: Any, fragment: str
) -> None:
    before = hubic_server.request_count("/")

    with pytest.raises(HubicInputError) as caught:
        shared_hubic.hubic_post("/account/links", data)

    assert fragment in str(caught.value)
    assert hubic_server.request_count("/") == before


# Failures with the service's error fields.


def test_unknown_path_access_failure(shared_hubic: Hubic) -> None:
    with pytest.raises(HubicAccessFailure) as caught:
        shared_hubic.hubic_get("/account/no-such-call")

    assert caught.value.status == 404
    assert "/1.0/account/no-such-call" in str(caught.value)


def test_missing_arguments_access_failure(hubic_server: Any) -> None:
    login, password = new_user(hubic_server, "rest")
    hubic = make_hubic(hubic_server, username=login, password=password)

    with pytest.raises(HubicAccessFailure) as caught:
        hubic.hubic_post("/account/links", {"comment": "no uri"})

    assert caught.value.status == 400
    assert caught.value.error == "invalid_request"
    assert "invalid_request" in str(caught.value)


def test_scope_missing_entry_point(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, scope="usage.r,credentials.r")

    with pytest.raises(HubicInsufficientScope) as caught:
        hubic.hubic_get("/account")

    assert caught.value.error == "insufficient_scope"
    assert caught.value.status == 400


# Expired and revoked tokens.


# An expired access token costs one refresh at /oauth/token. Revoked tokens
# cost a new password login, which gets the form page and posts the form at
# /oauth/auth.
@pytest.mark.parametrize(
    ("invalidate", "login_path", "login_requests", "replaced_token"),
    [
        ("expire_access_tokens", "/oauth/token", 1, "access_token"),
        ("revoke_tokens", "/oauth/auth", 2, "refresh_token"),
    ],
    ids=["expired-access-refreshed-once", "revoked-logs-in-again"],
)
def test_invalid_token_renewed(
    hubic_server: Any,
    invalidate: str,
    login_path: str,
    login_requests: int,
    replaced_token: str,
) -> None:
    login, password = new_user(hubic_server, "rest")
    hubic = make_hubic(hubic_server, username=login, password=password)
    hubic.hubic_get("/account")
    old_token = getattr(hubic, replaced_token)
    before = hubic_server.request_count(login_path)

    getattr(hubic_server, invalidate)(login)
    response = hubic.hubic_get("/account")

    assert response.json()["email"] == login
    assert hubic_server.request_count(login_path) == before + login_requests
    assert getattr(hubic, replaced_token) != old_token


def test_revoked_without_password_raises(hubic_server: Any) -> None:
    login, password = new_user(hubic_server, "rest")
    first = make_hubic(hubic_server, username=login, password=password)
    first.hubic_get("/account")
    hubic = hubic_without_login(hubic_server, refresh_token=first.refresh_token)
    hubic.hubic_get("/account")

    hubic_server.revoke_tokens(login)
    with pytest.raises(HubicTokenRevoked) as caught:
        hubic.hubic_get("/account")

    assert caught.value.status == 403
    assert caught.value.error_description == "revoked"
    assert "log in again" in str(caught.value)


def test_revoked_refresh_token_raises(hubic_server: Any) -> None:
    login, password = new_user(hubic_server, "rest")
    first = make_hubic(hubic_server, username=login, password=password)
    first.hubic_get("/account")

    hubic_server.revoke_tokens(login)
    hubic = hubic_without_login(hubic_server, refresh_token=first.refresh_token)
    with pytest.raises(HubicTokenFailure) as caught:
        hubic.hubic_get("/account")

    assert caught.value.status == 400
    assert "log in again" in str(caught.value)
    assert hubic.access_token is None


def test_revoked_refresh_token_uses_password(hubic_server: Any) -> None:
    login, password = new_user(hubic_server, "rest")
    first = make_hubic(hubic_server, username=login, password=password)
    first.hubic_get("/account")
    hubic_server.revoke_tokens(login)

    hubic = make_hubic(
        hubic_server,
        username=login,
        password=password,
        refresh_token=first.refresh_token,
    )
    response = hubic.hubic_get("/account")

    assert response.json()["email"] == login
    assert hubic.refresh_token != first.refresh_token


# Rate limits.


def test_rate_limit_retried(
    hubic_server: Any, shared_hubic: Hubic, hubic_faults: Faults
) -> None:
    hubic_faults.api_rate_limited(2)
    before = hubic_server.request_count("/1.0/account/usage")

    response = shared_hubic.hubic_get("/account/usage")

    assert response.status_code == 200
    assert hubic_server.request_count("/1.0/account/usage") == before + 3


def test_rate_limit_honours_retry_after(
    shared_hubic: Hubic, hubic_faults: Faults
) -> None:
    hubic_faults.api_rate_limited(1, status=429, retry_after=1)
    started = time.monotonic()

    shared_hubic.hubic_get("/account/usage")

    assert time.monotonic() - started >= 1.0


def test_rate_limit_past_budget(hubic_server: Any, hubic_faults: Faults) -> None:
    hubic = make_hubic(hubic_server, retries=1)
    hubic.hubic_get("/account")
    hubic_faults.api_rate_limited(50)

    with pytest.raises(HubicRateLimited) as caught:
        hubic.hubic_get("/account/usage")

    assert caught.value.status == 509
    assert "/1.0/account/usage" in str(caught.value)


# A timeout and redirects, through stand-ins on 127.0.0.1.


class RecordingServer(StandIn):
    """An HTTP server on 127.0.0.1 that records request headers.

    With ``redirect_to`` set, every ``/1.0/`` GET is redirected there; token
    requests get an access token, and anything else a JSON object. Each GET
    waits ``get_delay`` seconds before its response.
    """

    def __init__(self, redirect_to: str | None = None, get_delay: float = 0) -> None:
        self.headers: list[dict[str, str]] = []
        outer = self

        class RequestHandler(QuietHandler):
            def do_GET(self) -> None:
                outer.headers.append(dict(self.headers))
                time.sleep(get_delay)
                if redirect_to is not None and self.path.startswith("/1.0/"):
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_json({"reached": self.path})

            def do_POST(self) -> None:
                self.read_body()
                self.send_json({"access_token": "a-token", "expires_in": 3600})

        super().__init__(RequestHandler)


@pytest.fixture
def other_host() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def _refresh_only_client(api: RecordingServer, **options: Any) -> Hubic:
    return Hubic("client", "secret", refresh_token="r", api_url=api.url, **options)


def test_redirect_to_other_host_drops_authorization(
    other_host: RecordingServer,
) -> None:
    # "localhost" and "127.0.0.1" name the same machine but are different hosts.
    target = f"http://localhost:{other_host.port}/elsewhere"
    with RecordingServer(redirect_to=target) as api:
        response = _refresh_only_client(api).hubic_get("/account")

    assert response.json() == {"reached": "/elsewhere"}
    assert "Authorization" in api.headers[0]
    assert "Authorization" not in other_host.headers[0]


def test_redirect_same_origin_keeps_authorization() -> None:
    with RecordingServer(redirect_to="/same-host") as api:
        _refresh_only_client(api).hubic_get("/account")

    assert len(api.headers) == 2
    assert api.headers[1]["Authorization"] == "Bearer a-token"


def test_redirect_to_plain_http_host_rejected() -> None:
    with RecordingServer(redirect_to="http://elsewhere.example/collect") as api:
        hubic = _refresh_only_client(api)
        with pytest.raises(HubicInsecureURL) as caught:
            hubic.hubic_get("/account")

    assert "elsewhere.example" in str(caught.value)
    assert "redirect" in str(caught.value)


def test_storage_redirect_drops_token_header(other_host: RecordingServer) -> None:
    target = f"http://localhost:{other_host.port}/elsewhere"
    session = GuardedStorageSession(logging.getLogger("lhubic.connection"))
    with RecordingServer(redirect_to=target) as api:
        try:
            session.get(
                f"{api.url}/1.0/object",
                headers={"X-Auth-Token": "storage-token", "X-Storage-Token": "t"},
                timeout=5,
            )
        finally:
            session.close()

    assert api.headers[0]["X-Auth-Token"] == "storage-token"
    assert "X-Auth-Token" not in other_host.headers[0]
    assert "X-Storage-Token" not in other_host.headers[0]


def test_timeout_applies_to_rest_call() -> None:
    with RecordingServer(get_delay=1.0) as slow_api:
        hubic = _refresh_only_client(slow_api, timeout=0.3, retries=0)
        started = time.monotonic()
        with pytest.raises(HubicServiceUnavailable) as caught:
            hubic.hubic_get("/account")
        elapsed = time.monotonic() - started

    assert elapsed < 0.9
    assert "GET /1.0/account" in str(caught.value)
    assert "timed out after 0.3 s" in str(caught.value)
    assert len(slow_api.headers) == 1
