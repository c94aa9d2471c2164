"""SMTP email (aiosmtplib), STARTTLS optional."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.common.models import Strict
from services.notify.channels.base import Delivery, DeliveryError


class EmailTarget(Strict):
    """A receiver's email settings in rules/routing.yaml."""

    to: str | None = None
    to_staff: Literal["caseworker", "supervisor"] | None = None
    fallback: str | None = None  # used when the staff member has no address on file


class SmtpConfig(BaseModel):
    model_config = ConfigDict(frozen=True)
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "carealert@localhost"
    timeout_s: float = Field(default=10.0, gt=0)


class SmtpChannel:
    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def build(self, delivery: Delivery) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = delivery.address
        msg["Subject"] = delivery.message.subject
        msg["Date"] = email.utils.formatdate(localtime=False)
        # Deterministic Message-ID: a resend after a crash can be recognised as the same mail.
        msg["Message-ID"] = f"<{delivery.notification_id}@carealert>"
        msg["X-Carealert-Escalation"] = delivery.escalation_id
        msg.set_content(delivery.message.body)
        return msg

    async def send(self, delivery: Delivery) -> None:
        if "@" not in delivery.address:
            raise DeliveryError("bad_address", retryable=False)
        try:
            # EmailMessage's default policy refuses a header value with CR or LF.
            message = self.build(delivery)
        except ValueError:
            raise DeliveryError("bad_header", retryable=False) from None
        c = self.config
        try:
            await aiosmtplib.send(
                message,
                hostname=c.host,
                port=c.port,
                start_tls=c.starttls,
                username=c.username,
                password=c.password.get_secret_value() if c.password else None,
                timeout=c.timeout_s,
            )
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
