"""`carealert silence add|expire|list`: an agency's silences and maintenance windows from a
terminal, written straight to care.silences.v1 and the audit trail (care.audit.v1), checked
exactly as the API checks them (services.notify.silences)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import ValidationError

from services.common import topics
from services.common.audit import AuditRecord, audit_record
from services.common.durations import parse_duration
from services.common.kafka import KafkaClient
from services.notify.config import RoutingInvalid, load_routing
from services.notify.silences import Silence, SilenceRequest, expired, new_silence, request_problems


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silence = sub.add_parser("silence", help="an agency's silences and maintenance windows")
    silence_sub = silence.add_subparsers(dest="silence_command", required=True)
    add = silence_sub.add_parser("add", help="make a silence (or, with --receiver, a window)")
    add.add_argument("--agency", required=True)
    add.add_argument("--by", required=True, help="who makes it (recorded as cli:<by>)")
    add.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE")
    add.add_argument("--match-re", action="append", default=[], metavar="LABEL=REGEX")
    add.add_argument("--receiver", help="a maintenance window on this receiver of the agency")
    add.add_argument("--starts", help="ISO 8601 with offset (default: now)")
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--ends", help="ISO 8601 with offset")
    until.add_argument("--for", dest="duration", help="a duration such as 2h or 3d")
    add.add_argument("--reason", required=True)
    add.add_argument("--policy", type=Path, default=Path("rules"), help="policy directory")
    expire = silence_sub.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id")
    expire.add_argument("--agency", required=True)
    expire.add_argument("--by", required=True)
    listing = silence_sub.add_parser("list", help="the agency's silences")
    listing.add_argument("--agency", required=True)
    listing.add_argument("--state", choices=["active", "pending", "expired"])


def run(args: argparse.Namespace) -> int:
    from services.common.settings import CommonSettings

    kafka = CommonSettings().kafka()  # KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, ...
    now = datetime.now(UTC)
    if args.silence_command == "add":
        return _add(args, kafka, now)
    found = read_silences(kafka)
    if args.silence_command == "expire":
        return _expire(args, kafka, found, now)
    mine = sorted(
        (s for s in found.values() if s.agency_id == args.agency),
        key=lambda s: (s.starts_at, s.silence_id),
    )
    for s in mine:
        if args.state is None or s.state(now) == args.state:
            what = f"receiver={s.receiver}" if s.receiver else _matchers(s)
            sys.stdout.write(
                f"{s.silence_id}  {s.state(now):8} {s.kind:11} {s.starts_at.isoformat()} → "
                f"{s.ends_at.isoformat()}  {what}  by {s.created_by}\n"
            )
    return 0


def _matchers(s: Silence) -> str:
    return " ".join(
        [f"{k}={v}" for k, v in s.match.items()] + [f"{k}=~{v}" for k, v in s.match_re.items()]
    )


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        label, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{option}: give LABEL=VALUE")
        out[label] = value
    return out


def _add(args: argparse.Namespace, kafka: KafkaClient, now: datetime) -> int:
    try:
        starts = _time(args.starts, "--starts") if args.starts else None
        if args.duration:
            length = parse_duration(args.duration)
            if length is None:
                raise ValueError("--for: give a duration such as 2h")
            ends = (starts or now) + length
        else:
            ends = _time(args.ends, "--ends")
        request = SilenceRequest(
            match=_pairs(args.match, "--match"),
            match_re=_pairs(args.match_re, "--match-re"),
            receiver=args.receiver,
            starts_at=starts,
            ends_at=ends,
            reason=args.reason,
        )
        routing = load_routing(args.policy / "routing.yaml")
    except (ValueError, ValidationError, RoutingInvalid) as exc:
        sys.stderr.write(f"silence add: {_first_line(exc)}\n")
        return 2
    problems = request_problems(request, args.agency, routing, now, read_silences(kafka).values())
    if problems:
        for field, why in problems:
            sys.stderr.write(f"silence add: {field}: {why}\n")
        return 2
    silence = new_silence(request, args.agency, f"cli:{args.by}", now)
    action = f"{silence.kind}.create"
    _write(
        kafka,
        silence,
        audit_record(args.agency, silence.created_by, "cli", action, silence.silence_id, now),
    )
    sys.stdout.write(f"{silence.silence_id}\n")
    return 0


def _expire(
    args: argparse.Namespace, kafka: KafkaClient, found: dict[str, Silence], now: datetime
) -> int:
    silence = found.get(args.silence_id)
    if silence is None or silence.agency_id != args.agency:
        sys.stderr.write("silence expire: no silence with this id for this agency\n")
        return 1
    ended = expired(silence, f"cli:{args.by}", now)
    if ended is None:
        sys.stdout.write("already ended\n")
        return 0
    record = audit_record(
        args.agency, f"cli:{args.by}", "cli", f"{silence.kind}.expire", silence.silence_id, now
    )
    _write(kafka, ended, record)
    sys.stdout.write("expired\n")
    return 0


def _time(text: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option}: not an ISO 8601 time with offset") from None


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors(include_url=False, include_input=False)[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
    return str(exc).splitlines()[0]


def _write(kafka: KafkaClient, silence: Silence, audit: AuditRecord) -> None:
    producer = KafkaProducer(**kafka.kafka_python(acks="all", enable_idempotence=True))
    try:
        key = silence.silence_id.encode()
        producer.send(topics.SILENCES, key=key, value=silence.to_bytes()).get(timeout=30)
        audit_key = audit.agency_id.encode()
        producer.send(topics.AUDIT, key=audit_key, value=audit.to_bytes()).get(timeout=30)
    finally:
        producer.close()


def read_silences(kafka: KafkaClient) -> dict[str, Silence]:
    """Every silence in care.silences.v1 (the last record of each id; tombstones remove)."""
    consumer: KafkaConsumer[Any, Any] = KafkaConsumer(
        **kafka.kafka_python(enable_auto_commit=False)
    )
    try:
        parts = consumer.partitions_for_topic(topics.SILENCES) or set()
        tps = [TopicPartition(topics.SILENCES, p) for p in parts]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        found: dict[str, Silence] = {}
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    if r.key is None:
                        continue
                    if r.value is None:
                        found.pop(r.key.decode(), None)
                    else:
                        found[r.key.decode()] = Silence.model_validate_json(r.value)
        return found
    finally:
        consumer.close()
