"""Secrets never reach a log line, an exception message or a repr.

The main test runs a whole session against the local hubiC service with
DEBUG logging captured on the root logger: a password login, storage and
REST calls through a token store, token refreshes and re-authentication, and
failures. It then searches every captured line, exception text and repr for
each secret and for its first 12 characters, because swiftclient logs token
prefixes.

Plain HTTP to a remote host is tested in tests/test_connection.py, and REST
redirects that leave the API's host in tests/test_rest.py. Redirects from the
token endpoint are tested here.
"""

from __future__ import annotations

import logging
import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import QuietHandler, StandIn, make_hubic, new_user

from lhubic import (
    Hubic,
    HubicClientRejected,
    HubicError,
    HubicInvalidLogin,
    HubicObjectNotFound,
    HubicRateLimited,
    HubicServiceUnavailable,
    HubicTokenFailure,
    HubicTokenRevoked,
)
from lhubic.security import SecretFilter, install_secret_filter, redact_text
from lhubic.server.faults import Faults
from lhubic.store import FileTokenStore

PREFIX_LENGTH = 12


class SecretCollector:
    """The secrets a session used, and the texts it produced."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.texts: list[str] = []

    def add_tokens(self, hubic: Hubic) -> None:
        for token in (hubic.refresh_token, hubic.access_token, hubic.os_auth_token):
            if token:
                self.secrets.add(token)
        self.texts.append(repr(hubic))
        self.texts.append(repr(hubic.access_credentials))
        self.texts.append(repr(hubic.storage_credentials))

    def add_error(self, error: BaseException) -> None:
        current: BaseException | None = error
        while current is not None:
            self.texts.append(str(current))
            self.texts.append(repr(current))
            current = current.__cause__ or current.__context__


def test_whole_session_leaks_nothing(
    hubic_server: Any,
    hubic_faults: Faults,
    caplog: pytest.LogCaptureFixture,
    tmp_path: pathlib.Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    collected = SecretCollector()
    login, password = new_user(hubic_server, "secrets")
    collected.secrets.update({password, hubic_server.app.client_secret})

    def make(**options: Any) -> Hubic:
        settings = {"username": login, "password": password, **options}
        return make_hubic(hubic_server, **settings)

    # A password login, then storage and REST calls, with tokens saved.
    store_path = tmp_path / "tokens.json"
    hubic = make(token_store=store_path)
    hubic.put_object("default", "secrets/a.txt", b"alpha")
    hubic.get_object("default", "secrets/a.txt")
    hubic.get_container("default", prefix="secrets/", delimiter="/")
    hubic.hubic_get("/account/usage")
    hubic.hubic_post(
        "/account/links",
        {
            "comment": "c",
            "container": "default",
            "mode": "ro",
            "ttl": "1",
            "type": "file",
            "uri": "/secrets/a.txt",
        },
    )
    hubic.hubic_get("/account/getAllLinks")
    collected.add_tokens(hubic)

    # An access token refresh through an empty token response.
    hubic_faults.token_empty_body(1)
    hubic_server.expire_access_tokens(login)
    hubic.hubic_get("/account")
    collected.add_tokens(hubic)

    # A storage 401 and new credentials, through an HTML credentials response.
    hubic_faults.credentials_html(1)
    hubic_server.expire_storage_tokens()
    hubic.head_account()
    collected.add_tokens(hubic)

    # A second client from the refresh token alone, and a third from the
    # token store alone.
    second = make(username=None, password=None, refresh_token=hubic.refresh_token)
    second.head_account()
    collected.add_tokens(second)
    from_store = make(username=None, password=None, token_store=store_path)
    from_store.head_account()
    collected.add_tokens(from_store)
    collected.texts.append(repr(FileTokenStore(store_path)))
    saved = FileTokenStore(store_path).load()
    assert saved is not None
    assert saved["storage_token"] in collected.secrets

    # Failures.
    with pytest.raises(HubicObjectNotFound) as not_found:
        hubic.get_object("default", "secrets/missing")
    collected.add_error(not_found.value)

    wrong_password = f"wrong {secrets.token_urlsafe(12)}"
    collected.secrets.add(wrong_password)
    with pytest.raises(HubicInvalidLogin) as invalid_login:
        make(password=wrong_password).os_auth()
    collected.add_error(invalid_login.value)

    wrong_secret = secrets.token_urlsafe(18)
    collected.secrets.add(wrong_secret)
    with pytest.raises(HubicClientRejected) as rejected:
        make(client_secret=wrong_secret).os_auth()
    collected.add_error(rejected.value)

    hubic_faults.api_rate_limited(10)
    with pytest.raises(HubicRateLimited) as rate_limited:
        make(retries=1).hubic_get("/account")
    collected.add_error(rate_limited.value)
    hubic_faults.clear()

    default_retries = hubic.retries
    hubic.retries = 1
    hubic_faults.storage_unavailable(10)
    with pytest.raises(HubicServiceUnavailable) as unavailable:
        hubic.get_object("default", "secrets/a.txt")
    collected.add_error(unavailable.value)
    hubic_faults.clear()
    hubic.retries = default_retries

    hubic_server.revoke_tokens(login)
    with pytest.raises(HubicTokenRevoked) as revoked:
        second.hubic_get("/account")
    collected.add_error(revoked.value)

    stale = make(username=None, password=None, refresh_token=hubic.refresh_token)
    with pytest.raises(HubicTokenFailure) as refresh_rejected:
        stale.hubic_get("/account")
    collected.add_error(refresh_rejected.value)

    # The revoked first client logs in again with its password.
    hubic.head_account()
    collected.add_tokens(hubic)

    lines = [record.getMessage() for record in caplog.records]
    loggers = {record.name for record in caplog.records}
    swift_lines = [line for line in lines if "X-Auth-Token" in line]

    assert "lhubic.connection" in loggers
    assert "lhubic.oauth" in loggers
    assert "swiftclient" in loggers
    assert swift_lines, "swiftclient logged no request headers to check"
    assert len(collected.secrets) >= 10
    for secret in collected.secrets:
        for text in lines + collected.texts:
            assert secret not in text
            assert secret[:PREFIX_LENGTH] not in text


class _RedirectingTokenEndpoint(StandIn):
    """An HTTP server on 127.0.0.1 that records each request and, with
    ``location`` set, responds 307 to it."""

    def __init__(self, location: str | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class RequestHandler(QuietHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                outer.requests.append((self.path, dict(self.headers), body))
                self.send_response(307 if location else 404)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(RequestHandler)


@pytest.fixture
def other_host() -> Iterator[_RedirectingTokenEndpoint]:
    with _RedirectingTokenEndpoint() as server:
        yield server


@pytest.mark.parametrize(
    "with_password", [False, True], ids=["refresh-only", "password"]
)
def test_token_redirect_not_followed(
    other_host: _RedirectingTokenEndpoint,
    caplog: pytest.LogCaptureFixture,
    with_password: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    client_secret = secrets.token_urlsafe(18)
    refresh_token = secrets.token_urlsafe(24)
    username = "user@example.com" if with_password else None
    password = secrets.token_urlsafe(12) if with_password else None
    # "localhost" and "127.0.0.1" name the same machine but are different hosts.
    target = f"http://localhost:{other_host.port}/collect"
    with _RedirectingTokenEndpoint(target) as api:
        hubic = Hubic(
            "api_hubic_redirect",
            client_secret,
            username,
            password,
            refresh_token=refresh_token,
            api_url=api.url,
            retries=0,
        )
        with pytest.raises(HubicTokenFailure) as caught:
            hubic.hubic_get("/account")

    # The stub records only POSTs and responds 501 to a GET, so a password
    # login after the redirect (a GET of /oauth/auth/ first) would end in
    # another error.
    assert [path for path, _, _ in api.requests] == ["/oauth/token/"]
    assert other_host.requests == []
    assert caught.value.status == 307
    assert "HTTP 307" in str(caught.value)
    assert "redirected" in str(caught.value)
    assert "check that api_url" in str(caught.value)
    assert "log in again" not in str(caught.value)
    for secret in (client_secret, refresh_token, password):
        if secret is not None:
            assert secret not in str(caught.value)
            assert secret not in caplog.text


def test_debug_lines_name_requests(
    hubic_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lhubic")
    hubic = make_hubic(hubic_server)

    hubic.hubic_get("/account/usage")
    hubic.head_container("default")

    def debug_lines(name: str) -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == name and record.levelno == logging.DEBUG
        ]

    oauth_lines = debug_lines("lhubic.oauth")
    connection_lines = debug_lines("lhubic.connection")
    assert any(
        line.startswith("GET ") and "/oauth/auth/" in line for line in oauth_lines
    )
    assert any("state=***" in line for line in oauth_lines)
    assert any(
        "POST " in line and "/oauth/token/ -> 200" in line for line in oauth_lines
    )
    assert any(
        "/1.0/account/credentials -> 200 in" in line for line in connection_lines
    )
    assert any("/1.0/account/usage -> 200 in" in line for line in connection_lines)
    assert any(
        line.startswith("HEAD ") and "/default -> 204 in" in line
        for line in connection_lines
    )


def test_secret_filter_redacts_curl_line() -> None:
    token = secrets.token_urlsafe(32)
    line = f'REQ: curl -i http://h/v1/AUTH_x -X GET -H "X-Auth-Token: {token[:16]}..."'

    redacted = redact_text(line)

    assert token[:16] not in redacted
    assert 'X-Auth-Token: <redacted>"' in redacted


def test_secret_filter_redacts_header_dict() -> None:
    text = "RESP HEADERS: {'X-Storage-Token': 'abcdefgh...', 'Content-Length': '0'}"

    redacted = redact_text(text)

    assert "abcdefgh" not in redacted
    assert "'Content-Length': '0'" in redacted


def test_secret_filter_redacts_bearer() -> None:
    redacted = redact_text("Authorization: Bearer abc.def-123")

    assert redacted == "Authorization: Bearer <redacted>"


def test_secret_filter_redacts_registered_secret() -> None:
    secret = secrets.token_urlsafe(20)
    record = logging.LogRecord(
        "swiftclient", logging.DEBUG, __file__, 1, "body %s", (secret,), None
    )
    log_filter = SecretFilter()
    log_filter.add(secret)

    kept = log_filter.filter(record)

    assert kept is True
    assert secret not in record.getMessage()
    assert "<redacted>" in record.getMessage()


def test_secret_filter_forgets_oldest() -> None:
    log_filter = SecretFilter(capacity=2)
    for secret in ("first-secret", "second-secret", "third-secret"):
        log_filter.add(secret)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "first-secret third-secret", None, None
    )

    log_filter.filter(record)

    assert record.getMessage() == "first-secret <redacted>"


def test_secret_filter_ignores_short_strings() -> None:
    log_filter = SecretFilter()
    log_filter.add("r")
    log_filter.add("secret")
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "rare secret words", None, None
    )

    log_filter.filter(record)

    assert record.getMessage() == "rare secret words"


def test_redact_text_longest_secret_first() -> None:
    redacted = redact_text("token abcdefgh12345678", ["abcdefgh", "abcdefgh12345678"])

    assert redacted == "token <redacted>"


def test_swiftclient_logger_filtered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="swiftclient")
    secret = secrets.token_urlsafe(24)
    install_secret_filter(secret)

    logging.getLogger("swiftclient").debug("RESP BODY: %s", secret)

    assert secret not in caplog.text
    assert "RESP BODY: <redacted>" in caplog.text


def test_errors_carry_no_secret_fields() -> None:
    error = HubicError(status=400, error="invalid_request", error_description="x")

    assert str(error) == (
        "hubiC request failed (service said invalid_request: x) [HTTP 400]"
    )
