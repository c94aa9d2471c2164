"""Acknowledgements and notes from the console, recorded by notify (the one authority over
acknowledgements: it decides whether one stops the chain, and writes care.acks.v1).

The console signs each request as the signed-in person with the ack secret it shares with notify
(services.notify.acks.console_ack_token: escalation, receiver "console", person, two minutes) and
POSTs it to notify's `POST /v1/escalations/{id}/ack`. `Recorder` is the interface; `NotifyAcks`
the HTTP edge; tests of pure logic use an in-memory twin.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from services.notify.acks import CONSOLE_RECEIVER, console_ack_token

Outcome = Literal["recorded", "already", "not_open", "refused", "unavailable"]


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    stops: bool = False  # an acknowledgement that stops the reminders and the chain


class Recorder(Protocol):
    async def acknowledge(
        self, agency_id: str, person_id: str, escalation_id: str, note: str | None
    ) -> Answer: ...

    async def add_note(
        self, agency_id: str, person_id: str, escalation_id: str, note: str, note_id: str
    ) -> Answer: ...


def new_note_id() -> str:
    """The id a note form carries, so that sending the form twice records one note."""
    return secrets.token_hex(16)


@dataclass
class NotifyAcks:
    base_url: str
    secret: SecretStr
    client: httpx.AsyncClient

    async def acknowledge(
        self, agency_id: str, person_id: str, escalation_id: str, note: str | None
    ) -> Answer:
        del agency_id  # notify checks the person against the escalation's own agency
        return await self._post(escalation_id, person_id, {"note": note} if note else {})

    async def add_note(
        self, agency_id: str, person_id: str, escalation_id: str, note: str, note_id: str
    ) -> Answer:
        del agency_id
        body = {"kind": "note", "note": note, "note_id": note_id}
        return await self._post(escalation_id, person_id, body)

    async def _post(self, escalation_id: str, person_id: str, extra: dict[str, str]) -> Answer:
        token = console_ack_token(
            self.secret.get_secret_value(), escalation_id, person_id, datetime.now(UTC)
        )
        body = {"receiver": CONSOLE_RECEIVER, "token": token, "person": person_id, **extra}
        url = f"{self.base_url.rstrip('/')}/v1/escalations/{quote(escalation_id, safe='')}/ack"
        try:
            response = await self.client.post(url, json=body, timeout=10.0)
        except httpx.HTTPError:
            return Answer("unavailable")
        if response.status_code in (200, 202):
            try:
                stops = bool(response.json().get("stops_reminders", False))
            except ValueError:
                stops = False
            return Answer("recorded" if response.status_code == 202 else "already", stops)
        if response.status_code == 404:
            return Answer("not_open")
        if response.status_code in (401, 403, 422):
            return Answer("refused")
        return Answer("unavailable")
