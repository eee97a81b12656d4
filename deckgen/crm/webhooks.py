"""Webhooks in: who may call them and what they ask for. Pure functions over the raw
request (method, URL, headers, body bytes) and the clock, so the checks are tested without
a server.

HubSpot signs each delivery (v3): base64 HMAC-SHA256, keyed with the app's client secret,
of method + URI + body + the `X-HubSpot-Request-Timestamp` (ms); a delivery older than five
minutes is refused. Salesforce has no signing of its own: an Apex callout (or Flow action)
signs the body with a shared secret the same way (hex HMAC-SHA256 of "<timestamp>.<body>",
headers `X-Deckgen-Timestamp` in seconds and `X-Deckgen-Signature`; the README has the
Apex). A signature already taken is refused as a replay by the caller (store
`first_delivery`); the job a stage change starts is idempotent per opportunity and stage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deckgen.errors import DeckgenError

__all__ = ["MAX_AGE", "StageChange", "WebhookRejected", "hubspot_events", "salesforce_events",
           "verify_hubspot", "verify_salesforce"]

MAX_AGE = 300.0  # seconds: HubSpot's own rule, used for both
# the characters HubSpot decodes in the URI it signs
HUBSPOT_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
                  "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


class WebhookRejected(DeckgenError):
    """Not a delivery we accept: no or wrong signature, too old, or replayed."""

    code = "webhook_rejected"
    http_status = 401


class WebhookInvalid(DeckgenError):
    code = "invalid_webhook"
    http_status = 400


@dataclass(frozen=True)
class StageChange:
    opportunity_id: str
    stage: str


def _fresh(timestamp: str | None, now: float, unit: float, name: str) -> None:
    try:
        sent = float(timestamp or "") / unit
    except ValueError:
        raise WebhookRejected(f"the {name} header is missing or not a number") from None
    if abs(now - sent) > MAX_AGE:
        raise WebhookRejected(f"the delivery is {abs(now - sent):.0f} s old; deliveries older "
                              f"than {MAX_AGE:.0f} s are refused")


def _hubspot_uri(uri: str) -> str:
    for encoded, char in HUBSPOT_DECODE.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def verify_hubspot(secret: str, method: str, uri: str, body: bytes,
                   headers: Mapping[str, str], now: float) -> str:
    """The delivery's signature when it is HubSpot's and fresh; WebhookRejected otherwise."""
    headers = {k.lower(): v for k, v in headers.items()}
    signature = headers.get("x-hubspot-signature-v3")
    timestamp = headers.get("x-hubspot-request-timestamp")
    if not signature:
        raise WebhookRejected("no X-HubSpot-Signature-v3 header")
    _fresh(timestamp, now, 1000.0, "X-HubSpot-Request-Timestamp")
    source = method.upper().encode() + _hubspot_uri(uri).encode() + body + \
        str(timestamp).encode()
    expected = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.encode()):
        raise WebhookRejected("the signature does not match this delivery")
    return signature


def verify_salesforce(secret: str, body: bytes, headers: Mapping[str, str],
                      now: float) -> str:
    headers = {k.lower(): v for k, v in headers.items()}
    signature = headers.get("x-deckgen-signature")
    timestamp = headers.get("x-deckgen-timestamp")
    if not signature:
        raise WebhookRejected("no X-Deckgen-Signature header")
    _fresh(timestamp, now, 1.0, "X-Deckgen-Timestamp")
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise WebhookRejected("the signature does not match this delivery")
    return signature


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookInvalid("the delivery is not JSON") from None


def _id(value: Any) -> str | None:
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    return text if text.isalnum() and len(text) <= 64 else None


def hubspot_events(body: bytes) -> tuple[list[StageChange], int]:
    """Deal stage changes in a HubSpot delivery (a JSON array of events), and how many other
    events it held. Both subscription styles: `deal.propertyChange` and the generic
    `object.propertyChange` on object type 0-3 (deals)."""
    events = _json(body)
    if not isinstance(events, list):
        raise WebhookInvalid("a HubSpot delivery is a JSON array of events")
    changes, ignored = [], 0
    for event in events:
        if not isinstance(event, dict):
            ignored += 1
            continue
        kind = event.get("subscriptionType")
        deal = kind == "deal.propertyChange" or (
            kind == "object.propertyChange" and event.get("objectTypeId") == "0-3")
        deal_id, stage = _id(event.get("objectId")), event.get("propertyValue")
        if deal and event.get("propertyName") == "dealstage" and deal_id and \
                isinstance(stage, str) and stage:
            changes.append(StageChange(deal_id, stage[:200]))
        else:
            ignored += 1
    return changes, ignored


def salesforce_events(body: bytes) -> tuple[list[StageChange], int]:
    """`{"opportunity_id", "stage"}` or a list of them, as the README's Apex sends."""
    data = _json(body)
    events = data if isinstance(data, list) else [data]
    changes, ignored = [], 0
    for event in events:
        opp = _id(event.get("opportunity_id")) if isinstance(event, dict) else None
        stage = event.get("stage") if isinstance(event, dict) else None
        if opp and isinstance(stage, str) and stage:
            changes.append(StageChange(opp, stage[:200]))
        else:
            ignored += 1
    return changes, ignored
