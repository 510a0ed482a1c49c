"""Tests that bad arguments raise a clear lhubic error before anything is sent.

Every case runs against this module's own local service. Storage traffic goes
through a `FaultProxy` (with no fault armed), so the proxy's request count
shows whether anything reached Swift. Each case also checks that the service
received no request, and that Swift's listing of the account and of the test
container, read through a separate connection straight to Swift, did not
change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pathlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from helpers import hubic_without_login, make_hubic, port_of
from swiftclient.client import Connection
from tcp_proxy import FaultProxy

from lhubic import (
    Hubic,
    HubicConfigError,
    HubicError,
    HubicInputError,
    HubicInsecureURL,
    HubicObjectNameError,
)
from lhubic.bulk import download_tree, upload_tree
from lhubic.listing import iter_objects
from lhubic.server.pytest_plugin import HubicTestServer
from lhubic.store import FileTokenStore

CONTAINER = "bad-input"
EXISTING = "existing.txt"


@dataclasses.dataclass
class Rig:
    """The service, the proxy in front of Swift, a logged-in Hubic and a
    direct Swift connection for checks."""

    server: HubicTestServer
    proxy: FaultProxy
    hubic: Hubic
    direct: Connection

    def snapshot(self) -> tuple[Any, ...]:
        """Return what the service, the proxy and Swift have seen and stored."""
        _, containers = self.direct.get_account(full_listing=True)
        _, objects = self.direct.get_container(CONTAINER, full_listing=True)
        return (
            self.server.request_count("/"),
            self.proxy.stats().requests,
            # Only names: Swift's container updater changes the account
            # listing's object counts later, on its own schedule.
            [entry["name"] for entry in containers],
            [(entry["name"], entry["hash"]) for entry in objects],
        )


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with (
        HubicTestServer() as server,
        FaultProxy(port_of(server.swift_url)) as proxy,
    ):
        # The service hands out the proxy as the storage endpoint, as hubiC
        # handed out a load balancer in front of Swift.
        direct_base = server.swift_url
        server.public_storage_url = proxy.url
        hubic = make_hubic(server, retries=1)
        hubic.put_container(CONTAINER)
        hubic.put_object(CONTAINER, EXISTING, b"kept")
        assert (hubic.url or "").startswith(proxy.url)
        account = urlsplit(hubic.url or "").path.rsplit("/", 1)[-1]
        direct = Connection(
            preauthurl=f"{direct_base}/v1/{account}",
            preauthtoken=hubic.os_auth_token,
            retries=0,
        )
        yield Rig(server, proxy, hubic, direct)
        direct.close()
        hubic.close()


def assert_rejected_unsent(
    rig: Rig,
    call: Callable[[], object],
    expected: type[BaseException] | tuple[type[BaseException], ...],
    *fragments: str,
) -> BaseException:
    """Check that ``call`` raises ``expected`` naming every fragment, and that
    neither the service nor Swift received anything."""
    before = rig.snapshot()

    with pytest.raises(expected) as caught:
        call()

    after = rig.snapshot()
    assert after[0] == before[0], "the hubiC service received a request"
    assert after[1] == before[1], "Swift received a request through the proxy"
    assert after[2:] == before[2:], "Swift's stored data changed"
    for fragment in fragments:
        assert fragment in str(caught.value)
    return caught.value


# Container and object names. Each entry pairs a name with a fragment that the
# error message must contain.
BAD_NAMES: list[tuple[Any, str]] = [
    (None, "NoneType"),
    (5, "int"),
    (b"bytes-name", "bytes"),
    ("", "''"),
    ("nul\x00inside", "NUL"),
    ("\udcff-surrogate", "surrogate"),
]
BAD_CONTAINER_NAMES = [
    *BAD_NAMES,
    ("has/slash", "'/'"),
    ("..", "'..'"),
    ("c" * 257, "257 bytes"),
]
BAD_OBJECT_NAMES = [
    *BAD_NAMES,
    ("a/../b", "'..'"),
    ("./a", "'.'"),
    ("o" * 1025, "1025 bytes"),
]

CONTAINER_CALLS: dict[str, Callable[[Hubic, Any], object]] = {
    "put_container": lambda hubic, name: hubic.put_container(name),
    "get_container": lambda hubic, name: hubic.get_container(name),
    "head_container": lambda hubic, name: hubic.head_container(name),
    "post_container": lambda hubic, name: hubic.post_container(
        name, {"X-Container-Meta-A": "b"}
    ),
    "delete_container": lambda hubic, name: hubic.delete_container(name),
    "iter_objects": lambda hubic, name: list(iter_objects(hubic, name)),
    "put_object": lambda hubic, name: hubic.put_object(name, "o", b"x"),
    "get_object": lambda hubic, name: hubic.get_object(name, "o"),
}

OBJECT_CALLS: dict[str, Callable[[Hubic, Any], object]] = {
    "put_object": lambda hubic, name: hubic.put_object(CONTAINER, name, b"x"),
    "get_object": lambda hubic, name: hubic.get_object(CONTAINER, name),
    "head_object": lambda hubic, name: hubic.head_object(CONTAINER, name),
    "post_object": lambda hubic, name: hubic.post_object(
        CONTAINER, name, {"X-Object-Meta-A": "b"}
    ),
    "delete_object": lambda hubic, name: hubic.delete_object(CONTAINER, name),
    "copy_object": lambda hubic, name: hubic.copy_object(
        CONTAINER, name, f"/{CONTAINER}/copy"
    ),
}


NAME_CALLS = {"container": CONTAINER_CALLS, "object": OBJECT_CALLS}
BAD_NAME_CASES = [
    pytest.param(kind, method, name, fragment, id=f"{kind}-{method}-{name!r:.24}")
    for kind, names in (
        ("container", BAD_CONTAINER_NAMES),
        ("object", BAD_OBJECT_NAMES),
    )
    for method in sorted(NAME_CALLS[kind])
    for name, fragment in names
]


@pytest.mark.parametrize(("kind", "method", "name", "fragment"), BAD_NAME_CASES)
def test_bad_name_rejected(
    rig: Rig, kind: str, method: str, name: Any, fragment: str
) -> None:
    call = NAME_CALLS[kind][method]

    error = assert_rejected_unsent(
        rig, lambda: call(rig.hubic, name), HubicObjectNameError, fragment
    )

    assert f"{kind} name" in str(error)


@pytest.mark.parametrize(
    ("destination", "fragment"),
    [
        (5, "destination"),
        (b"/bad-input/copy", "destination"),
        ("", "destination"),
        ("no-leading-slash", "destination"),
        (f"/{CONTAINER}", "destination"),
        (f"/{CONTAINER}/a/../b", "'..'"),
        (f"/{CONTAINER}/nul\x00inside", "NUL"),
        ("/" + "c" * 257 + "/copy", "257 bytes"),
    ],
    ids=[
        "int",
        "bytes",
        "empty",
        "no-leading-slash",
        "no-object",
        "dot-segment",
        "nul",
        "long-container",
    ],
)
def test_copy_object_bad_destination(rig: Rig, destination: Any, fragment: str) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.copy_object(CONTAINER, EXISTING, destination),
        HubicInputError,
        fragment,
    )


# Bodies, sizes and headers of put_object.


@pytest.mark.parametrize(
    ("contents", "fragment"),
    [
        (5, "int"),
        (3.5, "float"),
        (object(), "object"),
        ({"a": 1}, "dict"),
    ],
    ids=["int", "float", "object", "dict"],
)
def test_put_object_bad_contents(rig: Rig, contents: Any, fragment: str) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.put_object(CONTAINER, "body", contents),
        HubicInputError,
        fragment,
    )


@pytest.mark.parametrize(
    ("length", "fragment"),
    [(-1, "-1"), (-(2**40), "negative"), ("10", "'10'"), (2.5, "2.5"), (True, "True")],
    ids=["minus-one", "very-negative", "str", "float", "bool"],
)
def test_put_object_bad_content_length(rig: Rig, length: Any, fragment: str) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.put_object(CONTAINER, "sized", b"abc", content_length=length),
        HubicInputError,
        "content_length",
        fragment,
    )


def test_put_object_none_body_stores_empty(rig: Rig) -> None:
    # python-swiftclient documents contents=None as a zero-byte upload, and
    # Hubic keeps its signatures, so None is valid input here.
    rig.hubic.put_object(CONTAINER, "empty-from-none", None)

    headers = rig.direct.head_object(CONTAINER, "empty-from-none")
    assert headers["content-length"] == "0"
    rig.direct.delete_object(CONTAINER, "empty-from-none")


def test_put_object_file_closed(rig: Rig) -> None:
    source = io.BytesIO(b"data")
    source.close()

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.put_object(CONTAINER, "closed", source),
        (HubicInputError, ValueError),
    )


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        (["X-Object-Meta-A"], "list"),
        ({"X-Object-Meta-Line": "a\nb"}, "X-Object-Meta-Line"),
        ({"X-Object-Meta-Lead": " leading space"}, "X-Object-Meta-Lead"),
        ({"X-Object-Meta-Trail": "trailing space "}, "X-Object-Meta-Trail"),
        ({"X-Object-Meta-Under_score": "v"}, "X-Object-Meta-Under_score"),
        ({"X-Object-Meta-Acc\u00e9nt": "v"}, "X-Object-Meta-Acc\u00e9nt"),
        ({"X-Object-Meta-": "v"}, "X-Object-Meta-"),
        ({"X-Object-Meta-Long": "v" * 257}, "X-Object-Meta-Long"),
        ({"Bad Header": "v"}, "Bad Header"),
    ],
    ids=[
        "not-a-dict",
        "newline-value",
        "leading-space",
        "trailing-space",
        "underscore-name",
        "non-ascii-name",
        "empty-meta-name",
        "value-over-256-bytes",
        "space-in-name",
    ],
)
@pytest.mark.parametrize("method", ["put_object", "post_object"])
def test_object_bad_headers(rig: Rig, method: str, headers: Any, fragment: str) -> None:
    # Measured with Swift 2.38 behind the local service: a metadata name with
    # '_' or a non-ASCII character is not stored and no error is returned, a
    # value's outer spaces are stripped, and a value over 256 bytes gets 400
    # (max_meta_value_length). Each must therefore fail before sending.
    def call() -> object:
        if method == "put_object":
            return rig.hubic.put_object(CONTAINER, "headers", b"x", headers=headers)
        return rig.hubic.post_object(CONTAINER, EXISTING, headers=headers)

    assert_rejected_unsent(rig, call, HubicInputError, fragment)


# 0 is valid: python-swiftclient reads the whole body when resp_chunk_size is
# falsy.
@pytest.mark.parametrize(
    "chunk_size", [-1, "64", 1.5], ids=["minus-one", "str", "float"]
)
def test_get_object_bad_chunk_size(rig: Rig, chunk_size: Any) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.get_object(CONTAINER, EXISTING, resp_chunk_size=chunk_size),
        HubicInputError,
        "resp_chunk_size",
    )


# Files.


@pytest.fixture
def local_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "local.bin"
    path.write_bytes(secrets.token_bytes(1000))
    return path


def test_upload_file_missing_path(rig: Rig, tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.bin"

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.upload_file(CONTAINER, "up", missing),
        HubicInputError,
        str(missing),
    )


def test_upload_file_folder_path(rig: Rig, tmp_path: pathlib.Path) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.upload_file(CONTAINER, "up", tmp_path),
        HubicInputError,
        str(tmp_path),
    )


def test_upload_file_broken_link(rig: Rig, tmp_path: pathlib.Path) -> None:
    link = tmp_path / "broken-link"
    link.symlink_to(tmp_path / "nowhere")

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.upload_file(CONTAINER, "up", link),
        HubicInputError,
        str(link),
    )


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root can read a file whatever its mode, so it cannot be made unreadable",
)
def test_upload_file_unreadable(rig: Rig, local_file: pathlib.Path) -> None:
    local_file.chmod(0)

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.upload_file(CONTAINER, "up", local_file),
        (HubicInputError, PermissionError),
        str(local_file),
    )


def test_upload_file_fifo(rig: Rig, tmp_path: pathlib.Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.upload_file(CONTAINER, "up", fifo),
        HubicInputError,
        str(fifo),
    )


@pytest.fixture
def open_descriptor(tmp_path: pathlib.Path) -> Iterator[int]:
    """Return the number of a file descriptor open on a file of this test.

    An int path must be rejected, but os.stat and open() accept one as a file
    descriptor. Passing a number that this test owns keeps a call that uses
    it anyway away from pytest's own descriptors.
    """
    path = tmp_path / "descriptor.bin"
    path.write_bytes(b"descriptor data")
    descriptor = os.open(path, os.O_RDWR)
    yield descriptor
    with contextlib.suppress(OSError):
        os.close(descriptor)


@pytest.mark.parametrize("kind", ["none", "descriptor int", "bytes"])
def test_upload_file_bad_path_type(rig: Rig, open_descriptor: int, kind: str) -> None:
    path = {"none": None, "descriptor int": open_descriptor, "bytes": b"local.bin"}

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.upload_file(CONTAINER, "up", path[kind]),  # type: ignore[arg-type]
        HubicInputError,
        "path",
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("segment_size", 0),
        ("segment_size", -(2**20)),
        ("segment_size", "1048576"),
        ("large_object_threshold", -1),
        ("large_object_threshold", 6 * 2**30),
        ("workers", 0),
        ("workers", -2),
        ("workers", "4"),
    ],
)
def test_upload_file_bad_option(
    rig: Rig, local_file: pathlib.Path, option: str, value: Any
) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.upload_file(CONTAINER, "up", local_file, **{option: value}),
        HubicInputError,
        option,
    )


def test_download_file_missing_folder(rig: Rig, tmp_path: pathlib.Path) -> None:
    target = tmp_path / "no-such-folder" / "out.bin"

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.download_file(CONTAINER, EXISTING, target),
        HubicInputError,
        str(target.parent),
    )


def test_download_file_folder_target(rig: Rig, tmp_path: pathlib.Path) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.download_file(CONTAINER, EXISTING, tmp_path),
        HubicInputError,
        str(tmp_path),
    )


@pytest.mark.parametrize("kind", ["none", "descriptor int"])
def test_download_file_bad_path_type(rig: Rig, open_descriptor: int, kind: str) -> None:
    path = None if kind == "none" else open_descriptor

    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.download_file(CONTAINER, EXISTING, path),  # type: ignore[arg-type]
        HubicInputError,
        "path",
    )


@pytest.mark.parametrize(
    "page_size", [0, -1, 10001, "100", 2.0], ids=["0", "-1", "10001", "str", "float"]
)
def test_iter_objects_bad_page_size(rig: Rig, page_size: Any) -> None:
    assert_rejected_unsent(
        rig,
        lambda: list(iter_objects(rig.hubic, CONTAINER, page_size=page_size)),
        HubicInputError,
        "page_size",
    )


def test_upload_tree_missing_folder(rig: Rig, tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "absent"

    assert_rejected_unsent(
        rig,
        lambda: upload_tree(rig.hubic, missing, CONTAINER),
        HubicInputError,
        str(missing),
    )


def test_download_tree_file_as_folder(rig: Rig, local_file: pathlib.Path) -> None:
    assert_rejected_unsent(
        rig,
        lambda: download_tree(rig.hubic, CONTAINER, local_file),
        HubicInputError,
        str(local_file),
    )


def test_bulk_rejects_plain_connection(rig: Rig, tmp_path: pathlib.Path) -> None:
    assert_rejected_unsent(
        rig,
        lambda: upload_tree(rig.direct, tmp_path, CONTAINER),
        HubicInputError,
        "Connection",
    )


@pytest.mark.parametrize("workers", [0, -1, "2"], ids=["0", "-1", "str"])
def test_upload_tree_bad_workers(
    rig: Rig, tmp_path: pathlib.Path, workers: Any
) -> None:
    (tmp_path / "one.txt").write_bytes(b"1")

    assert_rejected_unsent(
        rig,
        lambda: upload_tree(rig.hubic, tmp_path, CONTAINER, workers=workers),
        HubicInputError,
        "workers",
    )


# REST API paths.


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (None, "None"),
        (5, "5"),
        ("", "''"),
        ("https://example.com/1.0/account", "not a URL"),
        ("//example.com/account", "not a URL"),
        ("/account\nX-Injected: 1", "control character"),
        ("/account/../../oauth/token", "'..'"),
    ],
    ids=["none", "int", "empty", "absolute-url", "scheme-relative", "newline", "dots"],
)
@pytest.mark.parametrize("method", ["hubic_get", "hubic_post", "hubic_delete"])
def test_rest_bad_path(rig: Rig, method: str, path: Any, fragment: str) -> None:
    call = getattr(rig.hubic, method)

    assert_rejected_unsent(rig, lambda: call(path), HubicInputError, fragment)


def test_rest_post_bad_data(rig: Rig) -> None:
    assert_rejected_unsent(
        rig,
        lambda: rig.hubic.hubic_post("/account/links", data=5),  # type: ignore[arg-type]
        HubicInputError,
        "data",
    )


# Settings given to the constructor.


@pytest.mark.parametrize(
    ("url", "expected", "fragment"),
    [
        ("http://example.com", HubicInsecureURL, "plain HTTP"),
        ("ftp://127.0.0.1/", HubicConfigError, "not an absolute http"),
        ("https://", HubicConfigError, "not an absolute http"),
        ("api.hubic.com", HubicConfigError, "not an absolute http"),
        ("https://user:pw@api.example.com", HubicConfigError, "user name"),
        ("https://api.example.com/?x=1", HubicConfigError, "query"),
        (5, HubicConfigError, "api_url"),
        ("https://api.example.com:99999", HubicConfigError, "99999"),
        ("https://api example.com", HubicConfigError, "api example"),
    ],
    ids=[
        "plain-http-remote",
        "ftp",
        "no-host",
        "no-scheme",
        "credentials-in-url",
        "query",
        "int",
        "bad-port",
        "space-in-host",
    ],
)
def test_constructor_bad_api_url(
    rig: Rig, url: Any, expected: type[BaseException], fragment: str
) -> None:
    assert_rejected_unsent(
        rig, lambda: make_hubic(rig.server, api_url=url), expected, fragment
    )


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("timeout", -1, "timeout"),
        ("timeout", 0, "timeout"),
        ("timeout", "5", "timeout"),
        ("timeout", (1, 2, 3), "timeout"),
        ("retries", -1, "retries"),
        ("retries", "3", "retries"),
        ("scope", "usage", "scope"),
        ("scope", "usage.x", "scope"),
        ("redirect_uri", "not a uri", "redirect_uri"),
        ("token_store", 42, "token_store"),
        ("client_id", 7, "client_id"),
        ("username", ["a"], "username"),
        ("starting_backoff", -1, "starting_backoff"),
        ("max_backoff", "fast", "max_backoff"),
    ],
)
def test_constructor_bad_setting(
    rig: Rig, option: str, value: Any, fragment: str
) -> None:
    assert_rejected_unsent(
        rig,
        lambda: make_hubic(rig.server, **{option: value}),
        (HubicConfigError, HubicInputError),
        fragment,
    )


@pytest.mark.parametrize(
    "secret_option", ["client_secret", "password", "refresh_token"]
)
def test_constructor_bad_secret_type_hidden(rig: Rig, secret_option: str) -> None:
    secret = 987654321987

    error = assert_rejected_unsent(
        rig,
        lambda: make_hubic(rig.server, **{secret_option: secret}),
        HubicConfigError,
        secret_option,
    )

    assert str(secret) not in str(error)


@pytest.mark.parametrize(
    "token",
    ["line\nbreak-SECRET", "tab\tSECRET", "caf\u00e9-SECRET", " ", "SECRET\x00"],
    ids=["newline", "tab", "non-ascii", "space-only", "nul"],
)
def test_constructor_malformed_refresh_token(rig: Rig, token: str) -> None:
    # RFC 6749, appendix A: a refresh token is one or more VSCHAR, the
    # printable ASCII characters from 0x20 to 0x7E.
    error = assert_rejected_unsent(
        rig,
        lambda: hubic_without_login(rig.server, refresh_token=token),
        HubicConfigError,
        "refresh_token",
    )

    assert "SECRET" not in str(error)


# Tokens and URLs read from a token store.


def _stored_record(rig: Rig, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "version": 1,
        "api_url": rig.server.api_url,
        "client_id": rig.server.app.client_id,
        "refresh_token": rig.hubic.refresh_token,
        "access_token": rig.hubic.access_token,
        "access_token_expires": "2100-01-01T00:00:00+00:00",
        "storage_token": rig.hubic.os_auth_token,
        "storage_url": rig.hubic.os_storage_url,
        "storage_token_expires": "2100-01-01T00:00:00+00:00",
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    "storage_url",
    [
        "http://storage.example.com/v1/AUTH_x",
        "not a url",
        "https://user:pw@storage.example.com/v1/AUTH_x",
    ],
    ids=["plain-http-remote", "not-a-url", "credentials-in-url"],
)
def test_stored_bad_storage_url_never_used(
    rig: Rig, tmp_path: pathlib.Path, storage_url: str
) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(_stored_record(rig, storage_url=storage_url))

    try:
        hubic = make_hubic(rig.server, token_store=path, retries=1)
    except HubicConfigError as error:
        assert str(path) in str(error) or "storage URL" in str(error)
        return

    assert hubic.os_storage_url != storage_url
    hubic.head_container(CONTAINER)
    assert hubic.os_storage_url != storage_url


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("access_token", "bad\r\nX-Injected: 1"),
        ("storage_token", "bad\r\nX-Injected: 1"),
        ("access_token", 12345),
        ("storage_token", ["list"]),
        ("access_token_expires", "yesterday"),
        ("storage_token_expires", 1700000000),
    ],
    ids=[
        "access-newline",
        "storage-newline",
        "access-int",
        "storage-list",
        "access-expiry-text",
        "storage-expiry-int",
    ],
)
def test_stored_malformed_token_never_sent(
    rig: Rig, tmp_path: pathlib.Path, key: str, value: Any
) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(_stored_record(rig, **{key: value}))

    try:
        hubic = make_hubic(rig.server, token_store=path, retries=1)
        hubic.head_container(CONTAINER)
        hubic.hubic_get("/account")
    except HubicError as error:
        assert "\r\n" not in str(error)
        return
    except requests.exceptions.InvalidHeader as error:
        pytest.fail(f"a malformed stored token reached the HTTP layer: {error}")

    assert hubic.access_token != value
    assert hubic.os_auth_token != value
