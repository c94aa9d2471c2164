"""Granting an agency a direct producer, and the gate its own rights (Kafka ACLs).

    python -m services.gate.grants --agency ID [--principal User:agency-ID]
    python -m services.gate.grants --gate-principal User:gate [--group carealert-gate]

An agency gets its input topic `care.events.in.<ID>` (created if missing, with the common
partition count and replication) and, for its principal only, ALLOW WRITE and DESCRIBE on
exactly that topic (a LITERAL pattern: never a prefix, which would also cover `<ID>-other`).
The gate gets READ and DESCRIBE on every input topic (PREFIXED `care.events.in.`), READ on its
consumer group, and WRITE and DESCRIBE on care.events.v1 and care.events.dlq. Run with an
administrator's Kafka credentials (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, ...: the same
settings as every carealert client). Creating an ACL that exists already changes nothing, so
running a grant again is safe. docs/agency-topics.md lists the rights of carealert's own
principals.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import ValidationError

from services.common import topics
from services.common.canary import is_canary
from services.common.kafka import KafkaClient, KafkaUnavailable, admin
from services.common.settings import CommonSettings

PRINCIPAL: Final = re.compile(r"User:[A-Za-z0-9._@=-]{1,255}")
"""A Kafka principal as the broker names SASL users: `User:<name>`."""

GATE_GROUP: Final = "carealert-gate"
CLIENT_ID: Final = "carealert-grants"


class GrantRefused(ValueError):
    """The grant cannot be made; the message says why."""


def _acl(
    principal: str,
    operation: ACLOperation,
    kind: ResourceType,
    name: str,
    pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL,
) -> ACL:
    return ACL(
        principal=principal,
        host="*",
        operation=operation,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(kind, name, pattern),
    )


def checked_principal(principal: str) -> str:
    if not PRINCIPAL.fullmatch(principal):
        raise GrantRefused("a principal is written User:<name> (name: letters, digits, ._@=-)")
    return principal


def default_principal(agency_id: str) -> str:
    return f"User:agency-{agency_id}"


def agency_acls(agency_id: str, principal: str) -> list[ACL]:
    """WRITE and DESCRIBE on the agency's own input topic, for its principal only. Pure.
    Raises GrantRefused for an id that is no agency's or is reserved."""
    try:
        topic = topics.agency_input(agency_id)
    except ValueError as exc:
        raise GrantRefused(str(exc)) from None
    if is_canary(agency_id):
        raise GrantRefused("the canary agency is reserved: it posts through ingest only")
    principal = checked_principal(principal)
    return [
        _acl(principal, ACLOperation.WRITE, ResourceType.TOPIC, topic),
        _acl(principal, ACLOperation.DESCRIBE, ResourceType.TOPIC, topic),
    ]


def gate_acls(principal: str, group: str = GATE_GROUP) -> list[ACL]:
    """What the gate's own principal needs. Pure."""
    principal = checked_principal(principal)
    prefixed = ACLResourcePatternType.PREFIXED
    return [
        _acl(
            principal, ACLOperation.READ, ResourceType.TOPIC, topics.AGENCY_INPUT_PREFIX, prefixed
        ),
        _acl(
            principal,
            ACLOperation.DESCRIBE,
            ResourceType.TOPIC,
            topics.AGENCY_INPUT_PREFIX,
            prefixed,
        ),
        _acl(principal, ACLOperation.READ, ResourceType.GROUP, group),
        _acl(principal, ACLOperation.WRITE, ResourceType.TOPIC, topics.EVENTS),
        _acl(principal, ACLOperation.DESCRIBE, ResourceType.TOPIC, topics.EVENTS),
        _acl(principal, ACLOperation.WRITE, ResourceType.TOPIC, topics.EVENTS_DLQ),
        _acl(principal, ACLOperation.DESCRIBE, ResourceType.TOPIC, topics.EVENTS_DLQ),
    ]


@dataclass(frozen=True)
class Granted:
    topic: str | None
    """The input topic created now (None: it existed, or none was asked for)."""
    acls: int
    """How many ACLs the broker holds for this grant now."""


def create_acls(kafka: KafkaClient, acls: list[ACL]) -> int:
    """Create `acls` (those that exist already stay as they are). Raises GrantRefused when
    the broker refuses one (no authorizer, or the caller is no administrator)."""
    client = admin(kafka, client_id=CLIENT_ID)
    try:
        result = client.create_acls(acls)
    finally:
        client.close()
    failed = result.get("failed") or []
    if failed:
        names = sorted(
            {type(f).__name__ if isinstance(f, BaseException) else str(f) for f in failed}
        )
        raise GrantRefused(f"the broker refused {len(failed)} ACL(s): {', '.join(names)}")
    return len(acls)


def create_input_topic(
    kafka: KafkaClient, agency_id: str, *, partitions: int, replication: int
) -> bool:
    """Create the agency's input topic if missing; True if it was created now."""
    topic = topics.agency_input(agency_id)
    client = admin(kafka, client_id=CLIENT_ID)
    try:
        if topic in client.list_topics():
            return False
        try:
            client.create_topics(
                {topic: {"num_partitions": partitions, "replication_factor": replication}},
                timeout_ms=10_000,
            )
        except TopicAlreadyExistsError:
            return False  # created by someone else between the two calls
        return True
    finally:
        client.close()


def grant_agency(
    kafka: KafkaClient, agency_id: str, principal: str, *, partitions: int, replication: int
) -> Granted:
    """The agency's input topic (created if missing) and its principal's ACLs."""
    acls = agency_acls(agency_id, principal)  # refuses a bad id or principal before any I/O
    created = create_input_topic(kafka, agency_id, partitions=partitions, replication=replication)
    count = create_acls(kafka, acls)
    return Granted(topics.agency_input(agency_id) if created else None, count)


def grant_gate(kafka: KafkaClient, principal: str, group: str = GATE_GROUP) -> Granted:
    return Granted(None, create_acls(kafka, gate_acls(principal, group)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.gate.grants",
        description="Give an agency its input topic and write access to it, or the gate its"
        " rights. Kafka settings as for every carealert client (an administrator's"
        " credentials).",
    )
    parser.add_argument("--agency", help="the agency id (2 to 64 of a-z, 0-9, '-')")
    parser.add_argument(
        "--principal", help="the agency's Kafka principal (default User:agency-<agency id>)"
    )
    parser.add_argument("--gate-principal", help="grant the gate's rights to this principal")
    parser.add_argument("--group", default=GATE_GROUP, help="the gate's consumer group")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 done, 1 refused (the message says why), 2 usage or settings, 3 Kafka
    unreachable."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.agency and not args.gate_principal:
        parser.error("give --agency, --gate-principal or both")
    if args.principal and not args.agency:
        parser.error("--principal goes with --agency")
    try:
        settings = CommonSettings()
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            sys.stderr.write(f"grants: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}\n")
        return 2
    kafka = settings.kafka()
    try:
        if args.agency:
            principal = args.principal or default_principal(args.agency)
            done = grant_agency(
                kafka,
                args.agency,
                principal,
                partitions=settings.topic_partitions,
                replication=settings.topic_replication,
            )
            topic = topics.agency_input(args.agency)
            sys.stdout.write(
                f"{topic}: {'created' if done.topic else 'exists'};"
                f" {principal} may write it ({done.acls} ACLs)\n"
            )
        if args.gate_principal:
            done = grant_gate(kafka, args.gate_principal, args.group)
            sys.stdout.write(f"{args.gate_principal}: the gate's {done.acls} ACLs\n")
    except GrantRefused as exc:
        sys.stderr.write(f"grants: {exc}\n")
        return 1
    except KafkaUnavailable as exc:
        sys.stderr.write(f"grants: {exc}\n")
        return 3
    except KafkaError as exc:
        sys.stderr.write(f"grants: Kafka refused: {type(exc).__name__}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
