"""Tests for lhubic.names: the rules, and round trips of hard names through Swift."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_hubic

from lhubic import Hubic
from lhubic.exceptions import HubicObjectNameError
from lhubic.names import (
    MAX_CONTAINER_NAME_BYTES,
    MAX_OBJECT_NAME_BYTES,
    validate_container_name,
    validate_object_name,
)
from lhubic.server.pytest_plugin import HubicTestServer

VALID_OBJECT_NAMES = [
    "plain.txt",
    "with space",
    "  leading and trailing  ",
    "100% sure",
    "%20 is not a space",
    "a#fragment",
    "what?query=1&x=2",
    "a+b=c",
    "/leading slash",
    "//two leading slashes",
    "folder/",
    "a//b",
    "semi;colon,comma",
    "quote\"and'apostrophe",
    "back\\slash",
    "tab\tand\nnewline",
    "..hidden",
    "a/.../b",
    "日本語/ファイル名.txt",
    "Ελληνικά",
    "עברית",
    "العربية",
    "emoji 🎉 name",
    "combining e\u0301",
    "x" * MAX_OBJECT_NAME_BYTES,
    "é" * (MAX_OBJECT_NAME_BYTES // 2),
]

INVALID_OBJECT_NAMES = [
    ("", "at least one character"),
    ("a\x00b", "NUL"),
    ("lone \ud800 surrogate", "surrogate"),
    ("\udcff", "surrogate"),
    ("x" * (MAX_OBJECT_NAME_BYTES + 1), "1025 bytes"),
    ("é" * (MAX_OBJECT_NAME_BYTES // 2 + 1), "1026 bytes"),
    (".", "'.'"),
    ("..", "'..'"),
    ("a/../b", "'..'"),
    ("./a", "'.'"),
    ("a/.", "'.'"),
    (b"bytes", "expected str"),
    (None, "expected str"),
    (42, "expected str"),
]


@pytest.mark.parametrize("name", VALID_OBJECT_NAMES)
def test_valid_object_name(name: str) -> None:
    assert validate_object_name(name) == name


@pytest.mark.parametrize(("name", "rule"), INVALID_OBJECT_NAMES)
def test_invalid_object_name(name: object, rule: str) -> None:
    with pytest.raises(HubicObjectNameError) as caught:
        validate_object_name(name)

    message = str(caught.value)
    assert message.startswith("invalid object name")
    assert rule in message


def test_invalid_name_message_shows_value() -> None:
    with pytest.raises(HubicObjectNameError, match="'a\\\\x00b'"):
        validate_object_name("a\x00b")
    with pytest.raises(HubicObjectNameError, match="'xxxx"):
        validate_object_name("x" * 2000)


@pytest.mark.parametrize(
    "name", ["default", "with space", "ünïcödé", "%#?+", "c" * MAX_CONTAINER_NAME_BYTES]
)
def test_valid_container_name(name: str) -> None:
    assert validate_container_name(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("a/b", "'/'"),
        ("/", "'/'"),
        ("", "at least one character"),
        ("c" * (MAX_CONTAINER_NAME_BYTES + 1), "257 bytes"),
        ("a\x00", "NUL"),
        ("\ud800", "surrogate"),
        (".", "'.'"),
        ("..", "'..'"),
        (None, "expected str"),
    ],
)
def test_invalid_container_name(name: object, rule: str) -> None:
    with pytest.raises(HubicObjectNameError) as caught:
        validate_container_name(name)

    assert str(caught.value).startswith("invalid container name")
    assert rule in str(caught.value)


# Round trips through Swift.


@pytest.fixture(scope="module")
def hubic(hubic_server: HubicTestServer) -> Iterator[Hubic]:
    connection = make_hubic(hubic_server)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def container(hubic: Hubic) -> str:
    name = f"names ü #?% {uuid.uuid4().hex[:8]}"
    hubic.put_container(name)
    return name


@pytest.mark.parametrize("name", VALID_OBJECT_NAMES)
def test_object_name_round_trip(hubic: Hubic, container: str, name: str) -> None:
    data = name.encode("utf-8")

    hubic.put_object(container, name, data)
    headers = hubic.head_object(container, name)
    _, body = hubic.get_object(container, name)
    listed = [e["name"] for e in hubic.get_container(container, prefix=name)[1]]
    hubic.delete_object(container, name)

    assert int(headers["content-length"]) == len(data)
    assert body == data
    assert name in listed


def test_file_round_trip_with_hard_names(
    hubic: Hubic, container: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"content")

    for name in ["/a b/%?#+ 日本.txt", "folder/", "x" * MAX_OBJECT_NAME_BYTES]:
        target = tmp_path / "target"
        hubic.upload_file(container, name, source)
        hubic.download_file(container, name, target)

        assert target.read_bytes() == b"content", name
