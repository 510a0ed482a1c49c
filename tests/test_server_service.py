"""HubicServer's configuration, start and stop, and its handling of bad input."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from lhubic.exceptions import HubicConfigError, HubicInputError, HubicServerError
from lhubic.server import AppConfig, HubicServer, ServerConfig, UserConfig, load_config
from lhubic.server.http import Request, json_response
from lhubic.server.pytest_plugin import FULL_SCOPE, HubicTestServer, fill_login_form
from lhubic.server.state import AuthorizationCode, Scope

CONFIG_TEXT = """
[server]
access_token_lifetime = 600
storage_token_lifetime = 1200
code_lifetime = 30

[[apps]]
client_id = "api_hubic_file"
client_secret = "file secret"
redirect_uri = "http://127.0.0.1:9/callback"

[[users]]
login = "file.user@example.com"
password = "file password"
quota = 5_000_000
firstname = "File"
lastname = "User"
language = "fr"
"""


def write_config(folder: Path, text: str) -> Path:
    path = folder / "hubic.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[HubicTestServer]:
    with HubicTestServer() as server:
        yield server


# Configuration files.


def test_load_config_reads_every_key(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, CONFIG_TEXT))

    assert config.access_token_lifetime == 600
    assert config.storage_token_lifetime == 1200
    assert config.code_lifetime == 30
    assert config.apps == (
        AppConfig("api_hubic_file", "file secret", "http://127.0.0.1:9/callback"),
    )
    assert config.users[0].login == "file.user@example.com"
    assert config.users[0].quota == 5_000_000
    assert config.users[0].language == "fr"
    assert config.source == tmp_path / "hubic.toml"


def test_load_config_data_dir_relative_to_file(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[server]\ndata_dir = "data"\n'))

    assert config.data_dir == tmp_path / "data"


def test_load_config_empty_file_uses_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""))

    assert config.access_token_lifetime == 21600
    assert config.storage_token_lifetime == 86400
    assert config.code_lifetime == 60
    assert config.port == 0
    assert config.users == ()


BAD_CONFIG_CASES = [
    ("[server]\nport = 70000\n", "server.port"),
    ("[server]\ncode_lifetime = 0\n", "server.code_lifetime"),
    ("[server]\naccess_token_lifetime = true\n", "server.access_token_lifetime"),
    ("[server]\nlifetime = 5\n", "server.lifetime"),
    ("[serveur]\n", "the top level.serveur"),
    ("[[users]]\nlogin = 'no-at-sign'\npassword = 'x'\n", "users[0].login"),
    ("[[users]]\nlogin = 'a@example.com'\n", "users[0].password"),
    (
        "[[users]]\nlogin = 'a@example.com'\npassword = 'x'\nquota = -1\n",
        "users[0].quota",
    ),
    ("[[apps]]\nclient_id = 'x'\nclient_secret = 'y'\n", "apps[0].redirect_uri"),
    (
        "[[apps]]\nclient_id = 'x'\nclient_secret = 'y'\nredirect_uri = 'ftp://h/'\n",
        "apps[0].redirect_uri",
    ),
    (
        "[[apps]]\nclient_id = 'x y'\nclient_secret = 'y'\nredirect_uri = 'http://h/'\n",
        "apps[0].client_id",
    ),
    ("users = 5\n", "users"),
    (
        "[[users]]\nlogin = 'a@example.com'\npassword = 'x'\n"
        "[[users]]\nlogin = 'a@example.com'\npassword = 'y'\n",
        "appears twice",
    ),
]


@pytest.mark.parametrize(("text", "key"), BAD_CONFIG_CASES)
def test_load_config_names_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = write_config(tmp_path, text)

    with pytest.raises(HubicConfigError) as caught:
        load_config(path)

    assert key in str(caught.value)
    assert str(path) in str(caught.value)


def test_load_config_invalid_toml(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[server\n")

    with pytest.raises(HubicConfigError, match="is not valid TOML"):
        load_config(path)


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HubicConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "absent.toml")


def test_config_error_hides_password(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "[[users]]\nlogin = 'a@example.com'\npassword = \"secret\\u0001value\"\n",
    )

    with pytest.raises(HubicConfigError) as caught:
        load_config(path)

    assert "users[0].password" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_python_config_is_validated() -> None:
    with pytest.raises(HubicConfigError, match=r"ServerConfig\.code_lifetime"):
        ServerConfig(code_lifetime=-5)
    with pytest.raises(HubicConfigError, match=r"UserConfig\.quota"):
        UserConfig("a@example.com", "pw", quota=0)
    with pytest.raises(HubicConfigError, match=r"AppConfig\.redirect_uri"):
        AppConfig("api_hubic_x", "secret", "http://127.0.0.1/#fragment")


def test_config_reprs_hide_secrets() -> None:
    user = UserConfig("a@example.com", "hidden-password")
    app = AppConfig("api_hubic_x", "hidden-secret", "http://127.0.0.1/")

    assert "hidden-password" not in repr(user)
    assert "hidden-secret" not in repr(app)
    assert "hidden-password" not in repr(ServerConfig(users=(user,), apps=(app,)))


def test_code_record_repr_hides_tokens() -> None:
    record = AuthorizationCode(
        "api_hubic_x", "http://127.0.0.1/", "a@example.com", Scope(()), 0.0
    )
    record.tokens.append("issued-access-token")

    assert "issued-access-token" not in repr(record)


def test_server_lifetimes_from_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG_TEXT)

    from_file = HubicServer(config=path)
    overridden = HubicServer(config=path, code_lifetime=5)

    assert from_file.access_token_lifetime == 600
    assert from_file.storage_token_lifetime == 1200
    assert from_file.code_lifetime == 30
    assert overridden.code_lifetime == 5
    assert overridden.access_token_lifetime == 600


def test_config_file_serves_over_http(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG_TEXT)
    redirect_uri = "http://127.0.0.1:9/callback"

    with HubicServer(config=path, object_server="memory") as server:
        page = requests.get(
            f"{server.api_url}/oauth/auth/",
            params={
                "client_id": "api_hubic_file",
                "redirect_uri": redirect_uri,
                "scope": "account.r,credentials.r",
                "response_type": "code",
            },
            timeout=30,
        )
        action, fields = fill_login_form(
            page.text, "file.user@example.com", "file password"
        )
        submitted = requests.post(
            urljoin(page.url, action), data=fields, allow_redirects=False, timeout=30
        )
        code = parse_qs(urlsplit(submitted.headers["Location"]).query)["code"][0]
        tokens = requests.post(
            f"{server.api_url}/oauth/token/",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
            },
            auth=("api_hubic_file", "file secret"),
            timeout=30,
        ).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        account = requests.get(
            f"{server.api_url}/1.0/account", headers=bearer, timeout=30
        ).json()
        credentials = requests.get(
            f"{server.api_url}/1.0/account/credentials", headers=bearer, timeout=30
        ).json()
    storage_seconds = (
        datetime.fromisoformat(credentials["expires"]) - datetime.now(timezone.utc)
    ).total_seconds()

    assert tokens["expires_in"] == 600
    assert account["language"] == "fr"
    assert account["firstname"] == "File"
    assert 1200 - 60 < storage_seconds <= 1200


def test_default_lifetimes_over_http(hubic_server: HubicTestServer) -> None:
    login = f"defaults-{os.urandom(4).hex()}@example.com"
    hubic_server.add_user(login, "defaults password")

    tokens = hubic_server.authorize(login=login, password="defaults password")
    credentials = requests.get(
        f"{hubic_server.api_url}/1.0/account/credentials",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=30,
    ).json()
    storage_seconds = (
        datetime.fromisoformat(credentials["expires"]) - datetime.now(timezone.utc)
    ).total_seconds()

    assert tokens["expires_in"] == 21600
    assert 86400 - 60 < storage_seconds <= 86400


def test_server_defaults_match_hubic() -> None:
    server = HubicServer()

    assert server.access_token_lifetime == 21600
    assert server.storage_token_lifetime == 86400
    assert server.code_lifetime == 60


# Registering apps and users.

INVALID_APP_CASES = [
    ({"client_id": ""}, "invalid client_id"),
    ({"client_id": "bad id"}, "invalid client_id"),
    ({"client_secret": ""}, "invalid client_secret"),
    ({"client_secret": " padded"}, "invalid client_secret"),
    ({"redirect_uri": "/relative"}, "invalid redirect_uri"),
    ({"redirect_uri": "javascript:alert(1)"}, "invalid redirect_uri"),
]


@pytest.mark.parametrize(("overrides", "message"), INVALID_APP_CASES)
def test_add_app_rejects_invalid_input(overrides: dict[str, str], message: str) -> None:
    arguments = {
        "client_id": "api_hubic_ok",
        "client_secret": "secret",
        "redirect_uri": "http://127.0.0.1/cb",
    }
    arguments.update(overrides)

    with pytest.raises(HubicInputError, match=message):
        HubicServer().add_app(**arguments)


INVALID_USER_CASES = [
    ({"login": "no-at-sign"}, "invalid login"),
    ({"login": " padded@example.com"}, "invalid login"),
    ({"password": ""}, "invalid password"),
    ({"password": "tab\there"}, "invalid password"),
    ({"quota": 0}, "invalid quota"),
    ({"quota": 2.5}, "invalid quota"),
    ({"language": "english!"}, "invalid language"),
]


@pytest.mark.parametrize(("overrides", "message"), INVALID_USER_CASES)
def test_add_user_rejects_invalid_input(
    overrides: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"login": "a@example.com", "password": "pw"}
    arguments.update(overrides)

    with pytest.raises(HubicInputError, match=message) as caught:
        HubicServer().add_user(**arguments)  # type: ignore[arg-type]
    assert "tab\there" not in str(caught.value)


def test_add_duplicates_are_rejected() -> None:
    server = HubicServer()
    server.add_app("api_hubic_x", "secret", "http://127.0.0.1/cb")
    server.add_user("a@example.com", "pw")

    with pytest.raises(HubicInputError, match="already exists"):
        server.add_app("api_hubic_x", "other", "http://127.0.0.1/cb")
    with pytest.raises(HubicInputError, match="already exists"):
        server.add_user("a@example.com", "other")


def test_unknown_login_in_switches() -> None:
    server = HubicServer()

    with pytest.raises(HubicInputError, match="no such user"):
        server.revoke_tokens("nobody@example.com")
    with pytest.raises(HubicInputError, match="no such user"):
        server.expire_access_tokens("nobody@example.com")


def test_stopped_server_has_no_url() -> None:
    with pytest.raises(HubicServerError, match="not running"):
        _ = HubicServer().api_url


# Start and stop.


def test_start_and_stop_cleanly(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    started = time.monotonic()

    with HubicServer() as server:
        ready_seconds = time.monotonic() - started
        data_dir = server.data_dir
        swift_pid = server.cluster.pid
        assert requests.get(f"{server.swift_url}/healthcheck", timeout=30).ok

    leftover = set(threading.enumerate()) - threads_before
    assert ready_seconds < 5
    assert data_dir is not None
    assert not data_dir.exists()
    assert swift_pid is not None
    assert not Path(f"/proc/{swift_pid}").exists() or _is_zombie(swift_pid)
    assert not [thread for thread in leftover if thread.is_alive()]


def _is_zombie(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    return "State:\tZ" in status


def test_given_data_dir_is_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "kept"

    with HubicServer(data_dir=data_dir, object_server="memory") as server:
        assert server.data_dir == data_dir

    assert data_dir.is_dir()
    assert (data_dir / "storage-tokens.sqlite3").exists()


def test_busy_port_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lhubic")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(HubicConfigError, match=f"port {port} .* already in use"):
            HubicServer(port=port).start()

    failures = [record for record in caplog.records if "failed to start" in record.msg]
    assert len(failures) == 1
    assert failures[0].exc_info is None


def test_uncreatable_data_dir_is_rejected(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("", encoding="utf-8")

    with pytest.raises(HubicConfigError, match="cannot create the data folder"):
        HubicServer(data_dir=not_a_folder / "data").start()


def test_chosen_port_is_used() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with HubicServer(port=port, object_server="memory") as server:
        assert server.api_url == f"http://127.0.0.1:{port}"


def test_second_start_is_rejected(server: HubicTestServer) -> None:
    with pytest.raises(HubicServerError, match="already running"):
        server.start()


# The storage endpoint handed to clients.


def _credentials(server: HubicTestServer, token: str) -> dict[str, str]:
    response = requests.get(
        f"{server.api_url}/1.0/account/credentials",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200
    payload: dict[str, str] = response.json()
    return payload


def test_public_storage_url_sets_endpoint(server: HubicTestServer) -> None:
    token = server.authorize()["access_token"]
    account = server.account_of(server.user.login)

    server.public_storage_url = "http://127.0.0.1:9/front/"
    try:
        moved = _credentials(server, token)
        usage = requests.get(
            f"{server.api_url}/1.0/account/usage",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    finally:
        server.public_storage_url = None
    restored = _credentials(server, token)

    assert moved["endpoint"] == f"http://127.0.0.1:9/front/v1/{account}"
    # The service's own requests still go straight to Swift.
    assert usage.status_code == 200
    assert restored["endpoint"] == f"{server.swift_url}/v1/{account}"
    assert restored["token"] == moved["token"]


def test_public_storage_url_from_constructor() -> None:
    server = HubicServer(public_storage_url="https://storage.example.com/swift/")

    assert server.public_storage_url == "https://storage.example.com/swift"


@pytest.mark.parametrize(
    "value",
    [
        "ftp://127.0.0.1:21",
        "127.0.0.1:8080",
        "http://",
        "http://user:pw@127.0.0.1:8080",
        "http://127.0.0.1:8080/?a=1",
        "http://127.0.0.1:8080/#top",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "http://127.0.0.1 :8080",
        "http://127.0.0.1:8080/\n",
        8080,
    ],
)
def test_public_storage_url_rejects_invalid(value: object) -> None:
    server = HubicServer(object_server="memory")

    with pytest.raises(HubicInputError) as from_setter:
        server.public_storage_url = value  # type: ignore[assignment]
    with pytest.raises(HubicInputError) as from_constructor:
        HubicServer(public_storage_url=value)  # type: ignore[arg-type]

    assert "invalid public_storage_url" in str(from_setter.value)
    assert str(from_constructor.value) == str(from_setter.value)
    assert server.public_storage_url is None


def test_plugin_fixture_has_app_and_user(hubic_server: HubicTestServer) -> None:
    tokens = hubic_server.authorize()

    assert hubic_server.scope == FULL_SCOPE
    assert hubic_server.app.client_id.startswith("api_hubic_")
    assert "%" in hubic_server.user.password
    assert tokens["token_type"] == "Bearer"


# Malformed requests.


def test_malformed_requests_get_json_errors(server: HubicTestServer) -> None:
    base = server.api_url
    bad_path = requests.get(f"{base}/1.0/%FF", timeout=30)
    bad_query = requests.get(f"{base}/oauth/auth/?client_id=%FF", timeout=30)
    too_big = requests.post(
        f"{base}/oauth/token/", data=b"x" * (1024 * 1024 + 1), timeout=30
    )

    assert bad_path.status_code == 400
    assert bad_path.json()["error"] == "invalid_request"
    assert bad_query.status_code == 400
    assert bad_query.json()["error"] == "invalid_request"
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "invalid_request"


def test_bad_content_length_gets_400(server: HubicTestServer) -> None:
    port = int(server.api_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"POST /oauth/token/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
        )
        reply = connection.recv(4096)

    assert reply.startswith(b"HTTP/1.0 400")
    assert b"Traceback" not in reply


def test_storage_failure_gets_server_error(tmp_path: Path) -> None:
    with HubicTestServer(object_server="memory") as server:
        token = server.authorize()["access_token"]
        server.cluster.stop()

        response = requests.get(
            f"{server.api_url}/1.0/account/usage",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "please retry",
    }


def test_logs_contain_no_secrets(
    server: HubicTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.add_user("logged@example.com", "log-password-%&")
    tokens = server.authorize(login="logged@example.com", password="log-password-%&")
    credentials = requests.get(
        f"{server.api_url}/1.0/account/credentials",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=30,
    ).json()
    requests.post(
        f"{server.api_url}/oauth/token/",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(server.app.client_id, "wrong-secret-value"),
        timeout=30,
    )

    secrets = [
        "log-password-%&",
        server.app.client_secret,
        "wrong-secret-value",
        tokens["access_token"],
        tokens["refresh_token"],
        credentials["token"],
    ]
    assert caplog.records
    for secret in secrets:
        assert secret not in caplog.text
    assert "logged@example.com" in caplog.text
    assert repr(server).startswith("HubicServer(http://127.0.0.1:")


def test_request_and_response_reprs_hide_secrets() -> None:
    request = Request(
        "POST",
        "/oauth/token/",
        {"state": ["s"]},
        {"authorization": "Basic c2VjcmV0LWhlYWRlcg=="},
        b"user_pwd=secret-body",
    )
    response = json_response(200, {"access_token": "secret-token"})

    assert "c2VjcmV0LWhlYWRlcg" not in repr(request)
    assert "secret-body" not in repr(request)
    assert "/oauth/token/" in repr(request)
    assert "secret-token" not in repr(response)
    assert "200" in repr(response)


def test_data_parent_is_writable(server: HubicTestServer) -> None:
    assert server.data_dir is not None
    assert os.access(server.data_dir, os.W_OK)
