from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.extensions import db
from dashboard.models.base import UTCDateTime, utcnow

# jsonb on PostgreSQL (indexed with GIN jsonb_path_ops: equality filters are containment
# lookups), JSON1 text on SQLite.
Attributes = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer, "sqlite")


class User(db.Model):
    """The optional directory of end users (email delivery needs an address from here or the CSV)."""

    __tablename__ = "users"
    __table_args__ = (Index("ix_users_attributes", "attributes", postgresql_using="gin",
                            postgresql_ops={"attributes": "jsonb_path_ops"}),)

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Typed attributes {name: value}: strings, numbers, booleans, dates as "YYYY-MM-DD" strings
    # (ISO dates compare correctly as text); each name's type is in user_attributes.
    attributes: Mapped[dict] = mapped_column(Attributes, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserAttribute(db.Model):
    """The registry of attribute names and their types (string | number | boolean | date)."""

    __tablename__ = "user_attributes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Segment(db.Model):
    """A saved filter over the user directory (definition: see services/segments.py)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    definition: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserList(db.Model):
    """A static, named set of userIds (need not be in the directory)."""

    __tablename__ = "user_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ListMember(db.Model):
    __tablename__ = "user_list_members"
    __table_args__ = (Index("ix_user_list_members_user_id", "user_id"),)

    list_id: Mapped[int] = mapped_column(ForeignKey("user_lists.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkClick(db.Model):
    """A recipient's first click on one link of an email (the signed click redirect): one row per
    (recipient, url), so a link is counted once per recipient however often it is followed."""

    __tablename__ = "link_clicks"
    __table_args__ = (UniqueConstraint("recipient_id", "url", name="uq_link_clicks_recipient_url"),
                      Index("ix_link_clicks_campaign", "campaign_id", "clicked_at"),
                      Index("ix_link_clicks_user", "user_id", "campaign_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(BigId, ForeignKey("recipients.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
