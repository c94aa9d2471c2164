"""Digests: a route may gather the notifications of rules that are no duty (those a silence may
mute: services.notify.silences.may_mute, e.g. risk tier changes) into one message per receiver
and person every `digest` interval. A duty always goes out one by one, at once. Pure.

A notification whose step falls in the window [start, end) (windows aligned on the UTC epoch)
waits until `end`; then every such notification for the same receiver and address goes out as
one message, and each is recorded `delivered` with the digest's id. The digest's id is made of
the notification ids it carries, so a replay after a crash sends the same digest under the same
id (`Message-ID`), and a notification that arrives late for its window gets a digest of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from services.common.ids import stable_id
from services.notify.agencies import AgencyView
from services.notify.templates import Message, wrap
from services.notify.wording import local_time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_end(at: datetime, every_s: float) -> datetime:
    """The end of the digest window `at` falls in (a step exactly on an edge starts one)."""
    elapsed = (at - EPOCH).total_seconds()
    return EPOCH + timedelta(seconds=(math.floor(elapsed / every_s) + 1) * every_s)


def digest_id(receiver: str, address: str, notification_ids: Sequence[str]) -> str:
    return stable_id("digest", receiver, address, *sorted(notification_ids))


def digest_message(
    items: Sequence[Message], agency: AgencyView, start: datetime, end: datetime
) -> Message:
    """One message carrying `items` (each as its recipient class may see it, with its own
    acknowledgement link); a digest of one is that message."""
    if len(items) == 1:
        return items[0]
    zone = agency.zone
    lines = [
        f"{len(items)} updates from {agency.name} between {local_time(start, zone)} and "
        f"{local_time(end, zone)}. None of them is a statutory duty (duties are always sent at "
        "once, one by one). Each has its own link to acknowledge it.",
        "",
    ]
    for n, item in enumerate(items, start=1):
        lines += [f"{n}. {item.subject}", "", item.body.rstrip("\n"), ""]
    return Message(
        subject=f"{len(items)} updates: {items[0].subject}",
        body=wrap("\n".join(lines)) + "\n",
        data={"digest": [item.data for item in items]},
    )
