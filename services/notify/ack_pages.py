"""The pages a person sees after clicking an ack link in a browser: the confirmation form, what
happened, or why it did not. HTML with every value escaped, nothing about the child (the link
alone is the key, and a link can be forwarded), sent with headers that forbid scripts, framing,
caching and referrers."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi.responses import HTMLResponse

STYLE = (
    "body{font-family:Arial,Helvetica,sans-serif;margin:2em;max-width:40em;line-height:1.4}"
    "button{font-size:1.1em;padding:.4em 1.2em}textarea{width:100%}"
)


# Sent as headers (a <meta> tag can not forbid framing): no scripts, no framing, the form may
# post only here; never cached (the token is in the page) nor sent on as a referrer.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def html_page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status, headers=HEADERS)


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<meta http-equiv=Content-Security-Policy "
        "content=\"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def ack_form(escalation_id: str, receiver: str, person: str | None, token: str, stops: bool) -> str:
    """The page an ack link opens: what acknowledging does, an optional note, one button."""
    hidden = "".join(
        f'<input type=hidden name={name} value="{escape(value)}">'
        for name, value in (("receiver", receiver), ("person", person), ("token", token))
        if value is not None
    )
    effect = (
        "Acknowledging tells your agency you have this in hand: the reminders stop and it is"
        " not escalated further. Your name is recorded with it."
        if stops
        else "Acknowledging confirms you received this notice. It does not stop the agency's"
        " own reminders."
    )
    return page(
        "Acknowledge this alert",
        f"<p>Reference <b>{escape(escalation_id[:12])}</b>.</p><p>{effect}</p>"
        f"<form method=post>{hidden}"
        "<p><label>Note (optional, for your agency)<br>"
        "<textarea name=note maxlength=500 rows=3></textarea></label></p>"
        "<button type=submit>Acknowledge</button></form>",
    )


def ack_done(answer: dict[str, Any], first_time: bool) -> str:
    """What happened: acknowledged now, or already by this person earlier."""
    when = escape(str(answer.get("acknowledged_at", "")))
    done = "Thank you: your acknowledgement is recorded" if first_time else "You acknowledged this"
    effect = (
        "Reminders and escalation for it have stopped."
        if answer.get("stops_reminders")
        else "This records that you received it; the agency's own reminders continue."
    )
    return page(
        "Acknowledged",
        f"<p>{done} ({when}, UTC).</p><p>{effect}</p>"
        f"<p>Reference <b>{escape(str(answer.get('escalation_id', ''))[:12])}</b>.</p>",
    )


def ack_refused(status: int, detail: str) -> str:
    """Why an acknowledgement did not happen, and what to do instead."""
    what_now = {
        403: "Acknowledge from a newer message, or call your supervisor or the agency's 24/7 line.",
        404: "It may have been resolved already. Nothing more is needed from this link.",
    }.get(status, "Try the link again in a minute; if it keeps failing, call the 24/7 line.")
    return page(
        "Not acknowledged",
        f"<p>{escape(detail[:1].upper() + detail[1:])}.</p><p>{escape(what_now)}</p>",
    )
