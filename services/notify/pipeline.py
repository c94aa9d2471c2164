"""The delivery pipeline for one escalation, in stages: plan (route once, when it opens) →
de-duplicate by notification id → prepare (address and render per recipient class) → send
with retry → record the outcome (notification record, sent-log) → remember or forget the open
escalation; and the timer's reminders and escalation steps, read from the stored plan.

Exactly one delivery per (escalation, receiver, step) rests on a deterministic notification id
and the sent-log: before delivering, an id already there is skipped; after the final outcome,
the id is written there and its write acknowledged. The consumer loop (services.notify.worker)
commits an escalation's offset only after that. The one window left is between a channel
accepting a message and the sent-log write; each message therefore carries its id (webhook
`Idempotency-Key`, email `Message-ID`) so a receiver can drop the resend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.canary import is_canary
from services.common.escalations import Escalation
from services.notify.acks import AckSubject, ack_url
from services.notify.addresses import Address, Directory, NoContact, resolve_address
from services.notify.canary import canary_returned
from services.notify.channels.base import Channel, Delivery, DeliveryError
from services.notify.digest import digest_id, digest_message, window_end
from services.notify.metrics import NotifyMetrics
from services.notify.operator import OPERATOR_CLASS, operator_notice, operator_recipient
from services.notify.recorder import Recorder
from services.notify.records import (
    NotificationRecord,
    OpenEntry,
    Plan,
    Recipient,
    Status,
    notification_id,
)
from services.notify.retry import RetryPolicy
from services.notify.routing import Routing
from services.notify.schedule import (
    Due,
    due_steps,
    make_plan,
    open_entry,
    plan_key,
    reached_nobody,
    recipients,
)
from services.notify.silences import Verdict, may_mute, verdict
from services.notify.store import NotificationLog, RecordWriter, stopped_by
from services.notify.templates import Message, Templates, context_for

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Prepared:
    channel: str
    delivery: Delivery


@dataclass(frozen=True)
class Gathered:
    """A notification waiting for its digest, ready to send."""

    esc: Escalation
    due: Due
    nid: str
    prepared: Prepared


MAX_DIGEST = 50  # escalations in one digest message at most
MAX_PLANS = 10_000  # plans remembered by key (services.notify.schedule.plan_key)
STAND_IN_WAIT_S = 30.0  # how long a redirect waits for a stand-in already being delivered


def chunks(group: list[Gathered]) -> list[list[Gathered]]:
    """A group in digests of at most MAX_DIGEST escalations, in notification-id order, each
    escalation's notifications in one digest (so a replay makes the same digests)."""
    by_escalation: dict[str, list[Gathered]] = defaultdict(list)
    for g in sorted(group, key=lambda g: g.nid):
        by_escalation[g.esc.escalation_id].append(g)
    ordered = list(by_escalation.values())
    return [
        [g for items in ordered[i : i + MAX_DIGEST] for g in items]
        for i in range(0, len(ordered), MAX_DIGEST)
    ]


def digested(esc: Escalation, target: Recipient, step: str) -> bool:
    """Whether this notification waits for its route's digest: only what is no duty (what a
    silence may mute), never a resolution notice."""
    return bool(target.digest_s) and step != "resolved" and may_mute(esc)


@dataclass(frozen=True)
class Unsendable:
    """Nothing can be sent: no contact, or the template failed. Final, like any failure."""

    channel: str
    reason: str


class Notifier:
    def __init__(
        self,
        *,
        routing: Routing,
        templates: Templates,
        channels: dict[str, Channel],
        ledger: NotificationLog,
        people: Directory,
        producer: RecordWriter,
        metrics: NotifyMetrics,
        retry: RetryPolicy,
        ack_secret: str,
        public_url: str,
        ack_ttl_s: float = 7 * 86400,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.routing = routing
        self.templates = templates
        self.channels = channels
        self.ledger = ledger
        self.people = people
        self.metrics = metrics
        self.retry = retry
        self.ack_secret = ack_secret
        self.public_url = public_url
        self.ack_ttl_s = ack_ttl_s
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.recorder = Recorder(
            producer=producer, ledger=ledger, metrics=metrics, clock=clock, sleep=sleep
        )
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Notifications being delivered, with the outcome each will have (a stand-in's is
        # awaited by the receiver it stands in for).
        self.inflight: dict[str, asyncio.Future[NotificationRecord | None]] = {}
        # Plans by plan_key: the routing never changes under a Notifier and plans are frozen,
        # so escalations alike share one (planning was a tenth of the time under a burst).
        self.plans: dict[tuple[str, ...], Plan] = {}

    # --- one notification: de-duplicate → prepare → send with retry → record ------------------

    async def deliver(
        self,
        esc: Escalation,
        target: Recipient,
        step: str,
        partition: int | None = None,
        at: datetime | None = None,
        redirected: bool = False,
        alone: bool = False,
        claimed: bool = False,
    ) -> NotificationRecord | None:
        """Deliver one notification at most once; record every attempt and the outcome, and
        return the final record (None if it was final already or is being delivered).
        `partition`: the escalation's partition when its commit waits on this delivery. `at`:
        when the step was due (default: the escalation's creation), the instant whose on-call
        person it reaches and whose silences apply. `redirected`: it stands in for a silenced
        or maintained receiver's, and no silence applies to it. A notification its route
        gathers into a digest waits for it (`tick`), unless sent `alone`. `claimed`: the caller
        has already marked it in flight (`claim`)."""
        nid = notification_id(esc.escalation_id, target.receiver, step)
        if not claimed:
            if nid in self.ledger.sent or nid in self.inflight:
                return None
            if not alone and not redirected and digested(esc, target, step):
                return None
            self.claim(nid)
        when = at if at is not None else esc.created_at
        final: NotificationRecord | None = None
        try:
            silenced = None if redirected else self._silenced(esc, target, when)
            if silenced is not None and silenced.to is not None:
                stand_in = Recipient(receiver=silenced.to, recipient_class=target.recipient_class)
                if not await self._stood_in(esc, stand_in, step, partition, when):
                    silenced = None  # nobody took it: the receiver gets it, silence or not
            if silenced is not None:
                final = await self.recorder.attempt(
                    nid,
                    esc,
                    target,
                    step,
                    "none",
                    "suppressed",
                    0,
                    silenced.reason,
                    silence_id=silenced.silence_id,
                    redirected_to=silenced.to,
                )
            else:
                prepared = self.prepare(nid, esc, target, when)
                if isinstance(prepared, Unsendable):
                    final = await self.recorder.attempt(
                        nid, esc, target, step, prepared.channel, "failed", 0, prepared.reason
                    )
                else:
                    final = await self.send(prepared, esc, target, step, partition)
            await self.recorder.final(final)
            return final
        finally:
            self.release(nid, final)

    def claim(self, nid: str) -> None:
        """Mark a notification in flight (checked against the sent-log and in-flight first)."""
        self.inflight[nid] = asyncio.get_running_loop().create_future()

    def release(self, nid: str, final: NotificationRecord | None) -> None:
        """It is no longer in flight; whoever waits for it learns its final record."""
        outcome = self.inflight.pop(nid, None)
        if outcome is not None and not outcome.done():
            outcome.set_result(final)

    async def _stood_in(
        self, esc: Escalation, stand_in: Recipient, step: str, partition: int | None, at: datetime
    ) -> bool:
        """Deliver a silenced or maintained receiver's notification to its stand-in; whether
        the stand-in got it. Only then is the original recorded `suppressed`: a duty is never
        hidden, so a stand-in that failed, or whose outcome is not known here yet, leaves the
        original to be sent as usual."""
        nid = notification_id(esc.escalation_id, stand_in.receiver, step)
        pending = self.inflight.get(nid)
        final = await self.deliver(esc, stand_in, step, partition, at, redirected=True)
        if final is None and pending is not None:
            # Being delivered already (e.g. the fallback is told at this step anyway): wait for
            # it, a while (a stand-in waiting on this one would never end).
            try:
                final = await asyncio.wait_for(asyncio.shield(pending), STAND_IN_WAIT_S)
            except TimeoutError:
                final = None
        if final is None:
            known = self.ledger.outcomes.get(esc.escalation_id, [])
            final = next((r for r in known if r.notification_id == nid), None)
        return final is not None and final.status == "delivered"

    def _silenced(self, esc: Escalation, target: Recipient, at: datetime) -> Verdict:
        if target.recipient_class == OPERATOR_CLASS:
            return None
        return verdict(esc, target, at, self.ledger.silences.values(), self.routing)

    def prepare(
        self, nid: str, esc: Escalation, target: Recipient, at: datetime | None = None
    ) -> Prepared | Unsendable:
        """The receiver's address (whoever is on call at `at`, when it names a schedule) and
        the message its recipient class may see. Receivers are looked up for the escalation's
        agency only: its own, or shared ones."""
        spec = self.routing.receiver(esc.agency_id, target.receiver)
        if spec is None:
            # An agency with no configuration has no receivers of its own to reach; otherwise
            # the receiver was in a stored plan and has since been removed.
            known = esc.agency_id in self.routing.agencies
            return Unsendable("none", "unknown_receiver" if known else "unknown_agency")
        default_channel = "email" if spec.email else "webhook" if spec.webhook else "sms"
        agency = self.routing.agencies.get(esc.agency_id)
        try:
            address = resolve_address(
                spec, esc, self.people, at, agency.schedules if agency is not None else None
            )
        except NoContact as exc:
            return Unsendable(default_channel, str(exc))
        if target.recipient_class == OPERATOR_CLASS:
            return Prepared(
                address.channel, self._delivery(nid, esc, target, address, operator_notice(esc))
            )
        now = self.clock()
        link = ack_url(
            self.public_url,
            self.ack_secret,
            AckSubject(esc.escalation_id, target.receiver, address.person_id),
            now + timedelta(seconds=self.ack_ttl_s),
        )
        try:
            context = context_for(
                target.recipient_class,
                esc,
                agency=self.routing.agency(esc.agency_id),
                ack_url=link if esc.status == "firing" else None,
                now=now,
                also_told=self.also_told(esc.escalation_id, target.receiver),
                shelter_photo=self.routing.shelter_photo,
            )
            message = self.templates.render(target.recipient_class, context)
        except Exception as exc:  # a broken template must not silence the other receivers
            log.error(
                "template failed to render",
                extra={"receiver": target.receiver, "reason": type(exc).__name__},
            )
            return Unsendable(address.channel, "template_error")
        return Prepared(address.channel, self._delivery(nid, esc, target, address, message))

    @staticmethod
    def _delivery(
        nid: str, esc: Escalation, target: Recipient, address: Address, message: Message
    ) -> Delivery:
        return Delivery(
            nid,
            esc.escalation_id,
            target.receiver,
            target.recipient_class,
            address.address,
            message,
            address.options,
            address.person_id,
            esc.agency_id,
        )

    def also_told(self, escalation_id: str, receiver: str) -> list[str]:
        """The recipient classes of the others this escalation was planned to reach first."""
        entry = self.ledger.open.get(escalation_id)
        if entry is None or entry.plan is None:
            return []
        return list(
            dict.fromkeys(
                r.recipient_class for r in entry.plan.recipients if r.receiver != receiver
            )
        )

    async def send(
        self,
        prepared: Prepared,
        esc: Escalation,
        target: Recipient,
        step: str,
        partition: int | None,
    ) -> NotificationRecord:
        """Send, trying again with backoff while the channel says it may help; returns the
        final record (delivered, failed or dead_lettered). Each failed try is recorded."""
        nid, name = prepared.delivery.notification_id, prepared.channel
        channel = self.channels[name]
        attempt = 0
        retrying = False
        try:
            while True:
                attempt += 1
                try:
                    await channel.send(prepared.delivery)
                except DeliveryError as exc:
                    status: Status
                    if not exc.retryable:
                        status = "failed"
                    elif attempt >= self.retry.max_attempts:
                        status = "dead_lettered"
                        log.warning(
                            "notification dead-lettered",
                            extra={
                                "notification_id": nid,
                                "reason": exc.reason,
                                "receiver": target.receiver,
                            },
                        )
                    else:
                        if not retrying:
                            retrying = True
                            self.recorder.mark_retrying(partition, +1)
                        await self.recorder.attempt(
                            nid, esc, target, step, name, "retrying", attempt, exc.reason
                        )
                        await self.sleep(self.retry.backoff(attempt, self.rng))
                        continue
                    return await self.recorder.attempt(
                        nid, esc, target, step, name, status, attempt, exc.reason
                    )
                self._observe_delivered(esc, step, name)
                return await self.recorder.attempt(
                    nid,
                    esc,
                    target,
                    step,
                    name,
                    "delivered",
                    attempt,
                    None,
                    person_id=prepared.delivery.person_id,
                )
        finally:
            if retrying:
                self.recorder.mark_retrying(partition, -1)

    def _observe_delivered(self, esc: Escalation, step: str, channel: str) -> None:
        now = self.clock()
        latency = (now - esc.created_at).total_seconds()
        self.metrics.latency.labels(channel).observe(max(0.0, latency))
        if step == "0" and esc.status == "firing" and esc.event_accepted_at is not None:
            e2e = (now - esc.event_accepted_at).total_seconds()
            self.metrics.end_to_end.labels(channel).observe(max(0.0, e2e))

    # --- escalations: open (plan once) → remind and escalate → resolve ------------------------

    async def handle(self, esc: Escalation, partition: int) -> None:
        if is_canary(esc.agency_id):
            canary_returned(esc, self.metrics, self.clock())
            return
        async with self.locks[esc.escalation_id]:
            if esc.status == "firing":
                await self._open(esc, partition)
            else:
                await self._resolve(esc, partition)
        self.metrics.open.set(len(self.ledger.open))

    async def _open(self, esc: Escalation, partition: int) -> None:
        entry = self.ledger.open.get(esc.escalation_id)
        if entry is None:
            entry = open_entry(esc, partition, self.clock(), self.routing, self._new_plan(esc))
            entry.acked_by = stopped_by(self.ledger.acks.get(esc.escalation_id, []))
            # Registered first: if we crash mid-delivery, the timer still knows it.
            await self.ledger.put_open(entry)
        plan = await self._plan(entry)
        first = list(plan.recipients)
        if esc.agency_id not in self.routing.agencies and self.routing.operator_receiver:
            first.append(operator_recipient(self.routing.operator_receiver))
        await asyncio.gather(*(self.deliver(esc, t, "0", partition) for t in first))

    def _new_plan(self, esc: Escalation) -> Plan:
        key = plan_key(esc)
        plan = self.plans.get(key)
        if plan is None:
            if len(self.plans) >= MAX_PLANS:
                self.plans.clear()
            plan = self.plans[key] = make_plan(esc, self.routing)
        return plan

    async def _resolve(self, esc: Escalation, partition: int) -> None:
        """Tell the first receivers whose route asked for it (`send_resolved`), as planned; an
        escalation this notify never opened is routed with its `resolved` status. Then forget
        it (a tombstone, written whatever this instance remembers: idempotent)."""
        entry = self.ledger.open.get(esc.escalation_id)
        if entry is not None:
            planned = (await self._plan(entry)).recipients
        else:
            planned = recipients(self.routing.route(esc))
        # A digest route tells of no resolution: a digest is what is still open when it goes.
        targets = [t for t in planned if t.send_resolved and not digested(esc, t, "0")]
        await asyncio.gather(*(self.deliver(esc, t, "resolved", partition) for t in targets))
        waiting = [t for t in planned if digested(esc, t, "0")]
        await asyncio.gather(*(self._resolved_first(esc, t) for t in waiting))
        await self.ledger.close_open(esc.escalation_id)

    async def _resolved_first(self, esc: Escalation, target: Recipient) -> None:
        """A notification waiting for its digest whose escalation resolved first is not sent
        (the digest carries what is still open): recorded suppressed, so it is accounted for."""
        nid = notification_id(esc.escalation_id, target.receiver, "0")
        if nid in self.ledger.sent or nid in self.inflight:
            return
        self.claim(nid)
        final: NotificationRecord | None = None
        try:
            final = await self.recorder.attempt(
                nid, esc, target, "0", "none", "suppressed", 0, "resolved_before_digest"
            )
            await self.recorder.final(final)
        finally:
            self.release(nid, final)

    async def _plan(self, entry: OpenEntry) -> Plan:
        """The entry's plan. An entry an older release stored has none: it is planned once,
        for the receivers it told, from the routing in force, and stored again."""
        if entry.plan is not None:
            return entry.plan
        plan = make_plan(entry.escalation, self.routing, entry.targets)
        await self.ledger.put_open(entry.model_copy(update={"plan": plan}))
        return plan

    async def _plan_locked(self, entry: OpenEntry) -> None:
        async with self.locks[entry.escalation.escalation_id]:
            current = self.ledger.open.get(entry.escalation.escalation_id)
            if current is not None:
                await self._plan(current)

    async def tick(self, owned: set[int] | None) -> None:
        """Send the reminders and escalations that are due now, as each entry's plan says
        (entries an older release stored are planned first)."""
        now = self.clock()
        mine = [e for e in self.ledger.open.values() if owned is None or e.partition in owned]
        unplanned = [e for e in mine if e.plan is None]
        if unplanned:
            await asyncio.gather(*(self._plan_locked(e) for e in unplanned))
        past_due = 0
        work = []
        gathered: list[tuple[Escalation, Due]] = []
        for key in [e.escalation.escalation_id for e in mine]:
            entry = self.ledger.open.get(key)
            if entry is None:
                continue
            esc = entry.escalation
            if entry.acked_by is None and esc.due_at is not None and esc.due_at <= now:
                past_due += 1
            nobody = reached_nobody(entry.plan, self.ledger.outcomes.get(key, []))
            dues = due_steps(entry, now, nobody)
            for due in dues:
                work.append(self.deliver(esc, due.target, due.step, at=due.at))
            gathered += [
                (esc, due)
                for due in [
                    Due("0", r, esc.created_at)
                    for r in (entry.plan or Plan(recipients=[])).recipients
                ]
                + dues
                if digested(esc, due.target, due.step)
                and window_end(due.at, due.target.digest_s or 1.0) <= now
                and notification_id(esc.escalation_id, due.target.receiver, due.step)
                not in self.ledger.sent
            ]
        self.metrics.unacked_past_due.set(past_due)
        self.metrics.open.set(len(self.ledger.open))
        if gathered:
            work.append(self._send_digests(gathered))
        if work:
            await asyncio.gather(*work)

    # --- digests: what is no duty, gathered per receiver and person (services.notify.digest) ---

    async def _send_digests(self, gathered: list[tuple[Escalation, Due]]) -> None:
        """One message per receiver, address and window for the notifications whose digest
        window has ended, each claimed here so an overlapping tick leaves it alone; a silenced
        one, one with nowhere to go or one that fails to prepare is handled alone (and so
        recorded)."""
        groups: dict[tuple[str, str, str, str, datetime], list[Gathered]] = defaultdict(list)
        work = []
        for n, (esc, due) in enumerate(gathered):
            if n % 50 == 49:
                await asyncio.sleep(0)  # many gathered: let the loop breathe
            nid = notification_id(esc.escalation_id, due.target.receiver, due.step)
            if nid in self.ledger.sent or nid in self.inflight:
                continue
            self.claim(nid)
            try:
                silenced = self._silenced(esc, due.target, due.at)
                prepared = None if silenced else self.prepare(nid, esc, due.target, due.at)
            except Exception:  # one bad item must not keep the others from their digests
                log.exception("digest item failed to prepare", extra={"notification_id": nid})
                prepared = None
            if not isinstance(prepared, Prepared):
                work.append(self.deliver(esc, due.target, due.step, at=due.at, claimed=True))
                continue
            end = window_end(due.at, due.target.digest_s or 1.0)
            address = prepared.delivery.address
            key = (esc.agency_id, due.target.receiver, prepared.channel, address, end)
            groups[key].append(Gathered(esc, due, nid, prepared))
        for group in groups.values():
            for chunk in chunks(group):
                work.append(self._send_digest(chunk))
        await asyncio.gather(*work)

    async def _send_digest(self, group: list[Gathered]) -> None:
        """Send one digest (its notifications claimed by the caller), tried again like any
        notification while the channel says it may help; each notification in it recorded
        delivered with the digest's id. If it can not be sent, each goes alone."""
        first = group[0]
        every = first.due.target.digest_s or 1.0
        end = window_end(first.due.at, every)
        delivery = first.prepared.delivery
        did = digest_id(delivery.receiver, delivery.address, [g.nid for g in group])
        # One entry per escalation: its reminders in the same window add nothing.
        shown = list({g.esc.escalation_id: g for g in reversed(group)}.values())[::-1]
        message = digest_message(
            [g.prepared.delivery.message for g in shown],
            self.routing.agency(first.esc.agency_id),
            end - timedelta(seconds=every),
            end,
        )
        channel = first.prepared.channel
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.channels[channel].send(
                    dataclasses.replace(delivery, notification_id=did, message=message)
                )
                break
            except DeliveryError as exc:
                if not exc.retryable or attempt >= self.retry.max_attempts:
                    await asyncio.gather(
                        *(
                            self.deliver(g.esc, g.due.target, g.due.step, at=g.due.at, claimed=True)
                            for g in group
                        )
                    )
                    return
                await self.sleep(self.retry.backoff(attempt, self.rng))
        await asyncio.gather(*(self._in_digest(g, channel, attempt, did) for g in group))

    async def _in_digest(self, item: Gathered, channel: str, attempt: int, did: str) -> None:
        """Record one notification delivered in digest `did`, and let it go."""
        final: NotificationRecord | None = None
        try:
            self._observe_delivered(item.esc, item.due.step, channel)
            final = await self.recorder.attempt(
                item.nid,
                item.esc,
                item.due.target,
                item.due.step,
                channel,
                "delivered",
                attempt,
                None,
                person_id=item.prepared.delivery.person_id,
                digest_id=did,
            )
            await self.recorder.final(final)
        finally:
            self.release(item.nid, final)
