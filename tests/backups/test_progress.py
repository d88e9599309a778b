"""Long backup jobs show a progress bar on a terminal and stay quiet in logs."""

from __future__ import annotations

import io

from backups.progress import Progress
from tests.support.terminal import Terminal


def test_progress_draws_a_bar_up_to_100_percent_on_a_terminal():
    stream = Terminal()
    bar = Progress("backup full", stream=stream)
    for percent in (0.2, 0.7, 1.5, 50.0, 50.4, 100.0):
        bar.update(percent)
    drawn = stream.getvalue()
    assert drawn.startswith("\rbackup full:") and drawn.endswith("\n")
    assert drawn.rsplit("\r", 1)[-1].startswith("backup full: 100.0%|##########|")


def test_progress_writes_nothing_but_its_stages_to_a_non_terminal():
    stream = io.StringIO()
    bar = Progress("drill", stream=stream)
    for percent in (1.0, 50.0, 100.0):
        bar.update(percent)
    bar.step("restoring the latest backup")
    [line] = stream.getvalue().splitlines()
    assert line.startswith("drill: restoring the latest backup (00:")


def test_progress_stages_do_not_garble_the_bar_on_a_terminal():
    stream = Terminal()
    bar = Progress("drill", stream=stream)
    bar.update(10.0)
    bar.step("checking")
    lines = stream.getvalue().split("\n")
    assert lines[0].rsplit("\r", 1)[-1].startswith("drill: checking (")  # bar cleared first
