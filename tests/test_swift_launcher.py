"""Tests of lhubic.server.swift_launcher and swift_process: a real Swift child.

One cluster serves most of the module. Tests that start, break or stop Swift
use a cluster of their own.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from helpers import new_storage_user, running_swift, storage_connection
from swiftclient.client import ClientException, Connection

from lhubic.exceptions import HubicConfigError, HubicInputError, HubicServerError
from lhubic.server.storage_auth import StorageToken, new_account
from lhubic.server.swift_launcher import (
    XATTR_PROBE_BYTES,
    SwiftCluster,
    default_data_parent,
    supports_large_xattrs,
)
from lhubic.server.swift_process import InProcessCache

MAX_OBJECT_SIZE = 64 * 1024
UPDATER_INTERVAL = 1.0
QUOTA = 5 * 10**9

needs_xattrs = pytest.mark.skipif(
    not supports_large_xattrs(default_data_parent()),
    reason=f"no writable folder here takes {XATTR_PROBE_BYTES}-byte user xattrs, "
    "which Swift's disk object server needs",
)


def _folder_without_xattrs() -> Path | None:
    for candidate in (Path(tempfile.gettempdir()), Path.cwd(), Path.home()):
        if os.access(candidate, os.W_OK) and not supports_large_xattrs(candidate):
            return candidate
    return None


NO_XATTR_FOLDER = _folder_without_xattrs()

needs_folder_without_xattrs = pytest.mark.skipif(
    NO_XATTR_FOLDER is None,
    reason="every writable folder here takes large user xattrs, so the "
    "fallback to the in-memory object server cannot be exercised",
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="lhubic-swift-", dir=default_data_parent()))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[SwiftCluster]:
    with running_swift(
        "lhubic-swift-",
        max_object_size=MAX_OBJECT_SIZE,
        updater_interval=UPDATER_INTERVAL,
    ) as swift:
        yield swift


@pytest.fixture
def user(cluster: SwiftCluster) -> StorageToken:
    return new_storage_user(cluster, QUOTA)


def _process_gone(pid: int) -> bool:
    """Return True if ``pid`` no longer runs; a zombie counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat_file:
            state = stat_file.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _children(pid: int) -> list[int]:
    """Return the PIDs of the live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def _wait_until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat_file:
        fields = stat_file.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_start_time_under_five_seconds(cluster: SwiftCluster) -> None:
    assert cluster.start_seconds is not None
    print(f"\nSwift start to /healthcheck: {cluster.start_seconds:.2f} s")

    assert cluster.start_seconds < 5.0


def test_healthcheck_and_url(cluster: SwiftCluster) -> None:
    response = requests.get(cluster.url + "/healthcheck", timeout=10)

    assert cluster.url.startswith("http://127.0.0.1:")
    assert response.status_code == 200
    assert response.text == "OK"


def test_object_server_kind_matches_folder(cluster: SwiftCluster) -> None:
    expected = "disk" if supports_large_xattrs(cluster.data_dir) else "memory"

    assert cluster.object_server_kind == expected


def test_object_workers_default_to_one_per_core(cluster: SwiftCluster) -> None:
    cores = len(os.sched_getaffinity(0))
    on_disk = cluster.object_server_kind == "disk"
    expected = cores if on_disk and cores > 1 else 0
    assert cluster.pid is not None

    assert cluster.object_worker_count == expected
    assert len(_children(cluster.pid)) == expected


@needs_xattrs
def test_object_workers_store_and_stop(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lhubic.server.swift_launcher")
    bodies = {f"object-{number}": os.urandom(256 * 1024) for number in range(8)}

    with SwiftCluster(data_dir, object_workers=2) as swift:
        assert swift.pid is not None
        workers = _children(swift.pid)
        user = new_storage_user(swift, QUOTA)

        def round_trip(name: str) -> bytes:
            conn = storage_connection(swift, user)
            conn.put_object("default", name, bodies[name])
            return conn.get_object("default", name)[1]

        with ThreadPoolExecutor(4) as pool:
            returned = dict(zip(bodies, pool.map(round_trip, bodies), strict=True))

    assert len(workers) == 2
    assert returned == bodies
    assert all(_process_gone(pid) for pid in workers)
    # The child stopped its workers, then ended by SIGTERM as it would alone.
    assert f"exit status {-signal.SIGTERM}" in caplog.text


@needs_xattrs
def test_worker_exit_stops_swift(data_dir: Path) -> None:
    with SwiftCluster(data_dir, object_workers=2) as swift:
        assert swift.pid is not None
        first, second = _children(swift.pid)
        os.kill(first, signal.SIGKILL)

        assert _wait_until(lambda: not swift.running)
        assert _wait_until(lambda: _process_gone(second))
        log = swift.log_path.read_text()

    assert f"object server worker {first} exited" in log


@needs_xattrs
def test_workers_exit_when_swift_is_killed(data_dir: Path) -> None:
    with SwiftCluster(data_dir, object_workers=2) as swift:
        assert swift.pid is not None
        workers = _children(swift.pid)
        os.kill(swift.pid, signal.SIGKILL)

        assert _wait_until(lambda: all(_process_gone(pid) for pid in workers))


def test_memory_object_server_runs_in_the_child(data_dir: Path) -> None:
    with SwiftCluster(data_dir, object_server="memory") as swift:
        assert swift.pid is not None
        workers = _children(swift.pid)

    assert workers == []


def test_memory_object_server_rejects_workers(data_dir: Path) -> None:
    with pytest.raises(HubicConfigError, match="invalid object_workers=2 with"):
        SwiftCluster(data_dir, object_server="memory", object_workers=2)


def test_storage_url_format(cluster: SwiftCluster) -> None:
    account = new_account()

    assert cluster.storage_url(account) == f"{cluster.url}/v1/{account}"


def test_storage_url_rejects_bad_account(cluster: SwiftCluster) -> None:
    with pytest.raises(HubicInputError, match="'AUTH_oops'"):
        cluster.storage_url("AUTH_oops")


def test_admin_key_hidden_from_repr(cluster: SwiftCluster) -> None:
    assert cluster.admin_key not in repr(cluster)
    assert cluster.url in repr(cluster)


def test_admin_key_absent_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    # A cluster of its own, so that its start-up is captured.
    folder = Path(tempfile.mkdtemp(prefix="lhubic-swift-", dir=default_data_parent()))
    caplog.set_level(logging.DEBUG)
    swift = SwiftCluster(folder)
    try:
        swift.start()
        swift.ensure_account(new_account(), 1)
    finally:
        swift.stop()
    shutil.rmtree(folder, ignore_errors=True)

    assert "Swift started" in caplog.text
    assert swift.admin_key not in caplog.text


def test_ensure_account_idempotent(cluster: SwiftCluster) -> None:
    account = new_account()
    admin = Connection(
        preauthurl=cluster.storage_url(account),
        preauthtoken=cluster.admin_key,
        retries=0,
    )

    cluster.ensure_account(account, 1000)
    cluster.ensure_account(account, 2000)
    headers, containers = admin.get_account()

    assert headers["x-account-meta-quota"] == "2000"
    assert headers["x-account-meta-quota-bytes"] == "2000"
    assert headers["x-account-quota-bytes"] == "2000"
    assert [entry["name"] for entry in containers] == ["default"]


@pytest.mark.parametrize("quota", [-1, 1.5, "10", None, True])
def test_ensure_account_rejects_bad_quota(cluster: SwiftCluster, quota: object) -> None:
    with pytest.raises(HubicInputError, match="quota_bytes"):
        cluster.ensure_account(new_account(), quota)  # type: ignore[arg-type]


def test_container_usage_exact_at_once(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    conn = storage_connection(cluster, user)
    conn.put_container("photos")
    conn.put_object("default", "a", b"a" * 1000)
    conn.put_object("photos", "b", b"b" * 234)

    assert cluster.container_usage(user.account) == 1234


def test_container_usage_of_empty_account(cluster: SwiftCluster) -> None:
    account = new_account()
    cluster.ensure_account(account, QUOTA)

    assert cluster.container_usage(account) == 0


def test_account_bytes_catch_up(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = storage_connection(cluster, user)
    conn.put_object("default", "counted", b"z" * 4321)

    deadline = time.monotonic() + 10 * UPDATER_INTERVAL
    headers = conn.head_account()
    while headers["x-account-bytes-used"] != "4321" and time.monotonic() < deadline:
        time.sleep(0.2)
        headers = conn.head_account()

    assert headers["x-account-bytes-used"] == "4321"
    assert headers["x-account-object-count"] == "1"


def test_max_object_size_gives_413(cluster: SwiftCluster, user: StorageToken) -> None:
    conn = storage_connection(cluster, user)
    conn.put_object("default", "fits", b"f" * MAX_OBJECT_SIZE)

    with pytest.raises(ClientException) as caught:
        conn.put_object("default", "too-big", b"f" * (MAX_OBJECT_SIZE + 1))

    assert caught.value.http_status == 413


@needs_xattrs
def test_large_metadata_on_disk_server(
    cluster: SwiftCluster, user: StorageToken
) -> None:
    assert cluster.object_server_kind == "disk"
    conn = storage_connection(cluster, user)
    # 24 values of 250 bytes: about 6 KiB, over ext4's xattr room.
    metadata = {f"X-Object-Meta-Field{i:02d}": chr(97 + i) * 250 for i in range(24)}

    conn.put_object("default", "meta", b"m", headers=metadata)
    headers = conn.head_object("default", "meta")

    for name, value in metadata.items():
        assert headers[name.lower()] == value


def test_updater_cpu_cost(cluster: SwiftCluster) -> None:
    # The updater sweeps every second here. The forking daemon took 1.2 cores
    # at a 2 s interval on a 2-core machine, and this must stay far below.
    assert cluster.pid is not None
    before = _cpu_seconds(cluster.pid)
    time.sleep(3.0)
    used = _cpu_seconds(cluster.pid) - before
    print(
        f"\nidle Swift child CPU with a {UPDATER_INTERVAL:.0f} s updater: "
        f"{used / 3.0:.1%} of one core"
    )

    assert used / 3.0 < 0.10


def test_busy_proxy_port_rejected(cluster: SwiftCluster, data_dir: Path) -> None:
    port = int(cluster.url.rsplit(":", 1)[1])
    second = SwiftCluster(data_dir, proxy_port=port)

    with pytest.raises(HubicConfigError, match=f"proxy port {port} "):
        second.start()

    assert second.pid is None
    assert requests.get(cluster.url + "/healthcheck", timeout=10).text == "OK"


def test_bound_but_silent_port_rejected(data_dir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        swift = SwiftCluster(data_dir, proxy_port=port)

        with pytest.raises(HubicConfigError, match=f"proxy port {port} "):
            swift.start()


def test_given_proxy_port_used(data_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with SwiftCluster(data_dir, proxy_port=port, object_server="memory") as swift:
        assert swift.url == f"http://127.0.0.1:{port}"
        assert requests.get(swift.url + "/healthcheck", timeout=10).text == "OK"


@needs_folder_without_xattrs
def test_disk_without_xattrs_rejected() -> None:
    assert NO_XATTR_FOLDER is not None
    folder = Path(tempfile.mkdtemp(prefix="lhubic-swift-", dir=NO_XATTR_FOLDER))
    try:
        swift = SwiftCluster(folder, object_server="disk")
        with pytest.raises(HubicConfigError, match="object_server='disk'"):
            swift.start()
        assert swift.pid is None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@needs_folder_without_xattrs
def test_auto_without_xattrs_uses_memory(caplog: pytest.LogCaptureFixture) -> None:
    assert NO_XATTR_FOLDER is not None
    folder = Path(tempfile.mkdtemp(prefix="lhubic-swift-", dir=NO_XATTR_FOLDER))
    caplog.set_level(logging.WARNING, logger="lhubic")
    try:
        with SwiftCluster(folder) as swift:
            account = new_account()
            swift.ensure_account(account, QUOTA)
            conn = storage_connection(swift, swift.tokens.issue(account, 60))
            conn.put_object("default", "in-memory", b"kept in RAM")
            _, body = conn.get_object("default", "in-memory")
            kind = swift.object_server_kind
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    assert kind == "memory"
    assert body == b"kept in RAM"
    assert "lost when Swift stops" in caplog.text


@needs_folder_without_xattrs
def test_auto_fallback_ignores_object_workers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert NO_XATTR_FOLDER is not None
    folder = Path(tempfile.mkdtemp(prefix="lhubic-swift-", dir=NO_XATTR_FOLDER))
    caplog.set_level(logging.WARNING, logger="lhubic")
    try:
        with SwiftCluster(folder, object_workers=2) as swift:
            assert swift.pid is not None
            workers = _children(swift.pid)
            count = swift.object_worker_count
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    assert workers == []
    assert count == 0
    assert "ignoring object_workers=2" in caplog.text


def test_stop_leaves_no_process(data_dir: Path) -> None:
    swift = SwiftCluster(data_dir, object_server="memory")
    swift.start()
    pid = swift.pid
    assert pid is not None

    swift.stop()
    swift.stop()

    assert swift.pid is None
    assert _process_gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(HubicServerError, match="not started"):
        swift.url  # noqa: B018 - the property raises


def test_restart_keeps_objects_on_disk(data_dir: Path) -> None:
    if not supports_large_xattrs(data_dir):
        pytest.skip(f"{data_dir} rejects large xattrs, so objects live in memory")
    account = new_account()

    with SwiftCluster(data_dir) as swift:
        swift.ensure_account(account, QUOTA)
        token = swift.tokens.issue(account, 3600)
        storage_connection(swift, token).put_object("default", "kept", b"persisted")

    with SwiftCluster(data_dir) as swift:
        token = swift.tokens.issue(account, 3600)
        _, body = storage_connection(swift, token).get_object("default", "kept")

    assert body == b"persisted"


def test_data_dir_in_use_rejected(cluster: SwiftCluster) -> None:
    second = SwiftCluster(cluster.data_dir, object_server="memory")

    with pytest.raises(HubicConfigError, match="is in use by another running"):
        second.start()

    assert not second.running
    assert cluster.running
    assert requests.get(cluster.url + "/healthcheck", timeout=10).text == "OK"


def test_data_dir_free_after_stop(data_dir: Path) -> None:
    with SwiftCluster(data_dir, object_server="memory") as first:
        assert first.running

    with SwiftCluster(data_dir, object_server="memory") as second:
        assert second.running
    assert not second.running


def test_start_twice_rejected(data_dir: Path) -> None:
    with SwiftCluster(data_dir, object_server="memory") as swift:
        with pytest.raises(HubicServerError, match="already started"):
            swift.start()


def test_crashing_child_reports_log_tail(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_python = tmp_path / "crashing-python"
    fake_python.write_text("#!/bin/sh\necho 'simulated start-up failure' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    swift = SwiftCluster(data_dir, object_server="memory")

    with pytest.raises(HubicServerError) as caught:
        swift.start()

    assert "status 3" in str(caught.value)
    assert "simulated start-up failure" in str(caught.value)
    assert swift.pid is None


def test_slow_child_times_out(data_dir: Path) -> None:
    swift = SwiftCluster(data_dir, object_server="memory", start_timeout=0.01)

    with pytest.raises(HubicServerError, match=r"timed out after 0\.01 s") as caught:
        swift.start()

    assert str(swift.log_path) in str(caught.value)
    assert swift.pid is None


def test_child_exits_when_parent_dies(data_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from lhubic.server.swift_launcher import SwiftCluster
        swift = SwiftCluster({str(data_dir)!r}, object_server="memory")
        swift.start()
        print(swift.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not _process_gone(child_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    deadline = time.monotonic() + 10
    while not _process_gone(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert _process_gone(child_pid)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"object_server": "ssd"}, "object_server"),
        ({"object_workers": -1}, "object_workers"),
        ({"object_workers": "2"}, "object_workers"),
        ({"object_workers": True}, "object_workers"),
        ({"object_workers": 65}, "object_workers"),
        ({"proxy_port": -1}, "proxy_port"),
        ({"proxy_port": 70000}, "proxy_port"),
        ({"proxy_port": "8080"}, "proxy_port"),
        ({"max_object_size": 0}, "max_object_size"),
        ({"updater_interval": 0}, "updater_interval"),
        ({"start_timeout": -1}, "start_timeout"),
    ],
)
def test_constructor_rejects_bad_arguments(
    data_dir: Path, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(HubicInputError, match=message):
        SwiftCluster(data_dir, **arguments)  # type: ignore[arg-type]


def test_default_data_parent_is_usable() -> None:
    parent = default_data_parent()

    assert parent.is_dir()
    assert os.access(parent, os.W_OK)
    if parent == Path("/dev/shm"):
        assert supports_large_xattrs(parent)


# The in-process cache used in place of memcache.


def test_cache_round_trip_copies() -> None:
    cache = InProcessCache()
    value = {"status": 204, "meta": {"a": "b"}}

    cache.set("key", value, time=60)
    first = cache.get("key")
    first["meta"]["a"] = "changed"

    assert cache.get("key") == value


def test_cache_entry_expires() -> None:
    cache = InProcessCache()
    cache.set("short", "v", time=0.05)

    assert cache.get("short") == "v"
    time.sleep(0.1)
    assert cache.get("short") is None


def test_cache_incr_delete_and_multi() -> None:
    cache = InProcessCache()

    assert cache.incr("n", 2) == 2
    assert cache.incr("n") == 3
    assert cache.decr("n", 5) == 0
    cache.set_multi({"x": 1, "y": [2]}, server_key="s")
    assert cache.get_multi(["x", "y", "z"], server_key="s") == [1, [2], None]
    cache.delete("x")
    assert cache.get("x") is None


def test_cache_unserialized_values_are_bytes() -> None:
    cache = InProcessCache()
    cache.set("raw", 42, serialize=False)

    assert cache.get("raw") == b"42"
