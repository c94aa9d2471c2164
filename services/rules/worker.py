"""The rules worker's batches, from care.events.v1, the ticks topic and the rekeyed topic.

Per record: forwarded to the rekeyed topic if its producer put it on another partition than its
key's; else decoded (invalid: DLQ with the original bytes and a reason, then move on) → state
from the table → Engine.evaluate. Then, for the whole batch: forwarded records, dead letters and
escalations sent and acknowledged by Kafka → new states written to the table → changelog
flushed. Escalations are acknowledged by Kafka before the state that records them is written,
and faust flushes the table changelog before it commits offsets. A crash at any point therefore
either replays the event (the same deterministic escalation ids are sent again; notify
de-duplicates) or finds it in the state's seen ids (its escalations were already durable).

Nothing one record holds can stop the worker (docs/contract.md, "Bounded events"): an event
is bounded (services.common.events), and so is a child's state (services.rules.state.bound), what
an input would make rules write is measured before anything is written (an event whose new state
or escalation would be larger than Kafka takes is dead-lettered with code `too_large`, not
applied; a tick so is not applied), a dead letter too large to hold its record's bytes is written
without them (services.common.dlq.bare_dead_letter), and should Kafka still refuse a record for
its size (a broker or topic with a lower limit): a forwarded record is dead-lettered `too_large`,
a dead letter is written bare, and an escalation makes the batch be evaluated again without the
input that made it (evaluation is pure), so that no state written records an input whose
escalations Kafka did not take: that event is dead-lettered `too_large` with its bytes (`carealert
dlq replay` applies it once the topic takes it), a tick is left to the next tick. Every input
not applied so is counted (`carealert_rules_inputs_too_large_total{input}`) and logged.

A batch is acknowledged to faust only once it is wholly written. faust's `take_events`
acknowledges a batch in a `finally` when the code consuming it raises or is cancelled, and the
next commit then moves past events that were never evaluated. So a batch that fails is never
given back to faust: Kafka refusing a write (broker restarting, leader moving) is retried in
place with backoff, and anything else (a bug, a stop in the middle of a batch) ends the process
at once, before that `finally` can run; the restarted worker reads the batch again from the
committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faust.streams import _current_event  # the context faust tables read the partition from
from faust.types import TableT

from services.common import topics, tracing
from services.common.canary import is_canary
from services.common.dlq import size_refusal
from services.common.escalations import Escalation
from services.common.events import EventBase
from services.common.kafka import retry_delay_s, transient
from services.common.stallwatch import exit_now
from services.rules.core import ConflictingDuplicate, Engine, Input, Tick
from services.rules.deadlines import DeadlineIndex
from services.rules.decoded import DecodedStates
from services.rules.metrics import RulesMetrics
from services.rules.records import (
    TOO_LARGE,
    Rejected,
    decode,
    dlq_record,
    misplaced,
    rekeyed_headers,
    stamp_accepted,
    too_large_to_forward,
    too_large_to_write,
)
from services.rules.state import ChildState
from services.rules.transport import RulesApp

log = logging.getLogger(__name__)


@dataclass
class Writes:
    """What an evaluated batch owes Kafka, gathered before any of it is written."""

    forward: list[tuple[Any, int]] = field(default_factory=list)  # (record, where it belongs)
    dead: list[tuple[Any, Rejected]] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    canaries: list[Escalation] = field(default_factory=list)
    traced: dict[str, str] = field(default_factory=dict)  # escalation id → its event's traceparent
    # By id() of an escalation: its input's record (an event's or a tick's), and its value.
    cause: dict[int, Any] = field(default_factory=dict)
    values: dict[int, bytes] = field(default_factory=dict)
    states: dict[bytes, ChildState | None] = field(default_factory=dict)
    encoded: dict[bytes, bytes] = field(default_factory=dict)  # the states as they are written
    # Children whose state is encoded and sized after each of their inputs (shared by the
    # passes of a batch); any other child's state is encoded once, as the pass ends.
    sized_each: set[bytes] = field(default_factory=set)
    last_event: dict[bytes, Any] = field(default_factory=dict)  # the state is written under it
    last_offset: dict[Any, int] = field(default_factory=dict)
    # Counted once the batch is written (a batch may be evaluated more than once).
    duplicates: int = 0
    forgotten: int = 0  # live duties children's states dropped to stay bounded
    too_large: list[str] = field(default_factory=list)  # inputs not applied: "event", "tick"


Withheld = dict[int, Rejected | None]
"""By id() of a record: an input not applied in this batch because Kafka refused one of its
escalations for its size, and its dead letter (None: a tick, not dead-lettered)."""


class RulesWorker:
    """Evaluates batches and writes what they owe, in the order the module docstring gives."""

    def __init__(
        self,
        app: RulesApp,
        engine: Engine,
        metrics: RulesMetrics,
        table: TableT[bytes, bytes | None],
        index: DeadlineIndex,
        *,
        partitions: int,
        ticks_topic: str,
        rekeyed_topic: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.app = app
        self.engine = engine
        self.metrics = metrics
        self.table = table
        self.index = index
        self.partitions = partitions
        self.ticks_topic = ticks_topic
        self.rekeyed_topic = rekeyed_topic
        self.clock = clock
        self.decoded = DecodedStates()
        self.retrying = False
        """True while a batch waits to be tried again after Kafka refused a write."""

    async def process_wholly(self, batch: list[Any]) -> None:
        """Process the batch until it is written; never return or raise with it half done."""
        attempt = 0
        try:
            while True:
                try:
                    await self.process(batch)
                    return
                except Exception as exc:
                    if not transient(exc):
                        raise
                    attempt += 1
                    self.retrying = True
                    self.metrics.batch_retries.inc()
                    log.warning(
                        "Kafka refused a write; trying the batch again",
                        extra={"reason": type(exc).__name__, "attempt": attempt},
                    )
                    await asyncio.sleep(retry_delay_s(attempt))
        except BaseException as exc:
            stopping = isinstance(exc, asyncio.CancelledError) and self.app.should_stop
            log.error(
                "batch not completed; exiting so that it is read again after a restart",
                extra={"reason": type(exc).__name__, "count": len(batch)},
            )
            exit_now(0 if stopping else 1)
            raise  # only reached when exit_now is replaced in a test
        finally:
            self.retrying = False

    async def process(self, batch: list[Any]) -> None:
        """Evaluate a batch, then: dead letters and escalations acked by Kafka, then state
        written, then the changelog flushed. Only after that does faust ack the batch.

        Should Kafka refuse an escalation for its size, the batch is evaluated again (at the
        same `now`) without the input that made it, until Kafka has taken everything the batch
        now owes; what it took in an earlier pass is not sent again. At most one pass more than
        the inputs withheld, each pass withholding at least one.

        A child's state is encoded once, after its last input of the batch (not after each);
        should that state be too large to write, the pass is made again, before anything is
        sent, sizing that child's state after each of its inputs, so that the input that made
        it too large is the one dead-lettered. At most one such pass more per child. (Only a
        state that would be written is sized: should a later input of the batch make a state
        an earlier input made too large small again, both are applied.)"""
        now = self.clock()
        inputs: dict[int, Input | Rejected] = {}  # decoded once, by id() of the record
        withheld: Withheld = {}
        settled: set[Any] = set()  # records Kafka took (or that were replaced) in a pass
        sized_each: set[bytes] = set()
        while True:
            writes = Writes(sized_each=sized_each)
            for ev in batch:
                self.take(ev, now, writes, inputs, withheld)
            if not self.encode_states(writes):
                continue
            refused = await self.send(writes, settled)
            if not refused:
                break
            withheld.update(refused)
        await self.store(writes)
        self.metrics.duplicates.inc(writes.duplicates)
        self.metrics.duties_forgotten.inc(writes.forgotten)
        for kind in writes.too_large:
            self.metrics.inputs_too_large.labels(kind).inc()
        for rejected in withheld.values():
            self.metrics.inputs_too_large.labels("event" if rejected else "tick").inc()
        self.report_lag(writes.last_offset)

    def take(
        self,
        ev: Any,
        now: datetime,
        writes: Writes,
        inputs: dict[int, Input | Rejected],
        withheld: Withheld,
    ) -> None:
        """One record of the batch into `writes`: forwarded, dead-lettered or evaluated (a
        `withheld` one: dead-lettered, or for a tick nothing). `inputs`: what records decoded
        to in an earlier pass of the batch."""
        message = ev.message
        writes.last_offset[message.tp] = message.offset
        key: bytes | None = message.key
        belongs = misplaced(message, self.partitions)
        if belongs is not None:
            refused = too_large_to_forward(message, self.forward_headers(message))
            if refused is not None:
                writes.dead.append((message, refused))
            else:
                writes.forward.append((message, belongs))
            return
        if id(message) in withheld:
            rejected = withheld[id(message)]
            if rejected is not None:
                writes.dead.append((message, rejected))
            return
        item = inputs.get(id(message))
        if item is None:
            item = inputs[id(message)] = self.read(message)
        if isinstance(item, Rejected):
            writes.dead.append((message, item))
            return
        if key is None:
            return
        if not isinstance(item, Tick) and is_canary(item.agency_id):
            self.evaluate_canary(message, item, now, writes)
        else:
            self.evaluate_one(ev, key, item, now, writes)

    def read(self, message: Any) -> Input | Rejected:
        """`decode`, counting the events read (canaries and ticks are not counted)."""
        try:
            item = decode(message, self.ticks_topic)
            if isinstance(item, EventBase) and not is_canary(item.agency_id):
                self.metrics.events.labels(item.event_type).inc()
            return item
        except Exception as exc:  # a decoder bug must not block the partition either
            log.exception("decoding failed", extra={"reason": type(exc).__name__})
            return Rejected("internal_error", f"internal error: {type(exc).__name__}")

    def evaluate_canary(self, message: Any, item: EventBase, now: datetime, writes: Writes) -> None:
        """Evaluated on no state and kept nowhere: no timers, no counts, nothing grows."""
        try:
            _, out = self.engine.evaluate(None, item, now)
        except Exception as exc:  # the missing canary alert says so
            log.exception("canary evaluation failed", extra={"reason": type(exc).__name__})
            return
        writes.canaries += stamp_accepted(out, message)

    def evaluate_one(self, ev: Any, key: bytes, item: Input, now: datetime, writes: Writes) -> None:
        """A child's event or tick against its state as of the earlier records of the batch."""
        message = ev.message
        try:
            with self.metrics.evaluate_seconds.time():
                state = self.state_of(key, writes)
                new, out = self.engine.evaluate(state, item, now)
        except ConflictingDuplicate:
            reason = "event_id was applied before with different content"
            writes.dead.append((message, Rejected("conflicting_duplicate", reason)))
            return
        except Exception as exc:  # a bug must not block the partition; keep the bytes
            log.exception("evaluation failed", extra={"reason": type(exc).__name__})
            if not isinstance(item, Tick):
                reason = f"internal error: {type(exc).__name__}"
                writes.dead.append((message, Rejected("internal_error", reason)))
            return
        if new is state:
            if not isinstance(item, Tick):
                writes.duplicates += 1
            if key not in writes.states:
                self.index.update(key, state)
            return
        if new is not None:
            new.partition = message.partition
        parent = None
        if not isinstance(item, Tick):
            out = stamp_accepted(out, message)
            parent = tracing.from_headers(message.headers)
        sized = key in writes.sized_each  # else encoded once, as the pass ends (encode_states)
        encoded, json_size = new.stored() if new is not None and sized else (None, 0)
        records = [(e.key.encode(), e.to_bytes(), self.trace_headers(e, parent)) for e in out]
        refused = too_large_to_write(key, encoded, records, json_size)
        if refused is not None:
            log.error(
                "what an input would make rules write is too large; not applied",
                extra={"reason": TOO_LARGE, **where(message)},
            )
            if isinstance(item, Tick):
                writes.too_large.append("tick")
            else:
                writes.too_large.append("event")
                writes.dead.append((message, refused))
            return
        forgotten = (new.forgotten if new else 0) - (state.forgotten if state else 0)
        if forgotten > 0:
            log.error(
                "a child's state held more live duties than it keeps; the oldest were dropped",
                extra={"count": forgotten, **where(message)},
            )
            writes.forgotten += forgotten
        writes.states[key] = new
        if encoded is not None:
            writes.encoded[key] = encoded
        writes.last_event[key] = ev
        if parent is not None:
            writes.traced.update((e.escalation_id, parent) for e in out)
        writes.cause.update((id(e), message) for e in out)
        writes.values.update((id(e), value) for e, (_, value, _) in zip(out, records, strict=True))
        writes.escalations += out

    def encode_states(self, writes: Writes) -> bool:
        """Each child's last state of the pass encoded (those not sized after each input);
        False if one is too large to write: its child is then sized after each input (added
        to `writes.sized_each`) and the pass must be made again."""
        whole = True
        for key, state in writes.states.items():
            if state is None or key in writes.sized_each:
                continue
            encoded, json_size = state.stored()
            if too_large_to_write(key, encoded, [], json_size) is not None:
                writes.sized_each.add(key)
                whole = False
            else:
                writes.encoded[key] = encoded
        return whole

    def state_of(self, key: bytes, writes: Writes) -> ChildState | None:
        if key in writes.states:
            return writes.states[key]
        raw = self.table.get(key)
        return self.decoded.read(key, raw) if raw is not None else None

    async def send(self, writes: Writes, settled: set[Any]) -> Withheld:
        """Forwarded records, dead letters, then escalations; returns once Kafka acked all, or
        replaced those it refused for their size. `settled`: what an earlier pass of the batch
        wrote (not sent again; what this one writes is added).

        A record Kafka refuses for its size does not stop the worker: a forwarded record refused
        so is dead-lettered (`too_large`), a dead letter is written bare, a canary's escalation
        is counted; for an escalation of an event or a tick, returns that input and its dead
        letter (None for a tick), for the batch to be evaluated again without it. Any other
        refusal is raised (process_wholly retries a transient one)."""
        sent: list[tuple[Any, Any, Any, asyncio.Future[Any]]] = []
        mark: tuple[Any, ...]  # what a record is known by in `settled`
        for message, belongs in writes.forward:  # in source order: each partition's order is kept
            mark = ("forward", id(message))
            if mark not in settled:
                sent.append((mark, message, None, await _attempt(self.forward(message, belongs))))
        for message, rejected in writes.dead:
            mark = ("dead", id(message))
            if mark not in settled:
                sent.append((mark, message, *await self.dead_letter(message, rejected)))
        for e in writes.escalations + writes.canaries:
            value = writes.values.get(id(e)) or e.to_bytes()
            mark = (e.key, value)
            if mark not in settled:
                emitted = self.emit(e, writes.traced.get(e.escalation_id), value)
                sent.append((mark, writes.cause.get(id(e)), e, await _attempt(emitted)))
        refused: list[tuple[Any, Any, Any, BaseException]] = []
        for mark, message, what, ack in sent:
            error = await _outcome(ack)
            if error is None:
                settled.add(mark)
                self.count(message, what)
            elif (size := size_refusal(error)) is not None:
                refused.append((mark, message, what, size))
            else:
                raise error
        return await self.send_instead(refused, settled) if refused else {}

    async def send_instead(
        self, refused: list[tuple[Any, Any, Any, BaseException]], settled: set[Any]
    ) -> Withheld:
        """What stands for records Kafka refused for their size: dead letters, acked; and the
        inputs whose escalations were refused (`send`)."""
        instead: list[tuple[Any, Rejected, asyncio.Future[Any]]] = []
        withheld: Withheld = {}
        for mark, message, what, error in refused:
            kind = "dead letter" if isinstance(what, Rejected) else "escalation"
            log.error(
                "Kafka refused a record as too large",
                extra={
                    "reason": type(error).__name__,
                    "kind": "forwarded record" if what is None else kind,
                    **where(message),
                },
            )
            if isinstance(what, Rejected):  # a dead letter: again, bare
                settled.add(mark)
                instead.append((message, *await self.dead_letter(message, what, error)))
            elif what is None:  # a forwarded record
                settled.add(mark)
                why = f"{self.rekeyed_topic} refused a record of this event as too large"
                reason = f"{why} ({type(error).__name__})"
                instead.append(
                    (message, *await self.dead_letter(message, Rejected(TOO_LARGE, reason)))
                )
            elif message is None:  # a canary's escalation: nothing to keep or replay
                settled.add(mark)
                self.metrics.inputs_too_large.labels("canary").inc()
            elif id(message) not in withheld:  # not settled: another input may make it again
                is_tick = message.topic == self.ticks_topic
                reason = (
                    f"{topics.ESCALATIONS} refused an escalation of this event as too large"
                    f" ({type(error).__name__}); the event was not applied"
                )
                withheld[id(message)] = None if is_tick else Rejected(TOO_LARGE, reason)
        for message, rejected, ack in instead:
            await ack  # refused again: raised (a bare dead letter is a few hundred bytes)
            self.count(message, rejected)
        if withheld:
            log.error(
                "evaluating the batch again without the inputs whose escalations Kafka refused",
                extra={"reason": TOO_LARGE, "count": len(withheld)},
            )
        return withheld

    def count(self, message: Any, what: Any) -> None:
        """A write Kafka acknowledged: a forwarded record (`what` None), a dead letter (the
        Rejected) or an escalation."""
        if what is None:
            self.metrics.rekeyed.inc()
        elif isinstance(what, Rejected):
            self.metrics.dlq.labels(what.code).inc()
            log.warning(
                "event sent to dead-letter topic", extra={"reason": what.code, **where(message)}
            )
        elif isinstance(what, Escalation) and not is_canary(what.agency_id):
            self.metrics.escalations.labels(what.rule_id, what.severity, what.status).inc()

    def forward_headers(self, message: Any) -> list[tuple[str, bytes]]:
        return [*(message.headers or []), *rekeyed_headers(message)]

    async def forward(self, message: Any, belongs: int) -> Any:
        return await self.app.producer.send(
            self.rekeyed_topic,
            message.key,
            message.value,
            belongs,
            None,
            self.forward_headers(message),
        )

    async def dead_letter(
        self, message: Any, rejected: Rejected, refused: BaseException | None = None
    ) -> tuple[Rejected, asyncio.Future[Any]]:
        """The dead letter handed to the producer (bare if it is too large, or was `refused`
        before): what it is counted as (code `too_large` when bare) and its ack."""
        k, v, headers, code = dlq_record(message, rejected, self.rekeyed_topic, refused)
        ack = await _attempt(self.app.producer.send(topics.EVENTS_DLQ, k, v, None, None, headers))
        return Rejected(code, rejected.reason), ack

    def trace_headers(self, e: Escalation, parent: str | None) -> list[tuple[str, bytes]]:
        return tracing.child_headers(parent, e.escalation_id) or []

    async def emit(self, e: Escalation, parent: str | None, value: bytes | None = None) -> Any:
        """The escalation handed to the producer (`value`: its bytes, when already encoded)."""
        trace = self.trace_headers(e, parent)
        value = e.to_bytes() if value is None else value
        return await self.app.producer.send(
            topics.ESCALATIONS, e.key.encode(), value, None, None, trace or None
        )

    async def store(self, writes: Writes) -> None:
        """The batch's new states into the table, then the changelog flushed."""
        for key, state in writes.states.items():
            if state is None:
                continue
            # The table (and its RocksDB store) take the partition from the current event.
            token = _current_event.set(weakref.ref(writes.last_event[key]))
            try:
                self.table[key] = writes.encoded[key]
            finally:
                _current_event.reset(token)
            self.decoded.wrote(key, writes.encoded[key], state)
            self.index.update(key, state)
        if writes.states:
            await self.app.producer.flush()

    def report_lag(self, last_offset: dict[Any, int]) -> None:
        for tp, offset in last_offset.items():
            try:
                behind = self.app.consumer.highwater(tp) - offset - 1
            except Exception:  # highwater unknown before the first fetch response
                continue
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, behind))


def where(message: Any) -> dict[str, Any]:
    """The log fields naming a record (none for a canary's escalation)."""
    if message is None:
        return {}
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


async def _attempt(send: Any) -> asyncio.Future[Any]:
    """The acknowledgement of a write handed to the producer; a refusal the producer raises at
    once (e.g. a record larger than it sends) comes back as a failed acknowledgement."""
    try:
        ack: asyncio.Future[Any] = await send
        return ack
    except Exception as exc:
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(exc)
        return failed


async def _outcome(ack: asyncio.Future[Any]) -> BaseException | None:
    """None once the write is acknowledged, else why it was refused."""
    try:
        await ack
    except Exception as exc:
        return exc
    return None
