"""A stream that says it is a terminal, for tests of progress bars drawn only on a TTY."""

from __future__ import annotations

import io


class Terminal(io.StringIO):
    """Collect what is written, and answer isatty() like a real terminal would."""

    def isatty(self) -> bool:
        return True
