"""The worker's decoded states: used only while the table holds the bytes they came from."""

from __future__ import annotations

import pytest

from services.rules import statecodec
from services.rules.decoded import DecodedStates
from services.rules.state import ChildState


def state(child: str, county: str | None = None) -> ChildState:
    return ChildState(v=4, agency_id="mo-jackson", child_id=child, state="MO", county=county)


def test_the_bytes_written_are_read_back_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = DecodedStates()
    st = state("C-1")
    stored = st.stored_bytes()
    cache.wrote(b"k1", stored, st)
    monkeypatch.setattr(ChildState, "from_bytes", None)  # must not be called
    assert cache.read(b"k1", bytes(stored)) is st


def test_other_bytes_under_the_key_are_decoded_again() -> None:
    cache = DecodedStates()
    before, after = state("C-1"), state("C-1", county="Jackson")
    cache.wrote(b"k1", before.stored_bytes(), before)
    got = cache.read(b"k1", after.stored_bytes())  # e.g. restored from the changelog
    assert got == after and got is not before
    assert cache.read(b"k1", after.stored_bytes()) is got


def test_the_least_recently_used_go_first() -> None:
    one = statecodec.decoded_size(state("a").stored_bytes())
    cache = DecodedStates(budget_bytes=2 * one)
    states = {k: state(k.decode()) for k in (b"a", b"b", b"c")}
    for k in (b"a", b"b"):
        cache.wrote(k, states[k].stored_bytes(), states[k])
    assert cache.read(b"a", states[b"a"].stored_bytes()) is states[b"a"]  # a is now newest
    cache.wrote(b"c", states[b"c"].stored_bytes(), states[b"c"])
    assert len(cache) == 2
    assert cache.read(b"a", states[b"a"].stored_bytes()) is states[b"a"]
    assert cache.read(b"b", states[b"b"].stored_bytes()) is not states[b"b"]  # b went


def test_a_state_larger_than_the_largest_kept_is_decoded_each_time() -> None:
    big = state("C-1", county="J" * 200)
    stored = big.stored_bytes()
    cache = DecodedStates(largest=statecodec.decoded_size(stored) - 1)
    assert cache.read(b"k", stored) is not cache.read(b"k", stored)
    assert len(cache) == 0 and cache.held_bytes == 0
