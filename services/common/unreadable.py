"""Records a worker cannot read: never a crash loop, never a silent skip.

A Kafka client raises, for a whole fetch, when one record in it cannot be decoded: its
compression codec is not installed (`UnsupportedCodecError`, fixed by a deploy), its batch fails
its CRC (`CorruptRecordException`: disk or network corruption), or the record itself is
malformed in a way the broker accepts (a header key that is not UTF-8). Left alone, the worker
dies on it and dies again on every restart, and alerting stops for every partition it owns.

Instead the worker finds the partition whose batch raised and reads every other partition again
from where it stood (services.common.fetching). A record that cannot be decoded for a reason
of its own (a corrupt batch, a malformed header) is found exactly and handed to the worker as a
stand-in record marked `MARK`, which the worker dead-letters with where it was and why (its
bytes cannot be recovered); the partition moves on. A record whose codec is not installed is
fine and a deploy fixes the worker, so its partition is paused instead: it is *held*. The
records of a held partition stay where they are (nothing is skipped, nothing committed past
them); the worker turns unready, counts held partitions on
`carealert_<service>_unreadable_partitions`, logs which partition, offset and why, and the
CarealertUnreadableRecords alert fires. A held partition is excused from stall detection (a
restart cannot fix it). Once the codec is installed, the restarted worker reads on from the
committed offset.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Collection, Iterable
from typing import Any

from aiokafka.errors import UnsupportedCodecError

from services.common.progress import PartitionKey

log = logging.getLogger(__name__)

MARK = "carealert-unreadable"
"""Header of the stand-in record a worker gets for a record that could not be decoded (its
value: the reason); the worker dead-letters it like any bad record."""


def deploy_can_fix(exc: BaseException) -> bool:
    """A codec library not installed: the records are fine, the worker is not."""
    return isinstance(exc, UnsupportedCodecError)


def reason_of(exc: BaseException) -> str:
    """`codec` (a deploy can fix it) or `corrupt` (the record or its batch cannot be decoded)."""
    return "codec" if deploy_can_fix(exc) else "corrupt"


_REASON = "record could not be decoded ({}); its bytes are not recoverable"


def unreadable_reason(exc: BaseException) -> str:
    """The dead-letter reason for a record that could not be decoded (no record content)."""
    return _REASON.format(type(exc).__name__)


# Only what unreadable_reason writes: an error type's name in the one template.
_BEFORE, _AFTER = _REASON.split("{}")
_STAND_IN_REASON = re.compile(
    re.escape(_BEFORE) + r"[A-Za-z_][A-Za-z0-9_]{0,80}" + re.escape(_AFTER)
)


def stand_in_reason(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    """The reason a stand-in for an undecodable record carries (services.common.fetching), or
    None for any other record. A producer can write a `MARK` header too: only a value of the
    exact form `unreadable_reason` gives is taken, so no producer-chosen text becomes a
    dead letter's reason."""
    value = dict(headers or ()).get(MARK)
    if value is None:
        return None
    text = value.decode("utf-8", errors="replace")
    return text if _STAND_IN_REASON.fullmatch(text) else None


class Held:
    """The partitions a worker holds (pure bookkeeping; the caller pauses them)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.reasons: dict[PartitionKey, str] = {}
        self._lock = threading.Lock()  # faust's consumer thread holds, the worker reads

    def hold(self, topic: str, partition: int, offset: int | None, exc: BaseException) -> None:
        key = (topic, partition)
        reason = reason_of(exc)
        with self._lock:
            if self.reasons.get(key) == reason:
                return  # the client raised again after a resume: already held, already said
            self.reasons[key] = reason
        log.error(
            "a record on this partition cannot be read; partition held, worker unready"
            if reason == "codec"
            else "a record batch on this partition is corrupt; partition held, worker unready",
            extra={
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "reason": "codec not installed" if reason == "codec" else "CRC check failed",
            },
        )

    def keep_only(
        self, owned: Collection[PartitionKey], gauge: Any = None
    ) -> frozenset[PartitionKey]:
        """Forget partitions this worker no longer owns (their new owner holds them); set
        `gauge` to how many are held; return them."""
        with self._lock:
            for key in [k for k in self.reasons if k not in owned]:
                del self.reasons[key]
            held = frozenset(self.reasons)
        if gauge is not None:
            gauge.set(len(held))
        return held

    @property
    def partitions(self) -> frozenset[PartitionKey]:
        with self._lock:
            return frozenset(self.reasons)

    def readiness(self) -> tuple[bool, str] | None:
        """None while nothing is held; else a not-ready answer for /readyz (no record data)."""
        count = len(self.partitions)
        if not count:
            return None
        return False, (
            f"not ready: {count} partition(s) hold a record this worker cannot read"
            " (see the logs and carealert_" + self.service + "_unreadable_partitions)"
        )
