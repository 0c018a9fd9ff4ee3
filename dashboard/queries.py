"""Reads for pages and the API: lists, lookups, pagination. No writes here."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from sqlalchemy import BigInteger, Select, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.inputs import MAX_BIG_ID, MAX_ID
from dashboard.models import AuditEvent, Campaign, Recipient, Template, User
from dashboard.services import channel_settings

MAX_LIMIT = 100


@dataclass
class Page:
    items: list
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, maximum: int = MAX_BIG_ID) -> int | None:
    """The id inside a cursor: a whole number the id column can hold, or a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))["id"]
    except (ValueError, KeyError, TypeError, IndexError):
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise ValidationError("cursor is not valid; use nextCursor from the previous page",
                              [{"field": "cursor", "message": "not a valid cursor"}])
    return value


def parse_limit(raw, default: int = 50) -> int:
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        limit = -1
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}",
                              [{"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"}])
    return limit


def paginate(stmt: Select, id_column, limit: int, cursor: str | None, newest_first: bool = True) -> Page:
    """Keyset pagination on the id column (no OFFSET, no COUNT)."""
    after = decode_cursor(cursor, MAX_BIG_ID if isinstance(id_column.type, BigInteger) else MAX_ID)
    if after is not None:
        stmt = stmt.where(id_column < after if newest_first else id_column > after)
    order = id_column.desc() if newest_first else id_column.asc()
    rows = db.session.scalars(stmt.order_by(order).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)


def templates(status: str | None = None, search: str | None = None, *, limit: int = 50,
              cursor: str | None = None) -> Page:
    stmt = select(Template).options(selectinload(Template.versions))  # the list shows each one's channels
    if status:
        stmt = stmt.where(Template.status == status)
    if search:
        like = f"%{search.strip().lower()}%"
        stmt = stmt.where(or_(Template.name.ilike(like), Template.template_id.ilike(like),
                              Template.category.ilike(like)))
    return paginate(stmt, Template.id, limit, cursor)


def campaigns(status: str | None = None, search: str | None = None, *, limit: int = 50,
              cursor: str | None = None, kind: str = "campaign") -> Page:
    stmt = select(Campaign).options(joinedload(Campaign.template)).where(Campaign.kind == kind)
    if status:
        stmt = stmt.where(Campaign.status == status)
    if search:
        stmt = stmt.where(Campaign.name.ilike(f"%{search.strip()}%"))
    return paginate(stmt, Campaign.id, limit, cursor)


def recipients(campaign_id: int, status: str | None = None, user_id: str | None = None, *,
               limit: int = 50, cursor: str | None = None) -> Page:
    """One page of a campaign's recipients; uses the (campaign_id, ...) indexes, never counts."""
    stmt = select(Recipient).where(Recipient.campaign_id == campaign_id)
    if status:
        stmt = stmt.where(Recipient.status == status)
    if user_id:
        prefix = user_id.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Recipient.user_id.like(f"{prefix}%", escape="\\"))
    return paginate(stmt, Recipient.id, limit, cursor, newest_first=False)


def recipients_for_export(campaign_id: int, batch: int = 5000):
    """Every recipient of a campaign, streamed in id order in batches."""
    last = 0
    while True:
        rows = db.session.scalars(select(Recipient).where(Recipient.campaign_id == campaign_id, Recipient.id > last)
                                  .order_by(Recipient.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        db.session.expunge_all()


def users(search: str | None, *, limit: int = 50, after: str | None = None) -> list[User]:
    stmt = select(User)
    if search:
        like = f"%{search.strip()}%"
        stmt = stmt.where(or_(User.user_id.ilike(like), User.name.ilike(like), User.email.ilike(like)))
    if after:
        stmt = stmt.where(User.user_id > after)
    return db.session.scalars(stmt.order_by(User.user_id).limit(limit)).all()


def deliveries_for_user(user_id: str, limit: int = 100) -> list:
    """Every campaign and one-call send that targeted a user, newest first (uses ix_recipients_user_id)."""
    stmt = (select(Recipient, Campaign).join(Campaign, Campaign.id == Recipient.campaign_id)
            .where(Recipient.user_id == user_id).order_by(Recipient.id.desc()).limit(limit))
    return db.session.execute(stmt).all()


def audit_events(campaign_id: int | None, account_id: int | None, *, limit: int = 50,
                 cursor: str | None = None) -> Page:
    stmt = select(AuditEvent)
    if account_id is not None and not 0 < account_id <= MAX_ID:
        return Page([], None)  # no such account (and beyond what the column holds)
    if campaign_id is not None:
        stmt = stmt.where(AuditEvent.target_type == "campaign", AuditEvent.target_id == str(campaign_id))
    if account_id is not None:
        stmt = stmt.where(AuditEvent.actor_account_id == account_id)
    return paginate(stmt, AuditEvent.id, limit, cursor)


def engagement(campaign: Campaign) -> dict:
    delivered = campaign.sent if campaign.channel == "in_app" else campaign.sent

    def rate(n: int) -> float:
        return round(100 * n / delivered, 1) if delivered else 0.0

    return {"delivered": delivered, "read": campaign.read_count, "clicked": campaign.clicked_count,
            "readRate": rate(campaign.read_count), "clickRate": rate(campaign.clicked_count)}


def delivery_timeline(campaign: Campaign, buckets: int = 30) -> list[tuple[int, int]]:
    """Deliveries per time bucket from the recipients' sent_at (one aggregate query)."""
    if not campaign.started_at or not campaign.sent:
        return []
    end = campaign.completed_at or campaign.progress_at or campaign.started_at
    span = max((end - campaign.started_at).total_seconds(), 1.0)
    width = max(span / buckets, 1.0)
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        seconds = func.extract("epoch", Recipient.sent_at - campaign.started_at)
    else:
        seconds = (func.julianday(Recipient.sent_at) - func.julianday(campaign.started_at.replace(tzinfo=None))) * 86400
    bucket = func.floor(seconds / width)
    rows = db.session.execute(select(bucket, func.count()).where(
        Recipient.campaign_id == campaign.id, Recipient.sent_at.is_not(None)).group_by(bucket)).all()
    counts = {int(b or 0): n for b, n in rows}
    last = max(counts) if counts else 0
    return [(i, counts.get(i, 0)) for i in range(0, max(last, buckets - 1) + 1)][: buckets + 1]


REALTIME_JOBS_PER_SECOND = 50  # one forked job per recipient on one worker (measured ~80/s)


@dataclass
class Estimate:
    seconds: int
    rate: float
    limited_by: str  # "the channel's rate limit" or "one job per recipient"


def send_estimate(campaign: Campaign) -> Estimate:
    """How long a send will take: batch sends run at the channel's rate limit (the shared bucket)."""
    if campaign.delivery_mode == "realtime":
        rate, why = float(REALTIME_JOBS_PER_SECOND), "one job per recipient"
    else:
        rate, why = channel_settings.get(campaign.channel).rate_limit, "the channel's rate limit"
    return Estimate(int(-(-campaign.total // max(rate, 0.001))), rate, why)


def recent_failures(campaign: Campaign, limit: int = 5) -> list:
    """The latest failed recipients with their reasons, for the live status."""
    return db.session.execute(
        select(Recipient.user_id, Recipient.last_error, Recipient.updated_at)
        .where(Recipient.campaign_id == campaign.id, Recipient.status == "failed")
        .order_by(Recipient.id.desc()).limit(limit)).all()


@dataclass
class MissingRequired:
    keys: list[str]
    count: int
    examples: list[str]


def missing_required(campaign: Campaign, examples: int = 5) -> MissingRequired | None:
    """Recipients left without a value for a required variable (send refuses them), before anyone presses Send."""
    defaults = campaign.variables or {}
    keys = [v["key"] for v in campaign.template.current.variable_schema if v.get("required")
            and defaults.get(v["key"]) in (None, "") and v.get("defaultValue") in (None, "")]
    if not keys or not campaign.total:
        return None
    where = (Recipient.campaign_id == campaign.id,
             or_(*[or_(Recipient.variables[k].as_string().is_(None), Recipient.variables[k].as_string() == "")
                   for k in keys]))
    count = db.session.scalar(select(func.count()).select_from(Recipient).where(*where))
    if not count:
        return None
    few = db.session.scalars(select(Recipient.user_id).where(*where).order_by(Recipient.id).limit(examples)).all()
    return MissingRequired(keys, count, list(few))
