"""The ledger takes back, as the object it wrote, only a record whose bytes are exactly what
this instance wrote; anything else (another instance's write, a later version) is parsed."""

from __future__ import annotations

import asyncio
from typing import Any

from services.notify.config import load_routing
from services.notify.ledger import Ledger
from services.notify.schedule import open_entry
from tests.unit.test_notify_logic import ROOT, T0, escalation


class Producer:
    """Accepts every write (an in-memory stand-in for aiokafka's producer)."""

    def __init__(self) -> None:
        self.written: list[tuple[str, bytes, bytes | None]] = []

    async def send_and_wait(self, topic: str, key: bytes, value: bytes | None) -> None:
        self.written.append((topic, key, value))


def ledger() -> Ledger:
    return Ledger(None, Producer(), "sent", "open")  # type: ignore[arg-type]  # no broker


def entry(**kw: Any) -> Any:
    return open_entry(escalation(**kw), 0, T0, load_routing(ROOT / "rules" / "routing.yaml"))


def test_its_own_write_read_back_is_the_object_it_wrote() -> None:
    log = ledger()
    mine = entry()
    asyncio.run(log.put_open(mine))
    key = mine.escalation.escalation_id.encode()
    log._apply("open", key, mine.to_bytes())
    assert log.open[mine.escalation.escalation_id] is mine
    # Taken back once: the same bytes again (a re-read after a restart) are parsed.
    log._apply("open", key, mine.to_bytes())
    again = log.open[mine.escalation.escalation_id]
    assert again is not mine and again.to_bytes() == mine.to_bytes()


def test_other_bytes_under_its_key_are_parsed() -> None:
    log = ledger()
    mine = entry()
    theirs = entry(severity="critical")  # another instance's write of the same escalation
    asyncio.run(log.put_open(mine))
    log._apply("open", mine.escalation.escalation_id.encode(), theirs.to_bytes())
    got = log.open[mine.escalation.escalation_id]
    assert got is not mine and got.escalation.severity == "critical"
