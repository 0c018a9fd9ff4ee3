"""The built-in feed: delivery is inserting feed rows in the engine's transaction."""

from __future__ import annotations

from sqlalchemy import insert

from dashboard.channels.base import Message, Result
from dashboard.extensions import db
from dashboard.models import Notification, utcnow


class InAppChannel:
    name = "in_app"
    transactional = True
    content_key = "in_app"

    def send_batch(self, messages: list[Message]) -> list[Result]:
        if messages:
            now = utcnow()
            db.session.execute(insert(Notification), [
                {"recipient_id": m.recipient_id, "campaign_id": m.campaign_id, "user_id": m.user_id,
                 "title": m.content.get("title", ""), "body": m.content.get("body", ""),
                 "image_url": m.content.get("imageUrl") or None, "action_url": m.content.get("actionUrl") or None,
                 "created_at": now}
                for m in messages
            ])
        return [Result(m.recipient_id, "sent") for m in messages]
