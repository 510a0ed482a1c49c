"""The layout of static large objects: segment sizes, names and manifests.

The functions here decide how a file is cut into segments, where the segments
are stored and what ETag Swift gives the result. They send no request, so
`lhubic.bulk` can compare local files with a container listing through them,
and ranged downloads can read a manifest's entries with them.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .bodies import CHUNK_SIZE, _md5
from .exceptions import HubicInputError, HubicObjectNameError, HubicTransferError
from .names import MAX_CONTAINER_NAME_BYTES, MAX_OBJECT_NAME_BYTES

__all__ = [
    "MAX_MANIFEST_SEGMENTS",
    "MAX_OBJECT_SIZE",
    "MIN_SEGMENT_SIZE",
    "file_md5",
    "file_slo_etag",
    "segments_container",
    "slo_etag",
]

MiB = 1024 * 1024

# Swift's defaults (2.38): ``max_file_size`` for one object (which is 2 bytes
# more), and the SLO middleware's ``min_segment_size`` and
# ``max_manifest_segments``.
MAX_OBJECT_SIZE = 5 * 1024 * MiB
MIN_SEGMENT_SIZE = 1 * MiB
MAX_MANIFEST_SEGMENTS = 1000


@dataclass(frozen=True)
class _Segment:
    index: int
    offset: int
    length: int
    name: str


def segments_container(container: str) -> str:
    """Return the container that stores the segments of ``container``'s objects."""
    name = f"{container}_segments"
    if len(name.encode("utf-8")) > MAX_CONTAINER_NAME_BYTES:
        raise HubicObjectNameError(
            f"container name {container!r} is too long for large objects: their "
            f"segments go in {name!r}, over Swift's {MAX_CONTAINER_NAME_BYTES} "
            "bytes; use a shorter container name"
        )
    return name


def _check_segment_size(segment_size: int) -> None:
    if (
        isinstance(segment_size, bool)
        or not isinstance(segment_size, int)
        or not MIN_SEGMENT_SIZE <= segment_size <= MAX_OBJECT_SIZE
    ):
        raise HubicInputError(
            f"invalid segment_size {segment_size!r}: Swift needs segments from "
            f"{MIN_SEGMENT_SIZE} bytes (1 MiB) to {MAX_OBJECT_SIZE} bytes (5 GiB)"
        )


def _choose_segment_size(size: int, requested: int) -> int:
    _check_segment_size(requested)
    smallest = -(-size // MAX_MANIFEST_SEGMENTS)
    if smallest > requested:
        # Round up to a whole MiB so the choice is stable across runs.
        return -(-smallest // MiB) * MiB
    return requested


def _segment_prefix(name: str, size: int, mtime: float, segment_size: int) -> str:
    """Return the name prefix of a file's segments.

    Size, modification time and segment size are part of it, so a rerun of the
    same upload finds its segments and a changed file never reuses stale ones.
    """
    # NOTE: segments of an unfinished upload stay until a later upload of the
    # same file completes. Nothing removes them if the file changed meanwhile.
    prefix = f"{name}/slo/{mtime:.6f}/{size}/{segment_size}/"
    if len(prefix.encode("utf-8")) + 8 > MAX_OBJECT_NAME_BYTES:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        prefix = f"lhubic-long-name/{digest}/slo/{mtime:.6f}/{size}/{segment_size}/"
    return prefix


def _plan_segments(size: int, segment_size: int, prefix: str) -> list[_Segment]:
    count = max(1, -(-size // segment_size))
    return [
        _Segment(
            index=index,
            offset=index * segment_size,
            length=min(segment_size, size - index * segment_size),
            name=f"{prefix}{index:08d}",
        )
        for index in range(count)
    ]


def slo_etag(segment_md5s: Iterable[str]) -> str:
    """Return the ETag Swift gives a static large object with these segments."""
    digest = _md5()
    for md5 in segment_md5s:
        digest.update(md5.encode("ascii"))
    return str(digest.hexdigest())


def file_md5(path: str | os.PathLike[str], offset: int = 0, length: int = -1) -> str:
    """Return the MD5 of ``length`` bytes of a file from ``offset`` (all if -1)."""
    digest = _md5()
    with open(path, "rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining != 0:
            size = CHUNK_SIZE if remaining < 0 else min(CHUNK_SIZE, remaining)
            chunk = handle.read(size)
            if not chunk:
                break
            digest.update(chunk)
            if remaining > 0:
                remaining -= len(chunk)
    return str(digest.hexdigest())


def file_slo_etag(path: str | os.PathLike[str], segment_size: int) -> str:
    """Return the ETag a static large object of this file would get from Swift.

    The file is cut into ``segment_size`` pieces, as `upload_file` cuts it.
    """
    size = os.stat(path).st_size
    md5s = [
        file_md5(path, offset, min(segment_size, size - offset))
        for offset in range(0, max(size, 1), segment_size)
    ]
    return slo_etag(md5s)


def _split_segment_path(path: str) -> tuple[str, str]:
    container, _, obj = path.lstrip("/").partition("/")
    if not container or not obj:
        raise HubicTransferError(f"manifest lists an invalid segment path {path!r}")
    return container, obj


def _segment_entry_length(entry: dict[str, Any]) -> int:
    if entry.get("range"):
        first, _, last = str(entry["range"]).partition("-")
        return int(last) - int(first) + 1
    if "data" in entry:
        return len(base64.b64decode(entry["data"]))
    return int(entry["bytes"])
