"""Start and stop a single-node OpenStack Swift on 127.0.0.1.

`SwiftCluster` writes Swift's configuration into ``<data_dir>/swift``, binds
the listening sockets itself, and starts one child process
(`lhubic.server.swift_process`) that runs the account, container, object and
proxy servers on those sockets. On more than one core the disk object server
runs in worker processes that the child forks, one per core. It waits for the
proxy's ``/healthcheck`` and stops the child by its PID; the child stops its
workers.

Storage authentication is `lhubic.server.storage_auth`: the proxy accepts the
tokens of ``<data_dir>/storage-tokens.sqlite3`` and the cluster's admin key.
"""

from __future__ import annotations

import configparser
import errno
import fcntl
import getpass
import http.client
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from lhubic.exceptions import HubicConfigError, HubicInputError, HubicServerError
from lhubic.server.storage_auth import StorageTokenStore, check_account

__all__ = [
    "OBJECT_SERVER_KINDS",
    "TOKEN_DATABASE",
    "XATTR_PROBE_BYTES",
    "SwiftCluster",
    "default_data_parent",
    "supports_large_xattrs",
]

logger = logging.getLogger(__name__)

OBJECT_SERVER_KINDS = ("auto", "disk", "memory")

TOKEN_DATABASE = "storage-tokens.sqlite3"  # noqa: S105 - a file name
"""File name of the storage token database inside the data folder."""

XATTR_PROBE_BYTES = 8192
"""Size of the user extended attribute that the disk object server must be
able to write. ext4 rejects it, and tmpfs on Linux 6.6 and newer takes it."""

MAX_META_OVERALL_SIZE = 7168
"""Swift's ``max_meta_overall_size`` here, in bytes: 7 KiB of user metadata
per object, where Swift's default is 4 KiB, so that about 6 KiB fits.

Swift 2.38 pickles an object's metadata into user xattrs of up to 64 KiB each.
At this limit the pickle is about 8 KiB, or more with many short keys.

NOTE: a file system that takes `XATTR_PROBE_BYTES` but not a 10 KiB xattr
would pass the probe and still return 507 for objects near this limit.
"""

# Bytes per read and write in the proxy and object servers, where Swift's
# default is 64 KiB. Per-chunk work was a large share of the servers' CPU: with
# 1 MiB, a 1 GiB upload cost them 2.5 s of CPU instead of 3.2 s (median of 6
# runs, on /dev/shm, with all servers in one process).
_CHUNK_SIZE = str(1024 * 1024)

DEFAULT_UPDATER_INTERVAL = 5.0
DEFAULT_START_TIMEOUT = 30.0
STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 40

_PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats "
    "bulk storage-auth copy account-quotas slo dlo versioned_writes symlink "
    "proxy-logging proxy-server"
)

ConfigSections = Mapping[str, Mapping[str, str]]


def supports_large_xattrs(folder: str | Path) -> bool:
    """Return True if files in ``folder`` take an 8 KiB user extended attribute."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".xattr-probe-") as probe:
            os.setxattr(probe.fileno(), "user.lhubic.probe", b"x" * XATTR_PROBE_BYTES)
    except (OSError, AttributeError):
        # AttributeError: os.setxattr exists on Linux only.
        return False
    return True


def default_data_parent() -> Path:
    """Return /dev/shm if it is writable and takes large xattrs, else the temp dir."""
    shm = Path("/dev/shm")  # noqa: S108 - only probed, never used blindly
    if shm.is_dir() and os.access(shm, os.W_OK) and supports_large_xattrs(shm):
        return shm
    return Path(tempfile.gettempdir())


class SwiftCluster:
    """A single-node Swift in a child process, listening on 127.0.0.1.

    ``object_server`` is ``"disk"`` (Swift's object server, which needs large
    user extended attributes in ``data_dir``), ``"memory"`` (Swift's in-memory
    object server: objects are lost on stop) or ``"auto"`` (disk when the
    folder allows it). ``object_workers`` is the number of processes that run
    the disk object server, all accepting on one socket as Swift's ``workers``
    setting does. 0 serves objects from the child process itself, and None
    (the default) picks one per core this process may use, or 0 on a single
    core. The in-memory object server always runs in the child, because its
    objects live there. After start(), ``object_server_kind`` and
    ``object_worker_count`` are the choices made.

    ``proxy_port`` 0 picks a free port. ``max_object_size`` sets Swift's
    ``max_file_size`` in bytes (Swift's default is 5 GiB + 2 bytes). The
    container updater runs every ``updater_interval`` seconds so that account
    byte and object counts catch up.

    Call start() and stop() from one thread. The other methods may be called
    from any thread. Linux only, because it passes sockets to the child and
    probes xattrs.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        object_server: str = "auto",
        object_workers: int | None = None,
        proxy_port: int = 0,
        max_object_size: int | None = None,
        updater_interval: float = DEFAULT_UPDATER_INTERVAL,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        _check_choice("object_server", object_server, OBJECT_SERVER_KINDS)
        if object_workers is not None:
            _check_int("object_workers", object_workers, minimum=0, maximum=64)
            if object_server == "memory" and object_workers > 0:
                raise HubicConfigError(
                    f"invalid object_workers={object_workers} with "
                    "object_server='memory': the in-memory object server keeps "
                    "its objects in one process. Pass object_workers=0, or "
                    "object_server='disk'"
                )
        _check_int("proxy_port", proxy_port, minimum=0, maximum=65535)
        if max_object_size is not None:
            _check_int("max_object_size", max_object_size, minimum=1)
        _check_positive("updater_interval", updater_interval)
        _check_positive("start_timeout", start_timeout)

        self.data_dir = Path(data_dir).absolute()
        self.run_dir = self.data_dir / "swift"
        self.log_path = self.run_dir / "swift.log"
        self.object_server = object_server
        self.object_workers = object_workers
        self.max_object_size = max_object_size
        self.updater_interval = float(updater_interval)
        self.start_timeout = float(start_timeout)
        self.admin_key = secrets.token_urlsafe(32)
        self.object_server_kind: str | None = None
        self.object_worker_count: int | None = None
        self.start_seconds: float | None = None

        self._requested_proxy_port = proxy_port
        self._proxy_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., SwiftCluster] | None = None
        self._lock_fd: int | None = None

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tokens = StorageTokenStore(self.data_dir / TOKEN_DATABASE)

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self._proxy_port else "stopped"
        return f"SwiftCluster(data_dir={str(self.data_dir)!r}, {state})"

    def __enter__(self) -> SwiftCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The proxy's base URL, ``http://127.0.0.1:<port>``."""
        if self._proxy_port is None:
            raise HubicServerError("the Swift cluster is not started; call start()")
        return f"http://127.0.0.1:{self._proxy_port}"

    @property
    def pid(self) -> int | None:
        """PID of the Swift child process, or None when stopped."""
        return None if self._process is None else self._process.pid

    def storage_url(self, account: str) -> str:
        """Return the Swift storage URL of ``account``."""
        return f"{self.url}/v1/{check_account(account)}"

    def start(self) -> None:
        """Start Swift and return once the proxy's ``/healthcheck`` returns OK.

        Raises:
            HubicConfigError: the proxy port is taken, or ``object_server`` is
                ``"disk"`` on a folder without large extended attributes.
            HubicServerError: Swift exited or was not ready in time; the
                message ends with the last lines of its log.
        """
        if self._process is not None:
            raise HubicServerError("the Swift cluster is already started")

        started = time.monotonic()
        self._lock_data_dir()
        try:
            self.object_server_kind = self._choose_object_server()
            self.object_worker_count = self._object_worker_count()
            self._launch()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            self.object_server_kind = None
            self.object_worker_count = None
            raise

        self.start_seconds = time.monotonic() - started
        logger.info(
            "Swift started in %.2f s at %s (pid %d, %s object server, %d workers)",
            self.start_seconds,
            self.url,
            self.pid,
            self.object_server_kind,
            self.object_worker_count,
        )

    def stop(self) -> None:
        """Stop the child: SIGTERM, then SIGKILL after a grace period; reap it.

        Does nothing when the cluster is not running.
        """
        process, self._process = self._process, None
        self._proxy_port = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

        if process is not None:
            _terminate(process, STOP_GRACE_SECONDS)
            logger.info(
                "Swift stopped (pid %d, exit status %s)",
                process.pid,
                process.returncode,
            )
        self._unlock_data_dir()
        self.tokens.close()

    @property
    def running(self) -> bool:
        """True while the child process is alive, including during start()."""
        return self._process is not None and self._process.poll() is None

    def ensure_account(self, account: str, quota_bytes: int) -> None:
        """Create ``account`` if needed, set its quota and its ``default`` container.

        The quota goes in ``X-Account-Meta-Quota`` (read by hubiC clients) and
        ``X-Account-Meta-Quota-Bytes`` (enforced by Swift's account_quotas
        middleware). Calling it again only updates the quota.
        """
        check_account(account)
        _check_int("quota_bytes", quota_bytes, minimum=0)

        quota = str(quota_bytes)
        self._admin_request(
            "POST",
            f"/v1/{account}",
            {"X-Account-Meta-Quota": quota, "X-Account-Meta-Quota-Bytes": quota},
            expected=(204,),
        )
        self._admin_request("PUT", f"/v1/{account}/default", expected=(201, 202))

    def container_usage(self, account: str) -> int:
        """Return the bytes stored in ``account``, summed over its containers.

        Each container's own count is current, unlike the account's
        X-Account-Bytes-Used, which waits for the container updater.
        """
        check_account(account)
        total = 0
        for name in self._container_names(account):
            status, headers, _ = self._admin_request(
                "HEAD", f"/v1/{account}/{quote(name, safe='')}", expected=(204, 404)
            )
            if status == 204:
                total += int(headers.get("X-Container-Bytes-Used", "0"))
        return total

    def _container_names(self, account: str) -> list[str]:
        names: list[str] = []
        while True:
            marker = quote(names[-1], safe="") if names else ""
            _, _, body = self._admin_request(
                "GET",
                f"/v1/{account}?format=json&marker={marker}",
                expected=(200, 204),
            )
            page = json.loads(body) if body else []
            if not page:
                return names
            names.extend(entry["name"] for entry in page)

    def _admin_request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        *,
        expected: tuple[int, ...],
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        port = self._proxy_port
        if port is None:
            raise HubicServerError("the Swift cluster is not started; call start()")

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request(
                method,
                path,
                headers={**(headers or {}), "X-Auth-Token": self.admin_key},
            )
            response = connection.getresponse()
            body = response.read()
        except OSError as error:
            raise HubicServerError(
                f"Swift request {method} {path} failed: {error}"
            ) from error
        finally:
            connection.close()

        if response.status not in expected:
            text = body[:300].decode("utf-8", "replace")
            raise HubicServerError(
                f"Swift returned HTTP {response.status} to {method} {path}: {text}",
                status=response.status,
            )
        return response.status, response.headers, body

    def _launch(self) -> None:
        sockets = _bind_sockets(self._requested_proxy_port)
        try:
            ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
            fds = {name: sock.fileno() for name, sock in sockets.items()}
            self._write_configuration(ports, fds)
            self._spawn(list(fds.values()))
        finally:
            # The child has its own copies of the sockets now.
            for sock in sockets.values():
                sock.close()
        self._proxy_port = ports["proxy"]

    def _lock_data_dir(self) -> None:
        # Two clusters on one folder would overwrite each other's rings and
        # configuration, and share the account and container databases.
        descriptor = os.open(self.run_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise HubicConfigError(
                f"the data folder {self.data_dir} is in use by another running "
                "SwiftCluster; stop that one or pass another data_dir"
            ) from None
        self._lock_fd = descriptor

    def _unlock_data_dir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _choose_object_server(self) -> str:
        if self.object_server == "memory":
            return "memory"
        if supports_large_xattrs(self.run_dir):
            return "disk"
        if self.object_server == "disk":
            raise HubicConfigError(
                f"object_server='disk' needs {XATTR_PROBE_BYTES}-byte user extended "
                f"attributes, which the file system of {self.run_dir} rejects; "
                "use a data folder on tmpfs such as /dev/shm, or pass "
                "object_server='memory' or 'auto'"
            )
        logger.warning(
            "%s rejects %d-byte user extended attributes, so Swift's disk object "
            "server cannot store object metadata there; using the in-memory "
            "object server: objects are held in memory and lost when Swift stops",
            self.run_dir,
            XATTR_PROBE_BYTES,
        )
        return "memory"

    def _object_worker_count(self) -> int:
        if self.object_server_kind == "memory":
            if self.object_workers:
                # Only "auto" gets here: it fell back to the in-memory server.
                logger.warning(
                    "ignoring object_workers=%d: the in-memory object server "
                    "runs in the Swift process",
                    self.object_workers,
                )
            return 0
        if self.object_workers is not None:
            return self.object_workers
        cores = _usable_cores()
        return cores if cores > 1 else 0

    def _write_configuration(self, ports: dict[str, int], fds: dict[str, int]) -> None:
        from lhubic.server import swift_process

        etc = self.run_dir / "etc"
        paths = {
            "swift_dir": etc,
            "devices": self.run_dir / "node",
            "recon": self.run_dir / "recon",
        }
        for folder in paths.values():
            folder.mkdir(parents=True, exist_ok=True)
        (paths["devices"] / swift_process.DEVICE_NAME).mkdir(exist_ok=True)

        _write_ini(etc / "swift.conf", self._swift_conf(etc / "swift.conf"))
        common = {
            "swift_dir": str(etc),
            "devices": str(paths["devices"]),
            "mount_check": "false",
            "disable_fallocate": "true",
            "bind_ip": "127.0.0.1",
            "workers": "0",
            "user": getpass.getuser(),
            "recon_cache_path": str(paths["recon"]),
            "log_udp_host": "127.0.0.1",
            "log_udp_port": str(ports["log"]),
            "log_level": "INFO",
        }
        servers = {}
        for name in swift_process.SERVER_NAMES:
            config = etc / f"{name}-server.conf"
            defaults = {
                **common,
                "bind_port": str(ports[name]),
                "log_name": f"{name}-server",
            }
            _write_ini(config, {"DEFAULT": defaults, **self._server_sections(name)})
            servers[name] = {
                "config": str(config),
                "fd": fds[name],
                "port": ports[name],
            }

        layout = {
            "swift_dir": str(etc),
            "servers": servers,
            "log_fd": fds["log"],
            "updater_interval": self.updater_interval,
            "object_workers": self.object_worker_count or 0,
            "parent_pid": os.getpid(),
        }
        (self.run_dir / swift_process.RUN_FILE).write_text(
            json.dumps(layout, indent=2), encoding="utf-8"
        )

    def _swift_conf(self, path: Path) -> ConfigSections:
        constraints = {"max_meta_overall_size": str(MAX_META_OVERALL_SIZE)}
        if self.max_object_size is not None:
            constraints["max_file_size"] = str(self.max_object_size)
        return {
            "swift-hash": _hash_settings(path),
            "storage-policy:0": {"name": "Policy-0", "default": "yes"},
            "swift-constraints": constraints,
        }

    def _server_sections(self, name: str) -> ConfigSections:
        if name == "proxy":
            return self._proxy_sections()

        sections: dict[str, dict[str, str]] = {
            "pipeline:main": {"pipeline": f"{name}-server"},
            f"app:{name}-server": {"use": f"egg:swift#{name}", "log_requests": "false"},
        }
        if name == "object":
            sections["app:object-server"].update(
                network_chunk_size=_CHUNK_SIZE, disk_chunk_size=_CHUNK_SIZE
            )
        if name == "object" and self.object_server_kind == "memory":
            sections["app:object-server"]["use"] = "egg:swift#mem_object"
        if name == "container":
            sections["container-updater"] = {
                "concurrency": "1",
                "account_suppression_time": str(self.updater_interval),
            }
        return sections

    def _proxy_sections(self) -> ConfigSections:
        sections: dict[str, dict[str, str]] = {
            "pipeline:main": {"pipeline": _PIPELINE},
            "app:proxy-server": {
                "use": "egg:swift#proxy",
                "account_autocreate": "true",
                "client_chunk_size": _CHUNK_SIZE,
                "object_chunk_size": _CHUNK_SIZE,
                # With one device, a single 507 would otherwise make the proxy
                # skip that device for 60 s, so every request would fail.
                "error_suppression_interval": "0",
            },
            "filter:cache": {
                "paste.filter_factory": (
                    "lhubic.server.swift_process:cache_filter_factory"
                )
            },
            "filter:storage-auth": {
                "paste.filter_factory": "lhubic.server.storage_auth:filter_factory",
                "admin_key": self.admin_key,
                "token_database": str(self.tokens.path),
            },
            # Swift 2.38 logs the first 16 characters of tokens by default.
            "filter:proxy-logging": {
                "use": "egg:swift#proxy_logging",
                "reveal_sensitive_prefix": "0",
            },
            "filter:versioned_writes": {
                "use": "egg:swift#versioned_writes",
                "allow_versioned_writes": "true",
            },
        }
        for filter_name in (
            "catch_errors",
            "gatekeeper",
            "healthcheck",
            "listing_formats",
            "bulk",
            "copy",
            "slo",
            "dlo",
            "symlink",
        ):
            sections[f"filter:{filter_name}"] = {"use": f"egg:swift#{filter_name}"}
        sections["filter:account-quotas"] = {"use": "egg:swift#account_quotas"}
        return sections

    def _spawn(self, fds: list[int]) -> None:
        # The child runs this module with -m, and runpy warns when the
        # lhubic.server package has imported it already, so only import it here.
        from lhubic.server import swift_process

        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [package_root, env.get("PYTHONPATH")])
        )
        with open(self.log_path, "wb") as log_file:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list
                [sys.executable, "-m", swift_process.__name__, str(self.run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=fds,
                env=env,
                start_new_session=True,
            )
        self._finalizer = weakref.finalize(
            self, _terminate, self._process, STOP_GRACE_SECONDS
        )

    def _wait_until_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            status = process.poll()
            if status is not None:
                raise HubicServerError(
                    f"Swift exited with status {status} before it was ready; "
                    f"last lines of {self.log_path}:\n{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if self._healthcheck_ok(timeout=min(2.0, max(remaining, 0.01))):
                return
            if time.monotonic() > deadline:
                raise HubicServerError(
                    f"Swift start timed out after {self.start_timeout:g} s; "
                    f"last lines of {self.log_path}:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _healthcheck_ok(self, timeout: float) -> bool:
        # The parent bound the socket, so a connection succeeds at once and
        # the request waits until the child serves it.
        connection = http.client.HTTPConnection(
            "127.0.0.1", self._proxy_port, timeout=timeout
        )
        try:
            connection.request("GET", "/healthcheck")
            response = connection.getresponse()
            return response.status == 200 and response.read() == b"OK"
        except OSError:
            return False
        finally:
            connection.close()

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"(log unreadable: {error})"
        return "\n".join(lines.splitlines()[-LOG_TAIL_LINES:])


def _bind_sockets(proxy_port: int) -> dict[str, socket.socket]:
    """Bind the four server sockets and the log socket on 127.0.0.1."""
    sockets: dict[str, socket.socket] = {}
    try:
        sockets["proxy"] = _listen(proxy_port)
        for name in ("account", "container", "object"):
            sockets[name] = _listen(0)
        log_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sockets["log"] = log_socket
        log_socket.bind(("127.0.0.1", 0))
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise

    for sock in sockets.values():
        sock.set_inheritable(True)
    return sockets


def _listen(port: int) -> socket.socket:
    # Swift binds with SO_REUSEPORT, so a second Swift on a busy port would
    # start without error and share its connections. Check that nothing
    # accepts connections there, and bind without SO_REUSEPORT so that any
    # listener makes bind() fail.
    if port and _port_answers(port):
        raise _port_in_use(port)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise _port_in_use(port) from error
        raise
    return sock


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _port_in_use(port: int) -> HubicConfigError:
    return HubicConfigError(
        f"proxy port {port} on 127.0.0.1 is already in use; "
        "stop whatever listens there or pass proxy_port=0 to pick a free port"
    )


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _terminate(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            logger.warning(
                "Swift (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL",
                process.pid,
                grace_seconds,
            )
            process.kill()
            process.wait()


def _hash_settings(swift_conf: Path) -> dict[str, str]:
    # Object paths on disk depend on the hash prefix and suffix, so a data
    # folder keeps the values of its first start.
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(swift_conf, encoding="utf-8")
    if parser.has_section("swift-hash"):
        existing = dict(parser.items("swift-hash"))
        if existing.get("swift_hash_path_prefix") and existing.get(
            "swift_hash_path_suffix"
        ):
            return existing
    return {
        "swift_hash_path_prefix": secrets.token_hex(16),
        "swift_hash_path_suffix": secrets.token_hex(16),
    }


def _write_ini(path: Path, sections: ConfigSections) -> None:
    """Write an INI file with mode 0600, because the proxy's contains the admin key."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        # paste.deploy and Swift read these files with '%' interpolation.
        lines.extend(
            f"{key} = {value.replace('%', '%%')}" for key, value in values.items()
        )
        lines.append("")

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as ini_file:
        ini_file.write("\n".join(lines))


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise HubicInputError(
            f"invalid {name} {value!r}: expected one of {', '.join(choices)}"
        )


def _check_int(
    name: str, value: object, *, minimum: int, maximum: int | None = None
) -> None:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= minimum
        and (maximum is None or value <= maximum)
    ):
        return

    if maximum is None:
        bounds = f"of {minimum} or more"
    else:
        bounds = f"from {minimum} to {maximum}"
    raise HubicInputError(f"invalid {name} {value!r}: expected an integer {bounds}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HubicInputError(f"invalid {name} {value!r}: expected a positive number")
