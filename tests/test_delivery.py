"""The delivery engine's own rules, in process: planning once, the sweep's lock, counters
moved by the rows each statement changed (also when a cancel races a send), bounded job
retries, and line breaks folded in single-line fields."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, CampaignChunk, Recipient, utcnow
from dashboard.rendering import render
from dashboard.services import lifecycle, recovery
from dashboard.services.actor import Actor
from dashboard.services.delivery import chunks, plan, progress
from tests.engine import drain
from tests.test_delivery_faults import assert_counters_match_rows
from tests.test_sending import make_campaign

ACTOR = Actor.system("test")


def test_single_line_fields_fold_every_kind_of_line_break():
    out = render("Hi {{ n }}", {"n": "Ann\r\nBcc: x@evil\u2028y\u2029z\u0085w"}, single_line=True)
    assert out == "Hi Ann Bcc: x@evil y z w"
    assert render("{{ n }}", {"n": "a\nb"}) == "a\nb"  # bodies keep their lines


def test_planning_happens_once_when_start_and_sweep_race(app):
    c = make_campaign(2500)
    lifecycle.send(c.id, None, ACTOR)
    results = []

    def race():
        with app.app_context():
            try:
                results.append(plan.plan(c.id))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 3]
    assert db.session.scalar(select(func.count()).select_from(CampaignChunk)) == 3
    drain()
    assert assert_counters_match_rows(c.id).status == "sent"


def test_the_sweep_lock_is_released_only_by_its_owner(app):
    redis = get_redis()
    redis.set("herald:sweep-lock", "someone-else", ex=20)
    assert recovery.sweep_with_lock() is None  # held: this sweep does not run
    assert redis.get("herald:sweep-lock") == b"someone-else"  # ... and does not delete another's lock
    redis.delete("herald:sweep-lock")
    assert recovery.sweep_with_lock() is not None
    assert redis.get("herald:sweep-lock") is None


def test_a_send_recorded_after_a_cancel_reads_sent_and_the_counters_add_up(app):
    """A channel accepted messages while the cancel committed: the truth (sent) wins."""
    c = make_campaign(10)
    lifecycle.send(c.id, None, ACTOR)
    ids = db.session.scalars(select(Recipient.id).where(Recipient.campaign_id == c.id).order_by(Recipient.id)).all()
    lifecycle.cancel(c.id, ACTOR)
    assert assert_counters_match_rows(c.id).skipped == 10
    now = utcnow()
    from_pending, from_skipped = progress.mark_sent(ids[:3], now)
    progress.move(c.id, now, pending=-from_pending, sent=from_pending + from_skipped, skipped=-from_skipped)
    db.session.commit()
    assert (from_pending, from_skipped) == (0, 3)
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.skipped, c.pending) == ("cancelled", 3, 7, 0)


def test_counters_never_move_for_rows_that_did_not_change(app):
    c = make_campaign(5)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    ids = db.session.scalars(select(Recipient.id).where(Recipient.campaign_id == c.id)).all()
    now = utcnow()
    assert progress.mark_sent(ids, now) == (0, 0)  # already sent: nothing changes, nothing counted
    assert progress.mark_failed([(i, "late") for i in ids], now) == 0
    db.session.commit()
    assert assert_counters_match_rows(c.id).sent == 5


def test_a_chunk_job_is_retried_with_backoff_then_its_recipients_fail(app):
    c = make_campaign(300)
    lifecycle.send(c.id, None, ACTOR)
    plan.plan(c.id)
    chunk = db.session.scalar(select(CampaignChunk))
    for attempt in range(1, 5):
        chunks.count_failure(chunk.id, "OperationalError: boom")
        db.session.expire_all()
        chunk = db.session.get(CampaignChunk, chunk.id)
        assert (chunk.attempts, chunk.done, chunk.last_error) == (attempt, False, "OperationalError: boom")
        assert chunk.enqueued_at > utcnow()  # a backoff, not at once
    chunks.count_failure(chunk.id, "OperationalError: boom")
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.failed) == ("failed", 300)
    reasons = set(db.session.scalars(select(Recipient.last_error).where(Recipient.campaign_id == c.id)))
    assert reasons == {"delivery job failed 5 times; last error: OperationalError: boom"}
    assert db.session.get(Campaign, c.id).failure_reason.startswith("300 of 300 deliveries failed")
