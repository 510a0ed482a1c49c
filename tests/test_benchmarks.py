"""Smoke tests of the benchmark scripts: bench.py's quick mode runs all three
clients, and request_cost.py a short run of its three HTTP stacks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
BIN = Path(sys.executable).parent
COST = BENCH.with_name("request_cost.py")


def _run(
    script: Path, *arguments: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.skipif(
    not (BIN / "swift").exists() or not (BIN / "rclone").exists(),
    reason="the swift command and rclone come with the bench extra: "
    "pip install -e '.[bench]'",
)
def test_bench_quick_run(tmp_path: Path) -> None:
    markdown = tmp_path / "benchmarks.md"
    markdown.write_text(
        "# Benchmarks\n\n<!-- bench-results:start -->\nold\n"
        "<!-- bench-results:end -->\n\nKept.\n"
    )

    completed = _run(BENCH, "--quick", "--markdown", str(markdown), timeout=600)

    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    client_rows, swift_rows = rows[:6], rows[6:]
    assert len(client_rows) == 1 + 5
    for row in client_rows[1:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 6, row
        assert all(float(ratio) > 0 for ratio in cells[4:]), row
    assert swift_rows[0] == "| work | lhubic | swift | rclone |"
    assert len(swift_rows) == 1 + 5
    swift_seconds = {}
    for row in swift_rows[1:]:
        label, *cells = [cell.strip() for cell in row.strip("|").split("|")]
        swift_seconds[label] = [float(cell.removesuffix(" s")) for cell in cells]
        assert len(cells) == 3, row
        assert min(swift_seconds[label]) >= 0, row
    # Storing 40 objects costs Swift tens of milliseconds whatever the client,
    # so a table of zeros means its CPU time was not read.
    assert sum(swift_seconds["40 files of 4 KiB to 64 KiB up"]) > 0
    text = markdown.read_text()
    assert "old" not in text
    assert "| 8 MiB file up |" in text
    assert text.startswith("# Benchmarks\n")
    assert text.endswith("\n\nKept.\n")


def test_request_cost_quick_run() -> None:
    completed = _run(COST, "--rounds", "1", "--requests", "20", timeout=300)

    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == "| stack | ms per PUT | ratio to http.client |"
    costs = {}
    for row in rows[1:]:
        stack, milliseconds, ratio = [
            cell.strip() for cell in row.strip("|").split("|")
        ]
        costs[stack] = (float(milliseconds), float(ratio))
    assert set(costs) == {"lhubic", "swiftclient", "http.client"}
    assert all(milliseconds > 0 for milliseconds, _ in costs.values())
    assert costs["http.client"][1] == 1.0


@pytest.mark.parametrize("arguments", [["--rounds", "0"], ["--requests", "0"]])
def test_request_cost_rejects_bad_counts(arguments: list[str]) -> None:
    completed = _run(COST, *arguments, timeout=60)

    assert completed.returncode == 2
    assert "must be at least 1" in completed.stderr


def test_bench_rejects_negative_warm_up() -> None:
    completed = _run(BENCH, "--warm-up-rounds", "-1", timeout=60)

    assert completed.returncode == 2
    assert "--warm-up-rounds must be 0 or more" in completed.stderr


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # The dataclasses of bench.py look their module up while they are built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_warm_up_rounds_run_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load_bench()
    runs: list[tuple[str, str, int]] = []

    def run_row(state: Any, client: str, row: str, round_number: int) -> Any:
        runs.append((client, row, round_number))
        return bench.Result(float(round_number), 1, 0.0)

    monkeypatch.setattr(bench, "run_row", run_row)
    state = SimpleNamespace(results={})

    bench.measure(state, 2, 1)

    assert len(runs) == 3 * len(bench.ROWS) * len(bench.CLIENTS)
    assert {number for _, _, number in runs} == {0, 1, 2}
    assert len(state.results) == len(bench.ROWS) * len(bench.CLIENTS)
    kept_seconds = {
        result.seconds for results in state.results.values() for result in results
    }
    assert kept_seconds == {1.0, 2.0}
    assert all(len(results) == 2 for results in state.results.values())
