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
from typing import Any

import pytest

from .faults import Faults
from .service import HubicServer

__all__ = ["FULL_SCOPE", "HubicTestServer", "hubic_faults", "hubic_server"]

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
