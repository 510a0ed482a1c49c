"""Tests of lhubic.store: the JSON token file and make_token_store."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import pathlib
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import hubic_without_login, make_hubic, new_user

from lhubic import Hubic
from lhubic.exceptions import HubicConfigError, HubicInputError
from lhubic.store import (
    RECORD_KEYS,
    FileTokenStore,
    TokenStore,
    make_token_store,
)

SECRET_REFRESH = "refresh-SECRET-0f1e2d3c"
SECRET_ACCESS = "access-SECRET-4b5a6978"
SECRET_STORAGE = "storage-SECRET-8c9dabbc"


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "version": 1,
        "api_url": "http://127.0.0.1:8080",
        "client_id": "api_hubic_test",
        "refresh_token": SECRET_REFRESH,
        "access_token": SECRET_ACCESS,
        "access_token_expires": "2026-12-04T22:00:00+00:00",
        "storage_token": SECRET_STORAGE,
        "storage_url": "http://127.0.0.1:8081/v1/AUTH_0123",
        "storage_token_expires": "2026-12-05T16:00:00+01:00",
    }
    record.update(changes)
    return record


def _mode(path: str | pathlib.Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "tokens.json"


@pytest.fixture
def wide_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_load_missing_file_returns_none(store_path: pathlib.Path) -> None:
    assert FileTokenStore(store_path).load() is None


def test_load_missing_folder_creates_nothing(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "not-yet"

    assert FileTokenStore(folder / "tokens.json").load() is None
    assert not folder.exists()


def test_save_load_round_trip(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)

    store.save(_record())

    assert store.load() == _record()
    assert json.loads(store_path.read_text("utf-8")) == _record()


def test_save_creates_missing_folders_private(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a" / "b" / "tokens.json"

    FileTokenStore(path).save(_record())

    assert path.exists()
    assert _mode(path.parent) == 0o700


def test_save_mode_0600_despite_umask_zero(
    store_path: pathlib.Path, wide_umask: None
) -> None:
    FileTokenStore(store_path).save(_record())

    assert _mode(store_path) == 0o600
    assert _mode(str(store_path) + ".lock") == 0o600


def test_save_leaves_no_temporary_files(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)

    for number in range(5):
        store.save(_record(access_token=f"a{number}"))

    names = sorted(path.name for path in store_path.parent.iterdir())
    assert names == ["tokens.json", "tokens.json.lock"]


def test_save_replaces_file_atomically(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)
    store.save(_record())
    inode_before = os.stat(store_path).st_ino

    store.save(_record(access_token="new"))

    # A new inode proves the data went to a new file renamed over the old one
    # instead of being rewritten in place, where a crash could leave half.
    assert os.stat(store_path).st_ino != inode_before


def test_save_write_failure_keeps_old_record(
    store_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileTokenStore(store_path)
    store.save(_record())

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        store.save(_record(access_token="lost"))
    monkeypatch.undo()

    assert store.load() == _record()
    names = sorted(path.name for path in store_path.parent.iterdir())
    assert names == ["tokens.json", "tokens.json.lock"]


def test_load_fixes_world_readable_file(
    store_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_path.write_text(json.dumps(_record()), "utf-8")
    os.chmod(store_path, 0o644)

    with caplog.at_level(logging.WARNING, logger="lhubic.store"):
        record = FileTokenStore(store_path).load()

    assert record == _record()
    assert _mode(store_path) == 0o600
    assert "readable by other users" in caplog.text
    assert "0644" in caplog.text
    assert str(store_path) in caplog.text


def test_load_private_file_logs_no_warning(
    store_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    FileTokenStore(store_path).save(_record())

    with caplog.at_level(logging.WARNING, logger="lhubic.store"):
        FileTokenStore(store_path).load()

    assert caplog.records == []


def _load_as_nobody(path: str, results: Any) -> None:
    # Runs in a forked child: dropping to the user 'nobody' after the fork
    # needs no executable that 'nobody' can start.
    os.setgid(65534)
    os.setuid(65534)
    try:
        results.put(FileTokenStore(path).load())
    except HubicConfigError as exc:
        results.put(str(exc))


def _load_in_child_as_nobody(path: pathlib.Path) -> tuple[int | None, Any]:
    """Load the store at ``path`` as the user 'nobody' in a forked child, and
    return the child's exit code and the record or the error message."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_load_as_nobody, args=(str(path), results))
    child.start()
    loaded = results.get(timeout=60)
    child.join(timeout=60)
    return child.exitcode, loaded


@contextlib.contextmanager
def _store_file_nobody_can_reach(mode: int) -> Iterator[pathlib.Path]:
    """Write `_record()` to tokens.json, with file mode ``mode``, in a new
    folder with mode 0755, and remove the folder on exit."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="lhubic-store-"))
    try:
        os.chmod(folder, 0o755)  # noqa: S103 - the user nobody must enter it
        path = folder / "tokens.json"
        path.write_text(json.dumps(_record()), "utf-8")
        os.chmod(path, mode)
        yield path
    finally:
        for entry in folder.iterdir():
            entry.unlink()
        folder.rmdir()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to create a file that the test user cannot chmod",
)
def test_load_unfixable_mode_raises() -> None:
    # The file belongs to root and is read by the user 'nobody', who may read
    # it (mode 0644) but not change its mode.
    with _store_file_nobody_can_reach(0o644) as path:
        lock = path.parent / "tokens.json.lock"
        lock.touch()
        os.chmod(lock, 0o666)  # noqa: S103 - nobody must lock it

        exitcode, message = _load_in_child_as_nobody(path)

    assert exitcode == 0
    assert isinstance(message, str)
    assert "readable by other users" in message
    assert "chmod 600" in message
    assert str(path) in message
    assert SECRET_ACCESS not in message


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to make a folder where the test user cannot create files",
)
def test_load_read_only_folder_without_lock() -> None:
    # The user 'nobody' owns the file but cannot create the lock file in the
    # folder, which belongs to root.
    with _store_file_nobody_can_reach(0o600) as path:
        os.chown(path, 65534, 65534)

        exitcode, loaded = _load_in_child_as_nobody(path)
        lock_created = (path.parent / "tokens.json.lock").exists()

    assert exitcode == 0
    assert loaded == _record()
    assert not lock_created


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"version": 1, "access_', "invalid JSON at line 1"),
        (b"[1, 2]", "a JSON list instead of an object"),
        (b'"text"', "a JSON str instead of an object"),
        (b"\xff\xfe{}", "not UTF-8 at byte 0"),
        (b"", "invalid JSON at line 1 column 1"),
    ],
)
def test_load_corrupt_file_raises(
    store_path: pathlib.Path, content: bytes, reason: str
) -> None:
    store_path.write_bytes(content)
    os.chmod(store_path, 0o600)

    with pytest.raises(HubicConfigError) as caught:
        FileTokenStore(store_path).load()

    assert str(store_path) in str(caught.value)
    assert reason in str(caught.value)
    assert "delete it" in str(caught.value)
    assert store_path.read_bytes() == content


def test_save_moves_corrupt_file_aside(
    store_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_path.write_bytes(b"{broken")
    os.chmod(store_path, 0o600)

    with caplog.at_level(logging.WARNING, logger="lhubic.store"):
        FileTokenStore(store_path).save(_record())

    backup = pathlib.Path(str(store_path) + ".corrupt")
    assert backup.read_bytes() == b"{broken"
    assert FileTokenStore(store_path).load() == _record()
    assert str(backup) in caplog.text
    assert "invalid JSON" in caplog.text


def test_save_numbers_corrupt_backups(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)

    for content in (b"first", b"second", b"third"):
        store_path.write_bytes(content)
        store.save(_record())

    base = str(store_path)
    assert pathlib.Path(base + ".corrupt").read_bytes() == b"first"
    assert pathlib.Path(base + ".corrupt.1").read_bytes() == b"second"
    assert pathlib.Path(base + ".corrupt.2").read_bytes() == b"third"


def test_update_moves_corrupt_file_aside(store_path: pathlib.Path) -> None:
    store_path.write_bytes(b"[]")

    merged = FileTokenStore(store_path).update({"access_token": "x"})

    assert merged == {"access_token": "x"}
    assert pathlib.Path(str(store_path) + ".corrupt").read_bytes() == b"[]"


def test_save_keeps_unknown_keys(store_path: pathlib.Path) -> None:
    store_path.write_text(json.dumps(_record(note="kept", scope="usage.r")), "utf-8")
    store = FileTokenStore(store_path)

    store.save(_record(access_token="renewed"))

    assert store.load() == _record(access_token="renewed", note="kept", scope="usage.r")


def test_save_drops_known_keys_left_out(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)
    store.save(_record())
    other_account = {
        "version": 1,
        "api_url": "http://127.0.0.1:9999",
        "client_id": "api_hubic_other",
        "refresh_token": "other-refresh",
    }

    store.save(other_account)

    # The first account's access and storage tokens must not stay next to the
    # second account's client id.
    assert store.load() == other_account


def test_save_record_may_override_unknown_key(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)
    store.save(_record(note="old"))

    store.save(_record(note="new"))

    loaded = store.load()
    assert loaded is not None
    assert loaded["note"] == "new"


def test_record_keys_match_documented_format() -> None:
    assert set(_record()) == RECORD_KEYS


def test_update_merges_into_current_record(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)
    store.save(_record())

    merged = store.update({"access_token": "renewed", "extra": [1, 2]})

    assert merged == _record(access_token="renewed", extra=[1, 2])
    assert store.load() == merged


def test_update_removes_named_keys(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)
    store.save(_record())

    merged = store.update({}, remove=("storage_token", "absent_key"))

    assert "storage_token" not in merged
    assert store.load() == merged


def test_update_empty_store_starts_empty(store_path: pathlib.Path) -> None:
    merged = FileTokenStore(store_path).update({"refresh_token": "r"})

    assert merged == {"refresh_token": "r"}


def test_update_rejects_string_remove(store_path: pathlib.Path) -> None:
    with pytest.raises(HubicInputError, match="remove must be a tuple"):
        FileTokenStore(store_path).update({}, remove="storage_token")  # type: ignore[arg-type]

    assert not store_path.exists()


def _add_counter_entries(path: str, worker: int, count: int) -> None:
    store = FileTokenStore(path)
    for number in range(count):
        store.update({f"worker{worker}": number + 1})


def test_update_from_processes_loses_nothing(store_path: pathlib.Path) -> None:
    workers = 4
    rounds = 40
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(
            target=_add_counter_entries, args=(str(store_path), worker, rounds)
        )
        for worker in range(workers)
    ]

    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)

    exit_codes = [process.exitcode for process in processes]
    assert exit_codes == [0] * workers
    record = FileTokenStore(store_path).load()
    assert record == {f"worker{worker}": rounds for worker in range(workers)}


def _save_alternating_records(path: str, count: int) -> None:
    store = FileTokenStore(path)
    for number in range(count):
        store.save(_record(access_token="x" * (number % 7) * 1000))


def test_load_never_sees_partial_record(store_path: pathlib.Path) -> None:
    store = FileTokenStore(store_path)
    store.save(_record())
    context = multiprocessing.get_context("fork")
    writer = context.Process(
        target=_save_alternating_records, args=(str(store_path), 200)
    )

    writer.start()
    loads = 0
    while writer.is_alive() or loads == 0:
        record = store.load()
        assert record is not None
        assert set(record) == RECORD_KEYS
        loads += 1
    writer.join(timeout=60)

    assert writer.exitcode == 0
    assert loads > 0


def test_save_follows_symbolic_link(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "real" / "tokens.json"
    target.parent.mkdir()
    link = tmp_path / "link.json"
    link.symlink_to(target)

    FileTokenStore(link).save(_record())

    assert link.is_symlink()
    assert json.loads(target.read_text("utf-8")) == _record()


@pytest.mark.parametrize(
    "record",
    [None, "text", [("access_token", "x")], 42],
)
def test_save_rejects_non_dict(store_path: pathlib.Path, record: Any) -> None:
    with pytest.raises(HubicInputError, match="must be a dict"):
        FileTokenStore(store_path).save(record)

    assert not store_path.exists()


def test_save_rejects_non_string_key(store_path: pathlib.Path) -> None:
    with pytest.raises(HubicInputError, match="keys must be strings"):
        FileTokenStore(store_path).save({1: "x"})  # type: ignore[dict-item]

    assert not store_path.exists()


def test_save_unserializable_value_hides_secret(store_path: pathlib.Path) -> None:
    record = _record(access_token=SECRET_ACCESS.encode())

    with pytest.raises(HubicInputError) as caught:
        FileTokenStore(store_path).save(record)

    assert "cannot be written as JSON" in str(caught.value)
    assert "bytes" in str(caught.value)
    assert SECRET_ACCESS not in str(caught.value)
    assert not store_path.exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "path is empty"),
        ("   ", "path is empty"),
        ("tok\0ens.json", "NUL character"),
        (42, "must be a str or os.PathLike, got int"),
        (None, "must be a str or os.PathLike, got NoneType"),
        (b"tokens.json", "must be a str or os.PathLike, got bytes"),
    ],
)
def test_store_rejects_bad_path(path: Any, message: str) -> None:
    with pytest.raises(HubicConfigError, match=message):
        FileTokenStore(path)


def test_store_rejects_folder_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(HubicConfigError, match="is a folder") as caught:
        FileTokenStore(tmp_path)

    assert str(tmp_path / "tokens.json") in str(caught.value)


def test_store_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    store = FileTokenStore("~/tokens.json")

    assert store.path == str(tmp_path / "tokens.json")


def test_repr_and_logs_hide_secrets(
    store_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileTokenStore(store_path)

    with caplog.at_level(logging.DEBUG, logger="lhubic"):
        store.save(_record())
        store.update({"access_token": SECRET_ACCESS + "2"})
        store.load()

    for secret in (SECRET_REFRESH, SECRET_ACCESS, SECRET_STORAGE):
        assert secret not in repr(store)
        assert secret not in caplog.text
    assert "saved token record" in caplog.text


def test_make_token_store_from_str(store_path: pathlib.Path) -> None:
    store = make_token_store(str(store_path))

    assert isinstance(store, FileTokenStore)
    assert store.path == str(store_path)


def test_make_token_store_from_pathlike(store_path: pathlib.Path) -> None:
    store = make_token_store(store_path)

    assert isinstance(store, FileTokenStore)
    assert store.path == str(store_path)


def test_make_token_store_none_means_no_store() -> None:
    assert make_token_store(None) is None


class _MemoryStore:
    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.record

    def save(self, record: dict[str, Any]) -> None:
        self.record = dict(record)


def test_make_token_store_keeps_object() -> None:
    memory = _MemoryStore()

    assert make_token_store(memory) is memory
    assert isinstance(memory, TokenStore)


def test_file_store_matches_protocol(store_path: pathlib.Path) -> None:
    assert isinstance(FileTokenStore(store_path), TokenStore)


class _LoadOnly:
    def load(self) -> None:
        return None


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(42, "int"), (_LoadOnly(), "_LoadOnly"), (b"tokens.json", "bytes")],
)
def test_make_token_store_rejects_other_types(value: Any, type_name: str) -> None:
    with pytest.raises(HubicConfigError) as caught:
        make_token_store(value)

    assert "load() and save()" in str(caught.value)
    assert type_name in str(caught.value)


# Hubic with a token store, against the local service.

# The child process builds a Hubic from the token store alone and prints the
# object it downloads. It inherits no login, password or refresh token, because
# the autouse fixture in conftest.py clears the HUBIC_* variables.
CHILD_SCRIPT = """
import sys
from lhubic import Hubic

client_id, client_secret, api_url, redirect_uri, store, container, name = sys.argv[1:]
hubic = Hubic(
    client_id,
    client_secret,
    api_url=api_url,
    redirect_uri=redirect_uri,
    token_store=store,
)
headers, body = hubic.get_object(container, name)
sys.stdout.write(body.decode("utf-8"))
"""


def _store_hubic(server: Any, login: str, password: str, store: Any) -> Hubic:
    return make_hubic(server, username=login, password=password, token_store=store)


def _child_command(
    script: str, server: Any, store: pathlib.Path, *arguments: str
) -> list[str]:
    """Return the command that runs ``script`` with the test application's
    settings, the store path and ``arguments`` as its arguments."""
    return [
        sys.executable,
        "-c",
        script,
        server.app.client_id,
        server.app.client_secret,
        server.api_url,
        server.app.redirect_uri,
        str(store),
        *arguments,
    ]


def _download_in_child(server: Any, store: pathlib.Path, name: str) -> str:
    result = subprocess.run(
        _child_command(CHILD_SCRIPT, server, store, "default", name),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _counts(server: Any) -> dict[str, int]:
    return {
        "all": server.request_count("/"),
        "auth": server.request_count("/oauth/auth"),
        "token": server.request_count("/oauth/token"),
        "credentials": server.request_count("/1.0/account/credentials"),
    }


def test_new_process_sends_no_service_requests(
    hubic_server: Any, store_path: pathlib.Path
) -> None:
    login, password = new_user(hubic_server, "store")
    first = _store_hubic(hubic_server, login, password, store_path)
    first.put_object("default", "saved-login.txt", b"stored once")
    before = _counts(hubic_server)

    output = _download_in_child(hubic_server, store_path, "saved-login.txt")

    assert output == "stored once"
    assert _counts(hubic_server) == before


# Each worker process builds a Hubic from the token store alone and, for each
# round number read from stdin, uploads an object, reads it back and prints
# "ok <round>" or "mismatch <round>".
WORKER_SCRIPT = """
import sys
from lhubic import Hubic

client_id, client_secret, api_url, redirect_uri, store, worker = sys.argv[1:]
hubic = Hubic(
    client_id,
    client_secret,
    api_url=api_url,
    redirect_uri=redirect_uri,
    token_store=store,
    starting_backoff=0.02,
    max_backoff=0.1,
)
for line in sys.stdin:
    round_number = line.strip()
    if round_number == "quit":
        break
    name = f"shared-store/{worker}-{round_number}"
    data = f"{worker} {round_number}".encode()
    hubic.put_object("default", name, data)
    _, body = hubic.get_object("default", name)
    result = "ok" if body == data else "mismatch"
    print(result, round_number, flush=True)
"""


def _start_worker(server: Any, store: pathlib.Path, worker: str) -> Any:
    return subprocess.Popen(
        _child_command(WORKER_SCRIPT, server, store, worker),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_share_store(hubic_server: Any, store_path: pathlib.Path) -> None:
    login, password = new_user(hubic_server, "store")
    _store_hubic(hubic_server, login, password, store_path).head_account()
    FileTokenStore(store_path).update({"note": "written by another tool"})
    before = _counts(hubic_server)
    workers = [_start_worker(hubic_server, store_path, name) for name in "ab"]
    outputs: dict[int, list[str]] = {index: [] for index in range(len(workers))}
    rounds = 6

    # Tokens expire between rounds only, so both processes renew them and
    # save the store at the same time, and no call sees a token expire twice.
    try:
        for round_number in range(rounds):
            hubic_server.expire_storage_tokens()
            if round_number % 2:
                hubic_server.expire_access_tokens(login)
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"{round_number}\n")
                worker.stdin.flush()
            for index, worker in enumerate(workers):
                assert worker.stdout is not None
                outputs[index].append(worker.stdout.readline().strip())
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("quit\n")
            worker.stdin.flush()
        results = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    after = _counts(hubic_server)
    record = FileTokenStore(store_path).load()
    expected = [f"ok {round_number}" for round_number in range(rounds)]

    for index, worker in enumerate(workers):
        assert worker.returncode == 0, results[index][1]
        assert outputs[index] == expected
    assert after["auth"] == before["auth"]
    assert after["token"] >= before["token"] + rounds // 2 * len(workers)
    assert record is not None
    assert RECORD_KEYS <= set(record)
    assert record["note"] == "written by another tool"
    assert _mode(store_path) == 0o600
    assert sorted(path.name for path in store_path.parent.iterdir()) == [
        "tokens.json",
        "tokens.json.lock",
    ]

    # What the two processes left behind still lets a third one start
    # without a request to the service.
    output = _download_in_child(hubic_server, store_path, "shared-store/a-5")
    assert output == "a 5"
    assert _counts(hubic_server) == after


def test_new_process_refreshes_without_password(
    hubic_server: Any, store_path: pathlib.Path
) -> None:
    login, password = new_user(hubic_server, "store")
    first = _store_hubic(hubic_server, login, password, store_path)
    first.put_object("default", "refreshed.txt", b"after refresh")
    saved = FileTokenStore(store_path).update(
        {
            "access_token_expires": "2000-01-01T00:00:00+00:00",
            "storage_token_expires": "2000-01-01T00:00:00+00:00",
        }
    )
    before = _counts(hubic_server)

    output = _download_in_child(hubic_server, store_path, "refreshed.txt")

    after = _counts(hubic_server)
    record = FileTokenStore(store_path).load()
    assert output == "after refresh"
    assert after["auth"] == before["auth"]
    assert after["token"] == before["token"] + 1
    assert after["credentials"] == before["credentials"] + 1
    assert record is not None
    assert record["refresh_token"] == saved["refresh_token"]
    assert record["access_token"] != saved["access_token"]
    assert record["access_token_expires"] > "2001"
    assert record["storage_token_expires"] > "2001"


def test_hubic_renewal_keeps_unknown_keys(
    hubic_server: Any, store_path: pathlib.Path
) -> None:
    login, password = new_user(hubic_server, "store")
    _store_hubic(hubic_server, login, password, store_path).head_account()
    FileTokenStore(store_path).update({"note": "written by another tool"})

    hubic = _store_hubic(hubic_server, login, password, store_path)
    hubic_server.expire_storage_tokens()
    hubic.head_account()

    record = FileTokenStore(store_path).load()
    assert record is not None
    assert record["note"] == "written by another tool"
    assert record["storage_token"] == hubic.os_auth_token


def test_hubic_store_file_is_private(
    hubic_server: Any,
    store_path: pathlib.Path,
    wide_umask: None,
) -> None:
    login, password = new_user(hubic_server, "store")

    _store_hubic(hubic_server, login, password, store_path).head_account()

    assert _mode(store_path) == 0o600


def test_hubic_corrupt_store_raises_before_sending(
    hubic_server: Any, store_path: pathlib.Path
) -> None:
    login, password = new_user(hubic_server, "store")
    store_path.write_text("{not json", "utf-8")
    before = hubic_server.request_count("/")

    with pytest.raises(HubicConfigError) as caught:
        _store_hubic(hubic_server, login, password, store_path)

    assert str(store_path) in str(caught.value)
    assert hubic_server.request_count("/") == before
    assert store_path.read_text("utf-8") == "{not json"


def test_hubic_accepts_store_object(hubic_server: Any) -> None:
    login, password = new_user(hubic_server, "store")
    memory = _MemoryStore()

    first = _store_hubic(hubic_server, login, password, memory)
    first.head_account()
    before = _counts(hubic_server)
    second = hubic_without_login(hubic_server, token_store=memory)
    second.head_account()

    assert memory.record is not None
    assert memory.record["storage_token"] == first.os_auth_token
    assert _counts(hubic_server) == before


def test_hubic_store_logs_hide_tokens(
    hubic_server: Any,
    store_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login, password = new_user(hubic_server, "store")

    with caplog.at_level(logging.DEBUG):
        hubic = _store_hubic(hubic_server, login, password, store_path)
        hubic.head_account()
        hubic_server.expire_access_tokens(login)
        hubic_server.expire_storage_tokens()
        hubic.head_account()

    record = FileTokenStore(store_path).load()
    assert record is not None
    for key in ("refresh_token", "access_token", "storage_token"):
        assert record[key] not in caplog.text, key
    assert password not in caplog.text
