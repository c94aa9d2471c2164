# Kept for the record: how state-previous-release.json was made (run at commit 8f536fb, before state v2).
"""Writes the state the release before statutory clocks (commit 8f536fb) keeps for one child."""
from datetime import UTC, datetime, timedelta
from pathlib import Path
from services.common.events import parse_event_obj
from services.rules.core import Engine, Tick
from services.rules.policy import load_policy

T0 = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)
def ev(n, t, payload, minutes):
    return parse_event_obj({"event_id": f"prev-{n}", "event_type": t, "schema_version": 1,
        "agency_id": "demo-agency", "child_id": "C-prev", "occurred_at": (T0+timedelta(minutes=minutes)).isoformat(),
        "jurisdiction": {"state": "TX", "county": "Harris"}, "payload": payload}, now=T0+timedelta(days=400))
engine = Engine(load_policy(Path("rules")))
events = [
  ev(1, "child.registered", {"date_of_birth": "2011-03-07", "sex": "female", "risk_indicators": ["substance_use"], "caseworker_id": "W-1", "supervisor_id": "S-1"}, 0),
  ev(2, "placement.started", {"placement_id": "P-1", "setting": "group_home"}, 5),
  ev(3, "missing.opened", {"episode_id": "E-1", "last_seen_at": (T0+timedelta(minutes=-30)).isoformat(), "circumstances": "runaway", "immediate_risks": ["medical_need"], "description": {"name": "Jamie Doe", "physical_description": "5'4\", brown hair\nscar on left hand"}}, 10),
  ev(4, "missing.law_enforcement_reported", {"episode_id": "E-1", "le_agency": "HPD", "report_number": "R-9", "ncic_entry_confirmed": True}, 60),
  ev(5, "missing.party_notified", {"episode_id": "E-1", "party": "court"}, 90),
]
state = None
for i, e in enumerate(events):
    state, _ = engine.evaluate(state, e, e.occurred_at + timedelta(seconds=1))
state, _ = engine.evaluate(state, Tick(), T0 + timedelta(hours=30))
state.partition = 3
Path("tests/unit/data/state-previous-release.json").write_bytes(state.to_bytes() + b"\n")
print(len(state.to_bytes()))
