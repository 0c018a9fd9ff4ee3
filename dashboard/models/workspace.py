from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.extensions import db
from dashboard.models.base import UTCDateTime, utcnow


class WorkspaceSetting(db.Model):
    """Workspace-wide settings, one row per key (e.g. "four_eyes": {"enabled": true, "threshold": 1000})."""

    __tablename__ = "workspace_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(300), default="")
