"""The login of the command-line tools: `lhubic.Hubic` from the environment.

`connect` reads the same ``HUBIC_*`` variables as `Hubic`, through the same
settings code in `lhubic.connection`. When no way to log in is configured and
stdin is a terminal, it prompts for the login and the password, so that no
secret has to appear on a command line, where other users can read it in
``ps``.
"""

from __future__ import annotations

import getpass
import sys

from .connection import Hubic, _read_settings, _require_login_material, _Settings
from .exceptions import HubicConfigError, HubicInvalidLogin
from .store import TokenStore, make_token_store

__all__ = ["connect"]


def connect(api_url: str | None, token_store: str | None) -> Hubic:
    """Return a `Hubic` configured from the environment and the options.

    ``api_url`` and ``token_store`` (a file path) are None when not given.
    When no way to log in is configured and stdin is a terminal, prompt for
    the missing login and password. Without a terminal, raise
    `HubicConfigError` naming the variables to set.
    """
    # Hubic's own checks of the settings and the store run first, so that a
    # HubicConfigError from Hubic below can only mean a missing login.
    settings = _read_settings(
        client_id=None,
        client_secret=None,
        username=None,
        password=None,
        refresh_token=None,
        api_url=api_url,
        redirect_uri=None,
        scope=None,
        timeout=None,
        command_line=True,
    )
    store = make_token_store(token_store)
    if store is not None:
        store.load()

    try:
        return Hubic(api_url=api_url, token_store=store)
    except HubicConfigError:
        if _has_login(settings):
            raise
        if not _stdin_is_terminal():
            raise HubicConfigError(_missing_login_message(settings)) from None
    return _connect_with_prompt(api_url, settings, store)


def _has_login(settings: _Settings) -> bool:
    try:
        _require_login_material(settings)
    except HubicConfigError:
        return False
    return True


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _missing_login_message(settings: _Settings) -> str:
    if settings.username:
        missing = f"the password for {settings.username!r}: set HUBIC_PASSWORD"
    else:
        missing = "a login: set HUBIC_USERNAME and HUBIC_PASSWORD"
    return (
        f"missing {missing}, or HUBIC_REFRESH_TOKEN, or pass --token-store with "
        "the file of an earlier run, or run the command in a terminal to type the "
        "password"
    )


def _connect_with_prompt(
    api_url: str | None, settings: _Settings, store: TokenStore | None
) -> Hubic:
    try:
        username = settings.username or _prompt_login()
        password = settings.password or getpass.getpass(
            f"hubiC password for {username}: "
        )
    except EOFError:
        raise HubicConfigError(
            "stdin ended before a login and password were entered"
        ) from None

    if not password:
        raise HubicConfigError(
            "no password entered; type it at the prompt, or set HUBIC_PASSWORD"
        )
    hubic = Hubic(
        username=username,
        password=password,
        api_url=api_url,
        token_store=store,
    )
    # Log in now: the library's message for a rejected password names the
    # variables, while here the user typed at least the password.
    try:
        hubic.get_auth()
    except HubicInvalidLogin:
        hubic.close()
        typed = "the password" if settings.username else "the login and password"
        raise HubicInvalidLogin(
            f"hubiC rejected the login {username!r} or its password; run the "
            f"command again and check {typed} you type"
        ) from None
    return hubic


def _prompt_login() -> str:
    # The prompt goes to stderr, because stdout carries only the results.
    print("hubiC login: ", end="", file=sys.stderr, flush=True)
    login = sys.stdin.readline()
    if not login:
        raise EOFError
    login = login.strip()
    if not login:
        raise HubicConfigError("no login entered; type it, or set HUBIC_USERNAME")
    return login
