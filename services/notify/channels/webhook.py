"""Signed JSON webhooks.

Body: {notification_id, escalation_id, receiver, recipient_class, subject, body, data}.
Headers: `X-Carealert-Timestamp` (unix seconds), `X-Carealert-Signature: sha256=<hex>` where
hex = HMAC-SHA256(secret, timestamp + "." + body), and `Idempotency-Key: <notification_id>` so a
receiver can drop a resend.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping

from pydantic import Field, SecretStr

from services.common import tracing
from services.common.models import Strict
from services.notify.channels.base import Delivery, DeliveryError
from services.notify.channels.http import HttpPools, post_json


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


DEFAULT_TIMEOUT_S = 5.0


class WebhookTarget(Strict):
    """A receiver's webhook settings in rules/routing.yaml."""

    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = None
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=60)


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        pools: HttpPools,
        secrets: Mapping[str, SecretStr],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pools = pools
        self.secrets = secrets
        self.clock = clock

    def payload(self, delivery: Delivery) -> bytes:
        return json.dumps(
            {
                "notification_id": delivery.notification_id,
                "escalation_id": delivery.escalation_id,
                "receiver": delivery.receiver,
                "recipient_class": delivery.recipient_class,
                "subject": delivery.message.subject,
                "body": delivery.message.body,
                "data": delivery.message.data,
            },
            sort_keys=True,
            default=str,
        ).encode()

    async def send(self, delivery: Delivery) -> None:
        body = self.payload(delivery)
        timestamp = str(int(self.clock()))
        headers = {
            "Idempotency-Key": delivery.notification_id,
            "X-Carealert-Timestamp": timestamp,
        }
        parent = tracing.current.get()
        if parent is not None:  # the receiver's tracing joins the agency's trace
            headers[tracing.HEADER] = tracing.child(parent, delivery.notification_id)
        target = delivery.options if isinstance(delivery.options, WebhookTarget) else None
        if target is not None and target.secret_env:
            secret = self.secrets.get(target.secret_env)
            if secret is None:
                raise DeliveryError("no_secret", retryable=False)
            headers["X-Carealert-Signature"] = sign(secret.get_secret_value(), timestamp, body)
        timeout = target.timeout_s if target is not None else DEFAULT_TIMEOUT_S
        who = (delivery.agency_id, delivery.receiver)
        await post_json(self.pools, who, delivery.address, body, headers, timeout)
