"""Token stores: where `Hubic` keeps its tokens between processes.

A token store is any object with ``load() -> dict | None`` and
``save(record) -> None`` (the `TokenStore` protocol). `FileTokenStore` is the
one lhubic ships: a JSON file, created with mode 0600, replaced atomically on
every write and locked with ``flock`` so that several processes can share it.

The record is a JSON object whose known fields are listed in `RECORD_KEYS`.
A store keeps every other key it finds in the file, so a record written by a
newer lhubic or by another tool survives a save.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from .exceptions import HubicConfigError, HubicInputError

__all__ = [
    "RECORD_KEYS",
    "RECORD_VERSION",
    "FileTokenStore",
    "TokenStore",
    "make_token_store",
]

logger = logging.getLogger(__name__)

RECORD_VERSION = 1

RECORD_KEYS = frozenset(
    {
        "version",
        "api_url",
        "client_id",
        "refresh_token",
        "access_token",
        "access_token_expires",
        "storage_token",
        "storage_url",
        "storage_token_expires",
    }
)

_FILE_MODE = 0o600
_READ_ONLY_ERRORS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_FOLDER_MODE = 0o700

PathArg = str | os.PathLike[str]


@runtime_checkable
class TokenStore(Protocol):
    """An object that `Hubic(token_store=...)` loads tokens from and saves to."""

    def load(self) -> dict[str, Any] | None:
        """Return the saved record, or None when nothing was saved yet."""

    def save(self, record: dict[str, Any]) -> None:
        """Store ``record``, replacing the previous one."""


class FileTokenStore:
    """A token record in a JSON file that only its owner can read.

    Every write goes to a temporary file in the same folder, which is flushed
    to disk and then renamed over the old file, so a reader sees either the
    old record or the new one, never half of one. An exclusive ``flock`` on
    ``<path>.lock`` is held around each read-modify-write, and a shared one
    around each read, so processes that share the file do not lose each
    other's writes. The lock file stays next to the store after use.

    NOTE: ``flock`` locks are reliable on local file systems only; on NFS
    they depend on the server and the mount options.

    A file that is not a JSON object makes `load` raise `HubicConfigError`
    naming the path. `save` and `update` move such a file aside to
    ``<path>.corrupt`` (or ``<path>.corrupt.N``), log a warning naming both
    paths, and then write the new record.
    """

    def __init__(self, path: PathArg) -> None:
        self._path = _check_path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r})"

    @property
    def path(self) -> str:
        """Absolute path of the JSON file."""
        return self._path

    @property
    def lock_path(self) -> str:
        """Path of the file that ``flock`` locks around reads and writes."""
        return self._path + ".lock"

    def load(self) -> dict[str, Any] | None:
        """Return the stored record, or None when the file does not exist.

        Raises `HubicConfigError` when the file is not a JSON object, or when
        it is readable by other users and its mode cannot be changed to 0600.
        """
        if not os.path.isdir(os.path.dirname(self._path)):
            return None

        with self._locked(fcntl.LOCK_SH, required=False):
            return self._read()

    def save(self, record: Mapping[str, Any]) -> None:
        """Replace the stored record with ``record``.

        Keys of the stored record that are not in `RECORD_KEYS` are kept
        unless ``record`` sets them. Known keys that ``record`` leaves out
        are removed, so a record saved for another account never keeps that
        account's tokens.
        """
        new_record = _check_record(record, self._path)
        with self._locked(fcntl.LOCK_EX):
            current = self._read_or_move_aside()
            merged = {
                key: value
                for key, value in (current or {}).items()
                if key not in RECORD_KEYS
            }
            merged.update(new_record)
            self._write(merged)

    def update(
        self, changes: Mapping[str, Any], *, remove: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Merge ``changes`` into the stored record and return the result.

        The read, the merge and the write happen under one exclusive lock,
        so a key that another process wrote in the meantime is kept. Keys
        named in ``remove`` are deleted. An empty store starts from ``{}``.
        """
        new_values = _check_record(changes, self._path)
        if isinstance(remove, (str, bytes)) or not all(
            isinstance(key, str) for key in remove
        ):
            raise HubicInputError(
                f"remove must be a tuple of key names, got {remove!r}"
            )

        with self._locked(fcntl.LOCK_EX):
            merged = dict(self._read_or_move_aside() or {})
            merged.update(new_values)
            for key in remove:
                merged.pop(key, None)
            self._write(merged)
        return merged

    @contextlib.contextmanager
    def _locked(self, operation: int, required: bool = True) -> Iterator[None]:
        _make_folder(os.path.dirname(self._path))
        try:
            lock_fd = os.open(
                self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
            )
        except OSError as exc:
            if not required and exc.errno in _READ_ONLY_ERRORS:
                # A reader needs no lock to see a whole record, because every
                # write replaces the file with os.replace.
                logger.debug(
                    "reading token store %s without a lock: %s", self._path, exc
                )
                yield
                return
            raise HubicConfigError(
                f"failed to open the token store lock file {self.lock_path}: {exc}; "
                "check that its folder is writable"
            ) from exc

        try:
            fcntl.flock(lock_fd, operation)
            yield
        finally:
            os.close(lock_fd)

    def _read(self) -> dict[str, Any] | None:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HubicConfigError(
                f"failed to read the token store {self._path}: {exc}"
            ) from exc

        with os.fdopen(fd, "rb") as file:
            _restrict_mode(file.fileno(), self._path)
            data = file.read()
        return _parse_record(data, self._path)

    def _read_or_move_aside(self) -> dict[str, Any] | None:
        try:
            return self._read()
        except _CorruptRecord as exc:
            backup = _free_backup_path(self._path)
            os.replace(self._path, backup)
            logger.warning(
                "token store %s is not a valid token record (%s); moved it to %s and "
                "wrote a new record",
                self._path,
                exc.reason,
                backup,
            )
            return None

    def _write(self, record: dict[str, Any]) -> None:
        data = json.dumps(record, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        folder, name = os.path.split(self._path)
        fd, temp_path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as file:
                # mkstemp already creates the file with mode 0600; set it again
                # so the mode does not depend on how mkstemp is implemented.
                os.fchmod(file.fileno(), _FILE_MODE)
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_path, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_path)
            raise

        _fsync_folder(folder)
        logger.debug("saved token record to %s", self._path)


class _CorruptRecord(HubicConfigError):
    """The token store file exists but does not hold a JSON object."""

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"token store {path} is not a valid token record ({reason}); "
            "move it aside or delete it, and log in again to write a new one"
        )


def make_token_store(
    path_or_store: PathArg | TokenStore | None,
) -> TokenStore | None:
    """Return the token store that `Hubic(token_store=...)` was given.

    A path (``str`` or ``os.PathLike``) becomes a `FileTokenStore`. An object
    with callable ``load`` and ``save`` methods is returned unchanged, and None
    (no store) returns None. Anything else raises `HubicConfigError`.
    """
    if path_or_store is None:
        return None

    if isinstance(path_or_store, (str, os.PathLike)):
        return FileTokenStore(path_or_store)

    if callable(getattr(path_or_store, "load", None)) and callable(
        getattr(path_or_store, "save", None)
    ):
        return path_or_store

    raise HubicConfigError(
        "token_store must be a file path or an object with load() and save() "
        f"methods, got {type(path_or_store).__name__}"
    )


def _check_path(path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise HubicConfigError(
            f"token store path must be a str or os.PathLike, got {type(path).__name__}"
        )

    text = os.fspath(path)
    if isinstance(text, bytes):
        raise HubicConfigError(
            f"token store path must be text, got bytes {text!r}; decode it first"
        )
    if not text.strip():
        raise HubicConfigError(
            "token store path is empty; pass a file path such as "
            "'~/.config/lhubic/tokens.json'"
        )
    if "\0" in text:
        raise HubicConfigError(
            f"token store path {text!r} contains a NUL character; pass a valid path"
        )

    # Resolve symbolic links so that the atomic rename replaces the file the
    # link points to rather than the link itself.
    resolved = os.path.realpath(os.path.expanduser(text))
    if os.path.isdir(resolved):
        raise HubicConfigError(
            f"token store path {resolved} is a folder; pass a file path inside it, "
            f"such as {os.path.join(resolved, 'tokens.json')}"
        )
    return resolved


def _check_record(record: object, path: str) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise HubicInputError(
            f"a token record must be a dict, got {type(record).__name__}"
        )

    bad_keys = [key for key in record if not isinstance(key, str)]
    if bad_keys:
        raise HubicInputError(f"token record keys must be strings, got {bad_keys[0]!r}")

    try:
        json.dumps(dict(record))
    except (TypeError, ValueError) as exc:
        # The message names the offending type only: the values are tokens.
        raise HubicInputError(
            f"the token record for {path} cannot be written as JSON: {exc}; "
            "pass only strings, numbers, booleans, None, lists and dicts"
        ) from None
    return dict(record)


def _parse_record(data: bytes, path: str) -> dict[str, Any]:
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _CorruptRecord(path, f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON at line {exc.lineno} column {exc.colno}"
        raise _CorruptRecord(path, reason) from None

    if not isinstance(record, dict):
        reason = f"a JSON {type(record).__name__} instead of an object"
        raise _CorruptRecord(path, reason)
    return record


def _restrict_mode(fd: int, path: str) -> None:
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if not mode & 0o077:
        return

    try:
        os.fchmod(fd, _FILE_MODE)
    except OSError as exc:
        raise HubicConfigError(
            f"token store {path} is readable by other users (mode {mode:04o}) and "
            f"its mode cannot be changed: {exc}; run 'chmod 600 {path}' as its owner"
        ) from exc

    logger.warning(
        "token store %s was readable by other users (mode %04o); changed its "
        "mode to 0600. Its tokens may have been read: log in again to replace "
        "them if other users have access to this machine",
        path,
        mode,
    )


def _make_folder(folder: str) -> None:
    try:
        os.makedirs(folder, mode=_FOLDER_MODE, exist_ok=True)
    except OSError as exc:
        raise HubicConfigError(
            f"failed to create the token store folder {folder}: {exc}"
        ) from exc


def _free_backup_path(path: str) -> str:
    candidate = path + ".corrupt"
    number = 1
    while os.path.lexists(candidate):
        candidate = f"{path}.corrupt.{number}"
        number += 1
    return candidate


def _fsync_folder(folder: str) -> None:
    # The rename is durable only once the folder entry is on disk. Some file
    # systems do not allow fsync on a folder; the data itself is already synced.
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
