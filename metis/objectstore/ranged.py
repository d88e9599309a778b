"""A stored object as a seekable, read-only file that fetches only the ranges it is asked for.

Parsers that jump about (pypdf reads the trailer at the end, then the objects it points to)
read a large object through it for a few ranged GETs instead of the whole object. Wrap it in
`io.BufferedReader` so small reads share one request.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metis.objectstore.store import ObjectStore


class RangedObject(io.RawIOBase):
    """The object `key` of `store`, `size` bytes long (from a HEAD or the listing)."""

    def __init__(self, store: ObjectStore, key: str, *, size: int, version_id: str = "") -> None:
        self._store, self._key, self._size, self._version = store, key, size, version_id
        self._position = 0
        self.requests = 0  # ranged GETs made, for tests and benchmarks

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self._size or not len(buffer):
            return 0
        last = min(self._size, self._position + len(buffer)) - 1
        self.requests += 1
        with self._store.open(
            self._key, byte_range=f"bytes={self._position}-{last}", version_id=self._version
        ) as body:
            data = body.read()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_ranged(
    store: ObjectStore, key: str, *, size: int, version_id: str = "", buffer_size: int = 65536
) -> io.BufferedReader:
    """The object as a buffered, seekable binary file (each refill one ranged GET)."""
    return io.BufferedReader(
        RangedObject(store, key, size=size, version_id=version_id), buffer_size=buffer_size
    )
