"""Tests of lhubic.server.storage_auth: the token store and the Swift middleware.

The middleware tests run a real Swift (`SwiftCluster`) and talk to it over
HTTP with python-swiftclient, as hubiC clients did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from helpers import (
    new_storage_user,
    put_dynamic_large_object,
    put_static_large_object,
    run_in_threads,
    running_swift,
    storage_connection,
)
from swiftclient.client import ClientException, Connection

from lhubic.exceptions import HubicInputError
from lhubic.server.storage_auth import (
    StorageToken,
    StorageTokenStore,
    check_account,
    new_account,
)
from lhubic.server.swift_launcher import SwiftCluster

QUOTA = 10**9


# Token store, without Swift.


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StorageTokenStore]:
    token_store = StorageTokenStore(tmp_path / "tokens.sqlite3")
    yield token_store
    token_store.close()


def test_issue_returns_same_token_while_valid(store: StorageTokenStore) -> None:
    account = new_account()
    first = store.issue(account, 60)
    time.sleep(0.05)
    second = store.issue(account, 60)

    assert second.token == first.token
    assert second.expires == first.expires
    assert store.lookup(first.token) == account


def test_issue_sets_aware_expiry(store: StorageTokenStore) -> None:
    before = datetime.now(timezone.utc)
    issued = store.issue(new_account(), 3600)

    assert issued.expires.tzinfo is not None
    remaining = (issued.expires - before).total_seconds()
    assert 3590 < remaining <= 3601


def test_issue_in_renewal_window_gives_new_token(store: StorageTokenStore) -> None:
    account = new_account()
    first = store.issue(account, 10.0)
    # The renewal window is the last fifth of the lifetime plus one second:
    # 3 s of 10 s. A token with 10 s left is handed back, one with 2.5 s is not.
    assert store.issue(account, 10.0).token == first.token
    time.sleep(7.5)

    second = store.issue(account, 10.0)

    assert second.token != first.token
    assert second.expires > first.expires
    assert store.lookup(first.token) == account


def test_issue_after_expiry_gives_new_token(store: StorageTokenStore) -> None:
    account = new_account()
    first = store.issue(account, 0.2)
    time.sleep(0.3)

    assert store.lookup(first.token) is None
    second = store.issue(account, 60)
    assert second.token != first.token
    assert store.lookup(second.token) == account


def test_tokens_differ_between_accounts(store: StorageTokenStore) -> None:
    first = store.issue(new_account(), 60)
    second = store.issue(new_account(), 60)

    assert first.token != second.token
    assert len(first.token) >= 32


def test_lookup_unknown_token(store: StorageTokenStore) -> None:
    assert store.lookup("no-such-token") is None


def test_expire_all_invalidates_every_token(store: StorageTokenStore) -> None:
    tokens = [store.issue(new_account(), 60) for _ in range(3)]

    assert store.expire_all() == 3
    for issued in tokens:
        assert store.lookup(issued.token) is None
    renewed = store.issue(tokens[0].account, 60)
    assert renewed.token != tokens[0].token


def test_revoke_account_keeps_others(store: StorageTokenStore) -> None:
    revoked = store.issue(new_account(), 60)
    kept = store.issue(new_account(), 60)

    assert store.revoke_account(revoked.account) == 1
    assert store.lookup(revoked.token) is None
    assert store.lookup(kept.token) == kept.account


def test_fail_next_counts_down(store: StorageTokenStore) -> None:
    store.fail_next(2)

    assert store.pending_failures() == 2
    assert store.take_failure() is True
    assert store.take_failure() is True
    assert store.take_failure() is False
    assert store.pending_failures() == 0


def test_fail_next_zero_clears(store: StorageTokenStore) -> None:
    store.fail_next(5)
    store.fail_next(0)

    assert store.take_failure() is False


def test_second_store_sees_writes(tmp_path: Path) -> None:
    writer = StorageTokenStore(tmp_path / "shared.sqlite3")
    reader = StorageTokenStore(tmp_path / "shared.sqlite3")
    try:
        issued = writer.issue(new_account(), 60)
        writer.fail_next(1)

        assert reader.lookup(issued.token) == issued.account
        assert reader.take_failure() is True
        assert writer.take_failure() is False
    finally:
        writer.close()
        reader.close()


def test_store_uses_wal_journal(store: StorageTokenStore) -> None:
    with sqlite3.connect(store.path) as db:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_store_files_owner_only(store: StorageTokenStore) -> None:
    store.issue(new_account(), 60)

    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{store.path}{suffix}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_concurrent_issue_gives_one_token(tmp_path: Path) -> None:
    account = new_account()
    stores = [StorageTokenStore(tmp_path / "race.sqlite3") for _ in range(4)]
    results: list[StorageToken] = []
    lock = threading.Lock()

    def issue(index: int) -> None:
        for _ in range(5):
            issued = stores[index].issue(account, 60)
            with lock:
                results.append(issued)

    errors = run_in_threads(len(stores), issue)
    for token_store in stores:
        token_store.close()

    assert errors == []
    assert len(results) == 20
    assert len({issued.token for issued in results}) == 1


def test_store_reopens_after_close(store: StorageTokenStore) -> None:
    issued = store.issue(new_account(), 60)
    store.close()

    assert store.lookup(issued.token) == issued.account


def test_token_hidden_from_repr(store: StorageTokenStore) -> None:
    issued = store.issue(new_account(), 60)

    assert issued.token not in repr(issued)
    assert issued.account in repr(issued)
    assert issued.token not in repr(store)


def test_token_hidden_from_logs(
    store: StorageTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lhubic")
    issued = store.issue(new_account(), 60)
    store.lookup(issued.token)
    store.revoke_account(issued.account)

    assert caplog.records
    assert issued.token not in caplog.text


@pytest.mark.parametrize(
    "account",
    ["", "AUTH_", "AUTH_123", "auth_" + "a" * 32, "AUTH_" + "A" * 32, None, 7],
)
def test_check_account_rejects(account: object) -> None:
    with pytest.raises(HubicInputError, match="invalid Swift account"):
        check_account(account)


def test_check_account_accepts_new_account() -> None:
    account = new_account()

    assert check_account(account) == account


@pytest.mark.parametrize("lifetime", [0, -1, "60", None, True])
def test_issue_rejects_bad_lifetime(store: StorageTokenStore, lifetime: object) -> None:
    with pytest.raises(HubicInputError, match="lifetime"):
        store.issue(new_account(), lifetime)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [-1, 1.5, "2", True])
def test_fail_next_rejects_bad_count(store: StorageTokenStore, count: object) -> None:
    with pytest.raises(HubicInputError, match="fault count"):
        store.fail_next(count)  # type: ignore[arg-type]


# The middleware, through a real Swift.


@pytest.fixture(scope="module")
def cluster() -> Iterator[SwiftCluster]:
    with running_swift("lhubic-auth-") as swift:
        yield swift


@pytest.fixture
def user(cluster: SwiftCluster) -> StorageToken:
    return new_storage_user(cluster, QUOTA)


def _status_of(call: object, *args: object, **kwargs: object) -> int:
    with pytest.raises(ClientException) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return int(caught.value.http_status)


def test_store_list_read_delete(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = storage_connection(cluster, user)
    data = b"hello hubic\n" * 100

    etag = conn.put_object("default", "dir/hello.txt", data)
    _, listing = conn.get_container("default")
    _, body = conn.get_object("default", "dir/hello.txt")
    conn.delete_object("default", "dir/hello.txt")
    _, after = conn.get_container("default")

    assert etag == hashlib.md5(data).hexdigest()  # noqa: S324 - Swift's ETag
    assert [entry["name"] for entry in listing] == ["dir/hello.txt"]
    assert body == data
    assert after == []


def test_storage_token_header_accepted(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    conn = storage_connection(cluster, user)
    conn.put_object("default", "x", b"x")

    headers, body = conn.get_object(
        "default", "x", headers={"X-Storage-Token": user.token, "X-Auth-Token": ""}
    )

    assert body == b"x"
    assert headers["content-length"] == "1"


def test_static_large_object(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = storage_connection(cluster, user)
    segments = [bytes([65 + i]) * (1024 * (i + 1)) for i in range(3)]

    put_static_large_object(conn, "default", "big.bin", segments)
    headers, body = conn.get_object("default", "big.bin")

    assert body == b"".join(segments)
    assert headers["x-static-large-object"] == "True"
    assert int(headers["content-length"]) == sum(len(s) for s in segments)


def test_dynamic_large_object(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = storage_connection(cluster, user)
    segments = [b"first-", b"second-", b"third"]

    put_dynamic_large_object(conn, "default", "dlo.txt", segments)
    headers, body = conn.get_object("default", "dlo.txt")

    assert body == b"first-second-third"
    assert headers["x-object-manifest"] == "default_segments/dlo.txt/part/"


def test_no_token_gets_401(cluster: SwiftCluster, user: StorageToken) -> None:
    url = cluster.storage_url(user.account) + "/default"

    response = requests.get(url, timeout=10)

    assert response.status_code == 401
    assert response.headers["Www-Authenticate"] == f'Swift realm="{user.account}"'


def test_unknown_token_gets_401(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = Connection(
        preauthurl=cluster.storage_url(user.account),
        preauthtoken="not-a-real-token",
        retries=0,
    )

    assert _status_of(conn.head_account) == 401


def test_expired_token_gets_401(cluster: SwiftCluster) -> None:
    account = new_account()
    cluster.ensure_account(account, QUOTA)
    short = cluster.tokens.issue(account, 1)
    conn = storage_connection(cluster, short)
    conn.head_account()

    time.sleep(1.2)

    assert _status_of(conn.head_account) == 401


def test_expire_all_gets_401(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = storage_connection(cluster, user)
    conn.head_account()

    cluster.tokens.expire_all()

    assert _status_of(conn.head_account) == 401
    renewed = cluster.tokens.issue(user.account, 3600)
    assert renewed.token != user.token
    assert storage_connection(cluster, renewed).head_account()


def test_revoke_account_gets_401(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = storage_connection(cluster, user)
    conn.head_account()

    cluster.tokens.revoke_account(user.account)

    assert _status_of(conn.head_account) == 401


def test_other_account_gets_403(cluster: SwiftCluster, user: StorageToken) -> None:
    other = new_account()
    cluster.ensure_account(other, QUOTA)
    conn = Connection(
        preauthurl=cluster.storage_url(other), preauthtoken=user.token, retries=0
    )

    assert _status_of(conn.head_account) == 403
    assert _status_of(conn.get_container, "default") == 403
    assert _status_of(conn.put_object, "default", "intruder", b"x") == 403


def test_fault_counter_fails_exactly_n(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    conn = storage_connection(cluster, user)
    conn.put_object("default", "f", b"data")

    cluster.tokens.fail_next(3)
    statuses = []
    for _ in range(3):
        statuses.append(_status_of(conn.get_object, "default", "f"))
    _, body = conn.get_object("default", "f")

    assert statuses == [503, 503, 503]
    assert body == b"data"
    assert cluster.tokens.pending_failures() == 0


def test_fault_counter_before_auth(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = Connection(
        preauthurl=cluster.storage_url(user.account),
        preauthtoken="not-a-real-token",
        retries=0,
    )

    cluster.tokens.fail_next(1)

    assert _status_of(conn.head_account) == 503
    assert _status_of(conn.head_account) == 401


def test_fault_counter_spares_admin_key(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    admin = Connection(
        preauthurl=cluster.storage_url(user.account),
        preauthtoken=cluster.admin_key,
        retries=0,
    )

    cluster.tokens.fail_next(1)
    admin.head_account()
    cluster.ensure_account(user.account, QUOTA)

    assert cluster.tokens.pending_failures() == 1
    assert _status_of(storage_connection(cluster, user).head_account) == 503
    assert cluster.tokens.pending_failures() == 0


def test_fault_counter_ignores_segment_requests(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    conn = storage_connection(cluster, user)
    conn.put_container("default_segments")
    manifest = []
    for index in range(4):
        etag = conn.put_object("default_segments", f"fc/{index}", b"%d" % index)
        manifest.append(
            {"path": f"/default_segments/fc/{index}", "etag": etag, "size_bytes": 1}
        )
    conn.put_object(
        "default", "fc", json.dumps(manifest), query_string="multipart-manifest=put"
    )

    cluster.tokens.fail_next(1)
    first = _status_of(conn.get_object, "default", "fc")
    _, body = conn.get_object("default", "fc")

    assert first == 503
    assert body == b"0123"
    assert cluster.tokens.pending_failures() == 0


def test_info_needs_no_token(cluster: SwiftCluster) -> None:
    conn = Connection(preauthurl=cluster.url + "/v1/AUTH_x", retries=0)

    capabilities = conn.get_capabilities(cluster.url + "/info")

    assert "slo" in capabilities
    assert "account_quotas" in capabilities


def test_quota_headers_set_by_ensure_account(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    headers = storage_connection(cluster, user).head_account()

    assert headers["x-account-meta-quota"] == str(QUOTA)
    assert headers["x-account-meta-quota-bytes"] == str(QUOTA)


@pytest.mark.parametrize(
    "header",
    [
        "X-Account-Meta-Quota",
        "X-Account-Meta-Quota-Bytes",
        "X-Remove-Account-Meta-Quota",
        "X-Account-Quota-Bytes",
    ],
)
def test_user_cannot_change_quota(
    cluster: SwiftCluster, user: StorageToken, header: str
) -> None:
    conn = storage_connection(cluster, user)

    status = _status_of(conn.post_account, {header: "999999999999"})

    assert status == 403
    headers = conn.head_account()
    assert headers["x-account-meta-quota"] == str(QUOTA)
    assert headers["x-account-meta-quota-bytes"] == str(QUOTA)


def test_user_can_set_other_account_metadata(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    conn = storage_connection(cluster, user)

    conn.post_account({"X-Account-Meta-Color": "blue"})

    assert conn.head_account()["x-account-meta-color"] == "blue"


def test_quota_enforced(cluster: SwiftCluster) -> None:
    account = new_account()
    cluster.ensure_account(account, 1000)
    conn = storage_connection(cluster, cluster.tokens.issue(account, 3600))

    status = _status_of(conn.put_object, "default", "too-big", b"x" * 2000)

    assert status == 413


def test_admin_key_opens_any_account(cluster: SwiftCluster, user: StorageToken) -> None:
    storage_connection(cluster, user).put_object("default", "a", b"abc")
    admin = Connection(
        preauthurl=cluster.storage_url(user.account),
        preauthtoken=cluster.admin_key,
        retries=0,
    )

    _, body = admin.get_object("default", "a")
    admin.post_account({"X-Account-Meta-Quota": "123"})

    assert body == b"abc"
    assert admin.head_account()["x-account-meta-quota"] == "123"


def test_secrets_absent_from_swift_log(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    conn = storage_connection(cluster, user)
    conn.put_object("default", "logged", b"x")
    conn.get_object("default", "logged")
    Connection(
        preauthurl=cluster.storage_url(user.account),
        preauthtoken=cluster.admin_key,
        retries=0,
    ).head_account()

    log = _wait_for_log_line(cluster, "/default/logged")

    assert user.token not in log
    assert user.token[:8] not in log
    assert cluster.admin_key not in log
    assert cluster.admin_key[:8] not in log


def _wait_for_log_line(cluster: SwiftCluster, needle: str) -> str:
    deadline = time.monotonic() + 5
    while True:
        log = cluster.log_path.read_text(encoding="utf-8", errors="replace")
        if needle in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)
