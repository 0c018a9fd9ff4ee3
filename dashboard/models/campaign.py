from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import (
    true as sa_true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dashboard.extensions import db
from dashboard.models.base import UTCDateTime, utcnow
from dashboard.models.template import Template


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Channel(enum.StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryMode(enum.StrEnum):
    REALTIME = "realtime"
    BATCH = "batch"


class RecipientStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Campaign(db.Model):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    template_pk: Mapped[int] = mapped_column(ForeignKey("templates.id"), index=True)
    template_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # pinned at send
    channel: Mapped[str] = mapped_column(String(16), default=Channel.IN_APP)
    delivery_mode: Mapped[str] = mapped_column(String(16), default=DeliveryMode.BATCH)
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    failure_threshold: Mapped[float] = mapped_column(Float, default=0.5)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT, index=True)
    # Bumped by every draft change: staged uploads and previews made before it are stale.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set by the one planning run that wins the claim: a send is split into chunks exactly once.
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "Retry failed" copies: the campaign this draft's recipients came from.
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True,
                                                    index=True)
    # "campaign", or "notification" for a one-call send (same engine, hidden from the campaigns list)
    kind: Mapped[str] = mapped_column(String(16), default="campaign", server_default="campaign", index=True)
    # Delivery control (issue 14). Paused: why, when, by whom ("system" for a hold or a halt).
    paused_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paused_by: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Canary: size or percent of the audience first (a sample reproducible from the seed), then a
    # hold; canary_state None (no canary) | "sending" (the wave) | "held" | "done" (the rest planned).
    canary_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    canary_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    canary_hold_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    canary_seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    canary_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Automatic halt: pause when more than halt_percent of the last halt_window outcomes failed.
    halt_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    halt_window: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Spread: a per-campaign rate cap so the send takes about this long.
    spread_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Four-eyes: a large send waits (scheduled) until a second account approves it.
    approval_requested_by: Mapped[str | None] = mapped_column(String(300), nullable=True)
    approval_requested_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    approval_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(300), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Recipient time (SPEC §10): sendAt {localTime, date, fallbackZone, passed}; quiet hours and
    # frequency caps apply unless switched off for this campaign (one-call sends: off unless asked).
    send_at: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    quiet_hours: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    frequency_cap: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    wave_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # timed waves planned
    # Audience (issue 16): a saved segment or list instead of hand-added/CSV recipients; the
    # recipients are materialised from it (one INSERT ... SELECT) at send or at "freeze now".
    audience_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # segment | list
    audience_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    audience_name: Mapped[str | None] = mapped_column(String(200), nullable=True)  # as it was when chosen
    audience_frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    audience_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Email links go through the signed click redirect unless switched off for this campaign.
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    read_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    clicked_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    created_by: Mapped[str] = mapped_column(String(300), default="")
    # Counters kept with the campaign so pages never count recipient rows.
    total: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)

    template: Mapped[Template] = relationship()

    @property
    def is_draft(self) -> bool:
        return self.status == CampaignStatus.DRAFT

    @property
    def awaiting_approval(self) -> bool:
        """Four-eyes: sent by one account, waiting for a second one's approval."""
        return (self.status == CampaignStatus.SCHEDULED and self.approval_requested_by is not None
                and self.approved_at is None)


class Recipient(db.Model):
    __tablename__ = "recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "user_id"),
        Index("ix_recipients_campaign_status", "campaign_id", "status"),
        Index("ix_recipients_user_id", "user_id"),
        # Only canary recipients are in it: the wave's results cost a few rows, not the campaign
        # (timed waves, numbered from 2, stay out of it: giving 100k recipients their waves adds no entries).
        Index("ix_recipients_canary", "campaign_id", "status", postgresql_where=text("wave = 1"),
              sqlite_where=text("wave = 1")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128))
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=RecipientStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # 1 for a canary recipient (the first wave); None otherwise.
    wave: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)


class CampaignWave(db.Model):
    """One UTC instant of a campaign's send: the recipients whose local time (or the end of whose
    quiet hours) falls on it. Recipients carry the wave's number (from FIRST_TIMED_WAVE; 1 is the
    canary's); the wave's chunks are queued for its instant with RQ's scheduler."""

    __tablename__ = "campaign_waves"
    __table_args__ = (UniqueConstraint("campaign_id", "number", name="uq_campaign_waves_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(SmallInteger)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    local_time: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "09:00" in each zone
    reason: Mapped[str] = mapped_column(String(16))  # local | quiet | now | passed
    zones: Mapped[list] = mapped_column(JSON, default=list)
    recipients: Mapped[int] = mapped_column(Integer, default=0)


FIRST_TIMED_WAVE = 2


class CampaignChunk(db.Model):
    """A planned slice of a send (recipient ids lo..hi): the database, not RQ, knows what is
    left to do, so lost jobs (worker killed, Redis restarted) are found and re-enqueued."""

    __tablename__ = "campaign_chunks"
    __table_args__ = (Index("ix_campaign_chunks_open", "campaign_id", "done"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lo: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hi: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    # 1: a canary chunk (only its wave-1 recipients); 0: the main send.
    wave: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    # Job failures (an exception, a timeout, a lost job); the chunk gives up after MAX_JOB_FAILURES.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Bumped at every (re-)enqueue: each run of the chunk is its own RQ job.
    run: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # External channels: one run at a time per chunk (a lease renewed at every step by its holder).
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)

    @property
    def job_id(self) -> str:
        return job_id_for(self.id, self.run)


def job_id_for(chunk_id: int, run: int) -> str:
    return f"herald-chunk-{chunk_id}-{run}"
