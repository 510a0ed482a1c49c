"""Validation of request headers before a storage call is sent.

Swift silently ignores several kinds of header instead of rejecting them, and
HTTP itself changes some values on the way. Each rule below stops a header
that Swift would drop, that HTTP would alter, or that Swift would reject
with 400:

- A header name is an HTTP token (RFC 9110) without ``_``: ASCII letters,
  digits and ``!#$%&'*+-.^`|~``. The WSGI server under Swift 2.38 (eventlet
  0.41) drops every header whose name contains ``_``.
- Header names ignore case, so two keys that differ only in case would send
  one of the two values.
- A value is a str, UTF-8 bytes, or an int, float or bool, which
  python-swiftclient sends as ``str(value)``. HTTP forbids line breaks and
  other control characters in a value and removes its outer spaces and tabs.
- Swift's gatekeeper removes the ``X-<type>-Sysmeta-``,
  ``X-Object-Transient-Sysmeta-`` and ``X-Backend-`` headers of clients.
- User metadata (``X-Account-Meta-<name>``, ``X-Container-Meta-<name>``,
  ``X-Object-Meta-<name>``) needs a non-empty name and is stored only on its
  own type: Swift ignores ``X-Container-Meta-`` in an object request.
- Swift's limits, in bytes of UTF-8: see the ``MAX_*`` constants.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Literal

from .exceptions import HubicInputError

__all__ = [
    "MAX_HEADER_VALUE_BYTES",
    "MAX_META_COUNT",
    "MAX_META_NAME_BYTES",
    "MAX_META_OVERALL_BYTES",
    "MAX_META_VALUE_BYTES",
    "StorageTarget",
    "validate_headers",
]

StorageTarget = Literal["account", "container", "object"]

# Swift 2.38's defaults in swift.common.constraints: max_header_size,
# max_meta_name_length, max_meta_value_length and max_meta_count.
MAX_HEADER_VALUE_BYTES = 8192
MAX_META_NAME_BYTES = 128
MAX_META_VALUE_BYTES = 256
MAX_META_COUNT = 90

# Swift 2.38's default max_meta_overall_size: the names after the prefix plus
# the values, summed over the metadata headers of one request.
# NOTE: the local service raises this limit to 7,168 bytes, so Hubic rejects
# some metadata that it would store. The limit a server applies is known only
# from its /info endpoint, which would cost a request.
MAX_META_OVERALL_BYTES = 4096

_TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^`|~")
_TARGETS: tuple[StorageTarget, ...] = ("account", "container", "object")
_RESERVED_PREFIXES = (
    "x-account-sysmeta-",
    "x-container-sysmeta-",
    "x-object-sysmeta-",
    "x-object-transient-sysmeta-",
    "x-backend-",
)
# Headers whose values are credentials, kept out of error messages.
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "x-auth-token",
        "x-service-token",
        "x-storage-token",
        "x-account-meta-temp-url-key",
        "x-account-meta-temp-url-key-2",
        "x-container-meta-temp-url-key",
        "x-container-meta-temp-url-key-2",
        "x-container-sync-key",
    }
)
_NUMBER_TYPES = (int, float, bool)
_OUTER_WHITESPACE = " \t"


def validate_headers(headers: object, target: StorageTarget) -> None:
    """Raise `HubicInputError` for a header Swift or HTTP would drop, alter or reject.

    ``headers`` is the ``headers`` argument of a storage call, a mapping of
    header names to values or None. ``target`` is the kind of item the call
    changes or reads, which decides the metadata prefix that Swift stores.
    The error names the header and the fix.
    """
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise HubicInputError(
            "invalid headers: expected a dict of header names to values, got "
            f"{type(headers).__name__}; pass for example "
            f"{{'X-{target.capitalize()}-Meta-Color': 'blue'}}"
        )

    seen: dict[str, str] = {}
    meta_count = 0
    meta_bytes = 0
    for name, value in headers.items():
        _check_name(name)
        _check_unique(name, seen)
        meta_name = _metadata_name(name, target)
        text = _value_text(name, value)
        _check_value(name, text, meta_name is not None)
        if meta_name is not None and not name.lower().startswith("x-remove-"):
            meta_count += 1
            meta_bytes += len(meta_name) + len(text.encode("utf-8"))

    _check_totals(meta_count, meta_bytes, target)


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise HubicInputError(
            f"invalid header name {name!r}: expected str, got {type(name).__name__}"
        )
    if not name:
        raise HubicInputError("invalid header name '': a header name cannot be empty")

    for index, character in enumerate(name):
        if character == "_":
            raise HubicInputError(
                f"invalid header name {name!r}: Swift's WSGI server drops every "
                "header whose name contains '_'; use '-' instead"
            )
        if character not in _TOKEN_CHARACTERS:
            raise HubicInputError(
                f"invalid header name {name!r}: {character!r} at index {index} is "
                "not allowed; a header name contains only ASCII letters, digits "
                "and !#$%&'*+-.^`|~"
            )

    lowered = name.lower()
    if lowered.startswith(_RESERVED_PREFIXES):
        raise HubicInputError(
            f"invalid header name {name!r}: Swift's gatekeeper removes system "
            "metadata and X-Backend- headers from client requests; store user "
            "metadata with X-Object-Meta-, X-Container-Meta- or X-Account-Meta-"
        )


def _check_unique(name: str, seen: dict[str, str]) -> None:
    lowered = name.lower()
    if lowered in seen:
        raise HubicInputError(
            f"headers {seen[lowered]!r} and {name!r} are the same header, because "
            "header names ignore case, and only one value would be sent; keep one"
        )
    seen[lowered] = name


def _metadata_name(name: str, target: StorageTarget) -> str | None:
    """Return the user metadata name in header ``name``, or None for another header.

    Raises `HubicInputError` for metadata of another type than ``target`` and
    for a name Swift rejects.
    """
    lowered = name.lower()
    for kind in _TARGETS:
        for prefix in (f"x-{kind}-meta-", f"x-remove-{kind}-meta-"):
            if lowered.startswith(prefix):
                return _check_metadata_name(name, name[len(prefix) :], kind, target)
    return None


def _check_metadata_name(
    name: str, meta_name: str, kind: StorageTarget, target: StorageTarget
) -> str:
    if kind != target:
        remove = "Remove-" if name.lower().startswith("x-remove-") else ""
        expected = f"X-{remove}{target.capitalize()}-Meta-{meta_name}"
        raise HubicInputError(
            f"invalid header {name!r}: it sets {kind} metadata, which Swift "
            f"ignores in {_with_article(target)} request; use {expected!r}"
        )
    if not meta_name:
        raise HubicInputError(
            f"invalid header {name!r}: the metadata name after the prefix is "
            f"empty, which Swift rejects; add a name, as in {name + 'Color'!r}"
        )
    if len(meta_name) > MAX_META_NAME_BYTES:
        raise HubicInputError(
            f"invalid header {_shorten(repr(name))}: its metadata name is "
            f"{len(meta_name)} bytes, over Swift's maximum of "
            f"{MAX_META_NAME_BYTES}; shorten it"
        )
    return meta_name


def _with_article(target: StorageTarget) -> str:
    return f"an {target}" if target[0] in "aeiou" else f"a {target}"


def _value_text(name: str, value: object) -> str:
    """Return the text python-swiftclient would send for ``value``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise HubicInputError(
                f"invalid value {_describe(name, value)} for header {name!r}: the "
                "bytes are not UTF-8; pass the value as str"
            ) from None
    # python-swiftclient converts exactly these types, not their subclasses.
    if type(value) in _NUMBER_TYPES:
        return str(value)
    raise HubicInputError(
        f"invalid value {_describe(name, value)} for header {name!r}: expected "
        f"str, bytes or a number, got {type(value).__name__}; pass str(value), "
        "or leave the header out"
    )


def _check_value(name: str, text: str, is_metadata: bool) -> None:
    for index, character in enumerate(text):
        if (ord(character) < 32 and character != "\t") or character == "\x7f":
            raise HubicInputError(
                f"invalid value {_describe(name, text)} for header {name!r}: "
                f"{character!r} at index {index} is a line break or control "
                "character, which HTTP does not allow in a header; remove it or "
                "percent-encode the value"
            )
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise HubicInputError(
            f"invalid value {_describe(name, text)} for header {name!r}: "
            f"{text[error.start]!r} at index {error.start} is a lone surrogate, "
            "which has no UTF-8 encoding; remove it"
        ) from None
    if text != text.strip(_OUTER_WHITESPACE):
        raise HubicInputError(
            f"invalid value {_describe(name, text)} for header {name!r}: HTTP "
            "removes spaces and tabs at the start and end of a value, so Swift "
            "would store it without them; strip them or percent-encode the value"
        )

    limit = MAX_META_VALUE_BYTES if is_metadata else MAX_HEADER_VALUE_BYTES
    if size > limit:
        raise HubicInputError(
            f"invalid value {_describe(name, text)} for header {name!r}: it is "
            f"{size} bytes of UTF-8, over Swift's maximum of {limit}; shorten it"
        )


def _check_totals(count: int, size: int, target: StorageTarget) -> None:
    if count > MAX_META_COUNT:
        raise HubicInputError(
            f"invalid headers: {count} {target} metadata items in one request, "
            f"over Swift's maximum of {MAX_META_COUNT}; send fewer"
        )
    if size > MAX_META_OVERALL_BYTES:
        raise HubicInputError(
            f"invalid headers: the {target} metadata names and values add up to "
            f"{size} bytes, over Swift's maximum of {MAX_META_OVERALL_BYTES}; "
            "send less metadata"
        )


def _describe(name: str, value: object) -> str:
    if name.lower() in _SECRET_HEADERS:
        return "(hidden, because the header carries a credential)"
    return _shorten(repr(value))


def _shorten(text: str) -> str:
    if len(text) <= 60:
        return text
    return f"{text[:40]}... ({len(text)} characters)"
