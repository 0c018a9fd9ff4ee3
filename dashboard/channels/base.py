"""The Channel protocol: the sending engine hands a channel a batch of rendered messages
and gets one result per message; it knows nothing channel-specific."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

# "unsent": not attempted because the slice ended first (stays pending, no attempt counted)
Outcome = Literal["sent", "transient", "permanent", "unsent"]


@dataclass
class Message:
    recipient_id: int
    campaign_id: int
    user_id: str
    email: str | None
    content: dict[str, str]          # rendered fields: title/body/imageUrl/actionUrl or subject/text/html
    variables: dict = field(default_factory=dict)
    test: bool = False               # a test send: labelled "[Test]", webhooks carry "test": true


@dataclass
class Result:
    recipient_id: int
    outcome: Outcome
    error: str | None = None
    retry_after: float | None = None


class Channel(Protocol):
    name: str
    # True when delivery is a write in the caller's database transaction (exactly-once);
    # False for external channels (at-least-once, results recorded after the call).
    transactional: bool
    content_key: str                 # which template content it renders: "in_app" or "email"

    def send_batch(self, messages: list[Message], deadline: float | None = None) -> list[Result]:
        """One result per message; a message that cannot be built or sent fails alone (never raises
        for one message). With a deadline (time.monotonic()), nothing starts after it ("unsent")
        and no call runs more than a second past it."""

    def close(self) -> None:
        """Release connections kept between batches of one slice."""


class ChannelUnavailable(Exception):
    """The channel cannot be used at all (not configured): the campaign fails as a whole."""


def reason(prefix: str, err: BaseException) -> str:
    """A short, single-line reason for a message a channel could not build or send."""
    if isinstance(err, UnicodeError):
        return f"{prefix}: a value is not valid Unicode text (it contains an unpaired surrogate)"
    text = " ".join(str(err).split())
    return f"{prefix}: {text or type(err).__name__}"[:300]


def call_timeout(configured: float, deadline: float | None) -> float | None:
    """The timeout for a network call starting now; None when the deadline has passed."""
    if deadline is None:
        return configured
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    return max(0.5, min(configured, left + 1.0))
