"""What a console user may see and do, by their roles (docs/domain.md "Who gets what"). Pure.

- Acting (Acknowledge, Add note): every role but the auditor's; an auditor reads only.
- A child's timeline: the caseworker and on-call staff see everything the read model holds
  (screening results, crimes disclosed at the return interview, trafficking identified and
  reported); supervisors, directors and auditors see the episode, the duties and reports and
  that a screening was done, not its result, nothing the child disclosed and no trafficking
  event (the duties themselves say what is due, a trafficking report included: supervisors
  oversee them); operators (who run notify, not cases) see no child's record and no evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

ACTING: Final = frozenset({"caseworker", "supervisor", "director", "on_call", "operator"})
FULL_RECORD: Final = frozenset({"caseworker", "on_call"})
SUMMARY_RECORD: Final = frozenset({"supervisor", "director", "auditor"})

# Events only the full record shows at all (what the child disclosed, whether they were identified
# as a victim of trafficking), and events whose detail (a result code) it alone shows.
FULL_ONLY_EVENTS: Final = frozenset(
    {
        "return.crime_disclosed",
        "return.crime_reported",
        "trafficking.identified",
        "trafficking.law_enforcement_reported",
    }
)
FULL_ONLY_DETAIL: Final = frozenset({"screening.completed"})


def may_act(roles: Iterable[str]) -> bool:
    """Whether the person may acknowledge and add notes (anyone but an auditor only)."""
    return bool(ACTING.intersection(roles))


def record_view(roles: Iterable[str]) -> str | None:
    """How much of a child's record the person sees: "full", "summary" or None (not at all)."""
    held = set(roles)
    if held & FULL_RECORD:
        return "full"
    if held & SUMMARY_RECORD:
        return "summary"
    return None


def shows_event(view: str, event_type: str) -> bool:
    return view == "full" or event_type not in FULL_ONLY_EVENTS


def shows_detail(view: str, event_type: str) -> bool:
    return view == "full" or event_type not in FULL_ONLY_DETAIL
