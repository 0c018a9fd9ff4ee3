"""In-app delivery, exactly once: each step claims its recipients and writes their feed rows
in one transaction, so a re-run finds nothing pending. A row the database refuses fails alone:
the step's bulk write runs in a savepoint and, only if it fails, row by row."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from dashboard.channels import Channel, Message
from dashboard.extensions import db
from dashboard.models import CampaignChunk, CampaignStatus, Recipient, RecipientStatus, utcnow
from dashboard.services import inbox
from dashboard.services.delivery import caps, guard, progress
from dashboard.services.delivery.messages import build, describe
from dashboard.services.delivery.slices import Outcome, Slice, Work


@dataclass
class Step:
    sent: int
    failed: int
    status: str
    pending: int
    next_lo: int


def _write(channel: Channel, messages: list[Message]) -> list[tuple[int, str]]:
    """Write the feed rows; returns the recipients whose row the database refused."""
    if not messages:
        return []
    try:
        with db.session.begin_nested():
            channel.send_batch(messages)
        return []
    except Exception:  # noqa: BLE001 - find the bad rows below
        pass
    refused = []
    for message in messages:
        try:
            with db.session.begin_nested():
                channel.send_batch([message])
        except Exception as err:  # noqa: BLE001
            refused.append((message.recipient_id, f"could not store the notification: {describe(err)}"))
    return refused


def _step(work: Work, channel: Channel, lo: int, size: int) -> Step:
    now = utcnow()
    mine = (Recipient.campaign_id == work.campaign_id, Recipient.status == RecipientStatus.PENDING, *work.scope())
    upper = work.hi
    if size <= work.hi - lo:
        bound = db.session.scalar(select(Recipient.id).where(*mine, Recipient.id.between(lo, work.hi))
                                  .order_by(Recipient.id).offset(size - 1).limit(1))
        upper = bound if bound is not None else work.hi
    claimed = db.session.execute(
        update(Recipient).where(*mine, Recipient.id.between(lo, upper))
        .values(status=RecipientStatus.SENT, sent_at=now, updated_at=now, attempts=Recipient.attempts + 1)
        .returning(Recipient.id, Recipient.user_id, Recipient.variables, Recipient.email)
        .execution_options(synchronize_session=False)).all()
    messages, failures = build(work.campaign_id, work.schema, work.defaults, work.content, claimed, work.test)
    capped = caps.reserve(work.caps, [(m.recipient_id, m.user_id) for m in messages])
    if capped:
        messages = [m for m in messages if m.recipient_id not in capped]
    refused = _write(channel, messages)
    if refused and work.caps is not None:
        users = {m.recipient_id: m.user_id for m in messages}
        caps.release(work.caps, [(rid, users[rid]) for rid, _ in refused])
    failed = progress.mark_failed(failures + refused, now, from_status=RecipientStatus.SENT, count_attempt=False)
    skipped = progress.mark_skipped(list(capped.items()), now, from_status=RecipientStatus.SENT)
    if upper >= work.hi:
        db.session.execute(update(CampaignChunk).where(CampaignChunk.id == work.chunk_id)
                           .values(done=True).execution_options(synchronize_session=False))
    # Last before the commit: the campaign row is the one lock every worker's step shares.
    status, pending = progress.move(work.campaign_id, now, pending=-len(claimed),
                                    sent=len(claimed) - failed - skipped, failed=failed, skipped=skipped)
    db.session.commit()
    if messages:  # one PUBLISH per chunk: the web processes wake these users' open inbox streams
        refused_ids = {rid for rid, _ in refused}
        inbox.publish_delivered(m.user_id for m in messages if m.recipient_id not in refused_ids)
    return Step(len(claimed) - failed - skipped, failed, status, pending, upper + 1)


def run(work: Work, channel: Channel, box: Slice) -> Outcome:
    lo, sent, failed = work.lo, 0, 0
    while True:
        size = min(box.step, work.hi - lo + 1)
        wait = box.acquire(size)
        if wait:
            return Outcome("more", wait, sent, failed)
        if box.take_slept() > 0.5 and progress.status_of(work.campaign_id) != CampaignStatus.SENDING:
            return Outcome("stopped", 0, sent, failed)  # paused or cancelled while waiting for tokens
        step = progress.retrying(lambda: _step(work, channel, lo, size))  # noqa: B023 (called at once)
        sent, failed, lo = sent + step.sent, failed + step.failed, step.next_lo
        progress.record_rate(work.campaign_id, step.sent + step.failed)
        if step.status != CampaignStatus.SENDING:
            return Outcome("stopped", 0, sent, failed, step.pending)
        if guard.check(work, step.sent, step.failed):
            return Outcome("stopped", 0, sent, failed, step.pending, {"halted": True})
        if lo > work.hi:
            return Outcome("done", 0, sent, failed, step.pending)
        if box.should_stop():
            return Outcome("more", 0, sent, failed, step.pending)
