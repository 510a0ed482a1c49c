"""The walk-through: a guided session against a local hubiC service.

``python -m lhubic.walkthrough`` (or ``lhubic walkthrough``) starts the local
service on a free loopback port and registers a demo application and user.
It then runs the steps a real program goes through: a password login, saving
the refresh token, a second client from that token alone, the quota,
uploads, a listing with a delimiter, downloads checked against MD5, and a
REST call.
Each step prints its outcome as it runs. The exit code is 0 only when every
step checked out, 1 when one failed, and 2 when the service cannot start.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import secrets
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import requests
from swiftclient.exceptions import ClientException

from .connection import Hubic
from .exceptions import HubicError

__all__ = ["main"]

CONTAINER = "default"
PREFIX = "walkthrough/"
DEMO_CLIENT_ID = "api_hubic_walkthrough"
DEMO_REDIRECT_URI = "http://localhost:8080/"
DEMO_LOGIN = "demo@example.com"
DEMO_QUOTA = 25 * 10**9

# Object name -> size in bytes. Two levels, so the delimiter listing shows
# both an object and a folder.
DEMO_FILES = {
    "walkthrough/readme.txt": 1_000,
    "walkthrough/photos/beach.jpg": 300_000,
    "walkthrough/photos/mountain.jpg": 1_500_000,
}


class StepFailed(Exception):
    """A walk-through check failed; the message describes the difference."""


@dataclass
class Session:
    """The state shared by the steps: the service, the clients and the demo data."""

    server: Any
    output: TextIO
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Characters that form encoding must escape, so the login proves it.
    password: str = field(
        default_factory=lambda: f"démo %&+ {secrets.token_urlsafe(10)}"
    )
    folder: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="lhubic-"))
    first: Hubic | None = None
    second: Hubic | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def token_path(self) -> str:
        return os.path.join(self.folder, "refresh-token")

    def say(self, text: str) -> None:
        print(f"      {text}", file=self.output, flush=True)


def _md5(data: bytes) -> str:
    # Swift's ETag is the MD5 of the content. It checks integrity, not secrecy.
    return hashlib.md5(data).hexdigest()  # noqa: S324


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def step_password_login(session: Session) -> None:
    """Log in with the login and password, then fetch storage credentials."""
    hubic = Hubic(
        DEMO_CLIENT_ID,
        session.client_secret,
        DEMO_LOGIN,
        session.password,
        api_url=session.server.api_url,
        redirect_uri=DEMO_REDIRECT_URI,
    )
    hubic.os_auth()
    session.first = hubic

    _require(bool(hubic.refresh_token), "the login returned no refresh token")
    _require(bool(hubic.os_storage_url), "no storage URL after os_auth()")
    session.say(f"logged in as {DEMO_LOGIN}")
    session.say(f"access token expires {_local_time(hubic.token_expire)}")
    session.say(f"storage URL {hubic.os_storage_url}")
    session.say(f"storage token expires {_local_time(hubic.os_token_expire)}")


def step_save_refresh_token(session: Session) -> None:
    """Write the refresh token to a file that only its owner can read."""
    assert session.first is not None and session.first.refresh_token is not None
    descriptor = os.open(
        session.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
    )
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(session.first.refresh_token)

    mode = stat.S_IMODE(os.stat(session.token_path).st_mode)
    _require(mode == 0o600, f"the token file has mode {mode:04o}, expected 0600")
    session.say(f"saved to {session.token_path} (mode {mode:04o})")


def step_refresh_token_login(session: Session) -> None:
    """Build a second client from the saved refresh token alone."""
    with open(session.token_path, encoding="utf-8") as file:
        refresh_token = file.read()
    forms_before = session.server.request_count("/oauth/auth")

    hubic = Hubic(
        DEMO_CLIENT_ID,
        session.client_secret,
        refresh_token=refresh_token,
        api_url=session.server.api_url,
    )
    hubic.os_auth()
    session.second = hubic

    forms = session.server.request_count("/oauth/auth") - forms_before
    _require(forms == 0, f"the refresh-token login opened the login form {forms} times")
    _require(bool(hubic.os_auth_token), "no storage token after the refresh")
    session.say("logged in again without the password")


def step_quota(session: Session) -> None:
    """Read the quota from the account headers and from /account/usage."""
    assert session.second is not None
    headers, containers = session.second.get_account()
    quota = int(headers["x-account-meta-quota"])
    used = int(headers.get("x-account-bytes-used", 0))
    usage = session.second.hubic_get("/account/usage").json()

    _require(quota == DEMO_QUOTA, f"the quota header is {quota}, expected {DEMO_QUOTA}")
    _require(
        usage["quota"] == quota,
        f"/account/usage reports quota {usage['quota']}, the header {quota}",
    )
    names = [container["name"] for container in containers]
    session.say(f"quota {quota:,} bytes, {used:,} used, containers {names}")


def step_upload(session: Session) -> None:
    """Upload the demo files and compare each ETag with the local MD5."""
    assert session.second is not None
    for name, size in DEMO_FILES.items():
        data = secrets.token_bytes(size)
        etag = session.second.put_object(CONTAINER, name, data)
        _require(
            etag == _md5(data), f"{name}: ETag {etag} differs from MD5 {_md5(data)}"
        )
        session.files[name] = data
        session.say(f"{name}: {size:,} bytes, MD5 {etag}")


def step_list(session: Session) -> None:
    """List the demo folder with a delimiter: one object and one subfolder."""
    assert session.second is not None
    _, entries = session.second.get_container(CONTAINER, prefix=PREFIX, delimiter="/")
    objects = sorted(entry["name"] for entry in entries if "name" in entry)
    folders = sorted(entry["subdir"] for entry in entries if "subdir" in entry)

    _require(objects == [f"{PREFIX}readme.txt"], f"objects listed: {objects}")
    _require(folders == [f"{PREFIX}photos/"], f"folders listed: {folders}")
    session.say(f"objects {objects}, folders {folders}")


def step_download(session: Session) -> None:
    """Download each file in chunks and compare its MD5 with the upload."""
    assert session.second is not None
    for name, data in session.files.items():
        headers, body = session.second.get_object(
            CONTAINER, name, resp_chunk_size=64 * 1024
        )
        digest = hashlib.md5()  # noqa: S324 - compared with Swift's ETag
        size = 0
        for chunk in body:
            digest.update(chunk)
            size += len(chunk)

        _require(size == len(data), f"{name}: got {size} bytes, sent {len(data)}")
        _require(
            digest.hexdigest() == _md5(data),
            f"{name}: downloaded MD5 {digest.hexdigest()} differs from {_md5(data)}",
        )
        _require(
            headers["etag"] == _md5(data), f"{name}: ETag {headers['etag']} differs"
        )
        session.say(f"{name}: {size:,} bytes, MD5 matches")


def step_rest_call(session: Session) -> None:
    """Call the REST API for the account details."""
    assert session.second is not None
    account = session.second.hubic_get("/account").json()

    _require(account.get("email") == DEMO_LOGIN, f"account email is {account}")
    session.say(f"GET /1.0/account: {account['email']}, offer {account.get('offer')}")


STEPS: list[tuple[str, Callable[[Session], None]]] = [
    ("Password login", step_password_login),
    ("Save the refresh token", step_save_refresh_token),
    ("Second client from the refresh token", step_refresh_token_login),
    ("Quota", step_quota),
    ("Upload", step_upload),
    ("List with a delimiter", step_list),
    ("Download and compare MD5", step_download),
    ("REST call", step_rest_call),
]


def _local_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "at an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


def run_steps(session: Session) -> bool:
    """Run the steps in order until one fails, and return whether all passed."""
    total = len(STEPS)
    for number, (title, step) in enumerate(STEPS, start=1):
        print(f"[{number}/{total}] {title}", file=session.output, flush=True)
        started = time.monotonic()
        try:
            step(session)
        except (
            StepFailed,
            HubicError,
            ClientException,
            requests.RequestException,
        ) as error:
            print(f"      FAILED: {error}", file=session.output, flush=True)
            return False
        elapsed = time.monotonic() - started
        print(f"      ok ({elapsed:.2f} s)", file=session.output, flush=True)
    return True


def _remove_token_file(session: Session) -> None:
    try:
        os.unlink(session.token_path)
    except FileNotFoundError:
        pass
    os.rmdir(session.folder)


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lhubic walkthrough",
        description=(
            "Start a local hubiC service on a free loopback port and run a guided "
            "session against it: login, refresh token, quota, upload, listing, "
            "download with MD5 check, and a REST call."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every request at DEBUG level to stderr (tokens are redacted)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the walk-through and return the exit code: 0 when every step passed."""
    arguments = _parse_arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )

    try:
        from .server import HubicServer
    except ImportError as error:
        print(
            f"The local hubiC service needs the 'server' extra ({error}).\n"
            "Install it with: pip install 'lhubic[server]'",
            file=sys.stderr,
        )
        return 2

    output = sys.stdout
    print("Starting the local hubiC service...", file=output, flush=True)
    try:
        server = HubicServer()
        server.start()
    except (HubicError, ImportError, OSError) as error:
        print(f"The local hubiC service did not start: {error}", file=sys.stderr)
        return 2

    session = Session(server=server, output=output)
    try:
        print(f"      ready at {server.api_url}", file=output, flush=True)
        server.add_app(DEMO_CLIENT_ID, session.client_secret, DEMO_REDIRECT_URI)
        server.add_user(DEMO_LOGIN, session.password, quota=DEMO_QUOTA)
        print(
            f"      registered the application {DEMO_CLIENT_ID} and the user "
            f"{DEMO_LOGIN}",
            file=output,
            flush=True,
        )
        passed = run_steps(session)
    finally:
        for hubic in (session.first, session.second):
            if hubic is not None:
                hubic.close()
        _remove_token_file(session)
        print("Stopping the local hubiC service.", file=output, flush=True)
        server.stop()

    if passed:
        print("Every step checked out.", file=output, flush=True)
        return 0
    print("The walk-through failed; see the step marked FAILED.", file=output)
    return 1


if __name__ == "__main__":
    sys.exit(main())
