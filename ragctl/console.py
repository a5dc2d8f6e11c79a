"""The two consoles every command prints to: results on stdout, progress and errors on stderr.

On a terminal Rich fits tables to its width.  Piped or redirected, there is no width to fit: a table
keeps every cell whole (full paths, whole reasons, one row per line) unless $COLUMNS says otherwise.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

#: Width of output that goes to a file or a pipe: wide enough that no cell is ever cut or wrapped.
PIPE_WIDTH = 10_000


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = PIPE_WIDTH if piped and not os.environ.get("COLUMNS") else None
    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, width=width)


console = _console(stderr=False)
err_console = _console(stderr=True)
