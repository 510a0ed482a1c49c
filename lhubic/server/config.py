"""Configuration of the local service: users, applications and lifetimes.

A configuration comes from Python (`ServerConfig`, `UserConfig`, `AppConfig`)
or from a TOML file read by `load_config`. The file looks like this::

    [server]
    port = 8080                      # 0 picks a free port
    data_dir = "hubic-data"          # relative to the file's folder
    access_token_lifetime = 21600    # seconds
    storage_token_lifetime = 86400   # seconds
    code_lifetime = 60               # seconds

    [[apps]]
    client_id = "api_hubic_example"
    client_secret = "example-secret"
    redirect_uri = "http://127.0.0.1:8000/callback"

    [[users]]
    login = "alice@example.com"
    password = "correct horse"
    quota = 25_000_000_000           # bytes
    firstname = "Alice"              # optional, shown by /1.0/account
    lastname = "Martin"
    language = "fr"

Every section and key is optional. A key the loader does not know is an
error, so a misspelt setting fails loudly instead of being ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from lhubic.exceptions import HubicConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9 and 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "DEFAULT_ACCESS_TOKEN_LIFETIME",
    "DEFAULT_CODE_LIFETIME",
    "DEFAULT_QUOTA",
    "DEFAULT_STORAGE_TOKEN_LIFETIME",
    "AppConfig",
    "ServerConfig",
    "UserConfig",
    "check_client_id",
    "check_client_secret",
    "check_language",
    "check_lifetime",
    "check_login",
    "check_name",
    "check_password",
    "check_port",
    "check_quota",
    "check_redirect_uri",
    "load_config",
]

# The values hubiC used: access tokens for 6 hours, storage tokens for about a
# day, the 25 GB free offer.
DEFAULT_ACCESS_TOKEN_LIFETIME = 21600
DEFAULT_STORAGE_TOKEN_LIFETIME = 86400
DEFAULT_CODE_LIFETIME = 60
DEFAULT_QUOTA = 25 * 10**9

_MAX_TEXT_LENGTH = 1024
_MAX_LOGIN_LENGTH = 254
_CLIENT_ID_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)

T = TypeVar("T")


def _has_control_character(text: str) -> bool:
    return any(ord(character) < 32 or ord(character) == 127 for character in text)


def _check_text(value: object, what: str, max_length: int = _MAX_TEXT_LENGTH) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{what} must be at most {max_length} characters")
    if _has_control_character(value):
        raise ValueError(f"{what} must not contain control characters")
    return value


def check_login(value: object) -> str:
    """Return ``value`` if it is a usable login (an e-mail address), else raise
    ValueError with the reason."""
    login = _check_text(value, "a login", _MAX_LOGIN_LENGTH)
    local, at, domain = login.rpartition("@")
    if not at or not local or not domain or login != login.strip():
        raise ValueError(
            f"a login must be an e-mail address such as alice@example.com, "
            f"got {login!r}"
        )
    return login


def check_password(value: object) -> str:
    """Return ``value`` if it is a usable password, else raise ValueError.

    The message never contains the password itself.
    """
    if not isinstance(value, str):
        raise ValueError(f"a password must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError("a password must not be empty")
    if len(value) > _MAX_TEXT_LENGTH:
        raise ValueError(f"a password must be at most {_MAX_TEXT_LENGTH} characters")
    if _has_control_character(value):
        raise ValueError("a password must not contain control characters")
    return value


def _check_whole_number(value: object, what: str) -> int:
    # bool is a subclass of int, and `quota = true` is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return value


def check_quota(value: object) -> int:
    """Return ``value`` if it is a positive number of bytes, else raise ValueError."""
    quota = _check_whole_number(value, "a quota")
    if quota <= 0:
        raise ValueError(f"a quota must be a positive number of bytes, got {quota}")
    return quota


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a usable first or last name, else raise ValueError.

    An empty name is allowed: /1.0/account then returns an empty string.
    """
    if value == "":
        return ""
    return _check_text(value, what, 100)


def check_language(value: object) -> str:
    """Return ``value`` if it looks like a language code ("en", "fr"), else raise
    ValueError."""
    language = _check_text(value, "a language", 8)
    if not language.isascii() or not language.replace("-", "").isalpha():
        raise ValueError(f"a language must be a code such as 'en', got {language!r}")
    return language


def check_client_id(value: object) -> str:
    """Return ``value`` if it is a usable client id, else raise ValueError."""
    client_id = _check_text(value, "a client id", 200)
    if not set(client_id) <= _CLIENT_ID_CHARACTERS:
        raise ValueError(
            "a client id may contain only letters, digits, '_', '.' and '-', "
            f"got {client_id!r}"
        )
    return client_id


def check_client_secret(value: object) -> str:
    """Return ``value`` if it is a usable client secret, else raise ValueError.

    The message never contains the secret itself.
    """
    if not isinstance(value, str):
        raise ValueError(
            f"a client secret must be a string, got {type(value).__name__}"
        )
    if not value or len(value) > _MAX_TEXT_LENGTH:
        raise ValueError(
            f"a client secret must be 1 to {_MAX_TEXT_LENGTH} characters long"
        )
    if _has_control_character(value) or value != value.strip():
        raise ValueError(
            "a client secret must not contain control characters or start or "
            "end with a space"
        )
    return value


def check_redirect_uri(value: object) -> str:
    """Return ``value`` if it is an absolute http(s) URL without a fragment, else
    raise ValueError.

    OAuth2 (RFC 6749, section 3.1.2) forbids a fragment in a redirect URI.
    """
    uri = _check_text(value, "a redirect URI", 2000)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "a redirect URI must be an absolute http or https URL such as "
            f"http://127.0.0.1:8000/callback, got {uri!r}"
        )
    if parts.fragment or uri.endswith("#"):
        raise ValueError(f"a redirect URI must not contain a fragment, got {uri!r}")
    if any(character.isspace() for character in uri):
        raise ValueError(f"a redirect URI must not contain spaces, got {uri!r}")
    return uri


def check_lifetime(value: object, what: str) -> int:
    """Return ``value`` if it is a positive number of seconds, else raise
    ValueError."""
    seconds = _check_whole_number(value, what)
    if seconds <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {seconds}")
    return seconds


def check_port(value: object) -> int:
    """Return ``value`` if it is a TCP port number or 0, else raise ValueError."""
    port = _check_whole_number(value, "a port")
    if not 0 <= port <= 65535:
        raise ValueError(
            f"a port must be between 0 and 65535 (0 picks a free one), got {port}"
        )
    return port


def _validate(owner: str, name: str, check: Callable[[object], T], value: object) -> T:
    try:
        return check(value)
    except ValueError as error:
        raise HubicConfigError(f"invalid {owner}.{name}: {error}") from None


@dataclass(frozen=True)
class UserConfig:
    """A user of the local service. ``login`` is the user's e-mail address."""

    login: str
    password: str = field(repr=False)
    quota: int = DEFAULT_QUOTA
    firstname: str = ""
    lastname: str = ""
    language: str = "en"

    def __post_init__(self) -> None:
        _validate("UserConfig", "login", check_login, self.login)
        _validate("UserConfig", "password", check_password, self.password)
        _validate("UserConfig", "quota", check_quota, self.quota)
        _validate(
            "UserConfig", "firstname", lambda v: check_name(v, "a name"), self.firstname
        )
        _validate(
            "UserConfig", "lastname", lambda v: check_name(v, "a name"), self.lastname
        )
        _validate("UserConfig", "language", check_language, self.language)


@dataclass(frozen=True)
class AppConfig:
    """An application registered with the service, as on hubiC's developer page."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str

    def __post_init__(self) -> None:
        _validate("AppConfig", "client_id", check_client_id, self.client_id)
        _validate("AppConfig", "client_secret", check_client_secret, self.client_secret)
        _validate("AppConfig", "redirect_uri", check_redirect_uri, self.redirect_uri)


@dataclass(frozen=True)
class ServerConfig:
    """Everything `HubicServer` can be configured with.

    ``source`` is the file the configuration was read from, if any.
    """

    users: tuple[UserConfig, ...] = ()
    apps: tuple[AppConfig, ...] = ()
    port: int = 0
    data_dir: Path | None = None
    access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME
    storage_token_lifetime: int = DEFAULT_STORAGE_TOKEN_LIFETIME
    code_lifetime: int = DEFAULT_CODE_LIFETIME
    source: Path | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers, but store tuples so the object stays frozen.
        object.__setattr__(self, "users", tuple(self.users))
        object.__setattr__(self, "apps", tuple(self.apps))
        self._check_members()

        _validate("ServerConfig", "port", check_port, self.port)
        for name in (
            "access_token_lifetime",
            "storage_token_lifetime",
            "code_lifetime",
        ):
            try:
                check_lifetime(getattr(self, name), name)
            except ValueError as error:
                raise HubicConfigError(
                    f"invalid ServerConfig.{name}: {error}"
                ) from None
        if self.data_dir is not None and not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(self.data_dir))

    def _check_members(self) -> None:
        logins: set[str] = set()
        for user in self.users:
            if not isinstance(user, UserConfig):
                raise HubicConfigError(
                    f"invalid ServerConfig.users: expected UserConfig items, "
                    f"got {type(user).__name__}"
                )
            if user.login in logins:
                raise HubicConfigError(
                    f"invalid ServerConfig.users: login {user.login!r} appears twice"
                )
            logins.add(user.login)

        client_ids: set[str] = set()
        for app in self.apps:
            if not isinstance(app, AppConfig):
                raise HubicConfigError(
                    f"invalid ServerConfig.apps: expected AppConfig items, "
                    f"got {type(app).__name__}"
                )
            if app.client_id in client_ids:
                raise HubicConfigError(
                    "invalid ServerConfig.apps: client id "
                    f"{app.client_id!r} appears twice"
                )
            client_ids.add(app.client_id)


# Keys of each table in the TOML file, with the check for each value.
_SERVER_KEYS: dict[str, Callable[[object], object]] = {
    "port": check_port,
    "data_dir": lambda v: _check_text(v, "a folder path"),
    "access_token_lifetime": lambda v: check_lifetime(v, "a lifetime"),
    "storage_token_lifetime": lambda v: check_lifetime(v, "a lifetime"),
    "code_lifetime": lambda v: check_lifetime(v, "a lifetime"),
}
_USER_KEYS: dict[str, Callable[[object], object]] = {
    "login": check_login,
    "password": check_password,
    "quota": check_quota,
    "firstname": lambda v: check_name(v, "a name"),
    "lastname": lambda v: check_name(v, "a name"),
    "language": check_language,
}
_APP_KEYS: dict[str, Callable[[object], object]] = {
    "client_id": check_client_id,
    "client_secret": check_client_secret,
    "redirect_uri": check_redirect_uri,
}
_REQUIRED_USER_KEYS = ("login", "password")
_REQUIRED_APP_KEYS = ("client_id", "client_secret", "redirect_uri")


class _FileChecker:
    """Validate the tables of one TOML file, naming the key and file on error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, reason: str) -> HubicConfigError:
        return HubicConfigError(f"invalid {key} in {self.path}: {reason}")

    def table(
        self,
        data: object,
        key: str,
        checks: dict[str, Callable[[object], object]],
        required: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a table, got {type(data).__name__}")

        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in checks:
                known = ", ".join(sorted(checks))
                raise self.fail(f"{key}.{name}", f"unknown key; known keys: {known}")
            try:
                values[name] = checks[name](value)
            except ValueError as error:
                raise self.fail(f"{key}.{name}", str(error)) from None

        for name in required:
            if name not in values:
                raise self.fail(f"{key}.{name}", "missing required key")
        return values

    def array(self, data: object, key: str) -> list[object]:
        if not isinstance(data, list):
            raise self.fail(
                key,
                f"expected an array of tables ([[{key}]]), got {type(data).__name__}",
            )
        return data


def load_config(path: str | Path) -> ServerConfig:
    """Read and validate a TOML configuration file.

    Raises HubicConfigError naming the file and the key when the file cannot be
    read, is not valid TOML, or contains an unknown key or an invalid value.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except OSError as error:
        raise HubicConfigError(
            f"cannot read the configuration file {path}: {error.strerror}"
        ) from error
    except tomllib.TOMLDecodeError as error:
        raise HubicConfigError(
            f"the configuration file {path} is not valid TOML: {error}"
        ) from error

    checker = _FileChecker(path)
    top = checker.table(
        document, "the top level", {"server": _pass, "users": _pass, "apps": _pass}
    )
    server = checker.table(top.get("server", {}), "server", _SERVER_KEYS)
    users = _load_users(checker, top.get("users", []))
    apps = _load_apps(checker, top.get("apps", []))

    data_dir = server.pop("data_dir", None)
    try:
        return ServerConfig(
            users=tuple(users),
            apps=tuple(apps),
            data_dir=None if data_dir is None else path.parent / data_dir,
            source=path,
            **server,
        )
    except HubicConfigError as error:
        # Duplicate logins and client ids are only found across entries.
        raise HubicConfigError(f"{error} (in {path})") from None


def _pass(value: object) -> object:
    return value


def _load_users(checker: _FileChecker, data: object) -> list[UserConfig]:
    users = []
    for index, entry in enumerate(checker.array(data, "users")):
        key = f"users[{index}]"
        values = checker.table(entry, key, _USER_KEYS, _REQUIRED_USER_KEYS)
        users.append(UserConfig(**values))
    return users


def _load_apps(checker: _FileChecker, data: object) -> list[AppConfig]:
    apps = []
    for index, entry in enumerate(checker.array(data, "apps")):
        key = f"apps[{index}]"
        values = checker.table(entry, key, _APP_KEYS, _REQUIRED_APP_KEYS)
        apps.append(AppConfig(**values))
    return apps
