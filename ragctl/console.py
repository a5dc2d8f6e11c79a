"""The two consoles every command prints to: results on stdout, progress and errors on stderr."""

from __future__ import annotations

import os

from rich.console import Console

console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
err_console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
