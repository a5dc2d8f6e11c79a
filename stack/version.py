"""The version the stack reports (the API's OpenAPI ``info.version``): the installed distribution's.

Read from the package metadata, never from ``ragctl``: ``stack`` does not import the CLI.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

DISTRIBUTION = "ragctl"  # pyproject.toml's [project] name: the one wheel holds ragctl/ and stack/


@lru_cache(maxsize=1)
def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
