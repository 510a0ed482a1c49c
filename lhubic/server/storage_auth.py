"""Storage tokens for the local Swift, and the proxy middleware that checks them.

`StorageTokenStore` keeps storage tokens and the storage fault counter in one
SQLite file. The service process writes it when it issues tokens for
``/1.0/account/credentials`` and when it sets the fault counter. The Swift
child process reads it on every request through `StorageAuthMiddleware`.
SQLite's file locking, WAL journal and a busy timeout make that safe across
the two processes.

The middleware replaces Swift's tempauth in the proxy pipeline:

- ``X-Auth-Token`` (or ``X-Storage-Token``) equal to the admin key gets
  reseller-admin rights on every account;
- a valid storage token is owner of its own account and gets 403 elsewhere;
- an unknown or expired token, or no token at all, gets 401, because hubiC
  had no public containers;
- users get 403 when they try to change the account quota headers;
- while the fault counter is above zero, users' requests under ``/v1/`` get
  503 before any token check; the admin key's requests and the subrequests
  of Swift's own middlewares never use up a fault.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lhubic.exceptions import HubicConfigError, HubicInputError

__all__ = [
    "ACCOUNT_PATTERN",
    "QUOTA_HEADERS",
    "StorageAuthMiddleware",
    "StorageToken",
    "StorageTokenStore",
    "check_account",
    "filter_factory",
    "new_account",
]

logger = logging.getLogger(__name__)

ACCOUNT_PATTERN = re.compile(r"AUTH_[0-9a-f]{32}")
"""Swift account names that the local service uses, as hubiC did."""

QUOTA_HEADERS = frozenset(
    {
        "x-account-meta-quota",
        "x-account-meta-quota-bytes",
        "x-account-meta-quota-count",
        "x-account-quota-bytes",
        "x-account-quota-count",
    }
)
"""Account headers that only the admin key may set or remove."""

BUSY_TIMEOUT_SECONDS = 10.0

# A token in the last fifth of its life (at most ten minutes), plus one second,
# is replaced on the next request for credentials. The client renews in the
# last tenth (at most five minutes) of the expiry it reads, which has whole
# seconds and so may be up to a second early. Its early renewal therefore
# falls inside this window and gets a new token.
RENEWAL_WINDOW_FRACTION = 0.2
RENEWAL_WINDOW_MAX = 600.0
EXPIRES_ROUNDING = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS storage_tokens (
    token TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS storage_tokens_by_account
    ON storage_tokens (account, expires);
CREATE TABLE IF NOT EXISTS storage_faults (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    remaining INTEGER NOT NULL
);
INSERT OR IGNORE INTO storage_faults (id, remaining) VALUES (1, 0);
"""


def new_account() -> str:
    """Return a new random account name, ``AUTH_`` and 32 hex digits."""
    return f"AUTH_{secrets.token_hex(16)}"


def check_account(account: object) -> str:
    """Return ``account`` if it is a valid account name, else raise.

    Raises:
        HubicInputError: ``account`` is not ``AUTH_`` followed by 32 lowercase
            hex digits.
    """
    if not isinstance(account, str) or not ACCOUNT_PATTERN.fullmatch(account):
        raise HubicInputError(
            f"invalid Swift account {account!r}: expected 'AUTH_' followed by "
            "32 lowercase hex digits, as new_account() returns"
        )
    return account


@dataclass(frozen=True)
class StorageToken:
    """A storage token, the account it opens, and its timezone-aware expiry."""

    token: str = field(repr=False)
    account: str
    expires: datetime


class StorageTokenStore:
    """Storage tokens and the storage fault counter in one SQLite file.

    One connection per store, guarded by a lock, so threads of the service
    process may share a store. Each method is one short transaction.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        with self._lock:
            self._connect()

    def __repr__(self) -> str:
        return f"StorageTokenStore({str(self.path)!r})"

    def issue(self, account: str, lifetime_seconds: float) -> StorageToken:
        """Return the account's current token, or a new one if it has none.

        A token that is still valid comes back unchanged with whatever time it
        has left, as hubiC did, until it enters its renewal window (the last
        fifth of ``lifetime_seconds``, at most `RENEWAL_WINDOW_MAX` seconds,
        plus `EXPIRES_ROUNDING`).
        Then a new token, living ``lifetime_seconds``, is issued, so a client
        that renews a little before expiry gets a fresh token. The old token
        stays valid until its own expiry.
        """
        check_account(account)
        if isinstance(lifetime_seconds, bool) or not (
            isinstance(lifetime_seconds, (int, float)) and lifetime_seconds > 0
        ):
            raise HubicInputError(
                f"invalid storage token lifetime {lifetime_seconds!r}: "
                "expected a positive number of seconds"
            )

        with self._transaction() as db:
            now = time.time()
            db.execute("DELETE FROM storage_tokens WHERE expires <= ?", (now,))
            window = (
                min(lifetime_seconds * RENEWAL_WINDOW_FRACTION, RENEWAL_WINDOW_MAX)
                + EXPIRES_ROUNDING
            )
            row = db.execute(
                "SELECT token, expires FROM storage_tokens WHERE account = ? "
                "AND expires > ? ORDER BY expires DESC LIMIT 1",
                (account, now + window),
            ).fetchone()
            if row is None:
                row = (secrets.token_urlsafe(32), now + lifetime_seconds)
                db.execute(
                    "INSERT INTO storage_tokens (token, account, expires) "
                    "VALUES (?, ?, ?)",
                    (row[0], account, row[1]),
                )
                logger.debug("issued a new storage token for %s", account)

        token, expires = row
        return StorageToken(
            token=token,
            account=account,
            expires=datetime.fromtimestamp(expires, tz=timezone.utc),
        )

    def lookup(self, token: str) -> str | None:
        """Return the account that ``token`` opens, or None if unknown or expired."""
        with self._lock:
            row = (
                self._connect()
                .execute(
                    "SELECT account FROM storage_tokens "
                    "WHERE token = ? AND expires > ?",
                    (token, time.time()),
                )
                .fetchone()
            )
        return None if row is None else str(row[0])

    def expire_all(self) -> int:
        """Make every storage token expire now and return how many were valid."""
        with self._transaction() as db:
            now = time.time()
            cursor = db.execute(
                "UPDATE storage_tokens SET expires = ? WHERE expires > ?", (now, now)
            )
            count = cursor.rowcount
        logger.info("expired %d storage tokens", count)
        return count

    def revoke_account(self, account: str) -> int:
        """Delete every token of ``account`` and return how many there were."""
        check_account(account)
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM storage_tokens WHERE account = ?", (account,)
            )
            count = cursor.rowcount
        logger.info("revoked %d storage tokens of %s", count, account)
        return count

    def fail_next(self, count: int) -> None:
        """Make the next ``count`` storage requests get 503, or none for 0."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise HubicInputError(
                f"invalid storage fault count {count!r}: "
                "expected an integer of 0 or more"
            )
        with self._transaction() as db:
            db.execute("UPDATE storage_faults SET remaining = ? WHERE id = 1", (count,))
        logger.info("the next %d storage requests will get 503", count)

    def take_failure(self) -> bool:
        """Use up one pending storage fault, or return False when none is left."""
        with self._lock:
            db = self._connect()

            # Reading first keeps the common case, no fault pending, free of
            # write locks.
            (remaining,) = db.execute(
                "SELECT remaining FROM storage_faults WHERE id = 1"
            ).fetchone()
            if remaining <= 0:
                return False

            cursor = db.execute(
                "UPDATE storage_faults SET remaining = remaining - 1 "
                "WHERE id = 1 AND remaining > 0"
            )
            return cursor.rowcount == 1

    def pending_failures(self) -> int:
        """Return how many storage requests will still get 503."""
        with self._lock:
            (remaining,) = (
                self._connect()
                .execute("SELECT remaining FROM storage_faults WHERE id = 1")
                .fetchone()
            )
        return int(remaining)

    def close(self) -> None:
        """Close the connection. The next call opens a new one."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> sqlite3.Connection:
        # Callers hold self._lock.
        if self._connection is None:
            # Tokens are secrets, so the file is created owner-only. SQLite
            # gives its -wal and -shm files the same mode as the database.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            connection = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in ``BEGIN IMMEDIATE`` ... ``COMMIT``, under the lock."""
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


StartResponse = Callable[..., Any]


class StorageAuthMiddleware:
    """Swift proxy middleware that accepts the admin key and storage tokens."""

    def __init__(self, app: Any, admin_key: str, store: StorageTokenStore) -> None:
        if not admin_key:
            raise HubicConfigError("the storage auth middleware needs an admin_key")
        self.app = app
        self._admin_key = admin_key.encode("utf-8")
        self.store = store

    def __repr__(self) -> str:
        return f"StorageAuthMiddleware(store={self.store!r})"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/info":
            return self.app(environ, start_response)

        account, container = _split_account_path(path)
        token: str = (
            environ.get("HTTP_X_AUTH_TOKEN")
            or environ.get("HTTP_X_STORAGE_TOKEN")
            or ""
        )
        is_admin = bool(token) and hmac.compare_digest(
            token.encode("utf-8"), self._admin_key
        )

        # Only users' own requests use up injected faults. Subrequests from
        # Swift's middlewares (bulk, slo, ...) carry swift.source, and the
        # service's requests carry the admin key.
        if account is not None and not is_admin and "swift.source" not in environ:
            try:
                failing = self.store.take_failure()
            except sqlite3.Error:
                return self._store_failed(environ, start_response)
            if failing:
                logger.info("injected 503 for %s %s", environ["REQUEST_METHOD"], path)
                return _respond(environ, start_response, 503, "storage unavailable\n")

        if not token:
            return _unauthorized(
                environ, start_response, account, "no X-Auth-Token header"
            )
        if is_admin:
            environ["REMOTE_USER"] = ".reseller_admin"
            environ["reseller_request"] = True
            environ["swift.authorize"] = _authorize_admin
            environ["swift.clean_acl"] = _clean_acl
            return self.app(environ, start_response)

        try:
            owner = self.store.lookup(token)
        except sqlite3.Error:
            return self._store_failed(environ, start_response)
        if owner is None:
            return _unauthorized(
                environ, start_response, account, "unknown or expired token"
            )

        environ["REMOTE_USER"] = owner
        environ["swift.authorize"] = functools.partial(_authorize_owner, owner)
        environ["swift.clean_acl"] = _clean_acl
        if container is None and environ["REQUEST_METHOD"] in ("POST", "PUT"):
            changed = _quota_headers_in(environ)
            if changed:
                logger.info("rejected quota change by %s: %s", owner, changed)
                return _respond(
                    environ,
                    start_response,
                    403,
                    "account quota headers can only be set by the service\n",
                )
        return self.app(environ, start_response)

    def _store_failed(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        logger.exception(
            "reading the storage token database %s failed", self.store.path
        )
        return _respond(
            environ, start_response, 503, "storage token database unavailable\n"
        )


def _split_account_path(path: str) -> tuple[str | None, str | None]:
    """Return the account and container of a ``/v1/...`` path, None if absent."""
    parts = path.split("/", 4)
    if len(parts) < 3 or parts[0] != "" or parts[1] not in ("v1", "v1.0"):
        return None, None
    account = parts[2] or None
    container = parts[3] if len(parts) > 3 and parts[3] else None
    return account, container


def _quota_headers_in(environ: dict[str, Any]) -> list[str]:
    names = []
    for key in environ:
        if not key.startswith("HTTP_"):
            continue
        name = key[5:].lower().replace("_", "-")
        if name.startswith("x-remove-"):
            name = "x-" + name[len("x-remove-") :]
        if name in QUOTA_HEADERS or name.startswith("x-account-quota-"):
            names.append(name)
    return sorted(names)


def _authorize_admin(request: Any) -> None:
    request.environ["swift_owner"] = True


def _authorize_owner(owner: str, request: Any) -> Any:
    from swift.common.swob import HTTPForbidden

    account, _ = _split_account_path(request.path_info)
    if account == owner:
        request.environ["swift_owner"] = True
        return None

    logger.info("403 for the token of %s on %s", owner, request.path_info)
    return HTTPForbidden(request=request)


def _clean_acl(name: str, value: str) -> str:
    from swift.common.middleware.acl import clean_acl

    return str(clean_acl(name, value))


def _unauthorized(
    environ: dict[str, Any],
    start_response: StartResponse,
    account: str | None,
    reason: str,
) -> Iterable[bytes]:
    realm = account or "unknown"
    logger.info("401 for account %s: %s", realm, reason)
    return _respond(
        environ,
        start_response,
        401,
        f"{reason}\n",
        {"Www-Authenticate": f'Swift realm="{realm}"'},
    )


def _respond(
    environ: dict[str, Any],
    start_response: StartResponse,
    status: int,
    body: str,
    headers: dict[str, str] | None = None,
) -> Iterable[bytes]:
    # swob sends Content-Length without a body for HEAD, as catch_errors expects.
    from swift.common.swob import Request, Response

    response = Response(
        request=Request(environ),
        status=status,
        body=body.encode("utf-8"),
        content_type="text/plain",
        charset="utf-8",
        headers=headers or {},
    )
    return response(environ, start_response)  # type: ignore[no-any-return]


def filter_factory(
    global_conf: dict[str, str], **local_conf: str
) -> Callable[[Any], StorageAuthMiddleware]:
    """Build the paste-deploy filter from ``admin_key`` and ``token_database``."""
    conf = {**global_conf, **local_conf}
    admin_key = conf.get("admin_key", "")
    database = conf.get("token_database", "")
    if not admin_key or not database:
        raise HubicConfigError(
            "the storage-auth filter section needs admin_key and token_database"
        )
    store = StorageTokenStore(database)

    def make_filter(app: Any) -> StorageAuthMiddleware:
        return StorageAuthMiddleware(app, admin_key, store)

    return make_filter
