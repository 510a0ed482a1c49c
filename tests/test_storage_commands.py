"""`lhubic ls`, `upload`, `download` and `usage` against the local service.

The commands run in process through `lhubic.cli.main`, with their settings in
the HUBIC_* variables, and the tests read their exit status and their output
from capsys. One test runs the installed `lhubic` script in a child process.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lhubic import Hubic
from lhubic.bulk import FileResult, FileStatus
from lhubic.cli import SUBCOMMANDS, main
from lhubic.progress_line import (
    ProgressLine,
    format_progress,
    format_size,
    format_summary,
)
from lhubic.server.pytest_plugin import HubicTestServer
from lhubic.storage_commands import parse_size
from lhubic.transfers import file_md5, file_slo_etag

KiB = 1024
MiB = 1024 * KiB
QUOTA = 7 * 10**9
PREFIX_LENGTH = 12

TREE = {
    "readme.txt": b"hello\n",
    "photos/beach.jpg": bytes(range(256)) * 300,
    "photos/2024/empty.bin": b"",
    "docs/notes été.txt": "accents, spaces: été".encode(),
}


@dataclass(frozen=True)
class Account:
    login: str
    password: str


@dataclass(frozen=True)
class Outcome:
    """The exit status and the output of one command."""

    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def account(hubic_server: HubicTestServer) -> Account:
    """A user of this module alone, so that its containers and usage are known."""
    login = f"cli-{secrets.token_hex(5)}@example.com"
    # Characters that form encoding must escape, which real passwords contain.
    password = f"cli {secrets.token_urlsafe(10)} é&%+"
    hubic_server.add_user(login, password, quota=QUOTA)
    return Account(login, password)


@pytest.fixture
def environment(
    hubic_server: HubicTestServer, account: Account, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Set the HUBIC_* variables for the module's user; return them."""
    values = {
        "HUBIC_CLIENT_ID": hubic_server.app.client_id,
        "HUBIC_CLIENT_SECRET": hubic_server.app.client_secret,
        "HUBIC_USERNAME": account.login,
        "HUBIC_PASSWORD": account.password,
        "HUBIC_API_URL": hubic_server.api_url,
        "HUBIC_REDIRECT_URI": hubic_server.app.redirect_uri,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def container() -> str:
    return f"cli-{secrets.token_hex(5)}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    code = main(list(argv))
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def add_overlong_name(root: Path) -> Path:
    """Create a file under ``root`` whose object name Swift rejects; return it.

    Six folders of 200 characters make a name over Swift's maximum of 1,024
    bytes, while every local path stays valid.
    """
    folder = root.joinpath(*["d" * 200] * 6)
    folder.mkdir(parents=True)
    path = folder / "long.txt"
    path.write_bytes(b"too long a name")
    return path


def summary_counts(err: str) -> tuple[int, int, int]:
    match = re.search(r"(?:up|down)loaded (\d+), skipped (\d+), failed (\d+);", err)
    assert match is not None, f"no summary line in {err!r}"
    moved, skipped, failed = (int(group) for group in match.groups())
    return moved, skipped, failed


def connect(hubic_server: HubicTestServer, account: Account) -> Hubic:
    return Hubic(
        hubic_server.app.client_id,
        hubic_server.app.client_secret,
        account.login,
        account.password,
        api_url=hubic_server.api_url,
        redirect_uri=hubic_server.app.redirect_uri,
    )


# The dispatch in lhubic.cli.


def test_help_lists_storage_commands(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run(capsys, "--help")

    assert outcome.code == 0
    for name in ("ls", "upload", "download", "usage", "walkthrough", "server"):
        assert name in outcome.out


@pytest.mark.parametrize("command", ["ls", "upload", "download", "usage"])
def test_command_help_has_example(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    outcome = run(capsys, command, "--help")

    assert outcome.code == 0
    assert f"usage: lhubic {command}" in outcome.out
    assert f"example:\n  lhubic {command} " in outcome.out
    assert "HUBIC_CLIENT_ID" in outcome.out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run(capsys, "copy")

    assert outcome.code == 2
    assert "invalid choice: 'copy'" in outcome.err


def test_subcommands_name_functions() -> None:
    for name, subcommand in SUBCOMMANDS.items():
        if subcommand.extra is not None:
            continue
        module = importlib.import_module(subcommand.module)
        assert callable(getattr(module, subcommand.function)), name


def test_top_help_imports_no_command() -> None:
    script = (
        "import sys\n"
        "from lhubic.cli import main\n"
        "code = main(['--help'])\n"
        "loaded = [name for name in ('lhubic.storage_commands', 'lhubic.server', "
        "'swift') if name in sys.modules]\n"
        "print(code, loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []"


# Configuration and login.


def test_missing_client_id_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    outcome = run(capsys, "ls")

    assert outcome.code == 2
    assert outcome.out == ""
    assert outcome.err.startswith("lhubic ls: missing the client id")
    assert "(set HUBIC_CLIENT_ID)" in outcome.err
    assert "(set HUBIC_CLIENT_SECRET)" in outcome.err
    assert "client_id=" not in outcome.err
    assert len(outcome.err.splitlines()) == 1


def test_missing_password_exits_2(
    environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUBIC_PASSWORD")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    outcome = run(capsys, "usage")

    assert outcome.code == 2
    assert outcome.err.startswith("lhubic usage: missing the password for")
    assert "HUBIC_PASSWORD" in outcome.err
    assert "HUBIC_REFRESH_TOKEN" in outcome.err
    assert "Traceback" not in outcome.err


def test_missing_login_exits_2(
    environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUBIC_USERNAME")
    monkeypatch.delenv("HUBIC_PASSWORD")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    outcome = run(capsys, "ls")

    assert outcome.code == 2
    assert "set HUBIC_USERNAME and HUBIC_PASSWORD" in outcome.err


class TerminalInput(io.StringIO):
    """Text on stdin that claims to come from a terminal."""

    def isatty(self) -> bool:
        return True


def test_terminal_prompts_for_password(
    environment: dict[str, str],
    account: Account,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # getpass reads /dev/tty, which a test cannot type into, so it is replaced.
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return account.password

    monkeypatch.delenv("HUBIC_USERNAME")
    monkeypatch.delenv("HUBIC_PASSWORD")
    monkeypatch.setattr(sys, "stdin", TerminalInput(f"{account.login}\n"))
    monkeypatch.setattr("lhubic.command_login.getpass.getpass", fake_getpass)

    outcome = run(capsys, "ls")

    assert outcome.code == 0, outcome.err
    assert prompts == [f"hubiC password for {account.login}: "]
    assert outcome.err == "hubiC login: "
    assert "default" in outcome.out.splitlines()


def test_wrong_typed_password_names_the_prompt(
    environment: dict[str, str],
    account: Account,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUBIC_PASSWORD")
    monkeypatch.setattr(sys, "stdin", TerminalInput(""))
    monkeypatch.setattr(
        "lhubic.command_login.getpass.getpass", lambda _: "not the password"
    )

    outcome = run(capsys, "ls")

    assert outcome.code == 1
    assert (
        f"hubiC rejected the login {account.login!r} or its password; run the "
        "command again and check the password you type"
    ) in outcome.err
    assert "HUBIC_PASSWORD" not in outcome.err
    assert "not the password" not in outcome.err


def test_empty_password_exits_2(
    environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUBIC_PASSWORD")
    monkeypatch.setattr(sys, "stdin", TerminalInput(""))
    monkeypatch.setattr("lhubic.command_login.getpass.getpass", lambda _: "")

    outcome = run(capsys, "ls")

    assert outcome.code == 2
    assert "no password entered" in outcome.err


def test_token_store_replaces_password(
    environment: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "tokens.json"
    first = run(capsys, "ls", "--token-store", str(store))
    monkeypatch.delenv("HUBIC_USERNAME")
    monkeypatch.delenv("HUBIC_PASSWORD")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    second = run(capsys, "ls", "--token-store", str(store))

    assert first.code == 0, first.err
    assert store.stat().st_mode & 0o777 == 0o600
    assert second.code == 0, second.err
    assert second.out == first.out


def test_invalid_token_store_exits_2(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "tokens.json"
    store.write_text("not json")
    store.chmod(0o600)

    outcome = run(capsys, "ls", "--token-store", str(store))

    assert outcome.code == 2
    assert "token store" in outcome.err


def test_api_url_option_checked(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run(capsys, "ls", "--api-url", "http://127.0.0.1:9/1.0")

    assert outcome.code == 2
    assert outcome.err.startswith("lhubic ls: api_url 'http://127.0.0.1:9/1.0'")
    assert "contains /1.0" in outcome.err


# ls


def test_ls_lists_containers(
    environment: dict[str, str], container: str, capsys: pytest.CaptureFixture[str]
) -> None:
    created = run(capsys, "upload", __file__, container, "--quiet")
    short = run(capsys, "ls")
    long = run(capsys, "ls", "--long", "--prefix", container)

    assert created.code == 0, created.err
    assert short.code == 0, short.err
    assert short.err == ""
    assert container in short.out.splitlines()
    assert "default" in short.out.splitlines()
    assert long.code == 0
    count, size, name = long.out.split()
    assert name == container
    assert count.isdigit()
    assert size.isdigit()


def test_ls_long_shows_object_details(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "detail.bin"
    source.write_bytes(os.urandom(5000))
    run(capsys, "upload", str(source), container, "--prefix", "dir/", "--quiet")

    outcome = run(capsys, "ls", container, "--long")

    assert outcome.code == 0, outcome.err
    size, modified, etag, name = outcome.out.split()
    assert size == "5000"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", modified)
    assert etag == file_md5(source)
    assert name == "dir/detail.bin"


def test_ls_missing_container_exits_1(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run(capsys, "ls", "no-such-container")

    assert outcome.code == 1
    assert outcome.out == ""
    assert outcome.err == "lhubic ls: container 'no-such-container' not found\n"


def test_ls_invalid_container_exits_2(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run(capsys, "ls", "a/b")

    assert outcome.code == 2
    assert "invalid container name 'a/b'" in outcome.err


# upload and download


def test_folder_round_trip(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    make_tree(source, TREE)
    destination = tmp_path / "restored" / "here"

    upload = run(
        capsys, "upload", str(source), container, "--prefix", "set/", "--workers", "2"
    )
    listing = run(capsys, "ls", container)
    download = run(capsys, "download", container, str(destination), "--prefix", "set/")

    assert upload.code == 0, upload.err
    assert upload.out == ""
    assert summary_counts(upload.err) == (len(TREE), 0, 0)
    assert listing.out.splitlines() == sorted(f"set/{name}" for name in TREE)
    assert download.code == 0, download.err
    assert download.out == ""
    assert summary_counts(download.err) == (len(TREE), 0, 0)
    for relative, data in TREE.items():
        assert (destination / relative).read_bytes() == data


def test_second_upload_skips_unchanged(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    make_tree(source, TREE)
    first = run(capsys, "upload", str(source), container)
    (source / "readme.txt").write_bytes(b"changed\n")

    second = run(capsys, "upload", str(source), container)
    destination = tmp_path / "copy"
    download = run(capsys, "download", container, str(destination))
    again = run(capsys, "download", container, str(destination))

    assert first.code == 0, first.err
    assert summary_counts(second.err) == (1, len(TREE) - 1, 0)
    assert (destination / "readme.txt").read_bytes() == b"changed\n"
    assert summary_counts(download.err) == (len(TREE), 0, 0)
    assert summary_counts(again.err) == (0, len(TREE), 0)


def test_single_file_round_trip(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"buy milk\n")

    upload = run(capsys, "upload", str(source), container, "--prefix", "docs/")
    repeat = run(capsys, "upload", str(source), container, "--prefix", "docs/")
    listing = run(capsys, "ls", container)
    to_file = run(
        capsys,
        "download",
        container,
        str(tmp_path / "copy.txt"),
        "--object",
        "docs/notes.txt",
    )
    folder = tmp_path / "folder"
    folder.mkdir()
    to_folder = run(
        capsys, "download", container, str(folder), "--object", "docs/notes.txt"
    )

    assert upload.code == 0, upload.err
    assert summary_counts(upload.err) == (1, 0, 0)
    assert summary_counts(repeat.err) == (0, 1, 0)
    assert listing.out == "docs/notes.txt\n"
    assert to_file.code == 0, to_file.err
    assert summary_counts(to_file.err) == (1, 0, 0)
    assert (tmp_path / "copy.txt").read_bytes() == b"buy milk\n"
    assert to_folder.code == 0, to_folder.err
    assert (folder / "notes.txt").read_bytes() == b"buy milk\n"


def test_large_file_uses_segments(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(2 * MiB + 300 * KiB))
    options = ["--large-object-threshold", "1M", "--segment-size", "1M"]

    upload = run(capsys, "upload", str(source), container, *options)
    repeat = run(capsys, "upload", str(source), container, *options)
    listing = run(capsys, "ls", container, "--long")
    segments = run(capsys, "ls", f"{container}_segments")
    download = run(
        capsys, "download", container, str(tmp_path / "back.bin"), "--object", "big.bin"
    )

    assert upload.code == 0, upload.err
    assert summary_counts(repeat.err) == (0, 1, 0)
    size, _, etag, name = listing.out.split()
    assert (size, name) == (str(source.stat().st_size), "big.bin")
    assert etag == file_slo_etag(source, MiB)
    assert len(segments.out.splitlines()) == 3
    assert download.code == 0, download.err
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()


def test_rejected_name_exits_1(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    make_tree(source, {"good.txt": b"fine"})
    rejected = add_overlong_name(source)

    upload = run(capsys, "upload", str(source), container)
    listing = run(capsys, "ls", container)

    assert upload.code == 1
    failures = [line for line in upload.err.splitlines() if "failed to upload" in line]
    assert len(failures) == 1
    assert failures[0].startswith(f"lhubic upload: failed to upload {rejected}: ")
    assert "over Swift's maximum of 1024" in failures[0]
    assert summary_counts(upload.err) == (1, 0, 1)
    assert listing.out == "good.txt\n"


def test_missing_local_path_exits_2(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"

    outcome = run(capsys, "upload", str(missing), "default")

    assert outcome.code == 2
    assert outcome.err == (
        f"lhubic upload: local path {str(missing)!r} does not exist or is not a "
        "file or a folder; pass an existing file or folder\n"
    )


def test_bad_object_name_exits_2(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")

    outcome = run(capsys, "upload", str(source), "default", "--prefix", "x/../")

    assert outcome.code == 2
    assert "invalid object name 'x/../a.txt'" in outcome.err


def test_download_missing_container_creates_nothing(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = tmp_path / "never"

    outcome = run(capsys, "download", "no-such-container", str(destination))

    assert outcome.code == 1
    assert outcome.err == "lhubic download: container 'no-such-container' not found\n"
    assert not destination.exists()


def test_download_prefix_matching_nothing_says_so(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = tmp_path / "restore"

    outcome = run(
        capsys, "download", "default", str(destination), "--prefix", "no-such-prefix/"
    )

    assert outcome.code == 0
    assert (
        "lhubic download: no object in container 'default' starts with "
        "'no-such-prefix/'; nothing was downloaded\n"
    ) in outcome.err
    assert not destination.exists()


def test_download_missing_object_exits_1(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "nothing.txt"

    outcome = run(capsys, "download", "default", str(target), "--object", "nope")

    assert outcome.code == 1
    assert "object 'nope' not found in container 'default'" in outcome.err
    assert not target.exists()


def test_download_into_file_exits_2(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "file.txt"
    target.write_bytes(b"x")

    outcome = run(capsys, "download", "default", str(target))

    assert outcome.code == 2
    assert "is a file; pass a folder, or --object NAME" in outcome.err


def test_prefix_and_object_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run(capsys, "download", "c", "d", "--prefix", "p/", "--object", "o")

    assert outcome.code == 2
    assert "not allowed with argument" in outcome.err


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--workers", "0"),
        ("--workers", "two"),
        ("--segment-size", "512K"),
        ("--segment-size", "6G"),
        ("--large-object-threshold", "6G"),
        ("--large-object-threshold", "1.5M"),
    ],
)
def test_bad_option_exits_2(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    outcome = run(capsys, "upload", "x", "c", option, value)

    assert outcome.code == 2
    assert f"argument {option}: invalid" in outcome.err


# Progress and quiet output.


def test_progress_forced_draws_line(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    make_tree(source, {"a.bin": b"a" * 3000, "b.bin": b"b" * 1000})

    outcome = run(capsys, "upload", str(source), container, "--progress")

    assert outcome.code == 0, outcome.err
    drawn, summary = outcome.err.rsplit("\n", 2)[:2]
    assert drawn.startswith("\r")
    last = drawn.split("\r")[-1].rstrip()
    assert last.startswith("3.9 KiB of 3.9 KiB (100%), 2 of 2 files, ")
    assert summary.startswith("lhubic upload: uploaded 2, skipped 0, failed 0; ")


def test_no_progress_without_terminal(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "one.txt"
    source.write_bytes(b"one")

    outcome = run(capsys, "upload", str(source), container)

    assert "\r" not in outcome.err
    assert outcome.err.startswith("lhubic upload: uploaded 1, skipped 0, failed 0; ")
    assert len(outcome.err.splitlines()) == 1


def test_quiet_prints_only_failures(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    make_tree(source, {"ok.txt": b"ok"})
    good = run(capsys, "upload", str(source), container, "--quiet")
    add_overlong_name(source)

    bad = run(capsys, "upload", str(source), container, "-q")

    assert good.code == 0
    assert good.err == ""
    assert bad.code == 1
    assert len(bad.err.splitlines()) == 1
    assert bad.err.startswith("lhubic upload: failed to upload ")


def test_progress_and_quiet_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run(capsys, "upload", "x", "c", "--progress", "--quiet")

    assert outcome.code == 2
    assert "not allowed with argument" in outcome.err


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * MiB, "5.0 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (2 * 1024**5, "2.0 PiB"),
        (3000 * 1024**5, "3000.0 PiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_format_progress_full_line() -> None:
    text = format_progress(3 * MiB, 6 * MiB, 1, 2, 2.0)

    assert text == "3.0 MiB of 6.0 MiB (50%), 1 of 2 files, 1.5 MiB/s"


def test_format_progress_nothing_yet() -> None:
    assert format_progress(0, 0, 0, 3, 0.0) == "0 B of 0 B, 0 of 3 files, 0 B/s"


def test_format_progress_caps_percent() -> None:
    # Retried requests can count bytes twice, past the total.
    text = format_progress(150, 100, 1, 1, 1.0)

    assert text == "150 B of 100 B (100%), 1 of 1 files, 150 B/s"


def test_format_summary_counts() -> None:
    results = [
        FileResult("a", "a", FileStatus.UPLOADED, 2 * MiB),
        FileResult("b", "b", FileStatus.SKIPPED, 5 * MiB),
        FileResult("c", "c", FileStatus.FAILED, 1, OSError("boom")),
        FileResult("d", "d", FileStatus.UPLOADED, MiB),
    ]

    text = format_summary("uploaded", results, 2.04)

    assert text == "uploaded 2, skipped 1, failed 1; 3.0 MiB in 2.0 s"


class SteppingClock:
    """A monotonic clock that returns the times it is given, in order."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


@pytest.fixture
def columns(monkeypatch: pytest.MonkeyPatch) -> int:
    """Set the width that a stream which is not a terminal falls back to."""
    monkeypatch.setenv("COLUMNS", "120")
    return 120


def test_progress_line_redraws_in_place(columns: int) -> None:
    stream = io.StringIO()
    # The start, then one time per call.
    clock = SteppingClock(0.0, 1.0, 1.05, 2.0, 2.0)
    line = ProgressLine(stream, min_interval=0.1, clock=clock)

    line(10 * MiB, 20 * MiB, 0, 2)
    line(11 * MiB, 20 * MiB, 0, 2)  # within 0.1 s: not drawn
    line(20 * MiB, 20 * MiB, 1, 2)
    line(20 * MiB, 20 * MiB, 2, 2)  # the last file: always drawn
    line.finish()

    first = "\r10.0 MiB of 20.0 MiB (50%), 0 of 2 files, 10.0 MiB/s"
    second = "\r20.0 MiB of 20.0 MiB (100%), 1 of 2 files, 10.0 MiB/s"
    third = "\r20.0 MiB of 20.0 MiB (100%), 2 of 2 files, 10.0 MiB/s"
    assert stream.getvalue() == first + second + third + "\n"


def test_progress_line_pads_shorter_text(columns: int) -> None:
    stream = io.StringIO()
    line = ProgressLine(stream, min_interval=0.0, clock=SteppingClock(0.0, 1.0, 1.0))

    line(1500 * MiB, 2000 * MiB, 0, 1)
    line(0, 0, 0, 1)

    first, second = stream.getvalue().split("\r")[1:]
    assert len(second) == len(first)
    assert second.rstrip() == "0 B of 0 B, 0 of 1 files, 0 B/s"


def test_progress_line_cut_to_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "20")
    stream = io.StringIO()
    line = ProgressLine(stream, clock=SteppingClock(0.0, 1.0))

    line(MiB, 2 * MiB, 0, 1)

    # One column stays free, so the cursor never wraps to the next line.
    assert stream.getvalue() == "\r1.0 MiB of 2.0 MiB "


def test_progress_line_on_unsized_terminal(columns: int) -> None:
    # A new pseudo-terminal reports 0 columns until its size is set.
    controller, terminal = os.openpty()
    try:
        with open(terminal, "w", closefd=False) as stream:
            line = ProgressLine(stream, clock=SteppingClock(0.0, 1.0))
            line(MiB, 2 * MiB, 0, 1)
        drawn = os.read(controller, 4096).decode()
    finally:
        os.close(controller)
        os.close(terminal)

    assert drawn == "\r1.0 MiB of 2.0 MiB (50%), 0 of 1 files, 1.0 MiB/s"


def test_progress_line_finish_without_drawing() -> None:
    stream = io.StringIO()

    ProgressLine(stream).finish()

    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", MiB),
        ("512K", 512 * KiB),
        ("256m", 256 * MiB),
        ("1MiB", MiB),
        ("2G", 2 * 1024**3),
        ("7b", 7),
    ],
)
def test_parse_size_accepts(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1.5M", "10 MB", "1T", "M"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError, match=f"invalid size {re.escape(repr(text))}"
    ):
        parse_size(text)


# usage


def test_usage_prints_quota_and_used(
    environment: dict[str, str],
    hubic_server: HubicTestServer,
    account: Account,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hubic = connect(hubic_server, account)
    used = hubic.hubic_get("/account/usage").json()["used"]
    hubic.close()

    outcome = run(capsys, "usage")

    assert outcome.code == 0, outcome.err
    assert outcome.err == ""
    used_line, quota_line, free_line = outcome.out.splitlines()
    assert used_line.startswith(f"used   {format_size(used)} ({used:,} bytes), ")
    assert used_line.endswith(f"{used / QUOTA:.1%} of the quota")
    assert quota_line == "quota  6.5 GiB (7,000,000,000 bytes)"
    free = QUOTA - used
    assert free_line == f"free   {format_size(free)} ({free:,} bytes)"


# Secrets.


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def test_commands_leak_no_secret(
    environment: dict[str, str],
    container: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    source = tmp_path / "source"
    make_tree(source, TREE)
    store = tmp_path / "tokens.json"
    common = ["-vv", "--token-store", str(store)]

    outcomes = [
        run(capsys, "upload", str(source), container, "--progress", *common),
        run(capsys, "ls", *common),
        run(capsys, "ls", container, "--long", *common),
        run(capsys, "download", container, str(tmp_path / "back"), *common),
        run(
            capsys,
            "download",
            container,
            str(tmp_path / "one.txt"),
            "--object",
            "readme.txt",
            *common,
        ),
        run(capsys, "usage", *common),
        run(capsys, "ls", "no-such-container", *common),
    ]

    record = json.loads(store.read_text())
    secret_values = {
        environment["HUBIC_PASSWORD"],
        environment["HUBIC_CLIENT_SECRET"],
        record["refresh_token"],
        record["access_token"],
        record["storage_token"],
    }
    texts = [outcome.out + outcome.err for outcome in outcomes]
    texts += [record.getMessage() for record in debug_logs.records]
    assert [outcome.code for outcome in outcomes] == [0, 0, 0, 0, 0, 0, 1]
    assert any("DEBUG lhubic.connection: " in outcome.err for outcome in outcomes)
    assert any("X-Auth-Token" in text for text in texts)
    for secret in secret_values:
        for text in texts:
            assert secret not in text
            assert secret[:PREFIX_LENGTH] not in text


def test_verbose_logging_removed_after(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    handlers = list(logging.getLogger().handlers)
    level = logging.getLogger("lhubic").level

    outcome = run(capsys, "ls", "-v")

    assert outcome.code == 0, outcome.err
    assert "INFO lhubic.connection: " in outcome.err
    assert logging.getLogger().handlers == handlers
    assert logging.getLogger("lhubic").level == level


# The installed script.


def test_console_script_runs_ls(
    environment: dict[str, str], hubic_server: HubicTestServer
) -> None:
    script = Path(sys.executable).with_name("lhubic")
    if not script.exists():
        pytest.skip(f"the lhubic script is not installed next to {sys.executable}")

    result = subprocess.run(
        [str(script), "ls"],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "default" in result.stdout.splitlines()
    assert result.stderr == ""


# Warnings without -v


def test_rejected_refresh_token_warned(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stale_token = f"stale-{secrets.token_hex(8)}"
    monkeypatch.setenv("HUBIC_REFRESH_TOKEN", stale_token)

    outcome = run(capsys, "ls")

    assert outcome.code == 0, outcome.err
    assert "default" in outcome.out.split()
    # The rest of the line can be redacted: the secret filter is shared by the
    # whole process, and another test may have registered "password".
    assert "lhubic ls: warning: hubiC rejected the refresh token" in outcome.err
    assert stale_token not in outcome.err
    assert len(outcome.err.splitlines()) == 1
