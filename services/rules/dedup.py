"""The same event submitted twice has effect once, for the whole life of a child's record, in
bounded state. Pure.

Each applied event leaves a 20-character digest: 12 hex characters of the sha256 of its
event_id, 8 of the sha256 of its canonical content (a resend with other content is refused as a
conflicting duplicate). Digests are kept in buckets: one per episode (`e:<episode_id>`) and one
per calendar month of `occurred_at` for the child's other events (`m:2026-11`). A bucket is
dropped once the newest event in it is older than RETENTION and its episode (if any) is closed.

An event whose `occurred_at` is older than RETENTION before the worker's clock is *history*:
it updates the child's facts (those are idempotent: latest wins, placements and runs counted
once) and may discharge a duty, but it never fires one. So an event re-sent after its digest
was dropped can never page anyone again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from services.common.events import EventBase, event_bytes

RETENTION = timedelta(days=400)
MAX_DIGESTS = 1024
"""Digests a child keeps (about 23 bytes each): six times what the simulated caseload's busiest
child has (170). Past it the oldest go (`bound`)."""
MAX_BUCKETS = 64
"""Buckets a child keeps (an episode's key holds its id: up to 514 bytes); the busiest simulated
child has 19."""
ID_CHARS = 12
CONTENT_CHARS = 8
LEGACY = "legacy"


class Bucket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    last: datetime  # the newest occurred_at among its events
    ids: list[str] = []


def id_hash(event_id: str) -> str:
    return hashlib.sha256(event_id.encode()).hexdigest()[:ID_CHARS]


def content_digest(event: EventBase) -> str:
    """A short digest of an event's canonical encoding: tells a resend from a changed event."""
    return hashlib.sha256(event_bytes(event)).hexdigest()[:CONTENT_CHARS]


def bucket_key(episode_id: str | None, occurred_at: datetime) -> str:
    return f"e:{episode_id}" if episode_id else f"m:{occurred_at:%Y-%m}"


def find(buckets: dict[str, Bucket], event_id: str) -> str | None:
    """The content digest kept for `event_id` ("" when only its id was kept), or None if it was
    never applied (or its bucket was dropped: then it is history, see is_history)."""
    h = id_hash(event_id)
    for bucket in buckets.values():
        for entry in bucket.ids:
            if entry.startswith(h):
                return entry[ID_CHARS:]
    return None


def remember(
    buckets: dict[str, Bucket], key: str, event_id: str, digest: str, occurred_at: datetime
) -> None:
    """Keep the digest of an applied event (mutates `buckets`: the caller owns a copy)."""
    bucket = buckets.get(key)
    entry = id_hash(event_id) + digest
    if bucket is None:
        buckets[key] = Bucket(last=occurred_at, ids=[entry])
    else:
        buckets[key] = Bucket(last=max(bucket.last, occurred_at), ids=[*bucket.ids, entry])


def prune(buckets: dict[str, Bucket], now: datetime, open_episodes: Collection[str]) -> bool:
    """Drop the buckets past retention: never an open episode's, nor the legacy bucket while
    any episode is open (its ids may be that episode's). True if any was dropped."""
    horizon = now - RETENTION
    stale = [
        key
        for key, bucket in buckets.items()
        if bucket.last < horizon and not _kept_open(key, open_episodes)
    ]
    for key in stale:
        del buckets[key]
    return bool(stale)


def bound(buckets: dict[str, Bucket], open_episodes: Collection[str]) -> None:
    """At most MAX_BUCKETS buckets and MAX_DIGESTS digests (mutates `buckets`): past that, the
    buckets whose newest event is oldest lose their digests first, oldest first, an open
    episode's last. An event whose digest went this way and is sent again is applied again:
    the same escalation ids (notify de-duplicates them), and nothing if it is history by then."""
    if len(buckets) <= MAX_BUCKETS and sum(len(b.ids) for b in buckets.values()) <= MAX_DIGESTS:
        return

    order = sorted(buckets, key=lambda k: (_kept_open(k, open_episodes), buckets[k].last, k))
    for key in order[: max(0, len(buckets) - MAX_BUCKETS)]:
        del buckets[key]
    excess = sum(len(b.ids) for b in buckets.values()) - MAX_DIGESTS
    for key in order:
        if excess <= 0:
            break
        bucket = buckets.get(key)
        if bucket is None:
            continue
        if len(bucket.ids) <= excess:
            excess -= len(bucket.ids)
            del buckets[key]
        else:
            buckets[key] = Bucket(last=bucket.last, ids=bucket.ids[excess:])
            excess = 0


def _kept_open(key: str, open_episodes: Collection[str]) -> bool:
    """An open episode's bucket, or the legacy bucket while any episode is open (its ids may be
    that episode's)."""
    return bool(open_episodes) if key == LEGACY else key.removeprefix("e:") in open_episodes


def is_history(occurred_at: datetime, now: datetime) -> bool:
    """Older than retention: may update facts and discharge duties, never fires one."""
    return occurred_at < now - RETENTION


def from_seen_list(seen: list[str], last: datetime) -> Bucket:
    """State of the release before buckets: "<event_id>#<16 hex digest>" or a bare event_id,
    newest last. Kept as one bucket whose age is the newest time the state knows."""
    ids = []
    for entry in seen:
        event_id, sep, digest = entry.rpartition("#")
        if not sep or len(digest) != 16:
            event_id, digest = entry, ""
        ids.append(id_hash(event_id) + digest[:CONTENT_CHARS])
    return Bucket(last=last, ids=ids)
