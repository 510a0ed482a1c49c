"""The OAuth2 pages and the token endpoint of the local service, over HTTP."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import lxml.html  # type: ignore[import-untyped]
import pytest
import requests
from helpers import SettableClock

from lhubic.server.pytest_plugin import HubicTestServer, fill_login_form
from lhubic.server.state import LOGIN_FORM_LIFETIME

OTHER_CLIENT_ID = "api_hubic_other"
OTHER_REDIRECT_URI = "https://example.org/callback?from=hubic"

# Passwords and logins that break clients which skip form encoding.
TRICKY_USERS = [
    ("plus+sign@example.com", "a+b+c"),
    ("percent@example.com", "100% sure %41"),
    ("ampersand@example.com", "this&that=other"),
    ("spaces@example.com", "  leading and trailing  "),
    ("accents@example.com", "éàü ßœ 日本"),
]


@pytest.fixture(scope="module")
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture(scope="module")
def server(clock: SettableClock) -> Iterator[HubicTestServer]:
    with HubicTestServer(clock=clock, access_token_lifetime=3600) as server:
        server.add_app(OTHER_CLIENT_ID, "other-secret", OTHER_REDIRECT_URI)
        for login, password in TRICKY_USERS:
            server.add_user(login, password)
        yield server


def auth_params(server: HubicTestServer, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": server.app.client_id,
        "redirect_uri": server.app.redirect_uri,
        "scope": server.scope,
        "response_type": "code",
        "state": "state-123",
    }
    params.update(overrides)
    return {key: value for key, value in params.items() if value is not None}


def get_auth(server: HubicTestServer, params: Any) -> requests.Response:
    """Send GET /oauth/auth/ with ``params`` and return the response, without
    following a redirect."""
    return requests.get(
        f"{server.api_url}/oauth/auth/",
        params=params,
        allow_redirects=False,
        timeout=30,
    )


def open_form(server: HubicTestServer, **overrides: str | None) -> requests.Response:
    response = get_auth(server, auth_params(server, **overrides))
    assert response.status_code == 200, response.headers.get("Location")
    return response


def submit(
    page: requests.Response, fields: list[tuple[str, str]], action: str = "/oauth/auth/"
) -> requests.Response:
    return requests.post(
        urljoin(page.url, action), data=fields, allow_redirects=False, timeout=30
    )


def log_in(
    server: HubicTestServer,
    login: str | None = None,
    password: str | None = None,
    button: str | None = None,
    **overrides: str | None,
) -> requests.Response:
    page = open_form(server, **overrides)
    action, fields = fill_login_form(
        page.text,
        login or server.user.login,
        password or server.user.password,
        button or "accepted",
    )
    return submit(page, fields, action)


def redirect_query(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)


def get_code(server: HubicTestServer, **overrides: str | None) -> str:
    return redirect_query(log_in(server, **overrides))["code"][0]


def post_token(server: HubicTestServer, data: Any, **kwargs: Any) -> requests.Response:
    """POST ``data`` to /oauth/token/ and return the response.

    ``kwargs`` go to `requests.post`. The request carries client credentials
    only when ``kwargs`` add them.
    """
    return requests.post(
        f"{server.api_url}/oauth/token/", data=data, timeout=30, **kwargs
    )


def exchange(
    server: HubicTestServer,
    data: Any,
    auth: tuple[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """POST ``data`` to /oauth/token/ with HTTP Basic credentials, which are
    ``auth`` or else the test application's, and return the response."""
    if auth is None:
        auth = (server.app.client_id, server.app.client_secret)
    return post_token(server, data, auth=auth, **kwargs)


def code_grant(server: HubicTestServer, code: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": server.app.redirect_uri,
    }


def account_status(server: HubicTestServer, access_token: str) -> int:
    response = requests.get(
        f"{server.api_url}/1.0/account",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=30,
    )
    return response.status_code


def assert_error(
    response: requests.Response, status: int, error: str, text: str
) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json; charset=utf8"
    assert response.json() == {"error": error, "error_description": text}


# GET /oauth/auth/


def test_auth_page_has_login_form(server: HubicTestServer) -> None:
    page = open_form(server)

    assert page.headers["Content-Type"].startswith("text/html")
    assert re.search(r'<form method="post" action="/oauth/auth/"', page.text)
    assert re.search(r'<input type="hidden" name="oauth" value="\d+">', page.text)
    assert 'name="login"' in page.text
    assert 'type="password" name="user_pwd"' in page.text
    assert 'name="action" value="accepted"' in page.text
    assert 'name="action" value="refused"' in page.text


def test_auth_page_has_one_checkbox_per_right(server: HubicTestServer) -> None:
    page = open_form(server)
    boxes = re.findall(r'type="checkbox" name="(\w+)" value="(\w)"', page.text)

    assert ("credentials", "r") in boxes
    assert ("usage", "r") in boxes
    assert [value for name, value in boxes if name == "links"] == ["d", "r", "w"]
    assert len(boxes) == 7


def test_auth_page_without_trailing_slash(server: HubicTestServer) -> None:
    response = requests.get(
        f"{server.api_url}/oauth/auth", params=auth_params(server), timeout=30
    )

    assert response.status_code == 200
    assert 'name="oauth"' in response.text


def test_auth_page_cannot_be_framed(server: HubicTestServer) -> None:
    page = open_form(server)

    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert page.headers["Cache-Control"] == "no-store"


def test_browser_completes_consent_form(server: HubicTestServer) -> None:
    """Fill the form with lxml's HTML form model, which follows the browser
    rules for hidden inputs, ticked checkboxes and the pressed button."""
    page = open_form(server)
    form = lxml.html.fromstring(page.text, base_url=page.url).forms[0]
    form.fields["login"] = server.user.login
    form.fields["user_pwd"] = server.user.password
    buttons = form.xpath('.//button[@type="submit"][@value="accepted"]')
    fields = [*form.form_values(), (buttons[0].get("name"), "accepted")]

    response = requests.post(
        form.action, data=fields, allow_redirects=False, timeout=30
    )
    query = redirect_query(response)

    assert form.method == "POST"
    assert form.get("accept-charset") == "utf-8"
    assert form.action == f"{server.api_url}/oauth/auth/"
    assert query["scope"] == [server.scope]
    assert query["state"] == ["state-123"]
    assert "code" in query


def auth_query_with(
    server: HubicTestServer, name: str, second_value: str
) -> list[tuple[str, str]]:
    """Return the authorization query with ``name`` given a second time."""
    params = list(auth_params(server).items())
    return [*params, (name, second_value)]


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
def test_auth_repeated_client_goes_to_service_page(
    server: HubicTestServer, name: str
) -> None:
    response = get_auth(
        server, auth_query_with(server, name, auth_params(server)[name])
    )
    query = redirect_query(response)

    assert response.headers["Location"].startswith(f"{server.api_url}/oauth/error/")
    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == [f"repeated argument {name}"]


@pytest.mark.parametrize(
    ("name", "second_value"),
    [("scope", "usage.r"), ("response_type", "code"), ("state", "other")],
)
def test_auth_repeated_argument_goes_to_app(
    server: HubicTestServer, name: str, second_value: str
) -> None:
    response = get_auth(server, auth_query_with(server, name, second_value))
    query = redirect_query(response)

    assert response.headers["Location"].startswith(server.app.redirect_uri + "?")
    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == [f"repeated argument {name}"]
    assert "code" not in query


ERROR_PAGE_CASES = [
    ({"client_id": None}, "invalid_request", "missing arguments"),
    ({"redirect_uri": None}, "invalid_request", "missing arguments"),
    (
        {"client_id": "api_hubic_unknown"},
        "unauthorized_client",
        "please verify credentials",
    ),
    (
        {"redirect_uri": "http://127.0.0.1/elsewhere"},
        "invalid_request",
        "please verify redirect uri",
    ),
]


@pytest.mark.parametrize(("overrides", "error", "description"), ERROR_PAGE_CASES)
def test_auth_error_goes_to_service_page(
    server: HubicTestServer,
    overrides: dict[str, str | None],
    error: str,
    description: str,
) -> None:
    response = get_auth(server, auth_params(server, **overrides))
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)

    assert response.status_code == 302
    assert location.startswith(f"{server.api_url}/oauth/error/")
    assert query["error"] == [error]
    assert query["error_description"] == [description]


APP_ERROR_CASES = [
    ({"scope": None}, "invalid_request", "missing arguments"),
    ({"response_type": None}, "invalid_request", "missing arguments"),
    (
        {"response_type": "password"},
        "unsupported_response_type",
        "response type must be set to code or token",
    ),
    ({"scope": "usage.r,unknown.r"}, "invalid_scope", "please verify scope"),
    ({"scope": "usage.x"}, "invalid_scope", "please verify scope"),
    ({"scope": "usage"}, "invalid_scope", "please verify scope"),
    ({"scope": "usage.r,"}, "invalid_scope", "please verify scope"),
]


@pytest.mark.parametrize(("overrides", "error", "description"), APP_ERROR_CASES)
def test_auth_error_goes_to_app(
    server: HubicTestServer,
    overrides: dict[str, str | None],
    error: str,
    description: str,
) -> None:
    response = get_auth(server, auth_params(server, **overrides))
    query = redirect_query(response)

    assert response.headers["Location"].startswith(server.app.redirect_uri + "?")
    assert query["error"] == [error]
    assert query["error_description"] == [description]
    assert query["state"] == ["state-123"]


def test_error_page_shows_description(server: HubicTestServer) -> None:
    response = requests.get(
        f"{server.api_url}/oauth/auth/",
        params=auth_params(server, client_id="api_hubic_unknown"),
        timeout=30,
    )

    assert response.status_code == 400
    assert "please verify credentials" in response.text


def test_redirect_keeps_existing_query(server: HubicTestServer) -> None:
    response = log_in(
        server, client_id=OTHER_CLIENT_ID, redirect_uri=OTHER_REDIRECT_URI
    )
    location = response.headers["Location"]
    query = redirect_query(response)

    assert location.startswith("https://example.org/callback?from=hubic&code=")
    assert query["from"] == ["hubic"]
    assert "code" in query


# POST /oauth/auth/


def test_login_redirects_with_code(server: HubicTestServer) -> None:
    response = log_in(server)
    location = response.headers["Location"]
    query = redirect_query(response)

    assert location.startswith(server.app.redirect_uri + "?code=")
    assert len(query["code"][0]) >= 32
    assert query["scope"] == [server.scope]
    assert query["state"] == ["state-123"]


def test_login_grants_only_ticked_rights(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    unticked = {("usage", "r"), ("links", "d"), ("account", "r")}
    fields = [field for field in fields if field not in unticked]

    query = redirect_query(submit(page, fields, action))

    assert query["scope"] == ["getAllLinks.r,credentials.r,links.rw"]


def test_login_grants_rights_in_one_field(server: HubicTestServer) -> None:
    page = open_form(server, scope="links.rwd")
    oauth = re.search(r'name="oauth" value="(\d+)"', page.text)
    assert oauth is not None
    fields = [
        ("oauth", oauth.group(1)),
        ("action", "accepted"),
        ("login", server.user.login),
        ("user_pwd", server.user.password),
        ("links", "rd"),
    ]

    query = redirect_query(submit(page, fields))

    assert query["scope"] == ["links.rd"]


def test_login_ignores_rights_not_requested(server: HubicTestServer) -> None:
    page = open_form(server, scope="usage.r")
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    fields += [("credentials", "r"), ("usage", "w")]

    query = redirect_query(submit(page, fields, action))

    assert query["scope"] == ["usage.r"]


@pytest.mark.parametrize(("login", "password"), TRICKY_USERS)
def test_login_with_special_characters(
    server: HubicTestServer, login: str, password: str
) -> None:
    query = redirect_query(log_in(server, login, password))

    assert "code" in query


def test_login_wrong_password_shows_error(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, "wrong password")
    response = submit(page, fields, action)

    assert response.status_code == 200
    assert "Location" not in response.headers
    assert re.search(
        r'class="text-error">Authentication failed, please check your credentials<',
        response.text,
    )
    assert f'value="{server.user.login}"' in response.text.replace("&#x27;", "'")


def test_login_after_failure_uses_new_form(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, "wrong password")
    failed = submit(page, fields, action)
    action, fields = fill_login_form(
        failed.text, server.user.login, server.user.password
    )

    query = redirect_query(submit(failed, fields, action))

    assert "code" in query
    assert query["state"] == ["state-123"]


def test_login_unknown_user_shows_error(server: HubicTestServer) -> None:
    response = log_in(server, "nobody@example.com", "whatever")

    assert response.status_code == 200
    assert 'class="text-error"' in response.text


def test_login_another_users_password(server: HubicTestServer) -> None:
    _, password = TRICKY_USERS[0]
    response = log_in(server, server.user.login, password)

    assert response.status_code == 200
    assert 'class="text-error"' in response.text


def test_refusal_redirects_access_denied(server: HubicTestServer) -> None:
    query = redirect_query(log_in(server, button="refused"))

    assert query["error"] == ["access_denied"]
    assert query["state"] == ["state-123"]
    assert "code" not in query


def test_accept_with_nothing_ticked_is_denied(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    names = {"oauth", "login", "user_pwd", "action"}
    fields = [field for field in fields if field[0] in names]

    query = redirect_query(submit(page, fields, action))

    assert query["error"] == ["access_denied"]


def test_oauth_number_is_single_use(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    first = submit(page, fields, action)
    second = submit(page, fields, action)
    query = parse_qs(urlsplit(second.headers["Location"]).query)

    assert first.status_code == 302
    assert second.status_code == 302
    assert second.headers["Location"].startswith(f"{server.api_url}/oauth/error/")
    assert query["error"] == ["invalid_request"]


def test_oauth_number_expires(server: HubicTestServer, clock: SettableClock) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    clock.advance(LOGIN_FORM_LIFETIME + 1)

    response = submit(page, fields, action)

    assert response.headers["Location"].startswith(f"{server.api_url}/oauth/error/")


def test_post_without_oauth_number(server: HubicTestServer) -> None:
    response = requests.post(
        f"{server.api_url}/oauth/auth/",
        data={"action": "accepted", "login": "x@example.com", "user_pwd": "x"},
        allow_redirects=False,
        timeout=30,
    )
    query = redirect_query(response)

    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == ["missing arguments"]


def test_post_without_action(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    fields = [field for field in fields if field[0] != "action"]

    query = redirect_query(submit(page, fields, action))

    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == ["missing arguments"]


def test_post_without_password_shows_error(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, "unused")
    fields = [field for field in fields if field[0] != "user_pwd"]

    response = submit(page, fields, action)

    assert response.status_code == 200
    assert 'class="text-error"' in response.text


def test_post_repeated_oauth_number(server: HubicTestServer) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    fields.append(("oauth", "123456789012345"))

    response = submit(page, fields, action)
    query = redirect_query(response)

    assert response.headers["Location"].startswith(f"{server.api_url}/oauth/error/")
    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == ["repeated argument oauth"]


@pytest.mark.parametrize("name", ["login", "user_pwd", "action"])
def test_post_repeated_field_goes_to_app(server: HubicTestServer, name: str) -> None:
    page = open_form(server)
    action, fields = fill_login_form(page.text, server.user.login, server.user.password)
    fields.append((name, dict(fields)[name]))

    query = redirect_query(submit(page, fields, action))

    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == [f"repeated argument {name}"]
    assert query["state"] == ["state-123"]
    assert "code" not in query


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"oauth": "1", "action": "accepted"}'),
        ("application/x-www-form-urlencoded", b"oauth=%FF%FE&action=accepted"),
        ("text/plain", b"oauth=1&action=accepted"),
    ],
)
def test_post_unreadable_body_goes_to_service_page(
    server: HubicTestServer, content_type: str, body: bytes
) -> None:
    response = requests.post(
        f"{server.api_url}/oauth/auth/",
        data=body,
        headers={"Content-Type": content_type},
        allow_redirects=False,
        timeout=30,
    )
    query = redirect_query(response)

    assert response.headers["Location"].startswith(f"{server.api_url}/oauth/error/")
    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == ["missing arguments"]


def test_implicit_grant_returns_token_in_fragment(server: HubicTestServer) -> None:
    response = log_in(server, response_type="token")
    fragment = parse_qs(urlsplit(response.headers["Location"]).fragment)

    assert fragment["token_type"] == ["Bearer"]
    assert fragment["expires_in"] == ["3600"]
    assert fragment["state"] == ["state-123"]
    assert account_status(server, fragment["access_token"][0]) == 200


# POST /oauth/token/


def test_code_exchange_with_basic_auth(server: HubicTestServer) -> None:
    response = exchange(server, code_grant(server, get_code(server)))
    body = response.json()

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf8"
    assert response.headers["Cache-Control"] == "no-store"
    assert set(body) == {"refresh_token", "expires_in", "access_token", "token_type"}
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert account_status(server, body["access_token"]) == 200


def test_code_exchange_with_body_credentials(server: HubicTestServer) -> None:
    data = code_grant(server, get_code(server))
    data["client_id"] = server.app.client_id
    data["client_secret"] = server.app.client_secret
    response = requests.post(f"{server.api_url}/oauth/token", data=data, timeout=30)

    assert response.status_code == 200
    assert "access_token" in response.json()


def test_code_exchange_with_encoded_basic_auth(server: HubicTestServer) -> None:
    server.add_app("api_hubic_encoded", "s%e+c r&t", "http://127.0.0.1/encoded")
    code = get_code(
        server, client_id="api_hubic_encoded", redirect_uri="http://127.0.0.1/encoded"
    )
    # RFC 6749 form-encodes the secret before HTTP Basic.
    credentials = base64.b64encode(b"api_hubic_encoded:s%25e%2Bc+r%26t").decode()
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "http://127.0.0.1/encoded",
    }
    response = post_token(
        server, data, headers={"Authorization": f"Basic {credentials}"}
    )

    assert response.status_code == 200


def test_refresh_returns_no_refresh_token(server: HubicTestServer) -> None:
    tokens = exchange(server, code_grant(server, get_code(server))).json()
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}

    first = exchange(server, data)
    second = exchange(server, data)

    assert first.status_code == 200
    assert set(first.json()) == {"expires_in", "access_token", "token_type"}
    assert first.json()["expires_in"] == 3600
    assert second.status_code == 200
    assert second.json()["access_token"] != first.json()["access_token"]
    assert account_status(server, first.json()["access_token"]) == 200
    assert account_status(server, second.json()["access_token"]) == 200


def test_refresh_keeps_granted_scope(server: HubicTestServer) -> None:
    tokens = exchange(
        server, code_grant(server, get_code(server, scope="usage.r"))
    ).json()
    refreshed = exchange(
        server,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    ).json()

    assert account_status(server, refreshed["access_token"]) == 400


def test_token_json_body_is_rejected(server: HubicTestServer) -> None:
    response = exchange(server, {}, json=code_grant(server, get_code(server)))

    assert_error(response, 400, "invalid_request", "missing parameters")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "multipart/form-data; boundary=x", ""]
)
def test_token_non_form_body_is_rejected(
    server: HubicTestServer, content_type: str
) -> None:
    body = urlencode(code_grant(server, "any-code")).encode()
    response = exchange(server, body, headers={"Content-Type": content_type})

    assert_error(response, 400, "invalid_request", "missing parameters")


def test_token_form_with_charset_is_accepted(server: HubicTestServer) -> None:
    body = urlencode(code_grant(server, get_code(server))).encode()
    response = exchange(
        server,
        body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "name", ["grant_type", "code", "redirect_uri", "client_id", "client_secret"]
)
def test_token_repeated_parameter(server: HubicTestServer, name: str) -> None:
    data = code_grant(server, get_code(server))
    data.update(client_id=server.app.client_id, client_secret=server.app.client_secret)
    fields = [*data.items(), (name, data[name])]

    response = post_token(server, fields)

    assert_error(response, 400, "invalid_request", f"repeated parameter {name}")


def test_token_repeated_refresh_token(server: HubicTestServer) -> None:
    tokens = exchange(server, code_grant(server, get_code(server))).json()
    fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"]),
        ("refresh_token", "other"),
    ]

    response = exchange(server, fields)

    assert_error(response, 400, "invalid_request", "repeated parameter refresh_token")


TOKEN_MISSING_CASES = [
    {"code": "x", "redirect_uri": "http://127.0.0.1/"},
    {"grant_type": "authorization_code", "redirect_uri": "http://127.0.0.1/"},
    {"grant_type": "authorization_code", "code": "x"},
    {"grant_type": "refresh_token"},
    {"grant_type": "refresh_token", "refresh_token": ""},
]


@pytest.mark.parametrize("data", TOKEN_MISSING_CASES)
def test_token_missing_parameters(
    server: HubicTestServer, data: dict[str, str]
) -> None:
    assert_error(exchange(server, data), 400, "invalid_request", "missing parameters")


def test_token_without_client_credentials(server: HubicTestServer) -> None:
    response = post_token(server, code_grant(server, "any-code"))

    assert_error(response, 400, "invalid_request", "missing parameters")


def test_token_wrong_secret_in_basic(server: HubicTestServer) -> None:
    response = exchange(
        server, code_grant(server, "any-code"), auth=(server.app.client_id, "wrong")
    )

    assert_error(response, 401, "unauthorized_client", "please verify credentials")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_token_wrong_secret_in_body(server: HubicTestServer) -> None:
    data = code_grant(server, "any-code")
    data.update(client_id=server.app.client_id, client_secret="wrong")
    response = post_token(server, data)

    assert_error(response, 401, "unauthorized_client", "please verify credentials")


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="])
def test_token_malformed_basic_header(server: HubicTestServer, header: str) -> None:
    response = post_token(
        server, code_grant(server, "any-code"), headers={"Authorization": header}
    )

    assert_error(response, 401, "unauthorized_client", "please verify credentials")


def test_token_unknown_client_in_basic(server: HubicTestServer) -> None:
    response = exchange(
        server, code_grant(server, "any-code"), auth=("api_hubic_unknown", "secret")
    )

    assert_error(response, 401, "unauthorized_client", "please verify credentials")


def test_token_unknown_client_in_body(server: HubicTestServer) -> None:
    data = code_grant(server, "any-code")
    data.update(client_id="api_hubic_unknown", client_secret="secret")
    response = post_token(server, data)

    assert_error(response, 401, "unauthorized_client", "please verify credentials")


def test_token_body_client_contradicts_basic(server: HubicTestServer) -> None:
    data = code_grant(server, "any-code")
    data["client_id"] = OTHER_CLIENT_ID

    assert_error(
        exchange(server, data), 401, "unauthorized_client", "please verify credentials"
    )


def test_token_unknown_grant_type(server: HubicTestServer) -> None:
    response = exchange(server, {"grant_type": "password", "username": "x"})

    assert_error(
        response, 400, "invalid_request", "grant type must be set to authorization_code"
    )


def test_token_unknown_code(server: HubicTestServer) -> None:
    response = exchange(server, code_grant(server, "no-such-code"))

    assert_error(response, 400, "invalid_request", "invalid code")


def test_token_code_reuse_revokes_tokens(server: HubicTestServer) -> None:
    data = code_grant(server, get_code(server))
    first = exchange(server, data)
    second = exchange(server, data)
    refresh = exchange(
        server,
        {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
    )

    assert first.status_code == 200
    assert_error(second, 400, "invalid_request", "invalid code")
    assert account_status(server, first.json()["access_token"]) == 403
    assert_error(refresh, 400, "invalid_request", "invalid refresh token")


def test_token_expired_code(server: HubicTestServer, clock: SettableClock) -> None:
    code = get_code(server)
    clock.advance(server.code_lifetime + 1)

    response = exchange(server, code_grant(server, code))

    assert_error(response, 400, "invalid_request", "expired code")


def test_token_code_of_other_client(server: HubicTestServer) -> None:
    code = get_code(server, client_id=OTHER_CLIENT_ID, redirect_uri=OTHER_REDIRECT_URI)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": OTHER_REDIRECT_URI,
    }

    assert_error(exchange(server, data), 400, "invalid_request", "invalid code")


def test_token_code_with_other_redirect_uri(server: HubicTestServer) -> None:
    data = code_grant(server, get_code(server))
    data["redirect_uri"] = "http://127.0.0.1/elsewhere"

    assert_error(
        exchange(server, data), 400, "invalid_request", "please verify redirect uri"
    )


def test_token_unknown_refresh_token(server: HubicTestServer) -> None:
    response = exchange(
        server, {"grant_type": "refresh_token", "refresh_token": "nope"}
    )

    assert_error(response, 400, "invalid_request", "invalid refresh token")


def test_token_refresh_of_other_client(server: HubicTestServer) -> None:
    tokens = exchange(server, code_grant(server, get_code(server))).json()
    response = exchange(
        server,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(OTHER_CLIENT_ID, "other-secret"),
    )

    assert_error(response, 400, "invalid_request", "invalid refresh token")


def test_token_request_invalid_utf8(server: HubicTestServer) -> None:
    response = exchange(
        server,
        b"grant_type=%FF%FE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_error(response, 400, "invalid_request", "missing parameters")


def test_token_get_is_not_allowed(server: HubicTestServer) -> None:
    response = requests.get(f"{server.api_url}/oauth/token/", timeout=30)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"] == "invalid_request"
