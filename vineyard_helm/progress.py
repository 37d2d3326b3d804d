"""Live progress while helm waits: redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from .output import status_lines, summary_line
from .records import ReleaseStatus


class ProgressDisplay:
    """A progress callback for install/upgrade: ``install(..., progress=ProgressDisplay())``.

    On a TTY the status block (pods ready per node, etcd members) is redrawn in place; when
    the stream is not a TTY, one summary line is printed each time the summary changes."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._drawn = 0
        self._last = ""

    def __call__(self, status: ReleaseStatus) -> None:
        if self.live:
            lines = ["waiting for the release to become ready...", *status_lines(status)]
            erase = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
            self.stream.write(erase + "\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            line = summary_line(status)
            if line != self._last:
                self.stream.write(f"waiting: {line}\n")
                self._last = line
        self.stream.flush()

    def close(self) -> None:
        """Erase the live block so the final output replaces it."""
        if self.live and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self.stream.flush()
            self._drawn = 0
