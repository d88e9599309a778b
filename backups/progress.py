"""Progress of long jobs on a terminal: a bar when stderr is a TTY, else percent lines."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Report a job's percent done to a stream, at most one line per percent point."""

    def __init__(self, label: str, *, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._last_shown = -1

    def update(self, percent: float, note: str = "") -> None:
        percent = max(0.0, min(100.0, percent))
        if int(percent) == self._last_shown and percent < 100:
            return
        self._last_shown = int(percent)
        elapsed = time.monotonic() - self.started
        tty = getattr(self.stream, "isatty", lambda: False)()
        if tty:
            done = int(self.width * percent / 100)
            bar = "#" * done + "-" * (self.width - done)
            self.stream.write(f"\r{self.label} [{bar}] {percent:5.1f}% {elapsed:6.1f}s {note}")
            if percent >= 100:
                self.stream.write("\n")
        else:
            self.stream.write(
                f"{self.label}: {percent:5.1f}% ({elapsed:.1f}s) {note}\n".rstrip() + "\n"
            )
        self.stream.flush()

    def step(self, message: str) -> None:
        """Report a named stage of a job that has no percentage of its own."""
        elapsed = time.monotonic() - self.started
        self.stream.write(f"{self.label}: {message} ({elapsed:.1f}s)\n")
        self.stream.flush()
