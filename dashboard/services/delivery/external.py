"""Email and webhook delivery, at least once: one run of a chunk at a time (a lease its holder
renews at every step), each bucket step sent and then recorded in its own transaction, so a
crash re-sends at most one step. The campaign's status is re-read with every record, so a
cancel or a failure stops the send within one step."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from dashboard.channels import Channel, Message, Result
from dashboard.extensions import db
from dashboard.models import CampaignChunk, CampaignStatus, Recipient, RecipientStatus, User, utcnow
from dashboard.services import clicks
from dashboard.services.delivery import caps, guard, progress
from dashboard.services.delivery.messages import build
from dashboard.services.delivery.slices import Outcome, Slice, Work, backoff

MAX_ATTEMPTS = 5  # per message, for transient failures (SPEC §5)


def _lease(work: Work, seconds: float) -> str | None:
    token, now = uuid.uuid4().hex, utcnow()
    taken = db.session.execute(
        update(CampaignChunk).where(CampaignChunk.id == work.chunk_id, CampaignChunk.done.is_(False),
                                    or_(CampaignChunk.leased_until.is_(None), CampaignChunk.leased_until < now))
        .values(leased_until=now + timedelta(seconds=seconds), lease_token=token)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return token if taken == 1 else None


def _rows(work: Work) -> list:
    """The chunk's pending recipients, with the directory's address where the row has none."""
    rows = db.session.execute(select(Recipient.id, Recipient.user_id, Recipient.variables, Recipient.email,
                                     Recipient.attempts, Recipient.updated_at)
                              .where(Recipient.campaign_id == work.campaign_id, Recipient.id.between(work.lo, work.hi),
                                     Recipient.status == RecipientStatus.PENDING, *work.scope())
                              .order_by(Recipient.id)).all()
    missing = [r.user_id for r in rows if not r.email]
    found = {}
    if missing:
        found = dict(db.session.execute(select(User.user_id, User.email).where(User.user_id.in_(missing))).all())
    return [(r.id, r.user_id, r.variables, r.email or found.get(r.user_id), r.attempts, r.updated_at) for r in rows]


def _due(attempts: int, updated_at: datetime | None, now: datetime) -> float:
    """Seconds until a row that failed transiently may be tried again (0 when it may now)."""
    if not attempts or updated_at is None:
        return 0.0
    return max(0.0, (updated_at + timedelta(seconds=backoff(attempts, jitter=False)) - now).total_seconds())


class Recorder:
    """Sorts a step's results and records them with the counters in one transaction."""

    def __init__(self, work: Work, token: str, lease_seconds: float, attempts: dict[int, int]):
        self.work, self.token, self.lease_seconds, self.attempts = work, token, lease_seconds, attempts
        self.retry_after = 0.0
        self.retried = 0
        self.max_tries = 0
        self.unsent = 0

    def record(self, results: list[Result], failures: list[tuple[int, str]],
               skips: list[tuple[int, str]] = ()) -> tuple[str, int, int, int, bool]:
        sent_ids, retries = [], []
        failures, skips = list(failures), list(skips)
        for r in results:
            tries = self.attempts.get(r.recipient_id, 0) + 1
            if r.outcome == "unsent":
                self.unsent += 1
            elif r.outcome == "sent":
                sent_ids.append(r.recipient_id)
            elif r.outcome == "permanent":
                failures.append((r.recipient_id, r.error or "failed"))
            elif tries >= MAX_ATTEMPTS:
                failures.append((r.recipient_id, f"gave up after {tries} attempts: {r.error or 'transient failure'}"))
            else:
                retries.append((r.recipient_id, r.error or "transient failure"))
                self.retry_after = max(self.retry_after, r.retry_after or 0.0)
                self.max_tries = max(self.max_tries, tries)
        self.retried += len(retries)

        def write():
            now = utcnow()
            from_pending, from_skipped = progress.mark_sent(sent_ids, now)
            failed = progress.mark_failed(failures, now)
            capped = progress.mark_skipped(skips, now)
            progress.note_retries(retries, now)
            status, pending = progress.move(self.work.campaign_id, now, pending=-(from_pending + failed + capped),
                                            sent=from_pending + from_skipped, failed=failed,
                                            skipped=capped - from_skipped)
            # Renew the lease while sending; release it in this same transaction when the status
            # says stop, so a resume right after finds the chunk free for its new run.
            lease = (dict(leased_until=now + timedelta(seconds=self.lease_seconds))
                     if status == CampaignStatus.SENDING else dict(leased_until=None, lease_token=None))
            held = db.session.execute(
                update(CampaignChunk).where(CampaignChunk.id == self.work.chunk_id,
                                            CampaignChunk.lease_token == self.token)
                .values(**lease).execution_options(synchronize_session=False)).rowcount
            db.session.commit()
            return status, pending, from_pending + from_skipped, failed, held == 1

        return progress.retrying(write)


def _release(work: Work, token: str) -> None:
    """Give the chunk back (the caller commits)."""
    db.session.execute(update(CampaignChunk)
                       .where(CampaignChunk.id == work.chunk_id, CampaignChunk.lease_token == token)
                       .values(leased_until=None, lease_token=None).execution_options(synchronize_session=False))


def _finish(work: Work, token: str) -> None:
    db.session.execute(update(CampaignChunk)
                       .where(CampaignChunk.id == work.chunk_id, CampaignChunk.lease_token == token)
                       .values(done=True, leased_until=None, lease_token=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def run(work: Work, channel: Channel, box: Slice) -> Outcome:
    timeout = float(getattr(channel, "timeout", 10.0))
    # Renewed at every step, and a step ends at most ~1 s past the slice: this never lapses
    # while its holder is alive.
    lease_seconds = current_app.config["HERALD_SLICE_SECONDS"] + timeout + 10
    token = _lease(work, lease_seconds)
    if token is None:
        return Outcome("leased")  # another run holds this chunk and will hand it back itself
    now = utcnow()
    rows = _rows(work)
    later = [_due(r[4], r[5], now) for r in rows]
    ready = [r[:4] for r, wait in zip(rows, later, strict=True) if wait == 0]
    deferred = [wait for wait in later if wait > 0]
    attempts = {r[0]: r[4] for r in rows}
    messages, failures = build(work.campaign_id, work.schema, work.defaults, work.content, ready, work.test)
    if work.track_clicks:
        clicks.rewrite(messages)
    recorder = Recorder(work, token, lease_seconds, attempts)
    sent = failed = 0
    pending: int | None = None
    index = 0
    try:
        while index < len(messages) or failures:
            part: list[Message] = messages[index:index + box.step]
            taken = len(part)
            results: list[Result] = []
            skips: list[tuple[int, str]] = []
            if part:
                wait = box.acquire(len(part))
                if wait:
                    if failures:  # this recipient's own failures are recorded before the slice ends
                        failed += recorder.record([], failures)[3]
                    return Outcome("more", wait, sent, failed)
                if box.take_slept() > 0.5 and progress.status_of(work.campaign_id) != CampaignStatus.SENDING:
                    _release(work, token)  # paused or cancelled while waiting for tokens
                    db.session.commit()
                    return Outcome("stopped", 0, sent, failed)
                capped = caps.reserve(work.caps, [(m.recipient_id, m.user_id) for m in part])
                if capped:
                    skips = list(capped.items())
                    part = [m for m in part if m.recipient_id not in capped]
                results = channel.send_batch(part, deadline=box.deadline) if part else []
                if work.caps is not None:
                    users = {m.recipient_id: m.user_id for m in part}
                    caps.release(work.caps, [(r.recipient_id, users[r.recipient_id]) for r in results
                                             if r.outcome != "sent"])
            status, pending, n_sent, n_failed, held = recorder.record(results, failures, skips)
            failures = []
            index += taken
            sent, failed = sent + n_sent, failed + n_failed
            progress.record_rate(work.campaign_id, n_sent + n_failed)
            if status != CampaignStatus.SENDING:
                return Outcome("stopped", 0, sent, failed, pending)
            if guard.check(work, n_sent, n_failed, also=lambda: _release(work, token)):
                return Outcome("stopped", 0, sent, failed, pending, {"halted": True})
            if not held:
                return Outcome("leased", 0, sent, failed, pending, {"lease": "lost"})
            if recorder.unsent or (index < len(messages) and box.should_stop()):
                return Outcome("more", 0, sent, failed, pending)
    finally:  # an exception propagates: what was recorded stays, the job is retried (bounded)
        channel.close()
    if recorder.retried or deferred:
        waits = list(deferred)
        if recorder.retried:
            waits.append(backoff(recorder.max_tries, recorder.retry_after))
        return Outcome("more", min(waits), sent, failed, pending, {"retrying": recorder.retried + len(deferred)})
    _finish(work, token)
    return Outcome("done", 0, sent, failed, pending)
