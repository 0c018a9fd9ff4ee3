"""The sending engine: plan a send into chunks (rows in the database), deliver a chunk in
bulk through its channel, keep counters and rate, finish the campaign, and sweep for work
that was lost (worker killed, Redis restarted, scheduler down)."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from dashboard import rendering
from dashboard.access import Actor
from dashboard.channels import ChannelUnavailable, Message, get_channel
from dashboard.errors import LifecycleError
from dashboard.extensions import db, get_queue, get_redis
from dashboard.models import (
    Campaign,
    CampaignChunk,
    CampaignStatus,
    DeliveryMode,
    Recipient,
    RecipientStatus,
    TemplateVersion,
    User,
    utcnow,
)
from dashboard.ratelimit import TokenBucket
from dashboard.services import channel_settings

WORKER = Actor.system("worker")
RATE_WINDOW = 10
FAILURE_MIN_PROCESSED = 200
MAX_ATTEMPTS = 5


# -- enqueueing (always after the transaction that made the work visible has committed) ----

def enqueue_start(campaign_id: int, queue: str = "batch") -> None:
    get_queue(queue).enqueue("dashboard.jobs.start_campaign", campaign_id,
                               job_id=f"herald-start-{campaign_id}", result_ttl=600)


def enqueue_scheduled(campaign_id: int, when: datetime) -> None:
    get_queue("default").enqueue_at(when, "dashboard.jobs.fire_scheduled", campaign_id, when.isoformat(),
                                    result_ttl=600)


def enqueue_chunks(chunks: list[CampaignChunk], campaign: Campaign) -> None:
    """Realtime sends and one-call notifications go to the high-priority queue."""
    urgent = campaign.delivery_mode == DeliveryMode.REALTIME or campaign.kind == "notification"
    queue = get_queue("realtime" if urgent else "batch")
    pipe = get_redis().pipeline()
    for chunk in chunks:
        queue.enqueue("dashboard.jobs.deliver_chunk", chunk.id, job_id=chunk.job_id, result_ttl=300,
                      job_timeout=600, pipeline=pipe)
    pipe.execute()


# -- planning ----------------------------------------------------------------

def plan(campaign_id: int) -> int:
    """Split the pending recipients into id ranges, store them, enqueue them."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return 0
    exists = db.session.scalar(select(func.count()).select_from(CampaignChunk)
                               .where(CampaignChunk.campaign_id == campaign_id))
    if exists:
        return 0  # already planned; the sweep looks after lost chunks
    size = 1 if campaign.delivery_mode == DeliveryMode.REALTIME else current_app.config["HERALD_BATCH_CHUNK"]
    pending = and_(Recipient.campaign_id == campaign_id, Recipient.status == RecipientStatus.PENDING)
    count, low, top = db.session.execute(select(func.count(), func.min(Recipient.id), func.max(Recipient.id))
                                         .where(pending)).one()
    if not count:
        finish_if_done(campaign_id)
        return 0
    if size > 1 and top - low + 1 <= count * 1.25:
        # Dense ids (bulk imports): plain id arithmetic, no per-row work.
        bounds = [(lo, min(lo + size - 1, top)) for lo in range(low, top + 1, size)]
    else:
        numbered = select(Recipient.id, func.row_number().over(order_by=Recipient.id).label("n")).where(
            pending).subquery()
        starts = db.session.scalars(select(numbered.c.id).where((numbered.c.n - 1) % size == 0)
                                    .order_by(numbered.c.id)).all()
        bounds = [(lo, (starts[i + 1] - 1) if i + 1 < len(starts) else top) for i, lo in enumerate(starts)]
    now = utcnow()
    db.session.execute(insert(CampaignChunk), [
        {"campaign_id": campaign_id, "lo": lo, "hi": hi, "done": False, "attempts": 1, "enqueued_at": now}
        for lo, hi in bounds])
    db.session.commit()
    chunks = db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == campaign_id)
                                .order_by(CampaignChunk.id)).all()
    enqueue_chunks(chunks, campaign)
    return len(chunks)


# -- delivering a chunk -------------------------------------------------------

def _messages(campaign: Campaign, version: TemplateVersion, rows, content_key: str) -> list[Message]:
    content = version.channels.get(content_key, {})
    out = []
    for rid, user_id, variables, email in rows:
        values, _, _ = rendering.resolve(version.variable_schema, variables or {}, campaign.variables)
        rendered = {field: rendering.render(text_, values, html=(field == "html")) for field, text_ in content.items()}
        out.append(Message(rid, campaign.id, user_id, email, rendered, values))
    return out


def deliver_chunk(chunk_id: int) -> dict:
    chunk = db.session.get(CampaignChunk, chunk_id)
    if chunk is None or chunk.done:
        return {"delivered": 0, "skipped": "done"}
    campaign = db.session.get(Campaign, chunk.campaign_id)
    if campaign.status != CampaignStatus.SENDING:
        return {"delivered": 0, "skipped": campaign.status}
    early = (chunk.enqueued_at - utcnow()).total_seconds()
    if early > 0:  # RQ schedules to the second; keep the backoff we promised
        if early > 2:
            _requeue_later(chunk, campaign, early)
            return {"delivered": 0, "skipped": "early"}
        time.sleep(early)
    version = db.session.scalar(select(TemplateVersion).where(
        TemplateVersion.template_pk == campaign.template_pk, TemplateVersion.version == campaign.template_version))
    try:
        channel = get_channel(campaign.channel)
    except ChannelUnavailable as err:
        fail_campaign(campaign.id, str(err))
        return {"delivered": 0, "skipped": "channel"}
    in_range = and_(Recipient.campaign_id == campaign.id, Recipient.id.between(chunk.lo, chunk.hi),
                    Recipient.status == RecipientStatus.PENDING)
    now = utcnow()
    if not channel.transactional:
        return _deliver_external(campaign, version, chunk, channel, in_range)
    # Claim and deliver in one transaction: a re-run finds nothing pending (exactly once).
    claimed = db.session.execute(
        update(Recipient).where(in_range)
        .values(status=RecipientStatus.SENT, sent_at=now, updated_at=now, attempts=Recipient.attempts + 1)
        .returning(Recipient.id, Recipient.user_id, Recipient.variables, Recipient.email)
        .execution_options(synchronize_session=False)
    ).all()
    messages = _messages(campaign, version, claimed, channel.content_key)
    results = channel.send_batch(messages)
    sent = sum(1 for r in results if r.outcome == "sent")
    failed = len(results) - sent
    chunk_done = db.session.execute(
        update(CampaignChunk).where(CampaignChunk.id == chunk.id, CampaignChunk.done.is_(False)).values(done=True)
        .execution_options(synchronize_session=False))
    if chunk_done.rowcount != 1:
        db.session.rollback()
        return {"delivered": 0, "skipped": "raced"}
    pending = _commit_progress(campaign.id, sent, failed, now)
    if pending <= 0:
        finish_if_done(campaign.id)
    return {"delivered": sent, "failed": failed}


def _commit_progress(campaign_id: int, sent: int, failed: int, now) -> int:
    """Move the campaign's counters with the chunk's results, commit, record the rate; return pending."""
    counters = db.session.execute(
        update(Campaign).where(Campaign.id == campaign_id)
        .values(pending=Campaign.pending - sent - failed, sent=Campaign.sent + sent, failed=Campaign.failed + failed,
                progress_at=now)
        .returning(Campaign.pending).execution_options(synchronize_session=False)).one()
    db.session.commit()
    record_rate(campaign_id, sent + failed)
    return counters.pending


def _with_directory_emails(rows) -> list:
    """Recipients without an email column value take the address from the user directory."""
    missing = [r[1] for r in rows if not r[3]]
    if not missing:
        return list(rows)
    found = dict(db.session.execute(select(User.user_id, User.email).where(User.user_id.in_(missing))).all())
    return [(rid, uid, variables, email or found.get(uid)) for rid, uid, variables, email in rows]


def _requeue_later(chunk: CampaignChunk, campaign: Campaign, delay: float) -> None:
    get_queue("realtime" if campaign.delivery_mode == DeliveryMode.REALTIME else "batch").enqueue_in(
        timedelta(seconds=delay), "dashboard.jobs.deliver_chunk", chunk.id, job_id=chunk.job_id,
        result_ttl=300, job_timeout=600)


def _backoff(attempt: int, retry_after: float | None) -> float:
    base = current_app.config["HERALD_RETRY_BASE_SECONDS"]
    delay = min(base * (2 ** max(attempt - 1, 0)), 300.0) * (1 + random.random() * 0.5)  # jitter
    return max(delay, retry_after or 0.0)


def _deliver_external(campaign: Campaign, version: TemplateVersion, chunk: CampaignChunk, channel, in_range) -> dict:
    """At-least-once: send first, then record each result; transient failures stay pending and
    the chunk is re-run later with exponential backoff, without holding up the others."""
    now = utcnow()
    rate = channel_settings.get(campaign.channel).rate_limit
    hold = max(300.0, 2 * (chunk.hi - chunk.lo + 1) / rate)  # long enough for a throttled chunk to finish
    lease = db.session.execute(
        update(CampaignChunk).where(CampaignChunk.id == chunk.id, CampaignChunk.done.is_(False),
                                    or_(CampaignChunk.leased_until.is_(None), CampaignChunk.leased_until < now))
        .values(leased_until=now + timedelta(seconds=hold)).execution_options(synchronize_session=False))
    db.session.commit()
    if lease.rowcount != 1:
        return {"delivered": 0, "skipped": "leased"}
    rows = db.session.execute(select(Recipient.id, Recipient.user_id, Recipient.variables, Recipient.email,
                                     Recipient.attempts).where(in_range).order_by(Recipient.id)).all()
    attempts = {r[0]: r[4] for r in rows}
    messages = _messages(campaign, version, _with_directory_emails([r[:4] for r in rows]), channel.content_key)
    results = []
    if campaign.delivery_mode == DeliveryMode.BATCH:
        config = channel_settings.get(campaign.channel)
        bucket = TokenBucket(campaign.channel, config.rate_limit)
        step = max(1, int(bucket.capacity))
        for start in range(0, len(messages), step):
            part = messages[start:start + step]
            bucket.take(len(part))
            results.extend(channel.send_batch(part))
    else:
        results = channel.send_batch(messages)
    now = utcnow()
    sent_ids, failures, retries = [], [], []
    for result in results:
        tries = attempts[result.recipient_id] + 1
        if result.outcome == "sent":
            sent_ids.append(result.recipient_id)
        elif result.outcome == "permanent":
            failures.append({"rid": result.recipient_id, "err": result.error or "failed", "n": tries})
        elif tries >= MAX_ATTEMPTS:
            failures.append({"rid": result.recipient_id, "n": tries,
                             "err": f"gave up after {tries} attempts: {result.error or 'transient failure'}"})
        else:
            retries.append((result, tries))
    table = Recipient.__table__
    if sent_ids:
        db.session.execute(update(Recipient).where(Recipient.id.in_(sent_ids), Recipient.status == "pending")
                           .values(status=RecipientStatus.SENT, sent_at=now, updated_at=now, last_error=None,
                                   attempts=Recipient.attempts + 1).execution_options(synchronize_session=False))
    if failures:
        db.session.execute(table.update().where(table.c.id == bindparam("rid"), table.c.status == "pending")
                           .values(status=RecipientStatus.FAILED, last_error=bindparam("err"),
                                   attempts=bindparam("n"), updated_at=now), failures)
    if retries:
        db.session.execute(table.update().where(table.c.id == bindparam("rid"))
                           .values(last_error=bindparam("err"), attempts=bindparam("n"), updated_at=now),
                           [{"rid": r.recipient_id, "err": (r.error or "transient failure")[:1000], "n": n}
                            for r, n in retries])
    delay = None
    if retries:
        delay = _backoff(max(n for _, n in retries), max((r.retry_after or 0) for r, _ in retries))
        db.session.execute(update(CampaignChunk).where(CampaignChunk.id == chunk.id)
                           .values(attempts=CampaignChunk.attempts + 1, leased_until=None,
                                   enqueued_at=now + timedelta(seconds=delay))
                           .execution_options(synchronize_session=False))
    else:
        db.session.execute(update(CampaignChunk).where(CampaignChunk.id == chunk.id)
                           .values(done=True, leased_until=None).execution_options(synchronize_session=False))
    sent, failed = len(sent_ids), len(failures)
    pending = _commit_progress(campaign.id, sent, failed, now)
    if delay is not None:
        db.session.refresh(chunk)
        _requeue_later(chunk, campaign, delay)
    if failed or pending <= 0:
        finish_if_done(campaign.id)
    return {"delivered": sent, "failed": failed, "retrying": len(retries)}


# -- progress -----------------------------------------------------------------

def record_rate(campaign_id: int, n: int) -> None:
    if n <= 0:
        return
    key = f"herald:rate:{campaign_id}"
    pipe = get_redis().pipeline()
    pipe.hincrby(key, str(int(time.time())), n)
    pipe.expire(key, 120)
    pipe.execute()


def rate_and_eta(campaign: Campaign) -> tuple[float, int | None]:
    """Messages per second over the last ~10 s (from per-second buckets in Redis) and the ETA."""
    if campaign.status != CampaignStatus.SENDING:
        return 0.0, None
    try:
        buckets = get_redis().hgetall(f"herald:rate:{campaign.id}")
    except Exception:  # progress display must not break when Redis blips
        return 0.0, None
    now = int(time.time())
    recent = sum(int(v) for k, v in buckets.items() if now - RATE_WINDOW < int(k) <= now)
    rate = recent / RATE_WINDOW
    eta = int(campaign.pending / rate) if rate > 0 else None
    return round(rate, 1), eta


# -- finishing ----------------------------------------------------------------

def finish_if_done(campaign_id: int) -> None:
    """sending -> sent when nothing is pending (or failed past the threshold)."""
    from dashboard.services import lifecycle

    campaign = db.session.get(Campaign, campaign_id)
    db.session.refresh(campaign)
    if campaign.status != CampaignStatus.SENDING:
        return
    processed = campaign.sent + campaign.failed
    if processed >= FAILURE_MIN_PROCESSED and campaign.failed / processed > campaign.failure_threshold:
        fail_campaign(campaign_id, f"{campaign.failed:,} of {processed:,} deliveries failed, above the "
                                   f"{campaign.failure_threshold:.0%} threshold")
        return
    if campaign.pending > 0:
        return
    open_chunks = db.session.scalar(select(func.count()).select_from(CampaignChunk).where(
        CampaignChunk.campaign_id == campaign_id, CampaignChunk.done.is_(False)))
    if open_chunks:
        return
    try:
        lifecycle.transition(campaign_id, "complete", WORKER, completed_at=utcnow())
        db.session.commit()
    except LifecycleError:
        db.session.rollback()


def fail_campaign(campaign_id: int, reason: str) -> None:
    from dashboard.services import lifecycle

    try:
        lifecycle.transition(campaign_id, "fail", WORKER, completed_at=utcnow(), failure_reason=reason[:1000])
        db.session.commit()
    except LifecycleError:
        db.session.rollback()
        return
    skip_pending(campaign_id)


def skip_pending(campaign_id: int) -> None:
    """Recipients not yet delivered become skipped; counters are recomputed from the rows."""
    from dashboard.services.recipients import recount

    now = utcnow()
    db.session.execute(update(Recipient).where(Recipient.campaign_id == campaign_id,
                                               Recipient.status == RecipientStatus.PENDING)
                       .values(status=RecipientStatus.SKIPPED, updated_at=now)
                       .execution_options(synchronize_session=False))
    db.session.execute(update(CampaignChunk).where(CampaignChunk.campaign_id == campaign_id)
                       .values(done=True).execution_options(synchronize_session=False))
    db.session.commit()
    campaign = db.session.get(Campaign, campaign_id)
    recount(campaign)
    db.session.commit()
