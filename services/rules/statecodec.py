"""How a child's state is stored in the table: its JSON compressed with zstd (the zstandard
binding, already a dependency for Kafka's codecs) and a dictionary trained on simulated states.

A state's JSON is mostly the same keys and the policy's own texts (an open duty's action and
basis) child after child, which a shared dictionary holds once: a simulated child's state goes
from about 4.4 kB of JSON to about 0.75 kB (bench/state_size.py), at about 20 µs to compress and
5 µs to decompress.

Dictionaries are files `dictionaries/state-<id>.zdict`, never changed once released: every
frame names the dictionary it needs, so a state written with an older dictionary stays readable
after a newer one is added (bench/state_dictionary.py trains one; WRITE_WITH picks the one new
states use). Bytes that are not a zstd frame are the plain JSON of a release before this one.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

import zstandard

MAGIC = b"\x28\xb5\x2f\xfd"
DICTIONARIES = Path(__file__).resolve().parent / "dictionaries"
WRITE_WITH = 1
LEVEL = 3
MAX_DECODED_BYTES = 1024 * 1024
"""The largest JSON a stored state may hold: twice state.MAX_STATE_BYTES (a test ties them). A
frame that says more is refused before anything is allocated, and the worker never writes a
state whose JSON is larger (services.rules.records.too_large_to_write)."""

_local = threading.local()  # zstandard's (de)compressors are not for use by two threads at once


class StateUnreadable(ValueError):
    """Stored bytes that are neither a state's JSON nor a frame this release can read."""


@cache
def dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    path = DICTIONARIES / f"state-{dict_id}.zdict"
    if not path.is_file():
        raise StateUnreadable(f"child state needs zstd dictionary {dict_id}, not in this release")
    found = zstandard.ZstdCompressionDict(path.read_bytes())
    if found.dict_id() != dict_id:
        raise StateUnreadable(f"{path.name} holds dictionary {found.dict_id()}")
    return found


def _compressor() -> zstandard.ZstdCompressor:
    found: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if found is None:
        found = zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary(WRITE_WITH))
        _local.compressor = found
    return found


def _decompressor(dict_id: int) -> zstandard.ZstdDecompressor:
    cached: dict[int, zstandard.ZstdDecompressor] = _local.__dict__.setdefault("readers", {})
    found = cached.get(dict_id)
    if found is None:
        found = cached[dict_id] = zstandard.ZstdDecompressor(dict_data=dictionary(dict_id))
    return found


def encode(plain: bytes) -> bytes:
    """A state's JSON as it is stored."""
    return _compressor().compress(plain)


def decoded_size(stored: bytes) -> int:
    """How many bytes of JSON `stored` holds, as its frame says (its length for plain JSON)."""
    if not stored.startswith(MAGIC):
        return len(stored)
    try:
        size = zstandard.frame_content_size(stored)
    except zstandard.ZstdError as exc:
        raise StateUnreadable("child state is not a readable zstd frame") from exc
    if size < 0 or size > MAX_DECODED_BYTES:
        raise StateUnreadable("child state frame does not say a size within bounds")
    return int(size)


def decode(stored: bytes) -> bytes:
    """A stored state's JSON: decompressed, or as it is when an earlier release wrote JSON.
    One whole frame or nothing: a frame cut short, or followed by anything, is refused."""
    if not stored.startswith(MAGIC):
        return stored
    size = decoded_size(stored)
    try:
        dict_id = zstandard.get_frame_parameters(stored).dict_id
        reader = _decompressor(dict_id).decompressobj()
        plain = reader.decompress(stored)  # zstd holds a frame to the size its header says
    except zstandard.ZstdError as exc:
        raise StateUnreadable("child state is not a readable zstd frame") from exc
    if not reader.eof or reader.unused_data or len(plain) != size:
        raise StateUnreadable("child state is not exactly one zstd frame")
    return plain
