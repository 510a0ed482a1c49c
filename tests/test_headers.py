"""Tests of lhubic.headers: the header checks, and the Swift behaviour behind them.

The unit tests call `validate_headers` directly. The others run against the
real Swift of the local service. Through `Hubic`, values at each limit must be
stored. Through a plain python-swiftclient connection, which skips the checks,
Swift must really drop, alter or reject with 400 each kind of header that the
checks reject.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import new_user_hubic
from swiftclient.client import Connection
from swiftclient.exceptions import ClientException

from lhubic import Hubic, HubicInputError
from lhubic.headers import (
    MAX_HEADER_VALUE_BYTES,
    MAX_META_COUNT,
    MAX_META_NAME_BYTES,
    MAX_META_OVERALL_BYTES,
    MAX_META_VALUE_BYTES,
    validate_headers,
)

CONTAINER = "headers"


# Unit tests of validate_headers.


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"X-Object-Meta-Color": "blue"},
        {"x-object-meta-color": "blue", "Content-Type": "text/plain"},
        {"X-Object-Meta-Count": 3},
        {"X-Object-Meta-Ratio": 0.5},
        {"X-Object-Meta-Huge": float("inf")},
        {"X-Object-Meta-Flag": True},
        {"X-Object-Meta-Raw": "caf\u00e9".encode()},
        {"X-Object-Meta-Empty": ""},
        {"X-Object-Meta-Inner": "a \t b"},
        {"X-Object-Meta-Text": "\u6f22\u5b57 and caf\u00e9"},
        {"X-Object-Meta-A.b~c!": "token characters"},
        {"X-Remove-Object-Meta-Old": "x"},
        {"X-Delete-After": 60, "If-None-Match": "*"},
        {"X-Object-Meta-" + "n" * MAX_META_NAME_BYTES: "v"},
        {"X-Object-Meta-Long": "v" * MAX_META_VALUE_BYTES},
        {"X-Object-Meta-Wide": "\u6f22" * (MAX_META_VALUE_BYTES // 3)},
        {"X-Object-Manifest": "c/" + "p" * (MAX_HEADER_VALUE_BYTES - 2)},
    ],
    ids=[
        "none",
        "empty-dict",
        "metadata",
        "lower-case-and-standard",
        "int",
        "float",
        "infinity",
        "bool",
        "utf8-bytes",
        "empty-value",
        "inner-tab",
        "non-ascii-value",
        "token-punctuation",
        "remove-header",
        "standard-headers",
        "name-at-limit",
        "value-at-limit",
        "multibyte-value-at-limit",
        "standard-value-at-limit",
    ],
)
def test_validate_headers_accepts(headers: Any) -> None:
    validate_headers(headers, "object")


@pytest.mark.parametrize(
    ("headers", "fragments"),
    [
        (["X-Object-Meta-A"], ["list", "dict"]),
        ({b"X-Object-Meta-A": "v"}, ["bytes", "expected str"]),
        ({"": "v"}, ["''", "empty"]),
        ({"Bad Header": "v"}, ["'Bad Header'", "' ' at index 3"]),
        ({"X-Object-Meta-Acc\u00e9nt": "v"}, ["Acc\u00e9nt", "index 17"]),
        ({"X-Object-Meta-Under_score": "v"}, ["Under_score", "'-'"]),
        ({"X-Custom_Header": "v"}, ["X-Custom_Header", "'_'"]),
        ({"X-Object-Meta-": "v"}, ["'X-Object-Meta-'", "empty"]),
        ({"X-Remove-Object-Meta-": "x"}, ["'X-Remove-Object-Meta-'", "empty"]),
        ({"X-Object-Meta-" + "n" * 129: "v"}, ["129 bytes", "128"]),
        ({"X-Object-Meta-Long": "v" * 257}, ["X-Object-Meta-Long", "257 bytes"]),
        ({"X-Object-Meta-Wide": "\u00e9" * 129}, ["258 bytes", "256"]),
        ({"X-Object-Manifest": "p" * 8193}, ["8193 bytes", "8192"]),
        ({"X-Object-Meta-Line": "a\nb"}, ["X-Object-Meta-Line", "'\\n'"]),
        ({"X-Object-Meta-Cr": "a\rb"}, ["X-Object-Meta-Cr", "'\\r'"]),
        ({"X-Object-Meta-Nul": "a\x00b"}, ["X-Object-Meta-Nul", "control"]),
        ({"X-Object-Meta-Del": "a\x7fb"}, ["X-Object-Meta-Del", "control"]),
        ({"X-Object-Meta-Lead": " a"}, ["X-Object-Meta-Lead", "spaces and tabs"]),
        ({"X-Object-Meta-Trail": "a "}, ["X-Object-Meta-Trail", "strip"]),
        ({"X-Object-Meta-Tab": "a\t"}, ["X-Object-Meta-Tab", "strip"]),
        ({"X-Object-Meta-Half": "a\udcff"}, ["X-Object-Meta-Half", "surrogate"]),
        ({"X-Object-Meta-Raw": b"\xff"}, ["X-Object-Meta-Raw", "not UTF-8"]),
        ({"X-Object-Meta-None": None}, ["X-Object-Meta-None", "leave the header"]),
        ({"X-Object-Meta-List": ["a"]}, ["X-Object-Meta-List", "list"]),
        ({"X-Object-Sysmeta-A": "v"}, ["X-Object-Sysmeta-A", "gatekeeper"]),
        ({"X-Backend-Thing": "v"}, ["X-Backend-Thing", "gatekeeper"]),
        (
            {"X-Container-Meta-Color": "blue"},
            ["X-Container-Meta-Color", "'X-Object-Meta-Color'"],
        ),
        (
            {"X-Remove-Account-Meta-Color": "x"},
            ["X-Remove-Account-Meta-Color", "'X-Remove-Object-Meta-Color'"],
        ),
        (
            {"X-Object-Meta-Color": "a", "x-object-meta-color": "b"},
            ["'X-Object-Meta-Color'", "'x-object-meta-color'"],
        ),
    ],
    ids=[
        "list",
        "bytes-name",
        "empty-name",
        "space-in-name",
        "non-ascii-name",
        "underscore-in-metadata-name",
        "underscore-in-other-name",
        "empty-metadata-name",
        "empty-remove-name",
        "metadata-name-over-limit",
        "value-over-limit",
        "multibyte-value-over-limit",
        "standard-value-over-limit",
        "newline",
        "carriage-return",
        "nul",
        "delete-character",
        "leading-space",
        "trailing-space",
        "trailing-tab",
        "lone-surrogate",
        "bytes-not-utf8",
        "none-value",
        "list-value",
        "sysmeta",
        "backend",
        "container-metadata",
        "remove-account-metadata",
        "same-name-in-two-cases",
    ],
)
def test_validate_headers_rejects(headers: Any, fragments: list[str]) -> None:
    with pytest.raises(HubicInputError) as caught:
        validate_headers(headers, "object")

    for fragment in fragments:
        assert fragment in str(caught.value)


def test_validate_headers_int_subclass_rejected() -> None:
    # python-swiftclient converts only exact int, float and bool values, and
    # requests raises InvalidHeader for anything else.
    class Size(int):
        pass

    with pytest.raises(HubicInputError) as caught:
        validate_headers({"X-Object-Meta-Size": Size(3)}, "object")

    assert "Size" in str(caught.value)
    assert "str(value)" in str(caught.value)


def test_validate_headers_count_limit() -> None:
    at_limit = {f"X-Object-Meta-K{i}": "v" for i in range(MAX_META_COUNT)}
    over_limit = {**at_limit, "X-Object-Meta-Extra": "v"}

    validate_headers(at_limit, "object")
    with pytest.raises(HubicInputError) as caught:
        validate_headers(over_limit, "object")

    assert f"{MAX_META_COUNT + 1} object metadata items" in str(caught.value)


def test_validate_headers_count_skips_remove() -> None:
    headers = {f"X-Object-Meta-K{i}": "v" for i in range(MAX_META_COUNT)}
    headers["X-Remove-Object-Meta-Old"] = "x"

    validate_headers(headers, "object")


def _overall(size: int) -> dict[str, str]:
    """Return metadata whose names (after the prefix) and values sum to ``size``."""
    headers = {}
    remaining = size
    index = 0
    while remaining > 0:
        name = f"K{index:03d}"
        value = "v" * min(MAX_META_VALUE_BYTES, remaining - len(name))
        headers[f"X-Container-Meta-{name}"] = value
        remaining -= len(name) + len(value)
        index += 1
    return headers


def test_validate_headers_overall_limit() -> None:
    at_limit = _overall(MAX_META_OVERALL_BYTES)
    over_limit = _overall(MAX_META_OVERALL_BYTES + 1)

    validate_headers(at_limit, "container")
    with pytest.raises(HubicInputError) as caught:
        validate_headers(over_limit, "container")

    assert f"{MAX_META_OVERALL_BYTES + 1} bytes" in str(caught.value)
    assert "container metadata" in str(caught.value)


@pytest.mark.parametrize(
    ("target", "header", "expected"),
    [
        ("account", "X-Object-Meta-A", "in an account request; use 'X-Account-Meta-A'"),
        ("container", "X-Account-Meta-A", "in a container request"),
        ("object", "X-Container-Meta-A", "in an object request"),
    ],
)
def test_validate_headers_other_target(target: Any, header: str, expected: str) -> None:
    with pytest.raises(HubicInputError) as caught:
        validate_headers({header: "v"}, target)

    assert expected in str(caught.value)


@pytest.mark.parametrize(
    "name", ["X-Auth-Token", "Authorization", "X-Container-Meta-Temp-URL-Key"]
)
def test_validate_headers_hides_credentials(name: str) -> None:
    secret = "s3cr3t-value\n"

    with pytest.raises(HubicInputError) as caught:
        validate_headers({name: secret}, "container")

    assert name in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


# Against the local service's Swift.


@pytest.fixture(scope="module")
def hubic(hubic_server: Any) -> Iterator[Hubic]:
    with new_user_hubic(hubic_server, "headers", CONTAINER) as connection:
        yield connection


@pytest.fixture(scope="module")
def direct(hubic: Hubic) -> Iterator[Connection]:
    """A plain swiftclient connection, which sends headers unchecked."""
    connection = Connection(
        preauthurl=hubic.url, preauthtoken=hubic.os_auth_token, retries=0
    )
    yield connection
    connection.close()


def _object_meta(headers: dict[str, str]) -> dict[str, str]:
    prefix = "x-object-meta-"
    return {
        key[len(prefix) :]: value
        for key, value in headers.items()
        if key.startswith(prefix)
    }


def test_limits_stored_through_hubic(hubic: Hubic, direct: Connection) -> None:
    long_name = "n" * MAX_META_NAME_BYTES
    wide_value = "\u00e9" * (MAX_META_VALUE_BYTES // 2)
    headers: dict[str, Any] = {
        f"X-Object-Meta-{long_name}": "v",
        "X-Object-Meta-Wide": wide_value,
        "X-Object-Meta-Inner": "a \t b",
        "X-Object-Meta-Empty": "",
        "X-Object-Meta-Count": 7,
        "X-Object-Meta-Flag": False,
    }

    hubic.put_object(CONTAINER, "limits", b"x", headers=headers)
    stored = _object_meta(direct.head_object(CONTAINER, "limits"))

    assert stored[long_name] == "v"
    assert stored["wide"] == wide_value
    assert stored["inner"] == "a \t b"
    assert stored["empty"] == ""
    assert stored["count"] == "7"
    assert stored["flag"] == "False"


def test_count_limit_stored_through_hubic(hubic: Hubic, direct: Connection) -> None:
    headers = {f"X-Object-Meta-K{i:02d}": "v" for i in range(MAX_META_COUNT)}

    hubic.put_object(CONTAINER, "many", b"x", headers=headers)
    stored = _object_meta(direct.head_object(CONTAINER, "many"))

    assert len(stored) == MAX_META_COUNT


def test_container_headers_rejected(hubic: Hubic) -> None:
    with pytest.raises(HubicInputError) as caught:
        hubic.post_container(CONTAINER, {"X-Container-Meta-Under_score": "v"})

    assert "X-Container-Meta-Under_score" in str(caught.value)


def test_account_headers_rejected(hubic: Hubic) -> None:
    with pytest.raises(HubicInputError) as caught:
        hubic.post_account({"X-Object-Meta-Color": "blue"})

    assert "'X-Account-Meta-Color'" in str(caught.value)


def test_get_account_headers_rejected(hubic: Hubic) -> None:
    with pytest.raises(HubicInputError) as caught:
        hubic.get_account(headers={"X-Newline": "a\nb"})

    assert "X-Newline" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "value", "stored_name"),
    [
        ("X-Object-Meta-Under_score", "v", "under_score"),
        ("X-Object-Meta-Under_score", "v", "under-score"),
        ("X-Container-Meta-Color", "v", "color"),
        ("X-Object-Sysmeta-Color", "v", "color"),
    ],
    ids=["underscore", "underscore-as-hyphen", "container-metadata", "sysmeta"],
)
def test_swift_drops_rejected_header(
    direct: Connection, header: str, value: str, stored_name: str
) -> None:
    name = f"dropped-{secrets.token_hex(4)}"

    direct.put_object(CONTAINER, name, b"x", headers={header: value})
    stored = _object_meta(direct.head_object(CONTAINER, name))

    assert stored_name not in stored
    with pytest.raises(HubicInputError):
        validate_headers({header: value}, "object")


def test_swift_strips_trailing_spaces(direct: Connection) -> None:
    # requests itself raises InvalidHeader for a leading space.
    value = "padded \t "

    direct.put_object(CONTAINER, "padded", b"x", headers={"X-Object-Meta-P": value})
    stored = _object_meta(direct.head_object(CONTAINER, "padded"))

    assert stored["p"] == value.strip()
    with pytest.raises(HubicInputError):
        validate_headers({"X-Object-Meta-P": value}, "object")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Object-Meta-": "v"},
        {"X-Object-Meta-" + "n" * (MAX_META_NAME_BYTES + 1): "v"},
        {"X-Object-Meta-Long": "v" * (MAX_META_VALUE_BYTES + 1)},
        {f"X-Object-Meta-K{i:02d}": "v" for i in range(MAX_META_COUNT + 1)},
    ],
    ids=["empty-name", "long-name", "long-value", "too-many"],
)
def test_swift_rejects_over_limit(direct: Connection, headers: dict[str, str]) -> None:
    with pytest.raises(ClientException) as caught:
        direct.put_object(CONTAINER, "over-limit", b"x", headers=headers)

    assert caught.value.http_status == 400
    with pytest.raises(HubicInputError):
        validate_headers(headers, "object")
