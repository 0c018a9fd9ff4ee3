"""A campaign's engagement report: totals, delivered/read/clicked over time, per-link clicks, rates
against the workspace's last 10 campaigns, failures by reason, and the per-recipient export.
Every figure is a grouped query (a few rows back, never the campaign's recipients), so the
report costs the same shape of work for 100 recipients or 1,000,000."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import func, select

from dashboard.errors import ValidationError
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, CampaignStatus, LinkClick, Notification, Recipient, RecipientStatus
from dashboard.services.uploads import neutralise

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
BENCHMARK_SIZE = 10
TOP_FAILURES = 10
TOP_LINKS = 50
EXPORT_HEADER = ["userId", "status", "deliveredAt", "readAt", "clickedAt", "clickedLinks", "lastError"]
EXPORT_PAGE = 5000
# The grouped queries read every recipient row of the campaign (about 1 s for 1,000,000 on the
# reference machine), so their result is kept in Redis under a key made of the campaign's
# counters: any delivery, read or click changes a counter and so the key; an unchanged campaign
# (a finished one being looked at again) answers from the cache.
CACHE_SECONDS = 600
log = logging.getLogger(__name__)


def parse_bucket(value: str | None, default: str = "hour") -> str:
    if value in (None, ""):
        return default
    if value not in BUCKETS:
        raise ValidationError("bucket: must be hour or day",
                              [{"field": "bucket", "message": "must be hour or day"}])
    return value


def _sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def _bucket_expr(column, bucket: str):
    """The UTC start of the column's hour or day, grouped in the database."""
    if _sqlite():
        return func.strftime("%Y-%m-%d %H:00:00" if bucket == "hour" else "%Y-%m-%d 00:00:00", column)
    return func.date_trunc(bucket, func.timezone("UTC", column))


def _as_utc(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _grouped(stmt_column, bucket: str, *where, source=None) -> dict[datetime, int]:
    b = _bucket_expr(stmt_column, bucket).label("b")
    stmt = select(b, func.count()).group_by(b)
    if source is not None:
        stmt = stmt.select_from(source)
    return {_as_utc(t): n for t, n in db.session.execute(stmt.where(*where)).all() if t is not None}


def _is_email(campaign: Campaign) -> bool:
    return campaign.channel == "email"


def series(campaign: Campaign, bucket: str) -> dict:
    """Delivered (recipients' sent_at), read and clicked (in-app: the notifications' read/click
    times; email: each recipient's first tracked click) per bucket, every bucket from the first
    event to the last, zeros included."""
    delivered = _grouped(Recipient.sent_at, bucket, Recipient.campaign_id == campaign.id,
                         Recipient.status == RecipientStatus.SENT, Recipient.sent_at.is_not(None))
    read: dict[datetime, int] = {}
    if _is_email(campaign):
        first = (select(func.min(LinkClick.clicked_at).label("at")).where(LinkClick.campaign_id == campaign.id)
                 .group_by(LinkClick.recipient_id).subquery())
        clicked = _grouped(first.c.at, bucket, source=first)
    else:
        read = _grouped(Notification.read_at, bucket, Notification.campaign_id == campaign.id,
                        Notification.read_at.is_not(None))
        clicked = _grouped(Notification.clicked_at, bucket, Notification.campaign_id == campaign.id,
                           Notification.clicked_at.is_not(None))
    instants = [*delivered, *read, *clicked]
    points = []
    if instants:
        step, t, last = BUCKETS[bucket], min(instants), max(instants)
        while t <= last:
            points.append({"t": t.isoformat(), "delivered": delivered.get(t, 0), "read": read.get(t, 0),
                           "clicked": clicked.get(t, 0)})
            t += step
    return {"bucket": bucket, "points": points}


def links(campaign: Campaign) -> list[dict]:
    """Per link: unique clickers and its share of all link clicks (email: the tracked links;
    in-app: the action URL of the clicked notifications)."""
    if _is_email(campaign):
        url = LinkClick.url
        stmt = select(url, func.count()).where(LinkClick.campaign_id == campaign.id).group_by(url)
    else:
        url = Notification.action_url
        stmt = (select(url, func.count())
                .where(Notification.campaign_id == campaign.id, Notification.clicked_at.is_not(None)).group_by(url))
    rows = db.session.execute(stmt.order_by(func.count().desc(), url).limit(TOP_LINKS)).all()
    total = sum(n for _, n in rows)
    return [{"url": url or "", "clickers": n, "share": round(100 * n / total, 1) if total else 0.0}
            for url, n in rows]


def _rate(n: int, delivered: int) -> float:
    return round(100 * n / delivered, 1) if delivered else 0.0


def benchmark(campaign: Campaign, read_rate: float, click_rate: float) -> dict:
    """The mean read and click rates of the workspace's last 10 sent campaigns (not one-call
    sends, not this one; ones that delivered nothing have no rate and are left out)."""
    rows = db.session.execute(
        select(Campaign.sent, Campaign.read_count, Campaign.clicked_count)
        .where(Campaign.kind == "campaign", Campaign.status == CampaignStatus.SENT, Campaign.id != campaign.id,
               Campaign.sent > 0)
        .order_by(Campaign.completed_at.desc().nulls_last(), Campaign.id.desc()).limit(BENCHMARK_SIZE)).all()
    if not rows:
        return {"campaigns": 0, "readRate": None, "clickRate": None, "readRateDiff": None, "clickRateDiff": None}
    avg_read = round(sum(100 * r.read_count / r.sent for r in rows) / len(rows), 1)
    avg_click = round(sum(100 * r.clicked_count / r.sent for r in rows) / len(rows), 1)
    return {"campaigns": len(rows), "readRate": avg_read, "clickRate": avg_click,
            "readRateDiff": round(read_rate - avg_read, 1), "clickRateDiff": round(click_rate - avg_click, 1)}


def failures(campaign: Campaign) -> list[dict]:
    n = func.count().label("n")
    rows = db.session.execute(
        select(Recipient.last_error, n)
        .where(Recipient.campaign_id == campaign.id, Recipient.status == RecipientStatus.FAILED)
        .group_by(Recipient.last_error).order_by(n.desc(), Recipient.last_error).limit(TOP_FAILURES)).all()
    return [{"reason": reason or "no reason recorded", "count": count} for reason, count in rows]


def totals(campaign: Campaign) -> dict:
    delivered = campaign.sent
    return {"recipients": campaign.total, "delivered": delivered, "failed": campaign.failed,
            "skipped": campaign.skipped, "pending": campaign.pending, "read": campaign.read_count,
            "clicked": campaign.clicked_count, "readRate": _rate(campaign.read_count, delivered),
            "clickRate": _rate(campaign.clicked_count, delivered)}


def _cache_key(campaign: Campaign, bucket: str) -> str:
    parts = [campaign.id, bucket, campaign.total, campaign.sent, campaign.failed, campaign.skipped,
             campaign.read_count, campaign.clicked_count]
    if _is_email(campaign):  # a second link of one person changes no counter: count the rows
        parts.append(db.session.scalar(select(func.count()).select_from(LinkClick)
                                       .where(LinkClick.campaign_id == campaign.id)))
    return "herald:report:" + ":".join(str(p) for p in parts)


def _heavy(campaign: Campaign, bucket: str) -> dict:
    """Series, links and failures: from the cache when the campaign's counters are unchanged."""
    key = _cache_key(campaign, bucket)
    try:
        cached = get_redis().get(key)
        if cached:
            return json.loads(cached)
    except redis.exceptions.RedisError as err:  # the report does not need Redis: compute it
        log.warning("report cache unavailable: %s", err)
        key = None
    value = {"series": series(campaign, bucket), "links": links(campaign), "failures": failures(campaign)}
    if key is not None:
        try:
            get_redis().set(key, json.dumps(value), ex=CACHE_SECONDS)
        except redis.exceptions.RedisError as err:
            log.warning("report cache unavailable: %s", err)
    return value


def report(campaign: Campaign, bucket: str = "hour") -> dict:
    bucket = parse_bucket(bucket)
    t = totals(campaign)
    heavy = _heavy(campaign, bucket)
    return {"campaignId": campaign.id, "channel": campaign.channel, "trackClicks": campaign.track_clicks,
            "totals": t, "series": heavy["series"], "links": heavy["links"],
            "benchmark": benchmark(campaign, t["readRate"], t["clickRate"]), "failures": heavy["failures"]}


def default_bucket(campaign: Campaign) -> str:
    """Hours for a send whose events span three days or less, days beyond that."""
    if campaign.started_at is None:
        return "hour"
    end = campaign.completed_at or campaign.progress_at or campaign.started_at
    return "hour" if (end - campaign.started_at) <= timedelta(days=3) else "day"


# --- the per-recipient engagement export ---------------------------------------------------------

def _iso(value) -> str:
    return _as_utc(value).isoformat() if value else ""


def engagement_csv_stream(campaign: Campaign) -> Iterator[str]:
    """Read what the body needs now (the body is produced after the view returns)."""
    return _engagement_lines(campaign.id)


def _engagement_lines(campaign_id: int, page: int = EXPORT_PAGE) -> Iterator[str]:
    """One page of recipients in id order at a time, with their notifications and link clicks
    for that id range: memory stays one page however large the campaign."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_HEADER)
    yield buffer.getvalue()
    last = 0
    while True:
        rows = db.session.execute(
            select(Recipient.id, Recipient.user_id, Recipient.status, Recipient.sent_at, Recipient.last_error)
            .where(Recipient.campaign_id == campaign_id, Recipient.id > last)
            .order_by(Recipient.id).limit(page)).all()
        if not rows:
            return
        lo, hi = rows[0].id, rows[-1].id
        notes = {r.recipient_id: r for r in db.session.execute(
            select(Notification.recipient_id, Notification.read_at, Notification.clicked_at,
                   Notification.action_url)
            .where(Notification.recipient_id.between(lo, hi), Notification.campaign_id == campaign_id))}
        clicked: dict[int, list] = {}
        for rid, url, at in db.session.execute(
                select(LinkClick.recipient_id, LinkClick.url, LinkClick.clicked_at)
                .where(LinkClick.recipient_id.between(lo, hi), LinkClick.campaign_id == campaign_id)
                .order_by(LinkClick.recipient_id, LinkClick.clicked_at, LinkClick.id)):
            clicked.setdefault(rid, []).append((url, at))
        buffer.seek(0)
        buffer.truncate()
        for r in rows:
            note = notes.get(r.id)
            link_rows = clicked.get(r.id, [])
            if note is not None and note.clicked_at and note.action_url:  # in-app: the action URL
                link_rows = [(note.action_url, note.clicked_at)]
            clicked_at = note.clicked_at if note is not None and note.clicked_at else (
                link_rows[0][1] if link_rows else None)
            writer.writerow([neutralise(c) for c in (
                r.user_id, r.status, _iso(r.sent_at) if r.status == RecipientStatus.SENT else "",
                _iso(note.read_at) if note is not None else "", _iso(clicked_at),
                " ".join(url for url, _ in link_rows), r.last_error or "")])
        yield buffer.getvalue()
        last = hi
        db.session.rollback()  # end the page's read transaction: a long download holds no snapshot
