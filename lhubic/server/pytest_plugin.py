"""Pytest fixtures for the local hubiC service.

Installed lhubic registers this module as a pytest plugin, so any test suite
in the same environment can use:

- ``hubic_server``: one `HubicTestServer` for the whole test session, with a
  registered application (``hubic_server.app``) and user
  (``hubic_server.user``);
- ``hubic_faults``: the server's `Faults`, with every switch off before and
  after the test.

The service starts only when a test requests a fixture. Disable the plugin
with ``pytest -p no:lhubic``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from .faults import Faults
from .service import HubicServer

__all__ = [
    "FULL_SCOPE",
    "HubicTestServer",
    "fill_login_form",
    "hubic_faults",
    "hubic_server",
]

# Every entry point that the local service implements, with all its rights.
FULL_SCOPE = "usage.r,account.r,getAllLinks.r,credentials.r,links.drw"

TEST_CLIENT_ID = "api_hubic_lhubic_tests"
TEST_REDIRECT_URI = "http://127.0.0.1/lhubic-tests/callback"
TEST_LOGIN = "tester+lhubic@example.com"


class HubicTestServer(HubicServer):
    """A `HubicServer` with a registered application and user.

    ``app`` and ``user`` are their configurations, and ``scope`` is
    `FULL_SCOPE`. The password contains characters that form encoding must
    escape (``%``, ``&``, ``+``, a space, an accent), so a client that skips
    the escaping fails to log in. ``options`` go to `HubicServer`.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.app = self.add_app(
            TEST_CLIENT_ID, secrets.token_urlsafe(24), TEST_REDIRECT_URI
        )
        password = f"p%w &+é {secrets.token_urlsafe(12)}"
        self.user = self.add_user(
            TEST_LOGIN, password, firstname="Test", lastname="User"
        )
        self.scope = FULL_SCOPE

    def authorize(
        self,
        scope: str | None = None,
        *,
        login: str | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """Log in through the consent form like a browser, exchange the code,
        and return the token endpoint's JSON.

        The defaults are the registered user and `FULL_SCOPE`. Raises
        AssertionError, with the status, when a step does not succeed.
        """
        state = secrets.token_urlsafe(8)
        page = requests.get(
            f"{self.api_url}/oauth/auth/",
            params={
                "client_id": self.app.client_id,
                "redirect_uri": self.app.redirect_uri,
                "scope": scope or self.scope,
                "response_type": "code",
                "state": state,
            },
            timeout=30,
        )
        assert page.status_code == 200, f"GET /oauth/auth/ returned {page.status_code}"

        action, fields = fill_login_form(
            page.text, login or self.user.login, password or self.user.password
        )
        submitted = requests.post(
            urljoin(page.url, action), data=fields, allow_redirects=False, timeout=30
        )
        assert submitted.status_code == 302, (
            f"POST /oauth/auth/ returned {submitted.status_code}"
        )
        query = parse_qs(urlsplit(submitted.headers["Location"]).query)
        assert query.get("state") == [state], "the redirect lost the state"

        tokens = requests.post(
            f"{self.api_url}/oauth/token/",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": self.app.redirect_uri,
            },
            auth=(self.app.client_id, self.app.client_secret),
            timeout=30,
        )
        assert tokens.status_code == 200, (
            f"POST /oauth/token/ returned {tokens.status_code}"
        )
        result: dict[str, Any] = tokens.json()
        return result


class _FormReader(HTMLParser):
    """Collect the first form's action, inputs and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: list[dict[str, str | None]] = []
        self.buttons: list[dict[str, str | None]] = []
        self._forms_seen = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self._forms_seen += 1
            if self._forms_seen == 1:
                self.action = attributes.get("action") or ""
        elif self._forms_seen == 1 and tag == "input":
            self.inputs.append(attributes)
        elif self._forms_seen == 1 and tag == "button":
            if attributes.get("type", "submit") == "submit":
                self.buttons.append(attributes)


def fill_login_form(
    page: str, login: str, password: str, action: str = "accepted"
) -> tuple[str, list[tuple[str, str]]]:
    """Return the form action and the fields a browser submits for the page.

    Like a browser, it sends hidden inputs as they are, types ``login`` and
    ``password`` into the text and password inputs, sends only ticked
    checkboxes, and adds the name and value of the button whose value is
    ``action`` ("accepted" or "refused").
    """
    reader = _FormReader()
    reader.feed(page)
    if reader.action is None:
        raise AssertionError("the page has no form")

    fields: list[tuple[str, str]] = []
    for field in reader.inputs:
        name, kind = field.get("name"), (field.get("type") or "text").lower()
        if not name:
            continue
        if kind == "text":
            fields.append((name, login))
        elif kind == "password":
            fields.append((name, password))
        elif kind == "checkbox":
            if "checked" in field:
                fields.append((name, field.get("value") or "on"))
        else:
            fields.append((name, field.get("value") or ""))

    pressed = [button for button in reader.buttons if button.get("value") == action]
    if not pressed:
        raise AssertionError(f"the form has no button with value {action!r}")
    fields.append((pressed[0].get("name") or "", action))
    return reader.action, fields


@pytest.fixture(scope="session")
def hubic_server() -> Iterator[HubicTestServer]:
    """Run one local hubiC service for the test session.

    Tokens revoked or expired through it stay so for later tests, so tests
    that do that should log in again rather than share tokens.
    """
    with HubicTestServer() as server:
        yield server


@pytest.fixture
def hubic_faults(hubic_server: HubicServer) -> Iterator[Faults]:
    """Return the session server's fault switches, all off, and turn them off
    again after the test."""
    hubic_server.faults.clear()
    yield hubic_server.faults
    hubic_server.faults.clear()
