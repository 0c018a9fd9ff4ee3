from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.extensions import db
from dashboard.models.base import UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class Notification(db.Model):
    """An in-app feed item. UNIQUE(recipient_id) makes a second delivery impossible."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_feed", "user_id", "id"),
                      # Segments' "read nothing in the last N days": a range scan of recent reads.
                      Index("ix_notifications_read", "read_at", "user_id",
                            postgresql_where=text("read_at IS NOT NULL"), sqlite_where=text("read_at IS NOT NULL")))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recipient_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("recipients.id", ondelete="SET NULL"), unique=True, nullable=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"),
                                                    nullable=True, index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    action_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Archived by the user in the inbox: out of their feed and unread count (the campaign's counters keep it).
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
