"""Verified streaming transfers and static large objects.

`TransferMixin` sits in front of `swiftclient.client.Connection` in
`lhubic.Hubic`'s bases. Its overrides keep python-swiftclient's signatures and
return values and add:

- MD5 checks: an upload's MD5 is computed while it streams and compared with
  the ETag that Swift returns. A download's MD5 is compared with the ETag at
  the end of the stream, except for large objects, whose ETag is not the MD5
  of their content.
- Safe retries: a retried upload rewinds a seekable source to where it started,
  and a source that cannot be rewound raises `HubicSourceNotRewindable` rather
  than sending a truncated body.
- Thread safety: the HTTP connection and the retry counter are kept per
  thread, so one connection object can serve a pool of worker threads. Token
  renewal still goes through the shared object.

`upload_file` and `download_file` move whole files. Files above
`large_object_threshold` become static large objects whose segments live in
``<container>_segments`` and survive an interruption, so running the same
upload again sends only the segments that are missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from swiftclient.exceptions import ClientException

from .bodies import (
    CHUNK_SIZE,
    _BytesSource,
    _check_md5,
    _content_md5,
    _is_true,
    _make_source,
    _md5_of,
    _SizedUploadBody,
    _strip_etag,
    _UploadBody,
    _VerifiedBody,
)
from .exceptions import (
    HubicChecksumMismatch,
    HubicError,
    HubicInputError,
    HubicTransferError,
)
from .headers import validate_headers
from .large_objects import (
    MAX_OBJECT_SIZE,
    _check_segment_size,
    _choose_segment_size,
    _plan_segments,
    _Segment,
    _segment_prefix,
    _split_segment_path,
    file_md5,
    file_slo_etag,
    segments_container,
    slo_etag,
)
from .listing import iter_objects
from .names import validate_container_name, validate_object_name
from .ranged_download import (
    PART_SIZE,
    _manifest_units,
    _RangedDownload,
    _Unit,
    _write_stream,
)

__all__ = [
    "DEFAULT_LARGE_OBJECT_THRESHOLD",
    "DEFAULT_SEGMENT_SIZE",
    "DEFAULT_TRANSFER_WORKERS",
    "ProgressCallback",
    "TransferMixin",
    "file_md5",
    "file_slo_etag",
    "segments_container",
    "slo_etag",
]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024

# Segments of 256 MiB keep a failed or interrupted segment affordable to resend
# and give a 1 GiB file one piece per default worker. Each segment costs Swift
# a request, a container update and a check when the manifest is stored, so
# smaller ones slow uploads down. Against the local service on two cores,
# 128 MiB segments made a 1 GiB upload about 15 % slower (median of four
# interleaved runs). With Swift's default limit of 1,000 segments per
# manifest, they reach 250 GiB before `_choose_segment_size` grows them.
DEFAULT_SEGMENT_SIZE = 256 * MiB

# Files up to this size go up as one plain object, whose ETag any client can
# check. Above it, one failed PUT would resend too much, and the extra read
# that lets Swift verify a plain upload before it replaces anything costs more
# than segmenting. Swift itself refuses single objects over 5 GiB.
DEFAULT_LARGE_OBJECT_THRESHOLD = 256 * MiB

DEFAULT_TRANSFER_WORKERS = 4

# Files up to this size are read into memory once, hashed, and sent with their
# ETag, so Swift rejects a corrupted body before it replaces anything.
_BUFFERED_LIMIT = 4 * MiB

_EMPTY_MD5 = hashlib.md5(b"").hexdigest()  # noqa: S324 (an ETag, not security)

ProgressCallback = Callable[[int, int, int, int], None]
"""Called as ``progress(bytes_done, bytes_total, files_done, files_total)``.

It runs in whichever thread moved the bytes, one call at a time. Bytes done
can go down when a failed request is retried from the start. An exception it
raises stops the transfer and reaches the caller.
"""

_T = TypeVar("_T")


# Progress.


class _Progress:
    """Thread-safe totals behind a `ProgressCallback`."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        bytes_total: int,
        files_total: int,
        *,
        fixed_totals: bool = False,
    ) -> None:
        self._callback = callback
        self._fixed_totals = fixed_totals
        self._lock = threading.Lock()
        self.bytes_total = bytes_total
        self.files_total = files_total
        self.bytes_done = 0
        self.files_done = 0
        self.callback_error: BaseException | None = None

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes_done += count
            self._report()

    def add_total(self, byte_count: int, file_count: int) -> None:
        """Grow the totals, unless the caller fixed them in advance."""
        if self._fixed_totals:
            return
        with self._lock:
            self.bytes_total += byte_count
            self.files_total += file_count

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1
            self._report()

    def _report(self) -> None:
        if self._callback is None:
            return
        try:
            self._callback(
                self.bytes_done, self.bytes_total, self.files_done, self.files_total
            )
        except BaseException as error:
            # Remembered so that bulk transfers stop instead of recording it
            # as one file's failure.
            self.callback_error = error
            raise


# The mixin.


@dataclass
class _ExistingObject:
    """The object that an upload is about to replace."""

    is_static_large_object: bool
    is_dynamic_large_object: bool = False


class TransferMixin:
    """Upload and download overrides that `lhubic.Hubic` inherits.

    The class attributes are the defaults of `upload_file`, `download_file` and
    the bulk transfers; set them on an instance to change them.
    """

    segment_size: int = DEFAULT_SEGMENT_SIZE
    large_object_threshold: int = DEFAULT_LARGE_OBJECT_THRESHOLD
    transfer_workers: int = DEFAULT_TRANSFER_WORKERS
    segment_attempts: int = 3
    download_part_size: int = PART_SIZE

    if TYPE_CHECKING:
        # Provided by swiftclient.client.Connection, the next class in the MRO.
        def head_object(
            self,
            container: str,
            obj: str,
            headers: dict[str, str] | None = None,
            query_string: str | None = None,
        ) -> dict[str, str]: ...

    # Per-thread connection state.

    def _thread_state(self) -> threading.local:
        state = self.__dict__.get("_lhubic_thread_state")
        if state is None:
            state = self.__dict__.setdefault("_lhubic_thread_state", threading.local())
        return cast(threading.local, state)

    def _opened_connections(self) -> dict[threading.Thread, Any]:
        opened = self.__dict__.get("_lhubic_connections")
        if opened is None:
            opened = self.__dict__.setdefault("_lhubic_connections", {})
        return cast(dict[threading.Thread, Any], opened)

    @property
    def http_conn(self) -> Any:
        """The calling thread's ``(parsed URL, HTTPConnection)`` pair, or None."""
        return getattr(self._thread_state(), "http_conn", None)

    @http_conn.setter
    def http_conn(self, value: Any) -> None:
        self._thread_state().http_conn = value
        opened = self._opened_connections()
        if value is None:
            opened.pop(threading.current_thread(), None)
        else:
            opened[threading.current_thread()] = value

    @property
    def attempts(self) -> int:
        """The calling thread's attempt counter for its current request."""
        return int(getattr(self._thread_state(), "attempts", 0))

    @attempts.setter
    def attempts(self, value: int) -> None:
        self._thread_state().attempts = value

    def close(self) -> None:
        """Close the calling thread's HTTP connection and those of ended threads."""
        cast(Any, super()).close()
        self._close_finished_threads()

    def _close_finished_threads(self) -> None:
        opened = self._opened_connections()
        for thread, conn in list(opened.items()):
            if not thread.is_alive():
                opened.pop(thread, None)
                conn[1].close()

    # Swiftclient overrides.

    def put_object(
        self,
        container: str,
        obj: str,
        contents: Any,
        content_length: int | None = None,
        etag: str | None = None,
        chunk_size: int | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        query_string: str | None = None,
        response_dict: dict[str, Any] | None = None,
    ) -> str:
        """Upload an object and check its MD5 against Swift's ETag; return the ETag.

        ``contents`` is bytes, str (sent as UTF-8), a binary file object or an
        iterable of bytes. ``Content-Length`` is sent when the size is known:
        for bytes, for a seekable file (the bytes from its current position to
        its end), or from ``content_length``. Other bodies are sent chunked.

        When the MD5 is known before sending (bytes, or ``etag`` given), it goes
        in the ``ETag`` header and Swift rejects a corrupted body with 422
        before replacing anything. Otherwise the MD5 is computed while the data
        streams. On a mismatch the corrupted object has already replaced the
        previous one, so it is deleted if it is still the one this call stored.
        Both cases raise `HubicChecksumMismatch`.

        A retried request rewinds a seekable source to its starting position.
        An iterator or a pipe raises `HubicSourceNotRewindable` instead.
        Replacing a static large object this way leaves its segments behind:
        `upload_file` and `delete_object` remove them.
        """
        return self._put_object(
            container,
            obj,
            contents,
            content_length=content_length,
            etag=etag,
            chunk_size=chunk_size,
            content_type=content_type,
            headers=headers,
            query_string=query_string,
            response_dict=response_dict,
        )

    def _put_object(
        self,
        container: str,
        obj: str,
        contents: Any,
        *,
        content_length: int | None = None,
        etag: str | None = None,
        chunk_size: int | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        query_string: str | None = None,
        response_dict: dict[str, Any] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> str:
        validate_container_name(container)
        validate_object_name(obj)
        target = f"{container}/{obj}"
        _check_length(content_length)
        if contents is None:
            contents = b""

        # Swift compares a manifest's ETag with the MD5 of its segments' ETags,
        # not with the MD5 of the manifest's own bytes.
        is_manifest = "multipart-manifest=put" in (query_string or "")
        source = _make_source(contents, chunk_size)
        length = content_length if content_length is not None else source.length
        if isinstance(source, _BytesSource) and etag is None and not is_manifest:
            etag = _md5_of(source.data[:length])
        expected = _strip_etag(etag) if etag else None

        body: Any
        if length == 0:
            body = b""
            expected = expected or _EMPTY_MD5
        elif length is None:
            body = _UploadBody(
                source,
                None,
                target,
                hash_data=expected is None,
                on_bytes=on_bytes,
                cancel=cancel,
            )
        else:
            body = _SizedUploadBody(
                source,
                length,
                target,
                hash_data=expected is None,
                on_bytes=on_bytes,
                cancel=cancel,
            )

        returned = self._send_put(
            container,
            obj,
            body,
            length,
            expected,
            content_type=content_type,
            headers=headers,
            query_string=query_string,
            response_dict=response_dict,
        )

        if is_manifest:
            return returned
        actual = expected if expected is not None else body.hexdigest()
        if _strip_etag(returned) != actual:
            self._discard_mismatched_upload(container, obj, returned)
            raise HubicChecksumMismatch(
                f"upload of {target} is corrupt: {actual} was sent but Swift "
                f"stored {returned or 'no ETag'}; the corrupted object was "
                "removed, upload it again"
            )
        return returned

    def _send_put(
        self,
        container: str,
        obj: str,
        body: Any,
        length: int | None,
        expected: str | None,
        **kwargs: Any,
    ) -> str:
        # With a response_dict, python-swiftclient passes each attempt's status
        # to the body's reset, which puts it in HubicSourceNotRewindable.
        if kwargs.get("response_dict") is None:
            kwargs["response_dict"] = {}
        try:
            returned = cast(Any, super()).put_object(
                container,
                obj,
                body,
                content_length=length,
                etag=expected,
                **kwargs,
            )
        except ClientException as error:
            if error.http_status == 422 and expected is not None:
                raise HubicChecksumMismatch(
                    f"upload of {container}/{obj} is corrupt: Swift received data "
                    f"whose MD5 is not {expected} and stored nothing (HTTP 422); "
                    "check that the source did not change, and upload it again",
                    status=422,
                ) from error
            raise
        return str(returned)

    def _discard_mismatched_upload(self, container: str, obj: str, etag: str) -> None:
        """Delete a corrupted upload, unless another writer replaced it since."""
        try:
            current = self.head_object(container, obj)
            if _strip_etag(current.get("etag")) == _strip_etag(etag):
                cast(Any, super()).delete_object(container, obj)
                logger.warning("deleted corrupted upload %s/%s", container, obj)
        except (ClientException, HubicError, OSError) as error:
            logger.warning(
                "could not delete corrupted upload %s/%s: %s", container, obj, error
            )

    def get_object(
        self,
        container: str,
        obj: str,
        resp_chunk_size: int | None = None,
        query_string: str | None = None,
        response_dict: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[dict[str, str], Any]:
        """Download an object and check its MD5; return ``(headers, body)``.

        Without ``resp_chunk_size`` the body is bytes, checked before this
        returns. With it, the body is an iterator of chunks (with ``read``) that
        raises `HubicChecksumMismatch` when the stream ends corrupt, so a
        caller must not trust what it wrote until the iteration finished.
        Static and dynamic large objects arrive as one stream but cannot be
        checked: their ETag is not the MD5 of their content. Ranged requests
        are not checked either.
        """
        validate_container_name(container)
        validate_object_name(obj)
        response_headers, body = cast(Any, super()).get_object(
            container,
            obj,
            resp_chunk_size=resp_chunk_size,
            query_string=query_string,
            response_dict=response_dict,
            headers=headers,
        )
        expected = _content_md5(response_headers, headers)
        if expected is None:
            return response_headers, body

        target = f"{container}/{obj}"
        if resp_chunk_size:
            return response_headers, _VerifiedBody(body, expected, target)
        _check_md5(_md5_of(body), expected, target)
        return response_headers, body

    def delete_object(
        self,
        container: str,
        obj: str,
        query_string: str | None = None,
        response_dict: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Delete an object; for a static large object, its segments too.

        Without ``query_string`` this sends a HEAD first to learn whether the
        object is a static large object. If it is, the manifest is read, the
        manifest deleted, and then every segment it lists, so an interruption
        leaves unused segments rather than a broken object. A dynamic large
        object's segments stay: its manifest names only a prefix, which other
        objects may share. With ``query_string`` the request is sent as given.
        """
        validate_container_name(container)
        validate_object_name(obj)
        validate_headers(headers, "object")
        parent = cast(Any, super())
        if query_string is not None:
            parent.delete_object(
                container,
                obj,
                query_string=query_string,
                response_dict=response_dict,
                headers=headers,
            )
            return

        current = self.head_object(container, obj)
        segments: list[dict[str, Any]] = []
        if _is_true(current.get("x-static-large-object")):
            segments = self._read_manifest(container, obj)
        parent.delete_object(
            container, obj, response_dict=response_dict, headers=headers
        )
        if segments:
            self._delete_segments(segments, keep=set())

    # Large object helpers.

    def _read_manifest(self, container: str, obj: str) -> list[dict[str, Any]]:
        """Return the segment entries of a static large object's manifest."""
        headers, body = cast(Any, super()).get_object(
            container, obj, query_string="multipart-manifest=get"
        )
        if not _is_true(headers.get("x-static-large-object")):
            return []
        try:
            entries = json.loads(body)
        except ValueError as error:
            raise HubicTransferError(
                f"manifest of {container}/{obj} is not valid JSON: {error}"
            ) from error
        if not isinstance(entries, list):
            raise HubicTransferError(f"manifest of {container}/{obj} is not a list")
        return [entry for entry in entries if isinstance(entry, dict)]

    def _delete_segments(self, entries: list[dict[str, Any]], keep: set[str]) -> None:
        """Delete the segments a manifest lists, except the paths in ``keep``."""
        paths = sorted(
            {
                str(entry["name"])
                for entry in entries
                if "name" in entry and str(entry["name"]) not in keep
            }
        )
        nested = {str(entry["name"]) for entry in entries if entry.get("sub_slo")}

        def delete(path: str) -> None:
            container, obj = _split_segment_path(path)
            try:
                if path in nested:
                    self.delete_object(container, obj)
                else:
                    cast(Any, super(TransferMixin, self)).delete_object(container, obj)
            except ClientException as error:
                if error.http_status != 404:
                    raise

        self._run_parallel([_bind(delete, path) for path in paths])
        logger.debug("deleted %d old segments", len(paths))

    # Parallel work.

    def _run_parallel(
        self,
        tasks: list[Callable[[], _T]],
        workers: int | None = None,
        cancel: threading.Event | None = None,
    ) -> list[_T]:
        """Run ``tasks`` on a thread pool and return their results in order.

        The first exception stops the tasks not yet started, sets ``cancel`` so
        running uploads stop at their next chunk, and is raised once the
        running ones have ended.
        """
        if not tasks:
            return []
        count = min(_check_workers(workers or self.transfer_workers), len(tasks))
        if count == 1:
            return [task() for task in tasks]

        executor = ThreadPoolExecutor(count, thread_name_prefix="lhubic-transfer")
        futures: list[Future[_T]] = []
        try:
            futures = [executor.submit(task) for task in tasks]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [future for future in done if future.exception() is not None]
            if failed:
                if cancel is not None:
                    cancel.set()
                for future in pending:
                    future.cancel()
                wait(pending)
                raise cast(BaseException, failed[0].exception())
            return [future.result() for future in futures]
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            self._close_finished_threads()

    # Whole files: upload.

    def upload_file(
        self,
        container: str,
        name: str,
        path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        segment_size: int | None = None,
        large_object_threshold: int | None = None,
        workers: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Upload the file at ``path`` as ``container/name``; return its ETag.

        A file up to ``large_object_threshold`` bytes goes up as one object,
        sent with its MD5 so Swift rejects a corrupted body before replacing
        anything. A larger one becomes a static large object: segments of
        ``segment_size`` bytes go to ``<container>_segments`` on ``workers``
        threads, each checked and retried, then the manifest replaces the
        object. Rerunning an interrupted upload of an unchanged file sends only
        the segments not yet stored.

        One HEAD request first finds out whether the name is a static large
        object, whose old segments are deleted once the new object is in place.
        """
        validate_container_name(container)
        validate_object_name(name)
        validate_headers(headers, "object")
        _check_upload_options(path, segment_size, large_object_threshold, workers)
        existing = self._existing_object(container, name)
        progress_totals = _Progress(progress, 0, 1)
        etag = self._upload_file(
            container,
            name,
            path,
            existing,
            content_type=content_type,
            headers=headers,
            segment_size=segment_size,
            large_object_threshold=large_object_threshold,
            workers=workers,
            progress=progress_totals,
        )
        progress_totals.file_done()
        return etag

    def _existing_object(self, container: str, name: str) -> _ExistingObject | None:
        try:
            current = self.head_object(container, name)
        except ClientException as error:
            if error.http_status == 404:
                return None
            raise
        return _ExistingObject(
            is_static_large_object=_is_true(current.get("x-static-large-object")),
            is_dynamic_large_object="x-object-manifest" in current,
        )

    def _upload_file(
        self,
        container: str,
        name: str,
        path: str | os.PathLike[str],
        existing: _ExistingObject | None,
        *,
        content_type: str | None,
        headers: dict[str, str] | None,
        segment_size: int | None,
        large_object_threshold: int | None,
        workers: int | None,
        progress: _Progress,
        cancel: threading.Event | None = None,
    ) -> str:
        stat = os.stat(path)
        threshold = (
            self.large_object_threshold
            if large_object_threshold is None
            else large_object_threshold
        )
        progress.add_total(stat.st_size, 0)

        old_segments: list[dict[str, Any]] = []
        if existing is not None and existing.is_static_large_object:
            old_segments = self._read_manifest(container, name)

        if stat.st_size > threshold:
            etag, new_paths = self._upload_large_file(
                container,
                name,
                path,
                stat,
                segment_size=segment_size or self.segment_size,
                workers=workers,
                content_type=content_type,
                headers=headers,
                progress=progress,
                cancel=cancel,
            )
        else:
            etag = self._upload_small_file(
                container,
                name,
                path,
                stat.st_size,
                content_type=content_type,
                headers=headers,
                progress=progress,
                cancel=cancel,
            )
            new_paths = set()

        if old_segments:
            self._delete_segments(old_segments, keep=new_paths)
        return etag

    def _upload_small_file(
        self,
        container: str,
        name: str,
        path: str | os.PathLike[str],
        size: int,
        *,
        content_type: str | None,
        headers: dict[str, str] | None,
        progress: _Progress,
        cancel: threading.Event | None,
    ) -> str:
        if size <= _BUFFERED_LIMIT:
            with open(path, "rb") as handle:
                data = handle.read()
            etag = self._put_object(
                container,
                name,
                data,
                content_type=content_type,
                headers=headers,
            )
            progress.add_bytes(len(data))
            return etag

        # Hashing first costs a second read, but lets Swift verify the body
        # before the new object replaces the old one.
        md5 = file_md5(path)
        with open(path, "rb") as handle:
            return self._put_object(
                container,
                name,
                handle,
                content_length=size,
                etag=md5,
                content_type=content_type,
                headers=headers,
                on_bytes=progress.add_bytes,
                cancel=cancel,
            )

    def _upload_large_file(
        self,
        container: str,
        name: str,
        path: str | os.PathLike[str],
        stat: os.stat_result,
        *,
        segment_size: int,
        workers: int | None,
        content_type: str | None,
        headers: dict[str, str] | None,
        progress: _Progress,
        cancel: threading.Event | None,
    ) -> tuple[str, set[str]]:
        """Upload a file as a static large object; return its ETag and segment paths."""
        segment_container = segments_container(container)
        chosen_size = _choose_segment_size(stat.st_size, segment_size)
        prefix = _segment_prefix(name, stat.st_size, stat.st_mtime, chosen_size)
        segments = _plan_segments(stat.st_size, chosen_size, prefix)
        stored = self._stored_segments(segment_container, prefix)
        cancel = cancel or threading.Event()

        md5s = self._run_parallel(
            [
                _bind(
                    self._upload_segment,
                    segment_container,
                    path,
                    segment,
                    stored.get(segment.name),
                    progress,
                    cancel,
                )
                for segment in segments
            ],
            workers,
            cancel,
        )

        manifest = [
            {
                "path": f"/{segment_container}/{segment.name}",
                "etag": md5,
                "size_bytes": segment.length,
            }
            for segment, md5 in zip(segments, md5s, strict=True)
        ]
        # Swift checks the ETag header of a manifest against its segments' ETags.
        expected = slo_etag(md5s)
        returned = self._put_object(
            container,
            name,
            json.dumps(manifest).encode("utf-8"),
            etag=expected,
            content_type=content_type,
            headers=headers,
            query_string="multipart-manifest=put",
        )
        if _strip_etag(returned) != expected:
            raise HubicChecksumMismatch(
                f"manifest of {container}/{name} got ETag {returned} but its "
                f"segments give {expected}; upload the file again"
            )
        logger.info(
            "uploaded %s/%s as %d segments (%d reused)",
            container,
            name,
            len(segments),
            sum(1 for segment in segments if segment.name in stored),
        )
        paths = {f"/{segment_container}/{segment.name}" for segment in segments}
        return returned, paths

    def _stored_segments(
        self, container: str, prefix: str
    ) -> dict[str, dict[str, Any]]:
        """Return the listing entries of segments already stored under ``prefix``."""
        try:
            return {
                entry["name"]: entry
                for entry in iter_objects(self, container, prefix=prefix)
                if "name" in entry
            }
        except ClientException as error:
            if error.http_status != 404:
                raise
        cast(Any, super()).put_container(container)
        return {}

    def _upload_segment(
        self,
        container: str,
        path: str | os.PathLike[str],
        segment: _Segment,
        stored: dict[str, Any] | None,
        progress: _Progress,
        cancel: threading.Event,
    ) -> str:
        """Upload one segment unless an identical one is stored; return its MD5."""
        if stored is not None and int(stored.get("bytes", -1)) == segment.length:
            local = file_md5(path, segment.offset, segment.length)
            if local == _strip_etag(stored.get("hash")):
                logger.debug("reusing stored segment %s/%s", container, segment.name)
                progress.add_bytes(segment.length)
                return local

        attempt = 1
        while True:
            try:
                with open(path, "rb") as handle:
                    handle.seek(segment.offset)
                    return self._put_object(
                        container,
                        segment.name,
                        handle,
                        content_length=segment.length,
                        on_bytes=progress.add_bytes,
                        cancel=cancel,
                    )
            except HubicChecksumMismatch:
                if attempt >= self.segment_attempts or cancel.is_set():
                    raise
                logger.warning(
                    "segment %s/%s arrived corrupt (attempt %d of %d); resending",
                    container,
                    segment.name,
                    attempt,
                    self.segment_attempts,
                )
                attempt += 1

    # Whole files: download.

    def download_file(
        self,
        container: str,
        name: str,
        path: str | os.PathLike[str],
        *,
        workers: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[str, str]:
        """Download ``container/name`` to the file ``path``; return its headers.

        The data goes to a temporary file beside ``path``, which replaces
        ``path`` only once the whole object arrived and its checksum matched, so
        a failure leaves ``path`` as it was. A plain object is checked against
        its MD5 ETag, and a static large object's segments against the MD5s in
        its manifest. Objects and segments of at least two `download_part_size`
        parts download as ranged parts on ``workers`` threads (default
        `transfer_workers`). A dynamic large object streams in one piece,
        checked only for length. The file is not fsynced.
        """
        validate_container_name(container)
        validate_object_name(name)
        progress_totals = _Progress(progress, 0, 1)
        headers = self._download_file(container, name, path, workers, progress_totals)
        progress_totals.file_done()
        return headers

    def _download_file(
        self,
        container: str,
        name: str,
        path: str | os.PathLike[str],
        workers: int | None,
        progress: _Progress,
    ) -> dict[str, str]:
        target = _check_local_path(path)
        fd, temp_path = _create_temp_beside(target)
        try:
            try:
                headers = self._download_to_fd(container, name, fd, workers, progress)
            finally:
                os.close(fd)
            os.replace(temp_path, target)
        except BaseException:
            _remove_quietly(temp_path)
            raise
        return headers

    def _download_to_fd(
        self,
        container: str,
        name: str,
        fd: int,
        workers: int | None,
        progress: _Progress,
    ) -> dict[str, str]:
        # One GET serves every kind of object: a plain object arrives as it
        # is, a static large object as its manifest.
        headers, body = self.get_object(
            container,
            name,
            resp_chunk_size=CHUNK_SIZE,
            query_string="multipart-manifest=get",
        )
        worker_count = _check_workers(workers or self.transfer_workers)

        if _is_true(headers.get("x-static-large-object")):
            manifest = json.loads(b"".join(body))
            units = _manifest_units(manifest)
            download = _RangedDownload(
                self, fd, units, progress, self.download_part_size
            )
            download.run(worker_count)
            logger.debug(
                "downloaded %s/%s from %d segments", container, name, len(units)
            )
            return dict(headers)

        if "x-object-manifest" in headers:
            body.close()
            headers, body = self.get_object(container, name, resp_chunk_size=CHUNK_SIZE)
        length = int(headers.get("content-length", -1))
        expected = _content_md5(headers, None)

        part_size = self.download_part_size
        if expected is not None and worker_count > 1 and length >= 2 * part_size:
            unit = _Unit(container, name, 0, length, expected, first_body=body)
            _RangedDownload(self, fd, [unit], progress, part_size).run(worker_count)
            return dict(headers)

        progress.add_total(max(length, 0), 0)
        written = _write_stream(body, fd, 0, progress)
        if length >= 0 and written != length:
            raise HubicTransferError(
                f"download of {container}/{name} ended after {written} of "
                f"{length} bytes; download it again"
            )
        return dict(headers)


# Module helpers.


def _bind(function: Callable[..., _T], *args: Any) -> Callable[[], _T]:
    def call() -> _T:
        return function(*args)

    return call


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise HubicInputError(
            f"invalid workers {workers!r}: pass a thread count of 1 or more"
        )
    return workers


def _check_upload_options(
    path: str | os.PathLike[str],
    segment_size: int | None,
    large_object_threshold: int | None,
    workers: int | None,
) -> None:
    if not os.path.isfile(_check_local_path(path)):
        raise HubicInputError(
            f"cannot upload {os.fspath(path)!r}: it is not a regular file or does "
            "not exist; pass the path of a file"
        )
    if segment_size is not None:
        _check_segment_size(segment_size)
    if workers is not None:
        _check_workers(workers)
    if large_object_threshold is None:
        return
    if (
        isinstance(large_object_threshold, bool)
        or not isinstance(large_object_threshold, int)
        or not 0 <= large_object_threshold <= MAX_OBJECT_SIZE
    ):
        raise HubicInputError(
            f"invalid large_object_threshold {large_object_threshold!r}: pass a "
            f"size in bytes from 0 to {MAX_OBJECT_SIZE}, Swift's limit for one "
            "object"
        )


def _check_local_path(path: object, argument: str = "path") -> str:
    """Return ``path`` as a str; raise `HubicInputError` unless it is a file path.

    An int is rejected although os functions accept it, because they take it
    for an open file descriptor.
    """
    if isinstance(path, (str, os.PathLike)):
        text = os.fspath(path)
        if isinstance(text, str):
            return text
    fix = "pass a str or a pathlib.Path"
    if isinstance(path, (bytes, os.PathLike)):
        fix = "decode it with os.fsdecode()"
    raise HubicInputError(
        f"invalid {argument} {path!r}: expected a str or os.PathLike path, got "
        f"{type(path).__name__}; {fix}"
    )


def _check_length(content_length: int | None) -> None:
    if content_length is None:
        return
    if isinstance(content_length, bool) or not isinstance(content_length, int):
        raise HubicInputError(
            f"invalid content_length {content_length!r}: pass an int or None"
        )
    if content_length < 0:
        raise HubicInputError(
            f"invalid content_length {content_length}: a size cannot be negative"
        )
    if content_length > MAX_OBJECT_SIZE:
        raise HubicInputError(
            f"invalid content_length {content_length}: Swift stores at most "
            f"{MAX_OBJECT_SIZE} bytes in one object; use upload_file, which "
            "makes a static large object"
        )


def _create_temp_beside(target: str) -> tuple[int, str]:
    """Create an empty file next to ``target``, with the permissions it would get."""
    directory, base = os.path.split(os.path.abspath(target))
    if os.path.isdir(target):
        raise HubicInputError(
            f"cannot download to {target!r}: it is a folder; pass the path of a "
            "file, such as a new name inside that folder"
        )
    if not os.path.isdir(directory):
        raise HubicInputError(
            f"cannot download to {target!r}: folder {directory!r} does not "
            "exist; create it first"
        )
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp_path = os.path.join(directory, f".{base}.{os.urandom(4).hex()}.part")
        try:
            return os.open(temp_path, flags, 0o666), temp_path
        except FileExistsError:
            continue
    raise HubicTransferError(f"cannot create a temporary file in {directory!r}")


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.warning("could not remove temporary file %s: %s", path, error)
