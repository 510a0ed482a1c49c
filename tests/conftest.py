"""Settings shared by every test module."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_hubic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear the HUBIC_* variables, so the developer's own settings never leak in."""
    for name in list(os.environ):
        if name.startswith("HUBIC_"):
            monkeypatch.delenv(name)
