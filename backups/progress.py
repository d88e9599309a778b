"""Progress of long backup jobs: a tqdm bar on a terminal, nothing in a log."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Show a job's percent done (the jobs' `on_progress` callback) and its named stages.

    The bar is drawn only when the stream is a terminal (tqdm's `disable=None`): CI and cron logs
    get no progress lines, only the stages passed to `step`.
    """

    def __init__(self, label: str, *, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._bar = tqdm(
            total=100,
            desc=label,
            file=self.stream,
            disable=None,
            bar_format="{desc}: {percentage:5.1f}%|{bar}| {elapsed}{postfix}",
        )
        self.label = label

    def update(self, percent: float, note: str = "") -> None:
        percent = max(0.0, min(100.0, percent))
        if note:
            self._bar.set_postfix_str(note, refresh=False)
        if percent > self._bar.n:  # pgBackRest may repeat a figure; a bar never goes back
            self._bar.update(percent - self._bar.n)
        if percent >= 100:
            self._bar.close()

    def step(self, message: str) -> None:
        """Report a named stage of a job that has no percentage of its own."""
        elapsed = self._bar.format_interval(self._bar.format_dict["elapsed"])
        # tqdm.write clears the bar first and redraws it after, so the line does not garble it.
        tqdm.write(f"{self.label}: {message} ({elapsed})", file=self.stream)
