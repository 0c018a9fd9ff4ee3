"""Run one chunk as a time-boxed slice: at most HERALD_SLICE_SECONDS of sending (and never
past a stop request), recorded step by step, the remainder handed back to the queue. A chunk
whose job keeps failing is retried with backoff at most MAX_JOB_FAILURES times, then its
pending recipients fail with the job's error, so every campaign reaches a final status."""

from __future__ import annotations

import logging
import time

from flask import current_app
from sqlalchemy import select, update

from dashboard import jobs
from dashboard.channels import ChannelUnavailable
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, CampaignStatus, DeliveryMode, TemplateVersion, utcnow
from dashboard.ratelimit import TokenBucket
from dashboard.services import channel_settings, control, lifecycle, test_sends
from dashboard.services.delivery import caps, external, in_app, progress
from dashboard.services.delivery.messages import describe
from dashboard.services.delivery.slices import Slice, Work, backoff

log = logging.getLogger(__name__)
MAX_JOB_FAILURES = 5


def deliver(chunk_id: int) -> dict:
    chunk = db.session.get(CampaignChunk, chunk_id)
    if chunk is None or chunk.done:
        return {"skipped": "done"}
    campaign = db.session.get(Campaign, chunk.campaign_id)
    if campaign.status != CampaignStatus.SENDING:
        return {"skipped": campaign.status}
    urgent = jobs.is_urgent(campaign)
    early = (chunk.enqueued_at - utcnow()).total_seconds()
    if early > 0:  # RQ schedules to the second; keep the backoff we promised
        if early > 2:
            requeue(chunk_id, urgent, early)
            return {"skipped": "early"}
        time.sleep(early)
        if progress.status_of(campaign.id) != CampaignStatus.SENDING:  # paused or cancelled meanwhile
            return {"skipped": "stopped while waiting"}
    version = db.session.scalar(select(TemplateVersion).where(
        TemplateVersion.template_pk == campaign.template_pk, TemplateVersion.version == campaign.template_version))
    try:
        channel = channel_settings.build(campaign.channel)
    except ChannelUnavailable as err:
        lifecycle.fail(campaign.id, str(err))
        return {"skipped": "channel unavailable"}
    rate = channel_settings.get(campaign.channel).rate_limit
    throttled = campaign.delivery_mode == DeliveryMode.BATCH
    cap = control.spread_rate(campaign, rate) if throttled else None
    box = Slice(time.monotonic() + current_app.config["HERALD_SLICE_SECONDS"],
                TokenBucket(campaign.channel, rate) if throttled else None,
                TokenBucket(f"campaign:{campaign.id}", cap) if cap else None)
    content, test = dict(version.channels.get(channel.content_key, {})), campaign.kind == test_sends.KIND
    work = Work(chunk.id, chunk.lo, chunk.hi, campaign.id, urgent, version.variable_schema, dict(campaign.variables),
                test_sends.labelled(content) if test else content, rate, test, chunk.wave,
                (campaign.halt_percent, campaign.halt_window or 200) if campaign.halt_percent is not None else None,
                caps.for_campaign(campaign),
                campaign.channel == "email" and campaign.track_clicks and not test)
    outcome = (in_app if channel.transactional else external).run(work, channel, box)
    if outcome.state == "more":
        requeue(chunk_id, urgent, outcome.delay)
    if outcome.failed or outcome.pending_left == 0 or outcome.state in ("done", "stopped"):
        lifecycle.finish_if_done(work.campaign_id)
    return {"state": outcome.state, "delivered": outcome.sent, "failed": outcome.failed, **outcome.notes}


def requeue(chunk_id: int, urgent: bool, delay: float) -> None:
    """Hand the rest of a chunk back to the queue as a new run (after `delay` seconds)."""
    from datetime import timedelta

    run = db.session.execute(
        update(CampaignChunk).where(CampaignChunk.id == chunk_id, CampaignChunk.done.is_(False))
        .values(run=CampaignChunk.run + 1, enqueued_at=utcnow() + timedelta(seconds=delay), leased_until=None,
                lease_token=None)
        .returning(CampaignChunk.run, CampaignChunk.campaign_id).execution_options(synchronize_session=False)).first()
    db.session.commit()
    if run is not None:
        jobs.enqueue_chunks([(chunk_id, run.run)], urgent=urgent, delay=delay, campaign_id=run.campaign_id)


def job_failed(chunk_id: int, err: BaseException) -> None:
    """The job raised (or timed out): count it, then retry with backoff or give up."""
    try:
        db.session.rollback()
        count_failure(chunk_id, describe(err))
    except Exception:  # the database may be what failed: the sweep takes over
        log.exception("could not record the failure of chunk %s", chunk_id)
        db.session.rollback()


def count_failure(chunk_id: int, summary: str, run: int | None = None, delay: float | None = None) -> None:
    """One more job failure, retried after a backoff (or `delay`); `run` (from the sweep) makes
    it a no-op if the chunk has moved on meanwhile."""
    chunk = db.session.get(CampaignChunk, chunk_id)
    if chunk is None or chunk.done or (run is not None and chunk.run != run):
        return
    campaign = db.session.get(Campaign, chunk.campaign_id)
    failures = chunk.attempts + 1
    if campaign.status == CampaignStatus.PAUSED:  # resume hands every open chunk a new run,
        # which must find the chunk free: the failed run's lease goes (as requeue's does).
        chunk.last_error, chunk.leased_until, chunk.lease_token = summary[:1000], None, None
        db.session.commit()
        return
    if failures >= MAX_JOB_FAILURES or campaign.status != CampaignStatus.SENDING:
        give_up(chunk_id, f"delivery job failed {failures} times; last error: {summary}")
        return
    chunk.attempts, chunk.last_error = failures, summary[:1000]
    db.session.commit()
    requeue(chunk_id, jobs.is_urgent(campaign), backoff(failures) if delay is None else delay)


def give_up(chunk_id: int, reason: str) -> None:
    """The chunk's still-pending recipients fail with the reason; the campaign can then finish."""
    chunk = db.session.get(CampaignChunk, chunk_id)
    campaign_id, lo, hi = chunk.campaign_id, chunk.lo, chunk.hi

    def record():
        now = utcnow()
        failed = progress.fail_range(campaign_id, lo, hi, reason, now)
        progress.move(campaign_id, now, pending=-failed, failed=failed)
        db.session.execute(update(CampaignChunk).where(CampaignChunk.id == chunk_id)
                           .values(done=True, attempts=CampaignChunk.attempts + 1, last_error=reason[:1000],
                                   leased_until=None, lease_token=None)
                           .execution_options(synchronize_session=False))
        db.session.commit()

    progress.retrying(record)
    lifecycle.finish_if_done(campaign_id)
