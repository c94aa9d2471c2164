"""Mail as a proper MIME message: multipart/alternative with text and HTML, every value escaped,
and every link (long acknowledgement links included) recovered intact after any transfer
encoding; the demo sink saves each mail so a person can read it and click its links."""

from __future__ import annotations

import asyncio
import email
import email.policy
import html.parser
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.localdev.sinks import SmtpSink
from services.notify.channels.base import Delivery, DeliveryError
from services.notify.channels.email import (
    SmtpChannel,
    SmtpConfig,
    compose,
    html_body,
    links,
    transfer_encoding,
)
from services.notify.templates import AUDIENCE, Message, Templates, context_for
from tests.unit.test_messages import MO, T0, escalation, police_alert

ROOT = Path(__file__).resolve().parents[2]
# An acknowledgement link as long as real ones get (about 200 characters), with `&` and `=`.
LONG_ACK = (
    "https://notify.carealert.example.org/v1/escalations/"
    + "0123456789abcdef" * 2
    + "/ack?receiver=caseworker-jackson-county&person=W-1&token=1796000000."
    + "0123456789abcdef" * 4
)


class _Hrefs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v is not None]


def hrefs(page: str) -> list[str]:
    parser = _Hrefs()
    parser.feed(page)
    return parser.hrefs


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates(ROOT / "rules" / "templates")


def rendered(templates: Templates, recipient_class: str, name: str = "Jane Q Doe") -> Message:
    subject = {**escalation().subject.model_dump(), "name": name}  # type: ignore[union-attr]
    esc = (police_alert if AUDIENCE[recipient_class] == "law_enforcement" else escalation)(
        subject=subject
    )
    context = context_for(
        recipient_class,
        esc,
        agency=MO,
        ack_url=LONG_ACK,
        now=T0,
        also_told=("supervisor",),
        shelter_photo=True,
    )
    return templates.render(recipient_class, context)


def mail(message: Message, **kw: str) -> EmailMessage:
    return compose(
        message,
        sender="carealert@agency.example",
        to="alex@agency.example",
        notification_id="n-1",
        escalation_id="e-1",
        date=datetime(2026, 11, 25, 7, 20, tzinfo=UTC),
        **kw,
    )


def parsed(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    text, page = msg.iter_parts()
    assert text.get_content_type() == "text/plain" and page.get_content_type() == "text/html"
    return text.get_content(), page.get_content()


ENCODINGS = [
    ("us-ascii", "7bit", "Jane Q Doe"),
    ("utf-8", "8bit", "José Ñúñez"),
    ("utf-8", "quoted-printable", "José Ñúñez"),
    ("utf-8", "base64", "José Ñúñez"),
    ("utf-8", None, "José Ñúñez"),  # chosen: 8bit
    ("utf-8", None, "Jane Q Doe"),  # chosen: 7bit
]


@pytest.mark.parametrize("recipient_class", sorted(AUDIENCE))
@pytest.mark.parametrize(("charset", "cte", "name"), ENCODINGS)
def test_every_link_survives_every_transfer_encoding(
    templates: Templates, recipient_class: str, charset: str, cte: str | None, name: str
) -> None:
    message = rendered(templates, recipient_class, name)
    expected = links(message.body)
    if AUDIENCE[recipient_class] not in ("shelter", "parties"):
        assert LONG_ACK in expected
    kw = {"charset": charset} | ({"cte": cte} if cte else {})
    sent = mail(message, **kw)
    for part, content in zip(sent.iter_parts(), (message.body, html_body(message)), strict=True):
        assert part["Content-Transfer-Encoding"] == (
            cte or ("7bit" if content.isascii() else "8bit")
        )
    # As generated, and as aiosmtplib flattens it for a server without 8BITMIME (re-encoded).
    for raw in (
        sent.as_bytes(),
        sent.as_bytes(policy=sent.policy.clone(linesep="\r\n", cte_type="7bit")),
    ):
        back = parsed(raw)
        text, page = parts(back)
        text = text.replace("\r\n", "\n")  # SMTP's line ends, as a reader's mail client shows
        assert text == message.body
        assert links(text) == expected
        assert hrefs(page) == expected
        for header in ("From", "To", "Subject", "Date", "Message-ID", "X-Carealert-Escalation"):
            assert back[header] == sent[header]


def test_the_default_encoding_keeps_links_whole_in_the_raw_mail(templates: Templates) -> None:
    """No soft line break can cut a link: lines up to SMTP's 998 octets go as they are."""
    for name in ("Jane Q Doe", "José Ñúñez"):
        raw = mail(rendered(templates, "caseworker", name)).as_bytes()
        assert f"Acknowledge:    {LONG_ACK}\n".encode() in raw
        assert f'href="{LONG_ACK.replace("&", "&amp;")}"'.encode() in raw
        assert b"quoted-printable" not in raw and b"base64" not in raw


def test_a_line_longer_than_smtp_allows_goes_quoted_printable() -> None:
    message = Message("s", f"Note:  {'x' * 1200}\nAcknowledge:  {LONG_ACK}\n", {})
    assert transfer_encoding(message.body) == "quoted-printable"
    sent = mail(message)
    assert [p["Content-Transfer-Encoding"] for p in sent.iter_parts()] == ["quoted-printable"] * 2
    text, page = parts(parsed(sent.as_bytes()))
    assert text == message.body and hrefs(page) == [LONG_ACK]
    assert max(len(line) for line in sent.as_bytes().splitlines()) <= 998


def test_html_escapes_every_value_and_links_only_links() -> None:
    message = Message(
        'Duty <b>"now"</b> & later',
        'Call <script>alert(1)</script> & "them".\n\n'
        "Name:         O'Brien <img src=x onerror=alert(1)>\n"
        'Photo:        https://x.example/p?a=1&b="2"\n'
        "Notes:        javascript:alert(1) and https://y.example/q).\n",
        {},
    )
    page = html_body(message)
    assert "<script>" not in page and "<img" not in page and "javascript:alert(1)</a>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;them&quot;" in page
    assert "<title>Duty &lt;b&gt;&quot;now&quot;&lt;/b&gt; &amp; later</title>" in page
    assert "<th" in page and ">Name</th>" in page  # the field list is a table
    assert hrefs(page) == ["https://x.example/p?a=1&b=", "https://y.example/q"]
    assert "<p><strong>Call &lt;script&gt;" in page  # the first paragraph stands out


def test_the_html_part_reads_like_the_text(templates: Templates) -> None:
    message = rendered(templates, "supervisor")
    page = html_body(message)
    assert "<p><strong>Report the missing child to NCMEC.</strong></p>" in page
    assert "<p>Also told: the supervisor.</p>" in page
    assert re.search(
        r">Due</th><td[^>]*>Wed 25 Nov 2026, 03:10 CST \(UTC-06:00\), in 1 h 50 min<", page
    )
    # Continuation lines join their field's value.
    assert "Jackson County Children&#x27;s Division, 24/7: +1-816-555-0100" in page


def delivery(message: Message, address: str = "alex@agency.example") -> Delivery:
    return Delivery("n-1", "e-1", "caseworker", "caseworker", address, message)


def test_the_channel_keeps_its_headers_and_refuses_a_header_injection(
    templates: Templates,
) -> None:
    channel = SmtpChannel(SmtpConfig(sender="carealert@agency.example"))
    built = channel.build(delivery(rendered(templates, "caseworker")))
    assert built["Message-ID"] == "<n-1@carealert>" and built["X-Carealert-Escalation"] == "e-1"
    assert built["From"] == "carealert@agency.example" and built["To"] == "alex@agency.example"
    assert built["Subject"] == "[high] Report the missing child to NCMEC (C-100234)"
    assert built["Date"]
    bad = delivery(rendered(templates, "caseworker"), "alex@agency.example\nBcc: x@evil.example")
    with pytest.raises(DeliveryError) as info:
        asyncio.run(channel.send(bad))
    assert info.value.reason == "bad_header" and info.value.retryable is False


# --- the demo sink --------------------------------------------------------------------------


def test_the_sink_saves_each_mail_to_read_and_click(templates: Templates, tmp_path: Path) -> None:
    sink = SmtpSink(0, tmp_path)
    first = mail(rendered(templates, "caseworker", "José Ñúñez"))
    second = mail(rendered(templates, "supervisor"))
    sink.add(["alex@agency.example"], first.as_bytes())
    sink.add(["jordan@agency.example"], second.as_bytes())

    # What the tests read: the parsed mail, whose content is its text part.
    [(rcpt, got), _] = sink.messages
    assert rcpt == ["alex@agency.example"]
    assert got.get_content() == first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert got["Subject"] == first["Subject"]

    emls = sorted(tmp_path.glob("*.eml"))
    assert len(emls) == 2 and emls[0].read_bytes() == first.as_bytes()
    page = emls[0].with_suffix(".html").read_text(encoding="utf-8")
    assert LONG_ACK in hrefs(page) and "José Ñúñez" in page
    assert f"href='{emls[0].stem}.eml'" in page and "href='index.html'" in page
    assert "Content-Security-Policy" in page

    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert hrefs(index) == [f"{emls[1].stem}.html", f"{emls[0].stem}.html"]  # newest first
    assert "[high] Report the missing child to NCMEC (C-100234)" in index
    assert "jordan@agency.example" in index

    # A sink started again on the same folder lists what is already there.
    again = SmtpSink(0, tmp_path)
    again.add(["alex@agency.example"], first.as_bytes())
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert len(hrefs(index)) == 3


def test_the_sink_shows_a_text_only_mail_with_its_links_clickable(tmp_path: Path) -> None:
    plain = EmailMessage()
    plain["Subject"] = "<old> mail"
    plain["To"] = "a@x.example"
    plain.set_content(f"Acknowledge: {LONG_ACK}\n")
    sink = SmtpSink(0, tmp_path)
    sink.add(["a@x.example"], plain.as_bytes())
    [page] = tmp_path.glob("1*.html")
    text = page.read_text(encoding="utf-8")
    assert hrefs(text)[-1] == LONG_ACK and "&lt;old&gt; mail" in text
    assert sink.messages[0][1].get_content() == f"Acknowledge: {LONG_ACK}\n"
