"""Upload and download bodies, and the MD5 and ETag helpers they check with.

An upload body hashes the bytes it sends, counts them for progress and rewinds
its source when python-swiftclient retries the request. A download body
hashes what it yields and checks the MD5 when the stream ends. They are kept
apart from `lhubic.transfers.TransferMixin` because they only wrap a source
or a stream and send no request of their own.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from swiftclient.utils import ReadableToIterable

from .exceptions import (
    HubicChecksumMismatch,
    HubicInputError,
    HubicSourceNotRewindable,
    HubicTransferError,
)

__all__ = ["CHUNK_SIZE"]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024

# Bytes per read and per socket send. Larger chunks cost memory per worker,
# and smaller ones cost Python overhead per byte.
CHUNK_SIZE = 1 * MiB


def _md5() -> Any:
    # Swift's ETags are MD5 digests, which detect corruption but not tampering.
    return hashlib.md5(usedforsecurity=False)


def _strip_etag(etag: str | None) -> str:
    return (etag or "").strip().strip('"').lower()


def _is_true(value: str | None) -> bool:
    return str(value or "").strip().lower() in {"true", "yes", "on", "1"}


def _md5_of(data: Any) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return str(hashlib.md5(data, usedforsecurity=False).hexdigest())


# Upload bodies.


class _Source:
    """A source of upload bytes, and whether a retry can start it over."""

    rewindable = False
    length: int | None = None

    def chunks(self, limit: int | None) -> Iterator[bytes | memoryview]:
        raise NotImplementedError

    def rewind(self) -> None:
        raise NotImplementedError


class _BytesSource(_Source):
    rewindable = True

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def chunks(self, limit: int | None) -> Iterator[bytes | memoryview]:
        view = memoryview(self.data)
        end = len(view) if limit is None else min(limit, len(view))
        for start in range(0, end, CHUNK_SIZE):
            yield view[start : min(start + CHUNK_SIZE, end)]

    def rewind(self) -> None:
        return None


class _FileSource(_Source):
    def __init__(self, fileobj: Any, read_size: int) -> None:
        self._file = fileobj
        self._read_size = read_size
        self._start = 0
        if _is_seekable(fileobj):
            self._start = fileobj.tell()
            self.rewindable = True
            self.length = _remaining_size(fileobj, self._start)

    def chunks(self, limit: int | None) -> Iterator[bytes]:
        remaining = limit
        while remaining is None or remaining > 0:
            size = (
                self._read_size
                if remaining is None
                else min(remaining, self._read_size)
            )
            chunk = self._file.read(size)
            if not chunk:
                return
            if isinstance(chunk, str):
                raise HubicInputError(
                    f"upload source {self._file!r} is opened in text mode; open "
                    "it in binary mode ('rb') so the bytes sent are the bytes "
                    "stored"
                )
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

    def rewind(self) -> None:
        self._file.seek(self._start)


class _IterableSource(_Source):
    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterable = iterable
        # A list or tuple yields the same chunks again; an iterator does not.
        self.rewindable = isinstance(iterable, (list, tuple))

    def chunks(self, limit: int | None) -> Iterator[bytes]:
        for item in self._iterable:
            if isinstance(item, str):
                item = item.encode("utf-8")
            elif isinstance(item, (bytearray, memoryview)):
                item = bytes(item)
            elif not isinstance(item, bytes):
                raise HubicInputError(
                    f"upload iterator yielded {type(item).__name__}; it must "
                    "yield bytes (or str, sent as UTF-8)"
                )
            if item:
                yield item

    def rewind(self) -> None:
        return None


def _is_seekable(fileobj: Any) -> bool:
    seekable = getattr(fileobj, "seekable", None)
    if seekable is None:
        return False
    try:
        return bool(seekable())
    except (OSError, ValueError):
        return False


def _remaining_size(fileobj: Any, start: int) -> int | None:
    fileno = getattr(fileobj, "fileno", None)
    if fileno is not None:
        try:
            return max(0, os.fstat(fileno()).st_size - start)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
    try:
        end = fileobj.seek(0, io.SEEK_END)
    finally:
        fileobj.seek(start)
    return max(0, int(end) - start)


def _make_source(contents: Any, chunk_size: int | None) -> _Source:
    if isinstance(contents, str):
        return _BytesSource(contents.encode("utf-8"))
    if isinstance(contents, bytes):
        return _BytesSource(contents)
    if isinstance(contents, (bytearray, memoryview)):
        return _BytesSource(bytes(contents))
    if isinstance(contents, io.TextIOBase):
        raise HubicInputError(
            f"upload source {contents!r} is opened in text mode; open it in "
            "binary mode ('rb') so the bytes sent are the bytes stored"
        )
    if hasattr(contents, "read"):
        if getattr(contents, "closed", False) is True:
            raise HubicInputError(
                f"cannot upload {contents!r}: the file is closed; open it again "
                "in binary mode ('rb') and keep it open until the upload returns"
            )
        return _FileSource(contents, chunk_size or CHUNK_SIZE)
    if isinstance(contents, Mapping):
        raise HubicInputError(
            f"cannot upload a {type(contents).__name__}: iterating it yields its "
            "keys; pass bytes, str, a binary file object or an iterable of bytes, "
            "such as json.dumps(contents).encode()"
        )
    if isinstance(contents, Iterable):
        return _IterableSource(contents)
    raise HubicInputError(
        f"cannot upload {type(contents).__name__}: pass bytes, str, a binary "
        "file object or an iterable of bytes"
    )


class _UploadBody(ReadableToIterable):
    """An upload body that hashes what it sends and rewinds for a retry.

    It is a `ReadableToIterable` only so that python-swiftclient hands it to
    requests unchanged, as an iterable of large chunks. python-swiftclient's
    ``Connection._retry`` calls `reset` before each new attempt.
    """

    def __init__(
        self,
        source: _Source,
        length: int | None,
        target: str,
        *,
        hash_data: bool = True,
        on_bytes: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._source = source
        self._length = length
        self._target = target
        self._hash_data = hash_data
        self._on_bytes = on_bytes
        self._cancel = cancel
        self._md5 = _md5()
        self.bytes_sent = 0
        self._started = False

    def __iter__(self) -> Iterator[bytes | memoryview]:
        self._started = True
        return self._generate()

    def __next__(self) -> bytes:
        raise TypeError("iterate over an upload body with iter() first")

    def _generate(self) -> Iterator[bytes | memoryview]:
        for chunk in self._source.chunks(self._length):
            if self._length is not None:
                chunk = chunk[: self._length - self.bytes_sent]
            if self._cancel is not None and self._cancel.is_set():
                raise HubicTransferError(f"upload of {self._target} was cancelled")
            if self._hash_data:
                self._md5.update(chunk)
            self.bytes_sent += len(chunk)
            if self._on_bytes is not None:
                self._on_bytes(len(chunk))
            yield chunk
            if self._length is not None and self.bytes_sent >= self._length:
                return

        if self._length is not None and self.bytes_sent < self._length:
            raise HubicInputError(
                f"the source of {self._target} ended after {self.bytes_sent} of "
                f"the {self._length} bytes announced; pass the real "
                "content_length or leave it out"
            )

    def hexdigest(self) -> str:
        return str(self._md5.hexdigest())

    def reset(self, *_args: Any, **kwargs: Any) -> None:
        """Start the body over before python-swiftclient retries the request."""
        if not self._started:
            return
        if not self._source.rewindable:
            status = (kwargs.get("response_dict") or {}).get("status")
            cause = f"HTTP {status}" if status else "a connection error"
            raise HubicSourceNotRewindable(
                f"upload of {self._target} failed with {cause} after "
                f"{self.bytes_sent} bytes were read from a source that cannot "
                "be rewound; pass bytes or a seekable binary file so the "
                "upload can be retried"
            )

        logger.info(
            "retrying upload of %s from its start after %d bytes",
            self._target,
            self.bytes_sent,
        )
        self._source.rewind()
        if self._on_bytes is not None and self.bytes_sent:
            self._on_bytes(-self.bytes_sent)
        self._md5 = _md5()
        self.bytes_sent = 0
        self._started = False


class _SizedUploadBody(_UploadBody):
    """An upload body of known length, sent with ``Content-Length``."""

    def __init__(self, source: _Source, length: int, target: str, **kwargs: Any):
        super().__init__(source, length, target, **kwargs)
        self._size = length

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return True


# Download bodies.


class _VerifiedBody:
    """A streamed object body that checks its MD5 when the stream ends."""

    def __init__(self, body: Any, expected_md5: str, target: str) -> None:
        self._body = body
        self._expected = expected_md5
        self._target = target
        self._md5 = _md5()
        self._finished = False
        self.bytes_read = 0

    def read(self, length: int | None = None) -> bytes:
        data = bytes(self._body.read(length))
        self._update(data)
        if not data and length != 0:
            self._finish()
        return data

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            data = bytes(next(self._body))
        except StopIteration:
            self._finish()
            raise
        self._update(data)
        return data

    def close(self) -> None:
        self._body.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)

    def _update(self, data: bytes) -> None:
        self._md5.update(data)
        self.bytes_read += len(data)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        _check_md5(self._md5.hexdigest(), self._expected, self._target)


def _check_md5(actual: str, expected: str, target: str) -> None:
    if actual != expected:
        raise HubicChecksumMismatch(
            f"download of {target} is corrupt: its MD5 is {actual} but Swift's "
            f"ETag is {expected}; download it again"
        )


def _content_md5(
    headers: Mapping[str, str], request_headers: Mapping[str, str] | None
) -> str | None:
    """Return the MD5 a GET response's body must have, or None if unknown.

    Large objects, partial content and unusual ETags cannot be checked.
    """
    if _is_true(headers.get("x-static-large-object")):
        return None
    if "x-object-manifest" in headers or "content-range" in headers:
        return None
    if request_headers and any(key.lower() == "range" for key in request_headers):
        return None
    etag = _strip_etag(headers.get("etag"))
    if len(etag) != 32 or any(char not in "0123456789abcdef" for char in etag):
        return None
    return etag
