"""Split a started campaign's pending recipients into chunks (id ranges stored in the
database), exactly once: the run that wins a conditional claim on the campaign plans it."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import and_, func, insert, select, update

from dashboard import jobs
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, CampaignStatus, DeliveryMode, Recipient, RecipientStatus, utcnow
from dashboard.models.campaign import FIRST_TIMED_WAVE
from dashboard.services import control, lifecycle, recipient_time


def _bounds(campaign_id: int, size: int, *scope) -> list[tuple[int, int]]:
    pending = and_(Recipient.campaign_id == campaign_id, Recipient.status == RecipientStatus.PENDING, *scope)
    count, low, top = db.session.execute(select(func.count(), func.min(Recipient.id), func.max(Recipient.id))
                                         .where(pending)).one()
    if not count:
        return []
    if size > 1 and top - low + 1 <= count * 1.25:
        # Dense ids (bulk imports): plain id arithmetic, no per-row work.
        return [(lo, min(lo + size - 1, top)) for lo in range(low, top + 1, size)]
    numbered = select(Recipient.id, func.row_number().over(order_by=Recipient.id).label("n")).where(
        pending).subquery()
    starts = db.session.scalars(select(numbered.c.id).where((numbered.c.n - 1) % size == 0)
                                .order_by(numbered.c.id)).all()
    return [(lo, (starts[i + 1] - 1) if i + 1 < len(starts) else top) for i, lo in enumerate(starts)]


def _wave_bounds(campaign_id: int, size: int) -> list[tuple[int, int, int]]:
    """(wave, lo, hi) chunks of each timed wave's pending recipients: two queries in all."""
    pending = and_(Recipient.campaign_id == campaign_id, Recipient.status == RecipientStatus.PENDING,
                   Recipient.wave >= FIRST_TIMED_WAVE)
    tops = dict(db.session.execute(select(Recipient.wave, func.max(Recipient.id)).where(pending)
                                   .group_by(Recipient.wave)).all())
    numbered = select(Recipient.id, Recipient.wave, func.row_number().over(
        partition_by=Recipient.wave, order_by=Recipient.id).label("n")).where(pending).subquery()
    starts = db.session.execute(select(numbered.c.wave, numbered.c.id).where((numbered.c.n - 1) % size == 0)
                                .order_by(numbered.c.wave, numbered.c.id)).all()
    out = []
    for i, (wave, lo) in enumerate(starts):
        last = i + 1 == len(starts) or starts[i + 1].wave != wave
        out.append((wave, lo, tops[wave] if last else starts[i + 1].id - 1))
    return out


def plan(campaign_id: int) -> int:
    """Claim the campaign, store its chunks, commit, then enqueue them; 0 when another run won."""
    now = utcnow()
    claimed = db.session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING,
                               Campaign.planned_at.is_(None))
        .values(planned_at=now).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        return 0
    campaign = db.session.get(Campaign, campaign_id)
    realtime = campaign.delivery_mode == DeliveryMode.REALTIME
    size = 1 if realtime else current_app.config["HERALD_BATCH_CHUNK"]
    wave, dues = 0, {}
    if campaign.canary_state == "sending":  # the first wave only; Continue plans the rest
        # Quiet hours: the sample leaves out recipients inside them; if everyone is, it waits.
        quiet_zones, wait_until = recipient_time.canary_quiet(campaign, now)
        control.canary_sample(campaign, *((recipient_time.outside(quiet_zones),) if quiet_zones else ()))
        wave, dues = 1, ({1: wait_until} if wait_until else {})
    else:
        if campaign.wave_count == 0:  # a local-time send has its waves from the moment it was sent
            recipient_time.plan_quiet(campaign, now)
        dues = recipient_time.wave_dues(campaign_id)
    if dues and not wave:
        bounds = _wave_bounds(campaign_id, size)
    else:
        bounds = [(wave, lo, hi) for lo, hi in _bounds(campaign_id, size, *((Recipient.wave == 1,) if wave else ()))]
    if not bounds:
        db.session.commit()
        lifecycle.finish_if_done(campaign_id)
        return 0
    db.session.execute(insert(CampaignChunk), [
        {"campaign_id": campaign_id, "lo": lo, "hi": hi, "done": False, "attempts": 0, "run": 1,
         "enqueued_at": max(dues.get(w, now), now), "wave": w}
        for w, lo, hi in bounds])
    db.session.commit()
    chunks = db.session.execute(select(CampaignChunk.id, CampaignChunk.run, CampaignChunk.wave)
                                .where(CampaignChunk.campaign_id == campaign_id, CampaignChunk.done.is_(False))
                                .order_by(CampaignChunk.id)).all()
    urgent = jobs.is_urgent(campaign)
    for delay, batch in sorted(recipient_time.group_by_due(chunks, dues, utcnow()).items()):
        jobs.enqueue_chunks(batch, urgent=urgent, delay=delay, campaign_id=campaign_id)
    return len(chunks)
