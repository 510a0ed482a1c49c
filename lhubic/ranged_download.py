"""Parallel ranged downloads into a file, checked against MD5s as they arrive.

A plain object, or every segment of a static large object, is fetched in
ranged parts on a thread pool and written in place, while the calling thread
hashes each plain object or segment in order. It lives apart from
`lhubic.transfers.TransferMixin`, which decides when a download is large enough
for it, because it keeps its own threads, locks and file offsets. It reaches
the connection and the progress counter through the protocols `_ObjectReader`
and `_ProgressCounter`, so it does not import `lhubic.transfers`.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, cast

from swiftclient.exceptions import ClientException

from .bodies import CHUNK_SIZE, _check_md5, _md5, _strip_etag
from .exceptions import HubicTransferError
from .large_objects import _segment_entry_length, _split_segment_path

__all__ = ["PART_SIZE"]

MiB = 1024 * 1024

# Bytes per ranged GET when a large object downloads in parallel parts. Swift's
# object server (2.38) computes the MD5 of every read that starts at offset 0,
# so only the first part of each object or segment costs it that work. The
# client checks the MD5 of the whole object or segment itself.
PART_SIZE = 32 * MiB


class _ProgressCounter(Protocol):
    """The calls a download makes on `lhubic.transfers._Progress`."""

    def add_bytes(self, count: int) -> None: ...

    def add_total(self, byte_count: int, file_count: int) -> None: ...


class _ObjectReader(Protocol):
    """The calls a ranged download makes on `lhubic.transfers.TransferMixin`."""

    def get_object(
        self,
        container: str,
        obj: str,
        *,
        resp_chunk_size: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[dict[str, str], Any]: ...

    def _close_finished_threads(self) -> None: ...


@dataclass
class _Unit:
    """Bytes checked as a whole: one plain object, or one segment of a manifest.

    ``offset`` is where the unit starts in the target file. ``first`` is where
    it starts in the object, which is not 0 for a manifest entry with a range.
    ``md5`` is its expected MD5 when known. ``first_body`` is an open stream of
    the object from its start, which serves the first part.
    """

    container: str
    obj: str
    offset: int
    length: int
    md5: str | None
    first: int = 0
    data: bytes | None = None
    first_body: Any = None


@dataclass
class _Part:
    unit: _Unit
    start: int
    end: int
    written: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start


def _manifest_units(manifest: list[dict[str, Any]]) -> list[_Unit]:
    units = []
    offset = 0
    for entry in manifest:
        length = _segment_entry_length(entry)
        if "data" in entry:
            data = base64.b64decode(entry["data"])
            units.append(_Unit("", "", offset, length, None, data=data))
        else:
            container, obj = _split_segment_path(str(entry["name"]))
            first = 0
            md5: str | None = _strip_etag(entry.get("hash")) or None
            if entry.get("range"):
                first = int(str(entry["range"]).partition("-")[0])
                md5 = None
            if entry.get("sub_slo"):
                md5 = None
            units.append(_Unit(container, obj, offset, length, md5, first=first))
        offset += length
    return units


class _RangedDownload:
    """Fetch units in ranged parts on a thread pool and check each unit's MD5.

    Parts are written where they belong in ``fd`` as they arrive. The calling
    thread reads the file back in order and hashes each unit while the parts
    still download, so memory stays at one chunk per thread.
    """

    def __init__(
        self,
        connection: _ObjectReader,
        fd: int,
        units: list[_Unit],
        progress: _ProgressCounter,
        part_size: int,
    ) -> None:
        self._connection = connection
        self._fd = fd
        self._units = units
        self._progress = progress
        self._parts = [
            _Part(unit, start, min(start + part_size, unit.length))
            for unit in units
            for start in range(0, unit.length, part_size)
        ]
        self._changed = threading.Condition()
        self._error: BaseException | None = None
        self._cancel = threading.Event()

    def run(self, workers: int) -> None:
        total = sum(unit.length for unit in self._units)
        self._progress.add_total(total, 0)
        os.ftruncate(self._fd, total)

        executor = ThreadPoolExecutor(
            max(1, min(workers, len(self._parts))), thread_name_prefix="lhubic-download"
        )
        try:
            for part in self._parts:
                executor.submit(self._fetch, part)
            self._verify()
        except BaseException:
            self._cancel.set()
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            for unit in self._units:
                if unit.first_body is not None:
                    unit.first_body.close()
            self._connection._close_finished_threads()

    def _fetch(self, part: _Part) -> None:
        try:
            if part.unit.data is not None:
                data = part.unit.data[part.start : part.end]
                self._write(part, [data])
            else:
                self._write(part, self._open(part))
        except BaseException as error:  # noqa: BLE001 - the verifying thread raises it
            with self._changed:
                if self._error is None:
                    self._error = error
                self._changed.notify_all()

    def _open(self, part: _Part) -> Iterator[bytes]:
        unit = part.unit
        if part.start == 0 and unit.first_body is not None:
            return iter(unit.first_body)

        first = unit.first + part.start
        last = unit.first + part.end - 1
        headers = {"Range": f"bytes={first}-{last}"}
        if unit.md5 is not None:
            headers["If-Match"] = unit.md5
        try:
            response_headers, body = self._connection.get_object(
                unit.container, unit.obj, resp_chunk_size=CHUNK_SIZE, headers=headers
            )
        except ClientException as error:
            if error.http_status != 412:
                raise
            raise HubicTransferError(
                f"{unit.container}/{unit.obj} changed during the download (its "
                f"ETag is no longer {unit.md5}); download it again",
                status=412,
            ) from error
        content_range = response_headers.get("content-range", "")
        if not content_range.startswith(f"bytes {first}-{last}/"):
            body.close()
            raise HubicTransferError(
                f"Swift returned {content_range or 'the whole object'} for the "
                f"range {first}-{last} of {unit.container}/{unit.obj}"
            )
        return cast(Iterator[bytes], body)

    def _write(self, part: _Part, chunks: Iterable[bytes]) -> None:
        position = part.unit.offset + part.start
        for chunk in chunks:
            if self._cancel.is_set():
                return
            view = memoryview(chunk)[: part.length - part.written]
            while view:
                count = os.pwrite(self._fd, view, position + part.written)
                view = view[count:]
                with self._changed:
                    part.written += count
                    self._changed.notify_all()
                self._progress.add_bytes(count)
            if part.written >= part.length:
                break
        if part.written < part.length and not self._cancel.is_set():
            missing = part.length - part.written
            raise HubicTransferError(
                f"{part.unit.container}/{part.unit.obj} ended {missing} bytes short "
                f"of the part at {part.start}; download it again"
            )

    def _verify(self) -> None:
        parts = iter(self._parts)
        for unit in self._units:
            digest = _md5()
            remaining = unit.length
            while remaining > 0:
                part = next(parts)
                hashed = 0
                while hashed < part.length:
                    available = self._wait_for(part, hashed)
                    size = min(available - hashed, CHUNK_SIZE)
                    position = unit.offset + part.start + hashed
                    digest.update(os.pread(self._fd, size, position))
                    hashed += size
                remaining -= part.length
            if unit.md5 is not None:
                target = f"{unit.container}/{unit.obj}"
                _check_md5(str(digest.hexdigest()), unit.md5, target)

    def _wait_for(self, part: _Part, hashed: int) -> int:
        with self._changed:
            while part.written <= hashed and self._error is None:
                self._changed.wait()
            if self._error is not None:
                raise self._error
            return part.written


def _write_stream(body: Any, fd: int, offset: int, progress: _ProgressCounter) -> int:
    written = 0
    for chunk in body:
        view = memoryview(chunk)
        while view:
            count = os.pwrite(fd, view, offset + written)
            view = view[count:]
            written += count
        progress.add_bytes(len(chunk))
    return written
