from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.extensions import db
from dashboard.models.base import UTCDateTime, utcnow


class ChannelConfig(db.Model):
    """Per-channel settings; `secrets` is write-only (never rendered or returned)."""

    __tablename__ = "channel_configs"

    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    rate_limit: Mapped[float] = mapped_column(Float, default=100.0)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    secrets: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
