"""`HubicServer`: the local hubiC-compatible service, Swift included.

::

    with HubicServer() as server:
        server.add_app("api_hubic_demo", "secret", "http://127.0.0.1/callback")
        server.add_user("alice@example.com", "password")
        print(server.api_url)

Starting binds the HTTP port on 127.0.0.1, then starts Swift in a child
process. Leaving the ``with`` block stops both, and removes the data folder
when the server created it.
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar
from urllib.parse import quote, urlsplit

from lhubic.exceptions import (
    HubicConfigError,
    HubicError,
    HubicInputError,
    HubicServerError,
)

from .config import (
    DEFAULT_QUOTA,
    AppConfig,
    ServerConfig,
    UserConfig,
    check_client_id,
    check_client_secret,
    check_language,
    check_lifetime,
    check_login,
    check_name,
    check_password,
    check_port,
    check_quota,
    check_redirect_uri,
    load_config,
)
from .faults import Faults
from .http import HttpService, WsgiApp
from .oauth_pages import OAuthPages
from .rest_api import RestApi
from .state import ServiceState
from .storage_auth import check_account
from .swift_launcher import SwiftCluster, default_data_parent

__all__ = ["HubicServer", "SwiftStorage"]

logger = logging.getLogger(__name__)

_ServerT = TypeVar("_ServerT", bound="HubicServer")

_CHUNK_BYTES = 64 * 1024
_LISTING_LIMIT = 10000


class SwiftStorage:
    """The storage operations of the service, on a `SwiftCluster`'s admin key.

    ``public_url`` is the base URL of the storage endpoints handed to clients,
    or None for the Swift proxy's own URL. The service's own requests always
    go straight to the Swift proxy.
    """

    def __init__(self, cluster: SwiftCluster, public_url: str | None = None) -> None:
        self.cluster = cluster
        self.public_url = public_url

    def ensure_account(self, account: str, quota_bytes: int) -> None:
        self.cluster.ensure_account(account, quota_bytes)

    def storage_url(self, account: str) -> str:
        if self.public_url is None:
            return self.cluster.storage_url(account)
        return f"{self.public_url}/v1/{check_account(account)}"

    def issue_token(self, account: str, lifetime: int) -> tuple[str, float]:
        token = self.cluster.tokens.issue(account, lifetime)
        return token.token, token.expires.timestamp()

    def container_usage(self, account: str) -> int:
        return self.cluster.container_usage(account)

    def path_exists(self, account: str, container: str, name: str, kind: str) -> bool:
        status, headers = self._head(_object_path(account, container, name))
        if kind == "file":
            return status == 200
        if status == 200 and headers.get("Content-Type", "").startswith(
            "application/directory"
        ):
            return True
        return bool(self.list_folder(account, container, name, limit=1))

    def list_folder(
        self, account: str, container: str, prefix: str, limit: int = _LISTING_LIMIT
    ) -> list[str]:
        query = f"?format=json&limit={limit}&prefix={quote(prefix + '/', safe='')}"
        path = f"/v1/{account}/{quote(container, safe='')}{query}"
        connection, response = self._request("GET", path)
        try:
            body = response.read()
        finally:
            connection.close()
        if response.status == 404:
            return []
        self._check(response.status, (200, 204), "GET", path)
        entries = json.loads(body) if body else []
        return [str(entry["name"]) for entry in entries if "name" in entry]

    def open_object(
        self, account: str, container: str, name: str
    ) -> tuple[dict[str, str], Iterable[bytes]] | None:
        path = _object_path(account, container, name)
        connection, response = self._request("GET", path)
        if response.status == 404:
            connection.close()
            return None
        if response.status != 200:
            connection.close()
            self._check(response.status, (200,), "GET", path)

        headers = {
            header: value
            for header, value in response.getheaders()
            if header.lower() in ("content-type", "content-length", "etag")
        }

        def chunks() -> Iterator[bytes]:
            try:
                while chunk := response.read(_CHUNK_BYTES):
                    yield chunk
            finally:
                connection.close()

        return headers, chunks()

    def _head(self, path: str) -> tuple[int, http.client.HTTPMessage]:
        connection, response = self._request("HEAD", path)
        try:
            response.read()
        finally:
            connection.close()
        if response.status not in (200, 204, 404):
            self._check(response.status, (200, 404), "HEAD", path)
        return response.status, response.headers

    def _request(
        self, method: str, path: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urlsplit(self.cluster.url)
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=60
        )
        try:
            connection.request(
                method, path, headers={"X-Auth-Token": self.cluster.admin_key}
            )
            return connection, connection.getresponse()
        except OSError as error:
            connection.close()
            raise HubicServerError(
                f"Swift request {method} {path} failed: {error}"
            ) from error

    @staticmethod
    def _check(status: int, expected: tuple[int, ...], method: str, path: str) -> None:
        if status not in expected:
            raise HubicServerError(
                f"Swift returned HTTP {status} to {method} {path}", status=status
            )


def _object_path(account: str, container: str, name: str) -> str:
    return f"/v1/{account}/{quote(container, safe='')}/{quote(name, safe='/')}"


def check_public_storage_url(value: object) -> str:
    """Return ``value`` without a trailing ``/`` if it is an http or https base
    URL without user information, query or fragment, else raise ValueError."""
    if not isinstance(value, str):
        raise ValueError(
            f"expected a URL such as http://127.0.0.1:8081, got {type(value).__name__}"
        )
    if any(character.isspace() or ord(character) < 32 for character in value):
        raise ValueError(
            f"expected a URL without spaces or control characters, got {value!r}"
        )

    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"expected a port from 1 to 65535, got {value!r}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "expected an absolute http or https URL such as http://127.0.0.1:8081, "
            f"got {value!r}"
        )
    if parts.username is not None or parts.query or parts.fragment or "#" in value:
        raise ValueError(
            f"expected a base URL without user, query or fragment, got {value!r}"
        )
    return value.rstrip("/")


def _argument(name: str, check: Callable[[object], object], value: object) -> None:
    try:
        check(value)
    except ValueError as error:
        raise HubicInputError(f"invalid {name}: {error}") from None


class HubicServer:
    """The local hubiC service: OAuth pages, REST API and a Swift cluster.

    Settings come from the keyword arguments, else from ``config`` (a
    `ServerConfig` or the path of a TOML file), else hubiC's defaults:
    access tokens for 21600 s, storage tokens for 86400 s, codes for 60 s.
    ``port`` 0 picks a free port. ``data_dir`` None means a temporary folder
    under `default_data_parent()`, removed on stop; a given folder is kept.
    ``object_server`` and ``object_workers`` are passed to `SwiftCluster`:
    the object server's kind, and how many processes serve objects (None: one
    per core). ``clock`` returns seconds
    since the epoch and times codes and access tokens, so tests can move it.
    ``public_storage_url`` (also settable while running) is the base URL
    that ``/1.0/account/credentials`` hands out storage endpoints under, such
    as a proxy in front of Swift; None means `swift_url`.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        config: ServerConfig | str | Path | None = None,
        access_token_lifetime: int | None = None,
        storage_token_lifetime: int | None = None,
        code_lifetime: int | None = None,
        *,
        port: int | None = None,
        object_server: str = "auto",
        object_workers: int | None = None,
        clock: Callable[[], float] = time.time,
        public_storage_url: str | None = None,
    ) -> None:
        if config is not None and not isinstance(config, ServerConfig):
            config = load_config(config)
        self.config = config or ServerConfig()

        self.access_token_lifetime = self._lifetime(
            "access_token_lifetime", access_token_lifetime
        )
        self.storage_token_lifetime = self._lifetime(
            "storage_token_lifetime", storage_token_lifetime
        )
        self.code_lifetime = self._lifetime("code_lifetime", code_lifetime)
        if port is not None:
            _argument("port", check_port, port)
        self.port = self.config.port if port is None else port
        self.object_server = object_server
        self.object_workers = object_workers

        chosen_dir = data_dir if data_dir is not None else self.config.data_dir
        self._given_data_dir = None if chosen_dir is None else Path(chosen_dir)
        self.data_dir: Path | None = self._given_data_dir
        self.start_seconds: float | None = None

        self.faults = Faults()
        self.state = ServiceState(
            access_token_lifetime=self.access_token_lifetime,
            code_lifetime=self.code_lifetime,
            clock=clock,
        )
        for app in self.config.apps:
            self.state.add_app(app)
        for user in self.config.users:
            self.state.add_user(user)

        self._cluster: SwiftCluster | None = None
        self._storage: SwiftStorage | None = None
        self._public_storage_url: str | None = None
        self.public_storage_url = public_storage_url
        self._http: HttpService | None = None
        self._app: WsgiApp | None = None

    def _lifetime(self, name: str, value: int | None) -> int:
        if value is None:
            configured: int = getattr(self.config, name)
            return configured
        _argument(name, lambda v: check_lifetime(v, name), value)
        return value

    def __repr__(self) -> str:
        where = self.api_url if self.running else "stopped"
        return f"HubicServer({where})"

    def __enter__(self: _ServerT) -> _ServerT:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Starting and stopping.

    @property
    def running(self) -> bool:
        return self._http is not None

    def start(self) -> None:
        """Bind the HTTP port, start Swift, and return when both respond.

        Raises HubicConfigError when the port is in use or the data folder
        cannot be created, and HubicServerError when Swift fails to start.
        Whatever started is stopped again first.
        """
        if self.running:
            raise HubicServerError("the hubiC service is already running")
        started = time.monotonic()
        try:
            self._start_parts()
        except HubicError as error:
            # An expected failure (busy port, bad data folder, Swift's start)
            # has a message that names the fix, and a traceback would bury it.
            logger.error("the hubiC service failed to start: %s", error)
            self.stop()
            raise
        except BaseException:
            logger.exception("the hubiC service failed to start")
            self.stop()
            raise

        self.start_seconds = time.monotonic() - started
        logger.info(
            "hubiC service ready in %.2f s at %s (Swift at %s)",
            self.start_seconds,
            self.api_url,
            self.swift_url,
        )

    def _start_parts(self) -> None:
        self.data_dir = self._create_data_dir()

        cluster = SwiftCluster(
            self.data_dir,
            object_server=self.object_server,
            object_workers=self.object_workers,
        )
        self._cluster = cluster
        storage = SwiftStorage(cluster, self._public_storage_url)
        self._storage = storage
        oauth = OAuthPages(self.state, self.faults, storage)
        rest = RestApi(self.state, self.faults, storage, self.storage_token_lifetime)
        self._app = WsgiApp([*oauth.routes(), *rest.routes()])

        # The port is bound first so a busy port fails before Swift's start.
        http_service = HttpService(self._app, self.port)
        http_service.start()
        self._http = http_service

        cluster.start()
        self.faults.storage_fail_next = cluster.tokens.fail_next

    def _create_data_dir(self) -> Path:
        """Create the given data folder, or a temporary one, and return it.

        Raises HubicConfigError when the folder cannot be created.
        """
        if self._given_data_dir is None:
            parent = default_data_parent()
            try:
                return Path(tempfile.mkdtemp(prefix="lhubic-", dir=parent))
            except OSError as error:
                raise HubicConfigError(
                    f"cannot create a temporary data folder in {parent}: "
                    f"{error.strerror or error}; pick a writable data folder"
                ) from error

        folder = self._given_data_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise HubicConfigError(
                f"cannot create the data folder {folder}: "
                f"{error.strerror or error}; pick a writable data folder"
            ) from error
        return folder

    def stop(self) -> None:
        """Stop the HTTP service and Swift, and remove a temporary data folder."""
        http_service, cluster = self._http, self._cluster
        self._http = None
        self._cluster = None
        self._storage = None
        self.faults.storage_fail_next = None
        if http_service is not None:
            http_service.stop()
        if cluster is not None:
            cluster.stop()

        if self._given_data_dir is None and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            logger.info("removed the data folder %s", self.data_dir)
            self.data_dir = None
        if http_service is not None:
            logger.info("hubiC service stopped")

    @property
    def api_url(self) -> str:
        """The base URL of the service, ``http://127.0.0.1:<port>``."""
        if self._http is None:
            raise HubicServerError("the hubiC service is not running; call start()")
        return f"http://{self._http.host}:{self._http.port}"

    @property
    def swift_url(self) -> str:
        """The base URL of the Swift proxy, ``http://127.0.0.1:<port>``."""
        return self._running_cluster().url

    @property
    def public_storage_url(self) -> str | None:
        """The base URL of the storage endpoints handed to clients, or None
        when they get `swift_url`.

        Setting it while the service runs applies to credentials issued from
        then on. Credentials handed out earlier keep their endpoint.
        """
        return self._public_storage_url

    @public_storage_url.setter
    def public_storage_url(self, value: str | None) -> None:
        if value is not None:
            _argument("public_storage_url", check_public_storage_url, value)
            value = check_public_storage_url(value)
        self._public_storage_url = value
        if self._storage is not None:
            self._storage.public_url = value
            logger.info("storage endpoints now under %s", value or self.swift_url)

    @property
    def cluster(self) -> SwiftCluster:
        """The running Swift cluster."""
        return self._running_cluster()

    def _running_cluster(self) -> SwiftCluster:
        if self._cluster is None:
            raise HubicServerError("the hubiC service is not running; call start()")
        return self._cluster

    # Registration.

    def add_app(
        self, client_id: str, client_secret: str, redirect_uri: str
    ) -> AppConfig:
        """Register an application and return its configuration."""
        _argument("client_id", check_client_id, client_id)
        _argument("client_secret", check_client_secret, client_secret)
        _argument("redirect_uri", check_redirect_uri, redirect_uri)
        app = AppConfig(client_id, client_secret, redirect_uri)
        try:
            self.state.add_app(app)
        except ValueError as error:
            raise HubicInputError(f"invalid client_id: {error}") from None
        logger.info("registered the application %s", client_id)
        return app

    def add_user(
        self,
        login: str,
        password: str,
        quota: int = DEFAULT_QUOTA,
        *,
        firstname: str = "",
        lastname: str = "",
        language: str = "en",
    ) -> UserConfig:
        """Register a user and return their configuration.

        Their Swift account is created on their first login.
        """
        _argument("login", check_login, login)
        _argument("password", check_password, password)
        _argument("quota", check_quota, quota)
        _argument("firstname", lambda v: check_name(v, "a name"), firstname)
        _argument("lastname", lambda v: check_name(v, "a name"), lastname)
        _argument("language", check_language, language)
        user = UserConfig(login, password, quota, firstname, lastname, language)
        try:
            self.state.add_user(user)
        except ValueError as error:
            raise HubicInputError(f"invalid login: {error}") from None
        logger.info("registered the user %s with a quota of %d bytes", login, quota)
        return user

    def delete_user(self, login: str) -> None:
        """Remove a user: their tokens then get 403 invalid_token/deleted."""
        account = self._account(login)
        self.state.delete_user(login)
        if self._cluster is not None:
            self._cluster.tokens.revoke_account(account)
        logger.info("deleted the user %s", login)

    def _account(self, login: str) -> str:
        user = self.state.user(login)
        if user is None:
            raise HubicInputError(
                f"invalid login {login!r}: no such user; register it with add_user()"
            )
        return user.account

    def account_of(self, login: str) -> str:
        """Return the Swift account name of a user, ``AUTH_`` and 32 hex digits."""
        return self._account(login)

    # Switches for tests.

    def revoke_tokens(self, login: str) -> None:
        """Revoke a user's tokens: access tokens get 403 invalid_token/revoked,
        refresh tokens 400 invalid refresh token, storage tokens 401 from Swift."""
        account = self._account(login)
        count = self.state.revoke(login)
        if self._cluster is not None:
            count += self._cluster.tokens.revoke_account(account)
        logger.info("revoked %d tokens of %s", count, login)

    def expire_access_tokens(self, login: str | None = None) -> None:
        """Make the access tokens of one user, or of everyone, expire now."""
        if login is not None:
            self._account(login)
        count = self.state.expire_access_tokens(login)
        logger.info("expired %d access tokens of %s", count, login or "all users")

    def expire_storage_tokens(self) -> None:
        """Make every storage token expire now: Swift then returns 401."""
        self._running_cluster().tokens.expire_all()

    def request_count(self, path_prefix: str = "/") -> int:
        """Return how many requests the HTTP service received under a path."""
        if self._app is None:
            return 0
        return self._app.request_count(path_prefix)
