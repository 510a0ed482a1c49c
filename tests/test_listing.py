"""Tests for lhubic.listing against the local service and a real Swift."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from helpers import hubic_settings, make_hubic, run_in_threads

from lhubic import Hubic
from lhubic.exceptions import HubicInputError, HubicObjectNotFound
from lhubic.listing import MAX_PAGE_SIZE, iter_containers, iter_objects
from lhubic.server.pytest_plugin import HubicTestServer

MANY = MAX_PAGE_SIZE + 1


class CountingHubic(Hubic):
    """A Hubic that counts its listing requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listing_requests: list[dict[str, Any]] = []

    def get_container(self, container: str, **kwargs: Any) -> Any:
        self.listing_requests.append(kwargs)
        return super().get_container(container, **kwargs)

    def get_account(self, **kwargs: Any) -> Any:
        self.listing_requests.append(kwargs)
        return super().get_account(**kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[HubicTestServer]:
    # Swift's in-memory object server stores the 10,001 objects fastest.
    with HubicTestServer(object_server="memory") as running:
        yield running


@pytest.fixture
def hubic(server: HubicTestServer) -> Iterator[CountingHubic]:
    connection = CountingHubic(**hubic_settings(server))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def many_objects(server: HubicTestServer) -> str:
    """Return a container of 10,001 one-byte objects, one more than a page."""
    connection = make_hubic(server)
    container = "many"
    connection.put_container(container)

    def put(index: int) -> None:
        connection.put_object(container, f"obj-{index:05d}", b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(MANY)))
    connection.close()
    return container


def fill(hubic: Hubic, names: list[str]) -> str:
    container = f"l-{uuid.uuid4().hex[:10]}"
    hubic.put_container(container)
    for name in names:
        hubic.put_object(container, name, name.encode())
    return container


def test_iter_objects_pages_past_limit(hubic: CountingHubic, many_objects: str) -> None:
    names = [entry["name"] for entry in iter_objects(hubic, many_objects)]

    assert len(names) == MANY
    assert names == [f"obj-{index:05d}" for index in range(MANY)]
    assert len(hubic.listing_requests) == 2
    assert hubic.listing_requests[1]["marker"] == f"obj-{MAX_PAGE_SIZE - 1:05d}"


def test_iter_objects_is_lazy(hubic: CountingHubic, many_objects: str) -> None:
    entries = iter_objects(hubic, many_objects)

    first = next(entries)

    assert first["name"] == "obj-00000"
    assert first["bytes"] == 1
    assert len(hubic.listing_requests) == 1
    entries.close()


def test_iter_objects_with_prefix(hubic: CountingHubic, many_objects: str) -> None:
    names = [e["name"] for e in iter_objects(hubic, many_objects, prefix="obj-0999")]

    assert names == [f"obj-0999{digit}" for digit in range(10)]


def test_iter_objects_small_pages(hubic: CountingHubic) -> None:
    names = sorted(["a", "b c", "d%e", "f#g", "h?i", "/lead", "ж", "日本", "😀"])
    container = fill(hubic, names)
    hubic.listing_requests.clear()

    listed = [e["name"] for e in iter_objects(hubic, container, page_size=2)]

    assert listed == names
    assert len(hubic.listing_requests) == 5


@pytest.mark.parametrize(
    ("names", "options", "expected"),
    [
        (
            ["a/1", "a/2", "b", "c/x/y", "c/z", "d", "e/1"],
            {"page_size": 2},
            ["a/", "b", "c/", "d", "e/"],
        ),
        (
            ["c/x/y", "c/x/z", "c/z", "c/zz/1", "d"],
            {"prefix": "c/", "page_size": 1},
            ["c/x/", "c/z", "c/zz/"],
        ),
    ],
    ids=["delimiter", "prefix-and-delimiter"],
)
def test_iter_objects_with_delimiter(
    hubic: CountingHubic,
    names: list[str],
    options: dict[str, Any],
    expected: list[str],
) -> None:
    container = fill(hubic, names)

    entries = list(iter_objects(hubic, container, delimiter="/", **options))

    assert [entry.get("subdir", entry.get("name")) for entry in entries] == expected


def test_iter_objects_empty_container(hubic: CountingHubic) -> None:
    container = fill(hubic, [])

    assert list(iter_objects(hubic, container)) == []
    assert len(hubic.listing_requests) == 1


def test_iter_objects_missing_container(hubic: CountingHubic) -> None:
    with pytest.raises(HubicObjectNotFound):
        list(iter_objects(hubic, f"missing-{uuid.uuid4().hex}"))


def test_iter_containers_pages(hubic: CountingHubic) -> None:
    prefix = f"p-{uuid.uuid4().hex[:8]}-"
    expected = [f"{prefix}{index}" for index in range(5)]
    for name in expected:
        hubic.put_container(name)
    hubic.listing_requests.clear()

    entries = list(iter_containers(hubic, prefix=prefix, page_size=2))

    assert [entry["name"] for entry in entries] == expected
    assert all("count" in entry for entry in entries)
    assert len(hubic.listing_requests) == 3


def test_bad_page_size_rejected_before_sending(hubic: CountingHubic) -> None:
    for page_size in (0, MAX_PAGE_SIZE + 1, "10", True, 2.5):
        with pytest.raises(HubicInputError, match="page_size"):
            next(iter_objects(hubic, "default", page_size=page_size))  # type: ignore[arg-type]
        with pytest.raises(HubicInputError, match="page_size"):
            next(iter_containers(hubic, page_size=page_size))  # type: ignore[arg-type]

    assert hubic.listing_requests == []


def test_listing_from_threads(hubic: CountingHubic) -> None:
    container = fill(hubic, [f"n{index}" for index in range(20)])
    results: list[list[str]] = []
    lock = threading.Lock()

    def list_all(index: int) -> None:
        names = [e["name"] for e in iter_objects(hubic, container, page_size=3)]
        with lock:
            results.append(names)

    errors = run_in_threads(4, list_all)

    assert errors == []
    assert len(results) == 4
    assert all(names == sorted(f"n{index}" for index in range(20)) for names in results)
