"""Streaming AES-256-GCM for logical dumps and exports, key from the environment.

The stream is a header (magic, 8-byte random nonce prefix) and then records of
[4-byte length][ciphertext+tag], one per chunk of at most 1 MiB. Each chunk's nonce is the
prefix plus its counter, and its associated data says whether it is the last one, so a stream
cut short, reordered or spliced fails to decrypt rather than yielding a partial dump.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

MAGIC = b"METISENC1"
CHUNK = 1024 * 1024
_LAST, _MORE = b"last", b"more"


class DecryptionError(ValueError):
    """Raised when a stream is damaged, truncated or encrypted with another key."""


def key_from_settings() -> bytes:
    raw = settings.BACKUP_LOGICAL_KEY
    if not raw:
        raise DecryptionError("BACKUP_LOGICAL_KEY is not set: logical backups are always encrypted")
    try:
        key = base64.urlsafe_b64decode(raw)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("BACKUP_LOGICAL_KEY is not urlsafe base64") from exc
    if len(key) != 32:
        raise DecryptionError("BACKUP_LOGICAL_KEY must decode to 32 bytes (AES-256)")
    return key


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    yield bytes(buffer)  # possibly empty: the last chunk always exists


def encrypt_stream(chunks: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    aes = AESGCM(key)
    prefix = os.urandom(8)
    yield MAGIC + prefix
    pending: bytes | None = None
    counter = 0
    for chunk in _rechunk(chunks, CHUNK):
        if pending is not None:
            yield _seal(aes, prefix, counter, pending, _MORE)
            counter += 1
        pending = chunk
    yield _seal(aes, prefix, counter, pending or b"", _LAST)


def _seal(aes: AESGCM, prefix: bytes, counter: int, data: bytes, marker: bytes) -> bytes:
    sealed = aes.encrypt(prefix + struct.pack(">I", counter), data, marker)
    return struct.pack(">I", len(sealed)) + sealed


def decrypt_stream(read, key: bytes) -> Iterator[bytes]:
    """Decrypt from `read(n)` (a file's read); yield plaintext chunks; raise on any damage."""
    aes = AESGCM(key)
    header = _read_exact(read, len(MAGIC) + 8)
    if header[: len(MAGIC)] != MAGIC:
        raise DecryptionError("not a Metis encrypted stream")
    prefix = header[len(MAGIC) :]
    counter = 0
    while True:
        length_bytes = read(4)
        if len(length_bytes) < 4:
            raise DecryptionError("stream truncated: the last chunk is missing")
        sealed = _read_exact(read, struct.unpack(">I", length_bytes)[0])
        nonce = prefix + struct.pack(">I", counter)
        for marker in (_MORE, _LAST):
            try:
                plain = aes.decrypt(nonce, sealed, marker)
            except InvalidTag:
                continue
            yield plain
            if marker == _LAST:
                if read(1):
                    raise DecryptionError("data after the last chunk")
                return
            break
        else:
            raise DecryptionError(f"chunk {counter} fails authentication (damaged or wrong key)")
        counter += 1


def _read_exact(read, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = read(size - len(data))
        if not part:
            raise DecryptionError("stream truncated")
        data += part
    return bytes(data)
