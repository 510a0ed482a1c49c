"""Tests for the walk-through, run as ``python -m lhubic.walkthrough``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lhubic.walkthrough import STEPS

TIMEOUT_SECONDS = 180


def run_walkthrough(*arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HUBIC_")
    }
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        env=environment,
        check=False,
    )


@pytest.fixture(scope="module")
def finished() -> subprocess.CompletedProcess[str]:
    return run_walkthrough("-m", "lhubic.walkthrough")


def test_walkthrough_exits_zero(finished: subprocess.CompletedProcess[str]) -> None:
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_walkthrough_prints_every_step(
    finished: subprocess.CompletedProcess[str],
) -> None:
    for number, (title, _) in enumerate(STEPS, start=1):
        assert f"[{number}/{len(STEPS)}] {title}" in finished.stdout
    assert finished.stdout.count("      ok (") == len(STEPS)
    assert "FAILED" not in finished.stdout
    assert finished.stdout.rstrip().endswith("Every step checked out.")


def test_walkthrough_reports_checks(
    finished: subprocess.CompletedProcess[str],
) -> None:
    output = finished.stdout

    assert "(mode 0600)" in output
    assert "logged in again without the password" in output
    assert "quota 25,000,000,000 bytes" in output
    assert "folders ['walkthrough/photos/']" in output
    assert output.count("MD5 matches") == 3
    assert "GET /1.0/account: demo@example.com" in output


def test_walkthrough_stops_service(
    finished: subprocess.CompletedProcess[str],
) -> None:
    assert "Stopping the local hubiC service." in finished.stdout
    assert "Traceback" not in finished.stderr


def test_walkthrough_removes_token_file(
    finished: subprocess.CompletedProcess[str],
) -> None:
    line = next(line for line in finished.stdout.splitlines() if "saved to " in line)
    path = line.split("saved to ", 1)[1].split(" (mode", 1)[0]

    assert not os.path.exists(path)


def test_walkthrough_help() -> None:
    result = run_walkthrough("-m", "lhubic.walkthrough", "--help")

    assert result.returncode == 0
    assert "--verbose" in result.stdout


def test_walkthrough_unknown_option() -> None:
    result = run_walkthrough("-m", "lhubic.walkthrough", "--no-such-option")

    assert result.returncode == 2
    assert "--no-such-option" in result.stderr


def test_walkthrough_without_server_extra() -> None:
    # A None entry in sys.modules makes "import lhubic.server" fail, as it
    # does when the server extra's dependencies are missing.
    code = (
        "import sys; sys.modules['lhubic.server'] = None; "
        "from lhubic.walkthrough import main; sys.exit(main([]))"
    )
    result = run_walkthrough("-c", code)

    assert result.returncode == 2
    assert "pip install 'lhubic[server]'" in result.stderr
