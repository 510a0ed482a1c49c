"""Tests for lhubic.connection: settings, storage calls, expiry and threads.

The tests run against the local hubiC service. ``short_server`` is a service
of this module whose access tokens live 2 s and storage tokens 4 s, so that
both expire while a test runs. Tests that expire or revoke tokens register a
user of their own, because the service hands every client of an account the
same storage token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from helpers import (
    FAST_RETRIES,
    QuietHandler,
    StandIn,
    hubic_without_login,
    make_hubic,
    new_user,
    run_in_threads,
)
from swiftclient.exceptions import ClientException

from lhubic import (
    Clock,
    Hubic,
    HubicAccessFailure,
    HubicAuthFailure,
    HubicConfigError,
    HubicInputError,
    HubicInsecureURL,
    HubicObjectNotFound,
    HubicServiceUnavailable,
    HubicTokenFailure,
)
from lhubic.security import check_url, is_loopback_host, redact_url
from lhubic.server.pytest_plugin import HubicTestServer


@pytest.fixture(scope="module")
def short_server() -> Iterator[HubicTestServer]:
    """A service whose access tokens live 2 s and storage tokens 4 s."""
    with HubicTestServer(access_token_lifetime=2, storage_token_lifetime=4) as server:
        yield server


# Settings.


def test_settings_from_environment(
    hubic_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBIC_CLIENT_ID", hubic_server.app.client_id)
    monkeypatch.setenv("HUBIC_CLIENT_SECRET", hubic_server.app.client_secret)
    monkeypatch.setenv("HUBIC_USERNAME", hubic_server.user.login)
    monkeypatch.setenv("HUBIC_PASSWORD", hubic_server.user.password)
    monkeypatch.setenv("HUBIC_API_URL", hubic_server.api_url + "/")

    hubic = Hubic(redirect_uri=hubic_server.app.redirect_uri, **FAST_RETRIES)
    hubic.os_auth()

    assert hubic.client_id == hubic_server.app.client_id
    assert hubic.username == hubic_server.user.login
    assert hubic.api_url == hubic_server.api_url
    assert hubic.os_auth_token


def test_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBIC_CLIENT_ID", "from-environment")
    monkeypatch.setenv("HUBIC_API_URL", "https://env.example")

    hubic = Hubic("from-argument", "secret", refresh_token="r", api_url=None)

    assert hubic.client_id == "from-argument"
    assert hubic.api_url == "https://env.example"


def test_default_api_url() -> None:
    hubic = Hubic("client", "secret", refresh_token="r")

    assert hubic.api_url == "https://api.hubic.com"


def test_missing_client_id_names_fix() -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic(client_secret="secret", refresh_token="r")

    assert "client_id=" in str(caught.value)
    assert "HUBIC_CLIENT_ID" in str(caught.value)
    assert "secret" not in str(caught.value).replace("client secret", "")


def test_missing_client_secret_names_fix() -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", username="u", password="p")

    assert "client_secret=" in str(caught.value)
    assert "HUBIC_CLIENT_SECRET" in str(caught.value)


def test_missing_login_names_both_ways() -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", "secret")

    message = str(caught.value)
    assert "username=" in message
    assert "HUBIC_PASSWORD" in message
    assert "refresh_token=" in message
    assert "HUBIC_REFRESH_TOKEN" in message


def test_username_without_password() -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", "secret", "user@example.com")

    assert "password=" in str(caught.value)
    assert "user@example.com" in str(caught.value)


def test_empty_environment_counts_as_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUBIC_CLIENT_ID", "")

    with pytest.raises(HubicConfigError):
        Hubic(client_secret="secret", refresh_token="r")


def test_refresh_token_alone_is_enough() -> None:
    hubic = Hubic("client", "secret", refresh_token="saved")

    assert hubic.refresh_token == "saved"
    assert hubic.username is None


def test_non_string_secret_rejected() -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", 12345, refresh_token="r")  # type: ignore[arg-type]

    assert "client_secret must be a string" in str(caught.value)
    assert "12345" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.1:8080",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com",
    ],
)
def test_insecure_api_url_rejected(url: str) -> None:
    with pytest.raises(HubicInsecureURL) as caught:
        Hubic("client", "secret", refresh_token="r", api_url=url)

    assert "https" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1",
        "http://127.8.9.10",
        "http://localhost:1",
        "http://[::1]:1",
        "https://api.example.com",
    ],
)
def test_loopback_or_https_api_url_accepted(url: str) -> None:
    hubic = Hubic("client", "secret", refresh_token="r", api_url=url)

    assert hubic.api_url == url


# Each case gives settings that Hubic rejects before sending anything, and the
# fragments that its error message contains.
BAD_SETTING_CASES = [
    *[
        pytest.param({"api_url": url}, ["api_url"], id=f"api-url-{url}")
        for url in ("ftp://api.example.com", "api.example.com", "https://")
    ],
    *[
        pytest.param({option: "x"}, [option], id=f"fixed-{option}")
        for option in ("preauthtoken", "preauthurl", "authurl", "key")
    ],
    pytest.param(
        {"os_options": {"object_storage_url": "https://s/v1/A"}},
        ["object_storage_url"],
        id="storage-url-in-os-options",
    ),
    *[
        pytest.param({"timeout": timeout}, ["timeout"], id=f"timeout-{timeout!r}")
        for timeout in (0, -1, "10", (1, 2, 3), True, float("inf"), float("nan"))
    ],
    pytest.param({"scope": "credentials.read"}, ["credentials.read"], id="scope"),
    pytest.param(
        {"redirect_uri": "localhost:8080"}, ["redirect_uri"], id="redirect-uri"
    ),
    *[
        pytest.param(
            {"api_url": url},
            [f"contains {segment}", "https://api.hubic.com'"],
            id=f"api-url-path-{url}",
        )
        for url, segment in (
            ("https://api.hubic.com/1.0", "/1.0"),
            ("https://api.hubic.com/1.0/", "/1.0"),
            ("http://127.0.0.1:8035/oauth/token", "/oauth"),
        )
    ],
    pytest.param(
        {"clock": 5}, ["clock must be an lhubic.Clock", "got int"], id="clock"
    ),
    pytest.param(
        {"os_options": ["region"]},
        ["os_options must be a dict, got list"],
        id="os-options-list",
    ),
    pytest.param({"retries": -1}, ["retries"], id="negative-retries"),
    *[
        pytest.param({option: value}, [option], id=f"{option}-{value!r}")
        for option, value in (
            ("starting_backoff", -1),
            ("max_backoff", "fast"),
            ("max_backoff", True),
        )
    ],
    *[
        pytest.param({"api_url": url}, [fragment], id=f"api-url-{fragment}")
        for url, fragment in (
            ("https://api.example.com:99999", "invalid port"),
            ("https://api example.com", "whitespace"),
            ("https://api.example.com/\tx", "control character"),
        )
    ],
]


@pytest.mark.parametrize(("options", "fragments"), BAD_SETTING_CASES)
def test_bad_setting_rejected(options: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", "secret", refresh_token="r", **options)

    for fragment in fragments:
        assert fragment in str(caught.value)


def test_api_url_with_password_rejected() -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", "secret", refresh_token="r", api_url="https://u:hunter2@api.x")

    assert "hunter2" not in str(caught.value)


def test_redirect_uri_from_environment(
    hubic_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBIC_REDIRECT_URI", hubic_server.app.redirect_uri)
    hubic = make_hubic(hubic_server, redirect_uri=None)

    hubic.os_auth()

    assert hubic.os_auth_token


def test_bad_redirect_uri_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBIC_REDIRECT_URI", "localhost:8080")

    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", "secret", refresh_token="r")

    assert "HUBIC_REDIRECT_URI" in str(caught.value)
    assert "'localhost:8080'" in str(caught.value)


def test_connection_options_applied() -> None:
    hubic = Hubic(
        "client",
        "secret",
        refresh_token="r",
        retries=2,
        starting_backoff=0.5,
        max_backoff=3,
        timeout=7,
        retry_on_ratelimit=False,
    )

    assert hubic.retries == 2
    assert hubic.starting_backoff == 0.5
    assert hubic.max_backoff == 3
    assert hubic.timeout == 7
    assert hubic.retry_on_ratelimit is False


@pytest.mark.parametrize(
    "token", ["line\nbreak-SECRET", "tab\tSECRET", "caf\u00e9-SECRET", " SECRET"]
)
def test_malformed_refresh_token_rejected(token: str) -> None:
    with pytest.raises(HubicConfigError) as caught:
        Hubic("client", "secret", refresh_token=token)

    assert "refresh_token" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_original_lhubic_session(hubic_server: Any) -> None:
    # Code written for the original lhubic: the first four settings by
    # position, os_auth(), the credentials call and the plain attributes.
    hubic = Hubic(
        hubic_server.app.client_id,
        hubic_server.app.client_secret,
        hubic_server.user.login,
        hubic_server.user.password,
        api_url=hubic_server.api_url,
        redirect_uri=hubic_server.app.redirect_uri,
    )
    hubic.os_auth()
    credentials = hubic.hubic_get("/account/credentials").json()

    assert isinstance(hubic.refresh_token, str)
    assert isinstance(hubic.access_token, str)
    assert hubic.token_type == "Bearer"
    assert isinstance(hubic.token_expire, float)
    assert hubic.token_expire > time.time()
    assert isinstance(hubic.os_token_expire, float)
    assert hubic.os_token_expire > time.time()
    assert hubic.os_storage_url == credentials["endpoint"]
    assert hubic.os_auth_token == credentials["token"]

    later = Hubic(
        hubic_server.app.client_id,
        hubic_server.app.client_secret,
        refresh_token=hubic.refresh_token,
        api_url=hubic_server.api_url,
    )
    later.os_auth()
    _, containers = later.get_account()

    assert "default" in [container["name"] for container in containers]


def test_original_exception_names_catch(hubic_server: Any) -> None:
    # The original lhubic's except clauses still catch the same failures.
    wrong = make_hubic(hubic_server, password="not the password")
    hubic = make_hubic(hubic_server)
    caught: list[str] = []

    try:
        wrong.os_auth()
    except HubicAuthFailure:
        caught.append("auth")
    try:
        hubic.hubic_get("/account/no-such-call")
    except HubicAccessFailure:
        caught.append("access")
    try:
        Hubic(
            hubic_server.app.client_id,
            hubic_server.app.client_secret,
            refresh_token="not-a-refresh-token",
            api_url=hubic_server.api_url,
        ).os_auth()
    except HubicTokenFailure:
        caught.append("token")
    try:
        hubic.get_object("default", "no/such/object")
    except ClientException as error:
        caught.append(f"client {error.http_status}")

    assert caught == ["auth", "access", "token", "client 404"]


def test_refresh_gets_new_access_token(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    hubic.auth()
    old_access = hubic.access_token
    forms = hubic_server.request_count("/oauth/auth")
    grants = hubic_server.request_count("/oauth/token")

    hubic.refresh()

    assert hubic.access_token != old_access
    assert hubic_server.request_count("/oauth/token") == grants + 1
    assert hubic_server.request_count("/oauth/auth") == forms


def test_auth_logs_in_once(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    before = hubic_server.request_count("/oauth/")

    hubic.auth()
    hubic.auth()

    # One login: the form page, the form post and the code exchange.
    assert hubic_server.request_count("/oauth/") == before + 3
    assert hubic.access_token
    assert hubic.os_auth_token is None


def test_original_attributes_before_login() -> None:
    hubic = Hubic("client", "secret", "user@example.com", "password")

    assert hubic.refresh_token is None
    assert hubic.access_token is None
    assert hubic.token_expire is None
    assert hubic.token_type is None
    assert hubic.os_auth_token is None
    assert hubic.os_storage_url is None
    assert hubic.os_token_expire is None


# URL checks.


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("128.0.0.1", False),
        ("example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: str | None, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_check_url_names_url_and_fix() -> None:
    with pytest.raises(HubicInsecureURL) as caught:
        check_url("http://storage.example/v1/A?x=1", name="storage URL", fix="FIX")

    assert "storage URL" in str(caught.value)
    assert "FIX" in str(caught.value)
    assert "x=1" not in str(caught.value)


def test_redact_url_hides_sensitive_values() -> None:
    url = "http://h/oauth/auth/?client_id=app&state=s3cr3t&code=c0de&scope=a.r"

    redacted = redact_url(url)

    assert "s3cr3t" not in redacted
    assert "c0de" not in redacted
    assert "client_id=app" in redacted
    assert "scope=a.r" in redacted


# Storage through swiftclient.


def test_storage_without_os_auth(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    before = hubic_server.request_count("/1.0/account/credentials")

    headers, containers = hubic.get_account()

    assert "x-account-meta-quota" in headers
    assert "default" in [container["name"] for container in containers]
    assert hubic_server.request_count("/1.0/account/credentials") == before + 1
    assert hubic.os_auth_token is not None
    assert hubic.os_token_expire is not None
    assert hubic.os_token_expire > time.time()


def test_get_auth_returns_url_and_token(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)

    storage_url, token = hubic.get_auth()

    assert storage_url == hubic.os_storage_url
    assert storage_url.startswith(hubic_server.swift_url + "/v1/AUTH_")
    assert token == hubic.os_auth_token


def test_os_auth_fetches_credentials(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    hubic.os_auth()
    before = hubic_server.request_count("/1.0/account/credentials")

    hubic.os_auth()
    hubic.head_account()

    assert hubic_server.request_count("/1.0/account/credentials") == before + 1


def test_put_get_head_delete(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    name = f"connection/{secrets.token_hex(4)}.bin"
    data = secrets.token_bytes(3000)

    etag = hubic.put_object("default", name, data)
    _, body = hubic.get_object("default", name)
    head = hubic.head_object("default", name)
    hubic.delete_object("default", name)

    assert etag == hashlib.md5(data).hexdigest()  # noqa: S324 - Swift's ETag
    assert body == data
    assert int(head["content-length"]) == len(data)
    with pytest.raises(HubicObjectNotFound):
        hubic.head_object("default", name)


def test_missing_object_not_found(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)

    with pytest.raises(HubicObjectNotFound) as caught:
        hubic.get_object("default", "no/such/object")

    error = caught.value
    assert isinstance(error, ClientException)
    assert error.http_status == 404
    assert error.container == "default"
    assert error.obj == "no/such/object"
    assert isinstance(error.__cause__, ClientException)
    assert "no/such/object" in str(error)


def test_missing_container_not_found(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)

    with pytest.raises(HubicObjectNotFound) as caught:
        hubic.get_container("no-such-container")

    assert caught.value.container == "no-such-container"
    assert caught.value.obj is None
    assert "container 'no-such-container' not found" in str(caught.value)


def test_put_into_missing_container(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)

    with pytest.raises(HubicObjectNotFound) as caught:
        hubic.put_object("no-such-container", "a", b"data")

    assert caught.value.container == "no-such-container"
    assert caught.value.obj is None


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda hubic: hubic.head_container("has/slash"), "container name"),
        (lambda hubic: hubic.post_container("", {}), "container name"),
        (lambda hubic: hubic.delete_container(b"bytes"), "container name"),
        (lambda hubic: hubic.head_object("default", "a/../b"), "object name"),
        (lambda hubic: hubic.post_object("default", "nul\x00", {}), "object name"),
        (lambda hubic: hubic.copy_object("default", "a", 5), "copy destination"),
        (lambda hubic: hubic.copy_object("default", "a", "/default"), "names no"),
        (lambda hubic: hubic.copy_object("default", "a", "default/b"), "expected"),
    ],
)
def test_bad_names_rejected_before_sending(
    hubic_server: Any, call: Any, fragment: str
) -> None:
    hubic = make_hubic(hubic_server)
    hubic.head_account()
    before = hubic_server.request_count("/")

    with pytest.raises(HubicInputError) as caught:
        call(hubic)

    assert fragment in str(caught.value)
    assert hubic_server.request_count("/") == before


def test_copy_object_to_destination(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    name = f"copies/{secrets.token_hex(4)}"
    hubic.put_object("default", name, b"original")

    hubic.copy_object("default", name, f"/default/{name}-copy")
    _, body = hubic.get_object("default", f"{name}-copy")

    assert body == b"original"


def test_repr_hides_secrets(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    hubic.os_auth()

    text = repr(hubic)

    for secret in (
        hubic_server.app.client_secret,
        hubic_server.user.password,
        hubic.refresh_token,
        hubic.access_token,
        hubic.os_auth_token,
    ):
        assert secret
        assert secret not in text
    assert repr(hubic.storage_credentials).count(hubic.os_auth_token or "-") == 0


# Each Connection method, called as python-swiftclient users call it.

LISTED_NAMES = ["a.txt", "docs/b.txt", "docs/c.txt", "docs/deep/d.txt", "z.txt"]


@pytest.fixture(scope="module")
def swift_hubic(hubic_server: Any) -> Iterator[Hubic]:
    """One Hubic of the session's test user for the Connection method tests."""
    hubic = make_hubic(hubic_server)
    yield hubic
    hubic.close()


@pytest.fixture
def container(swift_hubic: Hubic) -> Iterator[str]:
    """A new empty container, deleted with its objects after the test."""
    name = f"methods-{secrets.token_hex(4)}"
    swift_hubic.put_container(name)
    yield name
    _, listing = swift_hubic.get_container(name, full_listing=True)
    for entry in listing:
        swift_hubic.delete_object(name, entry["name"])
    swift_hubic.delete_container(name)


@pytest.fixture
def listed(swift_hubic: Hubic, container: str) -> str:
    """The container with the objects of LISTED_NAMES, each containing its name."""
    for name in LISTED_NAMES:
        swift_hubic.put_object(container, name, name.encode())
    return container


def entry_names(listing: list[dict[str, Any]]) -> list[str]:
    return [entry.get("name", entry.get("subdir", "")) for entry in listing]


def test_get_account_lists_containers(
    hubic_server: Any, swift_hubic: Hubic, container: str
) -> None:
    headers, containers = swift_hubic.get_account()

    assert int(headers["x-account-meta-quota"]) == hubic_server.user.quota
    assert int(headers["x-account-container-count"]) >= 2
    assert "default" in entry_names(containers)
    assert container in entry_names(containers)


def test_get_account_prefix_and_marker(swift_hubic: Hubic, container: str) -> None:
    _, by_prefix = swift_hubic.get_account(prefix=container)
    _, after_marker = swift_hubic.get_account(marker=container)

    assert entry_names(by_prefix) == [container]
    assert container not in entry_names(after_marker)


def test_head_account_headers(hubic_server: Any, swift_hubic: Hubic) -> None:
    headers = swift_hubic.head_account()

    assert int(headers["x-account-meta-quota"]) == hubic_server.user.quota
    assert int(headers["x-account-bytes-used"]) >= 0
    assert int(headers["x-account-object-count"]) >= 0


def test_get_container_all_names(swift_hubic: Hubic, listed: str) -> None:
    headers, listing = swift_hubic.get_container(listed)

    assert entry_names(listing) == LISTED_NAMES
    assert int(headers["x-container-object-count"]) == len(LISTED_NAMES)
    assert [entry["bytes"] for entry in listing] == [len(n) for n in LISTED_NAMES]


def test_get_container_delimiter(swift_hubic: Hubic, listed: str) -> None:
    _, listing = swift_hubic.get_container(listed, delimiter="/")

    assert entry_names(listing) == ["a.txt", "docs/", "z.txt"]
    assert listing[1] == {"subdir": "docs/"}


def test_get_container_prefix(swift_hubic: Hubic, listed: str) -> None:
    _, listing = swift_hubic.get_container(listed, prefix="docs/")

    assert entry_names(listing) == ["docs/b.txt", "docs/c.txt", "docs/deep/d.txt"]


def test_get_container_prefix_and_delimiter(swift_hubic: Hubic, listed: str) -> None:
    _, listing = swift_hubic.get_container(listed, prefix="docs/", delimiter="/")

    assert entry_names(listing) == ["docs/b.txt", "docs/c.txt", "docs/deep/"]


def test_get_container_marker(swift_hubic: Hubic, listed: str) -> None:
    _, listing = swift_hubic.get_container(listed, marker="docs/c.txt")

    assert entry_names(listing) == ["docs/deep/d.txt", "z.txt"]


def test_get_container_limit(swift_hubic: Hubic, listed: str) -> None:
    _, listing = swift_hubic.get_container(listed, limit=2)

    assert entry_names(listing) == LISTED_NAMES[:2]


def test_get_container_full_listing_pages(
    swift_hubic: Hubic, listed: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lhubic.connection")

    _, listing = swift_hubic.get_container(listed, limit=2, full_listing=True)

    pages = [
        record.getMessage()
        for record in caplog.records
        if record.name == "lhubic.connection"
        and record.getMessage().startswith("GET ")
        and f"/{listed}?" in record.getMessage()
    ]
    assert entry_names(listing) == LISTED_NAMES
    # Pages of 2, 2 and 1 entries, then an empty page that ends the loop.
    assert len(pages) == 4
    assert "marker=docs/b.txt&" in pages[1]
    assert "marker=docs/deep/d.txt&" in pages[2]


def test_put_container_with_metadata(swift_hubic: Hubic) -> None:
    name = f"methods-{secrets.token_hex(4)}"

    swift_hubic.put_container(name, headers={"X-Container-Meta-Owner": "alice"})
    headers = swift_hubic.head_container(name)
    swift_hubic.delete_container(name)

    assert headers["x-container-meta-owner"] == "alice"
    assert int(headers["x-container-object-count"]) == 0


def test_post_container_sets_metadata(swift_hubic: Hubic, container: str) -> None:
    swift_hubic.post_container(container, {"X-Container-Meta-Color": "blue"})

    headers = swift_hubic.head_container(container)

    assert headers["x-container-meta-color"] == "blue"


def test_head_container_counts(swift_hubic: Hubic, container: str) -> None:
    swift_hubic.put_object(container, "one", b"1" * 10)
    swift_hubic.put_object(container, "two", b"2" * 15)

    headers = swift_hubic.head_container(container)

    assert int(headers["x-container-object-count"]) == 2
    assert int(headers["x-container-bytes-used"]) == 25


def test_delete_container_removes_it(swift_hubic: Hubic) -> None:
    name = f"methods-{secrets.token_hex(4)}"
    swift_hubic.put_container(name)

    swift_hubic.delete_container(name)

    with pytest.raises(HubicObjectNotFound) as caught:
        swift_hubic.head_container(name)
    assert caught.value.container == name


def test_delete_non_empty_container_conflict(
    swift_hubic: Hubic, container: str
) -> None:
    swift_hubic.put_object(container, "keep", b"data")

    with pytest.raises(ClientException) as caught:
        swift_hubic.delete_container(container)

    assert caught.value.http_status == 409
    assert not isinstance(caught.value, HubicObjectNotFound)


def test_put_object_from_file(
    swift_hubic: Hubic, container: str, tmp_path: Any
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"line one\nline two\n")

    with path.open("rb") as file:
        etag = swift_hubic.put_object(
            container, "notes.txt", file, content_type="text/plain"
        )
    headers, body = swift_hubic.get_object(container, "notes.txt")

    assert etag == hashlib.md5(body).hexdigest()  # noqa: S324 - Swift's ETag
    assert body == b"line one\nline two\n"
    assert headers["content-type"] == "text/plain"


def test_put_object_with_metadata(swift_hubic: Hubic, container: str) -> None:
    swift_hubic.put_object(
        container,
        "photo.jpg",
        b"jpeg bytes",
        headers={"X-Object-Meta-Hubiclocallastmodified": "2015-08-24T07:41:33"},
    )

    headers = swift_hubic.head_object(container, "photo.jpg")

    assert headers["x-object-meta-hubiclocallastmodified"] == "2015-08-24T07:41:33"
    assert int(headers["content-length"]) == len(b"jpeg bytes")


def test_get_object_in_chunks(swift_hubic: Hubic, container: str) -> None:
    data = secrets.token_bytes(300_000)
    swift_hubic.put_object(container, "big.bin", data)

    headers, chunks = swift_hubic.get_object(
        container, "big.bin", resp_chunk_size=64 * 1024
    )
    parts = list(chunks)

    assert b"".join(parts) == data
    assert len(parts) == 5
    assert int(headers["content-length"]) == len(data)


def test_head_object_headers(swift_hubic: Hubic, container: str) -> None:
    etag = swift_hubic.put_object(container, "a.txt", b"hello")

    headers = swift_hubic.head_object(container, "a.txt")

    assert headers["etag"] == etag
    assert int(headers["content-length"]) == 5


def test_post_object_sets_metadata(swift_hubic: Hubic, container: str) -> None:
    swift_hubic.put_object(container, "a.txt", b"hello")

    swift_hubic.post_object(container, "a.txt", {"X-Object-Meta-Color": "red"})
    headers, body = swift_hubic.get_object(container, "a.txt")

    assert headers["x-object-meta-color"] == "red"
    assert body == b"hello"


def test_delete_object_removes_it(swift_hubic: Hubic, container: str) -> None:
    swift_hubic.put_object(container, "gone.txt", b"bye")

    swift_hubic.delete_object(container, "gone.txt")

    with pytest.raises(HubicObjectNotFound):
        swift_hubic.get_object(container, "gone.txt")
    with pytest.raises(HubicObjectNotFound):
        swift_hubic.delete_object(container, "gone.txt")


def test_copy_object_between_containers(swift_hubic: Hubic, container: str) -> None:
    swift_hubic.put_object(container, "source.txt", b"copied")
    target = f"methods-{secrets.token_hex(4)}"
    swift_hubic.put_container(target)

    try:
        swift_hubic.copy_object(
            container,
            "source.txt",
            f"/{target}/copy.txt",
            headers={"X-Object-Meta-Copied": "yes"},
        )
        headers, body = swift_hubic.get_object(target, "copy.txt")
    finally:
        swift_hubic.delete_object(target, "copy.txt")
        swift_hubic.delete_container(target)

    assert body == b"copied"
    assert headers["x-object-meta-copied"] == "yes"


# Expiry and re-authentication.


def test_storage_401_fetches_new_credentials(hubic_server: Any) -> None:
    login, password = new_user(hubic_server)
    hubic = make_hubic(hubic_server, username=login, password=password, retries=0)
    hubic.get_account()
    old_token = hubic.os_auth_token
    before = hubic_server.request_count("/1.0/account/credentials")

    hubic_server.expire_storage_tokens()
    hubic.get_account()

    assert hubic_server.request_count("/1.0/account/credentials") == before + 1
    assert hubic.os_auth_token != old_token
    assert hubic.token == hubic.os_auth_token


def test_revoked_tokens_log_in_again(hubic_server: Any) -> None:
    login, password = new_user(hubic_server)
    hubic = make_hubic(hubic_server, username=login, password=password)
    hubic.get_account()
    old_refresh = hubic.refresh_token

    hubic_server.revoke_tokens(login)
    headers, _ = hubic.get_account()

    assert "x-account-meta-quota" in headers
    assert hubic.refresh_token != old_refresh


def test_client_clock_renews_credentials(hubic_server: Any) -> None:
    clock = Clock()
    hubic = make_hubic(hubic_server, clock=clock)
    hubic.head_account()
    old_access = hubic.access_token
    before = hubic_server.request_count("/1.0/account/credentials")

    clock.advance(25 * 3600)
    hubic.head_account()
    hubic.head_account()

    # The service hands back its current token, whose stated expiry is in
    # this client's past; the minimum reuse time stops a second fetch.
    assert hubic_server.request_count("/1.0/account/credentials") == before + 1
    assert hubic.access_token != old_access


def test_both_expiries_during_use(short_server: HubicTestServer) -> None:
    login, password = new_user(short_server)
    hubic = make_hubic(short_server, username=login, password=password)
    hubic.os_auth()
    first_access = hubic.access_token
    first_storage = hubic.os_auth_token
    refreshes = short_server.request_count("/oauth/token")
    fetches = short_server.request_count("/1.0/account/credentials")

    deadline = time.monotonic() + 5.5
    calls = 0
    while time.monotonic() < deadline:
        hubic.head_account()
        hubic.hubic_get("/account/usage")
        calls += 1
        time.sleep(0.1)

    assert calls > 20
    assert short_server.request_count("/oauth/token") - refreshes >= 2
    assert short_server.request_count("/1.0/account/credentials") - fetches >= 1
    assert hubic.access_token != first_access
    assert hubic.os_auth_token != first_storage


def test_eight_threads_one_fetch_on_401(hubic_server: Any) -> None:
    login, password = new_user(hubic_server)
    hubic = make_hubic(hubic_server, username=login, password=password)
    hubic.os_auth()
    old_token = hubic.os_auth_token
    hubic_server.expire_storage_tokens()
    before = hubic_server.request_count("/1.0/account/credentials")
    tokens: dict[int, str | None] = {}

    def work(index: int) -> None:
        hubic.head_account()
        tokens[index] = hubic.token

    errors = run_in_threads(8, work)

    assert errors == []
    assert hubic_server.request_count("/1.0/account/credentials") == before + 1
    assert hubic.os_auth_token != old_token
    assert set(tokens.values()) == {hubic.os_auth_token}


def test_eight_threads_through_natural_expiry(short_server: HubicTestServer) -> None:
    login, password = new_user(short_server)
    hubic = make_hubic(short_server, username=login, password=password)
    hubic.os_auth()
    first_token = hubic.os_auth_token
    before = short_server.request_count("/1.0/account/credentials")
    deadline = time.monotonic() + 5.5
    last_tokens: dict[int, str | None] = {}
    calls: list[int] = []

    def work(index: int) -> None:
        while time.monotonic() < deadline:
            hubic.head_account()
            calls.append(index)
            time.sleep(0.05)
        last_tokens[index] = hubic.token

    errors = run_in_threads(8, work)
    fetches = short_server.request_count("/1.0/account/credentials") - before

    assert errors == []
    assert len(calls) > 100
    assert set(last_tokens.values()) == {hubic.os_auth_token}
    assert hubic.os_auth_token != first_token
    # The token lives 4 s and the threads run 5.5 s: one expiry, one fetch.
    assert fetches == 1


def test_eight_threads_one_access_refresh(hubic_server: Any) -> None:
    login, password = new_user(hubic_server)
    hubic = make_hubic(hubic_server, username=login, password=password)
    hubic.hubic_get("/account")
    old_access = hubic.access_token
    hubic_server.expire_access_tokens(login)
    grants = hubic_server.request_count("/oauth/token")
    forms = hubic_server.request_count("/oauth/auth")
    emails: dict[int, str] = {}

    def work(index: int) -> None:
        emails[index] = hubic.hubic_get("/account").json()["email"]

    errors = run_in_threads(8, work)

    assert errors == []
    assert set(emails.values()) == {login}
    assert len(emails) == 8
    assert hubic_server.request_count("/oauth/token") == grants + 1
    assert hubic_server.request_count("/oauth/auth") == forms
    assert hubic.access_token != old_access


def test_threads_keep_own_connections(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    prefix = f"threads/{secrets.token_hex(4)}"
    connections: dict[int, int] = {}

    def work(index: int) -> None:
        for round_number in range(4):
            name = f"{prefix}/{index}-{round_number}"
            data = secrets.token_bytes(1000 + index * 100 + round_number)
            hubic.put_object("default", name, data)
            _, body = hubic.get_object("default", name)
            assert body == data
        connections[index] = id(hubic.http_conn)

    errors = run_in_threads(8, work)
    _, listing = hubic.get_container("default", prefix=prefix + "/")

    assert errors == []
    assert len(set(connections.values())) == 8
    assert len(listing) == 32


def test_close_closes_this_thread_only(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    hubic.head_account()
    other: dict[str, Any] = {}

    def in_thread() -> None:
        hubic.head_account()
        other["before"] = hubic.http_conn
        hubic.close()
        other["after"] = hubic.http_conn

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()

    assert other["before"] is not None
    assert other["after"] is None
    assert hubic.http_conn is not None


def test_close_closes_ended_threads(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server)
    opened: dict[str, Any] = {}

    def in_thread() -> None:
        hubic.head_account()
        hubic.hubic_get("/account/usage")
        opened["storage"] = hubic.http_conn[1].request_session
        opened["rest"] = hubic._session()

    def pools(session: Any) -> int:
        return len(session.get_adapter("http://").poolmanager.pools)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert pools(opened["storage"]) == 1
    assert pools(opened["rest"]) == 1

    hubic.close()

    assert pools(opened["storage"]) == 0
    assert pools(opened["rest"]) == 0


def test_http_connection_rejects_insecure_url() -> None:
    hubic = Hubic("client", "secret", refresh_token="r")

    with pytest.raises(HubicInsecureURL):
        hubic.http_connection("http://storage.example.com/v1/AUTH_x")


def test_timeout_reaches_storage_connection(hubic_server: Any) -> None:
    hubic = make_hubic(hubic_server, timeout=9)
    hubic.head_account()

    assert hubic.http_conn[1].requests_args["timeout"] == 9


# A storage URL that the local service cannot be made to return.


class CredentialsStandIn(StandIn):
    """An API on 127.0.0.1 that grants any refresh token and returns ``endpoint``."""

    def __init__(self, endpoint: str) -> None:
        self.requests: list[str] = []
        outer = self

        class RequestHandler(QuietHandler):
            def do_POST(self) -> None:
                outer.requests.append(self.path)
                self.read_body()
                self.send_json({"access_token": "a", "expires_in": 3600})

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                expires = "2099-01-01T00:00:00+01:00"
                self.send_json({"token": "t", "endpoint": endpoint, "expires": expires})

        super().__init__(RequestHandler)


@pytest.fixture
def insecure_endpoint_api() -> Iterator[CredentialsStandIn]:
    with CredentialsStandIn("http://storage.example.com/v1/AUTH_abc") as stand_in:
        yield stand_in


def test_insecure_storage_url_rejected(
    insecure_endpoint_api: CredentialsStandIn,
) -> None:
    hubic = Hubic(
        "client", "secret", refresh_token="r", api_url=insecure_endpoint_api.url
    )

    with pytest.raises(HubicInsecureURL) as caught:
        hubic.get_account()

    assert "storage.example.com" in str(caught.value)
    assert hubic.url is None
    assert hubic.os_auth_token is None
    assert insecure_endpoint_api.requests[-1] == "/1.0/account/credentials"


class BrokenStorage(StandIn):
    """A storage stand-in on 127.0.0.1 that cuts every response body short."""

    def __init__(self) -> None:
        self.requests = 0
        outer = self

        class RequestHandler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'[{"name": "cut')
                self.close_connection = True

        super().__init__(RequestHandler)


def test_broken_body_retried_then_unavailable() -> None:
    with (
        BrokenStorage() as storage,
        CredentialsStandIn(f"{storage.url}/v1/AUTH_abc") as api,
    ):
        hubic = Hubic(
            "client",
            "secret",
            refresh_token="r",
            api_url=api.url,
            retries=2,
            starting_backoff=0.01,
        )
        with pytest.raises(HubicServiceUnavailable) as caught:
            hubic.get_container("default")

    assert storage.requests == 3
    assert "get_container" in str(caught.value)
    assert "3 attempts" in str(caught.value)


def test_refused_storage_connection_unavailable() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()
    with CredentialsStandIn(f"http://127.0.0.1:{closed_port}/v1/AUTH_abc") as api:
        hubic = Hubic(
            "client",
            "secret",
            refresh_token="r",
            api_url=api.url,
            retries=1,
            starting_backoff=0.01,
        )
        with pytest.raises(HubicServiceUnavailable) as caught:
            hubic.head_account()

    assert "head_account" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


# The token store.


def test_token_store_saves_and_restores(hubic_server: Any, tmp_path: Any) -> None:
    path = tmp_path / "tokens.json"
    first = make_hubic(hubic_server, token_store=str(path))
    first.get_account()

    record = json.loads(path.read_text())
    mode = stat.S_IMODE(os.stat(path).st_mode)
    logins = hubic_server.request_count("/oauth/")
    fetches = hubic_server.request_count("/1.0/account/credentials")

    second = hubic_without_login(hubic_server, token_store=path)
    second.get_account()

    assert mode == 0o600
    assert record["refresh_token"] == first.refresh_token
    assert record["storage_token"] == first.os_auth_token
    assert record["client_id"] == hubic_server.app.client_id
    assert second.refresh_token == first.refresh_token
    assert hubic_server.request_count("/oauth/") == logins
    assert hubic_server.request_count("/1.0/account/credentials") == fetches


def test_token_store_of_other_client_ignored(hubic_server: Any, tmp_path: Any) -> None:
    path = tmp_path / "tokens.json"
    make_hubic(hubic_server, token_store=path).head_account()

    with pytest.raises(HubicConfigError):
        Hubic(
            "api_hubic_other_client",
            "secret",
            api_url=hubic_server.api_url,
            token_store=path,
        )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("access_token", "bad\r\nX-Injected: 1"),
        ("storage_token", "bad token"),
        ("storage_url", "http://storage.example.com/v1/AUTH_x"),
        ("access_token_expires", "yesterday"),
    ],
)
def test_malformed_stored_tokens_ignored(
    hubic_server: Any, tmp_path: Any, key: str, value: str
) -> None:
    path = tmp_path / "tokens.json"
    make_hubic(hubic_server, token_store=path).head_account()
    record = json.loads(path.read_text())
    record[key] = value
    path.write_text(json.dumps(record))

    hubic = make_hubic(hubic_server, token_store=path)
    hubic.head_account()
    hubic.hubic_get("/account")

    assert hubic.access_token != value
    assert hubic.os_auth_token != value
    assert hubic.os_storage_url != value


def test_expired_stored_tokens_renewed(hubic_server: Any, tmp_path: Any) -> None:
    path = tmp_path / "tokens.json"
    make_hubic(hubic_server, token_store=path).head_account()
    record = json.loads(path.read_text())
    record["access_token_expires"] = "2000-01-01T00:00:00+00:00"
    record["storage_token_expires"] = "2000-01-01T00:00:00+01:00"
    path.write_text(json.dumps(record))

    hubic = hubic_without_login(hubic_server, token_store=path)

    assert hubic.access_token is None
    assert hubic.os_auth_token is None
    hubic.head_account()
    assert hubic.os_auth_token


# Proxy settings from the environment.


class ProxyRecorder(StandIn):
    """An HTTP proxy stand-in on 127.0.0.1 that responds to HEAD itself.

    It records each request line, which contains the absolute URL when a
    client sends the request through a proxy, and adds
    ``X-Answered-By: proxy`` to its responses.
    """

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        outer = self

        class RequestHandler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                outer.request_lines.append(self.requestline)
                self.send_response(204)
                self.send_header("X-Answered-By", "proxy")
                self.end_headers()

        super().__init__(RequestHandler)


@pytest.fixture
def proxy_recorder() -> Iterator[ProxyRecorder]:
    with ProxyRecorder() as recorder:
        yield recorder


def test_storage_calls_use_proxy_from_environment(
    hubic_server: Any, proxy_recorder: ProxyRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    hubic = make_hubic(hubic_server)
    storage_url, _ = hubic.get_auth()
    monkeypatch.setenv("HTTP_PROXY", proxy_recorder.url)

    headers = hubic.head_account()

    assert headers["x-answered-by"] == "proxy"
    assert proxy_recorder.request_lines == [f"HEAD {storage_url} HTTP/1.1"]


def test_storage_calls_skip_proxy_for_no_proxy_hosts(
    hubic_server: Any, proxy_recorder: ProxyRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    hubic = make_hubic(hubic_server)
    hubic.get_auth()
    monkeypatch.setenv("HTTP_PROXY", proxy_recorder.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    headers = hubic.head_account()

    assert "x-answered-by" not in headers
    assert "x-account-container-count" in headers
    assert proxy_recorder.request_lines == []


def test_proxy_settings_read_once_per_storage_connection(
    hubic_server: Any, proxy_recorder: ProxyRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    hubic = make_hubic(hubic_server)
    hubic.head_account()
    monkeypatch.setenv("HTTP_PROXY", proxy_recorder.url)

    same_connection = hubic.head_account()
    hubic.close()
    reopened = hubic.head_account()

    assert "x-answered-by" not in same_connection
    assert reopened["x-answered-by"] == "proxy"
    assert len(proxy_recorder.request_lines) == 1
