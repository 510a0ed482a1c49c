"""Upload and download whole directory trees with parallel workers.

Both directions list the container once, paging past 10,000 entries, and use
the listing's ``bytes`` and ``hash`` to skip files that are already identical.
So no file costs a HEAD request: an upload sends one PUT per changed file, and
a download one GET per changed object. A static large object is compared by
the ETag Swift gives it, computed locally with the connection's segment size.

Every file gets a `FileResult`. A failure of one file (a network error past
the retries, a corrupt transfer, a name Swift cannot store) is recorded there,
and the other files go on. Errors that concern the whole account (a failed
login, a revoked token) and exceptions raised by the progress callback stop
the run instead.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from requests import RequestException
from swiftclient.exceptions import ClientException

from .bodies import _md5_of
from .exceptions import (
    HubicAccessFailure,
    HubicAuthFailure,
    HubicError,
    HubicInputError,
    HubicTokenFailure,
    HubicTransferError,
)
from .large_objects import _choose_segment_size, file_md5, file_slo_etag
from .listing import iter_objects
from .names import validate_container_name, validate_object_name
from .transfers import (
    _BUFFERED_LIMIT,
    ProgressCallback,
    TransferMixin,
    _check_local_path,
    _check_workers,
    _ExistingObject,
    _Progress,
)

__all__ = ["FileResult", "FileStatus", "download_tree", "upload_tree"]

logger = logging.getLogger(__name__)

DIRECTORY_CONTENT_TYPE = "application/directory"

# Errors that would repeat for every file, so the run stops at the first one.
_ACCOUNT_ERRORS = (HubicAuthFailure, HubicTokenFailure, HubicAccessFailure)
_FILE_ERRORS = (HubicError, ClientException, OSError, RequestException)


class FileStatus(str, enum.Enum):
    """Status of one file in a bulk transfer."""

    UPLOADED = "uploaded"
    DOWNLOADED = "downloaded"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class FileResult:
    """Result for one file of `upload_tree` or `download_tree`.

    ``path`` is the local path, ``name`` the object name, ``size`` the file's
    size in bytes, and ``error`` the exception when ``status`` is ``FAILED``.
    """

    path: str
    name: str
    status: FileStatus
    size: int
    error: BaseException | None = None


@dataclass(frozen=True)
class _LocalFile:
    path: str
    name: str
    size: int


def upload_tree(
    connection: TransferMixin,
    local_dir: str | os.PathLike[str],
    container: str,
    *,
    prefix: str = "",
    workers: int | None = None,
    skip_unchanged: bool = True,
    progress: ProgressCallback | None = None,
) -> list[FileResult]:
    """Upload every regular file under ``local_dir`` to ``container``.

    A file's object name is ``prefix`` followed by its path relative to
    ``local_dir``, with ``/`` separators. Symbolic links to files are followed;
    links to directories are not. ``workers`` files move at once (default: the
    connection's ``transfer_workers``), all through ``connection``; large files
    become static large objects as in `TransferMixin.upload_file`. The
    container is created when the listing finds it missing.

    Returns one result per file, in name order.
    """
    _check_connection(connection)
    validate_container_name(container)
    if workers is not None:
        _check_workers(workers)
    root = _check_directory(local_dir)
    files = _walk(root, prefix)
    stored = _listing(connection, container, prefix, create=True)
    tracker = _Progress(
        progress, sum(item.size for item in files), len(files), fixed_totals=True
    )

    def upload(item: _LocalFile) -> FileResult:
        return _guard(
            item,
            tracker,
            lambda: _upload_one(
                connection,
                container,
                item,
                stored.get(item.name),
                skip_unchanged,
                tracker,
            ),
        )

    results = connection._run_parallel([_bind(upload, item) for item in files], workers)
    _log_summary("uploaded", container, results)
    return results


def download_tree(
    connection: TransferMixin,
    container: str,
    local_dir: str | os.PathLike[str],
    *,
    prefix: str = "",
    workers: int | None = None,
    skip_unchanged: bool = True,
    progress: ProgressCallback | None = None,
) -> list[FileResult]:
    """Download every object of ``container`` whose name starts with ``prefix``.

    An object named ``prefix + "a/b.txt"`` goes to ``local_dir/a/b.txt``; the
    folders are created as needed, and ``local_dir`` itself must exist.
    Zero-byte objects of type ``application/directory`` (hubiC's folders) and
    names ending in ``/`` become folders. A name that would land outside
    ``local_dir`` fails. Each file is written to a temporary file first and
    replaces the old one only after its checksum matched.

    Returns one result per object, in name order.
    """
    _check_connection(connection)
    validate_container_name(container)
    if workers is not None:
        _check_workers(workers)
    root = _check_directory(local_dir)
    entries = [
        entry
        for entry in _listing(connection, container, prefix, create=False).values()
        if "name" in entry
    ]
    # NOTE: a dynamic large object is listed with its manifest's size (0), so
    # downloading one takes bytes done past the total.
    tracker = _Progress(
        progress,
        sum(int(entry.get("bytes", 0)) for entry in entries),
        len(entries),
        fixed_totals=True,
    )

    def download(entry: dict[str, Any]) -> FileResult:
        name = str(entry["name"])
        size = int(entry.get("bytes", 0))
        try:
            path = _local_path(root, name[len(prefix) :])
        except HubicInputError as error:
            tracker.file_done()
            return FileResult(name, name, FileStatus.FAILED, size, error)
        item = _LocalFile(path, name, size)
        return _guard(
            item,
            tracker,
            lambda: _download_one(
                connection, container, item, entry, skip_unchanged, tracker
            ),
        )

    results = connection._run_parallel(
        [_bind(download, entry) for entry in entries], workers
    )
    _log_summary("downloaded", container, results)
    return results


# One file.


def _upload_one(
    connection: TransferMixin,
    container: str,
    item: _LocalFile,
    stored: dict[str, Any] | None,
    skip_unchanged: bool,
    tracker: _Progress,
) -> FileStatus:
    validate_object_name(item.name)
    size = os.stat(item.path).st_size
    small = size <= _BUFFERED_LIMIT and size <= connection.large_object_threshold

    if small:
        # Read once: the same bytes give the MD5 to compare and the body.
        with open(item.path, "rb") as handle:
            data = handle.read()
        md5 = _md5_of(data)
        if skip_unchanged and _matches_plain(stored, len(data), md5):
            tracker.add_bytes(len(data))
            return FileStatus.SKIPPED
        old = _existing(stored)
        old_segments = []
        if old is not None and old.is_static_large_object:
            old_segments = connection._read_manifest(container, item.name)
        connection._put_object(container, item.name, data, etag=md5)
        if old_segments:
            connection._delete_segments(old_segments, keep=set())
        tracker.add_bytes(len(data))
        return FileStatus.UPLOADED

    if skip_unchanged and _unchanged_local(connection, item.path, size, stored):
        tracker.add_bytes(size)
        return FileStatus.SKIPPED
    connection._upload_file(
        container,
        item.name,
        item.path,
        _existing(stored),
        content_type=None,
        headers=None,
        segment_size=None,
        large_object_threshold=None,
        workers=None,
        progress=tracker,
    )
    return FileStatus.UPLOADED


def _download_one(
    connection: TransferMixin,
    container: str,
    item: _LocalFile,
    entry: dict[str, Any],
    skip_unchanged: bool,
    tracker: _Progress,
) -> FileStatus:
    if _is_directory_marker(entry):
        os.makedirs(item.path, exist_ok=True)
        return FileStatus.DOWNLOADED

    if os.path.isdir(item.path):
        raise HubicTransferError(
            f"cannot download {container}/{item.name} to {item.path!r}: a folder "
            "of that name exists; move it or download to another folder"
        )
    parent = os.path.dirname(item.path)
    os.makedirs(parent, exist_ok=True)

    if (
        skip_unchanged
        and os.path.isfile(item.path)
        and _unchanged_local(connection, item.path, item.size, entry)
    ):
        tracker.add_bytes(item.size)
        return FileStatus.SKIPPED

    connection._download_file(container, item.name, item.path, None, tracker)
    return FileStatus.DOWNLOADED


def _guard(
    item: _LocalFile, tracker: _Progress, work: Callable[[], FileStatus]
) -> FileResult:
    """Run one file's transfer and turn its failure into a result."""
    try:
        status = work()
    except _ACCOUNT_ERRORS:
        raise
    except _FILE_ERRORS as error:
        if tracker.callback_error is error:
            raise
        if isinstance(error, ClientException) and error.http_status in (401, 403):
            raise
        logger.warning("transfer of %s failed: %s", item.name, error)
        tracker.file_done()
        return FileResult(item.path, item.name, FileStatus.FAILED, item.size, error)

    tracker.file_done()
    return FileResult(item.path, item.name, status, item.size)


# Comparisons.


def _matches_plain(stored: dict[str, Any] | None, size: int, md5: str) -> bool:
    if stored is None or "slo_etag" in stored:
        return False
    return int(stored.get("bytes", -1)) == size and stored.get("hash") == md5


def _unchanged_local(
    connection: TransferMixin,
    path: str,
    size: int,
    stored: dict[str, Any] | None,
) -> bool:
    """Return whether the local file has the size and ETag the listing shows."""
    if stored is None or int(stored.get("bytes", -1)) != size:
        return False
    slo = stored.get("slo_etag")
    if slo is None:
        return file_md5(path) == stored.get("hash")
    segment_size = _choose_segment_size(size, connection.segment_size)
    return file_slo_etag(path, segment_size) == str(slo).strip('"')


def _existing(stored: dict[str, Any] | None) -> _ExistingObject | None:
    if stored is None:
        return None
    return _ExistingObject(is_static_large_object="slo_etag" in stored)


def _is_directory_marker(entry: dict[str, Any]) -> bool:
    name = str(entry["name"])
    if name.endswith("/"):
        return True
    content_type = str(entry.get("content_type", "")).split(";")[0].strip()
    return content_type == DIRECTORY_CONTENT_TYPE and int(entry.get("bytes", 0)) == 0


# Local files.


def _check_connection(connection: object) -> None:
    if not isinstance(connection, TransferMixin):
        raise HubicInputError(
            f"bulk transfers need a lhubic.Hubic (or another TransferMixin "
            f"connection), got {type(connection).__name__}"
        )


def _check_directory(local_dir: str | os.PathLike[str]) -> str:
    path = _check_local_path(local_dir, "local_dir")
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise HubicInputError(
            f"local folder {path!r} does not exist or is not a "
            "folder; create it or pass an existing folder"
        )
    return root


def _walk(root: str, prefix: str) -> list[_LocalFile]:
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for filename in names:
            path = os.path.join(folder, filename)
            if not os.path.isfile(path):
                continue
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            files.append(_LocalFile(path, prefix + relative, os.stat(path).st_size))
    files.sort(key=lambda item: item.name)
    return files


def _local_path(root: str, relative: str) -> str:
    parts = [part for part in relative.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise HubicInputError(
            f"object name part {relative!r} has no file name or contains '.' or "
            "'..', so it has no safe place in the local folder; rename the object"
        )
    path = os.path.join(root, *parts)
    if os.path.commonpath([root, os.path.abspath(path)]) != root:
        raise HubicInputError(f"object name part {relative!r} leads outside {root!r}")
    if relative.endswith("/"):
        return path + os.sep
    return path


def _listing(
    connection: TransferMixin, container: str, prefix: str, *, create: bool
) -> dict[str, dict[str, Any]]:
    """Return the listing entries under ``prefix`` by name.

    A missing container is created when ``create`` is set, else it raises.
    """
    try:
        return {
            str(entry["name"]): entry
            for entry in iter_objects(connection, container, prefix=prefix or None)
            if "name" in entry
        }
    except ClientException as error:
        if error.http_status != 404 or not create:
            raise
    swift: Any = connection
    swift.put_container(container)
    return {}


def _bind(
    function: Callable[[Any], FileResult], argument: Any
) -> Callable[[], FileResult]:
    def call() -> FileResult:
        return function(argument)

    return call


def _log_summary(verb: str, container: str, results: list[FileResult]) -> None:
    counts = {status: 0 for status in FileStatus}
    for result in results:
        counts[result.status] += 1
    logger.info(
        "%s %s: %d transferred, %d skipped, %d failed",
        verb,
        container,
        counts[FileStatus.UPLOADED] + counts[FileStatus.DOWNLOADED],
        counts[FileStatus.SKIPPED],
        counts[FileStatus.FAILED],
    )
