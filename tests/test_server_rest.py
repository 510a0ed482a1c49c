"""The /1.0 REST API of the local service and its Swift storage, over HTTP."""

from __future__ import annotations

import hashlib
import http.client
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
import swiftclient.client
from helpers import (
    SettableClock,
    put_dynamic_large_object,
    put_static_large_object,
)
from swiftclient.exceptions import ClientException

from lhubic.server.pytest_plugin import HubicTestServer

JSON_TYPE = "application/json; charset=utf8"
PARIS = ZoneInfo("Europe/Paris")
STORAGE_TOKEN_LIFETIME = 7200
SECOND_LOGIN = "second@example.com"


@pytest.fixture(scope="module")
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture(scope="module")
def server(clock: SettableClock) -> Iterator[HubicTestServer]:
    with HubicTestServer(
        clock=clock, storage_token_lifetime=STORAGE_TOKEN_LIFETIME
    ) as server:
        server.add_user(SECOND_LOGIN, "second password", quota=10**9)
        yield server


@pytest.fixture
def token(server: HubicTestServer) -> str:
    """Return a fresh access token: some tests expire the user's tokens."""
    access_token: str = server.authorize()["access_token"]
    return access_token


@pytest.fixture(scope="module")
def storage(server: HubicTestServer) -> swiftclient.client.Connection:
    access_token = server.authorize()["access_token"]
    credentials = call(server, access_token, "GET", "account/credentials").json()
    return swiftclient.client.Connection(
        preauthurl=credentials["endpoint"],
        preauthtoken=credentials["token"],
        retries=0,
    )


def call(
    server: HubicTestServer,
    token: str | None,
    method: str,
    path: str,
    **kwargs: object,
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.request(
        method,
        f"{server.api_url}/1.0/{path}",
        headers=headers,
        timeout=30,
        **kwargs,  # type: ignore[arg-type]
    )


def assert_error(
    response: requests.Response, status: int, error: str, text: str
) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == {"error": error, "error_description": text}


def link_fields(**overrides: str | None) -> dict[str, str]:
    fields: dict[str, str | None] = {
        "comment": "holiday",
        "container": "default",
        "mode": "ro",
        "ttl": "5",
        "type": "file",
        "uri": "/shared/photo.jpg",
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


# /1.0/account and /1.0/account/usage


def test_account_fields(server: HubicTestServer, token: str) -> None:
    response = call(server, token, "GET", "account")
    body = response.json()

    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert body["email"] == server.user.login
    assert body["firstname"] == "Test"
    assert body["lastname"] == "User"
    assert body["activated"] is True
    assert body["status"] == "ok"
    assert body["offer"] == "25g"
    assert body["language"] == "en"
    assert datetime.fromisoformat(body["creationDate"]).utcoffset() is not None


def test_account_path_with_trailing_slash(server: HubicTestServer, token: str) -> None:
    assert call(server, token, "GET", "account/").status_code == 200


def test_usage_counts_exact_bytes(
    server: HubicTestServer, token: str, storage: swiftclient.client.Connection
) -> None:
    before = call(server, token, "GET", "account/usage").json()
    storage.put_object("default", "usage/one.bin", b"x" * 12345)
    storage.put_container("other")
    storage.put_object("other", "two.bin", b"y" * 655)
    after = call(server, token, "GET", "account/usage").json()

    assert before["quota"] == server.user.quota
    assert after["quota"] == server.user.quota
    assert after["used"] - before["used"] == 12345 + 655


# /1.0/account/credentials and Swift


def test_credentials_fields(server: HubicTestServer, token: str) -> None:
    response = call(server, token, "GET", "account/credentials")
    body = response.json()
    expires = datetime.fromisoformat(body["expires"])
    expected = datetime.now(timezone.utc) + timedelta(seconds=STORAGE_TOKEN_LIFETIME)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert set(body) == {"token", "endpoint", "expires"}
    assert re.fullmatch(
        re.escape(server.swift_url) + r"/v1/AUTH_[0-9a-f]{32}", body["endpoint"]
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", body["expires"])
    assert expires.utcoffset() == expires.astimezone(PARIS).utcoffset()
    assert abs((expires - expected).total_seconds()) < 60


def test_credentials_reuse_valid_token(server: HubicTestServer, token: str) -> None:
    first = call(server, token, "GET", "account/credentials").json()
    second = call(server, token, "GET", "account/credentials").json()

    assert second["token"] == first["token"]
    assert second["endpoint"] == first["endpoint"]


def test_account_name_stable_across_logins(server: HubicTestServer, token: str) -> None:
    other_token = server.authorize()["access_token"]
    first = call(server, token, "GET", "account/credentials").json()
    second = call(server, other_token, "GET", "account/credentials").json()

    assert second["endpoint"] == first["endpoint"]


def test_users_have_separate_accounts(server: HubicTestServer, token: str) -> None:
    other = server.authorize(login=SECOND_LOGIN, password="second password")
    mine = call(server, token, "GET", "account/credentials").json()
    theirs = call(server, other["access_token"], "GET", "account/credentials").json()
    usage = call(server, other["access_token"], "GET", "account/usage").json()

    assert theirs["endpoint"] != mine["endpoint"]
    assert theirs["token"] != mine["token"]
    assert usage == {"quota": 10**9, "used": 0}


def test_swiftclient_stores_lists_and_reads(
    storage: swiftclient.client.Connection,
) -> None:
    storage.put_object("default", "docs/a.txt", b"first", content_type="text/plain")
    storage.put_object("default", "docs/b.txt", b"second")
    _, listing = storage.get_container("default", prefix="docs/")
    headers, body = storage.get_object("default", "docs/a.txt")

    assert [entry["name"] for entry in listing] == ["docs/a.txt", "docs/b.txt"]
    assert body == b"first"
    assert headers["content-type"] == "text/plain"


def test_swiftclient_static_large_object(
    storage: swiftclient.client.Connection,
) -> None:
    segments = [b"a" * 1024, b"b" * 1024, b"c" * 10]
    put_static_large_object(storage, "default", "big.bin", segments)

    headers, body = storage.get_object("default", "big.bin")
    content_md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()

    assert body == b"".join(segments)
    assert headers["x-static-large-object"] == "True"
    assert headers["etag"].strip('"') != content_md5


def test_swiftclient_dynamic_large_object(
    storage: swiftclient.client.Connection,
) -> None:
    segments = [b"first-", b"second-", b"third"]
    put_dynamic_large_object(storage, "default", "dlo.txt", segments)

    headers, body = storage.get_object("default", "dlo.txt")

    assert body == b"first-second-third"
    assert headers["x-object-manifest"] == "default_segments/dlo.txt/part/"


def test_object_over_5_gib_gets_413(storage: swiftclient.client.Connection) -> None:
    parts = urlsplit(storage.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    # Swift checks Content-Length before reading the body, so none is sent.
    try:
        connection.putrequest("PUT", f"{parts.path}/default/too-big.bin")
        connection.putheader("X-Auth-Token", storage.token)
        connection.putheader("Content-Length", str(5 * 2**30 + 3))
        connection.endheaders()
        status = connection.getresponse().status
    finally:
        connection.close()

    assert status == 413


def test_account_has_default_container_and_quota(
    server: HubicTestServer, storage: swiftclient.client.Connection
) -> None:
    headers, containers = storage.get_account()

    assert "default" in [container["name"] for container in containers]
    assert headers["x-account-meta-quota"] == str(server.user.quota)


def test_storage_token_rejected_on_other_account(
    server: HubicTestServer, token: str
) -> None:
    other = server.authorize(login=SECOND_LOGIN, password="second password")
    mine = call(server, token, "GET", "account/credentials").json()
    theirs = call(server, other["access_token"], "GET", "account/credentials").json()
    connection = swiftclient.client.Connection(
        preauthurl=theirs["endpoint"], preauthtoken=mine["token"], retries=0
    )

    with pytest.raises(ClientException) as caught:
        connection.get_account()
    assert caught.value.http_status == 403


def test_storage_token_ends_at_announced_expiry() -> None:
    with HubicTestServer(object_server="memory", storage_token_lifetime=2) as server:
        access_token = server.authorize()["access_token"]
        first = call(server, access_token, "GET", "account/credentials").json()
        connection = swiftclient.client.Connection(
            preauthurl=first["endpoint"], preauthtoken=first["token"], retries=0
        )
        connection.head_account()
        expires = datetime.fromisoformat(first["expires"])

        # `expires` has whole seconds, cut down, so it is never later than the
        # token's real end; one more second passes that end.
        time.sleep(max(0.0, expires.timestamp() - time.time()) + 1)
        with pytest.raises(ClientException) as caught:
            connection.head_account()
        second = call(server, access_token, "GET", "account/credentials").json()

    assert caught.value.http_status == 401
    assert second["token"] != first["token"]
    assert datetime.fromisoformat(second["expires"]) > expires


# Scopes and access tokens.

SCOPE_CASES = [
    ("GET", "account", "usage.r"),
    ("GET", "account/usage", "account.r"),
    ("GET", "account/credentials", "usage.r,account.r"),
    ("GET", "account/getAllLinks", "links.rwd"),
    ("POST", "account/links", "links.rd,getAllLinks.r"),
    ("DELETE", "account/links/shared/photo.jpg", "links.rw"),
]


@pytest.mark.parametrize(("method", "path", "scope"), SCOPE_CASES)
def test_scope_is_enforced(
    server: HubicTestServer, method: str, path: str, scope: str
) -> None:
    narrow = server.authorize(scope)["access_token"]

    response = call(server, narrow, method, path, data=link_fields())

    assert_error(response, 400, "insufficient_scope", "this scope is insufficient")


def test_missing_authorization_header(server: HubicTestServer) -> None:
    response = call(server, None, "GET", "account")

    assert_error(response, 401, "invalid_token", "not found")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "token"])
def test_malformed_authorization_header(server: HubicTestServer, header: str) -> None:
    response = requests.get(
        f"{server.api_url}/1.0/account", headers={"Authorization": header}, timeout=30
    )

    assert_error(response, 401, "invalid_token", "not found")


def test_unknown_access_token(server: HubicTestServer) -> None:
    assert_error(
        call(server, "not-a-token", "GET", "account"), 401, "invalid_token", "not found"
    )


def test_access_token_expires_with_time(
    server: HubicTestServer, clock: SettableClock
) -> None:
    short_lived = server.authorize()["access_token"]
    clock.advance(server.access_token_lifetime + 1)

    response = call(server, short_lived, "GET", "account")

    assert_error(response, 401, "invalid_token", "expired")


def test_expire_access_tokens_of_one_user(server: HubicTestServer) -> None:
    mine = server.authorize()["access_token"]
    theirs = server.authorize(login=SECOND_LOGIN, password="second password")

    server.expire_access_tokens(server.user.login)

    assert_error(call(server, mine, "GET", "account"), 401, "invalid_token", "expired")
    assert call(server, theirs["access_token"], "GET", "account").status_code == 200


@pytest.mark.parametrize(
    ("remove", "description"),
    [("delete_user", "deleted"), ("revoke_tokens", "revoked")],
)
def test_removed_user_tokens_get_403(
    server: HubicTestServer, remove: str, description: str
) -> None:
    login = f"{description}@example.com"
    password = f"{description} password"
    server.add_user(login, password)
    tokens = server.authorize(login=login, password=password)

    getattr(server, remove)(login)
    response = call(server, tokens["access_token"], "GET", "account")

    assert_error(response, 403, "invalid_token", description)


def test_unknown_path_gets_json_404(server: HubicTestServer, token: str) -> None:
    response = call(server, token, "GET", "account/nothing-here")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json()["error"] == "not_found"


def test_wrong_method_gets_405(server: HubicTestServer, token: str) -> None:
    response = call(server, token, "PUT", "account/usage")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.json()["error"] == "invalid_request"


# Shared links.


@pytest.fixture(scope="module")
def shared_files(storage: swiftclient.client.Connection) -> None:
    storage.put_object("default", "shared/photo.jpg", b"jpeg bytes")
    storage.put_object("default", "shared/album/one.jpg", b"1")
    storage.put_object("default", "shared/album/two.jpg", b"2")


def test_create_file_link(
    server: HubicTestServer, token: str, shared_files: None
) -> None:
    response = call(server, token, "POST", "account/links", data=link_fields())
    link = response.json()
    created = datetime.fromisoformat(link["creationDate"])
    expires = datetime.fromisoformat(link["expirationDate"])

    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert link["uri"] == "/shared/photo.jpg"
    assert link["type"] == "file"
    assert link["comment"] == "holiday"
    assert expires - created == timedelta(days=5)
    assert link["indirectUrl"].startswith(f"{server.api_url}/link/")


def test_file_link_serves_content(
    server: HubicTestServer, token: str, shared_files: None
) -> None:
    link = call(server, token, "POST", "account/links", data=link_fields()).json()

    response = requests.get(link["indirectUrl"], timeout=30)

    assert response.status_code == 200
    assert response.content == b"jpeg bytes"


def test_folder_link_lists_files(
    server: HubicTestServer, token: str, shared_files: None
) -> None:
    fields = link_fields(type="dir", uri="/shared/album")
    link = call(server, token, "POST", "account/links", data=fields).json()

    response = requests.get(link["indirectUrl"], timeout=30)

    assert link["type"] == "dir"
    assert response.json()["files"] == ["shared/album/one.jpg", "shared/album/two.jpg"]


def test_get_all_links_lists_created(
    server: HubicTestServer, token: str, shared_files: None
) -> None:
    fields = link_fields(uri="/shared/album/one.jpg", comment="one")
    call(server, token, "POST", "account/links", data=fields)

    links = call(server, token, "GET", "account/getAllLinks").json()
    mine = [link for link in links if link["uri"] == "/shared/album/one.jpg"]

    assert len(mine) == 1
    assert set(mine[0]) >= {
        "type",
        "indirectUrl",
        "uri",
        "comment",
        "creationDate",
        "expirationDate",
    }
    assert mine[0]["comment"] == "one"


def test_delete_link_removes_it(
    server: HubicTestServer, token: str, shared_files: None
) -> None:
    fields = link_fields(uri="/shared/album/two.jpg")
    link = call(server, token, "POST", "account/links", data=fields).json()

    deleted = call(server, token, "DELETE", "account/links/shared/album/two.jpg")
    again = call(server, token, "DELETE", "account/links/shared/album/two.jpg")
    uris = [
        item["uri"] for item in call(server, token, "GET", "account/getAllLinks").json()
    ]

    assert deleted.status_code == 200
    assert deleted.json()["uri"] == "/shared/album/two.jpg"
    assert again.status_code == 404
    assert "/shared/album/two.jpg" not in uris
    assert requests.get(link["indirectUrl"], timeout=30).status_code == 404


def test_delete_link_by_query(
    server: HubicTestServer, token: str, shared_files: None
) -> None:
    call(server, token, "POST", "account/links", data=link_fields())

    response = call(
        server, token, "DELETE", "account/links", params={"uri": "/shared/photo.jpg"}
    )

    assert response.status_code == 200


def test_link_expires_after_ttl(
    server: HubicTestServer, clock: SettableClock, shared_files: None
) -> None:
    fields = link_fields(ttl="1", uri="/shared/album/one.jpg")
    token = server.authorize()["access_token"]
    link = call(server, token, "POST", "account/links", data=fields).json()
    clock.advance(86400 + 1)
    token = server.authorize()["access_token"]

    links = call(server, token, "GET", "account/getAllLinks").json()

    assert link["indirectUrl"] not in [item["indirectUrl"] for item in links]
    assert requests.get(link["indirectUrl"], timeout=30).status_code == 404


@pytest.mark.parametrize("missing", ["container", "mode", "ttl", "type", "uri"])
def test_link_missing_field(
    server: HubicTestServer, token: str, shared_files: None, missing: str
) -> None:
    fields = link_fields(**{missing: None})

    response = call(server, token, "POST", "account/links", data=fields)

    assert_error(response, 400, "invalid_request", "missing arguments")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("container", "default"),
        ("uri", "/shared/album/one.jpg"),
        ("ttl", "5"),
        ("mode", "ro"),
        ("type", "file"),
        ("comment", "twice"),
    ],
)
def test_link_repeated_field(
    server: HubicTestServer, token: str, shared_files: None, name: str, value: str
) -> None:
    fields = [*link_fields().items(), (name, value)]

    response = call(server, token, "POST", "account/links", data=fields)

    assert_error(response, 400, "invalid_request", f"repeated argument {name}")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"container": "default", "uri": "/x"}'),
        ("text/plain", b"container=default&mode=ro&ttl=5&type=file&uri=/x"),
        ("application/x-www-form-urlencoded", b"container=%FF%FE"),
    ],
)
def test_link_non_form_body(
    server: HubicTestServer, token: str, content_type: str, body: bytes
) -> None:
    response = requests.post(
        f"{server.api_url}/1.0/account/links",
        data=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
        timeout=30,
    )

    assert_error(response, 400, "invalid_request", "missing arguments")


def test_delete_link_repeated_query(server: HubicTestServer, token: str) -> None:
    response = call(
        server,
        token,
        "DELETE",
        "account/links",
        params=[("uri", "/shared/photo.jpg"), ("uri", "/other")],
    )

    assert_error(response, 400, "invalid_request", "repeated argument uri")


INVALID_LINK_CASES = [
    ({"mode": "rw"}, "mode must be ro"),
    ({"ttl": "2"}, "ttl must be one of 1, 5, 10, 15, 20, 25, 30 (days)"),
    ({"ttl": "five"}, "ttl must be one of 1, 5, 10, 15, 20, 25, 30 (days)"),
    ({"type": "folder"}, "type must be file or dir"),
    (
        {"uri": "shared/photo.jpg"},
        "uri must be a path in the container starting with /",
    ),
    ({"container": "a/b"}, "container must be a container name without /"),
    (
        {"uri": "/a\x00b"},
        "container and uri must not contain a NUL character",
    ),
    (
        {"container": "de\x00fault"},
        "container and uri must not contain a NUL character",
    ),
]


@pytest.mark.parametrize(("overrides", "description"), INVALID_LINK_CASES)
def test_link_invalid_field(
    server: HubicTestServer,
    token: str,
    shared_files: None,
    overrides: dict[str, str],
    description: str,
) -> None:
    response = call(
        server, token, "POST", "account/links", data=link_fields(**overrides)
    )

    assert_error(response, 400, "invalid_request", description)


def test_link_to_missing_file(server: HubicTestServer, token: str) -> None:
    response = call(
        server, token, "POST", "account/links", data=link_fields(uri="/no/such.file")
    )

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_unknown_link_page(server: HubicTestServer) -> None:
    assert requests.get(f"{server.api_url}/link/unknown", timeout=30).status_code == 404
