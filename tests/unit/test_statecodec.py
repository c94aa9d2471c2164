"""How child states are stored: zstd with a dictionary, JSON of earlier releases still read, and
stored bytes treated as untrusted (a frame claiming a huge size or another dictionary is
refused before anything is allocated)."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

import pytest
import zstandard

from services.common.events import parse_event_obj
from services.rules import statecodec
from services.rules.state import MAX_STATE_BYTES, ChildState
from services.rules.statecodec import MAGIC, StateUnreadable, decode, encode

REGISTERED = {
    "event_id": "E-1",
    "event_type": "child.registered",
    "schema_version": 1,
    "agency_id": "mo-jackson",
    "child_id": "C-1",
    "occurred_at": "2026-11-01T10:00:00+00:00",
    "jurisdiction": {"state": "MO", "county": "Jackson"},
    "payload": {"date_of_birth": "2011-04-02", "sex": "female"},
}


def state() -> ChildState:
    event = parse_event_obj(REGISTERED, now=datetime(2026, 11, 2, tzinfo=UTC))
    return ChildState.new(event).model_copy(update={"county": "Jackson", "sex": "female"})


def test_a_state_is_stored_compressed_and_read_back_equal() -> None:
    st = state()
    stored = st.stored_bytes()
    assert stored.startswith(MAGIC)
    assert zstandard.get_frame_parameters(stored).dict_id == statecodec.WRITE_WITH
    assert len(stored) < len(st.to_bytes())
    assert ChildState.from_bytes(stored) == st
    assert decode(stored) == st.to_bytes()


def test_json_an_earlier_release_stored_is_read_as_it_is() -> None:
    st = state()
    assert ChildState.from_bytes(st.to_bytes()) == st


def test_a_frame_needing_a_dictionary_this_release_lacks_is_refused() -> None:
    other = zstandard.train_dictionary(
        4096,
        [json.dumps({"n": i, "k": "v" * (i % 7)}).encode() * 20 for i in range(400)],
        dict_id=999_999,
    )
    stored = zstandard.ZstdCompressor(dict_data=other).compress(state().to_bytes())
    with pytest.raises(StateUnreadable, match="dictionary 999999"):
        ChildState.from_bytes(stored)


def test_a_frame_claiming_more_than_the_bound_is_refused_before_decompressing() -> None:
    huge = zstandard.ZstdCompressor().compress(b" " * (statecodec.MAX_DECODED_BYTES + 1))
    with pytest.raises(StateUnreadable, match="size"):
        decode(huge)
    # A forged header: magic, a frame header descriptor with an 8-byte content size, 2**40.
    forged = MAGIC + bytes([0xC0]) + struct.pack("<Q", 2**40) + b"\x00" * 8
    with pytest.raises(StateUnreadable):
        decode(forged)


def test_anything_but_exactly_one_whole_frame_is_refused() -> None:
    frame = encode(b'{"v": 4}')
    for bad in (MAGIC + b"\xff" * 40, frame[:-3], frame + b"xx", frame * 2):
        with pytest.raises(StateUnreadable):
            decode(bad)


def test_a_reader_decompresses_twice_the_largest_state() -> None:
    assert statecodec.MAX_DECODED_BYTES == 2 * MAX_STATE_BYTES
