"""A synthetic but realistic caseload (`carealert simulate`).

Shaped by docs/domain.md: runs are more likely from congregate care than from family homes and
from kin the least, for ages 12 to 17, and above all soon after a previous run (repeat runs
cluster); reports are mostly filed on time, some late, some never; most returned children are
screened, a few with a clear concern that leads to a trafficking report. Nothing here is real
data: names come from a short list of invented first names.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

SETTINGS = (
    ("foster_family_nonrelative", 0.45, 1.0),
    ("foster_family_relative", 0.30, 0.6),
    ("group_home", 0.15, 3.0),
    ("institution", 0.10, 3.5),
)
STATES = (("MO", 0.3), ("KY", 0.2), ("TX", 0.3), ("OH", 0.2))
# The parties a state's overlay has the caseworker notify (rules/jurisdictions/): most notices
# are made in time, some never.
MISSING_NOTICES = {
    "TX": ("court", "attorney", "guardian_ad_litem", "parent"),
    "MO": ("juvenile_officer", "guardian_ad_litem", "parent"),
}
RETURN_NOTICES = {"TX": ("court", "attorney", "guardian_ad_litem", "parent", "law_enforcement")}
NAMES = (
    "Avery",
    "Jordan",
    "Riley",
    "Casey",
    "Morgan",
    "Quinn",
    "Skyler",
    "Rowan",
    "Emerson",
    "Hayden",
)
BASE_DAILY_RUN = 0.002  # per day; high on purpose so a small demo caseload has runs


@dataclass(frozen=True)
class SimConfig:
    children: int = 100
    days: int = 30
    end: datetime | None = None
    seed: int = 1
    agency_id: str = "demo-agency"
    state: str | None = None  # every child in this state (default: a mix)
    caseworkers: tuple[str, ...] = ("W-1", "W-2")
    supervisor: str = "S-1"


def _pick(rng: random.Random, weighted: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    r = rng.random()
    for item in weighted:
        r -= item[1]
        if r <= 0:
            return item
    return weighted[-1]


def generate(config: SimConfig) -> list[dict[str, Any]]:
    """Events for the whole caseload, sorted by occurred_at, ending at `config.end`."""
    rng = random.Random(config.seed)
    end = config.end or datetime.now(UTC)
    start = end - timedelta(days=config.days)
    events: list[dict[str, Any]] = []
    for n in range(config.children):
        events += _child(rng, config, n, start, end)
    events.sort(key=lambda e: e["occurred_at"])
    return events


def _child(
    rng: random.Random, config: SimConfig, n: int, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    child = f"SIM-{config.seed}-{n:05d}"
    state = config.state or str(_pick(rng, STATES)[0])
    age = rng.randint(9, 17)
    dob = date(start.year - age, rng.randint(1, 12), rng.randint(1, 28))
    out: list[dict[str, Any]] = []
    seq = 0

    def ev(event_type: str, when: datetime, payload: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        if when > end:
            return
        out.append(
            {
                "event_id": f"{child}-{seq}",
                "event_type": event_type,
                "schema_version": 1,
                "agency_id": config.agency_id,
                "child_id": child,
                "occurred_at": when.isoformat(),
                "jurisdiction": {"state": state},
                "payload": payload,
            }
        )

    indicators = [
        i
        for i, p in (
            ("substance_use", 0.2),
            ("sexual_abuse_history", 0.15),
            ("prior_trafficking_allegation", 0.05),
        )
        if rng.random() < p
    ]
    ev(
        "child.registered",
        start,
        {
            "date_of_birth": dob.isoformat(),
            "sex": rng.choice(["female", "male"]),
            "risk_indicators": indicators,
            "caseworker_id": rng.choice(config.caseworkers),
            "supervisor_id": config.supervisor,
        },
    )
    setting, _, multiplier = _pick(rng, SETTINGS)
    ev(
        "placement.started",
        start + timedelta(minutes=5),
        {"placement_id": f"P-{n}-1", "setting": setting},
    )
    t = start + timedelta(hours=1)
    last_run: datetime | None = None
    episode = 0
    while t < end:
        hazard = BASE_DAILY_RUN * float(multiplier) * (1.5 if 12 <= age <= 17 else 1.0)
        if last_run is not None and (t - last_run) < timedelta(days=60):
            hazard *= 4  # repeat runs cluster
        if rng.random() >= hazard:
            t += timedelta(days=1)
            continue
        episode += 1
        ep = f"E-{episode}"
        last_seen = t
        learned = last_seen + timedelta(hours=rng.uniform(0.5, 6))
        last_run = last_seen
        risks = [
            r
            for r, p in (
                ("with_dangerous_person", 0.05),
                ("out_of_character", 0.1),
                ("suspected_trafficking", 0.03),
            )
            if rng.random() < p
        ]
        ev(
            "missing.opened",
            learned,
            {
                "episode_id": ep,
                "last_seen_at": last_seen.isoformat(),
                "circumstances": "runaway",
                "immediate_risks": risks,
                "description": {
                    "name": rng.choice(NAMES),
                    "clothing": rng.choice(["red hoodie", "black jacket", "school uniform"]),
                },
            },
        )
        ev(
            "placement.ended",
            learned + timedelta(minutes=10),
            {"placement_id": f"P-{n}-{episode}", "reason": "runaway"},
        )
        deadline = 2 if state == "MO" else 24
        roll = rng.random()
        if roll < 0.85:  # on time
            ev(
                "missing.law_enforcement_reported",
                learned + timedelta(hours=rng.uniform(0.2, deadline * 0.8)),
                {
                    "episode_id": ep,
                    "le_agency": "PD",
                    "report_number": f"R-{n}-{episode}",
                    "ncic_entry_confirmed": rng.random() < 0.9,
                },
            )
        elif roll < 0.95:  # late
            ev(
                "missing.law_enforcement_reported",
                learned + timedelta(hours=deadline + rng.uniform(1, 24)),
                {
                    "episode_id": ep,
                    "le_agency": "PD",
                    "report_number": f"R-{n}-{episode}",
                    "ncic_entry_confirmed": True,
                },
            )
        roll = rng.random()
        if roll < 0.65:
            ev(
                "missing.ncmec_reported",
                learned + timedelta(hours=rng.uniform(0.5, deadline * 0.9)),
                {"episode_id": ep, "ncmec_case_number": f"N-{n}-{episode}"},
            )
        elif roll < 0.9:
            ev(
                "missing.ncmec_reported",
                learned + timedelta(hours=deadline + rng.uniform(1, 72)),
                {"episode_id": ep, "ncmec_case_number": f"N-{n}-{episode}"},
            )
        parties = MISSING_NOTICES.get(state, ())
        if parties:
            for party in parties:
                if rng.random() < 0.8:
                    ev(
                        "missing.party_notified",
                        learned + timedelta(hours=rng.uniform(1, 20)),
                        {"episode_id": ep, "party": party},
                    )
        ev(
            "missing.search_effort",
            learned + timedelta(hours=3),
            {"episode_id": ep, "effort": "contact_friends"},
        )
        away = timedelta(hours=rng.lognormvariate(3.8, 1.0))  # median about 2 days
        located = last_seen + away
        if located > end:
            break
        if away > timedelta(hours=24):
            ev(
                "missing.staffing_held",
                last_seen + timedelta(hours=rng.uniform(24, 60)),
                {"episode_id": ep, "level": "supervisor"},
            )
        ev(
            "missing.located",
            located,
            {
                "episode_id": ep,
                "located_at": located.isoformat(),
                "location_class": rng.choice(["friend", "family", "shelter", "law_enforcement"]),
            },
        )
        for party in RETURN_NOTICES.get(state, ()):
            if rng.random() < 0.8:
                ev(
                    "missing.party_notified",
                    located + timedelta(hours=rng.uniform(1, 20)),
                    {"episode_id": ep, "party": party},
                )
        if rng.random() < 0.75:
            result = rng.choices(
                ["no_concern", "possible_concern", "clear_concern"], [0.8, 0.15, 0.05]
            )[0]
            screened = located + timedelta(hours=rng.uniform(2, 70))
            ev(
                "screening.completed",
                screened,
                {"episode_id": ep, "tool": rng.choice(["cse_it", "tvit"]), "result": result},
            )
            if result == "clear_concern" and rng.random() < 0.8:
                ev(
                    "trafficking.law_enforcement_reported",
                    screened + timedelta(hours=rng.uniform(1, 20)),
                    {"report_number": f"T-{n}-{episode}"},
                )
        if rng.random() < 0.7:
            ev(
                "return.debrief_completed",
                located + timedelta(hours=rng.uniform(4, 80)),
                {"episode_id": ep},
            )
        setting, _, multiplier = _pick(rng, SETTINGS)
        ev(
            "placement.started",
            located + timedelta(hours=2),
            {"placement_id": f"P-{n}-{episode + 1}", "setting": setting},
        )
        t = located + timedelta(days=1)
    return out


def to_jsonl(events: list[dict[str, Any]]) -> Iterator[str]:
    for e in events:
        yield json.dumps(e, separators=(",", ":")) + "\n"
