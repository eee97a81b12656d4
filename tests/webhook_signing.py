"""Signed webhook deliveries as HubSpot (v3) and the README's Salesforce Apex send them,
for the webhook tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

PUBLIC = "https://deckgen.example.com"
HUBSPOT_SECRET = "hs-app-secret"
SALESFORCE_SECRET = "sf-shared-secret"


def hubspot_signed(body: bytes, *, secret: str = HUBSPOT_SECRET, uri: str | None = None,
                   at: float | None = None) -> dict[str, str]:
    timestamp = str(int((time.time() if at is None else at) * 1000))
    uri = uri or f"{PUBLIC}/v1/webhooks/hubspot"
    source = b"POST" + uri.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest())
    return {"X-HubSpot-Signature-v3": signature.decode(),
            "X-HubSpot-Request-Timestamp": timestamp, "Content-Type": "application/json"}


def salesforce_signed(body: bytes, *, secret: str = SALESFORCE_SECRET,
                      at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    signature = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                         hashlib.sha256).hexdigest()
    return {"X-Deckgen-Signature": signature, "X-Deckgen-Timestamp": timestamp,
            "Content-Type": "application/json"}


def stage_event(deal: int, stage: str, event_id: int = 1) -> dict:
    return {"eventId": event_id, "subscriptionType": "deal.propertyChange", "portalId": 62515,
            "objectId": deal, "propertyName": "dealstage", "propertyValue": stage,
            "occurredAt": int(time.time() * 1000)}
