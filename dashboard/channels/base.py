"""The Channel protocol: the sending engine hands a channel a batch of rendered messages
and gets one result per message; it knows nothing channel-specific."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["sent", "transient", "permanent"]


@dataclass
class Message:
    recipient_id: int
    campaign_id: int
    user_id: str
    email: str | None
    content: dict[str, str]          # rendered fields: title/body/imageUrl/actionUrl or subject/text/html
    variables: dict = field(default_factory=dict)


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

    def send_batch(self, messages: list[Message]) -> list[Result]: ...


class ChannelUnavailable(Exception):
    """The channel cannot be used at all (not configured): the campaign fails as a whole."""
