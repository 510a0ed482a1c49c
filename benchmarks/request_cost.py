"""Measure the client CPU time of one small PUT through three HTTP stacks.

Many small files cost a client mostly per request, so this script starts the
local service and stores the same small object many times through:

- lhubic: `lhubic.Hubic.put_object`, with its checks;
- swiftclient: python-swiftclient's `Connection.put_object` (requests and
  urllib3 underneath), with the same storage URL and token;
- http.client: the standard library's `http.client.HTTPConnection`, which
  sends the request line, the headers and the body and reads the status.

The three take turns within each round, and the script prints the median CPU
time per request of each, and its ratio to http.client. Usage:

    .venv/bin/python benchmarks/request_cost.py --rounds 5 --requests 1000
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench import log_in
from swiftclient.client import Connection

from lhubic.server import HubicServer
from lhubic.server.swift_launcher import default_data_parent

STACKS = ("lhubic", "swiftclient", "http.client")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--requests", type=int, default=1000, help="PUTs per stack and round"
    )
    parser.add_argument(
        "--size", type=int, default=4096, help="object size in bytes (default 4096)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1 or args.requests < 1 or args.size < 0:
        print(
            "request_cost: --rounds and --requests must be at least 1, --size 0 "
            "or more",
            file=sys.stderr,
        )
        return 2

    work_dir = Path(tempfile.mkdtemp(prefix="lhubic-cost-", dir=default_data_parent()))
    try:
        with HubicServer(data_dir=work_dir / "service") as server:
            senders = start(server, os.urandom(args.size))
            seconds = measure(senders, args.rounds, args.requests)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    print(render(seconds, args))
    return 0


def start(server: HubicServer, body: bytes) -> dict[str, Callable[[str], None]]:
    """Log in once and return a function per stack that stores ``body``."""
    hubic, _, _ = log_in(server, "cost")
    storage_url, token = hubic.get_auth()
    hubic.put_container("cost")
    swift = Connection(preauthurl=storage_url, preauthtoken=token, retries=0)

    parts = urlsplit(storage_url)
    raw = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    headers = {"X-Auth-Token": token, "Content-Length": str(len(body))}

    def put_raw(name: str) -> None:
        raw.request("PUT", f"{parts.path}/cost/{name}", body=body, headers=headers)
        response = raw.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"http.client PUT got {response.status}")

    return {
        "lhubic": lambda name: hubic.put_object("cost", name, body),
        "swiftclient": lambda name: swift.put_object("cost", name, body),
        "http.client": put_raw,
    }


def measure(
    senders: dict[str, Callable[[str], None]], rounds: int, requests: int
) -> dict[str, list[float]]:
    """Return the CPU seconds per request of each stack, one value per round."""
    seconds: dict[str, list[float]] = {stack: [] for stack in STACKS}
    for round_number in range(rounds):
        order = STACKS[round_number % 3 :] + STACKS[: round_number % 3]
        for stack in order:
            send = senders[stack]
            started = time.process_time()
            for index in range(requests):
                send(f"{stack}-{index:06d}")
            seconds[stack].append((time.process_time() - started) / requests)
    return seconds


def render(seconds: dict[str, list[float]], args: argparse.Namespace) -> str:
    base = statistics.median(seconds["http.client"])
    lines = [
        f"CPU time per PUT of {args.size} bytes, median of {args.rounds} rounds "
        f"of {args.requests} requests:",
        "",
        "| stack | ms per PUT | ratio to http.client |",
        "|---|---|---|",
    ]
    for stack in STACKS:
        median = statistics.median(seconds[stack])
        lines.append(f"| {stack} | {median * 1000:.3f} | {median / base:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
