"""Entry point of the Swift child process: the four servers of one Swift node.

`SwiftCluster` runs ``python -m lhubic.server.swift_process RUN_DIR``. The file
``RUN_DIR/run.json`` names each server's paste-deploy configuration and its
listening socket, an inherited file descriptor. The parent binds the sockets
itself, so no other process can take a port between the choice and its use.

The account, container, object and proxy servers run as eventlet green threads
on their own sockets. The container updater runs in a green thread too, so
that account byte and object counts catch up without the forking daemon.

When ``object_workers`` in the run file is above 0, the object server runs
instead in that many forked processes that accept on its one socket, as
Swift's ``workers`` setting arranges. The object server, which hashes and
writes the bodies, takes most of the servers' CPU time (about 2.1 s of 2.7 s
for a 1 GiB upload), so several uploads or downloads at once can then use
every core. The proxy stays in one process, since the cache it keeps in
memory (`InProcessCache`) is not shared. Workers end with this process: it
stops them on SIGTERM or when one of its green threads ends, and the kernel
sends them SIGTERM if it dies in any other way.

Swift's loggers send syslog datagrams to a UDP socket that the parent also
passed down (``log_udp_host`` in the server configurations). A green thread
here writes them to standard error, which the parent points at the log file.

Only the standard library is imported at module level: `SwiftCluster` imports
the constants below without loading Swift or eventlet into the service process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_FILE",
    "SERVER_NAMES",
    "InProcessCache",
    "cache_filter_factory",
    "main",
]

# Under -m this module is __main__, so the logger gets the dotted name.
logger = logging.getLogger(
    "lhubic.server.swift_process" if __name__ == "__main__" else __name__
)

RUN_FILE = "run.json"
"""Name of the JSON file in the run folder that describes the child's work."""

SERVER_NAMES = ("account", "container", "object", "proxy")
"""The Swift servers, in start order: the proxy comes last."""

PROCESS_SERVER_NAMES = ("account", "container", "proxy")
"""The servers that stay in the main process when object workers run."""

RING_SERVERS = ("account", "container", "object")

PART_POWER = 6
DEVICE_NAME = "d1"

PARENT_CHECK_SECONDS = 1.0

# Memcache treats an expiry above 30 days as an absolute Unix time.
_MEMCACHE_RELATIVE_LIMIT = 30 * 24 * 3600
_CACHE_PURGE_SIZE = 10_000

# Syslog severities (RFC 5424) mapped to logging levels.
_SYSLOG_LEVELS = {
    0: logging.CRITICAL,
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.ERROR,
    4: logging.WARNING,
    5: logging.INFO,
    6: logging.INFO,
    7: logging.DEBUG,
}


class InProcessCache:
    """Dictionary stand-in for Swift's memcache client, stored as ``swift.cache``.

    The method signatures follow `swift.common.memcached.MemcacheRing`. Values
    are stored as JSON when ``serialize`` is true, as memcache does, so every
    ``get`` returns a fresh copy that callers may change. It is safe only while
    one proxy process uses it, which is how `SwiftCluster` runs Swift.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float | None, Any]] = {}

    def get(self, key: str, raise_on_error: bool = False) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None

        expires, stored = entry
        if expires is not None and expires <= time.time():
            self._entries.pop(key, None)
            return None

        if isinstance(stored, str):
            return json.loads(stored)
        return stored

    def set(
        self,
        key: str,
        value: Any,
        serialize: bool = True,
        time: float = 0,
        min_compress_len: int = 0,
        raise_on_error: bool = False,
    ) -> None:
        if len(self._entries) >= _CACHE_PURGE_SIZE:
            self._purge_expired()

        if serialize:
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            stored: Any = json.dumps(value)
        elif isinstance(value, bytes):
            stored = value
        else:
            stored = str(value).encode("utf-8")
        self._entries[key] = (_expiry(time), stored)

    def incr(self, key: str, delta: int = 1, time: float = 0) -> int:
        current = self.get(key)
        count = max(0, int(current or 0) + delta)
        self.set(key, count, time=time)
        return count

    def decr(self, key: str, delta: int = 1, time: float = 0) -> int:
        return self.incr(key, -delta, time=time)

    def delete(self, key: str, server_key: str | None = None) -> None:
        self._entries.pop(key, None)

    def set_multi(
        self,
        mapping: dict[str, Any],
        server_key: str,
        serialize: bool = True,
        time: float = 0,
        min_compress_len: int = 0,
    ) -> None:
        for key, value in mapping.items():
            self.set(key, value, serialize=serialize, time=time)

    def get_multi(self, keys: Iterable[str], server_key: str) -> list[Any]:
        return [self.get(key) for key in keys]

    def _purge_expired(self) -> None:
        now = time.time()
        expired = [
            key
            for key, (expires, _) in self._entries.items()
            if expires is not None and expires <= now
        ]
        for key in expired:
            del self._entries[key]

        # Swift sets an expiry on nearly every entry. If entries without one
        # still fill the cache, drop everything rather than grow without bound.
        if len(self._entries) >= _CACHE_PURGE_SIZE:
            self._entries.clear()


def _expiry(ttl: float) -> float | None:
    if ttl <= 0:
        return None
    if ttl > _MEMCACHE_RELATIVE_LIMIT:
        return float(ttl)
    return time.time() + ttl


class _CacheMiddleware:
    def __init__(self, app: Any, cache: InProcessCache) -> None:
        self.app = app
        self.cache = cache

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ["swift.cache"] = self.cache
        return self.app(environ, start_response)


def cache_filter_factory(
    global_conf: dict[str, str], **local_conf: str
) -> Callable[[Any], Any]:
    """Build the paste-deploy filter that puts one `InProcessCache` in requests."""
    cache = InProcessCache()

    def make_filter(app: Any) -> _CacheMiddleware:
        return _CacheMiddleware(app, cache)

    return make_filter


def main(argv: list[str] | None = None) -> int:
    """Run Swift as described by ``RUN_DIR/run.json`` until killed."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lhubic.server.swift_process RUN_DIR", file=sys.stderr)
        return 2

    _configure_logging()
    run_dir = Path(args[0])
    with open(run_dir / RUN_FILE, encoding="utf-8") as run_file:
        layout: dict[str, Any] = json.load(run_file)

    started = time.monotonic()
    _prepare_swift(layout)
    # Fork before any green thread or socket is registered with the hub.
    workers = [_fork_object_worker(layout) for _ in range(layout["object_workers"])]
    _stop_workers_on_sigterm(workers)
    _start_log_forwarder(layout["log_fd"])
    names = SERVER_NAMES if not workers else PROCESS_SERVER_NAMES
    threads = _start_servers(layout, names)
    if workers:
        threads.append(_spawn(_watch_workers, workers))
    logger.info(
        "Swift servers started in %.2f s (pid %d, object workers %s)",
        time.monotonic() - started,
        os.getpid(),
        ", ".join(map(str, workers)) or "none",
    )
    try:
        return _wait_for_first_exit(threads)
    finally:
        _stop_workers(workers)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _prepare_swift(layout: dict[str, Any]) -> None:
    from swift.common import constraints, storage_policy, utils

    # Swift's servers patch sockets, threads and the logging lock first.
    utils.monkey_patch()

    import eventlet.hubs
    from swift.common.wsgi import get_hub

    eventlet.hubs.use_hub(get_hub())

    # Storage policies and [swift-constraints] are read from SWIFT_CONF_FILE,
    # /etc/swift/swift.conf by default. Point it at our own file and reload
    # both before any server module reads them.
    utils.set_swift_dir(layout["swift_dir"])
    storage_policy.reload_storage_policies()
    constraints.reload_constraints()

    utils.disable_fallocate()
    _build_rings(layout)


def _build_rings(layout: dict[str, Any]) -> None:
    from swift.common.ring import RingBuilder

    swift_dir = Path(layout["swift_dir"])
    for name in RING_SERVERS:
        builder = RingBuilder(PART_POWER, 1, 1)
        builder.add_dev(
            {
                "id": 0,
                "region": 1,
                "zone": 1,
                "ip": "127.0.0.1",
                "port": layout["servers"][name]["port"],
                "device": DEVICE_NAME,
                "weight": 100.0,
                "meta": "",
            }
        )
        builder.rebalance()
        builder.get_ring().save(str(swift_dir / f"{name}.ring.gz"))


def _start_log_forwarder(log_fd: int) -> None:
    import socket

    import eventlet
    from eventlet.greenio import GreenSocket

    log_socket = GreenSocket(socket.socket(fileno=log_fd))
    swift_logger = logging.getLogger("swift")

    def forward() -> None:
        while True:
            datagram = log_socket.recv(65536)
            level, message = _parse_syslog(datagram)
            swift_logger.log(level, "%s", message)

    eventlet.spawn_n(forward)


def _parse_syslog(datagram: bytes) -> tuple[int, str]:
    text = datagram.decode("utf-8", "replace").rstrip("\x00\n")
    if text.startswith("<") and ">" in text:
        priority, _, text = text[1:].partition(">")
        if priority.isdigit():
            return _SYSLOG_LEVELS[int(priority) & 7], text
    return logging.INFO, text


def _spawn(function: Callable[..., Any], *args: Any) -> Any:
    import eventlet

    return eventlet.spawn(function, *args)


def _start_servers(layout: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    threads = []
    for name in names:
        server = layout["servers"][name]
        threads.append(_spawn(_serve, name, server["config"], server["fd"]))

    threads.append(_spawn(_run_updater, layout))
    threads.append(_spawn(_watch_parent, layout["parent_pid"]))
    return threads


# Object workers.


def _fork_object_worker(layout: dict[str, Any]) -> int:
    parent_pid = os.getpid()
    pid = os.fork()
    if pid:
        return pid

    status = 1
    try:
        status = _run_object_worker(layout, parent_pid)
    except BaseException:
        logger.exception("object server worker %d failed", os.getpid())
    finally:
        # Never return into the caller's copy of the parent's stack.
        os._exit(status)


def _run_object_worker(layout: dict[str, Any], parent_pid: int) -> int:
    import signal

    import eventlet.hubs
    from swift.common.wsgi import get_hub

    _exit_with_parent(signal.SIGTERM)
    # Start a fresh hub, as Swift's own workers do, so that no epoll state is
    # shared with the parent.
    eventlet.hubs.use_hub(get_hub())

    # This process serves only the object server's socket. The parent reads
    # the log socket.
    os.close(layout["log_fd"])
    for name, server in layout["servers"].items():
        if name != "object":
            os.close(server["fd"])
    server = layout["servers"]["object"]
    threads = [
        _spawn(_serve, "object", server["config"], server["fd"]),
        _spawn(_watch_parent, parent_pid),
    ]
    return _wait_for_first_exit(threads)


def _exit_with_parent(signal_number: int) -> None:
    """Ask Linux to send ``signal_number`` here when the parent process dies."""
    import ctypes
    import ctypes.util

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal_number)
    except (OSError, AttributeError):
        # Without prctl, _watch_parent still notices within a second.
        logger.debug("prctl(PR_SET_PDEATHSIG) is unavailable")


def _watch_workers(workers: list[int]) -> None:
    import eventlet

    while True:
        for pid in workers:
            ended, status = os.waitpid(pid, os.WNOHANG)
            if ended:
                workers.remove(pid)
                logger.error(
                    "object server worker %d exited with status %d; stopping Swift",
                    pid,
                    os.waitstatus_to_exitcode(status),
                )
                return
        eventlet.sleep(PARENT_CHECK_SECONDS)


def _stop_workers(workers: list[int]) -> None:
    import signal

    for pid in workers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            logger.debug("object server worker %d had already exited", pid)
    for pid in workers:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            logger.debug("object server worker %d was already reaped", pid)
    workers.clear()


def _stop_workers_on_sigterm(workers: list[int]) -> None:
    import signal

    def stop(signal_number: int, frame: Any) -> None:
        _stop_workers(workers)
        # End as the signal's default action would have, so the parent gets
        # the same exit status as without workers.
        signal.signal(signal_number, signal.SIG_DFL)
        os.kill(os.getpid(), signal_number)

    if workers:
        signal.signal(signal.SIGTERM, stop)


def _serve(name: str, config_path: str, listen_fd: int) -> None:
    import socket
    import warnings

    from eventlet import wsgi
    from eventlet.greenio import GreenSocket
    from swift.common import constraints
    from swift.common.http_protocol import SwiftHttpProtocol
    from swift.common.wsgi import RestrictedGreenPool, appconfig, loadapp

    # This mirrors swift.common.wsgi.run_server, which cannot be called here
    # because it resets the eventlet hub that the other servers already use.
    conf = appconfig(config_path, name=f"{name}-server")
    app = loadapp(config_path, global_conf={"log_name": f"{name}-server"})

    listener = socket.socket(fileno=listen_fd)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pool = RestrictedGreenPool(size=int(conf.get("max_clients", "1024")))

    # Swift keeps header names as sent, as some clients need; eventlet warns.
    warnings.filterwarnings("ignore", message="capitalize_response_headers is disabled")
    wsgi.server(
        GreenSocket(listener),
        app,
        _NullWsgiLog(),
        custom_pool=pool,
        protocol=SwiftHttpProtocol,
        socket_timeout=float(conf.get("client_timeout") or 60),
        capitalize_response_headers=False,
        url_length_limit=constraints.MAX_REQUEST_LINE,
    )


class _NullWsgiLog:
    """Discards eventlet.wsgi's own access lines; proxy-logging writes those."""

    def write(self, *args: Any) -> None:
        pass


def _run_updater(layout: dict[str, Any]) -> None:
    import eventlet
    from swift.common.utils import readconf
    from swift.container.updater import ContainerUpdater

    interval = float(layout["updater_interval"])
    conf = readconf(layout["servers"]["container"]["config"], "container-updater")
    updater = ContainerUpdater(conf)
    while True:
        eventlet.sleep(interval)
        try:
            updater.run_once()
        except Exception:
            # One failed sweep must not stop later ones; Swift's own daemon
            # logs and goes on the same way.
            logger.exception("container updater sweep failed")


def _watch_parent(parent_pid: int) -> None:
    import eventlet

    # A parent killed without calling stop() leaves this process reparented;
    # exit then instead of serving forever.
    while os.getppid() == parent_pid:
        eventlet.sleep(PARENT_CHECK_SECONDS)
    logger.warning("parent process %d exited; stopping Swift", parent_pid)


def _wait_for_first_exit(threads: list[Any]) -> int:
    from eventlet.event import Event

    finished: Event = Event()

    def on_exit(thread: Any) -> None:
        if not finished.ready():
            finished.send(thread)

    for thread in threads:
        thread.link(on_exit)

    first = finished.wait()
    try:
        first.wait()
    except BaseException:
        logger.exception("a Swift green thread failed; stopping")
        return 1
    logger.info("a Swift green thread returned; stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
