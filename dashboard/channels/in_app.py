"""The built-in feed: delivery is inserting feed rows in the engine's transaction."""

from __future__ import annotations

from sqlalchemy import insert

from dashboard.channels.base import Message, Result
from dashboard.extensions import db
from dashboard.models import Notification, utcnow

COLUMNS = ("recipient_id", "campaign_id", "user_id", "title", "body", "image_url", "action_url", "created_at")


class InAppChannel:
    name = "in_app"
    transactional = True
    content_key = "in_app"

    def close(self) -> None:
        pass

    def send_batch(self, messages: list[Message], deadline: float | None = None) -> list[Result]:
        """Raises when the database refuses a row: the engine then isolates the bad one."""
        if messages:
            now = utcnow()
            rows = [(m.recipient_id, m.campaign_id, m.user_id, m.content.get("title", ""), m.content.get("body", ""),
                     m.content.get("imageUrl") or None, m.content.get("actionUrl") or None, now) for m in messages]
            connection = db.session.connection()
            if connection.dialect.name == "postgresql":
                with connection.connection.driver_connection.cursor() as cur, \
                        cur.copy(f"COPY notifications ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                db.session.execute(insert(Notification.__table__), [dict(zip(COLUMNS, row, strict=True))
                                                                    for row in rows])
        return [Result(m.recipient_id, "sent") for m in messages]
