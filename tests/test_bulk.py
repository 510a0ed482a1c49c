"""Tests for lhubic.bulk: tree uploads and downloads over a real Swift."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CountingHubic, hubic_settings

from lhubic.bulk import FileResult, FileStatus, download_tree, upload_tree
from lhubic.exceptions import HubicInputError, HubicObjectNameError
from lhubic.server.pytest_plugin import HubicTestServer

MiB = 1024 * 1024


@pytest.fixture
def hubic(hubic_server: HubicTestServer) -> Iterator[CountingHubic]:
    connection = CountingHubic(**hubic_settings(hubic_server))
    connection.large_object_threshold = 2 * MiB
    connection.segment_size = MiB
    yield connection
    connection.close()


@pytest.fixture
def container() -> str:
    return f"b-{uuid.uuid4().hex[:10]}"


TREE = {
    "top.txt": b"top level",
    "empty": b"",
    "docs/readme.md": b"# readme\n" * 100,
    "docs/deep/er/file.bin": bytes(range(256)) * 40,
    "docs/spaces and %#?+.txt": b"odd characters",
    "日本語/ファイル.txt": "内容".encode(),
}


def make_tree(root: Path, large: bool = True) -> dict[str, bytes]:
    files = dict(TREE)
    if large:
        files["media/big.bin"] = os.urandom(3 * MiB + 5)
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def statuses(results: list[FileResult]) -> dict[str, FileStatus]:
    return {result.name: result.status for result in results}


def skipped_except(
    files: dict[str, bytes], changed: str, status: FileStatus
) -> dict[str, FileStatus]:
    """Return the statuses of a run that skips every file but ``changed``."""
    expected = {name: FileStatus.SKIPPED for name in files}
    expected[changed] = status
    return expected


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def test_upload_tree_stores_every_file(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src")

    results = upload_tree(hubic, tmp_path / "src", container, prefix="backup/")

    _, listing = hubic.get_container(container)
    assert statuses(results) == {
        f"backup/{name}": FileStatus.UPLOADED for name in files
    }
    assert [result.name for result in results] == sorted(
        f"backup/{name}" for name in files
    )
    assert sorted(entry["name"] for entry in listing) == sorted(
        f"backup/{name}" for name in files
    )
    big = hubic.head_object(container, "backup/media/big.bin")
    assert big["x-static-large-object"].lower() == "true"


def test_upload_tree_sends_no_head(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", large=False)

    upload_tree(hubic, tmp_path / "src", container, workers=3)

    assert hubic.count("head_object") == 0
    assert hubic.count("put_object") == len(files)
    assert hubic.count("put_container") == 1
    assert hubic.count("get_container") == 1


def test_upload_tree_skips_unchanged(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    files = make_tree(source)
    upload_tree(hubic, source, container)
    (source / "docs/readme.md").write_bytes(b"changed")
    hubic.requests.clear()

    results = upload_tree(hubic, source, container)

    expected = skipped_except(files, "docs/readme.md", FileStatus.UPLOADED)
    assert statuses(results) == expected
    assert hubic.request_names() == ["get_container", "put_object"]


def test_upload_tree_without_skipping(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    files = make_tree(source, large=False)
    upload_tree(hubic, source, container)

    results = upload_tree(hubic, source, container, skip_unchanged=False)

    assert statuses(results) == {name: FileStatus.UPLOADED for name in files}


def test_download_tree_round_trip(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src")
    upload_tree(hubic, tmp_path / "src", container, prefix="backup/")
    target = tmp_path / "dst"
    target.mkdir()
    hubic.requests.clear()

    results = download_tree(hubic, container, target, prefix="backup/")

    assert read_tree(target) == files
    assert statuses(results) == {
        f"backup/{name}": FileStatus.DOWNLOADED for name in files
    }
    assert hubic.count("head_object") == 0


def test_download_tree_skips_unchanged(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src")
    upload_tree(hubic, tmp_path / "src", container)
    target = tmp_path / "dst"
    target.mkdir()
    download_tree(hubic, container, target)
    (target / "top.txt").write_bytes(b"edited locally")
    hubic.requests.clear()

    results = download_tree(hubic, container, target)

    expected = skipped_except(files, "top.txt", FileStatus.DOWNLOADED)
    assert statuses(results) == expected
    assert hubic.request_names() == ["get_container", "get_object"]
    assert (target / "top.txt").read_bytes() == b"top level"


def test_progress_reaches_totals(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src")
    total = sum(len(data) for data in files.values())
    calls: list[tuple[int, int, int, int]] = []
    lock = threading.Lock()

    def record(*values: int) -> None:
        with lock:
            calls.append(values)  # type: ignore[arg-type]

    upload_tree(hubic, tmp_path / "src", container, progress=record)

    assert calls[-1] == (total, total, len(files), len(files))
    assert all(call[1] == total and call[3] == len(files) for call in calls)
    files_done = [call[2] for call in calls]
    assert files_done == sorted(files_done)
    assert len(calls) >= len(files) * 2


def test_download_progress_reaches_totals(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src")
    upload_tree(hubic, tmp_path / "src", container)
    total = sum(len(data) for data in files.values())
    calls: list[tuple[int, ...]] = []
    target = tmp_path / "dst"
    target.mkdir()

    download_tree(hubic, container, target, progress=lambda *v: calls.append(v))

    assert calls[-1] == (total, total, len(files), len(files))


def test_progress_exception_stops_run(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src")

    class Stop(Exception):
        pass

    def stop(*values: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        upload_tree(hubic, tmp_path / "src", container, progress=stop, workers=2)


def test_bad_file_name_fails_alone(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.txt").write_bytes(b"good")
    bad = os.path.join(os.fsencode(source), b"bad-\xff.txt")
    with open(bad, "wb") as handle:
        handle.write(b"bad")

    results = upload_tree(hubic, source, container)

    by_status = {result.status: result for result in results}
    assert set(by_status) == {FileStatus.UPLOADED, FileStatus.FAILED}
    assert by_status[FileStatus.UPLOADED].name == "good.txt"
    assert isinstance(by_status[FileStatus.FAILED].error, HubicObjectNameError)


def test_overwrite_large_object_in_tree(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    big = source / "big.bin"
    big.write_bytes(os.urandom(3 * MiB))
    upload_tree(hubic, source, container)
    big.write_bytes(b"now small")

    results = upload_tree(hubic, source, container)

    assert statuses(results) == {"big.bin": FileStatus.UPLOADED}
    assert hubic.get_container(f"{container}_segments")[1] == []
    assert hubic.get_object(container, "big.bin")[1] == b"now small"


def test_download_folders_and_leading_slash(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    hubic.put_container(container)
    hubic.put_object(container, "photos", b"", content_type="application/directory")
    hubic.put_object(container, "photos/cat.jpg", b"meow")
    hubic.put_object(container, "/etc/passwd", b"not really")
    hubic.put_object(container, "empty-folder/", b"")
    target = tmp_path / "dst"
    target.mkdir()

    results = download_tree(hubic, container, target)

    assert all(result.status is FileStatus.DOWNLOADED for result in results)
    assert (target / "photos").is_dir()
    assert (target / "photos/cat.jpg").read_bytes() == b"meow"
    assert (target / "etc/passwd").read_bytes() == b"not really"
    assert (target / "empty-folder").is_dir()


def test_download_conflict_fails_alone(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    hubic.put_container(container)
    hubic.put_object(container, "clash", b"file")
    hubic.put_object(container, "fine", b"ok")
    target = tmp_path / "dst"
    (target / "clash").mkdir(parents=True)

    results = download_tree(hubic, container, target)

    assert statuses(results) == {
        "clash": FileStatus.FAILED,
        "fine": FileStatus.DOWNLOADED,
    }
    assert (target / "fine").read_bytes() == b"ok"


def test_bad_arguments_rejected(
    hubic: CountingHubic, container: str, tmp_path: Path
) -> None:
    with pytest.raises(HubicInputError, match="does not exist"):
        upload_tree(hubic, tmp_path / "missing", container)
    with pytest.raises(HubicInputError, match="does not exist"):
        download_tree(hubic, container, tmp_path / "missing")
    with pytest.raises(HubicObjectNameError):
        upload_tree(hubic, tmp_path, "a/b")
    with pytest.raises(HubicInputError, match="workers"):
        upload_tree(hubic, tmp_path, container, workers=0)
    with pytest.raises(HubicInputError, match="TransferMixin"):
        upload_tree(object(), tmp_path, container)  # type: ignore[arg-type]

    assert hubic.requests == []
