"""Streaming AES-256-GCM: round-trips, and refuses a cut, spliced or foreign stream."""

from __future__ import annotations

import io
import os

import pytest

from backups import crypto


def _encrypt(data: bytes, key: bytes) -> bytes:
    pieces = [data[i : i + 70_000] for i in range(0, len(data), 70_000)] or [b""]
    return b"".join(crypto.encrypt_stream(pieces, key))


def _decrypt(blob: bytes, key: bytes) -> bytes:
    return b"".join(crypto.decrypt_stream(io.BytesIO(blob).read, key))


@pytest.mark.parametrize("size", [0, 10, crypto.CHUNK, 3 * crypto.CHUNK + 5])
def test_encrypted_stream_round_trips(size):
    key, data = os.urandom(32), os.urandom(size)
    blob = _encrypt(data, key)
    assert _decrypt(blob, key) == data
    assert data[:32] not in blob or size == 0


def test_decryption_refuses_a_truncated_stream_even_on_a_chunk_boundary():
    key, data = os.urandom(32), os.urandom(3 * crypto.CHUNK)
    blob = _encrypt(data, key)
    record = 4 + crypto.CHUNK + 16
    header = len(crypto.MAGIC) + 8
    for cut in (len(blob) - 1, header + record, header + 2 * record):
        with pytest.raises(crypto.DecryptionError):
            _decrypt(blob[:cut], key)


def test_decryption_refuses_a_flipped_byte_a_wrong_key_and_trailing_data():
    key = os.urandom(32)
    blob = bytearray(_encrypt(b"loan agreement" * 1000, key))
    with pytest.raises(crypto.DecryptionError):
        _decrypt(bytes(blob), os.urandom(32))
    with pytest.raises(crypto.DecryptionError):
        _decrypt(bytes(blob) + b"x", key)
    blob[40] ^= 1
    with pytest.raises(crypto.DecryptionError):
        _decrypt(bytes(blob), key)
