"""SMS through an HTTP gateway: POST {"to", "message", "reference"} as JSON."""

from __future__ import annotations

import json

from pydantic import Field

from services.notify.channels.base import Addressee, Delivery, DeliveryError
from services.notify.channels.http import HttpPools, post_json

MAX_SMS = 320


def sms_text(delivery: Delivery) -> str:
    ack = delivery.message.data.get("ack_url")
    text = delivery.message.subject + (f" Ack: {ack}" if ack else "")
    return text[:MAX_SMS]


class SmsTarget(Addressee):
    """A receiver's SMS gateway settings (routing.yaml or an agency file) and whom it writes to."""

    gateway_url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class SmsChannel:
    name = "sms"

    def __init__(self, pools: HttpPools) -> None:
        self.pools = pools

    async def send(self, delivery: Delivery) -> None:
        if not delivery.address.lstrip("+").isdigit():
            raise DeliveryError("bad_address", retryable=False)
        target = delivery.options
        if not isinstance(target, SmsTarget):  # a receiver without SMS settings
            raise DeliveryError("no_channel", retryable=False)
        body = json.dumps(
            {
                "to": delivery.address,
                "message": sms_text(delivery),
                "reference": delivery.notification_id,
            }
        ).encode()
        headers = {"Idempotency-Key": delivery.notification_id}
        await post_json(
            self.pools,
            (delivery.agency_id, delivery.receiver),
            target.gateway_url,
            body,
            headers,
            target.timeout_s,
        )
