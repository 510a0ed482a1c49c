"""Measure lhubic against the swift command and rclone on the local service.

One command starts the local hubiC service (Swift's storage on /dev/shm when it
can hold Swift's extended attributes), makes the test data, and runs each piece
of work with each client in its own process:

- one 1 GiB file up, then down (each client downloads the object it uploaded);
- 2,000 files of 4 KiB to 256 KiB up, then down;
- a listing of a container of 20,000 objects.

All three clients get the same storage URL and token, the same data, and the
same number of files at once on the rows with many files. Each round runs
every client once on every row, starting with a different client each round,
after one warm-up round whose results are dropped. The table shows the median
over the rounds of each client's wall time, peak resident memory
(``ru_maxrss`` from ``wait4``) and CPU time, and the ratio of lhubic's wall
time to each peer's. Missed targets are listed below it.

    .venv/bin/python benchmarks/bench.py --rounds 9 --markdown docs/benchmarks.md

``--quick`` uses small sizes and one round without warm-up, for a smoke run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from lhubic import Hubic
from lhubic.server import HubicServer
from lhubic.server.swift_launcher import default_data_parent

MiB = 1024 * 1024
GiB = 1024 * MiB

CLIENTS = ("lhubic", "swift", "rclone")
PEERS = ("swift", "rclone")
BIN = Path(sys.executable).parent
CLIENT_SCRIPT = Path(__file__).with_name("lhubic_client.py")

# Targets: lhubic's wall time at most the peer's on every row, and its peak
# memory (in KiB, like ru_maxrss) below this on the rows of the large file.
MAX_RATIO = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BIG_FILE_RSS_LIMIT_KIB = 100 * 1024

MARK_START = "<!-- bench-results:start -->"
MARK_END = "<!-- bench-results:end -->"


@dataclass(frozen=True)
class Sizes:
    """How much data each row moves."""

    big_file: int
    small_files: int
    small_min: int
    small_max: int
    listing_objects: int

    def describe(self) -> dict[str, str]:
        big = _size_label(self.big_file)
        small = (
            f"{self.small_files:,} files of {_size_label(self.small_min)} to "
            f"{_size_label(self.small_max)}"
        )
        return {
            "big-up": f"{big} file up",
            "big-down": f"{big} file down",
            "small-up": f"{small} up",
            "small-down": f"{small} down",
            "list": f"list {self.listing_objects:,} objects",
        }


FULL = Sizes(GiB, 2000, 4 * 1024, 256 * 1024, 20_000)
QUICK = Sizes(8 * MiB, 40, 4 * 1024, 64 * 1024, 300)
ROWS = ("big-up", "big-down", "small-up", "small-down", "list")
TREE_ROWS = ("small-up", "small-down")


@dataclass
class Result:
    """One client's wall time, peak memory and CPU time on one row of one round,
    and the CPU time Swift's processes spent meanwhile."""

    seconds: float
    peak_rss_kib: int
    cpu_seconds: float
    server_cpu_seconds: float = 0.0


@dataclass
class Bench:
    """The running service, the data, and the commands of each client."""

    sizes: Sizes
    workers: int
    work_dir: Path
    hubic: Hubic
    storage_url: str
    token: str
    token_store: Path
    client_env: dict[str, str]
    swift_pid: int
    results: dict[tuple[str, str], list[Result]] = field(default_factory=dict)
    big_md5: str = ""
    small_bytes: int = 0

    @property
    def big_path(self) -> Path:
        return self.work_dir / "data" / "big.bin"

    @property
    def small_dir(self) -> Path:
        return self.work_dir / "data" / "small"

    def command(self, client: str, row: str, action: list[str]) -> list[str]:
        """Return the command line that runs ``action`` with ``client``.

        ``--workers`` sets how many files move at once, so only the rows with
        many files pass it. For one large file each client keeps its own
        default: one stream up and four ranged streams down for rclone, one
        stream both ways for the swift command, and four for lhubic.
        """
        if client == "lhubic":
            workers = ["--workers", str(self.workers)] if row in TREE_ROWS else []
            return [
                sys.executable,
                str(CLIENT_SCRIPT),
                "--token-store",
                str(self.token_store),
                *workers,
                *action,
            ]
        if client == "swift":
            return [str(BIN / "swift"), *action]
        return [
            str(BIN / "rclone"),
            "--config",
            str(self.work_dir / "rclone.conf"),
            "--cache-dir",
            str(self.work_dir / "rclone-cache"),
            *(
                ["--transfers", str(self.workers), "--checkers", str(self.workers)]
                if row in TREE_ROWS
                else []
            ),
            *action,
        ]


# Running clients.


# Linux counts the memory a process had before exec in its ru_maxrss, so a
# client forked straight from this process would inherit this process's size.
# A fresh small interpreter forks and times the client instead, and prints the
# client's wall time, peak memory and CPU time on its last stderr line.
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
cpu = usage.ru_utime + usage.ru_stime
sys.stderr.write("\\nbench-result %f %d %f\\n" % (seconds, usage.ru_maxrss, cpu))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(
    command: list[str], env: dict[str, str], cwd: Path, stdout_path: Path
) -> Result:
    """Run a client to completion; return its wall time, peak memory and CPU."""
    error_path = stdout_path.with_suffix(".err")
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, *command]
    with open(stdout_path, "wb") as stdout, open(error_path, "wb") as stderr:
        returncode = subprocess.call(
            launcher, env=env, cwd=cwd, stdout=stdout, stderr=stderr
        )

    lines = error_path.read_text(errors="replace").splitlines()
    if returncode != 0 or not lines or not lines[-1].startswith("bench-result "):
        tail = "\n".join(lines[-20:])
        raise RuntimeError(f"{command[0]} exited with {returncode}: {tail}")
    _, seconds, peak_rss_kib, cpu_seconds = lines[-1].split()
    return Result(float(seconds), int(peak_rss_kib), float(cpu_seconds))


def actions(bench: Bench, client: str, row: str, round_number: int) -> list[str]:
    """Return the arguments that make ``client`` do the work of ``row``."""
    big_container = f"big-{client}"
    small_container = f"small-{client}-{round_number}"
    out = bench.work_dir / "out" / client
    if row == "big-up":
        if client == "lhubic":
            return ["upload-file", big_container, "big.bin", str(bench.big_path)]
        if client == "swift":
            return [
                "upload",
                "--object-name",
                "big.bin",
                big_container,
                str(bench.big_path),
            ]
        return ["copyto", str(bench.big_path), f"bench:{big_container}/big.bin"]

    if row == "big-down":
        target = str(out / "big.bin")
        if client == "lhubic":
            return ["download-file", big_container, "big.bin", target]
        if client == "swift":
            return ["download", big_container, "big.bin", "--output", target]
        return ["copyto", f"bench:{big_container}/big.bin", target]

    if row == "small-up":
        if client == "lhubic":
            return [
                "upload-tree",
                str(bench.small_dir),
                small_container,
                "--prefix",
                "small/",
            ]
        if client == "swift":
            threads = str(bench.workers)
            return ["upload", "--object-threads", threads, small_container, "small"]
        return ["copy", str(bench.small_dir), f"bench:{small_container}/small"]

    if row == "small-down":
        if client == "lhubic":
            return ["download-tree", small_container, str(out)]
        if client == "swift":
            threads = str(bench.workers)
            return [
                "download",
                "--object-threads",
                threads,
                "--output-dir",
                str(out),
                small_container,
            ]
        return ["copy", f"bench:{small_container}", str(out)]

    if client == "lhubic":
        return ["list", "listing"]
    if client == "swift":
        return ["list", "listing"]
    return ["lsf", "bench:listing"]


# Preparing and checking each step, outside the measured time.


def prepare(bench: Bench, client: str, row: str) -> None:
    out = bench.work_dir / "out" / client
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if row == "big-up":
        container = f"big-{client}"
        bench.hubic.put_container(container)
        try:
            bench.hubic.delete_object(container, "big.bin")
        except Exception as error:
            if getattr(error, "http_status", None) != 404:
                raise


def check(bench: Bench, client: str, row: str, round_number: int, stdout: Path) -> None:
    """Raise if the client's work did not produce the expected result."""
    out = bench.work_dir / "out" / client
    if row == "big-up":
        headers = bench.hubic.head_object(f"big-{client}", "big.bin")
        stored = int(headers["content-length"])
        _expect(stored, bench.sizes.big_file, "stored bytes", client, row)
    elif row == "big-down":
        downloaded = _file_md5(out / "big.bin")
        _expect(downloaded, bench.big_md5, "MD5 of the download", client, row)
    elif row == "small-up":
        _, listing = bench.hubic.get_container(
            f"small-{client}-{round_number}", full_listing=True
        )
        _expect(len(listing), bench.sizes.small_files, "stored files", client, row)
    elif row == "small-down":
        files = [path for path in out.rglob("*") if path.is_file()]
        total = sum(path.stat().st_size for path in files)
        _expect(len(files), bench.sizes.small_files, "downloaded files", client, row)
        _expect(total, bench.small_bytes, "downloaded bytes", client, row)
    else:
        lines = stdout.read_bytes().count(b"\n")
        _expect(lines, bench.sizes.listing_objects, "listed names", client, row)


def _expect(actual: object, expected: object, what: str, client: str, row: str) -> None:
    if actual != expected:
        raise RuntimeError(
            f"{client} failed the check after {row}: {what} {actual!r}, "
            f"expected {expected!r}"
        )


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


# Data.


def make_data(bench: Bench, seed: int) -> None:
    bench.small_dir.mkdir(parents=True)
    digest = hashlib.md5(usedforsecurity=False)
    with open(bench.big_path, "wb") as handle:
        remaining = bench.sizes.big_file
        while remaining:
            chunk = os.urandom(min(MiB, remaining))
            digest.update(chunk)
            handle.write(chunk)
            remaining -= len(chunk)
    bench.big_md5 = digest.hexdigest()

    rng = random.Random(seed)
    total = 0
    for index in range(bench.sizes.small_files):
        folder = bench.small_dir / f"folder-{index % 20:02d}"
        folder.mkdir(exist_ok=True)
        size = rng.randint(bench.sizes.small_min, bench.sizes.small_max)
        (folder / f"file-{index:05d}.bin").write_bytes(rng.randbytes(size))
        total += size
    bench.small_bytes = total


def fill_listing(bench: Bench) -> None:
    bench.hubic.put_container("listing")

    def put(index: int) -> None:
        bench.hubic.put_object("listing", f"entry-{index:06d}", b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(bench.sizes.listing_objects)))


# The table.


def median_result(results: list[Result]) -> Result:
    return Result(
        statistics.median(result.seconds for result in results),
        int(statistics.median(result.peak_rss_kib for result in results)),
        statistics.median(result.cpu_seconds for result in results),
        statistics.median(result.server_cpu_seconds for result in results),
    )


def render_table(bench: Bench, rounds: int, warm_up_rounds: int = 0) -> str:
    labels = bench.sizes.describe()
    lines = [
        "| work | lhubic | swift | rclone | lhubic/swift | lhubic/rclone |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        medians = {
            client: median_result(bench.results[(client, row)]) for client in CLIENTS
        }
        cells = [
            f"{medians[client].seconds:.2f} s, "
            f"{medians[client].peak_rss_kib / 1024:.0f} MiB, "
            f"{medians[client].cpu_seconds:.1f} s CPU"
            for client in CLIENTS
        ]
        ratios = [
            f"{medians['lhubic'].seconds / medians[peer].seconds:.2f}" for peer in PEERS
        ]
        lines.append(f"| {labels[row]} | " + " | ".join(cells + ratios) + " |")
    lines.append("")
    missed = missed_targets(bench)
    lines.append(
        "Missed targets: " + "; ".join(missed) + "."
        if missed
        else "Every target was met."
    )
    lines.append("")
    warm_up = (
        f", after {warm_up_rounds} unmeasured warm-up "
        f"round{'s' if warm_up_rounds != 1 else ''}"
        if warm_up_rounds
        else ""
    )
    lines.append(
        f"Median of {rounds} round{'s' if rounds != 1 else ''}{warm_up}. Each cell "
        "is the wall time, peak resident memory and CPU time of the client process."
    )
    lines.extend(["", *render_server_table(bench)])
    return "\n".join(lines)


def render_server_table(bench: Bench) -> list[str]:
    """Return the table of the CPU time Swift spent while each client ran."""
    labels = bench.sizes.describe()
    lines = [
        "CPU time of Swift's processes (the proxy, account and container "
        "process and its object workers) while each client ran, median:",
        "",
        "| work | lhubic | swift | rclone |",
        "|---|---|---|---|",
    ]
    for row in ROWS:
        cells = [
            f"{median_result(bench.results[(client, row)]).server_cpu_seconds:.1f} s"
            for client in CLIENTS
        ]
        lines.append(f"| {labels[row]} | " + " | ".join(cells) + " |")
    return lines


def missed_targets(bench: Bench) -> list[str]:
    """Describe each row where lhubic is slower than a peer or uses too much memory."""
    labels = bench.sizes.describe()
    missed = []
    for row in ROWS:
        lhubic = median_result(bench.results[("lhubic", row)])
        for peer in PEERS:
            ratio = lhubic.seconds / median_result(bench.results[(peer, row)]).seconds
            if ratio > MAX_RATIO:
                missed.append(f"{labels[row]}, lhubic/{peer} {ratio:.2f}")
        if row.startswith("big-") and lhubic.peak_rss_kib >= BIG_FILE_RSS_LIMIT_KIB:
            memory = lhubic.peak_rss_kib / 1024
            missed.append(f"{labels[row]}, lhubic peak memory {memory:.0f} MiB")
    return missed


def environment_notes(workers: int, load: tuple[float, float]) -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rclone = subprocess.run(
        [str(BIN / "rclone"), "version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return (
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores ({cpu}), "
        f"Linux {platform.release()}, Python {platform.python_version()}; "
        f"lhubic {metadata.version('lhubic')}, "
        f"python-swiftclient {metadata.version('python-swiftclient')}, "
        f"{rclone[0] if rclone else 'rclone'}, Swift {metadata.version('swift')}; "
        f"{workers} files at once on the rows with many files. One-minute load "
        f"average {load[0]:.1f} when measuring started and {load[1]:.1f} when it "
        "ended; other processes on the machine slow the clients unevenly."
    )


def write_markdown(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else f"{MARK_START}\n{MARK_END}\n"
    if MARK_START not in text or MARK_END not in text:
        text += f"\n{MARK_START}\n{MARK_END}\n"
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    path.write_text(f"{head}{MARK_START}\n{section}\n{MARK_END}{tail}")


# Main.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure lhubic against the swift command and rclone."
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds to take the median of"
    )
    parser.add_argument(
        "--warm-up-rounds",
        type=int,
        default=1,
        help="unmeasured rounds before the measured ones (default 1, none with "
        "--quick)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=10,
        help="files moved at once on the rows with many files, for every client",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one round, for a smoke run",
    )
    parser.add_argument(
        "--markdown", type=Path, help="update the results section of this file"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the file sizes")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; return the exit code."""
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = 1 if args.quick else args.rounds
    warm_up_rounds = 0 if args.quick else args.warm_up_rounds
    if rounds < 1 or args.workers < 1:
        print("bench: --rounds and --workers must be at least 1", file=sys.stderr)
        return 2
    if warm_up_rounds < 0:
        print("bench: --warm-up-rounds must be 0 or more", file=sys.stderr)
        return 2

    parent = default_data_parent()
    work_dir = Path(tempfile.mkdtemp(prefix="lhubic-bench-", dir=parent))
    try:
        with HubicServer(data_dir=work_dir / "service") as server:
            bench = start(server, sizes, args.workers, work_dir)
            _log(f"data and service ready in {work_dir}")
            make_data(bench, args.seed)
            fill_listing(bench)
            _log("data uploaded; measuring")
            load_before = os.getloadavg()[0]
            measure(bench, rounds, warm_up_rounds)
            load = (load_before, os.getloadavg()[0])
            table = render_table(bench, rounds, warm_up_rounds)
            bench.hubic.close()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    section = f"{environment_notes(args.workers, load)}\n\n{table}"
    print(section)
    if args.markdown is not None:
        write_markdown(args.markdown, section)
    return 0


def log_in(
    server: HubicServer, name: str, token_store: Path | None = None
) -> tuple[Hubic, str, str]:
    """Register an application and a user named after ``name``; log in as them.

    Return the connection, the client id and the client secret. The password
    and the secret are random. With ``token_store``, the tokens are saved
    there for client processes to reuse.
    """
    client_id, secret = f"api_hubic_{name}", os.urandom(16).hex()
    login, password = f"{name}@example.com", os.urandom(16).hex()
    redirect_uri = f"http://127.0.0.1/{name}/callback"
    server.add_app(client_id, secret, redirect_uri)
    server.add_user(login, password, quota=1024 * GiB)
    hubic = Hubic(
        client_id,
        secret,
        login,
        password,
        api_url=server.api_url,
        redirect_uri=redirect_uri,
        scope="credentials.r",
        token_store=token_store,
    )
    hubic.get_auth()
    return hubic, client_id, secret


def start(server: HubicServer, sizes: Sizes, workers: int, work_dir: Path) -> Bench:
    token_store = work_dir / "tokens.json"
    hubic, client_id, secret = log_in(server, "bench", token_store)
    storage_url, token = hubic.get_auth()
    env = dict(os.environ)
    env.update(
        {
            "HUBIC_CLIENT_ID": client_id,
            "HUBIC_CLIENT_SECRET": secret,
            "HUBIC_API_URL": server.api_url,
            "OS_STORAGE_URL": storage_url,
            "OS_AUTH_TOKEN": token,
            "RCLONE_CONFIG_BENCH_TYPE": "swift",
            "RCLONE_CONFIG_BENCH_STORAGE_URL": storage_url,
            "RCLONE_CONFIG_BENCH_AUTH_TOKEN": token,
        }
    )
    for name in ("HUBIC_USERNAME", "HUBIC_PASSWORD", "HUBIC_REFRESH_TOKEN"):
        env.pop(name, None)
    warm_up_bytecode(env, work_dir)
    swift_pid = server.cluster.pid
    if swift_pid is None:
        raise RuntimeError("the local service's Swift is not running")
    return Bench(
        sizes, workers, work_dir, hubic, storage_url, token, token_store, env, swift_pid
    )


def warm_up_bytecode(env: dict[str, str], work_dir: Path) -> None:
    """Let both Python clients start from cached bytecode, as installed ones do.

    With PYTHONDONTWRITEBYTECODE set, lhubic, run from its source tree, would
    be compiled on every start while python-swiftclient's installed bytecode
    was used. The cache goes to a folder of the run instead.
    """
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work_dir / "pycache")
    modules = (
        "import argparse, lhubic, lhubic.bulk, swiftclient.shell, swiftclient.service"
    )
    subprocess.run([sys.executable, "-c", modules], env=env, check=True)


def measure(bench: Bench, rounds: int, warm_up_rounds: int = 0) -> None:
    """Run every client on every row, ``rounds`` times after ``warm_up_rounds``.

    Results of the warm-up rounds are checked but not kept, because start-up
    costs of the machine fall on the first rounds whichever client runs. In a
    five-round run on a two-core virtual machine, Swift spent 4.9 to 8.7 s of
    CPU on five of the six 1 GiB uploads of the first two rounds. In the last
    three rounds it spent 2.6 to 4.2 s on each.
    """
    for round_number in range(warm_up_rounds + rounds):
        order = CLIENTS[round_number % 3 :] + CLIENTS[: round_number % 3]
        measured = round_number >= warm_up_rounds
        label = (
            f"round {round_number - warm_up_rounds + 1}"
            if measured
            else f"warm-up round {round_number + 1}"
        )
        for row in ROWS:
            for client in order:
                result = run_row(bench, client, row, round_number)
                if measured:
                    bench.results.setdefault((client, row), []).append(result)
                _log(
                    f"{label} {row} {client}: "
                    f"{result.seconds:.2f} s, {result.peak_rss_kib / 1024:.0f} MiB, "
                    f"{result.cpu_seconds:.2f} s CPU, "
                    f"Swift {result.server_cpu_seconds:.2f} s CPU"
                )


def run_row(bench: Bench, client: str, row: str, round_number: int) -> Result:
    prepare(bench, client, row)
    stdout = bench.work_dir / f"{client}-{row}.out"
    command = bench.command(client, row, actions(bench, client, row, round_number))
    swift_before = swift_cpu_seconds(bench.swift_pid)
    result = run_measured(command, bench.client_env, bench.small_dir.parent, stdout)
    # Read before the checks, whose requests would count too.
    result.server_cpu_seconds = swift_cpu_seconds(bench.swift_pid) - swift_before
    check(bench, client, row, round_number, stdout)
    return result


def swift_cpu_seconds(pid: int) -> float:
    """Return the CPU time of Swift's process ``pid`` and its object workers."""
    total = 0.0
    for process in (pid, *_child_pids(pid)):
        try:
            stat = Path(f"/proc/{process}/stat").read_text(encoding="ascii")
        except FileNotFoundError:
            continue
        # Fields 14 and 15 of /proc/PID/stat: user and system time in ticks.
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def _child_pids(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def _size_label(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
