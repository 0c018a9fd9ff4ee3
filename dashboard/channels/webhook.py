"""Webhooks signed per Standard Webhooks (standardwebhooks.com): concurrent POSTs over a pooled
client that connects only to public addresses (channels/addresses.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx

from dashboard.channels import addresses
from dashboard.channels.base import ChannelUnavailable, Message, Result, call_timeout, reason
from dashboard.models import utcnow

CONCURRENCY = 16
SECRET_PREFIX = "whsec_"
BODY_LIMIT = 64 * 1024  # read (and discard) at most this much of an answer, so its connection can be reused


def generate_secret() -> str:
    """A new signing secret: whsec_ and 32 random bytes in base64 (what receivers paste as is)."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 part of whsec_…; any other string (an earlier
    version's secret) is its own UTF-8 bytes. ValueError when a whsec_ secret is malformed."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        encoded = secret[len(SECRET_PREFIX):]
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a whsec_ secret must hold 24 to 64 bytes")
    return key


def message_id(m: Message) -> str:
    """webhook-id: the same for every attempt at one (campaign, user), so receivers can dedupe."""
    return "msg_" + hashlib.sha256(f"{m.campaign_id}:{m.user_id}".encode()).hexdigest()[:32]


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def legacy_signature(key: bytes, body: bytes) -> str:
    """X-Herald-Signature of earlier versions (body only, no timestamp): deprecated, sent for one release."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def status_text(code: int) -> str:
    """What a failure records about an answer: its status code and the standard phrase, never its body."""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


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

    def __init__(self, url: str, secret: str, timeout: float = 10.0, allow_private: bool = False):
        if not url or not url.startswith(("http://", "https://")):
            raise ChannelUnavailable("The webhook channel has no URL configured.")
        if not secret:
            raise ChannelUnavailable("The webhook channel has no signing secret: save its settings or rotate "
                                     "the secret in Admin → Channels.")
        try:
            self.key = secret_key(secret)
        except ValueError as err:
            raise ChannelUnavailable(f"The webhook signing secret is not usable ({err}): rotate it.") from None
        self.url = url
        self.timeout = timeout
        self.allow_private = allow_private
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None

    def payload(self, m: Message) -> bytes:
        body = {"campaignId": m.campaign_id, "notificationId": m.recipient_id, "userId": m.user_id,
                "title": m.content.get("title", ""), "body": m.content.get("body", ""),
                "imageUrl": m.content.get("imageUrl") or None, "actionUrl": m.content.get("actionUrl") or None,
                "variables": m.variables}
        if m.test:
            body["test"] = True
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    def headers(self, m: Message, body: bytes) -> dict[str, str]:
        msg_id, timestamp = message_id(m), int(time.time())
        return {"Content-Type": "application/json", "User-Agent": "Herald/1",
                "Idempotency-Key": f"{m.campaign_id}:{m.user_id}",
                "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": signature(self.key, msg_id, timestamp, body),
                "X-Herald-Signature": legacy_signature(self.key, body)}

    def _post(self, client: httpx.Client, m: Message, deadline: float | None) -> Result:
        timeout = call_timeout(self.timeout, deadline)
        if timeout is None:
            return Result(m.recipient_id, "unsent")
        try:
            body = self.payload(m)
            request = client.build_request("POST", self.url, content=body, headers=self.headers(m, body),
                                           timeout=timeout)
        except Exception as err:  # noqa: BLE001 - this recipient's data
            return Result(m.recipient_id, "permanent", reason("could not build the webhook request", err))
        try:
            response = client.send(request, stream=True)
        except addresses.BlockedAddress as err:
            return Result(m.recipient_id, "permanent", str(err))
        except httpx.TimeoutException:
            return Result(m.recipient_id, "transient", f"timed out after {timeout:g} s")
        except httpx.LocalProtocolError as err:  # e.g. a header value with a line break
            return Result(m.recipient_id, "permanent", reason("the request could not be sent", err))
        except httpx.HTTPError as err:
            return Result(m.recipient_id, "transient", f"connection failed: {type(err).__name__}")
        except Exception as err:  # noqa: BLE001
            return Result(m.recipient_id, "permanent", reason("the request could not be sent", err))
        code, retry_after = response.status_code, response.headers.get("Retry-After")
        _discard(response)
        if 200 <= code < 300:
            return Result(m.recipient_id, "sent")
        if code == 429 or code >= 500:
            return Result(m.recipient_id, "transient", status_text(code), retry_after_seconds(retry_after))
        return Result(m.recipient_id, "permanent", status_text(code))

    def send_batch(self, messages: list[Message], deadline: float | None = None) -> list[Result]:
        """Concurrent POSTs over a pooled client kept across the batches of a slice."""
        if not messages:
            return []
        if self._client is None:
            limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
            self._client = httpx.Client(timeout=self.timeout, trust_env=False, follow_redirects=False,
                                        transport=addresses.transport(limits, self.allow_private))
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


def _discard(response: httpx.Response) -> None:
    """Read a little of the answer's body (never kept: the status decides) and release it."""
    seen = 0
    try:
        for chunk in response.iter_raw():
            seen += len(chunk)
            if seen > BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass
    finally:
        response.close()
