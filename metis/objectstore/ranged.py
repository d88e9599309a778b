"""A stored object as a seekable, read-only file that fetches only the ranges it is asked for.

Parsers that jump about (pypdf reads the trailer at the end, then walks backwards to the
objects it points to) read a large object through it for a few ranged GETs instead of the whole
object. Reads go through aligned blocks kept in a small cache, so a parser stepping back and
forth within the same region costs one GET, not one per seek.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metis.objectstore.store import ObjectStore

BLOCK = 256 * 1024
_KEEP_BLOCKS = 16  # at most 4 MiB held, whatever the object's size


class RangedObject(io.RawIOBase):
    """The object `key` of `store`, `size` bytes long (from a HEAD or the listing)."""

    def __init__(self, store: ObjectStore, key: str, *, size: int, version_id: str = "") -> None:
        self._store, self._key, self._size, self._version = store, key, size, version_id
        self._position = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
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

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        first = index * BLOCK
        last = min(self._size, first + BLOCK) - 1
        self.requests += 1
        with self._store.open(
            self._key, byte_range=f"bytes={first}-{last}", version_id=self._version
        ) as body:
            data = body.read()
        self._blocks[index] = data
        if len(self._blocks) > _KEEP_BLOCKS:
            self._blocks.popitem(last=False)
        return data

    def readinto(self, buffer) -> int:
        if self._position >= self._size or not len(buffer):
            return 0
        index, offset = divmod(self._position, BLOCK)
        data = self._block(index)[offset : offset + len(buffer)]
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_ranged(store: ObjectStore, key: str, *, size: int, version_id: str = "") -> io.IOBase:
    """The object as a seekable binary file (each block one ranged GET, then cached)."""
    return io.BufferedReader(
        RangedObject(store, key, size=size, version_id=version_id), buffer_size=8192
    )
