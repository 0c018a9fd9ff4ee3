"""Signed HTTP POSTs to a configured URL with a pooled client and concurrent requests."""

from __future__ import annotations

import hashlib
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime

import httpx

from dashboard.channels.base import ChannelUnavailable, Message, Result
from dashboard.models import utcnow

CONCURRENCY = 16


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
        except (TypeError, ValueError):
            return None


class WebhookChannel:
    name = "webhook"
    transactional = False
    content_key = "in_app"

    def __init__(self, url: str, secret: str, timeout: float = 10.0):
        if not url or not url.startswith(("http://", "https://")):
            raise ChannelUnavailable("The webhook channel has no URL configured.")
        self.url = url
        self.secret = secret or ""
        self.timeout = timeout

    def payload(self, m: Message) -> bytes:
        body = {"campaignId": m.campaign_id, "notificationId": m.recipient_id, "userId": m.user_id,
                "title": m.content.get("title", ""), "body": m.content.get("body", ""),
                "imageUrl": m.content.get("imageUrl") or None, "actionUrl": m.content.get("actionUrl") or None,
                "variables": m.variables}
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    def _post(self, client: httpx.Client, m: Message) -> Result:
        body = self.payload(m)
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"{m.campaign_id}:{m.user_id}",
                   "X-Herald-Signature": signature(self.secret, body), "User-Agent": "Herald/1"}
        try:
            response = client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Result(m.recipient_id, "transient", f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as err:
            return Result(m.recipient_id, "transient", f"connection failed: {type(err).__name__}")
        code = response.status_code
        if 200 <= code < 300:
            return Result(m.recipient_id, "sent")
        reason = f"HTTP {code} {response.text[:200]}".strip()
        if code == 429 or code >= 500:
            return Result(m.recipient_id, "transient", reason, retry_after_seconds(response.headers.get("Retry-After")))
        return Result(m.recipient_id, "permanent", reason)

    def send_batch(self, messages: list[Message]) -> list[Result]:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        with httpx.Client(timeout=self.timeout, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=min(CONCURRENCY, max(1, len(messages)))) as pool:
            return list(pool.map(lambda m: self._post(client, m), messages))
