"""The fault switches of the local service, each driven over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import swiftclient.client
from swiftclient.exceptions import ClientException

from lhubic.exceptions import HubicInputError
from lhubic.server.faults import Faults
from lhubic.server.pytest_plugin import HubicTestServer, fill_login_form


@pytest.fixture(scope="module")
def server() -> Iterator[HubicTestServer]:
    with HubicTestServer() as server:
        yield server


@pytest.fixture
def faults(server: HubicTestServer) -> Iterator[Faults]:
    server.faults.clear()
    yield server.faults
    server.faults.clear()


def open_form(server: HubicTestServer) -> requests.Response:
    return requests.get(
        f"{server.api_url}/oauth/auth/",
        params={
            "client_id": server.app.client_id,
            "redirect_uri": server.app.redirect_uri,
            "scope": server.scope,
            "response_type": "code",
            "state": "s",
        },
        allow_redirects=False,
        timeout=30,
    )


def post_form(
    page: requests.Response, server: HubicTestServer
) -> tuple[requests.Response, str, list[tuple[str, str]]]:
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    url = urljoin(page.url, action)
    response = requests.post(url, data=fields, allow_redirects=False, timeout=30)
    return response, url, fields


def refresh(server: HubicTestServer, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{server.api_url}/oauth/token/",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(server.app.client_id, server.app.client_secret),
        timeout=30,
    )


def api(server: HubicTestServer, token: str, path: str) -> requests.Response:
    return requests.get(
        f"{server.api_url}/1.0/{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def storage_for(server: HubicTestServer, token: str) -> swiftclient.client.Connection:
    credentials = api(server, token, "account/credentials").json()
    return swiftclient.client.Connection(
        preauthurl=credentials["endpoint"], preauthtoken=credentials["token"], retries=0
    )


# Token endpoint.


def test_token_rate_limited_then_recovers(
    server: HubicTestServer, faults: Faults
) -> None:
    tokens = server.authorize()
    faults.token_rate_limited(2)

    statuses = [refresh(server, tokens["refresh_token"]).status_code for _ in range(3)]

    assert statuses == [509, 509, 200]


def test_token_rate_limited_429_retry_after(
    server: HubicTestServer, faults: Faults
) -> None:
    tokens = server.authorize()
    faults.token_rate_limited(1, status=429, retry_after=2.5)

    response = refresh(server, tokens["refresh_token"])

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"


def test_token_empty_body(server: HubicTestServer, faults: Faults) -> None:
    tokens = server.authorize()
    faults.token_empty_body(1)

    empty = refresh(server, tokens["refresh_token"])
    normal = refresh(server, tokens["refresh_token"])

    assert empty.status_code == 200
    assert empty.content == b""
    assert normal.status_code == 200
    assert "access_token" in normal.json()


def test_token_server_error(server: HubicTestServer, faults: Faults) -> None:
    tokens = server.authorize()
    faults.token_server_error(1)

    response = refresh(server, tokens["refresh_token"])

    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "please retry",
    }


# Login form.


def test_auth_post_without_location_then_retry(
    server: HubicTestServer, faults: Faults
) -> None:
    faults.auth_post_no_location(2)
    page = open_form(server)

    first, url, fields = post_form(page, server)
    second = requests.post(url, data=fields, allow_redirects=False, timeout=30)
    third = requests.post(url, data=fields, allow_redirects=False, timeout=30)

    assert first.status_code == 200
    assert "Location" not in first.headers
    assert 'name="oauth"' in first.text
    assert second.status_code == 200
    assert third.status_code == 302
    assert "code" in parse_qs(urlsplit(third.headers["Location"]).query)


def test_auth_rate_limited_get_and_post(
    server: HubicTestServer, faults: Faults
) -> None:
    page = open_form(server)
    faults.auth_rate_limited(2)

    limited_get = open_form(server)
    limited_post, _, _ = post_form(page, server)
    accepted, _, _ = post_form(page, server)

    assert limited_get.status_code == 509
    assert limited_post.status_code == 509
    assert accepted.status_code == 302


def test_auth_server_error_redirect(server: HubicTestServer, faults: Faults) -> None:
    faults.auth_server_error(1)

    failed = open_form(server)
    query = parse_qs(urlsplit(failed.headers["Location"]).query)

    assert failed.status_code == 302
    assert query["error"] == ["server_error"]
    assert query["error_description"] == ["please retry"]
    assert open_form(server).status_code == 200


# REST API.


def test_api_rate_limited(server: HubicTestServer, faults: Faults) -> None:
    token = server.authorize()["access_token"]
    faults.api_rate_limited(2, status=429, retry_after=7)

    first = api(server, token, "account")
    second = api(server, token, "account/usage")
    third = api(server, token, "account")

    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    assert second.status_code == 429
    assert third.status_code == 200


def test_api_rate_limited_509_default(server: HubicTestServer, faults: Faults) -> None:
    token = server.authorize()["access_token"]
    faults.api_rate_limited(1)

    response = api(server, token, "account")

    assert response.status_code == 509
    assert "Retry-After" not in response.headers


def test_credentials_html_once(server: HubicTestServer, faults: Faults) -> None:
    token = server.authorize()["access_token"]
    faults.credentials_html()

    html = api(server, token, "account/credentials")
    normal = api(server, token, "account/credentials")

    assert html.status_code == 200
    assert html.headers["Content-Type"].startswith("text/html")
    assert html.text.lstrip().startswith("<!DOCTYPE html>")
    assert normal.headers["Content-Type"] == "application/json; charset=utf8"
    assert "token" in normal.json()


# Storage.


def test_storage_unavailable_then_recovers(
    server: HubicTestServer, faults: Faults
) -> None:
    storage = storage_for(server, server.authorize()["access_token"])
    faults.storage_unavailable(2)
    statuses = []
    for _ in range(2):
        with pytest.raises(ClientException) as caught:
            storage.head_account()
        statuses.append(caught.value.http_status)

    headers = storage.head_account()

    assert statuses == [503, 503]
    assert "x-account-meta-quota" in headers


def test_expire_storage_tokens(server: HubicTestServer, faults: Faults) -> None:
    token = server.authorize()["access_token"]
    before = api(server, token, "account/credentials").json()
    old = storage_for(server, token)
    old.head_account()

    server.expire_storage_tokens()
    with pytest.raises(ClientException) as caught:
        old.head_account()
    after = api(server, token, "account/credentials").json()

    assert caught.value.http_status == 401
    assert after["endpoint"] == before["endpoint"]
    assert after["token"] != before["token"]
    assert "x-account-meta-quota" in storage_for(server, token).head_account()


def test_revoke_tokens_stops_every_token(
    server: HubicTestServer, faults: Faults
) -> None:
    server.add_user("revoke-me@example.com", "revoke me")
    tokens = server.authorize(login="revoke-me@example.com", password="revoke me")
    storage = storage_for(server, tokens["access_token"])

    server.revoke_tokens("revoke-me@example.com")
    with pytest.raises(ClientException) as caught:
        storage.head_account()

    assert api(server, tokens["access_token"], "account").json() == {
        "error": "invalid_token",
        "error_description": "revoked",
    }
    assert refresh(server, tokens["refresh_token"]).json() == {
        "error": "invalid_request",
        "error_description": "invalid refresh token",
    }
    assert caught.value.http_status == 401
    assert "access_token" in server.authorize(
        login="revoke-me@example.com", password="revoke me"
    )


def test_expire_access_tokens_of_everyone(server: HubicTestServer) -> None:
    token = server.authorize()["access_token"]

    server.expire_access_tokens()

    assert api(server, token, "account").json()["error_description"] == "expired"


def test_request_count_by_prefix(server: HubicTestServer) -> None:
    before_api = server.request_count("/1.0")
    before_all = server.request_count()
    requests.get(f"{server.api_url}/1.0/account", timeout=30)
    requests.get(f"{server.api_url}/1.0/account/usage", timeout=30)
    requests.get(f"{server.api_url}/nothing", timeout=30)

    assert server.request_count("/1.0") - before_api == 2
    assert server.request_count() - before_all == 3


# Switch handling.


def test_clear_turns_switches_off(server: HubicTestServer, faults: Faults) -> None:
    token = server.authorize()["access_token"]
    faults.api_rate_limited(5)
    faults.storage_unavailable(5)

    faults.clear()

    assert api(server, token, "account").status_code == 200
    assert "x-account-meta-quota" in storage_for(server, token).head_account()


def test_setting_switch_replaces_count(server: HubicTestServer, faults: Faults) -> None:
    token = server.authorize()["access_token"]
    faults.api_rate_limited(5)
    faults.api_rate_limited(1)

    statuses = [api(server, token, "account").status_code for _ in range(2)]

    assert statuses == [509, 200]


INVALID_SWITCH_CASES = [
    ("token_rate_limited", (-1,), {}, "invalid fault count -1"),
    ("token_empty_body", (True,), {}, "invalid fault count True"),
    ("api_rate_limited", (1,), {"status": 500}, "invalid rate-limit status 500"),
    ("api_rate_limited", (1,), {"retry_after": -2}, "invalid retry_after -2"),
    ("credentials_html", ("2",), {}, "invalid fault count '2'"),
    ("storage_unavailable", (-3,), {}, "invalid fault count -3"),
]


@pytest.mark.parametrize(("switch", "args", "kwargs", "message"), INVALID_SWITCH_CASES)
def test_switch_rejects_invalid_values(
    faults: Faults,
    switch: str,
    args: tuple[object, ...],
    kwargs: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(HubicInputError, match=re.escape(message)):
        getattr(faults, switch)(*args, **kwargs)


def test_storage_switch_needs_running_server() -> None:
    with pytest.raises(Exception, match="needs a running server"):
        Faults().storage_unavailable(1)


def test_plugin_faults_fixture_starts_clear(
    hubic_server: HubicTestServer, hubic_faults: Faults
) -> None:
    token = hubic_server.authorize()["access_token"]

    hubic_faults.api_rate_limited(1)
    limited = api(hubic_server, token, "account")
    normal = api(hubic_server, token, "account")

    assert hubic_faults is hubic_server.faults
    assert limited.status_code == 509
    assert normal.status_code == 200
