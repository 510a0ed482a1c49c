"""`lhubic server`, run as a real child process with real signals."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from lhubic.server.command import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_LOGIN,
    DEMO_PASSWORD,
    DEMO_REDIRECT_URI,
)
from lhubic.server.swift_launcher import default_data_parent, supports_large_xattrs

START_TIMEOUT = 60


class ServerProcess:
    """`python -m lhubic.server.command` with its stdout read line by line.

    ``command`` replaces the module and its first arguments, for example
    ``("lhubic.cli", "server")`` to go through the `lhubic` command.
    """

    def __init__(
        self, *args: str, command: tuple[str, ...] = ("lhubic.server.command",)
    ) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", *command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, prefix: str) -> str:
        """Return the first output line starting with ``prefix``."""
        while True:
            try:
                line = self.lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise AssertionError(
                    f"no line starting with {prefix!r}; output so far: {self.output}"
                ) from None
            self.output.append(line)
            if line.startswith(prefix):
                return line.rstrip("\n")

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def wait_for_exit(self) -> tuple[int, str]:
        """Wait for the process to exit, and return its status and stderr."""
        status = self.process.wait(timeout=START_TIMEOUT)
        return status, self.stderr()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def start(*args: str, **options: tuple[str, ...]) -> ServerProcess:
        server = ServerProcess(*args, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def api_url_of(server: ServerProcess) -> str:
    line = server.wait_for("API URL: ")
    match = re.fullmatch(r"API URL: (http://127\.0\.0\.1:\d+)", line)
    assert match is not None, line
    return match.group(1)


def test_command_serves_until_sigint(start_server: StartServer) -> None:
    server = start_server(command=("lhubic.cli", "server"))
    api_url = api_url_of(server)
    data_line = server.wait_for("data folder: ")
    ready = server.wait_for("ready")
    seconds_to_ready = time.monotonic() - server.started

    response = requests.get(f"{api_url}/1.0/account", timeout=30)
    page = requests.get(
        f"{api_url}/oauth/auth/",
        params={
            "client_id": DEMO_CLIENT_ID,
            "redirect_uri": DEMO_REDIRECT_URI,
            "scope": "usage.r",
            "response_type": "code",
        },
        timeout=30,
    )
    status = server.stop(signal.SIGINT)

    assert re.fullmatch(r"ready in \d+\.\d\d s; press Ctrl-C to stop", ready)
    # From the process start, interpreter and imports included.
    assert seconds_to_ready < 5
    assert re.search(r"\((disk|in-memory) object server", data_line)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert page.status_code == 200
    assert status == 0
    assert server.wait_for("lhubic server stopped")
    assert DEMO_LOGIN in "".join(server.output)


def test_command_stops_on_sigterm(start_server: StartServer) -> None:
    server = start_server()
    api_url = api_url_of(server)
    server.wait_for("ready")

    status = server.stop(signal.SIGTERM)

    assert status == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api_url}/1.0/account", timeout=5)


def test_command_uses_config_port_and_data_dir(
    start_server: StartServer, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "hubic.toml"
    config.write_text(
        "[[apps]]\n"
        'client_id = "api_hubic_cmd"\n'
        'client_secret = "cmd secret"\n'
        'redirect_uri = "http://127.0.0.1/cmd"\n',
        encoding="utf-8",
    )
    data_dir = tmp_path / "data"
    cores = len(os.sched_getaffinity(0))
    if not supports_large_xattrs(tmp_path):
        expected_storage = "(in-memory object server: objects are lost on stop)"
    elif cores > 1:
        expected_storage = f"(disk object server in {cores} worker processes)"
    else:
        expected_storage = "(disk object server)"

    server = start_server(
        "--config", str(config), "--port", str(port), "--data-dir", str(data_dir)
    )
    api_url = api_url_of(server)
    data_line = server.wait_for("data folder: ")
    server.wait_for("ready")
    page = requests.get(
        f"{api_url}/oauth/auth/",
        params={
            "client_id": "api_hubic_cmd",
            "redirect_uri": "http://127.0.0.1/cmd",
            "scope": "usage.r",
            "response_type": "code",
        },
        timeout=30,
    )
    status = server.stop(signal.SIGINT)

    assert api_url == f"http://127.0.0.1:{port}"
    assert data_line.startswith(f"data folder: {data_dir} (")
    assert data_line.endswith(expected_storage)
    assert page.status_code == 200
    assert status == 0
    assert (data_dir / "storage-tokens.sqlite3").exists()


def test_command_rejects_busy_port(start_server: StartServer) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        server = start_server("--port", str(port))
        status, stderr = server.wait_for_exit()

    assert status == 2
    assert f"port {port} on 127.0.0.1 is already in use" in stderr
    assert "Traceback" not in stderr


def test_command_rejects_uncreatable_data_dir(
    start_server: StartServer, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("", encoding="utf-8")

    server = start_server("--data-dir", str(not_a_folder / "data"))
    status, stderr = server.wait_for_exit()

    assert status == 2
    assert f"cannot create the data folder {not_a_folder / 'data'}" in stderr
    assert "Traceback" not in stderr


def test_command_rejects_invalid_config(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = -1\n", encoding="utf-8")

    server = start_server("--config", str(config))
    status, stderr = server.wait_for_exit()

    assert status == 2
    assert "server.port" in stderr
    assert str(config) in stderr


def test_command_object_workers_option(start_server: StartServer) -> None:
    parent = default_data_parent()
    if not supports_large_xattrs(parent):
        pytest.skip(f"{parent} rejects large xattrs, so objects live in memory")
    data_dir = Path(tempfile.mkdtemp(prefix="lhubic-cmd-", dir=parent))

    try:
        server = start_server("--object-workers", "1", "--data-dir", str(data_dir))
        data_line = server.wait_for("data folder: ")
        status = server.stop(signal.SIGTERM)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    assert data_line.endswith("(disk object server in 1 worker process)")
    assert status == 0


def test_command_rejects_negative_object_workers(start_server: StartServer) -> None:
    server = start_server("--object-workers", "-1")
    status, stderr = server.wait_for_exit()

    assert status == 2
    assert "invalid object_workers -1: expected an integer from 0 to 64" in stderr
    assert "Traceback" not in stderr


def test_command_help_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lhubic.server.command", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0
    assert "--data-dir" in result.stdout
    assert "--config" in result.stdout
    assert f"client secret  {DEMO_CLIENT_SECRET}" in result.stdout
    assert f"password       {DEMO_PASSWORD}" in result.stdout
