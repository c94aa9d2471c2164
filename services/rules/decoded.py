"""The children's states the worker decoded or wrote last, kept decoded.

Reading a child's state from the table means decompressing and validating its JSON (about
120 µs for a child with a year of history); most events are for a child seen recently. An
entry is used only while the table still holds the very bytes it was decoded from (or
written as), so the table stays the one truth: a state restored from the changelog, or
written by another worker before a rebalance, is decoded again. Safe to share because the
engine never changes the state it is given (tests/unit/test_replay_golden.py checks it).
"""

from __future__ import annotations

from collections import OrderedDict

from services.rules.state import ChildState

SIZE = 4096
"""Children kept decoded (least recently used go first): a few tens of MB at most."""


class DecodedStates:
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._items: OrderedDict[bytes, tuple[bytes, ChildState]] = OrderedDict()

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
        self._items[key] = (stored, state)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
