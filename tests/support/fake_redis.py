"""A dict standing in for the few Redis calls the API makes in unit tests (no server)."""

from __future__ import annotations


class FakeRedis:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def get(self, key):
        return self.values.get(key)

    def set(self, key, value, ex=None):
        self.values[key] = value if isinstance(value, bytes) else str(value).encode()

    def exists(self, key):
        return int(key in self.values)

    def delete(self, key):
        self.values.pop(key, None)

    def ping(self):
        return True
