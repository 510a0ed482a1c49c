"""Generators over every object of a container and every container of an account.

Swift returns at most 10,000 entries per listing request (its default
``container_listing_limit``; hubiC used the same). These generators request one
page at a time with ``marker`` set to the last name seen, so a listing of any
length costs memory for one page only.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from .exceptions import HubicError, HubicInputError
from .names import validate_container_name

__all__ = ["MAX_PAGE_SIZE", "iter_containers", "iter_objects"]

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 10_000


def iter_objects(
    connection: Any,
    container: str,
    *,
    prefix: str | None = None,
    delimiter: str | None = None,
    page_size: int = MAX_PAGE_SIZE,
    headers: dict[str, str] | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Yield every listing entry of ``container``, page by page, in name order.

    ``connection`` is a `swiftclient.client.Connection` (a `lhubic.Hubic`
    included). Each entry is Swift's JSON listing entry: ``name``, ``bytes``,
    ``hash``, ``content_type`` and ``last_modified``, plus ``slo_etag`` for a
    static large object. With ``delimiter``, names that continue past the
    delimiter collapse into one ``{"subdir": ...}`` entry each.
    """
    validate_container_name(container)
    limit = _check_page_size(page_size)
    marker: str | None = None
    pages = 0

    while True:
        _, page = connection.get_container(
            container,
            marker=marker,
            limit=limit,
            prefix=prefix,
            delimiter=delimiter,
            headers=headers,
        )
        pages += 1
        yield from page

        # Swift fills every page up to the limit while entries remain and
        # returns 412 for a limit above its own, so a short page is the last.
        if len(page) < limit:
            break
        marker = _entry_name(page[-1])

    logger.debug("listed container %r in %d pages", container, pages)


def iter_containers(
    connection: Any,
    *,
    prefix: str | None = None,
    page_size: int = MAX_PAGE_SIZE,
    headers: dict[str, str] | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Yield every container entry of the account, page by page, in name order.

    Each entry is Swift's JSON listing entry: ``name``, ``count``, ``bytes``
    and ``last_modified``.
    """
    limit = _check_page_size(page_size)
    marker: str | None = None

    while True:
        _, page = connection.get_account(
            marker=marker, limit=limit, prefix=prefix, headers=headers
        )
        yield from page
        if len(page) < limit:
            break
        marker = _entry_name(page[-1])


def _check_page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise HubicInputError(
            f"invalid page_size {page_size!r}: expected an int from 1 to "
            f"{MAX_PAGE_SIZE}"
        )
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise HubicInputError(
            f"invalid page_size {page_size}: Swift returns from 1 to "
            f"{MAX_PAGE_SIZE} entries per page; pass a value in that range"
        )
    return page_size


def _entry_name(entry: dict[str, Any]) -> str:
    name = entry.get("name", entry.get("subdir"))
    if not isinstance(name, str):
        raise HubicError(f"Swift returned a listing entry without a name: {entry!r}")
    return name
