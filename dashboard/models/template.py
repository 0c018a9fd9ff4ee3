from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dashboard.extensions import db
from dashboard.models.base import UTCDateTime, utcnow


class TemplateStatus(enum.StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    ARCHIVED = "archived"


class Template(db.Model):
    """The addressable template; its content lives in immutable-once-approved versions."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), default="")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=TemplateStatus.DRAFT, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    versions: Mapped[list[TemplateVersion]] = relationship(
        back_populates="template", order_by="TemplateVersion.version", cascade="all, delete-orphan"
    )

    @property
    def current(self) -> TemplateVersion:
        return next(v for v in self.versions if v.version == self.version)


class TemplateVersion(db.Model):
    """One version's content. Drafts edit their latest version in place; an approved
    version is never changed again (campaigns pin it)."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_pk", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_pk: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    channels: Mapped[dict] = mapped_column(JSON, default=dict)
    variable_schema: Mapped[list] = mapped_column(JSON, default=list)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(300), default="")
    # Four-eyes: the account that last edited this version, and who approved it.
    edited_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(300), nullable=True)

    template: Mapped[Template] = relationship(back_populates="versions")
