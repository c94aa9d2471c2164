"""A child's state is bounded by construction (services.rules.state.bound): no sequence of
valid events can make it larger than MAX_STATE_BYTES, so no child's next event (a
`missing.opened` above all) is ever dead-lettered because of what earlier events left. Past a
bound the oldest goes; live duties dropped so are counted (`forgotten`), and the escalations an
event makes still carry that event's Subject."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest

from services.common.dlq import MAX_RECORD_BYTES, record_size
from services.common.escalations import Escalation
from services.common.events import (
    EVENT_TYPES,
    Circumstances,
    EventBase,
    ImmediateRisk,
    RiskIndicator,
    Setting,
    Sex,
    parse_event_obj,
)
from services.common.ids import stable_id
from services.common.ladder import one_up
from services.rules import dedup
from services.rules.core import Engine, Tick
from services.rules.dedup import MAX_BUCKETS, MAX_DIGESTS, Bucket
from services.rules.state import (
    MAX_EPISODES,
    MAX_HISTORY,
    MAX_OPEN,
    MAX_PENDING,
    MAX_STATE_BYTES,
    MAX_SUBJECTS,
    STATE_VERSION,
    ChildState,
    Episode,
    OpenEscalation,
    Pending,
    bound,
)
from tests.support import engine_event
from tests.unit.test_events_bounds import largest_event

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)
WIDEST = timezone(timedelta(hours=-9, minutes=-30))  # "-09:30": the longest offset spelling
CHARS = ["\U0001f600", '"']  # 4 bytes each in UTF-8; 2 once escaped in JSON


def longest(values: Any) -> str:
    return max((str(v) for v in values), key=len)


def when(n: int) -> datetime:
    """A distinct instant with microseconds and an offset: the longest a time is written."""
    return (T0 + timedelta(minutes=n, microseconds=123457)).astimezone(WIDEST)


def text(char: str, n: int, tag: int) -> str:
    """`n` characters, distinct for each `tag` (so dict keys do not collapse)."""
    return f"{tag:x}" + char * (n - len(f"{tag:x}"))


def largest_subject(engine: Engine, char: str) -> Any:
    """The Subject of a missing.opened with every list and text at its longest, on a child
    whose profile gave the longest sex and a date of birth."""
    event = parse_event_obj(largest_event(char), now=T0 + timedelta(days=1))
    state, _ = engine.evaluate(None, event, T0 + timedelta(days=1))
    assert state is not None
    [episode] = state.episodes.values()
    assert episode.subject is not None
    return episode.subject.model_copy(
        update={"date_of_birth": "2011-03-07", "sex": longest(get_args(Sex))}
    )


def largest_state(engine: Engine, char: str) -> ChildState:
    """Every bound at its limit and every text at its longest: more than any sequence of events
    can make. Texts a policy writes (rule ids, actions, bases) are the shipped policy's longest."""
    policy = engine.policy
    rules = [*policy.rules, *(r for rs in policy.overlays.values() for r in rs)]
    rule_ids = sorted({r.id for r in rules})
    early = {key: when(0) for rid in rule_ids for key in (rid, f"{rid}|start")}
    action = longest(r.action for r in rules)
    overdue_action = longest(
        [f"OVERDUE: {action}", *(r.overdue.action for r in rules if r.overdue and r.overdue.action)]
    )
    recipients = max((r.recipients for r in rules), key=lambda rs: len(",".join(rs)))
    overdue_recipients = max(
        [one_up(recipients), *(r.overdue.recipients for r in rules if r.overdue)],
        key=lambda rs: len(",".join(rs or ())),
    )
    subject = largest_subject(engine, char)
    episodes = {}
    for n in range(MAX_EPISODES):
        eid = text(char, 128, n)
        episodes[eid] = Episode(
            episode_id=eid,
            opened_at=when(n),
            last_seen_at=when(n),
            circumstances=longest(get_args(Circumstances)),
            immediate_risks=get_args(ImmediateRisk),
            subject=subject if n < MAX_SUBJECTS else None,
            located_at=when(n + 1) if n >= MAX_SUBJECTS else None,
            seen_types=list(EVENT_TYPES),
            discharged=dict(early),
        )
    evidence = {
        "risk_tier": "elevated",
        "runs_last_12_months": MAX_HISTORY,
        "setting": longest(get_args(Setting)),
        "age": 126,
        "immediate_risk_count": 6,
        "previous_tier": "elevated",
        "fired_at": when(0).isoformat(),
    }
    open_ = {}
    for n in range(MAX_OPEN):
        esc_id = stable_id("open", str(n))
        open_[esc_id] = OpenEscalation(
            escalation_id=esc_id,
            rule_id=longest(rule_ids),
            scope_key=text(char, 128, n),
            episode_id=text(char, 128, n),
            severity="critical",  # the longest Severity
            recipients=recipients,
            action=action,
            basis=longest(r.basis for r in rules),
            due_at=when(n),
            evidence=evidence,
            triggered_by=[text(char, 128, n)],
            created_at=when(n),
            started_at=when(n),
            overdue_id=stable_id(esc_id, "overdue"),
            overdue_severity="critical",
            overdue_recipients=overdue_recipients,
            overdue_action=overdue_action,
        )
    pending = [
        Pending(
            rule_id=longest(rule_ids),
            scope_key=text(char, 128, n),
            episode_id=text(char, 128, n),
            fire_at=when(n),
            trigger_event_id=text(char, 128, n),
        )
        for n in range(MAX_PENDING)
    ]
    share, rest = divmod(MAX_DIGESTS, MAX_BUCKETS)
    digests = {
        f"e:{text(char, 128, n)}": Bucket(last=when(n), ids=["0" * 20] * (share + (n < rest)))
        for n in range(MAX_BUCKETS)
    }
    ids = text(char, 128, 0)
    return ChildState(
        v=STATE_VERSION,
        agency_id="a" * 64,
        child_id=ids,
        state="TX",
        county=text(char, 256, 0),
        date_of_birth=datetime(2011, 3, 7).date(),
        sex=longest(get_args(Sex)),
        risk_indicators=get_args(RiskIndicator),
        caseworker_id=ids,
        supervisor_id=ids,
        placement_id=ids,
        setting=longest(get_args(Setting)),
        placement_starts=[when(n) for n in range(MAX_HISTORY)],
        runs=[when(n) for n in range(MAX_HISTORY)],
        episodes=episodes,
        open=open_,
        pending=pending,
        risk_tier="elevated",
        trafficking_status="suspected",
        discharged=dict(early),
        digests=digests,
        profile_at=when(0),
        jurisdiction_at=when(0),
        placement_at=when(0),
        partition=2**31 - 1,
        forgotten=2**63 - 1,
    )


@pytest.mark.parametrize("char", CHARS)
def test_the_largest_state_is_within_the_ceiling(engine: Engine, char: str) -> None:
    """So a child's state never reaches Kafka's record limit, whatever its events were; a bound
    raised, or a field added without one, shows here."""
    state = largest_state(engine, char)
    first = next(iter(state.episodes.values()))
    parts = [state, first, first.subject, next(iter(state.open.values())), state.pending[0]]
    for part in parts:  # a field added to the state shows here, until it is given its largest
        assert part is not None and part.model_fields_set == set(type(part).model_fields)
    within = state.model_copy(deep=True)
    bound(within)
    assert within == state  # at every bound, not past one
    assert len(state.to_bytes()) <= MAX_STATE_BYTES  # 506,365 bytes in 4-byte characters
    key = f"{state.agency_id}:{state.child_id}".encode()
    assert record_size(key, state.to_bytes(), []) < MAX_RECORD_BYTES * 0.6


def flood(n: int, char: str) -> EventBase:
    """The `n`th missing.opened of one child, every text at its longest (its own episode)."""
    obj = largest_event(char)
    at = T0 + timedelta(hours=n)
    obj["event_id"] = text(char, 128, n)
    obj["occurred_at"] = at.isoformat()
    obj["payload"]["episode_id"] = text(char, 128, n)
    obj["payload"]["last_seen_at"] = (at - timedelta(minutes=30)).isoformat()
    obj["payload"]["description"]["name"] = text(char, 256, n)
    return parse_event_obj(obj, now=at)


def test_a_child_flooded_with_the_largest_episodes_still_alerts_on_its_next_missing_opened(
    engine: Engine,
) -> None:
    """The reviewer's case: 16 episodes of the longest 4-byte text used to make the state larger
    than Kafka takes, and every later event of the child (its next missing.opened too) was
    dead-lettered. Now the state stays within its ceiling, and the next missing.opened alerts
    with its own Subject."""
    state: ChildState | None = None
    for n in range(40):
        state, _ = engine.evaluate(state, flood(n, "\U0001f600"), T0 + timedelta(hours=n))
        assert state is not None and len(state.to_bytes()) <= MAX_STATE_BYTES
    assert state is not None and state.forgotten > 0  # an episode an hour: duties past MAX_OPEN
    event = flood(40, "\U0001f600")
    new, out = engine.evaluate(state, event, T0 + timedelta(hours=40))
    assert new is not None and len(new.to_bytes()) <= MAX_STATE_BYTES
    episode = text("\U0001f600", 128, 40)
    fired = {e.rule_id: e for e in out if e.status == "firing" and e.episode_id == episode}
    assert {"federal.report-law-enforcement", "federal.report-ncmec"} <= set(fired)
    assert {e.subject.name if e.subject else None for e in fired.values()} == {
        text("\U0001f600", 256, 40)
    }
    assert sum(e.subject is not None for e in new.episodes.values()) == MAX_SUBJECTS
    assert len(new.episodes) == MAX_EPISODES


def child_event(n: int, event_type: str, payload: dict[str, Any], at: datetime) -> EventBase:
    return engine_event(f"ev-{n}", event_type, payload, at)


def run_away(n: int, episode: str, at: datetime) -> EventBase:
    description = {"name": f"Name {episode}", "clothing": f"coat {episode}"}
    payload = {
        "episode_id": episode,
        "last_seen_at": (at - timedelta(minutes=30)).isoformat(),
        "circumstances": "runaway",
        "description": description,
    }
    return child_event(n, "missing.opened", payload, at)


def found(n: int, episode: str, at: datetime) -> EventBase:
    payload = {"episode_id": episode, "located_at": at.isoformat()}
    return child_event(n, "missing.located", payload, at)


def test_subjects_stay_on_the_open_and_newest_episodes_and_every_message_keeps_its_own(
    engine: Engine,
) -> None:
    """A child who ran three times in a few days: the third episode (open) and the second
    (the newest closed, its return duties running) keep their Subject; the first loses it. Each
    escalation carries its own episode's Subject, the overdue steps of the second too."""
    hours = [timedelta(hours=h) for h in range(200)]
    state: ChildState | None = None
    out: list[Escalation] = []
    for item in [
        run_away(1, "E-1", T0),
        found(2, "E-1", T0 + hours[2]),
        run_away(3, "E-2", T0 + hours[5]),
        found(4, "E-2", T0 + hours[6]),
        run_away(5, "E-3", T0 + hours[10]),
    ]:
        state, made = engine.evaluate(state, item, item.occurred_at)
        out += made
    assert state is not None
    assert [e.subject is not None for e in state.episodes.values()] == [False, True, True]
    for e in out:
        assert e.episode_id is None or (e.subject and e.subject.name == f"Name {e.episode_id}")
    later, overdue = engine.evaluate(state, Tick(), T0 + hours[6] + hours[72] + hours[1])
    assert later is not None
    steps = [e for e in overdue if e.episode_id == "E-2" and e.rule_id.endswith(".overdue")]
    assert steps and all(e.subject and e.subject.name == "Name E-2" for e in steps)


def escalation(n: int, *, live: bool) -> OpenEscalation:
    return OpenEscalation(
        escalation_id=f"esc-{n:03d}",
        rule_id="federal.report-ncmec",
        scope_key=f"E-{n}",
        episode_id=f"E-{n}",
        severity="high",
        recipients=("caseworker",),
        action="a",
        basis="b",
        due_at=T0 + timedelta(days=1),
        evidence={},
        triggered_by=[f"ev-{n}"],
        created_at=T0 + timedelta(minutes=n),
        overdue_id=None if live else f"over-{n}",
        overdue_severity="critical",
    )


def small_state(**fields: Any) -> ChildState:
    return ChildState(
        v=STATE_VERSION, agency_id="demo-agency", child_id="C-1", state="MO", **fields
    )


def test_open_escalations_past_the_bound_lose_the_done_first_then_the_oldest_live() -> None:
    done = [escalation(n, live=False) for n in (5, 6)]
    live = [escalation(n, live=True) for n in range(10, 10 + MAX_OPEN + 1)]
    state = small_state(open={e.escalation_id: e for e in [*live, *done]})
    bound(state)
    assert set(state.open) == {e.escalation_id for e in live[1:]}
    assert state.forgotten == 1


def test_rules_waiting_to_fire_past_the_bound_lose_the_earliest_due_counted() -> None:
    pending = [
        Pending(
            rule_id="policy.supervisor-staffing",
            scope_key=f"E-{n}",
            episode_id=f"E-{n}",
            fire_at=T0 + timedelta(hours=n),
            trigger_event_id=f"ev-{n}",
        )
        for n in range(MAX_PENDING + 2)
    ]
    state = small_state(pending=list(reversed(pending)))
    bound(state)
    assert sorted(p.scope_key for p in state.pending) == sorted(p.scope_key for p in pending[2:])
    assert state.forgotten == 2


def test_digests_past_the_bound_go_oldest_first_an_open_episodes_last() -> None:
    buckets = {f"m:{n:04d}": Bucket(last=T0 + timedelta(days=n), ids=["x"]) for n in range(70)}
    buckets["e:E-open"] = Bucket(last=T0 - timedelta(days=900), ids=["o"])
    dedup.bound(buckets, {"E-open"})
    assert len(buckets) == MAX_BUCKETS and "e:E-open" in buckets
    assert "m:0006" not in buckets and "m:0007" in buckets

    many = {
        "m:old": Bucket(last=T0, ids=[f"{n:020d}" for n in range(MAX_DIGESTS)]),
        "m:new": Bucket(last=T0 + timedelta(days=1), ids=["n"] * 10),
    }
    dedup.bound(many, set())
    assert many["m:old"].ids[0] == f"{10:020d}" and len(many["m:new"].ids) == 10
    assert sum(len(b.ids) for b in many.values()) == MAX_DIGESTS


def test_a_v3_state_past_the_bounds_loads_and_is_bounded_at_its_next_input(
    engine: Engine,
) -> None:
    """A release before v4 kept every open episode and its Subject: such a state loads, and
    its next tick (or event) writes it back within its bounds."""
    state = largest_state(engine, "x")
    subject = next(e.subject for e in state.episodes.values() if e.subject)
    for n in range(MAX_EPISODES, 3 * MAX_EPISODES):
        eid = text("x", 128, n)
        state.episodes[eid] = Episode(
            episode_id=eid,
            opened_at=when(n),
            last_seen_at=when(n),
            circumstances="runaway",
            subject=subject,
        )
    data = json.loads(state.to_bytes())
    data["v"] = 3
    del data["forgotten"]
    loaded = ChildState.from_bytes(json.dumps(data).encode())
    assert loaded.v == STATE_VERSION and len(loaded.episodes) == 3 * MAX_EPISODES
    for item in (Tick(), flood(100, "x")):
        new, _ = engine.evaluate(loaded, item, T0 + timedelta(days=5))
        assert new is not None and new is not loaded
        assert len(new.episodes) == MAX_EPISODES
        assert sum(e.subject is not None for e in new.episodes.values()) == MAX_SUBJECTS
        assert len(new.to_bytes()) <= MAX_STATE_BYTES
