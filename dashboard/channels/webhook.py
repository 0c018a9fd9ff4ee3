"""Signed HTTP POSTs to a configured URL with a pooled client and concurrent requests."""

from __future__ import annotations

import hashlib
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime

import httpx

from dashboard.channels.base import ChannelUnavailable, Message, Result, call_timeout, reason
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
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None

    def payload(self, m: Message) -> bytes:
        body = {"campaignId": m.campaign_id, "notificationId": m.recipient_id, "userId": m.user_id,
                "title": m.content.get("title", ""), "body": m.content.get("body", ""),
                "imageUrl": m.content.get("imageUrl") or None, "actionUrl": m.content.get("actionUrl") or None,
                "variables": m.variables}
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    def _post(self, client: httpx.Client, m: Message, deadline: float | None) -> Result:
        timeout = call_timeout(self.timeout, deadline)
        if timeout is None:
            return Result(m.recipient_id, "unsent")
        try:
            body = self.payload(m)
            headers = {"Content-Type": "application/json", "Idempotency-Key": f"{m.campaign_id}:{m.user_id}",
                       "X-Herald-Signature": signature(self.secret, body), "User-Agent": "Herald/1"}
            request = client.build_request("POST", self.url, content=body, headers=headers, timeout=timeout)
        except Exception as err:  # noqa: BLE001 - this recipient's data
            return Result(m.recipient_id, "permanent", reason("could not build the webhook request", err))
        try:
            response = client.send(request)
        except httpx.TimeoutException:
            return Result(m.recipient_id, "transient", f"timed out after {timeout:g} s")
        except httpx.LocalProtocolError as err:  # e.g. a header value with a line break
            return Result(m.recipient_id, "permanent", reason("the request could not be sent", err))
        except httpx.HTTPError as err:
            return Result(m.recipient_id, "transient", f"connection failed: {type(err).__name__}")
        except Exception as err:  # noqa: BLE001
            return Result(m.recipient_id, "permanent", reason("the request could not be sent", err))
        code = response.status_code
        if 200 <= code < 300:
            return Result(m.recipient_id, "sent")
        text = f"HTTP {code} {response.text[:200]}".strip()
        if code == 429 or code >= 500:
            return Result(m.recipient_id, "transient", text, retry_after_seconds(response.headers.get("Retry-After")))
        return Result(m.recipient_id, "permanent", text)

    def send_batch(self, messages: list[Message], deadline: float | None = None) -> list[Result]:
        """Concurrent POSTs over a pooled client kept across the batches of a slice."""
        if not messages:
            return []
        if self._client is None:
            limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
            self._client = httpx.Client(timeout=self.timeout, limits=limits)
            self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY)
        client = self._client
        return list(self._pool.map(lambda m: self._post(client, m, deadline), messages))

    def close(self) -> None:
        client, pool = self._client, self._pool
        self._client = self._pool = None
        if pool is not None:
            pool.shutdown(wait=True)
        if client is not None:
            client.close()
