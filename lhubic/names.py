"""Validation of container and object names before anything is sent.

Swift stores any name that is valid UTF-8 without a NUL character, up to
1,024 bytes for an object and 256 bytes for a container (the defaults of
``max_object_name_length`` and ``max_container_name_length`` in Swift's
constraints). python-swiftclient percent-encodes every other character, so
spaces, ``%``, ``#``, ``?``, ``+``, a leading ``/`` and non-Latin scripts all
round-trip.

One more rule comes from the HTTP stack rather than from Swift: urllib3 (used
by requests, which python-swiftclient sends through) removes ``.`` and ``..``
path segments from every URL, so ``a/../b`` would silently be stored as ``b``.
Such names are rejected here.
"""

from __future__ import annotations

from .exceptions import HubicObjectNameError

__all__ = [
    "MAX_CONTAINER_NAME_BYTES",
    "MAX_OBJECT_NAME_BYTES",
    "validate_container_name",
    "validate_object_name",
]

MAX_OBJECT_NAME_BYTES = 1024
MAX_CONTAINER_NAME_BYTES = 256

_DOT_SEGMENTS = frozenset({".", ".."})


def validate_container_name(name: object) -> str:
    """Return ``name`` if Swift can store it as a container name.

    Raises `HubicObjectNameError` naming the value and the broken rule.
    """
    text = _check_text(name, "container", MAX_CONTAINER_NAME_BYTES)
    if "/" in text:
        raise HubicObjectNameError(
            f"invalid container name {text!r}: it contains '/', which separates "
            "the container from the object in a Swift URL; put the part after "
            "'/' in the object name instead"
        )
    if text in _DOT_SEGMENTS:
        raise HubicObjectNameError(
            f"invalid container name {text!r}: HTTP clients remove '.' and '..' "
            "path segments from URLs; choose another name"
        )
    return text


def validate_object_name(name: object) -> str:
    """Return ``name`` if Swift can store it as an object name.

    Raises `HubicObjectNameError` naming the value and the broken rule.
    """
    text = _check_text(name, "object", MAX_OBJECT_NAME_BYTES)
    dot_segments = [part for part in text.split("/") if part in _DOT_SEGMENTS]
    if dot_segments:
        raise HubicObjectNameError(
            f"invalid object name {text!r}: it contains the path segment "
            f"{dot_segments[0]!r}, which HTTP clients remove from URLs, so the "
            "object would be stored under another name; rename that segment"
        )
    return text


def _check_text(name: object, kind: str, max_bytes: int) -> str:
    if not isinstance(name, str):
        raise HubicObjectNameError(
            f"invalid {kind} name {name!r}: expected str, got "
            f"{type(name).__name__}; decode bytes with name.decode('utf-8')"
        )
    if not name:
        raise HubicObjectNameError(
            f"invalid {kind} name '': a name needs at least one character"
        )
    if "\x00" in name:
        raise HubicObjectNameError(
            f"invalid {kind} name {name!r}: it contains a NUL character "
            "(U+0000), which Swift rejects; remove it"
        )

    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = name[error.start : error.end]
        raise HubicObjectNameError(
            f"invalid {kind} name {name!r}: {bad!r} at index {error.start} is a "
            "lone surrogate, which has no UTF-8 encoding; a file name read with "
            "errors='surrogateescape' is not valid UTF-8 and must be renamed"
        ) from None

    if len(encoded) > max_bytes:
        raise HubicObjectNameError(
            f"invalid {kind} name {_shorten(name)}: it is {len(encoded)} bytes "
            f"of UTF-8, over Swift's maximum of {max_bytes}; shorten it"
        )
    return name


def _shorten(name: str) -> str:
    if len(name) <= 60:
        return repr(name)
    return f"{name[:40]!r}... ({len(name)} characters)"
