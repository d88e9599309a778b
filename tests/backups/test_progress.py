"""Long backup jobs report progress on the terminal."""

from __future__ import annotations

import io

from backups.progress import Progress


def test_progress_writes_one_line_per_percent_point_to_a_non_terminal():
    stream = io.StringIO()
    bar = Progress("backup full", stream=stream)
    for percent in (0.2, 0.7, 1.5, 50.0, 50.4, 100.0):
        bar.update(percent)
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines] == [
        "0.2",
        "1.5",
        "50.0",
        "100.0",
    ]
    assert all(line.startswith("backup full: ") for line in lines)
