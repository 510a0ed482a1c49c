"""Run the README's ``python`` blocks, in order, against the local service.

The blocks are joined into one script, so later blocks use the names that
earlier ones defined, and the script runs in a child process. It reads its
settings from the ``HUBIC_*`` variables, set here for a user and an
application of its own. Other tests check that the README's commands and
demonstration values match the code.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPORT = re.compile(r"^export (HUBIC_[A-Z_]+)=(\S+)", re.MULTILINE)
TIMEOUT_SECONDS = 120


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Return each ``python`` block of ``text`` with its first line number."""
    blocks = []
    for match in PYTHON_BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append((line, match.group(1)))
    return blocks


def build_script(blocks: list[tuple[int, str]]) -> str:
    parts = [f"# README.md, line {line}\n{code}" for line, code in blocks]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working folder and home folder of the README script."""
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="module")
def readme_run(
    hubic_server: Any, readme_folder: Path
) -> subprocess.CompletedProcess[str]:
    folder = readme_folder
    client_id = f"api_hubic_readme_{secrets.token_hex(4)}"
    client_secret = secrets.token_urlsafe(16)
    login = f"readme-{secrets.token_hex(4)}@example.com"
    password = f"readme {secrets.token_urlsafe(8)}"
    redirect_uri = "http://127.0.0.1/readme-callback"
    hubic_server.add_app(client_id, client_secret, redirect_uri)
    hubic_server.add_user(login, password)

    script = folder / "readme_examples.py"
    script.write_text(build_script(python_blocks(README.read_text())))
    environment = {
        **os.environ,
        "HOME": str(folder),
        "HUBIC_CLIENT_ID": client_id,
        "HUBIC_CLIENT_SECRET": client_secret,
        "HUBIC_USERNAME": login,
        "HUBIC_PASSWORD": password,
        "HUBIC_API_URL": hubic_server.api_url,
        "HUBIC_REDIRECT_URI": redirect_uri,
    }
    environment.pop("HUBIC_REFRESH_TOKEN", None)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def test_readme_has_examples_section() -> None:
    text = README.read_text()
    examples = text.split("\n## Examples\n", 1)

    assert len(examples) == 2
    assert len(python_blocks(examples[1])) >= 10


def test_python_blocks_finds_lines() -> None:
    text = "intro\n```python\nx = 1\n```\n\n```sh\nls\n```\n```python\ny = 2\n```\n"

    assert python_blocks(text) == [(3, "x = 1\n"), (10, "y = 2\n")]


def test_readme_examples_run(readme_run: subprocess.CompletedProcess[str]) -> None:
    assert readme_run.returncode == 0, readme_run.stdout + readme_run.stderr


def test_readme_examples_print_expected(
    readme_run: subprocess.CompletedProcess[str],
) -> None:
    output = readme_run.stdout

    assert "12 True" in output
    assert "not found in container 'default'" in output
    assert "['documents/', 'photos/']" in output
    assert "[('photos/beach.txt', 12)]" in output
    assert "{'firstname': 'Alice', 'lastname': 'Martin'}" in output


def test_readme_token_store_written(
    readme_run: subprocess.CompletedProcess[str], readme_folder: Path
) -> None:
    store = readme_folder / ".config" / "lhubic" / "tokens.json"

    assert readme_run.returncode == 0
    assert store.exists()
    assert store.stat().st_mode & 0o777 == 0o600


def test_readme_test_command_in_ci() -> None:
    commands = SH_BLOCK.findall(README.read_text())
    ci_script = (ROOT / ".ci" / "run").read_text()

    assert "lhubic walkthrough" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1].strip() in ci_script


def test_readme_demo_values_match_server() -> None:
    from lhubic.server import command

    examples = README.read_text().split("\n## Examples\n", 1)[1]
    exported = dict(EXPORT.findall(examples))

    assert exported["HUBIC_CLIENT_ID"] == command.DEMO_CLIENT_ID
    assert exported["HUBIC_CLIENT_SECRET"] == command.DEMO_CLIENT_SECRET
    assert exported["HUBIC_USERNAME"] == command.DEMO_LOGIN
    assert exported["HUBIC_PASSWORD"] == command.DEMO_PASSWORD
