"""Progress of a long evaluation on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO, TypeAlias

# Called with (rows classified so far, rows to classify in all).
ProgressCallback: TypeAlias = Callable[[int, int], None]


class ProgressBar:
    """Progress on stderr: one line redrawn in place on a terminal, else a line every 10%.

    Use an instance as evaluate's progress callback. Nothing is written when the total is
    below min_total, as a short run needs no progress report.
    """

    def __init__(
        self,
        *,
        label: str = "classifying",
        stream: TextIO | None = None,
        min_total: int = 100,
        width: int = 30,
    ) -> None:
        self._label = label
        self._stream = stream
        self._min_total = min_total
        self._width = width
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = 0
        self._finished = False

    def _out(self) -> TextIO:
        # Resolved at each call, so a redirected sys.stderr (pytest's capture, say) is honoured.
        return self._stream if self._stream is not None else sys.stderr

    def _is_terminal(self) -> bool:
        try:
            return self._out().isatty()
        except ValueError:  # a closed stream
            return False

    def __call__(self, done: int, total: int) -> None:
        """Report that done of total rows are classified."""
        if total < self._min_total or total <= 0 or self._finished:
            return
        done = min(done, total)
        stream = self._out()
        if self._is_terminal():
            now = time.monotonic()
            if done < total and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            stream.write("\r" + self._bar(done, total, now))
            if done == total:
                stream.write("\n")
                self._finished = True
        else:
            decile = done * 10 // total
            if decile <= self._last_decile:
                return
            self._last_decile = decile
            stream.write(f"{self._label}: {decile * 10}% ({done}/{total})\n")
            self._finished = done == total
        stream.flush()

    def _bar(self, done: int, total: int, now: float) -> str:
        filled = self._width * done // total
        bar = "#" * filled + "." * (self._width - filled)
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f" eta {_duration((total - done) / rate)}" if rate > 0 and done < total else ""
        speed = f" {rate:.1f}/s" if rate > 0 else ""
        return f"{self._label} [{bar}] {100 * done // total:3d}% {done}/{total}{speed}{eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
