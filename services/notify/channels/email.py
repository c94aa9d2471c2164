"""SMTP email (aiosmtplib), STARTTLS optional.

Each mail is `multipart/alternative`: the rendered text as `text/plain` and the same message as
`text/html` (paragraphs, a table for the fields, links as `<a href>`), built from the text so a
message has one definition (services.notify.templates). Every value is escaped in the HTML. A
part goes as 7bit (ASCII) or 8bit (UTF-8) while every line fits SMTP's 998 octets, so no
soft line break ever lands in a link; a longer line makes it quoted-printable. A relay or a
server without 8BITMIME may re-encode a part (aiosmtplib itself turns 8bit into base64 then):
decoding gives back every link intact whatever the encoding (tests/unit/test_email_mime.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import re
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.notify.channels.base import Addressee, Delivery, DeliveryError
from services.notify.templates import Fields, Message, blocks


class EmailTarget(Addressee):
    """A receiver's email settings (routing.yaml or an agency file): whom it writes to."""


class SmtpConfig(BaseModel):
    model_config = ConfigDict(frozen=True)
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "carealert@localhost"
    timeout_s: float = Field(default=10.0, gt=0)


# A link as found in text: up to whitespace or a character that cannot be in a URL; a full
# stop, comma or closing bracket at its end is punctuation of the sentence around it.
LINK = re.compile(r"""https?://[^\s<>"']+""")
_TRAILING = ".,;:!?)]"
MAX_LINE_OCTETS = 998  # RFC 5322 2.1.1, without CRLF


def links(text: str) -> list[str]:
    """The http(s) links in `text`, in order."""
    return [m.group().rstrip(_TRAILING) for m in LINK.finditer(text)]


def linked_html(text: str) -> str:
    """`text` as HTML: escaped, each link an `<a href>` (the href escaped as an attribute)."""
    out: list[str] = []
    end = 0
    for match in LINK.finditer(text):
        url = match.group().rstrip(_TRAILING)
        out.append(html.escape(text[end : match.start()]))
        href = html.escape(url, quote=True)
        out.append(f'<a href="{href}" style="{_LINK_STYLE}">{href}</a>')
        end = match.start() + len(url)
    out.append(html.escape(text[end:]))
    return "".join(out)


# Inline styles: many mail readers drop a <style> element.
_LINK_STYLE = "color:#0b57d0;overflow-wrap:anywhere;word-break:break-all"
_BODY_STYLE = "font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.45"
_TH_STYLE = "text-align:left;vertical-align:top;padding:2px 14px 2px 0;white-space:nowrap"
_TD_STYLE = "vertical-align:top;padding:2px 0"


def html_body(message: Message) -> str:
    """The HTML part: the text's blocks (services.notify.templates.blocks) as paragraphs, the
    first in bold, and field lists as two-column tables; every value escaped."""
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
        f"<title>{html.escape(message.subject)}</title></head>",
        f'<body style="{_BODY_STYLE}">',
    ]
    for i, block in enumerate(blocks(message.body)):
        if isinstance(block, Fields):
            lines.append('<table role="presentation" style="border-collapse: collapse;">')
            for label, value in block.rows:
                lines.append(
                    f'<tr><th style="{_TH_STYLE}">{html.escape(label)}</th>'
                    f'<td style="{_TD_STYLE}">{linked_html(value)}</td></tr>'
                )
            lines.append("</table>")
        elif i == 0:
            lines.append(f"<p><strong>{linked_html(block.text)}</strong></p>")
        else:
            lines.append(f"<p>{linked_html(block.text)}</p>")
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)


def transfer_encoding(text: str, charset: str = "utf-8") -> str:
    """7bit for ASCII and 8bit otherwise, while every line fits in SMTP's 998 octets (no soft
    line breaks, so a link stays whole even in the raw mail); quoted-printable beyond."""
    data = text.encode(charset)
    if max((len(line) for line in data.splitlines()), default=0) > MAX_LINE_OCTETS:
        return "quoted-printable"
    return "7bit" if data.isascii() else "8bit"


def compose(
    message: Message,
    *,
    sender: str,
    to: str,
    notification_id: str,
    escalation_id: str,
    date: datetime | None = None,
    charset: str = "utf-8",
    cte: str | None = None,
) -> EmailMessage:
    """A `multipart/alternative` mail of `message`: text, then HTML. `cte` forces one
    Content-Transfer-Encoding for both parts (tests); by default `transfer_encoding` chooses
    per part. Raises ValueError for a header value with CR or LF, or text the charset or
    encoding cannot carry."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = message.subject
    msg["Date"] = (
        email.utils.format_datetime(date) if date else email.utils.formatdate(localtime=False)
    )
    # Deterministic Message-ID: a resend after a crash can be recognised as the same mail.
    msg["Message-ID"] = f"<{notification_id}@carealert>"
    msg["X-Carealert-Escalation"] = escalation_id
    text = message.body
    msg.set_content(text, charset=charset, cte=cte or transfer_encoding(text, charset))
    page = html_body(message)
    msg.add_alternative(
        page, subtype="html", charset=charset, cte=cte or transfer_encoding(page, charset)
    )
    return msg


IDLE_S = 30.0  # a session idle longer is closed, not reused (the relay may have dropped it)


class SmtpSessions:
    """Open SMTP sessions to the relay, reused from one mail to the next: at most `size` at
    once (a burst waits here, its timeout counted once it has a session). A session that
    failed in any way is closed, never reused; one idle for IDLE_S is closed before use.
    Connecting, EHLO, STARTTLS and login are as aiosmtplib.send does them, once per session
    instead of once per mail (under a burst that was a third of a mail's CPU)."""

    def __init__(
        self, config: SmtpConfig, size: int = 16, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.clock = clock
        self.slots = asyncio.Semaphore(size)
        self.idle: list[tuple[aiosmtplib.SMTP, float]] = []

    def _fresh_idle(self) -> aiosmtplib.SMTP | None:
        while self.idle:
            session, since = self.idle.pop()
            if self.clock() - since < IDLE_S and session.is_connected:
                return session
            session.close()
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self.config
        session = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            start_tls=c.starttls,
            username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            timeout=c.timeout_s,
        )
        await session.connect()
        return session

    async def send(self, message: EmailMessage) -> None:
        """Send one mail on an open session (or a new one). Raises what aiosmtplib raises."""
        async with self.slots:
            session = self._fresh_idle()
            try:
                if session is None:
                    session = await self._connect()
                await session.send_message(message)
            except BaseException:
                if session is not None:
                    session.close()
                raise
            self.idle.append((session, self.clock()))

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for session, _ in idle:
            try:
                await session.quit()
            except (aiosmtplib.SMTPException, OSError):
                session.close()


class SmtpChannel:
    name = "email"

    def __init__(self, config: SmtpConfig, sessions: SmtpSessions | None = None) -> None:
        self.config = config
        self.sessions = sessions or SmtpSessions(config)

    def build(self, delivery: Delivery) -> EmailMessage:
        """The mail for `delivery`. Raises ValueError for a header value with CR or LF (the
        default policy refuses it)."""
        return compose(
            delivery.message,
            sender=self.config.sender,
            to=delivery.address,
            notification_id=delivery.notification_id,
            escalation_id=delivery.escalation_id,
        )

    async def send(self, delivery: Delivery) -> None:
        if "@" not in delivery.address:
            raise DeliveryError("bad_address", retryable=False)
        try:
            # EmailMessage's default policy refuses a header value with CR or LF.
            message = self.build(delivery)
        except ValueError:
            raise DeliveryError("bad_header", retryable=False) from None
        try:
            await self.sessions.send(message)
        except aiosmtplib.SMTPRecipientsRefused:
            raise DeliveryError("bad_address", retryable=False) from None
        except aiosmtplib.SMTPResponseException as exc:
            retryable = 400 <= exc.code < 500
            raise DeliveryError(
                "smtp_4xx" if retryable else "smtp_5xx", retryable=retryable
            ) from None
        except aiosmtplib.SMTPTimeoutError:
            raise DeliveryError("timeout", retryable=True) from None
        except (aiosmtplib.SMTPException, OSError):
            raise DeliveryError("connect", retryable=True) from None
