"""SMS through an HTTP gateway: POST {"to", "message", "reference"} as JSON."""

from __future__ import annotations

import json

import httpx

from services.notify.channels.base import Delivery, DeliveryError, classify_http

MAX_SMS = 320


def sms_text(delivery: Delivery) -> str:
    ack = delivery.message.data.get("ack_url")
    text = delivery.message.subject + (f" Ack: {ack}" if ack else "")
    return text[:MAX_SMS]


class SmsChannel:
    name = "sms"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, delivery: Delivery) -> None:
        if not delivery.address.lstrip("+").isdigit():
            raise DeliveryError("bad_address", retryable=False)
        gateway = delivery.options.gateway_url
        body = json.dumps(
            {
                "to": delivery.address,
                "message": sms_text(delivery),
                "reference": delivery.notification_id,
            }
        ).encode()
        try:
            response = await self.client.post(
                gateway,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": delivery.notification_id,
                },
                timeout=delivery.options.timeout_s,
            )
        except httpx.TimeoutException:
            raise DeliveryError("timeout", retryable=True) from None
        except httpx.HTTPError:
            raise DeliveryError("connect", retryable=True) from None
        if response.status_code >= 300:
            raise classify_http(response.status_code)
