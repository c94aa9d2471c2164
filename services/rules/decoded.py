"""The children's states the worker decoded or wrote last, kept decoded.

Reading a child's state from the table means decompressing and validating its JSON (about
120 µs for a child with a year of history); most events are for a child seen recently. An
entry is used only while the table still holds the very bytes it was decoded from (or
written as), so the table stays the one truth: a state restored from the changelog, or
written by another worker before a rebalance, is decoded again. Safe to share because the
engine never changes the state it is given (tests/unit/test_replay_golden.py checks it).

Bounded by the size of the states' JSON, not their number: a decoded state takes about five
times its JSON in memory (23 kB for a simulated child's 4.7 kB), so BUDGET_BYTES of JSON is
about 80 MB; a state larger than LARGEST is decoded each time, never kept.
"""

from __future__ import annotations

from collections import OrderedDict

from services.rules import statecodec
from services.rules.state import ChildState

BUDGET_BYTES = 16 * 1024 * 1024
LARGEST = BUDGET_BYTES // 64


class DecodedStates:
    def __init__(self, budget_bytes: int = BUDGET_BYTES, largest: int = LARGEST) -> None:
        self.budget_bytes = budget_bytes
        self.largest = largest
        self.held_bytes = 0
        self._items: OrderedDict[bytes, tuple[bytes, ChildState, int]] = OrderedDict()

    def read(self, key: bytes, stored: bytes) -> ChildState:
        """The state the table holds as `stored` under `key`, decoded (once)."""
        found = self._items.get(key)
        if found is not None and found[0] == stored:
            self._items.move_to_end(key)
            return found[1]
        state = ChildState.from_bytes(stored)
        self.wrote(key, stored, state)
        return state

    def wrote(self, key: bytes, stored: bytes, state: ChildState) -> None:
        """`state` was written to the table as `stored`."""
        gone = self._items.pop(key, None)
        if gone is not None:
            self.held_bytes -= gone[2]
        size = statecodec.decoded_size(stored)
        if size > self.largest:
            return
        self._items[key] = (stored, state, size)
        self.held_bytes += size
        while self.held_bytes > self.budget_bytes:
            _, (_, _, dropped) = self._items.popitem(last=False)
            self.held_bytes -= dropped

    def __len__(self) -> int:
        return len(self._items)
