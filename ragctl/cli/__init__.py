"""The ragctl command line (see ``ragctl.cli.app``)."""

from ragctl.cli.app import app, main

__all__ = ["app", "main"]
