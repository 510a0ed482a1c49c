"""The progress line and the summary that ``lhubic upload`` and ``download`` print.

`ProgressLine` is a `lhubic.ProgressCallback` that redraws one line of a
terminal in place. `format_progress` and `format_summary` build the text and
can be called with plain numbers. Sizes use binary units (1 KiB = 1,024 bytes).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from typing import TextIO

from .bulk import FileResult, FileStatus

__all__ = [
    "ProgressLine",
    "format_progress",
    "format_size",
    "format_summary",
]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")

# The minimum seconds between two redraws, because a terminal flickers and
# slows down when every chunk of a transfer rewrites the line.
_DEFAULT_MIN_INTERVAL = 0.1


def format_size(size: float) -> str:
    """Format a byte count as ``"512 B"``, ``"1.5 KiB"``, ``"12.3 MiB"`` and so on."""
    if size < 1024:
        return f"{int(size)} B"

    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable: the last unit returns")


def format_progress(
    bytes_done: int,
    bytes_total: int,
    files_done: int,
    files_total: int,
    seconds: float,
) -> str:
    """Return the progress text for the numbers that a progress callback gets.

    For example: ``3.0 MiB of 6.0 MiB (50%), 1 of 2 files, 1.5 MiB/s``. The
    percentage is left out while ``bytes_total`` is 0, and the rate is
    ``bytes_done`` over ``seconds`` (0 B/s before any time has passed).
    """
    text = f"{format_size(bytes_done)} of {format_size(bytes_total)}"
    if bytes_total > 0:
        percent = min(100, bytes_done * 100 // bytes_total)
        text += f" ({percent}%)"

    rate = bytes_done / seconds if seconds > 0 else 0.0
    return f"{text}, {files_done} of {files_total} files, {format_size(rate)}/s"


def format_summary(verb: str, results: Iterable[FileResult], seconds: float) -> str:
    """Return the closing line: files moved, skipped and failed, bytes and seconds.

    ``verb`` is "uploaded" or "downloaded". The byte count covers the files
    that moved, not the skipped ones.
    """
    moved = skipped = failed = 0
    moved_bytes = 0
    for result in results:
        if result.status is FileStatus.SKIPPED:
            skipped += 1
        elif result.status is FileStatus.FAILED:
            failed += 1
        else:
            moved += 1
            moved_bytes += result.size
    return (
        f"{verb} {moved}, skipped {skipped}, failed {failed}; "
        f"{format_size(moved_bytes)} in {seconds:.1f} s"
    )


class ProgressLine:
    """A progress callback that redraws one line of ``stream`` in place.

    Each drawing starts with a carriage return and pads over the previous
    text, cut to the terminal's width so that it never wraps. It redraws at
    most once per ``min_interval`` seconds, and always for the last file.
    Call `finish` once the transfer ends, to move to the next line.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        min_interval: float = _DEFAULT_MIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._min_interval = min_interval
        self._clock = clock
        self._started = clock()
        self._last_draw: float | None = None
        self._width = 0

    def __call__(
        self, bytes_done: int, bytes_total: int, files_done: int, files_total: int
    ) -> None:
        now = self._clock()
        last_file = files_done >= files_total
        if (
            self._last_draw is not None
            and now - self._last_draw < self._min_interval
            and not last_file
        ):
            return

        self._last_draw = now
        text = format_progress(
            bytes_done, bytes_total, files_done, files_total, now - self._started
        )
        self._draw(text)

    def finish(self) -> None:
        """End the line, if anything was drawn, so later output starts below it."""
        if self._last_draw is not None:
            self._stream.write("\n")
            self._stream.flush()
            self._last_draw = None
            self._width = 0

    def _draw(self, text: str) -> None:
        columns = self._columns()
        text = text[: max(columns - 1, 1)]
        padding = " " * max(self._width - len(text), 0)
        self._stream.write(f"\r{text}{padding}")
        self._stream.flush()
        self._width = len(text)

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            # Not a terminal, or a stream without a file descriptor.
            columns = 0
        if columns <= 0:
            # A pseudo-terminal whose size was never set reports 0 columns.
            columns = shutil.get_terminal_size().columns
        return columns
