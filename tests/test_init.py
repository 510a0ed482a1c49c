"""Tests for the package itself: its public names and its logger."""

from __future__ import annotations

import inspect
import logging

import lhubic
from lhubic import exceptions


def test_all_names_resolve() -> None:
    missing = [name for name in lhubic.__all__ if not hasattr(lhubic, name)]

    assert missing == []


def test_all_lists_every_exception() -> None:
    classes = {
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and issubclass(value, exceptions.HubicError)
    }

    assert classes <= set(lhubic.__all__)
    assert set(exceptions.__all__) == classes


def test_all_lists_public_callables() -> None:
    public = {
        name
        for name, value in vars(lhubic).items()
        if not name.startswith("_") and (inspect.isclass(value) or callable(value))
    }

    assert public <= set(lhubic.__all__)


def test_original_exception_names_exported() -> None:
    for name in ("HubicAuthFailure", "HubicTokenFailure", "HubicAccessFailure"):
        error = getattr(lhubic, name)
        assert issubclass(error, lhubic.HubicError)


def test_package_logger_has_null_handler() -> None:
    handlers = logging.getLogger("lhubic").handlers

    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)
